"""Labelling throughput and next-task latency: 20 contractors taking tasks and submitting labels.

Against a 100,000-snippet dataset on PostgreSQL, each contractor (a process, as a gunicorn
worker would be) loops next-task -> submit-label for a fixed time; next-task and submit are
timed in-process (the service call, no HTTP). Two runs of each queue, with fresh contractors:
  * flat out: no pause between tasks, which gives the throughput (labels/s) the machine allows;
  * paced: the contractors together are offered `--rate` labels/s (each on its own fixed
    schedule), which gives the latency at that throughput. Flat out, every contractor always
    waits for the CPU, so latency there is only throughput seen from the other side
    (contractors / labels/s, by Little's law).
Side by side in the same run, the baseline swaps in a naive queue query: candidates found by
counting each snippet's assignments with GROUP BY, instead of the work-item counters the
projection keeps.

    .venv/bin/python bench/labelling.py [--snippets 100000] [--contractors 20] [--seconds 20] [--rate 150]
"""

import argparse
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))  # after ROOT: bench/evaluation.py must not hide the app

from event_log import fresh_database  # noqa: E402

BENCH_DB = "advtrain_bench_labelling"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--snippets", type=int, default=100_000)
    parser.add_argument("--contractors", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=150.0, help="labels/s offered in all by the paced runs")
    return parser.parse_args()


def setup(url: str):
    import event_log

    event_log.BENCH_DB = BENCH_DB
    bench_url = fresh_database(url)
    os.environ.update(DATABASE_URL=bench_url, DJANGO_SETTINGS_MODULE="config.settings", DJANGO_DEBUG="0",
                      LOG_LEVEL="WARNING")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-" + uuid.uuid4().hex)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def populate(snippets: int, contractors: int):
    from django.contrib.auth.models import User

    from annotation.models import Dataset, Member, Role, Vendor
    from annotation.services import SnippetInput, import_snippets

    vendor = Vendor.objects.create(name="bench")
    users = []
    for i in range(contractors):
        user = User.objects.create_user(f"contractor{i}")
        Member.objects.create(user=user, role=Role.CONTRACTOR, vendor=vendor)
        users.append(user.pk)
    dataset = Dataset.objects.create(name="bench")
    began = time.perf_counter()
    rows = [
        SnippetInput(f"Story {i // 4}: the travellers reached the bridge.", f"Completion {i}.", "initial", "train", i)
        for i in range(snippets)
    ]
    import_snippets(dataset=dataset, rows=rows, filename="bench.jsonl")
    print(f"imported {snippets:,} snippets in {time.perf_counter() - began:.1f} s")
    return dataset.pk, users


def naive_candidates(user, dataset, kind):
    """What a queue without projected counters does: count assignments per snippet each time."""
    from django.db.models import Count, Exists, F, OuterRef, Q

    from annotation import services
    from annotation.models import Assignment, WorkItem

    live = Q(assignments__state__in=[Assignment.State.HELD, Assignment.State.SUBMITTED])
    seen = Assignment.objects.filter(work_item=OuterRef("pk"), user=user)
    return list(
        WorkItem.objects.filter(dataset=dataset, kind=kind, status=WorkItem.Status.OPEN)
        .annotate(taken=Count("assignments", filter=live))
        .filter(required__gt=F("taken"))
        .exclude(Exists(seen))
        .order_by("-tie_break_opened", "created_position")[: services.CANDIDATES]
    )


