"""The report as JSON for REST clients (project managers), the same as the page's."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from config.api import errors
from evaluation import report
from evaluation.views import ReportForm
from modelserve.api import pm_endpoint


def _many(name: str, description: str, *, required: bool = False) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.STR, many=True, explode=True, style="form", required=required,
                            description=f"{description} (repeat the parameter for several)")


@extend_schema(
    summary="The paper's report: Table 2, Figures 2 and 3, direct quality checks", tags=["evaluation"],
    parameters=[
        _many("classifiers", "classifier versions", required=True),
        OpenApiParameter("comparison_dataset", OpenApiTypes.INT, description="dataset of quality comparisons"),
        OpenApiParameter("test_dataset", OpenApiTypes.INT,
                         description="dataset of double-labelled in-distribution test snippets"),
        _many("campaigns", "ids of tool-assisted attack campaigns"),
        _many("quality_checks", "ids of direct quality check jobs"),
        OpenApiParameter("seed", OpenApiTypes.INT, description="bootstrap seed (default 0)"),
    ],
    responses={
        200: OpenApiResponse(OpenApiTypes.OBJECT, description="`computed_from`, `table2`, `figure2`, `figure3` "
                                                              "and `quality_checks`, as on the report page"),
        **errors(400, 403, e403="for project managers"),
    },
)
@pm_endpoint(["GET"])
def report_json(request):
    form = ReportForm(request.query_params)
    if not form.is_valid():
        raise ValidationError(form.errors)
    try:
        return Response(report.cached(form.spec()))
    except report.ReportError as exc:
        raise ValidationError({"detail": str(exc)}) from None

