"""An append returns only once durable, and what leaves the database is on disk first.

While appends queue for the lock, a one-statement append on PostgreSQL commits without
waiting for the disk (the append lock is released at commit) and forces the flush before it
returns; meanwhile other sessions can read the event, so the feed and exports flush before
handing anything out.
"""

import threading
from dataclasses import dataclass

import pytest
from django.db import connection, transaction

from eventlog import durability, feed, reading, store
from eventlog.store import NewEvent, Stream, append
from tests.conftest import commit_without_flush, on_disk
from tests.fixture_app.events import ItemAdded, ItemRenamed, Tick
from tests.fixture_app.models import StreamItem

pytestmark = pytest.mark.usefixtures("postgres_only")


@pytest.fixture(autouse=True)
def no_contention_remembered(monkeypatch):
    monkeypatch.setattr(durability, "contention", durability._RecentContention())


def current_insert_position() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
        return cursor.fetchone()[0]


@dataclass
class Insert:
    committed_to: str | None  # the WAL position right after it committed (None: in a transaction)
    flushed_at_commit: bool


@pytest.fixture
def inserts(monkeypatch) -> list[Insert]:
    """What each append's INSERT did, as append sees it."""
    noted = []
    insert = store._insert_postgres

    def insert_and_note(db, batch, may_commit_before_flush):
        stored, flushed = insert(db, batch, may_commit_before_flush)
        committed_to = None if connection.in_atomic_block else current_insert_position()
        noted.append(Insert(committed_to, flushed))
        return stored, flushed

    monkeypatch.setattr(store, "_insert_postgres", insert_and_note)
    return noted


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("events", [1, 10])
def test_an_append_alone_commits_with_its_flush(inserts, events):
    append([NewEvent(Stream("clock", "c"), Tick(n=n)) for n in range(events)])

    assert [i.flushed_at_commit for i in inserts] == [True]
    assert on_disk(inserts[0].committed_to)


@pytest.mark.django_db(transaction=True)
def test_an_append_that_queued_for_the_lock_returns_once_on_disk(inserts):
    holder = connection.get_new_connection(connection.get_connection_params())
    holder.execute("SELECT eventlog_take_append_lock()")  # in a transaction: held until commit
    release = threading.Timer(0.3, holder.commit)
    release.start()
    try:
        append([NewEvent(Stream("clock", "c"), Tick(n=1))])
    finally:
        release.join()
        holder.close()

    assert [i.flushed_at_commit for i in inserts] == [False]  # it queued: committed before its flush
    assert on_disk(inserts[0].committed_to)
    assert durability.contention.recent()  # the next appends from this process will too


@pytest.mark.django_db(transaction=True)
def test_a_stream_projections_own_commit_puts_the_queued_append_on_disk(inserts, monkeypatch):
    item = Stream("item", "durable")
    append([NewEvent(item, ItemAdded(name="lamp", quantity=1))])
    durability.contention.saw_wait()  # appends contend: the next one commits before its flush
    separate_flushes, flush = [], durability.make_durable
    monkeypatch.setattr(durability, "make_durable", lambda: separate_flushes.append(flush()))

    append([NewEvent(item, ItemRenamed(name="torch"))])  # applied by `apply_following`, one statement

    assert inserts[-1].flushed_at_commit is False
    assert StreamItem.objects.get(stream_id="durable").name == "torch"
    assert separate_flushes == []
    assert on_disk(inserts[-1].committed_to)


@pytest.mark.django_db(transaction=True)
def test_an_append_in_a_callers_transaction_commits_with_its_flush(inserts):
    durability.contention.saw_wait()  # even while appends contend
    with transaction.atomic():
        append([NewEvent(Stream("clock", "c"), Tick(n=1))])
    committed_to = current_insert_position()

    assert [i.flushed_at_commit for i in inserts] == [True]
    assert on_disk(committed_to)


@pytest.mark.django_db(transaction=True)
def test_a_feed_page_is_on_disk_before_it_is_returned(inserts, monkeypatch):
    before = reading.head_position()
    durability.contention.saw_wait()
    with monkeypatch.context() as patch:
        patch.setattr(durability, "make_durable", lambda: None)  # a writer stopped between commit and flush
        append([NewEvent(Stream("clock", "c"), Tick(n=1))])
    assert inserts[0].flushed_at_commit is False

    page = feed.page(after=before)

    assert [e.payload for e in page.events] == [{"n": 1}]
    assert on_disk(inserts[0].committed_to)


@pytest.mark.django_db(transaction=True)
def test_make_durable_outside_a_transaction_flushes_what_others_committed():
    committed_to = commit_without_flush()
    durability.make_durable()
    assert on_disk(committed_to)


@pytest.mark.django_db(transaction=True)
def test_make_durable_inside_a_read_only_snapshot_flushes_from_another_session():
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute("SELECT 1")
        committed_to = commit_without_flush()
        durability.make_durable()
        assert on_disk(committed_to)
