"""Restarts from outside through the Docker API, driven by Docker's own commands (issue 19).

A background thread plays the outsider against a real stand-in container while capture.yml
watches it: a cron-like `docker restart` loop, or a watchdog that sends SIGTERM (which PID 1
ignores), waits, sends SIGKILL and `docker start`s the container. Either way the report must
say `external-kill` through the Docker API, with the outsider's cadence, in observe and capture
mode: not "stable", not the operator's stop.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from standin.stack import Stack
from tests.support.inventories import write_inventory
from tests.support.playbooks import start_play, wait_for_window

pytestmark = pytest.mark.integration

EVERY = 9.0  # the outsider's cadence, seconds


def _docker(*args: str) -> None:
    subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60, check=False)


class Outsider(threading.Thread):
    """Restarts one container through the Docker API every EVERY seconds until stopped."""

    def __init__(self, container: str, how: str) -> None:
        super().__init__(daemon=True)
        self.container, self.how = container, how
        self.done = threading.Event()
        self.rounds = 0

    def run(self) -> None:
        while not self.done.wait(EVERY):
            if self.how == "restart":
                _docker("restart", "-t", "2", self.container)  # kill 15, kill 9, die, stop, start, restart
            else:  # a watchdog: TERM (ignored by PID 1), a wait, KILL, start
                _docker("kill", "-s", "TERM", self.container)
                time.sleep(2)
                _docker("kill", "-s", "KILL", self.container)
                _docker("start", self.container)
            self.rounds += 1


@pytest.mark.parametrize("mode", ["observe", "capture"])
@pytest.mark.parametrize("how", ["restart", "watchdog"])
def test_an_outside_restart_loop_is_an_external_kill_with_its_cadence(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path], how: str, mode: str
) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory("healthy")
    stack.up()
    inventory = write_inventory(tmp_path / "i.yml", stack, dest=dest, state=state, capture_mode=mode,
                                capture_stop_after_restarts=3, capture_window_seconds=120)
    play = start_play(inventory)
    outsider = Outsider(stack.container, how)
    try:
        wait_for_window(state)
        outsider.start()
        out, _ = play.communicate(timeout=900)
    finally:
        outsider.done.set()
        outsider.join(timeout=60)
        if play.poll() is None:
            play.kill()

    assert play.returncode == 0, out[-4000:]
    (bundle,) = sorted(p for p in dest.glob("*/*") if p.is_dir())
    events = [json.loads(line) for line in (bundle / "events.jsonl").read_text().splitlines() if line.strip()]
    actions = [str(e.get("Action") or e.get("status")) for e in events]
    assert "kill" in actions and "start" in actions, actions
    assert ("restart" in actions) is (how == "restart"), actions
    verdict = json.loads((bundle / "report.json").read_text())["verdict"]
    assert verdict["scenario"] == "external-kill", verdict
    assert "Docker API" in verdict["summary"] and "operator" not in verdict["summary"], verdict["summary"]
    assert " every " in verdict["summary"], verdict["summary"]
    assert "Find who restarts the container every" in " ".join(verdict["next_steps"]), verdict["next_steps"]
