"""Dataset export throughput and memory: the streamed JSONL export against a naive one.

    .venv/bin/python bench/export.py                 # 1,000,000 snippets (about 5 minutes on 2 cores)
    .venv/bin/python bench/export.py --quick         # 100,000 snippets, to check the script
    .venv/bin/python bench/export.py --rows 250000 --profile   # also cProfile the streamed export
    .venv/bin/python bench/export.py --variants --breakdown    # only time the steps of one chunk

A fresh PostgreSQL database `advtrain_bench_export` is created and migrated, and dropped at the
end (`--keep` leaves it). The read models the export reads are filled directly with set-based
SQL (`INSERT ... SELECT generate_series`), not through events: the export reads only read
models, and replaying a million imports and two million labels through the projections would
only make the setup slow. One dataset of N snippets (uuid7-shaped ids in insertion order, as
`import_snippets` makes them; a prompt of about 260 characters and a completion of about 90),
each with a settled label work item (a final label) and two submitted assignments (labels by
two of 50 users), and 5,000 of them also attack submissions in two campaigns.

Each variant runs in its own child process (this script, re-executed), which sets up Django
without migrating, then times the whole export into a temporary file and reports its own
peak RSS (`ru_maxrss`) and its RSS before the export started:

- streamed: `evaluation.exports.Export(ExportSpec(dataset_id=...), "jsonl")`, its pieces
  written as they come (what `manage.py export_dataset` and the HTTP view do);
- naive: every row materialised first (`list()` of `.values()` of the same snippet fields, of
  the work items, of the submitted assignments and of the submissions of the dataset, one
  query each), the row dicts built, every line `json.dumps`-ed and joined into one string
  in memory, then written.

Both use the same export id (so the same pseudonyms); their rows are compared by a SHA-256
of each row in canonical JSON (PostgreSQL spells JSON with other spaces, and 1.0 as 1) and must be
identical. Throughput is rows / wall time of the whole export, opening included.
"""

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
# The project's packages, not bench/'s scripts (bench/evaluation.py would shadow the app).
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

