from django.core.management.base import BaseCommand, CommandError

from modelserve import registry
from modelserve.errors import ModelserveError


class Command(BaseCommand):
    help = ("Register a local Hugging Face checkpoint folder with a trained single-score head as a "
            "classifier version (and promote it).")

    def add_arguments(self, parser):
        parser.add_argument("version")
        parser.add_argument("folder", help="a folder saved after fine-tuning (a training run's checkpoint)")
        parser.add_argument("--base-model", default="", help="what it was fine-tuned from (default: the folder)")
        parser.add_argument("--promote", action="store_true", help="make it the default classifier")

    def handle(self, *, version, folder, base_model, promote, **options):
        try:
            registry.register_checkpoint(version=version, checkpoint_dir=folder, base_model=base_model or folder)
            if promote:
                registry.promote(version=version)
        except ModelserveError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"registered {version}{' and promoted it' if promote else ''}")
