"""The one inference interface the other apps use.

    from modelserve.interface import inference
    scores = inference().score(version, [SnippetText(prompt, completion)])

In-process by default: each process loads a classifier once (a small LRU of loaded versions)
and keeps a score cache per loaded version, so a new version never sees an old version's
scores. With `MODELSERVE_URL` set, the same methods go over HTTP to the REST endpoints of a
modelserve instance on a GPU host (authenticated with `MODELSERVE_TOKEN`), so that many web
nodes share one GPU.
"""

import json
import urllib.error
import urllib.request
from collections import OrderedDict
from threading import Lock

from django.conf import settings

from modelserve.errors import ModelserveError, ModelUnavailable, UnknownModel
from modelserve.generation import GenerationError, Generator, OpenAICompatible, Replay, local_name
from modelserve.selectors import ready_classifier
from modelserve.types import InvalidInput, SnippetText, Suggestion, WordSaliency

__all__ = ["SnippetText", "Suggestion", "WordSaliency", "inference", "InProcessInference", "HttpInference"]


class InProcessInference:
    def __init__(self, capacity: int | None = None) -> None:
        self._loaded: OrderedDict = OrderedDict()  # version -> a loaded Classifier
        self._capacity = capacity or settings.MODELSERVE_MODELS_IN_MEMORY
        self._lock = Lock()
        self._loading: dict[str, Lock] = {}

    def classifier(self, version: str):
        row = ready_classifier(version)
        with self._lock:
            loading = self._loading.setdefault(version, Lock())
        with loading:  # one load per version: a request during the start-up warm-up waits for it
            with self._lock:
                if version in self._loaded:
                    self._loaded.move_to_end(version)
                    return self._loaded[version]
            from modelserve.inference import Classifier, pick_device  # PyTorch, on first use

            loaded = Classifier.from_folder(
                row.checkpoint_dir, version=version, mlm_folder=settings.MODELSERVE_MLM_DIR,
                encoder_folder=settings.MODELSERVE_SIMILARITY_DIR, min_similarity=settings.MODELSERVE_MIN_SIMILARITY,
                cpu_runtime=settings.MODELSERVE_CPU_RUNTIME, device=pick_device(settings.MODELSERVE_DEVICE),
                batch_size=settings.MODELSERVE_BATCH_SIZE, cache_size=settings.MODELSERVE_SCORE_CACHE_SIZE,
                variant_budget=settings.MODELSERVE_VARIANT_BUDGET or None,
            )
            with self._lock:
                self._loaded[version] = loaded
                while len(self._loaded) > self._capacity:
                    self._loaded.popitem(last=False)
            return loaded

    def warm(self, version: str) -> None:
        """Load a classifier and do once what its first request would (see `Classifier.warm`)."""
        self.classifier(version).warm()

    def score(self, version: str, snippets: list[SnippetText]) -> list[float]:
        return self.classifier(version).score(snippets)

    def saliency(self, version: str, snippet: SnippetText) -> list[WordSaliency]:
        return self.classifier(version).saliency(snippet)

    def substitutions(self, version: str, snippet: SnippetText, index: int, limit: int = 20) -> list[Suggestion]:
        return self.classifier(version).substitutions(snippet, index, limit=limit)

    def insertions(self, version: str, snippet: SnippetText, index: int, limit: int = 20) -> list[Suggestion]:
        return self.classifier(version).insertions(snippet, index, limit=limit)

    def edit_map(self, version: str, snippet: SnippetText) -> list[Suggestion]:
        return self.classifier(version).edit_map(snippet)


