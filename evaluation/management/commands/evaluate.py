"""Print the paper's tables, or select a classifier's threshold.

    manage.py evaluate report --classifiers base plus-manual --comparison-dataset 3 --test-dataset 4 \\
        --campaign 0190...  [--json]
    manage.py evaluate select-threshold base --comparison-dataset 3 [--lower-bound 0.48] [--apply]
    manage.py evaluate series --prefix v2 --base-model DIR --initial 1 --manual 2 --paraphrases 3 \
        --tool-assisted 4 --comparison-dataset 5 --test-dataset 6 [--campaign ...] [--wait]
"""

import json
import time

from django.core.management.base import BaseCommand, CommandError

from evaluation import report, series, thresholds
from evaluation.errors import EvaluationError


class Command(BaseCommand):
    help = "Print the evaluation report (Table 2, Figures 2 and 3 as tables) or select a threshold."

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="command", required=True)
        build = commands.add_parser("report")
        build.add_argument("--classifiers", nargs="+", required=True)
        build.add_argument("--comparison-dataset", type=int)
        build.add_argument("--test-dataset", type=int)
        build.add_argument("--campaign", action="append", default=[], dest="campaigns")
        build.add_argument("--quality-check", action="append", default=[], dest="quality_checks",
                           help="a direct quality check job")
        build.add_argument("--seed", type=int, default=0)
        build.add_argument("--unsure", choices=sorted(report.UNSURE_TREATMENTS), default="leave_out",
                           help="what a test-set snippet labelled unsure counts as (default: left out)")
        build.add_argument("--json", action="store_true", help="the whole report as JSON")
        select = commands.add_parser("select-threshold")
        select.add_argument("classifier")
        select.add_argument("--comparison-dataset", type=int, required=True)
        select.add_argument("--lower-bound", type=float, default=thresholds.LOWER_BOUND)
        select.add_argument("--allow-extrapolation", action="store_true",
                            help="choose even from prompts with fewer than 101 scored completions")
        select.add_argument("--level", type=float, default=thresholds.LEVEL)
        select.add_argument("--apply", action="store_true", help="make it the filtered generator's threshold")
        train = commands.add_parser("series", help="train the four classifiers, select thresholds, report")
        train.add_argument("--prefix", required=True, help="versions are PREFIX-baseline, PREFIX-manual, ...")
        train.add_argument("--base-model", required=True)
        for stage in series.STAGES:
            train.add_argument(f"--{stage}", type=int, nargs="+", required=True, dest=stage.replace("-", "_"))
        train.add_argument("--comparison-dataset", type=int, required=True)
        train.add_argument("--test-dataset", type=int)
        train.add_argument("--campaign", action="append", default=[], dest="campaigns")
        train.add_argument("--epochs", type=int, default=1)
        train.add_argument("--wait", action="store_true", help="wait for the training runs (django-q2 workers)")

    def handle(self, *args, **options):
        if options["command"] == "select-threshold":
            return self._select(options)
        if options["command"] == "series":
            return self._series(options)
        spec = report.ReportSpec(classifiers=options["classifiers"], comparison_dataset=options["comparison_dataset"],
                                 test_dataset=options["test_dataset"], campaigns=options["campaigns"],
                                 quality_checks=options.get("quality_checks", []), seed=options["seed"],
                                 unsure=options.get("unsure", "leave_out"))
        try:
            built = report.build(spec)
        except EvaluationError as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(json.dumps(built, indent=2, default=str))
            return
        self.stdout.write(f"Computed from log position {built['computed_from']['log_position']}, "
                          f"seed {spec.seed}")
        for name, rows in report.tables(built).items():
            self.stdout.write(f"\n{name}")
            for row in rows:
                self.stdout.write("  " + " | ".join(_cell(v) for v in row))

    def _select(self, options):
        try:
            selection = thresholds.select_threshold(options["classifier"], options["comparison_dataset"],
                                                    lower_bound=options["lower_bound"], level=options["level"],
                                                    allow_extrapolation=options.get("allow_extrapolation", False))
        except EvaluationError as exc:
            raise CommandError(str(exc)) from None
        if selection.threshold is None:
            reason = selection.short_prompts_note + " Give --allow-extrapolation to choose anyway." if (
                selection.sweep.short_prompts) else "no candidate threshold keeps the lower bound above the limit"
            raise CommandError(reason)
        estimate, lower, upper = selection.at(selection.threshold)
        self.stdout.write(f"{selection.version}: threshold {selection.threshold:.4g}, preference {estimate:.3f} "
                          f"[{lower:.3f}, {upper:.3f}] ({selection.judgements} judgements)")
        if note := selection.short_prompts_note:
            self.stdout.write(note)
        if options["apply"]:
            thresholds.apply(selection)
            self.stdout.write("applied: the filtered generator uses it")


    def _series(self, options):
        names = series.versions(options["prefix"])
        if all(status == "missing" for status in series.series_status(options["prefix"]).values()):
            datasets = {stage: options[stage.replace("-", "_")] for stage in series.STAGES}
            series.start_series(prefix=options["prefix"], base_model=options["base_model"], datasets=datasets,
                                hyperparameters={"epochs": options["epochs"]})
            self.stdout.write(f"training {', '.join(names)}")
        while options["wait"] and "training" in series.series_status(options["prefix"]).values():
            time.sleep(10)
        status = series.series_status(options["prefix"])
        if any(s != "ready" for s in status.values()):
            self.stdout.write("not all ready yet: " + ", ".join(f"{v} {s}" for v, s in status.items()))
            return
        for version in names:
            self._select({**options, "classifier": version, "apply": True, "lower_bound": thresholds.LOWER_BOUND,
                          "level": thresholds.LEVEL})
        self.handle(command="report", classifiers=names, comparison_dataset=options["comparison_dataset"],
                    test_dataset=options["test_dataset"], campaigns=options["campaigns"], seed=0, json=False)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)
