"""Refusals of annotation commands. Each carries the HTTP status views and the API answer with."""

from config.errors import Refused


class AnnotationError(Refused):
    status_code = 400


class NotAllowed(AnnotationError):
    status_code = 403


class TaskNotFound(AnnotationError):
    status_code = 404

    def __init__(self):
        super().__init__("no such task of yours")


class TaskGone(AnnotationError):
    """The hold expired and the slot went to someone else."""

    status_code = 409


class QueueBusy(AnnotationError):
    """Every candidate was taken by someone else while this contractor was being served."""

    status_code = 503

    def __init__(self):
        super().__init__("many contractors are taking tasks at this moment; try again")


class InvalidAnswer(AnnotationError):
    status_code = 400


class ImportRefused(AnnotationError):
    def __init__(self, errors: list[str]):
        super().__init__(f"{len(errors)} bad line(s); nothing was imported")
        self.errors = errors
