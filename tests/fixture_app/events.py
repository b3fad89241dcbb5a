from eventlog.registry import Payload, event_type


def _v1_to_v2(data):
    # v1 had no quantity; every v1 item counted once.
    return {**data, "quantity": 1}


@event_type("fixture.item_added", version=2, upcasters={1: _v1_to_v2})
class ItemAdded(Payload):
    name: str
    quantity: int


@event_type("fixture.item_renamed")
class ItemRenamed(Payload):
    name: str


@event_type("fixture.tick")
class Tick(Payload):
    n: int
