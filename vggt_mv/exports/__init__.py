"""Downloads other tools read: COLMAP models, Rerun recordings, and the formats the app offers on request."""
