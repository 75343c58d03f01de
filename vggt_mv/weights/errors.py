"""The one exception a user sees when a weights source cannot be used."""

MAX_DETAIL_CHARS = 300


class WeightsSourceError(ValueError):
    """A weights source is missing, unreadable, unsafe or unreachable; the message says which and why, on one
    line even when a file name carries a line break."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).splitlines()))


def first_text_line(text: str, fallback: str) -> str:
    """The first non-empty line of `text` (shortened), or `fallback`."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return fallback
    return lines[0] if len(lines[0]) <= MAX_DETAIL_CHARS else lines[0][:MAX_DETAIL_CHARS] + "…"


def first_line(error: BaseException) -> str:
    """The error's first line, or its type's name: our messages stay one line, and formatting an error raised
    by a hostile file must never raise in turn."""
    try:
        text = str(error)
    except Exception:  # noqa: BLE001 - an exception whose __str__ fails still deserves a message
        text = ""
    return first_text_line(text, type(error).__name__)
