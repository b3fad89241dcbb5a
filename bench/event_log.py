"""Event-log append throughput and projection catch-up, side by side with the reference.

The reference is the `eventsourcing` library's PostgreSQL application recorder (default
mode: `LOCK TABLE ... EXCLUSIVE`, so its order is guaranteed too), on the same database
server, in the same run. Each configuration runs ours / theirs alternately, five times,
and reports the median of each side, so drift on a noisy machine hits both alike.

    .venv/bin/python bench/event_log.py [--database-url postgres://postgres@127.0.0.1:5432/postgres]
    .venv/bin/python bench/event_log.py --modes processes --configs 8x10 --catchup-events 0   # one configuration

A fresh database `advtrain_bench` is created (and left behind for inspection).
"""

import argparse
import json
import multiprocessing
import os
import queue
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BENCH_DB = "advtrain_bench"
CONFIGS = [(1, 1), (1, 10), (8, 1), (8, 10)]  # (writer processes, events per transaction)
BENCH_URL = ""
MODE = "processes"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each append run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved runs of each side")
    parser.add_argument(
        "--modes", nargs="+", choices=["threads", "processes"], default=["threads", "processes"],
        help="how concurrent writers run",
    )
    parser.add_argument(
        "--configs", nargs="+", type=writers_by_events, default=CONFIGS, metavar="WxE",
        help="writers x events per transaction, e.g. 8x10 (default: 1x1 1x10 8x1 8x10)",
    )
    parser.add_argument("--catchup-events", type=int, default=200_000, help="log size for the catch-up run (0: none)")
    return parser.parse_args()


def writers_by_events(text: str) -> tuple[int, int]:
    writers, _, per_txn = text.partition("x")
    if not (writers.isdigit() and per_txn.isdigit() and int(writers) > 0 and int(per_txn) > 0):
        raise argparse.ArgumentTypeError(f"expected WRITERSxEVENTS such as 8x10, got {text!r}")
    return int(writers), int(per_txn)


def fresh_database(url: str) -> str:
    import psycopg

    parts = urlsplit(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}"))


def setup_django(url: str):
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    # Production-like: DEBUG off (no query logging).
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-" + uuid.uuid4().hex)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def payload_for(n: int) -> dict:
    return {"snippet_id": n, "label": "injurious", "labeller": f"user:{n % 50}", "seconds": 12.5}


def run_writers(writers: int, prepare, body) -> float:
    """Run `body(state, worker, deadline)` in `writers` concurrent writers; events/s together.

    Writers are processes (as gunicorn sync workers and django-q2 workers are) or threads of
    one process (as gunicorn gthread workers are): MODE. `prepare()` runs in each writer
    before the start line, so that connections are opened outside the measurement.
    """
    from django.db import connections

    connections.close_all()  # never share a connection across fork
    if MODE == "threads":
        start, results = threading.Barrier(writers + 1), queue.Queue()
        spawn = threading.Thread
    else:
        ctx = multiprocessing.get_context("fork")
        start, results = ctx.Barrier(writers + 1), ctx.Queue()
        spawn = ctx.Process

    def work(w):
        state = prepare()
        start.wait()
        results.put(body(state, w, time.perf_counter() + ARGS.seconds))
        connections.close_all()

    workers = [spawn(target=work, args=(w,)) for w in range(writers)]
    for worker in workers:
        worker.start()
    start.wait()
    total = sum(results.get() for _ in workers)
    for worker in workers:
        worker.join()
    return total / ARGS.seconds


def ours(writers: int, per_txn: int) -> float:
    from django.db import connection

    from bench_events import Sample
    from eventlog.store import NewEvent, Stream, append

    def body(_, w, deadline):
        written, txn = 0, 0
        run = uuid.uuid4().hex[:8]
        while time.perf_counter() < deadline:
            stream = Stream("bench", f"{run}-{w}-{txn // 50}")
            append([NewEvent(stream, Sample(**payload_for(written + i))) for i in range(per_txn)])
            written += per_txn
            txn += 1
        return written

    return run_writers(writers, connection.ensure_connection, body)


def reference_recorder(url: str, pool_size: int = 1):
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    parts = urlsplit(url)
    datastore = PostgresDatastore(
        dbname=parts.path.lstrip("/"),
        host=parts.hostname,
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or "",
        pool_size=pool_size,
    )
    return PostgresApplicationRecorder(datastore, events_table_name="es_bench_events")


