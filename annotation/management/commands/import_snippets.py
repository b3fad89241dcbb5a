from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation.importing import read_snippet_file
from annotation.models import Dataset, Source, Split
from annotation.services import import_snippets


class Command(BaseCommand):
    help = "Import snippets from a JSONL or CSV file into a dataset (all or nothing)."

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="dataset name")
        parser.add_argument("path")
        parser.add_argument("--source", choices=Source.values, default=Source.INITIAL)
        parser.add_argument("--split", choices=Split.values, default=Split.TRAIN)

    def handle(self, *, dataset, path, source, split, **options):
        try:
            target = Dataset.objects.get(name=dataset)
        except Dataset.DoesNotExist:
            raise CommandError(f"no dataset named {dataset!r}") from None
        file = Path(path)
        if not file.is_file():
            raise CommandError(f"no such file: {path}")
        rows, errors = read_snippet_file(
            file.read_bytes(), filename=file.name, default_source=source, default_split=split
        )
        if errors:
            raise CommandError("nothing imported:\n" + "\n".join(errors))
        result = import_snippets(dataset=target, rows=rows, filename=file.name)
        skipped = f", {len(result.duplicate_lines)} duplicates skipped" if result.duplicate_lines else ""
        self.stdout.write(f"imported {result.added} snippets into {target}{skipped}")
