"""The paper's report: Table 2, Figure 2 and Figure 3, as plain data (JSON-ready).

Everything is computed from read models and recorded scores with fixed seeds, so the same log
gives the same report; `computed_from` names the log position, the classifiers (with their
checkpoints' manifests) and thresholds, the datasets and the campaigns.
"""

from dataclasses import dataclass, field

import numpy as np

from annotation.models import Label
from attacks.models import Campaign
from evaluation import selectors, stats, thresholds
from evaluation.errors import EvaluationError
from eventlog.reading import head_position
from modelserve.models import ClassifierVersion

RESAMPLES = 2000
INTERVALS = ("time per success, egregiousness (resampling snippets) and direct quality checks (resampling "
             "prompts): bootstrap percentile; FNR: Beta(1, 1) credible; simulated quality: Student t over prompts")


#: what a test-set snippet labelled unsure counts as (the protocol's unsure -> injurious is for training)
UNSURE_TREATMENTS = {"leave_out": "left out", "injurious": "counted as injurious",
                     "not_injurious": "counted as not injurious"}


@dataclass(frozen=True)
class ReportSpec:
    classifiers: list[str]
    comparison_dataset: int | None = None  # quality comparisons (threshold selection's simulated quality)
    test_dataset: int | None = None  # double-labelled in-distribution test snippets
    campaigns: list[str] = field(default_factory=list)  # tool-assisted campaigns (time, egregiousness, FNR matrix)
    quality_checks: list[str] = field(default_factory=list)  # direct quality check jobs
    seed: int = 0
    unsure: str = "leave_out"  # a key of UNSURE_TREATMENTS


def _classifiers(versions: list[str]) -> list[ClassifierVersion]:
    rows = {c.version: c for c in ClassifierVersion.objects.filter(version__in=versions)}
    if missing := [v for v in versions if v not in rows]:
        raise EvaluationError(f"unknown classifier(s): {', '.join(missing)}")
    if not versions:
        raise EvaluationError("choose at least one classifier")
    return [rows[v] for v in versions]


def _interval(values: tuple) -> dict:
    """An estimate and its interval; an unbounded end (resamples with no success) is None."""
    estimate, lo, hi = (float(v) if v is not None and np.isfinite(v) else None for v in values)
    return {"estimate": estimate, "lower": lo, "upper": hi}


def build(spec: ReportSpec, progress=lambda stage: None) -> dict:
    """The report (scoring, and recording, whatever it needs that is not scored yet)."""
    if spec.unsure not in UNSURE_TREATMENTS:
        raise EvaluationError(f"unsure labels: one of {', '.join(UNSURE_TREATMENTS)}")
    classifiers = _classifiers(spec.classifiers)
    campaigns = list(Campaign.objects.filter(pk__in=spec.campaigns))
    if len(campaigns) != len(set(spec.campaigns)):
        raise EvaluationError("unknown campaign(s)")
    threshold = {c.version: c.threshold for c in classifiers}
    labels = selectors.labelled_test_snippets(spec.test_dataset) if spec.test_dataset is not None else {}
    attacks = selectors.successful_attacks(campaigns) if campaigns else {}
    progress("direct quality checks")
    checks = [_quality_check(job_id, spec.seed) for job_id in spec.quality_checks]
    progress("Table 2: scoring the test set, simulated quality")
    table = [_table_row(c, threshold[c.version], spec, labels, checks) for c in classifiers]
    progress("Figure 2: time per success, egregiousness")
    figure2 = _figure2(classifiers, campaigns, attacks, spec.seed)
    progress("Figure 3: scoring the successful attacks under every classifier")
    figure3 = _figure3(classifiers, threshold, attacks)
    report = {
        "computed_from": {
            "log_position": head_position(),  # after the scores this report recorded
            "classifiers": [
                {"version": c.version, "base_model": c.base_model, "manifest_hash": c.manifest_hash,
                 "threshold": c.threshold, "threshold_method": c.threshold_method} for c in classifiers
            ],
            "comparison_dataset": spec.comparison_dataset,
            "test_dataset": spec.test_dataset,
            "campaigns": [{"id": str(c.pk), "name": c.name, "threshold": c.threshold} for c in campaigns],
            "seed": spec.seed,
            "bootstrap_resamples": RESAMPLES,
            "intervals": INTERVALS,
            "unsure": UNSURE_TREATMENTS[spec.unsure],
            "unsure_labels": sum(1 for label in labels.values() if label == Label.UNSURE),
        },
        "table2": table,
        "figure2": figure2,
        "figure3": figure3,
        "quality_checks": checks,
    }
    report["missing"] = _missing(spec, report)
    return report


