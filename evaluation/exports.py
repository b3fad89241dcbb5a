"""Dataset exports: snippets with their labels, attack metadata and scores, streamed.

Rows are read in keyset chunks (`id > last ORDER BY id LIMIT n`: safe behind PgBouncer, and a
client resumes an interrupted export from the last id it has), so memory stays constant
whatever the size. Labeller and author ids are pseudonymised per export (an HMAC of the
export's id), stable within an export and across its resumptions, unlinkable across exports.

On PostgreSQL an export outside a transaction reads one REPEATABLE READ snapshot, and
`position` is the event position the read models in it reflect (the lowest checkpoint of the
projections read): the export can be reproduced by replaying the log to that position.
"""

import csv
import hashlib
import hmac
import io
import json
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.utils.dateparse import parse_datetime
from uuid_utils.compat import uuid7

from annotation.models import Assignment, Label, Snippet, Source, Split, TaskKind, WorkItem
from attacks.models import Campaign, Submission
from eventlog import durability
from eventlog.projections import reflected_position
from modelserve.models import RecordedScore

CHUNK = 2000
LABELS = [*Label.values, "none"]  # "none": not settled (yet)
PROJECTIONS = ("annotation.work", "attacks.work", "modelserve.scores")


class ExportError(ValueError):
    pass


@dataclass(frozen=True)
class ExportSpec:
    dataset_id: int
    sources: list[str] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    since: datetime | None = None  # when the snippet was added
    until: datetime | None = None
    campaign: UUID | None = None
    scores: list[str] = field(default_factory=list)  # classifier versions whose recorded scores to include
    export_id: UUID = field(default_factory=uuid7)
    after: UUID | None = None  # resume after this snippet id

    def check(self) -> None:
        for name, values, allowed in (("source", self.sources, Source.values), ("split", self.splits, Split.values),
                                      ("label", self.labels, LABELS)):
            if bad := [v for v in values if v not in allowed]:
                raise ExportError(f"unknown {name}(s): {', '.join(bad)}; one of {', '.join(allowed)}")


def parse_when(raw: str | None) -> datetime | None:
    """An ISO date (midnight UTC) or date-time; ExportError otherwise."""
    if not raw:
        return None
    parsed = parse_datetime(raw if "T" in raw else f"{raw}T00:00:00+00:00")
    if parsed is None:
        raise ExportError(f"not an ISO date or date-time: {raw!r}")
    return parsed


@lru_cache(maxsize=10_000)
def pseudonym(export_id: UUID, user_id: int | None) -> str | None:
    if user_id is None:
        return None
    digest = hmac.new(settings.SECRET_KEY.encode(), f"{export_id}:{user_id}".encode(), hashlib.sha256)
    return "p" + digest.hexdigest()[:12]


@contextmanager
def snapshot():
    """One consistent view of the read models for the whole export (PostgreSQL, when the export
    is not already inside a transaction); elsewhere each chunk reads the latest state."""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield
    else:
        yield


def position() -> int:
    """The event position the read models reflect: every event up to it is applied."""
    return reflected_position(PROJECTIONS)


def _snippets(spec: ExportSpec):
    rows = Snippet.objects.filter(dataset_id=spec.dataset_id)
    if spec.sources:
        rows = rows.filter(source__in=spec.sources)
    if spec.splits:
        rows = rows.filter(split__in=spec.splits)
    if spec.since:
        rows = rows.filter(added_at__gte=spec.since)
    if spec.until:
        rows = rows.filter(added_at__lt=spec.until)
    if spec.campaign:
        rows = rows.filter(pk__in=Submission.objects.filter(campaign_id=spec.campaign).values("snippet_id"))
    if spec.labels:
        settled = WorkItem.objects.filter(kind=TaskKind.LABEL, dataset_id=spec.dataset_id,
                                          status=WorkItem.Status.SETTLED)
        chosen = [label for label in spec.labels if label != "none"]
        labelled = rows.filter(pk__in=settled.filter(final_label__in=chosen).values("subject_id"))
        rows = labelled | rows.exclude(pk__in=settled.values("subject_id")) if "none" in spec.labels else labelled
    return rows.order_by("id").values("id", "dataset_id", "prompt", "completion", "source", "split", "author_id",
                                      "added_at")


