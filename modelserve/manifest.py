"""The exact training data of a run: which snippets, with which label, at which label version.

Reads the labelling read models (settled consensus only). For training, unsure counts as
injurious. The equal-size option keeps the total fixed: for every snippet that is not from
the initial story data, one random initial snippet is removed (the paper's series).
"""

import hashlib
import json
import random
from dataclasses import dataclass

from annotation.models import Snippet, TaskKind, WorkItem
from modelserve.errors import ModelserveError

INJURIOUS = {"injurious", "unsure"}


@dataclass(frozen=True)
class Entry:
    snippet_id: str
    injurious: bool
    label_version: int  # the snippet stream's version when the manifest was built
    source: str


@dataclass(frozen=True)
class Manifest:
    entries: list[Entry]
    digest: str

    def lines(self) -> list[str]:
        return [json.dumps([e.snippet_id, int(e.injurious), e.label_version]) for e in self.entries]


def digest_of(entries: list[Entry]) -> str:
    canonical = "\n".join(
        json.dumps([e.snippet_id, int(e.injurious), e.label_version])
        for e in sorted(entries, key=lambda e: e.snippet_id)
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def build_manifest(*, dataset_ids: list[int], splits: list[str], equal_size: bool = False, seed: int = 0) -> Manifest:
    settled = WorkItem.objects.filter(
        kind=TaskKind.LABEL, dataset_id__in=dataset_ids, status=WorkItem.Status.SETTLED
    ).values_list("subject_id", "final_label", "stream_version")
    labels = {str(subject): (final, version) for subject, final, version in settled}
    sources = dict(
        (str(pk), source)
        for pk, source in Snippet.objects.filter(pk__in=list(labels), split__in=splits).values_list("id", "source")
    )
    entries = sorted(
        (Entry(pk, labels[pk][0] in INJURIOUS, labels[pk][1], source) for pk, source in sources.items()),
        key=lambda e: e.snippet_id,
    )
    if equal_size:
        initial = [e for e in entries if e.source == "initial"]
        added = len(entries) - len(initial)
        if added > len(initial):
            raise ModelserveError("more adversarial snippets than initial ones: equal size is impossible")
        removed = {e.snippet_id for e in random.Random(seed).sample(initial, added)}
        entries = [e for e in entries if e.snippet_id not in removed]
    if not entries:
        raise ModelserveError("no settled labels in the chosen datasets and splits")
    return Manifest(entries=entries, digest=digest_of(entries))
