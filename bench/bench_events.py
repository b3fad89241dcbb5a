"""The event type the benchmarks append: the shape of a label submission."""

from typing import Literal

from eventlog.registry import Payload, event_type


@event_type("bench.sample")
class Sample(Payload):
    snippet_id: int
    label: Literal["injurious", "not_injurious", "unsure"]
    labeller: str
    seconds: float
