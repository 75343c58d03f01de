"""The one exception a user sees when a weights source cannot be used."""


class WeightsSourceError(ValueError):
    """A weights source is missing, unreadable, unsafe or unreachable; the message says which and why."""


def first_line(error: BaseException) -> str:
    """The error's first line, or its type's name: our messages stay one line."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
