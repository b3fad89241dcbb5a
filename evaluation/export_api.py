"""`GET /api/v1/datasets/<id>/export.jsonl|csv`: a dataset streamed for project managers' clients.

Query parameters (each may repeat or be comma-separated): source, split, label (a consensus
label or "none"), campaign, scores (classifier versions); since / until (ISO dates of when
snippets were added); export_id and after to resume an interrupted export. The response
headers name the export (`Export-Id`), the event position it reflects (`Export-Position`) and
how to resume.
"""

from uuid import UUID

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError

from annotation.models import Dataset
from config.api import errors
from evaluation import exports
from modelserve.api import pm_endpoint

CONTENT_TYPES = {"jsonl": "application/jsonl", "csv": "text/csv"}


def _many(params, name: str) -> list[str]:
    return [v for raw in params.getlist(name) for v in raw.split(",") if v]


def _uuid(raw: str | None, name: str) -> UUID | None:
    try:
        return UUID(raw) if raw else None
    except ValueError:
        raise ValidationError({name: "not a valid id"}) from None


def spec_from(params, dataset_id: int) -> exports.ExportSpec:
    extra = {"export_id": _uuid(params.get("export_id"), "export_id")} if params.get("export_id") else {}
    return exports.ExportSpec(
        dataset_id=dataset_id, sources=_many(params, "source"), splits=_many(params, "split"),
        labels=_many(params, "label"), since=exports.parse_when(params.get("since")),
        until=exports.parse_when(params.get("until")), campaign=_uuid(params.get("campaign"), "campaign"),
        scores=_many(params, "scores"), after=_uuid(params.get("after"), "after"), **extra,
    )


def _list_parameter(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, str, many=True, required=False, description=description)


@extend_schema(
    summary="Export a dataset (streamed)",
    parameters=[
        OpenApiParameter("fmt", str, OpenApiParameter.PATH, enum=["jsonl", "csv"], description="the format"),
        _list_parameter("source", "snippet sources"),
        _list_parameter("split", "train, validation, test"),
        _list_parameter("label", "consensus labels, or none for unsettled snippets"),
        _list_parameter("scores", "classifier versions whose recorded scores to include"),
        OpenApiParameter("campaign", OpenApiTypes.UUID, required=False, description="attacks of this campaign"),
        OpenApiParameter("since", OpenApiTypes.DATETIME, required=False, description="added at or after"),
        OpenApiParameter("until", OpenApiTypes.DATETIME, required=False, description="added before"),
        OpenApiParameter("export_id", OpenApiTypes.UUID, required=False, description="resume this export"),
        OpenApiParameter("after", OpenApiTypes.UUID, required=False, description="resume after this snippet id"),
    ],
    responses={(200, "application/jsonl"): OpenApiTypes.STR, (200, "text/csv"): OpenApiTypes.STR,
               **errors(400, 403, 404, e404="no such dataset")},
)
@pm_endpoint(["GET"])
def export_dataset(request, dataset_id: int, fmt: str):
    dataset = get_object_or_404(Dataset, pk=dataset_id)
    try:
        export = exports.Export(spec_from(request.query_params, dataset.pk), fmt)  # ExportError: 400
    except exports.ExportError as exc:
        raise ValidationError({"detail": str(exc)}) from None
    response = StreamingHttpResponse(export, content_type=f"{CONTENT_TYPES[fmt]}; charset=utf-8")
    response["Export-Id"] = str(export.spec.export_id)
    response["Export-Position"] = str(export.position)
    response["Content-Disposition"] = f'attachment; filename="dataset-{dataset.pk}-{export.spec.export_id}.{fmt}"'
    response["Export-Resume"] = f"export_id={export.spec.export_id}&after=<the last id received>"
    return response
