"""The hook through which `store.append` brings the inline projections up to a batch it wrote.

The projection framework installs itself here when it is imported (`eventlog.projections`), so
the store never imports the framework that reads from it. With nothing installed no projection
is inline, as when none is registered.
"""

from collections.abc import Callable, Sequence
from typing import Protocol


class InlineProjections(Protocol):
    def for_types(self, types: set[str]) -> list:
        """The inline projections that consume any of these event types."""

    def apply(self, projection, events: Callable[[], Sequence], last_position: int) -> bool:
        """Bring `projection` up to a batch just appended (`events()`: its `store.StoredEvent`s,
        built on first call; up to `last_position`); True if doing so put the batch on disk."""


_installed: InlineProjections | None = None


def install(hook: InlineProjections) -> None:
    global _installed
    _installed = hook


def installed() -> InlineProjections | None:
    return _installed