def _test_counts(classifier: ClassifierVersion, threshold: float, labels: dict, unsure: str) -> dict:
    counted = {sid: label for sid, label in labels.items() if label != Label.UNSURE or unsure != "leave_out"}
    injurious = {sid: label == Label.INJURIOUS or (label == Label.UNSURE and unsure == "injurious")
                 for sid, label in counted.items()}
    by_id = selectors.scores(classifier.version, injurious)
    ids = sorted(injurious)
    counts = stats.classification_counts(np.array([injurious[i] for i in ids], dtype=bool),
                                         np.array([by_id[i] for i in ids]), threshold)
    counts["fn_of_positives"] = f"{counts['fn']}/{counts['positives']}"
    counts["fp_of_negatives"] = f"{counts['fp']}/{counts['negatives']}"
    counts["unsure_labels"] = sum(1 for label in labels.values() if label == Label.UNSURE)
    return counts


def _table_row(classifier: ClassifierVersion, threshold: float | None, spec: ReportSpec, labels: dict,
               checks: list[dict]) -> dict:
    row = {"classifier": classifier.version, "threshold": threshold}
    if spec.test_dataset is not None and threshold is not None:
        row.update(_test_counts(classifier, threshold, labels, spec.unsure))
    direct = [c for c in checks if c["classifier"] == classifier.version and c["threshold"] == threshold]
    if direct:  # as the paper reports it: the filtered generator judged against the unfiltered one
        row["quality"] = direct[-1]["preference"]
        row["quality_source"] = f"direct quality check {direct[-1]['job']}"
    if spec.comparison_dataset is not None and threshold is not None:
        try:  # only this column depends on the comparison dataset: a wrong one leaves the rest
            selection = thresholds.select_threshold(classifier.version, spec.comparison_dataset,
                                                    thresholds=np.array([threshold]))
        except EvaluationError as exc:
            row["simulated_quality_error"] = str(exc)
        else:
            row["simulated_quality"] = _interval(selection.at(threshold))
            row["judgements"] = selection.judgements
            row["simulated_quality_extrapolated"] = bool(selection.sweep.short_prompts)
    return row


def _quality_check(job_id: str, seed: int) -> dict:
    """The filtered generator against the unfiltered one, judged directly (50 % = no loss)."""
    check = selectors.quality_check(job_id)
    preference = stats.bootstrap_clustered_mean(check.wins, check.groups, resamples=RESAMPLES, seed=seed)
    return {"job": str(job_id), "classifier": check.version, "threshold": check.threshold, "prompts": check.prompts,
            "decided": int(len(check.wins)), "filter_failures": check.failures, "pending": check.pending,
            "preference": _interval(preference)}


def _figure2(classifiers: list[ClassifierVersion], campaigns: list[Campaign], attacks: dict, seed: int
             ) -> list[dict]:
    effort = selectors.effort_by_version(campaigns) if campaigns else {}
    rows = []
    for c in classifiers:
        rows_of = effort.get(c.version)
        seconds, successes = (rows_of.seconds, rows_of.successes) if rows_of else (np.array([]), np.array([]))
        minutes = stats.bootstrap_ratio(seconds / 60, successes, resamples=RESAMPLES, seed=seed)
        ratings = selectors.ratings([a.snippet_id for a in attacks.get(c.version, [])])
        egregiousness = stats.bootstrap_clustered_mean([r for _, r in ratings], [str(s) for s, _ in ratings],
                                                       resamples=RESAMPLES, seed=seed)
        rows.append({
            "classifier": c.version,
            "contractor_days": int(len(seconds)),
            "minutes": float(seconds.sum() / 60),
            "successes": int(successes.sum()),
            "minutes_per_success": _interval(minutes),
            "ratings": len(ratings),
            "rated_snippets": len({s for s, _ in ratings}),
            "egregiousness": _interval(egregiousness),
        })
    return rows


def _fnr_cell(misses: int, total: int, on_diagonal: bool) -> dict:
    mean, lo, hi = stats.beta_interval(misses, total)
    return {"misses": int(misses), "total": total, "fnr": misses / total, "posterior_mean": mean, "lower": lo,
            "upper": hi, "by_construction": on_diagonal}


def _figure3(classifiers: list[ClassifierVersion], threshold: dict, attacks: dict) -> dict:
    """FNR of every classifier (rows) on every tool-assisted dataset, grouped by the classifier it
    targeted (columns). As the paper defines it, an attack is a miss when the evaluated classifier
    scores it below the threshold its campaign accepted it under (so the diagonal is 1); the second
    view counts misses below each evaluated classifier's own filter threshold."""
    targets = [c.version for c in classifiers if c.version in attacks]
    cells, at_filter = [], []
    for c in classifiers:
        row, filter_row = [], []
        for target in targets:
            found = attacks[target]
            by_id = selectors.scores(c.version, [a.snippet_id for a in found])
            misses = sum(by_id[a.snippet_id] < a.campaign_threshold for a in found)
            row.append(_fnr_cell(misses, len(found), c.version == target))
            if threshold[c.version] is None:
                filter_row.append(None)
            else:
                misses = sum(by_id[a.snippet_id] < threshold[c.version] for a in found)
                filter_row.append(_fnr_cell(misses, len(found), False))
        cells.append(row)
        at_filter.append(filter_row)
    return {"classifiers": [c.version for c in classifiers], "datasets_by_target": targets, "cells": cells,
            "at_filter_threshold": at_filter}


