"""Project managers' administration of labelling. Every page here is for PMs only."""

from django import forms
from django.contrib import admin, messages
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html

from annotation import roles, selectors, services
from annotation.errors import AnnotationError
from annotation.importing import read_snippet_file
from annotation.models import Assignment, Dataset, Member, Snippet, Source, Split, TaskKind, Vendor, WorkItem
from config.admin_pages import form_page


class PMOnly:
    """Only project managers see or change these, whatever Django permissions say."""

    def has_module_permission(self, request):
        return roles.is_pm(request.user)

    def has_view_permission(self, request, obj=None):
        return roles.is_pm(request.user)

    def has_add_permission(self, request, *args):
        return roles.is_pm(request.user)

    def has_change_permission(self, request, obj=None):
        return roles.is_pm(request.user)

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnly(PMOnly):
    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Vendor)
class VendorAdmin(PMOnly, admin.ModelAdmin):
    list_display = ("name",)
    search_fields = ("name",)


@admin.register(Member)
class MemberAdmin(PMOnly, admin.ModelAdmin):
    list_display = ("user", "role", "vendor", "active")
    list_filter = ("role", "vendor", "user__is_active")
    search_fields = ("user__username",)
    actions = ["activate", "deactivate"]

    @admin.display(boolean=True)
    def active(self, obj):
        return obj.user.is_active

    @admin.action(description="Activate the selected people")
    def activate(self, request, queryset):
        self._set_active(request, queryset, True)

    @admin.action(description="Deactivate the selected people (they can no longer log in)")
    def deactivate(self, request, queryset):
        self._set_active(request, queryset, False)

    def _set_active(self, request, queryset, active):
        from django.contrib.auth import get_user_model

        count = get_user_model().objects.filter(member__in=queryset).update(is_active=active)
        self.message_user(request, f"{count} people {'activated' if active else 'deactivated'}")


class ImportForm(forms.Form):
    file = forms.FileField(help_text="JSONL (one object a line) or CSV with a header; prompt and completion")
    source = forms.ChoiceField(choices=Source.choices, initial=Source.INITIAL, help_text="for rows without one")
    split = forms.ChoiceField(choices=Split.choices, initial=Split.TRAIN, help_text="for rows without one")


class ComparisonForm(forms.Form):
    pairs_per_prompt = forms.IntegerField(min_value=4, max_value=100, initial=4)
    seed = forms.IntegerField(initial=0)


@admin.register(Dataset)
class DatasetAdmin(PMOnly, admin.ModelAdmin):
    list_display = ("name", "labels_required", "tie_break", "offer_unsure", "active", "progress", "tools")
    list_filter = ("active",)
    actions = ["request_ratings_for_injurious"]

    @admin.display(description="progress")
    def progress(self, obj):
        p = selectors.dataset_progress(obj)
        return f"{p['settled']}/{p['snippets']} settled, {p['tie_breaks']} tie-breaks, {p['held']} held"

    @admin.display(description="")
    def tools(self, obj):
        return format_html(
            '<a href="{}">import</a> · <a href="{}">comparisons</a> · <a href="{}">agreement</a>',
            reverse("admin:annotation_dataset_import", args=[obj.pk]),
            reverse("admin:annotation_dataset_comparisons", args=[obj.pk]),
            reverse("annotation:oversee_dataset", args=[obj.pk]),
        )

    def get_urls(self):
        return [
            path("<int:pk>/import/", self.admin_site.admin_view(self.import_view), name="annotation_dataset_import"),
            path(
                "<int:pk>/comparisons/",
                self.admin_site.admin_view(self.comparisons_view),
                name="annotation_dataset_comparisons",
            ),
            *super().get_urls(),
        ]

    def _form_page(self, request, dataset, form, title, errors=()):
        return form_page(self.admin_site, request, title=title, form=form, template="admin/annotation/dataset_form.html",
                         dataset=dataset, errors=errors, opts=self.model._meta)

    def import_view(self, request, pk):
        if not self.has_change_permission(request):
            return redirect("admin:index")
        dataset = get_object_or_404(Dataset, pk=pk)
        form = ImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            rows, errors = read_snippet_file(
                upload.read(), filename=upload.name,
                default_source=form.cleaned_data["source"], default_split=form.cleaned_data["split"],
            )
            if errors:
                return self._form_page(request, dataset, form, f"Import into {dataset}: refused", errors)
            result = services.import_snippets(dataset=dataset, rows=rows, filename=upload.name)
            messages.success(
                request, f"Imported {result.added} snippets; {len(result.duplicate_lines)} duplicates skipped."
            )
            return redirect("admin:annotation_dataset_changelist")
        return self._form_page(request, dataset, form, f"Import into {dataset}")

    def comparisons_view(self, request, pk):
        if not self.has_change_permission(request):
            return redirect("admin:index")
        dataset = get_object_or_404(Dataset, pk=pk)
        form = ComparisonForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                count = services.create_comparisons(dataset=dataset, **form.cleaned_data)
            except AnnotationError as exc:
                return self._form_page(request, dataset, form, "Comparisons", [str(exc)])
            messages.success(request, f"Created {count} comparison pairs.")
            return redirect("admin:annotation_dataset_changelist")
        return self._form_page(request, dataset, form, f"Comparison pairs for {dataset}")

    @admin.action(description="Request egregiousness ratings of the snippets labelled injurious")
    def request_ratings_for_injurious(self, request, queryset):
        total = 0
        for dataset in queryset:
            ids = list(
                WorkItem.objects.filter(dataset=dataset, kind=TaskKind.LABEL, final_label="injurious")
                .values_list("subject_id", flat=True)
            )
            total += services.request_ratings(dataset=dataset, snippet_ids=ids)
        self.message_user(request, f"Requested ratings for {total} snippets")


@admin.register(Snippet)
class SnippetAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("completion", "dataset", "source", "split")
    list_filter = ("dataset", "source", "split")
    search_fields = ("prompt", "completion")
    show_full_result_count = False


@admin.register(Assignment)
class AssignmentAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("task_id", "kind", "dataset", "user", "state", "served_at", "expires_at", "seconds")
    list_filter = ("state", "work_item__kind", "work_item__dataset")
    search_fields = ("user__username",)
    actions = ["reassign", "expire_overdue"]
    show_full_result_count = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("work_item__dataset", "user")

    @admin.display(description="kind")
    def kind(self, obj):
        return obj.work_item.kind

    @admin.display(description="dataset")
    def dataset(self, obj):
        return obj.work_item.dataset

    @admin.action(description="Take back the selected held tasks (they are served to someone else)")
    def reassign(self, request, queryset):
        count = sum(services.reassign_task(task_id=task_id) for task_id in queryset.values_list("task_id", flat=True))
        self.message_user(request, f"{count} held tasks taken back")

    @admin.action(description="Expire every overdue hold now")
    def expire_overdue(self, request, queryset):
        self.message_user(request, f"{services.expire_holds()} overdue holds expired")
