"""The report as JSON for REST clients (project managers), the same as the page's."""

from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from evaluation import report
from evaluation.views import ReportForm
from modelserve.api import pm_endpoint


@pm_endpoint(["GET"])
def report_json(request):
    form = ReportForm(request.query_params)
    if not form.is_valid():
        raise ValidationError(form.errors)
    try:
        return Response(report.cached(form.spec()))
    except report.ReportError as exc:
        raise ValidationError({"detail": str(exc)}) from None

