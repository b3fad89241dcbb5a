"""The report and threshold selection for project managers: pages, figures and the data behind
each (CSV, JSON). Both are computed by background jobs (`evaluation.jobs`): a POST asks for a
computation, a GET shows the newest one (its progress, then its result) and never appends events."""

import base64
import csv
import io
from dataclasses import asdict
from types import SimpleNamespace
from uuid import UUID

from django import forms
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from annotation import roles
from annotation.models import Dataset
from attacks.models import Campaign
from evaluation import jobs, plots, report, thresholds
from evaluation.errors import EvaluationError
from evaluation.models import Computation
from eventlog.reading import head_position
from modelserve.models import ClassifierVersion, GenerationJob
from modelserve.selectors import ready_versions

pm_only = roles.role_required(roles.is_pm, "for project managers")


class ReportForm(forms.Form):
    classifiers = forms.MultipleChoiceField()
    comparison_dataset = forms.ModelChoiceField(Dataset.objects.all(), required=False,
                                                help_text="quality comparisons")
    test_dataset = forms.ModelChoiceField(Dataset.objects.all(), required=False,
                                          help_text="double-labelled in-distribution test snippets")
    campaigns = forms.MultipleChoiceField(required=False, help_text="tool-assisted attack campaigns")
    quality_checks = forms.MultipleChoiceField(required=False, help_text="direct quality check jobs")
    seed = forms.IntegerField(initial=0, required=False, min_value=0, max_value=2 ** 32 - 1)
    unsure = forms.ChoiceField(choices=list(report.UNSURE_TREATMENTS.items()), initial="leave_out", required=False,
                               label="Test-set snippets labelled unsure")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["classifiers"].choices = [(v, v) for v in ClassifierVersion.objects.values_list("version",
                                                                                                    flat=True)]
        self.fields["campaigns"].choices = [(str(c.pk), c.name) for c in Campaign.objects.filter(
            kind=Campaign.Kind.TOOL_ASSISTED)]
        self.fields["quality_checks"].choices = [
            (str(j.pk), f"{j.spec['version']} at {j.spec['threshold']:g} ({j.prompts} prompts, {j.started_at:%Y-%m-%d})")
            for j in GenerationJob.objects.filter(kind=GenerationJob.Kind.QUALITY_CHECK)]

    def spec(self) -> report.ReportSpec:
        data = self.cleaned_data
        return report.ReportSpec(
            classifiers=data["classifiers"],
            comparison_dataset=data["comparison_dataset"].pk if data["comparison_dataset"] else None,
            test_dataset=data["test_dataset"].pk if data["test_dataset"] else None,
            campaigns=data["campaigns"], quality_checks=data["quality_checks"], seed=data["seed"] or 0,
            unsure=data["unsure"] or "leave_out",
        )


def report_params(form: ReportForm) -> dict:
    return asdict(form.spec())


def _with_status(context: dict, kind: str, params: dict) -> dict:
    """The newest computation of these parameters, and the newest finished one to show meanwhile."""
    computation = jobs.latest(kind, params)
    shown = computation if computation and computation.status == Computation.Status.FINISHED else (
        jobs.latest(kind, params, finished=True))
    context.update(computation=computation, shown=shown, head=head_position())
    return context


def _after_request(request, kind: str, params: dict):
    """POST: ask for the computation at the current log position, then show the page (303)."""
    jobs.request(kind, params)
    return redirect(f"{request.path}?{request.GET.urlencode()}", permanent=False)


@require_http_methods(["GET", "POST"])
@pm_only
def report_page(request):
    form = ReportForm(request.GET or None)
    context = {"form": form}
    if form.is_bound and form.is_valid():
        params = report_params(form)
        if request.method == "POST":
            return _after_request(request, Computation.Kind.REPORT, params)
        _with_status(context, Computation.Kind.REPORT, params)
        built = context["report"] = context["shown"].result if context["shown"] else None
        if built:
            context["rows_at_filter"] = list(zip(built["figure3"]["classifiers"], built["figure3"]["at_filter_threshold"],
                                                 strict=True))
        context["query"] = request.GET.urlencode()
    elif request.method == "POST":
        return render(request, "evaluation/report.html", context, status=400)
    return render(request, "evaluation/report.html", context)


