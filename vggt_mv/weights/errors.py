"""The one exception a user sees when a weights source cannot be used."""


class WeightsSourceError(ValueError):
    """A weights source is missing, unreadable, unsafe or unreachable; the message says which and why."""
