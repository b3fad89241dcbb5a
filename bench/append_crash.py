"""Crash PostgreSQL under concurrent appends: nothing acknowledged or handed out is lost.

    .venv/bin/python bench/append_crash.py                 # 5 crashes, 8 writers, a feed reader
    .venv/bin/python bench/append_crash.py --mode threads  # the writers as threads of one process
    .venv/bin/python bench/append_crash.py --no-flush      # control: the check must fail

On a private cluster (`initdb` in a temporary directory, removed afterwards; see `load.py`),
each round: 8 writer processes append (1 or 10 events a batch, each writer to its own streams,
so that they contend for the append lock and commit before their flush) and a reader pages the
event feed; after `--seconds`, `pg_ctl stop -m immediate` (no checkpoint, the WAL buffers not
yet on disk are lost: a crash of the server), then a start (recovery from the WAL). Every writer
writes down each batch once `append` has returned; the reader each page once `feed.page` has
returned. The checks, after recovery: every acknowledged event is in the log at the position it
was acknowledged with, and every event the feed handed out is in the log, unchanged.

`--no-flush` is the control run: `append` and the feed skip their flush (`make_durable` made a
no-op), so what they acknowledge may still be only in memory when the server dies, and the
check is expected to find acknowledged events missing.
"""

import argparse
import multiprocessing
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(Path(__file__).resolve().parent))  # after ROOT: bench/evaluation.py must not hide the app

from load import PG_BIN, PrivateCluster  # noqa: E402

from event_log import setup_django  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--mode", choices=["processes", "threads"], default="processes",
                        help="writers as processes, or as threads of one process (they share flushes)")
    parser.add_argument("--seconds", type=float, default=2.0, help="appending before each crash")
    parser.add_argument("--pg-port", type=int, default=55433)
    parser.add_argument("--no-flush", action="store_true", help="control run: appends and the feed skip the flush")
    return parser.parse_args()


def skip_flush_if(control: bool) -> None:
    if control:
        from eventlog import durability

        durability.make_durable = lambda: None


_early: dict[int, int] = {}  # appends that committed before their flush, by writer thread


def count_commits_before_the_flush() -> None:
    """Count, in `_early`, the appends that committed before their flush (they queued)."""
    from eventlog import store

    if getattr(store._insert_postgres, "counting", False):
        return
    insert = store._insert_postgres

    def counted(db, batch, may_commit_before_flush):
        stored, flushed_at_commit = insert(db, batch, may_commit_before_flush)
        if not flushed_at_commit:
            _early[threading.get_ident()] = _early.get(threading.get_ident(), 0) + 1
        return stored, flushed_at_commit

    counted.counting = True
    store._insert_postgres = counted


def writer(number: int, round_no: int, out: str, control: bool) -> None:
    from django.db import connection

    from bench_events import Sample
    from eventlog.store import NewEvent, Stream, append

    skip_flush_if(control)
    connection.close()
    count_commits_before_the_flush()
    with open(out, "a") as acknowledged:
        batch = 0
        while True:
            size = 10 if batch % 2 else 1
            stream = Stream("crash", f"r{round_no}-w{number}-{batch // 20}")
            events = [
                NewEvent(stream, Sample(snippet_id=batch, label="injurious", labeller=f"w{number}", seconds=1.0),
                         event_id=uuid.uuid4())
                for _ in range(size)
            ]
            try:
                result = append(events)
            except Exception:  # noqa: BLE001 - the server died: stop writing
                Path(out + ".early").write_text(f"{_early.get(threading.get_ident(), 0)} {batch}")
                return
            for event, position in zip(events, result.positions, strict=True):
                acknowledged.write(f"{event.event_id} {position}\n")
            acknowledged.flush()
            batch += 1


