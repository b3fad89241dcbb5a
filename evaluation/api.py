"""The report as JSON for REST clients (project managers), the same as the page's."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from config.api import errors
from evaluation import jobs, report
from evaluation.models import Computation
from evaluation.views import ReportForm, report_params
from modelserve.api import pm_endpoint


def _many(name: str, description: str, *, required: bool = False) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.STR, many=True, explode=True, style="form", required=required,
                            description=f"{description} (repeat the parameter for several)")


_PARAMETERS = [
    _many("classifiers", "classifier versions", required=True),
    OpenApiParameter("comparison_dataset", OpenApiTypes.INT, description="dataset of quality comparisons"),
    OpenApiParameter("test_dataset", OpenApiTypes.INT,
                     description="dataset of double-labelled in-distribution test snippets"),
    _many("campaigns", "ids of tool-assisted attack campaigns"),
    _many("quality_checks", "ids of direct quality check jobs"),
    OpenApiParameter("seed", OpenApiTypes.INT, description="bootstrap seed (default 0)"),
    OpenApiParameter("unsure", OpenApiTypes.STR, enum=list(report.UNSURE_TREATMENTS),
                     description="what a test-set snippet labelled unsure counts as (default: left out)"),
]


def _computation(row) -> dict:
    return {"id": str(row.pk), "status": row.status, "stage": row.stage, "error": row.error,
            "log_position": row.log_position}


@extend_schema(
    methods=["GET"], summary="The newest computed report: Table 2, Figures 2 and 3, direct quality checks",
    tags=["evaluation"], parameters=_PARAMETERS,
    responses={
        200: OpenApiResponse(OpenApiTypes.OBJECT, description="`computed_from`, `table2`, `figure2`, `figure3`, "
                                                              "`quality_checks` and `missing`, as on the report page"),
        **errors(400, 403, 404, 409, e403="for project managers", e404="not computed yet: POST the same query first",
                 e409="the newest computation failed (`detail` says why)"),
    },
)
@extend_schema(
    methods=["POST"], summary="Compute the report at the log's current position (a background job)",
    tags=["evaluation"], parameters=_PARAMETERS, request=None,
    responses={
        202: OpenApiResponse(OpenApiTypes.OBJECT, description="the computation: `id`, `status` (running, finished, "
                                                              "failed), `stage`, `error`, `log_position`"),
        **errors(400, 403, e403="for project managers"),
    },
)
@pm_endpoint(["GET", "POST"])
def report_json(request):
    """GET reads (never computes); POST starts or reuses the job for the current log position."""
    form = ReportForm(request.query_params)
    if not form.is_valid():
        raise ValidationError(form.errors)
    params = report_params(form)
    if request.method == "POST":
        return Response(_computation(jobs.request(Computation.Kind.REPORT, params)), status=202)
    computation = jobs.latest(Computation.Kind.REPORT, params, finished=True)
    if computation is None:
        newest = jobs.latest(Computation.Kind.REPORT, params)
        if newest is not None and newest.status == Computation.Status.FAILED:
            return Response({"detail": f"the report could not be computed: {newest.error}"}, status=409)
        if newest is not None:
            raise NotFound(f"this report is being computed ({newest.stage or 'waiting for a job worker'})")
        raise NotFound("this report is not computed yet: POST the same query to compute it")
    return Response(computation.result)
