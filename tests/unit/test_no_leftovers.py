"""verify-run's guard around a play (`runner.no_leftovers`): what the play leaves running is
stopped, whatever the caller had running before is left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from collector import runner
from tests.support.processes import alive


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_an_orphan_in_its_own_session_is_stopped_and_the_callers_child_is_not(tmp_path: Path) -> None:
    mine = subprocess.Popen(["sleep", "60"])
    pidfile = tmp_path / "orphan.pid"
    try:
        with runner.no_leftovers() as stop:
            # a task worker's shape: its own session, its parent gone (it is orphaned at once)
            subprocess.run(
                ["sh", "-c", f'setsid sleep 60 >/dev/null 2>&1 & echo $! > "{pidfile}"'], check=True
            )
            orphan = int(pidfile.read_text())
            deadline = time.monotonic() + 10
            while orphan not in runner.descendants(os.getpid()):  # adopted: this process reaps it
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert not stop.requested()
        assert not alive(orphan)
        assert alive(mine.pid) and mine.poll() is None
    finally:
        mine.kill()
        mine.wait()


def test_sigterm_during_the_play_asks_it_to_stop_and_is_given_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with runner.no_leftovers() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not stop.requested():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert stop.signal == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_off_the_main_thread_it_sets_no_handler_and_still_stops_what_is_left(tmp_path: Path) -> None:
    # (a program may run the play from a worker thread: only the main thread may set handlers)
    pidfile = tmp_path / "orphan.pid"
    failures: list[BaseException] = []

    def play() -> None:
        try:
            with runner.no_leftovers() as stop:
                subprocess.run(["sh", "-c", f'setsid sleep 60 >/dev/null 2>&1 & echo $! > "{pidfile}"'], check=True)
                assert not stop.requested()
        except BaseException as exc:  # (reported below, in the test's own thread)
            failures.append(exc)

    before = signal.getsignal(signal.SIGTERM)
    worker = threading.Thread(target=play)
    worker.start()
    worker.join(60)
    assert failures == []
    assert signal.getsignal(signal.SIGTERM) is before
    assert not alive(int(pidfile.read_text()))
