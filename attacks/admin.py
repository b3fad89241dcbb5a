"""Project managers' administration of attack campaigns, submissions and paraphrase jobs."""

from uuid import UUID

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.urls import path

from annotation.admin import PMOnly, ReadOnly
from annotation.models import Dataset, Split
from attacks import paraphrasing, selectors, services
from attacks.errors import AttackError
from attacks.models import Campaign, ParaphraseCandidate, ParaphraseJob, Submission
from config.admin_pages import form_page
from modelserve.selectors import ready_versions
from modelserve.types import MAX_SEED


def _ready_versions():
    return [(v, v) for v in ready_versions()]


class CampaignForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="contractors see it: never name a classifier")
    kind = forms.ChoiceField(choices=Campaign.Kind.choices)
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.filter(active=True),
                                     help_text="where submitted attacks are labelled")
    split = forms.ChoiceField(choices=Split.choices, initial=Split.TRAIN)
    target_version = forms.ChoiceField(required=False, help_text="the classifier attacked (or an experiment below)")
    experiment_classifiers = forms.MultipleChoiceField(
        required=False, help_text="an experiment: each contractor gets one of these at random each working day")
    seed = forms.IntegerField(initial=0, min_value=0, max_value=MAX_SEED,
                              help_text="the experiment's draws are reproducible from it")
    threshold = forms.FloatField(min_value=1e-6, max_value=0.999, initial=services.DEFAULT_THRESHOLD)
    idle_cap_seconds = forms.IntegerField(min_value=1, max_value=services.MAX_IDLE_CAP_SECONDS,
                                          initial=services.DEFAULT_IDLE_CAP_SECONDS,
                                          help_text="a longer idle gap counts this long")
    time_zone = forms.CharField(initial=settings.TIME_ZONE, help_text="working days are dates in this zone")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target_version"].choices = [("", "—"), *_ready_versions()]
        self.fields["experiment_classifiers"].choices = _ready_versions()


class SwitchTargetForm(forms.Form):
    version = forms.ChoiceField(help_text="new work attacks this classifier; submitted work keeps its own")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["version"].choices = _ready_versions()


@admin.register(Campaign)
class CampaignAdmin(PMOnly, admin.ModelAdmin):
    list_display = ("name", "kind", "attacked", "threshold", "active", "opened_at")
    list_filter = ("kind", "active")
    actions = ["close"]

    @admin.display(description="classifier")
    def attacked(self, obj):
        return obj.target_version or "experiment: " + ", ".join(obj.experiment_classifiers)

    @admin.action(description="Close the selected campaigns")
    def close(self, request, queryset):
        for campaign in queryset:
            services.close_campaign(campaign=campaign)
        self.message_user(request, "closed")

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):  # this view replaces the one that checks
            raise PermissionDenied
        form = CampaignForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                campaign = services.open_campaign(
                    name=data["name"], kind=data["kind"], dataset=data["dataset"], split=data["split"],
                    target_version=data["target_version"] or None,
                    experiment_classifiers=data["experiment_classifiers"], seed=data["seed"],
                    threshold=data["threshold"], idle_cap_seconds=data["idle_cap_seconds"],
                    time_zone=data["time_zone"],
                )
            except AttackError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Campaign {campaign.name} opened.")
                return redirect("admin:attacks_campaign_change", campaign.pk)
        return form_page(self.admin_site, request, title="Open an attack campaign", form=form, submit_label="Open")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not self.has_change_permission(request):  # this view replaces the one that checks
            raise PermissionDenied
        campaign = self.get_object(request, unquote(object_id))  # None for an id that is not a UUID
        if campaign is None:
            raise Http404("no such campaign")
        form = SwitchTargetForm(request.POST or None, initial={"version": campaign.target_version})
        if request.method == "POST" and form.is_valid():
            try:
                services.switch_target(campaign=campaign, version=form.cleaned_data["version"])
            except AttackError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"New work on {campaign.name} attacks {form.cleaned_data['version']}.")
                return redirect(request.path)
        extra = {
            "campaign": campaign,
            "targets": campaign.targets.all(),
            "effort": selectors.effort_by_classifier(campaign),
            "switch_form": None if campaign.is_experiment else form,
        }
        return form_page(self.admin_site, request, title=campaign.name, form=form,
                         template="admin/attacks/campaign_detail.html", opts=self.model._meta, **extra)


