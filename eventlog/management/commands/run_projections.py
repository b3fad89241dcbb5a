import signal
import time

from django.core.management.base import BaseCommand
from django.db import InterfaceError, OperationalError, connection

from eventlog import projections


class Command(BaseCommand):
    help = "Advance projections to the head of the event log (once, or continuously with --follow)."

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", help="projections to run (default: all)")
        parser.add_argument("--follow", action="store_true", help="keep polling for new events")
        parser.add_argument("--interval", type=float, default=0.5, help="seconds between polls")

    def handle(self, *, names, follow, interval, **options):
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        while True:
            try:
                applied = projections.run_all(names or None)
            except (OperationalError, InterfaceError) as exc:
                if not follow:
                    raise
                # The database went away (a restart, a failover): a runner that exits here
                # leaves the asynchronous read models behind for good. Wait and go on; what
                # was applied is in the checkpoints, so nothing is applied twice.
                self.stderr.write(f"database unavailable, retrying: {str(exc).strip()[:200]}")
                connection.close()
                if stopping:
                    return
                time.sleep(max(interval, 1.0))
                continue
            for name, count in applied.items():
                if count:
                    self.stdout.write(f"{name}: applied {count} events")
            if not follow or stopping:
                return
            if not any(applied.values()):
                time.sleep(interval)