class HttpInference:
    """The same interface, served by a remote modelserve instance's REST endpoints."""

    def __init__(self, base_url: str, token: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _post(self, version: str, action: str, body: dict) -> dict:
        request = urllib.request.Request(
            f"{self.base_url}/api/v1/models/{urllib.request.quote(version, safe='')}/{action}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Token {self.token}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            error = {404: UnknownModel, 409: ModelUnavailable}.get(exc.code)
            if error is UnknownModel:
                raise UnknownModel(version) from None
            if exc.code == 400:
                raise InvalidInput(_detail(detail)) from None
            raise (error or ModelserveError)(f"modelserve answered {exc.code}: {_detail(detail)}") from None

    @staticmethod
    def _snippet(snippet: SnippetText) -> dict:
        return {"prompt": snippet.prompt, "completion": snippet.completion}

    @staticmethod
    def _suggestions(items: list[dict]) -> list[Suggestion]:
        return [Suggestion(**{**item, "sources": tuple(item["sources"]), "snippet": SnippetText(**item["snippet"])})
                for item in items]

    def warm(self, version: str) -> None:
        """The remote instance loads and warms its own classifiers."""

    def score(self, version: str, snippets: list[SnippetText]) -> list[float]:
        return self._post(version, "score", {"snippets": [self._snippet(s) for s in snippets]})["scores"]

    def saliency(self, version: str, snippet: SnippetText) -> list[WordSaliency]:
        return [WordSaliency(**w) for w in self._post(version, "saliency", self._snippet(snippet))["words"]]

    def substitutions(self, version: str, snippet: SnippetText, index: int, limit: int = 20) -> list[Suggestion]:
        body = {**self._snippet(snippet), "index": index, "limit": limit}
        return self._suggestions(self._post(version, "substitutions", body)["suggestions"])

    def insertions(self, version: str, snippet: SnippetText, index: int, limit: int = 20) -> list[Suggestion]:
        body = {**self._snippet(snippet), "index": index, "limit": limit}
        return self._suggestions(self._post(version, "insertions", body)["suggestions"])

    def edit_map(self, version: str, snippet: SnippetText) -> list[Suggestion]:
        return self._suggestions(self._post(version, "edit-map", self._snippet(snippet))["edits"])


def _detail(body: str) -> str:
    try:
        return str(json.loads(body).get("detail", body))
    except (ValueError, AttributeError):
        return body[:500]


_instance: InProcessInference | HttpInference | None = None


def inference() -> InProcessInference | HttpInference:
    """The process's inference service (created on first use, never at import: forked
    django-q2 workers must not inherit a CUDA context)."""
    global _instance
    if _instance is None:
        if settings.MODELSERVE_URL:
            _instance = HttpInference(settings.MODELSERVE_URL, settings.MODELSERVE_TOKEN)
        else:
            _instance = InProcessInference()
    return _instance


_local_generator = None  # the loaded LocalCausalLM
_local_generator_lock = Lock()


def generator() -> Generator:
    """The configured text generator: an OpenAI-compatible endpoint when `GENERATOR_URL` is
    set, else the causal LM in `GENERATOR_DIR` (loaded once per process, on first use), else
    a replay of the completions stored for each prompt when `GENERATOR_REPLAY` is on."""
    global _local_generator
    if settings.GENERATOR_URL:
        return OpenAICompatible(settings.GENERATOR_URL, api_key=settings.GENERATOR_API_KEY,
                                model=settings.GENERATOR_MODEL)
    name = generator_name()
    if name == Replay.name:
        return Replay(_stored_completions)
    with _local_generator_lock:
        if _local_generator is None or _local_generator.name != name:
            _local_generator = None  # free the previous model before loading another
            from modelserve.local_lm import LocalCausalLM  # PyTorch, on first use

            _local_generator = LocalCausalLM(settings.GENERATOR_DIR)
        return _local_generator


def generator_name() -> str:
    """The configured generator's name, without loading a model."""
    if settings.GENERATOR_URL:
        return OpenAICompatible(settings.GENERATOR_URL, model=settings.GENERATOR_MODEL).name
    if settings.GENERATOR_DIR:
        return local_name(settings.GENERATOR_DIR)
    if settings.GENERATOR_REPLAY:
        return Replay.name
    raise GenerationError("no generator is configured: set GENERATOR_URL, GENERATOR_DIR or GENERATOR_REPLAY")


def _stored_completions(prompt: str) -> list[str]:
    from annotation.models import Snippet  # the stored snippets are annotation's read model

    return list(Snippet.objects.filter(prompt=prompt).values_list("completion", flat=True)[:10_000])
