"""The paper's report: Table 2, Figure 2 and Figure 3, as plain data (JSON-ready).

Everything is computed from read models and recorded scores with fixed seeds, so the same log
gives the same report; `computed_from` names the log position, the classifiers (with their
checkpoints' manifests) and thresholds, the datasets and the campaigns.
"""

import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from attacks.models import Campaign
from evaluation import selectors, stats, thresholds
from eventlog.store import head_position
from modelserve.models import ClassifierVersion

RESAMPLES = 2000


@dataclass(frozen=True)
class ReportSpec:
    classifiers: list[str]
    comparison_dataset: int | None = None  # quality comparisons (threshold and quality)
    test_dataset: int | None = None  # double-labelled in-distribution test snippets
    campaigns: list[str] = field(default_factory=list)  # tool-assisted campaigns (time, egregiousness, FNR matrix)
    quality_checks: list[str] = field(default_factory=list)  # direct quality check jobs
    seed: int = 0


class ReportError(ValueError):
    pass


def _classifiers(versions: list[str]) -> list[ClassifierVersion]:
    rows = {c.version: c for c in ClassifierVersion.objects.filter(version__in=versions)}
    if missing := [v for v in versions if v not in rows]:
        raise ReportError(f"unknown classifier(s): {', '.join(missing)}")
    if not versions:
        raise ReportError("choose at least one classifier")
    return [rows[v] for v in versions]


def _interval(values: tuple) -> dict:
    """An estimate and its interval; an unbounded end (resamples with no success) is None."""
    estimate, lo, hi = (float(v) if v is not None and np.isfinite(v) else None for v in values)
    return {"estimate": estimate, "lower": lo, "upper": hi}


def build(spec: ReportSpec) -> dict:
    classifiers = _classifiers(spec.classifiers)
    campaigns = list(Campaign.objects.filter(pk__in=spec.campaigns))
    if len(campaigns) != len(set(spec.campaigns)):
        raise ReportError("unknown campaign(s)")
    threshold = {c.version: c.threshold for c in classifiers}
    labels = selectors.labelled_test_snippets(spec.test_dataset) if spec.test_dataset is not None else {}
    attacks = selectors.successful_attacks(campaigns) if campaigns else {}
    table = [_table_row(c, threshold[c.version], spec, labels) for c in classifiers]
    figure2 = _figure2(classifiers, campaigns, attacks, spec.seed)
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
            "campaigns": [{"id": str(c.pk), "name": c.name} for c in campaigns],
            "seed": spec.seed,
            "resamples": RESAMPLES,
        },
        "table2": table,
        "figure2": figure2,
        "figure3": figure3,
        "quality_checks": [_quality_check(job_id, spec.seed) for job_id in spec.quality_checks],
    }
    return report


def _table_row(classifier: ClassifierVersion, threshold: float | None, spec: ReportSpec,
               labels: dict) -> dict:
    row = {"classifier": classifier.version, "threshold": threshold}
    if spec.test_dataset is not None and threshold is not None:
        by_id = selectors.scores(classifier.version, labels)
        ids = sorted(labels)
        counts = stats.classification_counts(np.array([labels[i] for i in ids], dtype=bool),
                                             np.array([by_id[i] for i in ids]), threshold)
        row.update(counts)
        row["fn_of_positives"] = f"{counts['fn']}/{counts['positives']}"
    if spec.comparison_dataset is not None and threshold is not None:
        selection = thresholds.select_threshold(classifier.version, spec.comparison_dataset, seed=spec.seed,
                                                thresholds=np.array([threshold]))
        row["quality"] = _interval(selection.at(threshold))
        row["judgements"] = selection.judgements
    return row


def _quality_check(job_id: str, seed: int) -> dict:
    """The filtered generator against the unfiltered one, judged directly (50 % = no loss)."""
    check = selectors.quality_check(job_id)
    preference = stats.bootstrap_preference(check.wins, check.groups, resamples=RESAMPLES, seed=seed)
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
        ratings = selectors.ratings(attacks.get(c.version, []))
        rows.append({
            "classifier": c.version,
            "contractor_days": int(len(seconds)),
            "minutes": float(seconds.sum() / 60),
            "successes": int(successes.sum()),
            "minutes_per_success": _interval(minutes),
            "ratings": len(ratings),
            "egregiousness": _interval(stats.bootstrap_mean(np.array(ratings, dtype=float), resamples=RESAMPLES,
                                                            seed=seed)),
        })
    return rows