class ParaphraseForm(forms.Form):
    campaign = forms.ModelChoiceField(queryset=Campaign.objects.filter(kind="paraphrase", active=True),
                                      help_text="its classifier scores the candidates; accepted ones join its dataset")
    few_shot_prompt = forms.CharField(widget=forms.Textarea(attrs={"rows": 18, "cols": 100}),
                                      initial=paraphrasing.DEFAULT_FEW_SHOT_PROMPT,
                                      help_text="{prompt} and {completion} stand for the snippet")
    goal = forms.IntegerField(min_value=5, max_value=paraphrasing.MAX_ACCEPTED, initial=5,
                              help_text="accepted paraphrases wanted per snippet")
    budget = forms.IntegerField(min_value=5, max_value=1000, initial=60, help_text="candidates generated at most")


@admin.register(Submission)
class SubmissionAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("snippet_id", "campaign", "user_id", "day", "version", "score", "confirmed")
    list_filter = ("campaign", "version", "day")
    actions = ["paraphrase"]

    def get_queryset(self, request):
        return selectors.submissions()

    @admin.display(boolean=True, description="confirmed injurious")
    def confirmed(self, obj):
        return obj.success

    @admin.action(description="Paraphrase the selected successful attacks…")
    def paraphrase(self, request, queryset):
        ids = [str(s.snippet_id) for s in queryset if s.success]
        if not ids:
            self.message_user(request, "none of these is confirmed injurious yet", messages.WARNING)
            return None
        request.session["paraphrase_snippets"] = ids
        return redirect("admin:attacks_submission_paraphrase")

    def get_urls(self):
        return [path("paraphrase/", self.admin_site.admin_view(self.paraphrase_view),
                     name="attacks_submission_paraphrase"), *super().get_urls()]

    def paraphrase_view(self, request):
        if not self.has_view_permission(request):
            return redirect("admin:index")
        ids = [UUID(i) for i in request.session.get("paraphrase_snippets", [])]
        form = ParaphraseForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                jobs = paraphrasing.request_paraphrases(campaign=data["campaign"], snippet_ids=ids,
                                                        few_shot_prompt=data["few_shot_prompt"],
                                                        goal=data["goal"], budget=data["budget"])
            except AttackError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"{len(jobs)} paraphrase job(s) queued.")
                return redirect("admin:attacks_paraphrasejob_changelist")
        title = f"Paraphrase {len(ids)} successful attack(s)"
        return form_page(self.admin_site, request, title=title, form=form, submit_label="Queue")


class CandidateInline(admin.TabularInline):
    model = ParaphraseCandidate
    fields = ("attempt", "completion", "score", "outcome", "snippet_id")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ParaphraseJob)
class ParaphraseJobAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("source_snippet_id", "campaign", "status", "progress", "finish_reason", "updated_at")
    list_filter = ("status", "campaign")
    readonly_fields = ("campaign", "source_snippet_id", "version", "threshold", "goal", "budget", "accepted",
                       "attempts", "status", "finish_reason", "failure", "few_shot_prompt")
    fields = readonly_fields
    inlines = [CandidateInline]
    actions = ["resume"]

    @admin.display(description="accepted / goal · candidates / budget")
    def progress(self, obj):
        return f"{obj.accepted} / {obj.goal} · {obj.attempts} / {obj.budget}"

    @admin.action(description="Resume the selected failed jobs")
    def resume(self, request, queryset):
        for job in queryset.filter(status=ParaphraseJob.Status.FAILED):
            paraphrasing.resume_paraphrasing(job=job)
        self.message_user(request, "failed jobs resumed")
