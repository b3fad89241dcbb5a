"""A report over a 100,000-snippet test set whose scores are recorded: the report job against the
previous in-request path, side by side on one database.

    .venv/bin/python bench/report_job.py                 # 100,000 test snippets
    .venv/bin/python bench/report_job.py --rows 20000    # a quick look

A fresh PostgreSQL database `advtrain_bench_report` is migrated and filled directly with SQL
(as `bench/export.py` does: snippets, each with a settled label, all in the test split), a
registered classifier `bench` with a threshold, and a recorded score for every snippet. Then:

- current: `evaluation.jobs.request` (Table 2 of `bench` on the test set) and the job itself,
  `evaluation.jobs.run`, timed together (what *Compute* on the report page costs);
- previous: `report.build` of `--baseline-rev` (read from a git worktree, run in a child
  process on the same database), what a GET of the report page ran inside the request.

Both read the same recorded scores, so neither runs the classifier. Goal: under 30 s.
"""

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

BENCH_DB = "advtrain_bench_report"
GOAL_S = 30.0

OLD = """
import os, sys, time
import django
django.setup()
from evaluation import report
began = time.perf_counter()
built = report.build(report.ReportSpec(classifiers=["bench"], test_dataset=int(sys.argv[1])))
row = built["table2"][0]
print(f"{time.perf_counter() - began:.3f} {row['fn_of_positives']} {row['fpr']}")
"""


def export_bench():
    spec = importlib.util.spec_from_file_location("bench_export", ROOT / "bench" / "export.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--baseline-rev", default="15f5572")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL",
                                                                 "postgres://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    export = export_bench()
    export.BENCH_DB = BENCH_DB
    url = export.fresh_database(args.database_url)
    export.setup_django(url, migrate=True)

    from django.db import connection
    from django.utils import timezone

    from evaluation import jobs, report
    from evaluation.models import Computation
    from modelserve.models import ClassifierVersion

    dataset = export.populate(args.rows)
    ClassifierVersion.objects.create(version="bench", base_model="-", checkpoint_dir="-", status="ready",
                                     threshold=0.5, threshold_method="bench", registered_at=timezone.now())
    with connection.cursor() as cursor:
        cursor.execute("UPDATE annotation_snippet SET split = 'test' WHERE dataset_id = %s", [dataset])
        cursor.execute("""INSERT INTO modelserve_recordedscore (version, snippet_id, score)
                          SELECT 'bench', id, random() FROM annotation_snippet WHERE dataset_id = %s""", [dataset])
        cursor.execute("VACUUM ANALYZE annotation_snippet, modelserve_recordedscore")

    params = asdict(report.ReportSpec(classifiers=["bench"], test_dataset=dataset))
    began = time.perf_counter()
    row = jobs.request(Computation.Kind.REPORT, params)
    jobs.run(str(row.pk))
    current_s = time.perf_counter() - began
    result = Computation.objects.get(pk=row.pk).result["table2"][0]

    with tempfile.TemporaryDirectory() as folder:
        worktree = Path(folder) / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.baseline_rev], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings",
                   "DJANGO_DEBUG": "0", "LOG_LEVEL": "WARNING", "PYTHONPATH": str(worktree)}
            out = subprocess.run([sys.executable, "-c", OLD, str(dataset)], cwd=worktree, env=env, check=True,
                                 capture_output=True, text=True).stdout.split()
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=True)
    previous_s = float(out[0])
    print(f"test set: {args.rows:,} snippets, scores recorded; Table 2 of one classifier")
    print(f"current (request + job): {current_s:.2f} s   previous (in the request): {previous_s:.2f} s   "
          f"ratio {current_s / previous_s:.2f}x   goal < {GOAL_S:.0f} s")
    print(f"same counts: {result['fn_of_positives'] == out[1]} ({result['fn_of_positives']}, FPR {result['fpr']:.4f})")
    connection.close()
    import psycopg

    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


if __name__ == "__main__":
    main()
