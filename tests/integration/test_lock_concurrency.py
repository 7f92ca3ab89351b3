"""One lock, held by a real capture, against a real rollback.yml and a second capture.yml.

Issue 11's second Done-when: a real capture and a real ``playbooks/rollback.yml`` run at the same
time; rollback refuses, the compose file stays swapped until the capture ends, and rollback then
restores it byte for byte. Also the README's promises around the lock: a second capture against
the same host refuses while one runs, and a lock left by a capture that died (the play and its
host-side processes killed with SIGKILL) does not stand in the way for ever: rollback puts
production back, and a new capture proceeds, or refuses saying the lock is stale and naming the
documented ``-e capture_break_lock=true`` (README, "On-call runbook"), with which it proceeds.

Only the public interface is used: playbooks, inventory variables and ``-e``; a window is "live"
when the play prints its progress line (README, "What a run prints") and the compose file and
the container are on the debug image.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from standin.stack import PROD_IMAGE, Stack, StackError
from tests.support.inventories import write_inventory
from tests.support.playbooks import REPO, BackgroundPlay, run_playbook
from tests.support.processes import alive

pytestmark = pytest.mark.integration

PROGRESS = re.compile(r"\d+:\d\d of \d+:\d\d, \d+ restart\(s\) seen")
# The window outlasts the concurrent play by far on a loaded machine; checked, not assumed.
WINDOW = {"capture_window_seconds": 90, "capture_stop_after_restarts": 0, "capture_poll_seconds": 2}
SAYS_RUNNING = re.compile(
    r"capture (?:is )?(?:still )?(?:running|in progress|holds)|another capture|holds the (?:capture )?lock", re.I
)


def image_of(stack: Stack) -> str:
    return str(stack.inspect()["Config"]["Image"])


class BackgroundCapture(BackgroundPlay):
    """capture.yml in the background; ``progress`` is set once it prints the window's progress."""

    def __init__(self, inventory: Path, *args: str) -> None:
        self.progress = threading.Event()
        super().__init__("capture.yml", inventory, *args)

    def seen(self, line: str) -> None:
        if PROGRESS.search(line):
            self.progress.set()

    def wait_live(self, stack: Stack, original: bytes, timeout: float = 400) -> bytes:
        """Wait for the window to be live; return the swapped compose bytes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                self.reader.join(10)
                raise AssertionError(f"capture.yml ended before its window was live:\n{self.out[-4000:]}")
            if self.progress.is_set():
                swapped = stack.compose_path.read_bytes()
                try:
                    on_debug = image_of(stack) == stack.debug_image
                except StackError:  # being recreated
                    on_debug = False
                if swapped != original and on_debug:
                    return swapped
            time.sleep(0.3)
        raise AssertionError(f"the capture window never went live:\n{self.out[-4000:]}")


class Sampler:
    """Reads the compose file over and over while a play runs; remembers every other content."""

    def __init__(self, path: Path, expected: bytes) -> None:
        self.path, self.expected = path, expected
        self.seen_other: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            data = self.path.read_bytes()
            if data != self.expected and data not in self.seen_other:
                self.seen_other.append(data)
            time.sleep(0.1)

    def close(self) -> list[bytes]:
        self.stop.set()
        self.thread.join(10)
        return self.seen_other


def setup(stack_factory: Any, tmp_path: Path, **overrides: Any) -> tuple[Stack, Path, Path, Path, bytes]:
    stack: Stack = stack_factory("healthy")
    stack.up()
    stack.wait_running()
    dest, state = tmp_path / "captures", tmp_path / "state"
    inventory = write_inventory(tmp_path / "inv.yml", stack, dest=dest, state=state, **{**WINDOW, **overrides})
    return stack, dest, state, inventory, stack.compose_path.read_bytes()


def test_rollback_refuses_while_a_capture_runs_then_restores(stack_factory: Any, tmp_path: Path) -> None:
    stack, _, _, inventory, original = setup(stack_factory, tmp_path)
    capture = BackgroundCapture(inventory)
    try:
        swapped = capture.wait_live(stack, original)
        sampler = Sampler(stack.compose_path, swapped)
        debug_container = stack.container_id()

        rollback = run_playbook("playbooks/rollback.yml", inventory)

        still_capturing = capture.running()
        after_rollback = stack.compose_path.read_bytes()
        container_after = stack.container_id()
        rc = capture.finish().rc
        changed_meanwhile = sampler.close()
    finally:
        if capture.running():
            capture.kill_all()
    assert still_capturing, "the capture ended before rollback.yml did: the test proved nothing (window too short)"
    compose_now = "restored" if after_rollback == original else "kept" if after_rollback == swapped else "changed"
    container_now = "recreated" if container_after != debug_container else "kept"
    assert rollback.rc != 0, (
        f"rollback.yml ran to the end under a live capture (compose file {compose_now}, container {container_now}):\n"
        f"{rollback.out[-3000:]}"
    )
    assert SAYS_RUNNING.search(rollback.out), f"rollback.yml did not say a capture is running:\n{rollback.out[-3000:]}"
    assert after_rollback == swapped, "rollback.yml changed the compose file under a live capture"
    assert container_after == debug_container, "rollback.yml recreated the service under a live capture"
    assert not changed_meanwhile, (
        f"the compose file left its swapped content {len(changed_meanwhile)} time(s) before the capture ended"
        f"{' (back to the original)' if original in changed_meanwhile else ''}"
    )
    assert rc == 0, capture.out[-4000:]
    assert stack.compose_path.read_bytes() == swapped, "capture.yml leaves the debug image in place"
    assert image_of(stack) == stack.debug_image

    restored = run_playbook("playbooks/rollback.yml", inventory)

    assert restored.rc == 0, restored.out[-4000:]
    assert stack.compose_path.read_bytes() == original
    assert image_of(stack) == PROD_IMAGE
    assert stack.inspect()["State"]["Running"]


def test_second_capture_refuses_while_one_runs(stack_factory: Any, tmp_path: Path) -> None:
    stack, dest, _, inventory, original = setup(stack_factory, tmp_path)
    first = BackgroundCapture(inventory)
    try:
        swapped = first.wait_live(stack, original)
        sampler = Sampler(stack.compose_path, swapped)
        debug_container = stack.container_id()

        second = run_playbook("capture.yml", inventory, extra_vars={"capture_window_seconds": 10})

        still_capturing = first.running()
        container_after = stack.container_id()
        rc = first.finish().rc
        changed_meanwhile = sampler.close()
    finally:
        if first.running():
            first.kill_all()
    assert still_capturing, "the first capture ended before the second did: the test proved nothing"
    assert second.rc != 0, f"a second capture ran alongside the first:\n{second.out[-3000:]}"
    assert SAYS_RUNNING.search(second.out), f"the second capture did not say one is running:\n{second.out[-3000:]}"
    assert container_after == debug_container, "the second capture recreated the service under the first"
    assert not changed_meanwhile, "the compose file changed under the running capture"
    assert rc == 0, first.out[-4000:]
    bundles = sorted(p for p in dest.glob("*/*") if p.is_dir())
    assert len(bundles) == 1, f"expected the first capture's bundle only: {bundles}"


# The debug build starts after the lock is taken and before anything is swapped.
BUILD_TASK = re.compile(r"^TASK \[.*[Bb]uild the debug image")


def kill_a_capture(stack: Stack, state: Path, inventory: Path, original: bytes, when: str) -> None:
    """Start a capture; SIGKILL it and every host-side process of its own at ``when``.

    ``window``: once the window is live (the compose file stays swapped). ``build``: as the
    debug build starts, after the lock was taken, before the swap and the window.
    """
    capture = BackgroundCapture(inventory)
    try:
        if when == "window":
            swapped = capture.wait_live(stack, original)
        else:
            capture.wait_for_line(BUILD_TASK)
            # Kill once the build step runs on the host (more than the play itself is alive).
            deadline = time.monotonic() + 60
            while len(capture.processes(state)) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
    except BaseException:
        capture.kill_all(state)
        raise
    killed = capture.kill_all(state)
    capture.finish(timeout=60)
    assert capture.proc.returncode == -signal.SIGKILL
    assert len(killed) > 1, f"only the play was found to kill: {killed}"
    left = [p for p in capture.processes(state) if alive(p)]
    assert not left, f"processes of the killed capture still run: {left}"
    if when == "window":
        assert stack.compose_path.read_bytes() == swapped
    else:
        assert not PROGRESS.search(capture.out), "the window had started: killed too late"
        assert stack.compose_path.read_bytes() == original, "killed after the swap: too late for this case"


def documented_override(out: str) -> str | None:
    """The ``-e NAME=true`` a refusal names, when the README documents that variable."""
    match = re.search(r"-e\s+(\w+)=true", out)
    if match and f"`{match.group(1)}`" in (REPO / "README.md").read_text():
        return match.group(1)
    return None


def test_rollback_after_a_killed_capture(stack_factory: Any, tmp_path: Path) -> None:
    stack, _, state, inventory, original = setup(stack_factory, tmp_path)
    kill_a_capture(stack, state, inventory, original, "window")

    rollback = run_playbook("playbooks/rollback.yml", inventory)

    if rollback.rc != 0:
        # Refusing is allowed only when it says the lock is stale and names the documented override.
        assert re.search(r"\bstale\b", rollback.out, re.I), (
            f"rollback.yml refused over a dead capture's lock without calling it stale:\n{rollback.out[-3000:]}"
        )
        override = documented_override(rollback.out)
        assert override, f"rollback.yml named no documented override:\n{rollback.out[-3000:]}"
        rollback = run_playbook("playbooks/rollback.yml", inventory, extra_vars={override: True})
    assert rollback.rc == 0, rollback.out[-4000:]
    assert stack.compose_path.read_bytes() == original
    assert image_of(stack) == PROD_IMAGE
    assert stack.inspect()["State"]["Running"]


@pytest.mark.parametrize("when", ["window", "build"], ids=["killed-in-window", "killed-in-build"])
def test_new_capture_after_a_killed_capture(stack_factory: Any, tmp_path: Path, when: str) -> None:
    stack, dest, state, inventory, original = setup(stack_factory, tmp_path)
    kill_a_capture(stack, state, inventory, original, when)
    short = {"capture_window_seconds": 8}

    again = run_playbook("capture.yml", inventory, extra_vars=short)

    if again.rc != 0:
        assert re.search(r"\bstale\b", again.out, re.I), (
            f"capture.yml refused over a dead capture's lock without recognising it as stale:\n{again.out[-3000:]}"
        )
        assert documented_override(again.out) == "capture_break_lock", again.out[-3000:]
        again = run_playbook("capture.yml", inventory, extra_vars={**short, "capture_break_lock": True})
    assert again.rc == 0, again.out[-4000:]
    assert list(dest.glob("*/*/manifest.json")), "the new capture fetched no bundle"
    assert image_of(stack) == stack.debug_image

    rollback = run_playbook("playbooks/rollback.yml", inventory)

    assert rollback.rc == 0, rollback.out[-4000:]
    assert stack.compose_path.read_bytes() == original
