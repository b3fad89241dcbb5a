import os
import time

from django.db.models import F, Value
from django.db.models.functions import Concat

from eventlog.projections import Projection, StreamProjection, register
from eventlog.store import Stream
from tests.fixture_app.models import Item, StreamItem, TickTotal


@register
class Items(Projection):
    name = "fixture.items"
    event_types = frozenset({"fixture.item_added", "fixture.item_renamed"})
    inline = True

    def handle(self, event):
        if event.type == "fixture.item_added":
            Item.objects.create(
                stream_id=event.stream.id, name=event.payload["name"], quantity=event.payload["quantity"], events=1
            )
        else:
            Item.objects.filter(stream_id=event.stream.id).update(name=event.payload["name"], events=F("events") + 1)

    def reset(self):
        Item.objects.all().delete()


@register
class TickTotals(Projection):
    name = "fixture.tick_totals"
    event_types = frozenset({"fixture.tick"})
    batch_size = 50

    def handle(self, event):
        # FIXTURE_SLOW_HANDLER lets the kill test catch a consumer in the middle of a batch.
        delay = float(os.environ.get("FIXTURE_SLOW_HANDLER", "0"))
        if delay:
            time.sleep(delay)
        row, _ = TickTotal.objects.get_or_create(stream_id=event.stream.id)
        TickTotal.objects.filter(pk=row.pk).update(
            count=F("count") + 1,
            total=F("total") + event.payload["n"],
            positions_hash=(F("positions_hash") * 31 + event.position) % 1_000_000_007,
        )

    def reset(self):
        TickTotal.objects.all().delete()


@register
class StreamItems(StreamProjection):
    """The item events again, kept per stream: applied by each writer for its own streams."""

    name = "fixture.stream_items"
    event_types = frozenset({"fixture.item_added", "fixture.item_renamed"})

    def applied_versions(self, streams, *, lock):
        rows = StreamItem.objects.filter(stream_id__in=[s.id for s in streams if s.type == "item"])
        if lock:
            rows = rows.order_by("stream_id").select_for_update()
        return {Stream("item", stream_id): version for stream_id, version in rows.values_list("stream_id", "version")}

    def handle(self, event):
        delay = float(os.environ.get("FIXTURE_SLOW_STREAM_HANDLER", "0"))
        if delay:
            time.sleep(delay)
        if event.type == "fixture.item_added":
            StreamItem.objects.create(
                stream_id=event.stream.id, name=event.payload["name"], version=event.version,
                positions=str(event.position),
            )
        else:
            item = StreamItem.objects.get(stream_id=event.stream.id)
            assert item.version == event.version - 1, f"{event.stream} applied out of order"
            item.name, item.version = event.payload["name"], event.version
            item.positions += f",{event.position}"
            item.save()

    def apply_following(self, event):
        if event.type != "fixture.item_renamed":
            return False
        return bool(
            StreamItem.objects.filter(stream_id=event.stream.id, version=event.version - 1).update(
                name=event.payload["name"], version=event.version,
                positions=Concat(F("positions"), Value(f",{event.position}")),
            )
        )

    def reset(self):
        StreamItem.objects.all().delete()
