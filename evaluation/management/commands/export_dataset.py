"""Write a dataset export to a file (JSONL or CSV, by the file's extension).

    manage.py export_dataset DATASET OUT.jsonl [--source S ...] [--split S ...] [--label L ...]
        [--campaign ID] [--scores VERSION ...] [--since DATE] [--until DATE]

Writes OUT and OUT.meta.json (the export's id, the event position it reflects, its filters).
"""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Dataset
from evaluation import exports


class Command(BaseCommand):
    help = "Export a dataset's snippets, labels, attack metadata and scores to JSONL or CSV."

    def add_arguments(self, parser):
        parser.add_argument("dataset", type=int)
        parser.add_argument("out")
        for name in ("source", "split", "label", "scores"):
            parser.add_argument(f"--{name}", nargs="+", default=[])
        parser.add_argument("--campaign")
        parser.add_argument("--since")
        parser.add_argument("--until")

    def handle(self, *args, **options):
        if not Dataset.objects.filter(pk=options["dataset"]).exists():
            raise CommandError(f"no dataset {options['dataset']}")
        out = Path(options["out"])
        fmt = "csv" if out.suffix.lower() == ".csv" else "jsonl"
        try:
            spec = exports.ExportSpec(
                dataset_id=options["dataset"], sources=options["source"], splits=options["split"],
                labels=options["label"], scores=options["scores"], campaign=options["campaign"] or None,
                since=exports.parse_when(options["since"]), until=exports.parse_when(options["until"]),
            )
            export = exports.Export(spec, fmt)
        except exports.ExportError as exc:
            raise CommandError(str(exc)) from None
        try:
            with out.open("w", encoding="utf-8", newline="") as handle:
                for piece in export:
                    handle.write(piece)
        finally:
            export.close()
        meta = {"export_id": str(spec.export_id), "position": export.position, "format": fmt,
                "dataset": spec.dataset_id, "filters": {k: options[k] for k in
                                                        ("source", "split", "label", "scores", "campaign",
                                                         "since", "until")}}
        Path(f"{out}.meta.json").write_text(json.dumps(meta, indent=2))
        self.stdout.write(f"{out} written: export {spec.export_id}, event position {export.position}")