def _figure3(classifiers: list[ClassifierVersion], threshold: dict, attacks: dict) -> dict:
    """FNR of every classifier (rows) on every tool-assisted dataset, grouped by the classifier
    it targeted (columns); a miss is a confirmed-injurious snippet scored below the threshold."""
    targets = [c.version for c in classifiers if c.version in attacks]
    cells = []
    for c in classifiers:
        row = []
        for target in targets:
            snippet_ids = attacks[target]
            if threshold[c.version] is None:
                row.append(None)
                continue
            by_id = selectors.scores(c.version, snippet_ids)
            misses = sum(by_id[s] < threshold[c.version] for s in snippet_ids)
            mean, lo, hi = stats.beta_interval(misses, len(snippet_ids))
            row.append({"misses": int(misses), "total": len(snippet_ids), "fnr": misses / len(snippet_ids),
                        "posterior_mean": mean, "lower": lo, "upper": hi,
                        "by_construction": c.version == target})
        cells.append(row)
    return {"classifiers": [c.version for c in classifiers], "datasets_by_target": targets, "cells": cells}


def cached(spec: ReportSpec) -> dict:
    """The report for this spec at the current log position (computed once per position)."""
    from django.core.cache import cache

    def key(position: int) -> str:
        return "evaluation.report:" + hashlib.sha256(json.dumps([asdict(spec), position]).encode()).hexdigest()

    before = head_position()
    report = cache.get(key(before))
    if report is None:
        report = build(spec)
        # Also under the position the report itself reached (the scores it recorded): the page's
        # figures and downloads, asked for next, find it there instead of computing it again.
        cache.set_many({key(before): report, key(report["computed_from"]["log_position"]): report}, timeout=3600)
    return report


def tables(report: dict) -> dict[str, list[list]]:
    """The data behind the table and each figure, as rows (for CSV downloads and the command)."""
    table2 = [["classifier", "threshold", "false negatives", "FNR", "quality", "quality lower", "quality upper", "FPR"]]
    for r in report["table2"]:
        q = r.get("quality", {})
        table2.append([r["classifier"], r["threshold"], r.get("fn_of_positives"), r.get("fnr"), q.get("estimate"),
                       q.get("lower"), q.get("upper"), r.get("fpr")])
    figure2 = [["classifier", "contractor-days", "minutes", "successes", "minutes per success", "lower", "upper",
                "ratings", "egregiousness", "lower", "upper"]]
    for r in report["figure2"]:
        t, e = r["minutes_per_success"], r["egregiousness"]
        figure2.append([r["classifier"], r["contractor_days"], r["minutes"], r["successes"], t["estimate"],
                        t["lower"], t["upper"], r["ratings"], e["estimate"], e["lower"], e["upper"]])
    matrix = report["figure3"]
    figure3 = [["classifier", "dataset targeting", "misses", "total", "FNR", "lower", "upper", "by construction"]]
    for version, row in zip(matrix["classifiers"], matrix["cells"], strict=True):
        for target, cell in zip(matrix["datasets_by_target"], row, strict=True):
            if cell:
                figure3.append([version, target, cell["misses"], cell["total"], cell["fnr"], cell["lower"],
                                cell["upper"], cell["by_construction"]])
    checks = [["classifier", "threshold", "prompts", "decided", "filter failures", "pending", "preference", "lower",
               "upper"]]
    for r in report["quality_checks"]:
        p = r["preference"]
        checks.append([r["classifier"], r["threshold"], r["prompts"], r["decided"], r["filter_failures"],
                       r["pending"], p["estimate"], p["lower"], p["upper"]])
    return {"table2": table2, "figure2": figure2, "figure3": figure3, "quality_checks": checks}