BENCH_DB = "advtrain_bench_export"
EXPORT_ID = uuid.UUID("01900000-0000-7000-8000-00000000e4b0")
USERS = 50
SUBMISSIONS = 5_000
TARGET_ROWS_S, TARGET_RSS_MB = 50_000, 200


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="snippets in the dataset")
    parser.add_argument("--quick", action="store_true", help="100,000 snippets")
    parser.add_argument("--variants", nargs="*", choices=["streamed", "naive"], default=["streamed", "naive"])
    parser.add_argument("--profile", action="store_true", help="also run the streamed export under cProfile")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time each step of one chunk of the streamed export (in the dataset's middle)")
    parser.add_argument("--keep", action="store_true", help="leave the bench database behind")
    parser.add_argument("--child", choices=["streamed", "naive", "profile", "breakdown"], help=argparse.SUPPRESS)
    parser.add_argument("--dataset", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.rows = 100_000
    return args


def bench_url(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{BENCH_DB}"))


def fresh_database(url: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    return bench_url(url)


def setup_django(url: str, migrate: bool) -> None:
    os.environ.update(DATABASE_URL=url, DJANGO_SETTINGS_MODULE="config.settings", DJANGO_DEBUG="0",
                      LOG_LEVEL="WARNING")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-export-key")  # children share it: same pseudonyms
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


# -- data -------------------------------------------------------------------------------------

# uuid7-shaped ids from a sequence number: 48-bit "milliseconds", version 7, variant 8, and
# bits of md5(n) for the rest, so they sort in insertion order as uuid7 ids do.
UUID7 = """(lpad(to_hex({base}::bigint + {n}), 12, '0') || '7' || substr(md5({n}::text || '{salt}'), 1, 3)
           || '8' || substr(md5({n}::text || '{salt}'), 4, 15))::uuid"""

PROMPT = """'Story ' || i || ': ' || (ARRAY[
  'The old knight rode slowly through the dark forest while his horse stumbled over roots and the wind rose.',
  'Mara climbed onto the roof of the barn to fetch the kite her brother had lost in the storm last night.',
  'The two sailors argued on the deck as the storm pushed the ship towards the rocks near the café.',
  'After school, Tom and his dog ran down to the river to see whether the ice would hold their weight.'
  ])[1 + mod(i, 4)] || ' ' || (ARRAY[
  'Nobody else was awake, and the house creaked as the fire went out in the kitchen below them.',
  'Their mother had warned them twice already, but the afternoon was long and the light was fading.',
  'It had been a quiet week in the village until the travellers arrived with their carts and dogs.'
  ])[1 + mod(i, 3)]"""

COMPLETION = """(ARRAY[
  'He slipped on the wet stones and broke his arm in two places, screaming until help came.',
  'They laughed, shook the snow from their coats and went inside to warm up by the stove.',
  'She caught the rope just in time and pulled herself back up, shaken but unhurt, at ' || i || '.'
  ])[1 + mod(i, 3)]"""


def populate(rows: int) -> int:
    """Fill the read models directly; returns the dataset id."""
    from django.db import connection

    from annotation.models import Dataset

    dataset = Dataset.objects.create(name="bench export")
    snippet_id = UUID7.format(base=0x018F00000000, n="i", salt="s")
    task_id = UUID7.format(base=0x018F00000000, n="(2 * i + k)", salt="t")
    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        cursor.execute(f"""
            INSERT INTO annotation_snippet (id, dataset_id, prompt, completion, source, split, content_hash,
                                            author_id, added_position, added_at)
            SELECT {snippet_id}, %(ds)s, {PROMPT}, {COMPLETION},
                   CASE WHEN i < {SUBMISSIONS} THEN 'manual_adversarial' ELSE 'initial' END,
                   (ARRAY['train', 'train', 'train', 'validation', 'test'])[1 + mod(i, 5)],
                   md5(i::text) || md5('h' || i::text),
                   CASE WHEN i < {SUBMISSIONS} THEN 1 + mod(i, {USERS}) END,
                   i + 1, timestamptz '2026-01-01' + i * interval '1 second'
            FROM generate_series(0, %(n)s - 1) AS i""", {"ds": dataset.pk, "n": rows})
        cursor.execute(f"""
            INSERT INTO annotation_workitem (kind, subject_id, dataset_id, stream_type, stream_version, required,
                                             base_required, tie_break_allowed, done, held, tie_break_opened, status,
                                             final_label, excluded_user_id, created_position)
            SELECT 'label', {snippet_id}, %(ds)s, 'snippet', 3, 2, 2, true, 2, 0, false, 'settled',
                   (ARRAY['injurious', 'not_injurious', 'not_injurious'])[1 + mod(i, 3)],
                   CASE WHEN i < {SUBMISSIONS} THEN 1 + mod(i, {USERS}) END, i + 1
            FROM generate_series(0, %(n)s - 1) AS i""", {"ds": dataset.pk, "n": rows})
        cursor.execute(f"""
            INSERT INTO annotation_assignment (task_id, work_item_id, user_id, state, served_at, expires_at,
                                               submitted_at, seconds, answer, swapped)
            SELECT {task_id}, w.id, 1 + mod(i + 17 * k, {USERS}), 'submitted',
                   timestamptz '2026-02-01' + (2 * i + k) * interval '1 second',
                   timestamptz '2026-02-01' + (2 * i + k + 900) * interval '1 second',
                   timestamptz '2026-02-01' + (2 * i + k + 12) * interval '1 second', 12.5,
                   CASE WHEN k = 1 AND mod(i, 7) = 0 THEN 'unsure' ELSE w.final_label END, false
            FROM (SELECT id, final_label, created_position - 1 AS i FROM annotation_workitem
                  WHERE dataset_id = %(ds)s) AS w
            CROSS JOIN generate_series(0, 1) AS k""", {"ds": dataset.pk})
        campaigns = [uuid.UUID(int=0x018F0000_0000_7000_8000_0000000CA000 + c) for c in range(2)]
        for c, cid in enumerate(campaigns):
            cursor.execute("""
                INSERT INTO attacks_campaign (id, name, kind, dataset_id, split, target_version,
                                              experiment_classifiers, experiment_seed, threshold,
                                              idle_cap_seconds, time_zone, active, opened_at)
                VALUES (%s, %s, 'manual', %s, 'train', 'v1', '[]', NULL, 0.5, 300, 'UTC', true, now())""",
                           [cid, f"Round {c + 1}", dataset.pk])
        cursor.execute(f"""
            INSERT INTO attacks_submission (snippet_id, campaign_id, session_id, user_id, day, version, score,
                                            submitted_at)
            SELECT {snippet_id}, (ARRAY[%(c0)s, %(c1)s]::uuid[])[1 + mod(i, 2)], md5('session' || (i / 10)::text)::uuid,
                   1 + mod(i, {USERS}), date '2026-01-01' + i / 500, 'v' || (1 + mod(i, 3)), mod(i, 1000) / 1000.0,
                   timestamptz '2026-01-01' + i * interval '1 second'
            FROM generate_series(0, least(%(n)s, {SUBMISSIONS}) - 1) AS i""",
                       {"c0": campaigns[0], "c1": campaigns[1], "n": rows})
    with connection.cursor() as cursor:  # VACUUM cannot run in a transaction; autocommit is on
        cursor.execute("VACUUM ANALYZE annotation_snippet, annotation_workitem, annotation_assignment, "
                       "attacks_submission")
    print(f"filled the read models: {rows:,} snippets, {rows:,} work items, {2 * rows:,} assignments, "
          f"{min(rows, SUBMISSIONS):,} submissions in {time.perf_counter() - began:.0f} s")
    return dataset.pk


# -- the variants (each in its own child process) ------------------------------------------------


def streamed(dataset_id: int, out) -> int:
    from evaluation.exports import Export, ExportSpec

    lines = 0
    export = Export(ExportSpec(dataset_id=dataset_id, export_id=EXPORT_ID), "jsonl")
    try:
        for piece in export:
            out.write(piece)
            lines += piece.count("\n")
    finally:
        export.close()
    return lines


def naive(dataset_id: int, out) -> int:
    """Everything in memory: one query a table, list() of each, one json text, then written."""
    from annotation.models import Assignment, Snippet, TaskKind, WorkItem
    from attacks.models import Campaign, Submission
    from evaluation.exports import pseudonym

    snippets = list(Snippet.objects.filter(dataset_id=dataset_id).order_by("id").values(
        "id", "dataset_id", "prompt", "completion", "source", "split", "author_id", "added_at"))
    items = {s: (status, final) for s, status, final in WorkItem.objects.filter(
        kind=TaskKind.LABEL, dataset_id=dataset_id).values_list("subject_id", "status", "final_label")}
    labels = defaultdict(list)
    for subject, user_id, answer in list(Assignment.objects.filter(
        work_item__kind=TaskKind.LABEL, work_item__dataset_id=dataset_id, state=Assignment.State.SUBMITTED,
    ).order_by("submitted_at", "task_id").values_list("work_item__subject_id", "user_id", "answer")):
        labels[subject].append({"labeller": pseudonym(EXPORT_ID, user_id), "label": answer})
    campaigns = {c.pk: c.name for c in Campaign.objects.all()}
    attacks = {s.snippet_id: s for s in Submission.objects.filter(
        snippet_id__in=Snippet.objects.filter(dataset_id=dataset_id).values("id"))}
    rows = []
    for row in snippets:
        sid = row["id"]
        status, final = items.get(sid, ("", ""))
        attack = attacks.get(sid)
        rows.append({
            "id": str(sid), "dataset": row["dataset_id"], "prompt": row["prompt"], "completion": row["completion"],
            "source": row["source"], "split": row["split"],
            "added_at": row["added_at"].isoformat(timespec="microseconds") if row["added_at"] else None,
            "status": status, "label": final or None, "labels": labels.get(sid, []),
            "attack": {
                "campaign": str(attack.campaign_id), "campaign_name": campaigns.get(attack.campaign_id, ""),
                "target": attack.version, "author": pseudonym(EXPORT_ID, attack.user_id), "score": attack.score,
            } if attack else None,
        })
    text = "\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n"
    out.write(text)
    return len(rows)


def breakdown(dataset_id: int) -> None:
    """Each step of one chunk of `evaluation.exports.rows` (its queries as `_rows` makes them), best of 5."""
    from annotation.models import Assignment, Snippet, TaskKind, WorkItem
    from attacks.models import Campaign, Submission
    from evaluation import exports
    from modelserve.models import RecordedScore

    spec = exports.ExportSpec(dataset_id=dataset_id, export_id=EXPORT_ID)
    middle = Snippet.objects.filter(dataset_id=dataset_id).count() // 2
    after = Snippet.objects.filter(dataset_id=dataset_id).order_by("id").values_list("id", flat=True)[middle]
    campaigns = {c.pk: c.name for c in Campaign.objects.all()}
    chunk = list(exports._snippets(spec).filter(id__gt=after)[:exports.CHUNK])
    ids = [row["id"] for row in chunk]
    rows = list(exports._rows(spec, chunk, campaigns))
    label = WorkItem.objects.filter(kind=TaskKind.LABEL, subject_id__in=ids)
    steps = {
        "snippet chunk (keyset, .values())": lambda: list(exports._snippets(spec).filter(id__gt=after)[:exports.CHUNK]),
        "work item status (IN 2,000 ids)": lambda: dict(label.values_list("subject_id", "status")),
        "work item final label (IN 2,000 ids)": lambda: dict(label.values_list("subject_id", "final_label")),
        "submitted assignments (join, IN 2,000 ids)": lambda: list(Assignment.objects.filter(
            work_item__kind=TaskKind.LABEL, work_item__subject_id__in=ids, state=Assignment.State.SUBMITTED,
        ).order_by("submitted_at", "task_id").values_list("work_item__subject_id", "user_id", "answer")),
        "submissions (instances, IN 2,000 ids)": lambda: list(Submission.objects.filter(snippet_id__in=ids)),
        "recorded scores (no versions: no query)": lambda: list(RecordedScore.objects.filter(
            version__in=spec.scores, snippet_id__in=ids).values_list("version", "snippet_id", "score")),
        "pseudonym() for each label (HMAC)": lambda: [exports.pseudonym(EXPORT_ID, 1 + i % USERS)
                                                     for i in range(2 * len(ids))],
        "_rows(): the lookups + row dicts": lambda: list(exports._rows(spec, chunk, campaigns)),
        "json.dumps of each row": lambda: [json.dumps(row, ensure_ascii=False) for row in rows],
    }
    print(f"one chunk of {len(ids):,} rows (after the dataset's middle), best of 5, ms:")
    for name, step in steps.items():
        best = float("inf")
        for _ in range(5):
            began = time.perf_counter()
            step()
            best = min(best, time.perf_counter() - began)
        print(f"  {name:<44} {best * 1000:7.1f}  ({best / len(ids) * 1e6:5.1f} us a row)")


def rss_mb(usage) -> float:
    return usage.ru_maxrss / 1024  # Linux: kilobytes


def child(args) -> None:
    setup_django(bench_url(args.database_url), migrate=False)
    from django.db import connection

    connection.ensure_connection()
    before = rss_mb(resource.getrusage(resource.RUSAGE_SELF))
    if args.child == "breakdown":
        breakdown(args.dataset)
        print(json.dumps({}))
        return
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".jsonl", dir=tempfile.gettempdir()) as out:
        if args.child == "profile":
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            began = time.perf_counter()
            profiler.runcall(streamed, args.dataset, out)
            elapsed = time.perf_counter() - began
            stats = pstats.Stats(profiler, stream=sys.stderr)
            stats.sort_stats("tottime").print_stats(25)
            stats.sort_stats("cumulative").print_stats(30)
            print(json.dumps({"seconds": elapsed}))
            return
        run = streamed if args.child == "streamed" else naive
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        began = time.perf_counter()
        lines = run(args.dataset, out)
        out.flush()
        elapsed = time.perf_counter() - began
        usage = resource.getrusage(resource.RUSAGE_SELF)
        size = out.tell()
        digest = hashlib.sha256()  # of the rows, not their spelling: key order and spaces may differ
        with open(out.name, encoding="utf-8") as again:
            for line in again:
                digest.update(json.dumps(json.loads(line, parse_int=float), sort_keys=True).encode())
    print(json.dumps({
        "rows": lines, "seconds": elapsed, "cpu": usage.ru_utime + usage.ru_stime - cpu0.ru_utime - cpu0.ru_stime,
        "peak_mb": rss_mb(usage), "before_mb": before, "bytes": size, "sha256": digest.hexdigest(),
    }))


def run_child(args, variant: str, dataset_id: int) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", variant, "--dataset", str(dataset_id),
               "--database-url", args.database_url]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"{variant} child failed ({done.returncode})")
    if variant == "profile":
        sys.stdout.write(done.stderr)
    if variant == "breakdown":
        sys.stdout.write("".join(done.stdout.splitlines(keepends=True)[:-1]))
    return json.loads(done.stdout.strip().splitlines()[-1])


def drop_database(url: str) -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


def main(args) -> None:
    url = fresh_database(args.database_url)
    try:
        setup_django(url, migrate=True)
        dataset_id = populate(args.rows)
        from django.db import connections

        connections.close_all()
        results = {}
        for variant in args.variants:
            results[variant] = result = run_child(args, variant, dataset_id)
            assert result["rows"] == args.rows, (variant, result["rows"], args.rows)
        if results:
            print()
            print(f"export of {args.rows:,} snippets as JSONL from PostgreSQL, each variant in its own process")
            print(f"{'':>10} {'rows/s':>9} {'wall s':>7} {'cpu s':>6} {'peak RSS MB':>12} {'before export':>14} "
                  f"{'added':>6} {'output MB':>10}")
        for variant, r in results.items():
            print(f"{variant:>10} {r['rows'] / r['seconds']:>9,.0f} {r['seconds']:>7.1f} {r['cpu']:>6.1f} "
                  f"{r['peak_mb']:>12.0f} {r['before_mb']:>14.0f} {r['peak_mb'] - r['before_mb']:>6.0f} "
                  f"{r['bytes'] / 1e6:>10.0f}")
        if len(results) == 2:
            s, n = results["streamed"], results["naive"]
            same = s["sha256"] == n["sha256"]
            print(f"ratio rows/s streamed / naive: {n['seconds'] / s['seconds']:.2f}x; "
                  f"peak RSS {s['peak_mb']:.0f} MB against {n['peak_mb']:.0f} MB; "
                  f"outputs {'identical' if same else 'DIFFERENT'} (sha256 {s['sha256'][:12]})")
            assert same, "the two exports differ"
        if "streamed" in results:
            s = results["streamed"]
            rate = s["rows"] / s["seconds"]
            print(f"targets: >= {TARGET_ROWS_S:,} rows/s {'met' if rate >= TARGET_ROWS_S else 'NOT met'} "
                  f"({rate:,.0f}); peak RSS < {TARGET_RSS_MB} MB "
                  f"{'met' if s['peak_mb'] < TARGET_RSS_MB else 'NOT met'} ({s['peak_mb']:.0f}, of which "
                  f"{s['before_mb']:.0f} before the first row)")
        if args.breakdown:
            print()
            run_child(args, "breakdown", dataset_id)
        if args.profile:
            print("\ncProfile of the streamed export:")
            print(f"profiled run: {run_child(args, 'profile', dataset_id)['seconds']:.1f} s")
    finally:
        if args.keep:
            print(f"database {BENCH_DB} left behind")
        else:
            drop_database(args.database_url)


if __name__ == "__main__":
    ARGS = parse_args()
    if ARGS.child:
        child(ARGS)
    else:
        main(ARGS)