def writer_threads(count: int, round_no: int, work: Path, control: bool) -> None:
    """The writers as threads of one process (as a threaded web server's are)."""
    threads = [threading.Thread(target=writer, args=(w, round_no, str(work / f"ack-{round_no}-{w}"), control))
               for w in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def reader(out: str, control: bool) -> None:
    from django.db import connection

    import bench_events  # noqa: F401 - declares the event type read back
    from eventlog import feed

    skip_flush_if(control)
    connection.close()
    after = feed.page(after=0, limit=1).head
    with open(out, "a") as received:
        while True:
            try:
                page = feed.page(after=after, limit=1000)
            except Exception:  # noqa: BLE001 - the server died
                return
            for event in page.events:
                received.write(f"{event.event_id} {event.position}\n")
            received.flush()
            after = page.next_after


def read_pairs(path: Path) -> dict[str, int]:
    pairs = {}
    if path.exists():
        for line in path.read_text().splitlines():
            event_id, position = line.split()
            pairs[event_id] = int(position)
    return pairs


def main() -> int:
    args = parse_args()
    cluster = PrivateCluster(args.pg_port)
    server = cluster.start()
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE crashdb")
    setup_django(f"{server}/crashdb")  # and migrate
    from django.db import connection

    connection.close()
    work = Path(tempfile.mkdtemp(prefix="append-crash-"))
    ctx = multiprocessing.get_context("fork")
    lost_acknowledged = lost_received = acknowledged_total = received_total = 0
    print(f"{'round':>5} {'acknowledged':>12} {'lost':>5} {'handed out':>10} {'lost':>5}  {'recovery':>8}"
          "  batches committed before their flush")
    try:
        for round_no in range(1, args.rounds + 1):
            if args.mode == "threads":
                writers = [ctx.Process(target=writer_threads, args=(args.writers, round_no, work, args.no_flush))]
            else:
                writers = [ctx.Process(target=writer, args=(w, round_no, str(work / f"ack-{round_no}-{w}"), args.no_flush))
                           for w in range(args.writers)]
            feed_reader = ctx.Process(target=reader, args=(str(work / f"feed-{round_no}"), args.no_flush))
            for process in [*writers, feed_reader]:
                process.start()
            time.sleep(args.seconds)
            cluster._run(str(PG_BIN / "pg_ctl"), "-D", str(cluster.data), "-m", "immediate", "-w", "stop")
            for process in [*writers, feed_reader]:
                process.join(30)
            began = time.monotonic()
            cluster._run(str(PG_BIN / "pg_ctl"), "-D", str(cluster.data), "-l", str(cluster.dir / "server.log"),
                         "-w", "start")
            recovery = time.monotonic() - began
            acknowledged = {}
            for w in range(args.writers):
                acknowledged |= read_pairs(work / f"ack-{round_no}-{w}")
            received = read_pairs(work / f"feed-{round_no}")
            with psycopg.connect(f"{server}/crashdb") as conn:
                stored = dict(conn.execute(
                    "SELECT event_id::text, position FROM eventlog_event WHERE event_id = ANY(%s::uuid[])",
                    [list(acknowledged) + list(received)],
                ).fetchall())
            early = [map(int, (work / f"ack-{round_no}-{w}.early").read_text().split())
                     for w in range(args.writers) if (work / f"ack-{round_no}-{w}.early").exists()]
            early_batches, batches = map(sum, zip(*early, strict=True)) if early else (0, 0)
            lost_a = sum(1 for e, p in acknowledged.items() if stored.get(e) != p)
            lost_r = sum(1 for e, p in received.items() if stored.get(e) != p)
            print(f"{round_no:>5} {len(acknowledged):>12} {lost_a:>5} {len(received):>10} {lost_r:>5}  {recovery:>7.2f}s"
                  f"  {early_batches} of {batches}", flush=True)
            acknowledged_total += len(acknowledged)
            received_total += len(received)
            lost_acknowledged += lost_a
            lost_received += lost_r
    finally:
        cluster.stop()
    print(f"acknowledged {acknowledged_total} events, {lost_acknowledged} lost; "
          f"the feed handed out {received_total}, {lost_received} lost"
          f"{' (control run: no flush)' if args.no_flush else ''}")
    return 1 if lost_acknowledged or lost_received else 0


if __name__ == "__main__":
    sys.exit(main())
