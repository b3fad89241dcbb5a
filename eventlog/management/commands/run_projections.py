import signal
import time

from django.core.management.base import BaseCommand

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
            applied = projections.run_all(names or None)
            for name, count in applied.items():
                if count:
                    self.stdout.write(f"{name}: applied {count} events")
            if not follow or stopping:
                return
            if not any(applied.values()):
                time.sleep(interval)