def contractor(user_id, dataset_id, start, seconds, naive, rate, results):
    """Loop next-task -> submit until the deadline; with `rate` (labels/s), start each task on a
    fixed schedule instead of at once (an open loop: a late task starts as soon as it can)."""
    import random

    from django.contrib.auth.models import User
    from django.db import connections

    from annotation import services
    from annotation.models import Dataset

    connections.close_all()
    if naive:
        services._candidates = naive_candidates
    user, dataset = User.objects.get(pk=user_id), Dataset.objects.get(pk=dataset_id)
    next_ms, submit_ms, labels = [], [], 0
    labels_cycle = ["injurious", "not_injurious", "not_injurious"]
    interval = 1 / rate if rate else 0.0
    scheduled = start + random.random() * interval
    deadline = start + seconds
    while time.perf_counter() < deadline:
        if rate:
            pause = scheduled - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            scheduled += interval
        t0 = time.perf_counter()
        task = services.next_task(user=user, dataset=dataset)
        t1 = time.perf_counter()
        if task is None:
            break
        services.submit_label(user=user, task_id=task.task_id, label=labels_cycle[labels % 3])
        t2 = time.perf_counter()
        next_ms.append((t1 - t0) * 1000)
        submit_ms.append((t2 - t1) * 1000)
        labels += 1
    results.put((labels, next_ms, submit_ms))


def run(dataset_id, users, seconds, naive, rate=None) -> dict:
    """`rate`: labels/s offered in all, shared evenly among the contractors; None: flat out."""
    from django.db import connection, connections

    with connection.cursor() as cursor:
        # What autovacuum would have done by now (it may be off, as on the development machine,
        # and it would fall on whichever run came first), then what earlier runs left dirty is
        # written now, not during this run.
        cursor.execute("VACUUM ANALYZE eventlog_event, annotation_snippet, annotation_workitem, annotation_assignment")
        cursor.execute("CHECKPOINT")
    connections.close_all()
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    start = time.perf_counter() + 0.5  # once every process is up
    per_contractor = rate / len(users) if rate else None
    workers = [
        ctx.Process(target=contractor, args=(u, dataset_id, start, seconds, naive, per_contractor, results))
        for u in users
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    labels = sum(o[0] for o in outcomes)
    next_ms = sorted(ms for o in outcomes for ms in o[1])
    submit_ms = sorted(ms for o in outcomes for ms in o[2])

    def p95(values):
        return values[int(0.95 * (len(values) - 1))] if values else float("nan")

    return {
        "labels_per_s": labels / seconds,
        "next_p50": statistics.median(next_ms) if next_ms else float("nan"),
        "next_p95": p95(next_ms),
        "submit_p95": p95(submit_ms),
        "labels": labels,
    }


def report(title, ours, naive):
    print(title)
    print(f"{'':>22} {'labels/s':>9} {'next p50 ms':>12} {'next p95 ms':>12} {'submit p95 ms':>14}")
    for name, r in (("work-item queue (ours)", ours), ("naive GROUP BY queue", naive)):
        print(f"{name:>22} {r['labels_per_s']:>9.1f} {r['next_p50']:>12.1f} {r['next_p95']:>12.1f} {r['submit_p95']:>14.1f}")


def main():
    args = parse_args()
    setup(args.database_url)
    # Four teams of fresh contractors: ours and the naive queue, flat out and then paced.
    dataset_id, users = populate(args.snippets, args.contractors * 4)
    teams = [users[i * args.contractors : (i + 1) * args.contractors] for i in range(4)]
    flat_ours = run(dataset_id, teams[0], args.seconds, naive=False)
    flat_naive = run(dataset_id, teams[1], args.seconds, naive=True)
    paced_ours = run(dataset_id, teams[2], args.seconds, naive=False, rate=args.rate)
    paced_naive = run(dataset_id, teams[3], args.seconds, naive=True, rate=args.rate)
    setting = f"{args.contractors} contractors, {args.snippets:,} snippets, {args.seconds:.0f} s each, PostgreSQL"
    report(f"flat out: {setting}", flat_ours, flat_naive)
    print(f"ratio labels/s ours / naive: {flat_ours['labels_per_s'] / flat_naive['labels_per_s']:.1f}x")
    print()
    report(f"paced at {args.rate:g} labels/s offered in all: {setting}", paced_ours, paced_naive)
    print(f"ratio next-task p95 naive / ours: {paced_naive['next_p95'] / paced_ours['next_p95']:.1f}x")
    from annotation.models import WorkItem

    settled = WorkItem.objects.filter(status="settled").count()
    print(f"snippets settled: {settled:,}; goals: >= 150 labels/s, next-task p95 <= 50 ms")


if __name__ == "__main__":
    main()