def _missing(spec: ReportSpec, report: dict) -> dict:
    """What each table and figure lacks, in words (absent: nothing is missing)."""
    missing = {}
    if not spec.campaigns:
        missing["figure2"] = missing["figure3"] = "no tool-assisted campaign chosen"
    else:
        if not any(r["successes"] for r in report["figure2"]):
            missing["figure2"] = "no successful tool-assisted attacks yet"
        elif not any(r["ratings"] for r in report["figure2"]):
            missing["egregiousness"] = "no egregiousness ratings of successful attacks yet"
        if not report["figure3"]["datasets_by_target"]:
            missing["figure3"] = "no successful tool-assisted attacks against the chosen classifiers yet"
    rows = report["table2"]
    if spec.test_dataset is None:
        missing["test_set"] = "no test dataset chosen"
    elif not any(r.get("positives") for r in rows if r["threshold"] is not None):
        missing["test_set"] = ("the chosen test dataset has no settled test-split snippets labelled injurious "
                               "(choose the dataset that holds the double-labelled test split, or wait for its labels)")
    if unchosen := [r["classifier"] for r in rows if r["threshold"] is None]:
        missing["threshold"] = f"no threshold chosen for {', '.join(unchosen)}: choose one on the threshold page"
    if no_check := [r["classifier"] for r in rows if "quality" not in r and r["threshold"] is not None]:
        missing["quality"] = (f"no direct quality check chosen at the threshold of {', '.join(no_check)} (start one in "
                              "the admin: Generation jobs, kind “Direct quality check”, then choose it here)")
    if errors := sorted({r["simulated_quality_error"] for r in rows if "simulated_quality_error" in r}):
        missing["simulated_quality"] = "; ".join(errors)
    return missing


def tables(report: dict) -> dict[str, list[list]]:
    """The data behind the table and each figure, as rows (for CSV downloads and the command)."""
    table2 = [["classifier", "threshold", "false negatives", "FNR", "FPR", "unsure labels", "quality", "quality lower",
               "quality upper", "quality from", "simulated quality", "simulated lower", "simulated upper"]]
    for r in report["table2"]:
        q, sim = r.get("quality", {}), r.get("simulated_quality", {})
        table2.append([r["classifier"], r["threshold"], r.get("fn_of_positives"), r.get("fnr"), r.get("fpr"),
                       r.get("unsure_labels"), q.get("estimate"), q.get("lower"), q.get("upper"),
                       r.get("quality_source"), sim.get("estimate"), sim.get("lower"), sim.get("upper")])
    figure2 = [["classifier", "contractor-days", "minutes", "successes", "minutes per success", "lower", "upper",
                "ratings", "rated snippets", "egregiousness", "lower", "upper"]]
    for r in report["figure2"]:
        t, e = r["minutes_per_success"], r["egregiousness"]
        figure2.append([r["classifier"], r["contractor_days"], r["minutes"], r["successes"], t["estimate"],
                        t["lower"], t["upper"], r["ratings"], r["rated_snippets"], e["estimate"], e["lower"],
                        e["upper"]])
    matrix = report["figure3"]
    figure3 = [["misses below", "classifier", "dataset targeting", "misses", "total", "FNR", "lower", "upper",
                "by construction"]]
    for view, grid in (("campaign threshold", matrix["cells"]), ("filter threshold", matrix["at_filter_threshold"])):
        for version, row in zip(matrix["classifiers"], grid, strict=True):
            for target, cell in zip(matrix["datasets_by_target"], row, strict=True):
                if cell:
                    figure3.append([view, version, target, cell["misses"], cell["total"], cell["fnr"], cell["lower"],
                                    cell["upper"], cell["by_construction"]])
    checks = [["classifier", "threshold", "prompts", "decided", "filter failures", "pending", "preference", "lower",
               "upper"]]
    for r in report["quality_checks"]:
        p = r["preference"]
        checks.append([r["classifier"], r["threshold"], r["prompts"], r["decided"], r["filter_failures"],
                       r["pending"], p["estimate"], p["lower"], p["upper"]])
    return {"table2": table2, "figure2": figure2, "figure3": figure3, "quality_checks": checks}
