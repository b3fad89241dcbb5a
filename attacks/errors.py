"""Refusals of attack commands. Messages are shown to contractors: they never name a classifier."""

from config.errors import Refused


class AttackError(Refused):
    status_code = 400


class NotAllowed(AttackError):
    status_code = 403


class SessionNotFound(AttackError):
    status_code = 404

    def __init__(self):
        super().__init__("no such attack session of yours")


class CampaignIsClosed(AttackError):
    status_code = 409

    def __init__(self):
        super().__init__("this campaign is closed")


class AttackRefused(AttackError):
    """A submission the server's own score rejects, or one not asserted injurious."""


class ClassifierBusy(AttackError):
    status_code = 503

    def __init__(self):
        super().__init__("the classifier is not available right now; please try again in a minute")
