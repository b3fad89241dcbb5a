"""`GET /api/v1/events`: the event feed for API clients allowed to read the log."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from config.api import errors
from eventlog import feed


class CanReadTheLog(BasePermission):
    """The log holds everyone's work: only users with `eventlog.view_event` (PMs) read it."""

    message = "reading the event log needs the eventlog.view_event permission"

    def has_permission(self, request, view):
        return request.user.is_authenticated and request.user.has_perm("eventlog.view_event")


def _int(request, name: str, default: int) -> int:
    raw = request.query_params.get(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise ValidationError({name: "a whole number"}) from None


class EventOutput(serializers.Serializer):
    position = serializers.IntegerField(help_text="global, in commit order")
    event_id = serializers.UUIDField()
    stream = serializers.CharField(help_text="stream type / stream id")
    version = serializers.IntegerField(help_text="the event's number in its stream")
    type = serializers.CharField()
    schema_version = serializers.IntegerField()
    payload = serializers.DictField()
    metadata = serializers.DictField(help_text="actor, request_id, correlation_id, causation_id")
    recorded_at = serializers.DateTimeField()


class FeedOutput(serializers.Serializer):
    events = EventOutput(many=True)
    next_after = serializers.IntegerField(help_text="ask for the events after this position next")
    head = serializers.IntegerField(help_text="the log's last position when the page was read")
    has_more = serializers.BooleanField()


@extend_schema(
    summary="The event log after a position, in pages", tags=["events"],
    parameters=[
        OpenApiParameter("after", OpenApiTypes.INT, description="the last position the client has (default 0)"),
        OpenApiParameter("limit", OpenApiTypes.INT, description=f"events per page, 1 to {feed.MAX_PAGE} "
                                                                "(default 1000)"),
        OpenApiParameter("types", OpenApiTypes.STR, description="comma-separated event types (default: all)"),
    ],
    responses={200: FeedOutput, **errors(400, 403, e403="needs the eventlog.view_event permission")},
)
@api_view(["GET"])
@permission_classes([CanReadTheLog])
def events(request):
    types = [t for t in request.query_params.get("types", "").split(",") if t]
    try:
        found = feed.page(after=_int(request, "after", 0), types=types, limit=_int(request, "limit", 1000))
    except ValueError as exc:
        raise ValidationError({"detail": str(exc)}) from None
    return Response({"events": [feed.as_json(e) for e in found.events], "next_after": found.next_after,
                     "head": found.head, "has_more": found.has_more})
