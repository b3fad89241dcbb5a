"""The paper's classifier series: baseline, +manual, +paraphrases, +tool-assisted.

Each classifier trains on the datasets of its stage and every stage before it, with the equal
total training size option (one initial snippet dropped per adversarial one), so that the
series compares data, not amounts. Once they are trained, each one's threshold is selected by
simulated rejection sampling and the report covers them all.
"""

from modelserve import training_jobs
from modelserve.models import ClassifierVersion, TrainingRun

STAGES = ("baseline", "manual", "paraphrases", "tool-assisted")


def versions(prefix: str) -> list[str]:
    return [f"{prefix}-{stage}" for stage in STAGES]


def start_series(
    *, prefix: str, base_model: str, datasets: dict[str, list[int]], hyperparameters: dict | None = None
) -> list[TrainingRun]:
    """Queue the four training runs; `datasets` maps each stage to the datasets it adds."""
    if missing := [s for s in STAGES if not datasets.get(s)]:
        raise ValueError(f"no dataset for stage(s): {', '.join(missing)}")
    runs, included = [], []
    for stage, version in zip(STAGES, versions(prefix), strict=True):
        included += datasets[stage]
        runs.append(training_jobs.start_training(
            version=version, base_model=base_model, dataset_ids=list(dict.fromkeys(included)), splits=["train"],
            equal_size=True, hyperparameters=hyperparameters,
        ))
    return runs


def series_status(prefix: str) -> dict[str, str]:
    found = dict(ClassifierVersion.objects.filter(version__in=versions(prefix)).values_list("version", "status"))
    return {v: found.get(v, "missing") for v in versions(prefix)}
