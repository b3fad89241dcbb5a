"""The event log's own read model: event counts per type, shown in the admin."""

from collections import defaultdict

from django.db.models import F

from eventlog.models import EventTypeCount
from eventlog.projections import Projection, register


@register
class EventTypeCounts(Projection):
    name = "eventlog.type_counts"
    batch_size = 5000

    def apply(self, events):
        grouped = defaultdict(list)
        for event in events:
            grouped[event.type].append(event)
        for type_name, batch in grouped.items():
            last = batch[-1]
            updated = EventTypeCount.objects.filter(type=type_name).update(
                count=F("count") + len(batch),
                last_position=last.position,
                last_recorded_at=last.recorded_at,
            )
            if not updated:
                EventTypeCount.objects.create(
                    type=type_name,
                    count=len(batch),
                    last_position=last.position,
                    last_recorded_at=last.recorded_at,
                )

    def reset(self):
        EventTypeCount.objects.all().delete()
