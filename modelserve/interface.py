"""The one inference interface the other apps use.

    from modelserve.interface import inference
    scores = inference().score(version, [Snippet(prompt, completion)])

In-process by default: each process loads a classifier once (a small LRU of loaded versions)
and keeps a score cache per loaded version, so a new version never sees an old version's
scores. A remote transport over HTTP to a modelserve instance on a GPU host
(`MODELSERVE_URL`) will implement the same methods.
"""

from collections import OrderedDict
from threading import Lock

from django.conf import settings

from modelserve.errors import ModelUnavailable, UnknownModel
from modelserve.inference import Classifier, Snippet, Suggestion, TokenSaliency
from modelserve.models import ClassifierVersion

__all__ = ["Snippet", "Suggestion", "TokenSaliency", "inference", "InProcessInference"]


class InProcessInference:
    def __init__(self, capacity: int = 2) -> None:
        self._loaded: OrderedDict[str, Classifier] = OrderedDict()
        self._capacity = capacity
        self._lock = Lock()

    def classifier(self, version: str) -> Classifier:
        row = ClassifierVersion.objects.filter(version=version).first()
        if row is None:
            raise UnknownModel(version)
        if row.status != ClassifierVersion.Status.READY:
            raise ModelUnavailable(f"classifier {version} is {row.status}")
        with self._lock:
            if version in self._loaded:
                self._loaded.move_to_end(version)
                return self._loaded[version]
        loaded = Classifier.from_folder(row.checkpoint_dir, version=version, mlm_folder=settings.MODELSERVE_MLM_DIR)
        with self._lock:
            self._loaded[version] = loaded
            while len(self._loaded) > self._capacity:
                self._loaded.popitem(last=False)
        return loaded

    def score(self, version: str, snippets: list[Snippet]) -> list[float]:
        return self.classifier(version).score(snippets)

    def saliency(self, version: str, snippet: Snippet) -> list[TokenSaliency]:
        return self.classifier(version).saliency(snippet)

    def substitutions(self, version: str, snippet: Snippet, index: int, limit: int = 20) -> list[Suggestion]:
        return self.classifier(version).substitutions(snippet, index, limit=limit)

    def insertions(self, version: str, snippet: Snippet, gap: int, limit: int = 20) -> list[Suggestion]:
        return self.classifier(version).insertions(snippet, gap, limit=limit)

    def edit_map(self, version: str, snippet: Snippet) -> list[Suggestion]:
        return self.classifier(version).edit_map(snippet)


_instance: InProcessInference | None = None


def inference() -> InProcessInference:
    """The process's inference service (created on first use, never at import: forked
    django-q2 workers must not inherit a CUDA context)."""
    global _instance
    if _instance is None:
        _instance = InProcessInference()
    return _instance
