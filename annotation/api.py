"""REST endpoints for labelling; the same services and selectors as the pages."""

from dataclasses import asdict
from uuid import UUID

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response

from annotation import roles, selectors, services
from annotation.models import Assignment, Dataset, TaskKind
from config.api import IDEMPOTENCY_KEY, TextField, errors
from eventlog.idempotency import idempotent_api


class AnswerInput(serializers.Serializer):
    answer = TextField(max_length=32)


# -- what the endpoints answer (for the OpenAPI schema) ------------------------------------

class TaskOutput(serializers.Serializer):
    task_id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=TaskKind.choices)
    dataset = serializers.IntegerField()
    state = serializers.ChoiceField(choices=Assignment.State.choices)
    expires_at = serializers.DateTimeField()
    prompt = serializers.CharField()
    completions = serializers.ListField(child=serializers.CharField(), help_text="in the order shown")


class AnswerOutput(serializers.Serializer):
    task_id = serializers.UUIDField()
    state = serializers.ChoiceField(choices=Assignment.State.choices)
    answer = serializers.CharField()
    seconds = serializers.FloatField(allow_null=True, help_text="server-measured, from serving to answer")


class DoneOutput(serializers.Serializer):
    label = serializers.IntegerField()
    comparison = serializers.IntegerField()
    rating = serializers.IntegerField()


class ProgressOutput(serializers.Serializer):
    dataset = serializers.IntegerField()
    name = serializers.CharField()
    done = DoneOutput(help_text="tasks of each kind this contractor has answered")


class LabellerOutput(serializers.Serializer):
    user_id = serializers.IntegerField()
    username = serializers.CharField()
    vendor = serializers.CharField()
    labels = serializers.IntegerField()
    mean_seconds = serializers.FloatField(allow_null=True)
    agreement_with_consensus = serializers.FloatField(allow_null=True)
    pairwise_agreement = serializers.FloatField(allow_null=True)


class DatasetProgressOutput(serializers.Serializer):
    snippets = serializers.IntegerField()
    settled = serializers.IntegerField()
    open = serializers.IntegerField()
    tie_breaks = serializers.IntegerField()
    no_majority = serializers.IntegerField()
    held = serializers.IntegerField()


class AgreementOutput(serializers.Serializer):
    items = serializers.IntegerField(help_text="snippets with two or more labels")
    pairwise_agreement = serializers.FloatField(allow_null=True)
    cohen_kappa = serializers.FloatField(allow_null=True)
    krippendorff_alpha = serializers.FloatField(allow_null=True)
    labellers = LabellerOutput(many=True, help_text="only the people the viewer may see")
    progress = DatasetProgressOutput()


KIND = OpenApiParameter("kind", OpenApiTypes.STR, OpenApiParameter.PATH, enum=TaskKind.values)


def _task_output(task: Assignment) -> dict:
    return {
        "task_id": str(task.task_id),
        "kind": task.work_item.kind,
        "dataset": task.work_item.dataset_id,
        "state": task.state,
        "expires_at": task.expires_at.isoformat(),
        **selectors.task_content(task),
    }


def _contractor(request):
    if not roles.can_label(request.user):
        raise PermissionDenied("only contractors take tasks")


@extend_schema(
    summary="Take the next task (or the one already held)", tags=["labelling"], request=None,
    parameters=[KIND, IDEMPOTENCY_KEY],
    responses={200: TaskOutput, 204: OpenApiResponse(description="nothing to do in this dataset now"),
               **errors(400, 403, 404, 409, 422, 503, e400="invalid Idempotency-Key", e403="for contractors only",
                        e404="no such active dataset or kind of task",
                        e503="every candidate was taken by others meanwhile; try again")},
)
@api_view(["POST"])
@idempotent_api
def next_task(request, dataset_id: int, kind: str):
    _contractor(request)
    if kind not in TaskKind.values:
        raise NotFound("no such kind of task")
    dataset = get_object_or_404(Dataset, pk=dataset_id, active=True)
    task = services.next_task(user=request.user, dataset=dataset, kind=kind)
    if task is None:
        return Response(status=status.HTTP_204_NO_CONTENT)
    return Response(_task_output(task))


@extend_schema(
    summary="Answer a held task", tags=["labelling"], request=AnswerInput, parameters=[IDEMPOTENCY_KEY],
    responses={200: AnswerOutput, **errors(400, 403, 404, 409, 422, e403="for contractors only",
                                           e404="no such task of this user", e409="the task is no longer held")},
)
@api_view(["POST"])
@idempotent_api
def answer(request, task_id: UUID):
    _contractor(request)
    data = AnswerInput(data=request.data)
    data.is_valid(raise_exception=True)
    task = services.submit_answer(user=request.user, task_id=task_id, raw=data.validated_data["answer"])
    return Response({"task_id": str(task.task_id), "state": task.state, "answer": task.answer, "seconds": task.seconds})


@extend_schema(
    summary="Give a held task back", tags=["labelling"], request=None, parameters=[IDEMPOTENCY_KEY],
    responses={204: OpenApiResponse(description="released"),
               **errors(400, 403, 404, 409, 422, e400="invalid Idempotency-Key", e403="for contractors only",
                        e404="no such task of this user", e409="the task is no longer held")},
)
@api_view(["POST"])
@idempotent_api
def skip(request, task_id: UUID):
    _contractor(request)
    services.release_task(user=request.user, task_id=task_id)  # TaskNotFound (404) if not theirs
    return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(
    summary="The contractor's own progress in each active dataset", tags=["labelling"],
    responses={200: ProgressOutput(many=True), **errors(403, e403="for contractors only")},
)
@api_view(["GET"])
def progress(request):
    _contractor(request)
    return Response(
        [
            {"dataset": dataset.pk, "name": dataset.name, "done": selectors.own_progress(request.user, dataset)}
            for dataset in selectors.datasets_for(request.user)
        ]
    )


@extend_schema(
    summary="Agreement and progress of a dataset", tags=["oversight"],
    responses={200: AgreementOutput, **errors(403, 404, e403="for vendor and project managers",
                                              e404="no such dataset")},
)
@api_view(["GET"])
def agreement(request, dataset_id: int):
    if not roles.can_oversee(request.user):
        raise PermissionDenied("for vendor and project managers")
    dataset = get_object_or_404(Dataset, pk=dataset_id)
    stats = selectors.agreement(dataset, request.user)
    return Response({**asdict(stats), "progress": selectors.dataset_progress(dataset)})
