"""REST endpoints for labelling; the same services and selectors as the pages."""

from dataclasses import asdict
from uuid import UUID

from django.shortcuts import get_object_or_404
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response

from annotation import roles, selectors, services
from annotation.models import Assignment, Dataset, TaskKind
from eventlog.idempotency import idempotent_api


class AnswerInput(serializers.Serializer):
    answer = serializers.CharField(max_length=32)


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


@api_view(["POST"])
@idempotent_api
def answer(request, task_id: UUID):
    _contractor(request)
    data = AnswerInput(data=request.data)
    data.is_valid(raise_exception=True)
    task = services.submit_answer(user=request.user, task_id=task_id, raw=data.validated_data["answer"])
    return Response({"task_id": str(task.task_id), "state": task.state, "answer": task.answer, "seconds": task.seconds})


@api_view(["POST"])
@idempotent_api
def skip(request, task_id: UUID):
    _contractor(request)
    services.release_task(user=request.user, task_id=task_id)  # TaskNotFound (404) if not theirs
    return Response(status=status.HTTP_204_NO_CONTENT)


@api_view(["GET"])
def progress(request):
    _contractor(request)
    return Response(
        [
            {"dataset": dataset.pk, "name": dataset.name, "done": selectors.own_progress(request.user, dataset)}
            for dataset in selectors.datasets_for(request.user)
        ]
    )


@api_view(["GET"])
def agreement(request, dataset_id: int):
    if not roles.can_oversee(request.user):
        raise PermissionDenied("for vendor and project managers")
    dataset = get_object_or_404(Dataset, pk=dataset_id)
    stats = selectors.agreement(dataset, request.user)
    return Response({**asdict(stats), "progress": selectors.dataset_progress(dataset)})
