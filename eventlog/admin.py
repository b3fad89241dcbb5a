import json

from django.contrib import admin
from django.utils.html import format_html

from eventlog.models import Event, EventTypeCount, ProjectionCheckpoint


class ActorFilter(admin.SimpleListFilter):
    title = "actor"
    parameter_name = "actor"

    def lookups(self, request, model_admin):
        actors = (
            Event.objects.order_by()
            .values_list("metadata__actor", flat=True)
            .distinct()[:200]
        )
        return [(a, a) for a in sorted(a for a in actors if a)]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(metadata__actor=self.value())
        return queryset


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("position", "type", "stream_type", "stream_id", "version", "actor", "recorded_at")
    list_filter = ("type", "stream_type", ActorFilter, "recorded_at")
    search_fields = ("=stream_id", "=event_id")
    date_hierarchy = "recorded_at"
    show_full_result_count = False
    list_per_page = 100
    ordering = ("-position",)
    fields = (
        "position",
        "event_id",
        "type",
        "schema_version",
        "stream_type",
        "stream_id",
        "version",
        "recorded_at",
        "pretty_payload",
        "pretty_metadata",
    )
    readonly_fields = fields

    @admin.display(description="actor")
    def actor(self, obj):
        return obj.metadata.get("actor", "")

    @admin.display(description="payload")
    def pretty_payload(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, ensure_ascii=False))

    @admin.display(description="metadata")
    def pretty_metadata(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.metadata, indent=2, ensure_ascii=False))


@admin.register(ProjectionCheckpoint)
class ProjectionCheckpointAdmin(ReadOnlyAdmin):
    list_display = ("name", "position", "updated_at")


@admin.register(EventTypeCount)
class EventTypeCountAdmin(ReadOnlyAdmin):
    list_display = ("type", "count", "last_position", "last_recorded_at")
