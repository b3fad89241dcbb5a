from django.conf import settings
from django.core.management.commands import flush
from django.db import connections

from eventlog import guards


class Command(flush.Command):
    """Django's flush, which the event log's guards refuse unless EVENTLOG_ALLOW_FLUSH is set.

    Only the test settings set it: TransactionTestCase empties the database between tests.
    """

    def handle(self, **options):
        if not settings.EVENTLOG_ALLOW_FLUSH:
            return super().handle(**options)
        with guards.immutability_suspended(connections[options["database"]]):
            return super().handle(**options)
