"""Refusals of modelserve commands and queries, with the HTTP status an API answers with."""

from config.errors import Refused


class ModelserveError(Refused):
    status_code = 400


class UnknownModel(ModelserveError):
    status_code = 404

    def __init__(self, version: str):
        super().__init__(f"no classifier {version!r}")


class ModelUnavailable(ModelserveError):
    """Retired, failed or still training."""

    status_code = 409


class BadCheckpoint(ModelserveError):
    pass


class InvalidPrompt(ModelserveError):
    """A prompt the filtered generator cannot take (empty, too long)."""


class FilterUnavailable(ModelserveError):
    """The filtered generator cannot answer (no promoted classifier, no threshold, no generator)."""

    status_code = 503
