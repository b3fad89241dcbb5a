"""REST endpoints of the inference interface, addressed by classifier version.

Project managers only: a contractor must never learn which classifier they attack, so their
pages reach the interface through their own assignment (attacks app), not by version.
"""

from dataclasses import asdict

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes, throttle_classes
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle

from annotation import roles
from config.api import IDEMPOTENCY_KEY, SlugField, TextField, errors
from eventlog.idempotency import idempotent_api
from modelserve import filtering, training_jobs
from modelserve.errors import FilterUnavailable, InvalidPrompt, ModelserveError
from modelserve.interface import SnippetText, inference
from modelserve.models import TrainingRun
from modelserve.types import MAX_SEED

MAX_TEXT = 20_000
MAX_BATCH = 256


class SnippetInput(serializers.Serializer):
    prompt = TextField(max_length=MAX_TEXT, allow_blank=True, trim_whitespace=False)
    completion = TextField(max_length=MAX_TEXT, allow_blank=True, trim_whitespace=False)


class ScoreInput(serializers.Serializer):
    snippets = SnippetInput(many=True, allow_empty=False, max_length=MAX_BATCH)


class PositionInput(SnippetInput):
    index = serializers.IntegerField(min_value=0, max_value=10_000,
                                     help_text="a word's number (the prompt's words first, as `saliency` lists them)")
    limit = serializers.IntegerField(min_value=1, max_value=100, default=20)


# -- what the endpoints answer (for the OpenAPI schema) ------------------------------------

class ScoreOutput(serializers.Serializer):
    version = serializers.CharField()
    scores = serializers.ListField(child=serializers.FloatField(), help_text="one per snippet, in order")


class WordOutput(serializers.Serializer):
    index = serializers.IntegerField(help_text="the word's number in the snippet, the prompt's words first")
    word = serializers.CharField(help_text="as written")
    part = serializers.ChoiceField(choices=["prompt", "completion"])
    start = serializers.IntegerField(help_text="character offset in its part")
    end = serializers.IntegerField()
    saliency = serializers.FloatField(help_text="gradient norm over its tokens, the largest in the snippet is 1")
    insertable_after = serializers.BooleanField(help_text="a word may be inserted right after it")


class SaliencyOutput(serializers.Serializer):
    words = WordOutput(many=True)


class SnippetOutput(serializers.Serializer):
    prompt = serializers.CharField()
    completion = serializers.CharField()


class SuggestionOutput(serializers.Serializer):
    index = serializers.IntegerField(help_text="the word replaced, or the word the new one follows")
    kind = serializers.ChoiceField(choices=["substitution", "insertion"])
    original = serializers.CharField(help_text="that word, as written")
    word = serializers.CharField(help_text="the offered word, as written into the text")
    sources = serializers.ListField(child=serializers.ChoiceField(choices=["gradient", "neighbours", "masked_lm"]))
    score = serializers.FloatField(help_text="the exact score of the edited snippet")
    similarity = serializers.FloatField(help_text="sentence-embedding cosine of the edited words and their "
                                                  "neighbours to the text before the edit")
    snippet = SnippetOutput(help_text="the edited snippet: the text sent, with that one word changed")


class SuggestionsOutput(serializers.Serializer):
    suggestions = SuggestionOutput(many=True)


class EditMapOutput(serializers.Serializer):
    edits = SuggestionOutput(many=True)


INFERENCE_ERRORS = errors(400, 403, 404, 409, e403="for project managers", e404="no such classifier",
                          e409="the classifier cannot serve (not ready, retired or failed)")


class ProjectManagersOnly(BasePermission):
    message = "for project managers"

    def has_permission(self, request, view):
        return roles.is_pm(request.user)


def pm_endpoint(methods):
    """A REST view for project managers only (401 anonymous, 403 anyone else)."""

    def decorate(view):
        return api_view(methods)(permission_classes([ProjectManagersOnly])(view))

    return decorate


def _valid(serializer_class, request):
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


def _snippet(data) -> SnippetText:
    return SnippetText(data["prompt"], data["completion"])


def _suggestions(items):
    return [{**asdict(s), "snippet": asdict(s.snippet)} for s in items]


