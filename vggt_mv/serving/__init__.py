"""What the Gradio app serves: start-up settings, the shared model, sessions; no UI code here."""
