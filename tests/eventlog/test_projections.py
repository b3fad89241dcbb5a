"""Contract: checkpoints, inline projections, rebuild, a consumer killed mid-batch."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from eventlog import projections
from eventlog.models import Event, EventTypeCount, ProjectionCheckpoint
from eventlog.store import NewEvent, Stream, append
from tests.fixture_app.events import ItemAdded, ItemRenamed, Tick
from tests.fixture_app.models import Item, StreamItem, TickTotal

pytestmark = pytest.mark.contract

ROOT = Path(__file__).resolve().parents[2]


def tick_rows():
    return set(TickTotal.objects.values_list("stream_id", "count", "total", "positions_hash"))


def checkpoint(name):
    return ProjectionCheckpoint.objects.get(name=name).position


@pytest.mark.django_db
def test_inline_projection_is_current_when_append_returns():
    stream = Stream("item", "lamp")
    append([NewEvent(stream, ItemAdded(name="lamp", quantity=3))])
    assert Item.objects.get(stream_id="lamp").name == "lamp"

    result = append([NewEvent(stream, ItemRenamed(name="torch"))])
    item = Item.objects.get(stream_id="lamp")
    assert (item.name, item.quantity, item.events) == ("torch", 3, 2)
    assert checkpoint("fixture.items") == result.last_position


@pytest.mark.django_db
def test_inline_projection_rolls_back_with_a_failed_command():
    with pytest.raises(RuntimeError), transaction.atomic():
        append([NewEvent(Stream("item", "x"), ItemAdded(name="x", quantity=1))])
        raise RuntimeError("command failed after appending")
    assert not Item.objects.exists()
    assert not ProjectionCheckpoint.objects.filter(name="fixture.items", position__gt=0).exists()


@pytest.mark.django_db
def test_async_projection_applies_only_committed_events_once_and_checkpoint_is_monotonic():
    projection = projections.get("fixture.tick_totals")
    append([NewEvent(Stream("tick", "a"), Tick(n=n)) for n in range(120)])
    positions = []
    while True:
        applied = projections._step(projection, wait=True, batch_size=50)
        positions.append(checkpoint("fixture.tick_totals"))
        if applied[1]:
            break
    assert positions == sorted(positions) and len(positions) == 3
    assert projections.advance(projection) == 0  # nothing applied twice
    assert TickTotal.objects.get(stream_id="a").count == 120

    # A checkpoint never moves backwards, even if asked to.
    moved = ProjectionCheckpoint.objects.filter(name="fixture.tick_totals", position=positions[0]).update(position=1)
    assert moved == 0


@pytest.mark.django_db
def test_projection_reads_only_its_types():
    append([NewEvent(Stream("item", "i"), ItemAdded(name="i", quantity=1))])
    last = append([NewEvent(Stream("tick", "t"), Tick(n=5))]).last_position
    append([NewEvent(Stream("item", "j"), ItemAdded(name="j", quantity=1))])
    projection = projections.get("fixture.tick_totals")
    assert projections.advance(projection) == 1
    assert tick_rows() == {("t", 1, 5, last % 1_000_000_007)}
    assert checkpoint("fixture.tick_totals") == last
    assert projections.advance(projection) == 0


@pytest.mark.django_db
def test_rebuild_equals_incremental_for_every_projection():
    for i in range(30):
        append(
            [
                NewEvent(Stream("tick", str(i % 4)), Tick(n=i)),
                NewEvent(Stream("item", str(i % 7)), ItemRenamed(name=f"n{i}") if i >= 7 else ItemAdded(name="x", quantity=i)),
            ]
        )
        if i % 10 == 0:
            projections.run_all()
    projections.run_all()
    def rows():
        return tick_rows(), *(set(model.objects.values_list()) for model in (Item, StreamItem, EventTypeCount))

    before = rows()
    assert len(before[2]) == 7  # the stream projection, applied by the writers

    call_command("rebuild_projections", stdout=open(os.devnull, "w"))

    after = rows()
    assert after == before
    assert dict(EventTypeCount.objects.values_list("type", "count")) == {
        "fixture.tick": 30,
        "fixture.item_renamed": 23,
        "fixture.item_added": 7,
    }


@pytest.mark.django_db
def test_run_projections_command_and_schedule():
    from django_q.models import Schedule

    append([NewEvent(Stream("tick", "c"), Tick(n=2))])
    call_command("run_projections", "fixture.tick_totals", stdout=open(os.devnull, "w"))
    assert TickTotal.objects.get(stream_id="c").total == 2
    schedule = Schedule.objects.get(name="eventlog.run_projections")
    assert schedule.func == "eventlog.tasks.run_projections"
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="unknown projection"):
        call_command("rebuild_projections", "nope")


def _subprocess_env():
    settings = connection.settings_dict
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test", "FIXTURE_SLOW_HANDLER": "0.02"}
    if connection.vendor == "postgresql":
        env["DATABASE_URL"] = (
            f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT'] or 5432}/{settings['NAME']}"
        )
    else:
        env.pop("DATABASE_URL", None)
        env["SQLITE_PATH"] = str(settings["NAME"])
    return env


@pytest.mark.django_db(transaction=True)
def test_consumer_killed_mid_batch_then_restarted_equals_a_replay():
    for chunk in range(6):
        append([NewEvent(Stream("tick", str(i % 3)), Tick(n=chunk * 50 + i)) for i in range(50)])

    consumer = subprocess.Popen(
        [sys.executable, "manage.py", "run_projections", "fixture.tick_totals"],
        cwd=ROOT,
        env=_subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not ProjectionCheckpoint.objects.filter(name="fixture.tick_totals", position__gt=0).exists():
            assert consumer.poll() is None, consumer.stderr.read().decode()
            assert time.monotonic() < deadline, "the consumer never committed a batch"
            time.sleep(0.05)
        time.sleep(0.3)  # well inside the next 50-event batch (20 ms an event)
    finally:
        consumer.send_signal(signal.SIGKILL)
        consumer.wait()

    # What survived the kill is exactly the events up to the checkpoint: no half batch.
    at_kill = checkpoint("fixture.tick_totals")
    applied = sum(TickTotal.objects.values_list("count", flat=True))
    assert applied == Event.objects.filter(type="fixture.tick", position__lte=at_kill).count()
    assert applied in {50, 100, 150, 200, 250}

    projection = projections.get("fixture.tick_totals")
    projections.advance(projection, wait=True)
    restarted = tick_rows()
    assert sum(c for _, c, _, _ in restarted) == 300

    projections.rebuild(projection)
    assert tick_rows() == restarted


@pytest.mark.django_db
def test_every_recurring_job_is_scheduled_once():
    from django.core.management import call_command
    from django_q.models import Schedule

    call_command("migrate", verbosity=0)  # a second migrate must not duplicate schedules
    names = list(Schedule.objects.values_list("name", flat=True))
    assert sorted(names) == ["annotation.expire_holds", "eventlog.run_projections", "modelserve.fail_stale_runs"]