@extend_schema(summary="Score snippets with a classifier", tags=["inference"], request=ScoreInput,
               responses={200: ScoreOutput, **INFERENCE_ERRORS})
@pm_endpoint(["POST"])
def score(request, version: str):
    data = _valid(ScoreInput, request)
    scores = inference().score(version, [_snippet(s) for s in data["snippets"]])
    return Response({"version": version, "scores": scores})


@extend_schema(summary="Saliency of each word of a snippet", tags=["inference"], request=SnippetInput,
               responses={200: SaliencyOutput, **INFERENCE_ERRORS})
@pm_endpoint(["POST"])
def saliency(request, version: str):
    data = _valid(SnippetInput, request)
    return Response({"words": [asdict(w) for w in inference().saliency(version, _snippet(data))]})


@extend_schema(summary="Whole-word substitutions for a word, rescored", tags=["inference"], request=PositionInput,
               responses={200: SuggestionsOutput, **INFERENCE_ERRORS})
@pm_endpoint(["POST"])
def substitutions(request, version: str):
    data = _valid(PositionInput, request)
    items = inference().substitutions(version, _snippet(data), data["index"], limit=data["limit"])
    return Response({"suggestions": _suggestions(items)})


@extend_schema(summary="Words to insert right after a word, rescored", tags=["inference"], request=PositionInput,
               responses={200: SuggestionsOutput, **INFERENCE_ERRORS})
@pm_endpoint(["POST"])
def insertions(request, version: str):
    data = _valid(PositionInput, request)
    items = inference().insertions(version, _snippet(data), data["index"], limit=data["limit"])
    return Response({"suggestions": _suggestions(items)})


@extend_schema(summary="The best substitution for every word", tags=["inference"], request=SnippetInput,
               responses={200: EditMapOutput, **INFERENCE_ERRORS})
@pm_endpoint(["POST"])
def edit_map(request, version: str):
    data = _valid(SnippetInput, request)
    return Response({"edits": _suggestions(inference().edit_map(version, _snippet(data)))})


class TrainingInput(serializers.Serializer):
    version = SlugField(max_length=80)
    base_model = TextField(max_length=500)
    dataset_ids = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), allow_empty=False,
                                        max_length=100)
    splits = serializers.ListField(child=serializers.ChoiceField(choices=["train", "validation", "test"]),
                                   default=["train"])
    equal_size = serializers.BooleanField(default=False)
    epochs = serializers.IntegerField(min_value=1, max_value=50, default=1)
    learning_rate = serializers.FloatField(min_value=1e-7, max_value=1e-2, default=2e-5)
    batch_size = serializers.IntegerField(min_value=1, max_value=512, default=16)
    seed = serializers.IntegerField(min_value=0, max_value=MAX_SEED, default=0)


def _run_output(run) -> dict:
    fields = ("run_id", "version", "status", "step", "steps", "loss", "eta_seconds", "manifest_hash",
              "manifest_size", "cancel_requested", "failure", "metrics")
    return {**{f: getattr(run, f) for f in fields}, "percent": run.percent, "heartbeat_at": run.heartbeat_at}


class TrainingRunOutput(serializers.Serializer):
    run_id = serializers.CharField()
    version = serializers.CharField()
    status = serializers.ChoiceField(choices=TrainingRun.Status.choices)
    step = serializers.IntegerField()
    steps = serializers.IntegerField()
    loss = serializers.FloatField(allow_null=True)
    eta_seconds = serializers.FloatField(allow_null=True)
    manifest_hash = serializers.CharField()
    manifest_size = serializers.IntegerField()
    cancel_requested = serializers.BooleanField()
    failure = serializers.CharField(allow_blank=True)
    metrics = serializers.DictField()
    percent = serializers.IntegerField()
    heartbeat_at = serializers.DateTimeField()


@extend_schema(summary="Start a training run", tags=["training"], request=TrainingInput, parameters=[IDEMPOTENCY_KEY],
               responses={201: TrainingRunOutput,
                          **errors(400, 403, 422, e400="invalid input, an existing version or no settled labels",
                                   e403="for project managers")})
