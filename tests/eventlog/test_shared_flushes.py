"""The WAL flushes a process's threads force are shared: each thread returns only after a flush
that began after it asked, and a thread whose asking came while a flush ran waits for the next."""

import threading
import time

import pytest

from eventlog.durability import _SharedFlushes


class Disk:
    """A flush that records when it began, and can be held open or made to fail."""

    def __init__(self) -> None:
        self.began: list[int] = []
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()
        self.failing: set[int] = set()  # which flushes fail (1 = the first)

    def flush(self) -> None:
        self.began.append(time.monotonic_ns())
        self.entered.set()
        assert self.hold.wait(10)
        if len(self.began) in self.failing:
            raise ConnectionError("server went away")


def ask_in_thread(flushes: _SharedFlushes, disk: Disk, results: list) -> threading.Thread:
    def run():
        asked = time.monotonic_ns()
        try:
            flushes.flush_after_now(disk.flush)
            results.append(("ok", asked, time.monotonic_ns()))
        except ConnectionError:
            results.append(("failed", asked, None))

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def wait_until(condition) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.001)


def test_one_after_another_each_runs_its_own_flush():
    flushes, disk = _SharedFlushes(), Disk()
    flushes.flush_after_now(disk.flush)
    flushes.flush_after_now(disk.flush)
    assert len(disk.began) == 2


def test_threads_asking_during_a_flush_share_the_next_one():
    flushes, disk, results = _SharedFlushes(), Disk(), []
    disk.hold.clear()
    first = ask_in_thread(flushes, disk, results)
    assert disk.entered.wait(10)
    waiting = [ask_in_thread(flushes, disk, results) for _ in range(5)]
    time.sleep(0.05)  # they all asked after the first flush began
    disk.hold.set()
    for thread in [first, *waiting]:
        thread.join(10)

    assert len(disk.began) == 2  # the first, and one for the five that asked during it
    assert [outcome for outcome, _, _ in results] == ["ok"] * 6
    for _, asked, _ in results[1:]:
        assert disk.began[1] > asked  # each returned after a flush that began after it asked


def test_a_failed_flush_covers_nobody():
    flushes, disk, results = _SharedFlushes(), Disk(), []
    disk.hold.clear()
    disk.failing = {2}
    first = ask_in_thread(flushes, disk, results)
    assert disk.entered.wait(10)
    waiting = [ask_in_thread(flushes, disk, results) for _ in range(2)]
    time.sleep(0.05)  # both asked during the first flush; one of them runs the second, which fails
    disk.hold.set()
    for thread in [first, *waiting]:
        thread.join(10)

    assert sorted(outcome for outcome, _, _ in results) == ["failed", "ok", "ok"]
    assert len(disk.began) == 3  # the other waiter did not count the failed flush: it ran its own


def test_a_thread_does_not_wait_long_behind_a_stuck_flush(monkeypatch):
    monkeypatch.setattr(_SharedFlushes, "PATIENCE_S", 0.05)
    flushes, stuck, results = _SharedFlushes(), Disk(), []
    stuck.hold.clear()
    first = ask_in_thread(flushes, stuck, results)
    assert stuck.entered.wait(10)

    own = Disk()
    flushes.flush_after_now(own.flush)  # returns by a flush of its own while the first hangs

    assert len(own.began) == 1 and results == []
    assert first.is_alive()  # the stuck flush is still running
    stuck.hold.set()
    first.join(10)
    assert [outcome for outcome, _, _ in results] == ["ok"]


@pytest.mark.parametrize("threads", [8])
def test_every_thread_returns_after_a_flush_that_began_after_it_asked(threads):
    flushes, disk, results = _SharedFlushes(), Disk(), []
    workers = [ask_in_thread(flushes, disk, results) for _ in range(threads)]
    for thread in workers:
        thread.join(10)
    wait_until(lambda: len(results) == threads)
    for outcome, asked, returned in results:
        assert outcome == "ok"
        assert any(asked < began < returned for began in disk.began)
