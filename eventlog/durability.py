"""When an appended event is on disk, and making sure before it leaves the database.

A commit that waits for its WAL to reach disk holds the append lock (released at commit)
through the flush, so appends that queue for the lock are serialised flush by flush. So on
PostgreSQL, while appends contend for the lock (this one had to wait, or one from this
process did within the last second), a one-statement append commits without waiting for
the disk and `append` forces the flush before returning; the queued appends' flushes then
share disk writes. Either way an append is acknowledged only once durable.
In between, other sessions may read the event. Within the database that is harmless: the
WAL is replayed in order, so whatever is later written from such a read (a projection's
rows, another append) can be lost in a crash only together with the event. A reader that
hands events or read models out of the database (the feed, dataset exports) calls
`make_durable` first. A writer alone commits with its flush: one round trip. An append whose
event a stream projection then applies in a statement of its own (`apply_following`) needs
no separate flush: that statement's commit waits for the disk, and the WAL is flushed in
order (this relies on `synchronous_commit` being on for the session, PostgreSQL's default).
"""

import threading
import time
from collections.abc import Callable

from django.db import connection

from eventlog import sql


class _RecentContention:
    """Whether an append from this process has waited for the append lock lately."""

    MEMORY_S = 1.0

    def __init__(self) -> None:
        self._until = 0.0

    def saw_wait(self) -> None:
        self._until = time.monotonic() + self.MEMORY_S

    def recent(self) -> bool:
        return time.monotonic() < self._until


contention = _RecentContention()

# Forces a flush (the WAL record makes this a transaction whose commit waits for the disk)
# unless everything written to the WAL so far is already on disk.
FLUSH_WAL = (
    "SELECT CASE WHEN pg_current_wal_flush_lsn() < pg_current_wal_insert_lsn()"
    " THEN pg_logical_emit_message(true, 'eventlog', '') END"
)


class _SharedFlushes:
    """The flushes this process's threads force, one at a time: a thread that needs the WAL on
    disk waits for a flush that began after it asked, rather than running one of its own."""

    PATIENCE_S = 1.0  # a running flush slower than this: flush alongside it

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._running = False
        self._covered = 0  # when the latest successful flush began (time.monotonic_ns)

    def flush_after_now(self, flush: Callable[[], None]) -> None:
        asked, lead = time.monotonic_ns(), False
        with self._changed:
            while self._covered <= asked:
                if not self._running:
                    self._running = lead = True
                    break
                if not self._changed.wait(self.PATIENCE_S):
                    break
            else:
                return  # a flush that began after everything this thread can see is done
        began, done = time.monotonic_ns(), False
        try:
            flush()
            done = True
        finally:
            with self._changed:
                if lead:
                    self._running = False
                if done:
                    self._covered = max(self._covered, began)
                self._changed.notify_all()


shared_flushes = _SharedFlushes()


def make_durable() -> None:
    """Return once every commit this session can see is on disk (PostgreSQL; on SQLite a
    commit is as durable as it will be when it returns)."""
    if not sql.postgres():
        return
    if not connection.in_atomic_block:
        # Any session's flush begun after this thread's commits and reads covers them.
        shared_flushes.flush_after_now(lambda: sql.row(FLUSH_WAL))
        return
    # A transaction (an export's snapshot) can see commits that are not yet on disk, and
    # cannot commit to flush them without ending the snapshot: another session does it.
    side = connection.get_new_connection(connection.get_connection_params())
    try:
        side.autocommit = True
        side.execute(FLUSH_WAL)
    finally:
        side.close()
