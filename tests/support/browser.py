"""Opening the app in Chromium the way a visitor does, and waiting on the app's own signal that it is ready."""

from __future__ import annotations

APP_READY = "html[data-app-ready='true']"


def open_app(page, url: str, timeout_ms: int = 60_000) -> None:
    """Go to the app and wait until Gradio has mounted every component (app.py sets the attribute on load), so
    nothing is typed into a dropdown that is still hydrating."""
    page.goto(url)
    page.wait_for_selector(APP_READY, state="attached", timeout=timeout_ms)
