"""REST endpoints of the inference interface, addressed by classifier version.

Project managers only: a contractor must never learn which classifier they attack, so their
pages reach the interface through their own assignment (attacks app), not by version.
"""

from dataclasses import asdict

from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from annotation import roles
from modelserve.interface import Snippet, inference

MAX_TEXT = 20_000
MAX_BATCH = 256


class SnippetInput(serializers.Serializer):
    prompt = serializers.CharField(max_length=MAX_TEXT, allow_blank=True, trim_whitespace=False)
    completion = serializers.CharField(max_length=MAX_TEXT, allow_blank=True, trim_whitespace=False)


class ScoreInput(serializers.Serializer):
    snippets = SnippetInput(many=True, allow_empty=False, max_length=MAX_BATCH)


class PositionInput(SnippetInput):
    index = serializers.IntegerField(min_value=0, max_value=10_000)
    limit = serializers.IntegerField(min_value=1, max_value=100, default=20)


def _valid(serializer_class, request):
    if not roles.is_pm(request.user):
        raise PermissionDenied("for project managers")
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


def _snippet(data) -> Snippet:
    return Snippet(data["prompt"], data["completion"])


def _suggestions(items):
    return [{**asdict(s), "snippet": asdict(s.snippet)} for s in items]


@api_view(["POST"])
def score(request, version: str):
    data = _valid(ScoreInput, request)
    scores = inference().score(version, [_snippet(s) for s in data["snippets"]])
    return Response({"version": version, "scores": scores})


@api_view(["POST"])
def saliency(request, version: str):
    data = _valid(SnippetInput, request)
    return Response({"tokens": [asdict(t) for t in inference().saliency(version, _snippet(data))]})


@api_view(["POST"])
def substitutions(request, version: str):
    data = _valid(PositionInput, request)
    items = inference().substitutions(version, _snippet(data), data["index"], limit=data["limit"])
    return Response({"suggestions": _suggestions(items)})


@api_view(["POST"])
def insertions(request, version: str):
    data = _valid(PositionInput, request)
    items = inference().insertions(version, _snippet(data), data["index"], limit=data["limit"])
    return Response({"suggestions": _suggestions(items)})


@api_view(["POST"])
def edit_map(request, version: str):
    data = _valid(SnippetInput, request)
    return Response({"edits": _suggestions(inference().edit_map(version, _snippet(data)))})