def rows(spec: ExportSpec) -> Iterator[dict]:
    """The export's rows in id order, CHUNK snippets at a time."""
    if connection.vendor == "postgresql":
        for lines in json_chunks(spec):
            yield from map(json.loads, lines)
    else:
        yield from rows_by_queries(spec)


def rows_by_queries(spec: ExportSpec) -> Iterator[dict]:
    """The rows assembled in Python from a few queries a chunk (any database)."""
    spec.check()
    after = spec.after
    campaigns = {c.pk: c.name for c in Campaign.objects.all()}
    while True:
        chunk = _snippets(spec)
        if after is not None:
            chunk = chunk.filter(id__gt=after)
        chunk = list(chunk[:CHUNK])
        if not chunk:
            return
        yield from _rows(spec, chunk, campaigns)
        after = chunk[-1]["id"]


# PostgreSQL builds each row's JSON itself: one statement a chunk, no per-row Python work.
_CHUNK_SQL = """
WITH chunk AS ({chunk})
SELECT c.id, json_build_object(
    'id', c.id, 'dataset', c.dataset_id, 'prompt', c.prompt, 'completion', c.completion,
    'source', c.source, 'split', c.split,
    'added_at', to_char(c.added_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
    'status', coalesce(w.status, ''), 'label', nullif(w.final_label, ''),
    'labels', coalesce((
        SELECT json_agg(json_build_object('labeller', %s::jsonb ->> a.user_id::text, 'label', a.answer)
                        ORDER BY a.submitted_at, a.task_id)
        FROM annotation_assignment a WHERE a.work_item_id = w.id AND a.state = 'submitted'), '[]'::json),
    'attack', CASE WHEN sub.snippet_id IS NULL THEN NULL ELSE json_build_object(
        'campaign', sub.campaign_id, 'campaign_name', camp.name, 'target', sub.version,
        'author', %s::jsonb ->> sub.user_id::text, 'score', sub.score) END
    {scores}
)::text
FROM chunk c
LEFT JOIN annotation_workitem w ON w.kind = 'label' AND w.subject_id = c.id
LEFT JOIN attacks_submission sub ON sub.snippet_id = c.id
LEFT JOIN attacks_campaign camp ON camp.id = sub.campaign_id
ORDER BY c.id
"""
_SCORE_SQL = "(SELECT r.score FROM modelserve_recordedscore r WHERE r.version = %s AND r.snippet_id = c.id)"


def json_chunks(spec: ExportSpec) -> Iterator[list[str]]:
    """The rows as JSON text, a list a chunk (PostgreSQL)."""
    spec.check()
    labellers = Assignment.objects.filter(work_item__dataset_id=spec.dataset_id).values_list("user_id", flat=True)
    authors = Submission.objects.filter(campaign__dataset_id=spec.dataset_id).values_list("user_id", flat=True)
    people = json.dumps({str(pk): pseudonym(spec.export_id, pk) for pk in {*labellers.distinct(), *authors}})
    scores = ""
    score_params: list = []
    if spec.scores:
        pairs = ", ".join(f"%s, {_SCORE_SQL}" for _ in spec.scores)
        scores = f", 'scores', json_build_object({pairs})"
        score_params = [value for version in spec.scores for value in (version, version)]
    after = spec.after
    while True:
        chunk = _snippets(spec).values("id", "dataset_id", "prompt", "completion", "source", "split", "added_at")
        if after is not None:
            chunk = chunk.filter(id__gt=after)
        chunk_sql, chunk_params = chunk[:CHUNK].query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(_CHUNK_SQL.format(chunk=chunk_sql, scores=scores),
                           [*chunk_params, people, people, *score_params])
            found = cursor.fetchall()
        if not found:
            return
        yield [text for _, text in found]
        after = found[-1][0]


