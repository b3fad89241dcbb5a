from django.core.management.base import BaseCommand, CommandError

from eventlog import projections


class Command(BaseCommand):
    help = "Empty projections' read models and replay the event log from position zero."

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", help="projections to rebuild (default: all)")

    def handle(self, *, names, **options):
        try:
            selected = [projections.get(n) for n in names] if names else projections.all_projections()
        except KeyError as exc:
            raise CommandError(exc.args[0]) from None
        for projection in selected:
            count = projections.rebuild(projection)
            self.stdout.write(f"{projection.name}: rebuilt from {count} events")