@pm_endpoint(["POST"])
@idempotent_api
def start_training(request):
    data = _valid(TrainingInput, request)
    run = training_jobs.start_training(
        version=data["version"], base_model=data["base_model"], dataset_ids=data["dataset_ids"],
        splits=data["splits"], equal_size=data["equal_size"],
        hyperparameters={k: data[k] for k in ("epochs", "learning_rate", "batch_size", "seed")},
    )
    return Response(_run_output(run), status=201)


@extend_schema(summary="A training run's progress", tags=["training"],
               responses={200: TrainingRunOutput,
                          **errors(403, 404, e403="for project managers", e404="no such run")})
@pm_endpoint(["GET"])
def training_run(request, run_id: str):
    return Response(_run_output(get_object_or_404(TrainingRun, run_id=run_id)))


@extend_schema(summary="Ask a running training run to stop", tags=["training"], request=None,
               parameters=[IDEMPOTENCY_KEY],
               responses={200: TrainingRunOutput,
                          **errors(403, 404, 422, e403="for project managers", e404="no such run")})
@pm_endpoint(["POST"])
@idempotent_api
def cancel_training(request, run_id: str):
    run = get_object_or_404(TrainingRun, run_id=run_id)
    training_jobs.cancel_training(run_id=run.run_id)
    run.refresh_from_db()
    return Response(_run_output(run))


class FilteredGenerationThrottle(SimpleRateThrottle):
    """The public filtered generator costs generator and classifier time: a rate per visitor
    (by user, else by address). Project managers are not limited."""

    scope = "filtered_generation"

    def get_cache_key(self, request, view):
        if roles.is_pm(request.user):
            return None
        ident = request.user.pk if request.user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class FilteredInput(serializers.Serializer):
    prompt = TextField(max_length=filtering.MAX_PROMPT)
    seed = serializers.IntegerField(min_value=0, max_value=2**62, required=False)


class DrawOutput(serializers.Serializer):
    completion = serializers.CharField(allow_blank=True)
    score = serializers.FloatField(allow_null=True, help_text="null: empty, never scored")


class FilteredOutput(serializers.Serializer):
    request_id = serializers.UUIDField()
    completion = serializers.CharField(allow_null=True, allow_blank=True,
                                       help_text="null: nothing acceptable within the attempts")
    accepted = serializers.BooleanField()
    attempts = serializers.IntegerField()
    rejected = serializers.IntegerField(help_text="how many draws were rejected")
    replay = serializers.BooleanField(help_text="the completions are replayed from stored data")
    rejected_draws = DrawOutput(many=True, required=False, help_text="project managers only")
    score = serializers.FloatField(allow_null=True, required=False, help_text="project managers only")
    generator = serializers.CharField(required=False, help_text="project managers only")


def filtered_output(result: filtering.Filtered, user) -> dict:
    """What anyone sees; project managers also see each rejected draw and its score."""
    out = {"request_id": result.request_id, "completion": result.completion, "accepted": result.accepted,
           "attempts": result.attempts, "rejected": len(result.rejected), "replay": result.is_replay}
    if roles.is_pm(user):
        out.update(rejected_draws=[asdict(d) for d in result.rejected], score=result.score,
                   generator=result.generator)
    return out


@extend_schema(
    summary="A completion filtered by the promoted classifier", tags=["generation"], request=FilteredInput,
    parameters=[IDEMPOTENCY_KEY],
    responses={200: FilteredOutput,
               **errors(400, 422, 503, e503="the filtered generator is not available (no promoted classifier, "
                                       "no threshold or no generator)")},
)
@api_view(["POST"])
@permission_classes([AllowAny])
@throttle_classes([FilteredGenerationThrottle])
@idempotent_api
def filtered_generation(request):
    data = _valid(FilteredInput, request)
    try:
        result = filtering.filtered_completion(data["prompt"], seed=data.get("seed"),
                                               user_id=request.user.pk if request.user.is_authenticated else None)
    except ModelserveError as exc:  # a generator error too
        if isinstance(exc, InvalidPrompt) or roles.is_pm(request.user):
            raise
        raise FilterUnavailable("the filtered generator is not available right now") from None
    return Response(filtered_output(result, request.user))