def theirs(writers: int, per_txn: int) -> float:
    from eventsourcing.persistence import StoredEvent

    def body(recorder, w, deadline):
        written, version = 0, 1
        originator = uuid.uuid4()
        while time.perf_counter() < deadline:
            batch = [
                StoredEvent(
                    originator_id=originator,
                    originator_version=version + i,
                    topic="bench:Sample",
                    state=json.dumps(payload_for(written + i)).encode(),
                )
                for i in range(per_txn)
            ]
            recorder.insert_events(batch)
            written += per_txn
            version += per_txn
        return written

    return run_writers(writers, lambda: reference_recorder(BENCH_URL), body)


def fill_log(target: int) -> int:
    from bench_events import Sample
    from eventlog.models import Event
    from eventlog.reading import head_position
    from eventlog.store import NewEvent, Stream, append

    have = Event.objects.count()
    n = 0
    while have + n < target:
        stream = Stream("fill", str(n // 1000))
        append([NewEvent(stream, Sample(**payload_for(n + i))) for i in range(1000)])
        n += 1000
    return head_position()


def catch_up_ours() -> tuple[float, int]:
    from eventlog import projections
    from eventlog.models import Event

    total = Event.objects.count()
    began = time.perf_counter()
    applied = projections.rebuild(projections.get("eventlog.type_counts"))
    elapsed = time.perf_counter() - began
    assert applied == total, (applied, total)
    return applied / elapsed, applied


def catch_up_theirs(recorder) -> tuple[float, int]:
    """The reference's catch-up read path: select_notifications in pages, counting topics."""
    counts: dict[str, int] = {}
    began = time.perf_counter()
    start, seen = 1, 0
    while True:
        page = recorder.select_notifications(start=start, limit=5000)
        if not page:
            break
        for notification in page:
            counts[notification.topic] = counts.get(notification.topic, 0) + 1
            json.loads(notification.state)
        seen += len(page)
        start = page[-1].id + 1
    return seen / (time.perf_counter() - began), seen


def main():
    global BENCH_URL
    BENCH_URL = url = fresh_database(ARGS.database_url)
    setup_django(url)
    recorder = reference_recorder(url)
    recorder.create_table()

    global MODE
    print(f"append throughput, events/s ({ARGS.seconds:.0f} s a run, median of {ARGS.rounds} interleaved runs each)")
    print(f"{'writers':>19} {'ev/txn':>6} {'ours':>10} {'eventsourcing':>14} {'ratio':>6}")
    for MODE in ARGS.modes:
        for writers, per_txn in ARGS.configs:
            a, b = [], []
            for _ in range(ARGS.rounds):
                a.append(ours(writers, per_txn))
                b.append(theirs(writers, per_txn))
            mine, ref = statistics.median(a), statistics.median(b)
            label = f"{writers} {MODE if writers > 1 else 'writer'}"
            print(f"{label:>19} {per_txn:>6} {mine:>10.0f} {ref:>14.0f} {mine / ref:>5.2f}x")

    if ARGS.catchup_events:
        catch_up(recorder)


def catch_up(recorder):
    fill_log(ARGS.catchup_events)
    # Same number of events in the reference table for its catch-up read.
    from eventsourcing.persistence import StoredEvent

    have = recorder.max_notification_id() or 0
    originator, version = uuid.uuid4(), 1
    while have < ARGS.catchup_events:
        recorder.insert_events(
            [
                StoredEvent(originator, version + i, "bench:Sample", json.dumps(payload_for(i)).encode())
                for i in range(1000)
            ]
        )
        version += 1000
        have += 1000

    mine, n_mine = catch_up_ours()
    ref, n_ref = catch_up_theirs(recorder)
    print()
    print("projection catch-up (rebuild of eventlog.type_counts from position 0), events/s")
    print(f"  ours: {mine:,.0f} over {n_mine:,} events   eventsourcing select_notifications: {ref:,.0f} over {n_ref:,}")
    print(f"  ratio ours / reference read path: {mine / ref:.2f}x")


if __name__ == "__main__":
    ARGS = parse_args()
    sys.path.append(str(Path(__file__).resolve().parent))  # bench_events; after ROOT: bench/evaluation.py must not hide the app
    main()
