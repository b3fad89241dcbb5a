import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from tests.tiny_models import make_tokenizer, save_checkpoint


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    """A WordPiece tokenizer over the tiny models' vocabulary."""
    return make_tokenizer(tmp_path_factory.mktemp("vocab"))


@pytest.fixture
def register(tmp_path, tokenizer):
    """Register a tiny classifier checkpoint under `version` (a ready classifier); returns its folder."""
    from modelserve import registry

    def make(version, *, bias=None, seed=7, base_model="tiny-bert"):
        folder = save_checkpoint(tmp_path / f"ckpt-{version}", tokenizer, seed=seed, bias=bias)
        registry.register_checkpoint(version=version, checkpoint_dir=str(folder), base_model=base_model)
        return folder

    return make


@pytest.fixture
def vendor():
    return connection.vendor


@pytest.fixture
def postgres_only(vendor):
    if vendor != "postgresql":
        pytest.skip("PostgreSQL only")


def run_threads(*targets, timeout: float = 60.0):
    """Run callables in threads, each with its own connection; re-raise the first error."""
    errors = []

    def wrap(target):
        def run():
            try:
                target()
            except BaseException as exc:  # noqa: BLE001 - reported to the test below
                errors.append(exc)
            finally:
                connections.close_all()

        return run

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a worker thread hung"
    if errors:
        raise errors[0]


class Clock:
    """The server's clock, moved by the test: `timezone.now()` everywhere, event times included."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch):
    clock = Clock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    monkeypatch.setattr(timezone, "now", lambda: clock.now)
    return clock


def commit_without_flush() -> str:
    """Commit a transaction on another connection without waiting for the disk (as an append
    does before its flush); the WAL position its commit reaches."""
    side = connection.get_new_connection(connection.get_connection_params())
    try:
        side.autocommit = True
        with side.transaction():
            side.execute("SET LOCAL synchronous_commit = off")
            side.execute("SELECT pg_logical_emit_message(true, 'test', 'unflushed')")
        return side.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]
    finally:
        side.close()


def on_disk(lsn: str) -> bool:
    """Whether PostgreSQL has flushed its WAL up to `lsn`."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_flush_lsn() >= %s::pg_lsn", [lsn])
        return cursor.fetchone()[0]
