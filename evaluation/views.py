"""The report for project managers: a page, its figures and the data behind each (CSV, JSON)."""

import base64
import csv
import io

from django import forms
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods

from annotation import roles
from annotation.models import Dataset
from attacks.models import Campaign
from evaluation import plots, report, thresholds
from modelserve.models import ClassifierVersion, GenerationJob

pm_only = roles.role_required(roles.is_pm, "for project managers")


class ReportForm(forms.Form):
    classifiers = forms.MultipleChoiceField()
    comparison_dataset = forms.ModelChoiceField(Dataset.objects.all(), required=False,
                                                help_text="quality comparisons")
    test_dataset = forms.ModelChoiceField(Dataset.objects.all(), required=False,
                                          help_text="double-labelled in-distribution test snippets")
    campaigns = forms.MultipleChoiceField(required=False, help_text="tool-assisted attack campaigns")
    quality_checks = forms.MultipleChoiceField(required=False, help_text="direct quality check jobs")
    seed = forms.IntegerField(initial=0, required=False)

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
        )


def spec_from(request) -> report.ReportSpec:
    form = ReportForm(request.GET)
    if not form.is_valid():
        raise Http404("choose classifiers, datasets and campaigns")
    return form.spec()


@require_GET
@pm_only
def report_page(request):
    form = ReportForm(request.GET or None)
    context = {"form": form}
    if request.GET and form.is_valid():
        try:
            context["report"] = report.cached(form.spec())
        except report.ReportError as exc:
            form.add_error(None, str(exc))
        context["query"] = request.GET.urlencode()
    return render(request, "evaluation/report.html", context)


@require_GET
@pm_only
def report_data(request, name: str, fmt: str):
    built = report.cached(spec_from(request))
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
    comparison_dataset = forms.ModelChoiceField(Dataset.objects.all())
    lower_bound = forms.FloatField(min_value=0, max_value=1, initial=thresholds.LOWER_BOUND)
    level = forms.FloatField(min_value=0.5, max_value=0.999, initial=thresholds.LEVEL)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["classifier"].choices = [(v, v) for v in ClassifierVersion.objects.filter(
            status="ready").values_list("version", flat=True)]


@require_http_methods(["GET", "POST"])
@pm_only
def threshold_page(request):
    form = ThresholdForm(request.POST or request.GET or None)
    context = {"form": form}
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        selection = thresholds.select_threshold(data["classifier"], data["comparison_dataset"].pk,
                                                lower_bound=data["lower_bound"], level=data["level"])
        context["selection"] = selection
        png = plots.preference_curve(selection.sweep, selection.threshold, data["lower_bound"])
        context["curve"] = base64.b64encode(png).decode()
        if selection.threshold is not None:
            context["at_chosen"] = selection.at(selection.threshold)
        if request.method == "POST" and selection.threshold is not None:
            thresholds.apply(selection)
            context["applied"] = True
    refused = request.method == "POST" and not (form.is_bound and form.is_valid())
    return render(request, "evaluation/thresholds.html", context, status=400 if refused else 200)
