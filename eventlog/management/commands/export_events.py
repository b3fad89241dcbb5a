"""Write the event log after a position to a JSONL file (one event a line), page by page.

    manage.py export_events OUT.jsonl [--after N] [--types a,b]

Prints the position to continue from next time.
"""

import json

from django.core.management.base import BaseCommand

from eventlog import feed


class Command(BaseCommand):
    help = "Write the events after a position to a JSONL file."

    def add_arguments(self, parser):
        parser.add_argument("out")
        parser.add_argument("--after", type=int, default=0)
        parser.add_argument("--types", default="", help="comma-separated event types (default: all)")

    def handle(self, *args, out, after, types, **options):
        wanted = [t for t in types.split(",") if t]
        written = 0
        with open(out, "w", encoding="utf-8") as handle:
            while True:
                found = feed.page(after=after, types=wanted, limit=feed.MAX_PAGE)
                for event in found.events:
                    handle.write(json.dumps(feed.as_json(event), ensure_ascii=False) + "\n")
                written += len(found.events)
                after = found.next_after
                if not found.has_more:
                    break
        self.stdout.write(f"{written} events written; continue with --after {after}")