def finished_report(request) -> dict:
    """The newest finished report for the request's parameters (404 when there is none yet)."""
    form = ReportForm(request.GET)
    if not form.is_valid():
        raise Http404("choose classifiers, datasets and campaigns")
    computation = jobs.latest(Computation.Kind.REPORT, report_params(form), finished=True)
    if computation is None:
        raise Http404("this report is not computed yet: compute it on the report page")
    return computation.result


@require_GET
@pm_only
def report_data(request, name: str, fmt: str):
    built = finished_report(request)
    if fmt == "json":
        return JsonResponse(built if name == "report" else {"rows": report.tables(built)[name]})
    if fmt == "csv":
        buffer = io.StringIO()
        csv.writer(buffer).writerows(report.tables(built)[name])
        response = HttpResponse(buffer.getvalue(), content_type="text/csv")
    else:
        draw = {"figure2": plots.figure2, "figure3": plots.figure3}[name]
        response = HttpResponse(draw(built, fmt), content_type=plots.FORMATS[fmt])
    response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"' if fmt != "png" else "inline"
    return response


class ThresholdForm(forms.Form):
    classifier = forms.ChoiceField()
    comparison_dataset = forms.ModelChoiceField(Dataset.objects.all(), help_text="a comparison set's judged pairs")
    lower_bound = forms.FloatField(min_value=0, max_value=1, initial=thresholds.LOWER_BOUND)
    level = forms.FloatField(min_value=0.5, max_value=0.999, initial=thresholds.LEVEL)
    allow_extrapolation = forms.BooleanField(
        required=False, label="Choose even from prompts with fewer than 101 completions",
        help_text="their chance that 100 draws all fail is extrapolated, and the estimate can be too high")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["classifier"].choices = [(v, v) for v in ready_versions()]

    def params(self) -> dict:
        data = self.cleaned_data
        return {"classifier": data["classifier"], "comparison_dataset": data["comparison_dataset"].pk,
                "lower_bound": data["lower_bound"], "level": data["level"],
                "allow_extrapolation": data["allow_extrapolation"]}


@require_http_methods(["GET", "POST"])
@pm_only
def threshold_page(request):
    form = ThresholdForm(request.GET or None)
    context = {"form": form}
    if not (form.is_bound and form.is_valid()):
        return render(request, "evaluation/thresholds.html", context, status=400 if request.method == "POST" else 200)
    params = form.params()
    if request.method == "POST" and request.POST.get("action") == "apply":
        try:
            computation_id = UUID(request.POST.get("computation", ""))
        except ValueError:
            raise Http404("no such finished threshold selection") from None
        chosen = Computation.objects.filter(pk=computation_id, kind=Computation.Kind.THRESHOLDS,
                                            status=Computation.Status.FINISHED, params=params).first()
        if chosen is None:
            raise Http404("no such finished threshold selection")
        try:
            thresholds.apply_result(chosen.result)
            context["applied"] = True
        except EvaluationError as exc:
            context["apply_error"] = str(exc)
    elif request.method == "POST":
        return _after_request(request, Computation.Kind.THRESHOLDS, params)
    _with_status(context, Computation.Kind.THRESHOLDS, params)
    context["query"] = request.GET.urlencode()
    if (shown := context["shown"]) is not None:
        result = shown.result
        sweep = SimpleNamespace(level=result["level"], **{k: v for k, v in result["sweep"].items()})
        png = plots.preference_curve(sweep, result["threshold"], result["lower_bound"], result["min_accepted_sides"])
        current = ClassifierVersion.objects.filter(version=result["version"]).values_list("threshold", flat=True)
        context.update(result=result, curve=base64.b64encode(png).decode(), current_threshold=current.first())
    return render(request, "evaluation/thresholds.html", context)
