"""Scores of stored snippets under a classifier, recorded as events and kept in a read model.

Evaluations score thousands of snippets under several classifiers; each score is computed
once, recorded (`modelserve.scores_recorded`), and read back from then on, so a report can be
recomputed from the log alone and a second evaluation costs no inference.
"""

from uuid import UUID

from eventlog.store import NewEvent, append
from modelserve.events import ScoresRecorded, scores_stream
from modelserve.interface import SnippetText, inference
from modelserve.models import RecordedScore

CHUNK = 2000  # scores per event


def scores_for(version: str, snippets: dict[UUID, tuple[str, str]]) -> dict[UUID, float]:
    """The score of each snippet (id -> (prompt, completion)), computing only the missing ones."""
    known = dict(
        RecordedScore.objects.filter(version=version, snippet_id__in=list(snippets)).values_list("snippet_id", "score")
    )
    missing = [s for s in snippets if s not in known]
    for start in range(0, len(missing), CHUNK):
        chunk = missing[start : start + CHUNK]
        scores = inference().score(version, [SnippetText(*snippets[s]) for s in chunk])
        append([NewEvent(scores_stream(version), ScoresRecorded(version=version, scores=list(zip(chunk, scores,
                                                                                                  strict=True))))])
        known.update(zip(chunk, scores, strict=True))
    return known