def _rows(spec: ExportSpec, chunk: list[dict], campaigns: dict) -> Iterator[dict]:
    ids = [row["id"] for row in chunk]
    items = {subject: (status, final) for subject, status, final in WorkItem.objects.filter(
        kind=TaskKind.LABEL, subject_id__in=ids).values_list("subject_id", "status", "final_label")}
    labels: dict[UUID, list[dict]] = defaultdict(list)
    for subject, user_id, answer in Assignment.objects.filter(
        work_item__kind=TaskKind.LABEL, work_item__subject_id__in=ids, state=Assignment.State.SUBMITTED,
    ).order_by("submitted_at", "task_id").values_list("work_item__subject_id", "user_id", "answer"):
        labels[subject].append({"labeller": pseudonym(spec.export_id, user_id), "label": answer})
    attacks = {s.snippet_id: s for s in Submission.objects.filter(snippet_id__in=ids)}
    scores: dict[UUID, dict[str, float]] = defaultdict(dict)
    for version, snippet_id, score in RecordedScore.objects.filter(version__in=spec.scores, snippet_id__in=ids
                                                                    ).values_list("version", "snippet_id", "score"):
        scores[snippet_id][version] = score
    for row in chunk:
        sid = row["id"]
        attack = attacks.get(sid)
        yield {
            "id": str(sid),
            "dataset": row["dataset_id"],
            "prompt": row["prompt"],
            "completion": row["completion"],
            "source": row["source"],
            "split": row["split"],
            "added_at": row["added_at"].isoformat(timespec="microseconds") if row["added_at"] else None,
            "status": items.get(sid, ("", ""))[0],
            "label": items.get(sid, ("", ""))[1] or None,
            "labels": labels.get(sid, []),
            "attack": {
                "campaign": str(attack.campaign_id), "campaign_name": campaigns.get(attack.campaign_id, ""),
                "target": attack.version, "author": pseudonym(spec.export_id, attack.user_id), "score": attack.score,
            } if attack else None,
            **({"scores": {v: scores[sid].get(v) for v in spec.scores}} if spec.scores else {}),
        }


CSV_COLUMNS = ["id", "dataset", "prompt", "completion", "source", "split", "added_at", "status", "label", "labels",
               "attack_campaign", "attack_campaign_name", "attack_target", "attack_author", "attack_score"]


def csv_columns(spec: ExportSpec) -> list[str]:
    return CSV_COLUMNS + [f"score_{v}" for v in spec.scores]


def as_csv_row(row: dict) -> dict:
    attack = row["attack"] or {}
    flat = {k: row[k] for k in CSV_COLUMNS[:9]}
    flat["labels"] = json.dumps(row["labels"])
    flat.update({f"attack_{k}": attack.get(k) for k in ("campaign", "campaign_name", "target", "author", "score")})
    flat.update({f"score_{v}": s for v, s in row.get("scores", {}).items()})
    return flat


class Export:
    """An export being streamed: its id, the position it reflects, and its text in pieces.

    The snapshot is taken when the export is opened, so that `position` is known before the
    first byte; `close()` (called by Django when the response ends, whether or not it was read)
    ends the snapshot's transaction.
    """

    def __init__(self, spec: ExportSpec, fmt: str) -> None:
        if fmt not in ("jsonl", "csv"):
            raise ExportError("the format is jsonl or csv")
        spec.check()
        self.spec, self.format = spec, fmt
        self._stack = ExitStack()
        self._stack.enter_context(snapshot())
        try:
            self.position = position()
            durability.make_durable()  # nothing in the snapshot can be taken back by a crash
        except BaseException:
            self._stack.close()
            raise
        self._pieces = self._csv() if fmt == "csv" else self._jsonl()

    def __iter__(self):
        return self

    def __next__(self) -> str:
        try:
            return next(self._pieces)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._pieces.close()
        self._stack.close()

    def _jsonl(self) -> Iterator[str]:
        if connection.vendor == "postgresql":
            for lines in json_chunks(self.spec):
                yield "\n".join(lines) + "\n"
            return
        batch = []
        for row in rows(self.spec):
            batch.append(json.dumps(row, ensure_ascii=False))
            if len(batch) == 500:
                yield "\n".join(batch) + "\n"
                batch = []
        if batch:
            yield "\n".join(batch) + "\n"

    def _csv(self) -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=csv_columns(self.spec))
        if self.spec.after is None:
            writer.writeheader()
        for row in rows(self.spec):
            writer.writerow(as_csv_row(row))
            if buffer.tell() > 64_000:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()
