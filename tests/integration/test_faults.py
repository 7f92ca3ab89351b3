"""Faults injected for real during capture.yml; after each, the host state is checked.

The promise under test: the play fails with a message saying what happened and what state the
host is in; the service is never left stopped; the compose file is the original or swapped with
a byte-exact backup, never half-written; no follower of ours is left running.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from standin.stack import MONITOR_TOKEN, REDIS_PASSWORD, Stack
from tests.support.inventories import write_inventory
from tests.support.playbooks import run_playbook, start_play, wait_for_window
from tests.support.processes import agent_processes
from tests.support.sshd import kill_sshd, start_sshd
from tests.support.stacks import sortable_stamp

pytestmark = pytest.mark.integration


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_running(stack: Stack, image: str) -> None:
    info = stack.inspect()
    state = info["State"]
    assert state["Running"] or state["Restarting"], f"service left stopped: {state['Status']}"
    assert info["Config"]["Image"] == image


def containers_with_command(command: str) -> list[str]:
    """Every container on the host, running or not, whose command holds `command`."""
    listed = subprocess.run(
        ["docker", "ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Command}}"],
        capture_output=True, text=True, check=True,
    )
    return [line.split()[0] for line in listed.stdout.splitlines() if command in line]


def assert_no_followers(state: Path, within: float = 0) -> None:
    deadline = time.time() + within
    while True:
        left = agent_processes(str(state))
        if not left or time.time() >= deadline:
            break
        time.sleep(1)
    assert not left, f"processes of ours still running: {left}"


def test_failed_build_leaves_production_untouched(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]
) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory("hypothetical-task-error", exit_after_ms=2000)
    stack.up()
    dockerfile = stack.rsky_dir / "rsky-ingester" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "\nRUN /bin/false-does-not-exist\n")
    before, container = sha(stack.compose_path), stack.container_id()

    result = run_playbook("capture.yml", write_inventory(tmp_path / "i.yml", stack, dest=dest, state=state))

    assert result.rc != 0
    assert "docker build of" in result.out and "production is untouched" in result.out
    # The failed RUN step's container (the legacy builder keeps it without --force-rm) is gone.
    assert not containers_with_command("/bin/false-does-not-exist")
    assert sha(stack.compose_path) == before
    assert stack.container_id() == container
    assert_running(stack, "rsky-ingester:latest")
    assert not list(state.glob("*/swap.json")) and not list(state.glob("*/lock"))
    assert_no_followers(state)


def test_swap_that_would_change_another_service_is_refused(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]
) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory("hypothetical-task-error", exit_after_ms=2000)
    # The ingester's image is a YAML anchor that a later service reuses: a swap would change both.
    text = stack.compose_path.read_text()
    text = text.replace(
        "  ingester:\n    image: rsky-ingester:latest", "  ingester:\n    image: &ingester_image rsky-ingester:latest"
    )
    text = text.replace(
        "  relay-monitor:\n    image: rsky-ingester:latest", "  relay-monitor:\n    image: *ingester_image"
    )
    assert text.count("ingester_image") == 2
    stack.compose_path.write_text(text)
    stack.up()
    before = stack.compose_path.read_bytes()

    result = run_playbook("capture.yml", write_inventory(tmp_path / "i.yml", stack, dest=dest, state=state))

    assert result.rc != 0
    # Refused in pre-flight, before anything changes, naming the anchor's line and its reuse.
    said = " ".join(result.out.split())
    assert "Pre-flight failed; nothing was changed" in said
    assert "is the anchor &ingester_image" in said and "reuses it as *ingester_image" in said
    assert "editing this line would swap that too" in said
    assert "compose file left as it was" in said
    assert stack.compose_path.read_bytes() == before
    assert not list(stack.project_dir.glob(".*ingester-capture*")), "a temporary compose file was left"
    assert_running(stack, "rsky-ingester:latest")
    assert_no_followers(state)


def test_debug_image_that_never_starts_is_rolled_back(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]
) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory("healthy")
    stack.up()
    dockerfile = stack.rsky_dir / "rsky-ingester" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + '\nENTRYPOINT ["/no-such-binary"]\n')
    original = stack.compose_path.read_bytes()

    result = run_playbook("capture.yml", write_inventory(tmp_path / "i.yml", stack, dest=dest, state=state))

    assert result.rc != 0
    assert "capture window did not start" in result.out.lower() or "failed" in result.out
    assert "compose file restored from the backup" in result.out
    assert stack.compose_path.read_bytes() == original
    assert_running(stack, "rsky-ingester:latest")
    assert_no_followers(state, within=10)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_play_leaves_service_running_and_no_followers(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path], signum: int
) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory("hypothetical-task-error", exit_after_ms=3000)
    stack.up()
    original = stack.compose_path.read_bytes()
    inventory = write_inventory(
        tmp_path / "i.yml",
        stack,
        dest=dest,
        state=state,
        capture_stop_after_restarts=0,
        capture_window_seconds=120,
        capture_heartbeat_timeout_seconds=8,
    )
    play = start_play(inventory)
    wait_for_window(state)
    time.sleep(2)
    play.send_signal(signum)
    try:
        play.wait(timeout=60)
    except subprocess.TimeoutExpired:
        play.kill()
        play.wait()
    assert play.returncode != 0
    # The window notices the play is gone (no heartbeat) and stops its followers by itself.
    assert_no_followers(state, within=30)
    progress = json.loads(next(state.glob("*/work/*/.window.json")).read_text())
    assert progress["ended_by"].startswith("aborted"), progress
    assert_running(stack, stack.debug_image)
    key_dir = next(state.glob("*"))
    assert (key_dir / "compose.orig").read_bytes() == original
    assert json.loads((key_dir / "swap.json").read_text())["sha256_swapped"] == sha(stack.compose_path)
    assert not (key_dir / "lock").exists(), "the aborted window should release the lock"


def test_host_unreachable_mid_play(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory("hypothetical-task-error", exit_after_ms=3000)
    stack.up()
    original = stack.compose_path.read_bytes()
    sshd_proc, sshd = start_sshd(tmp_path_factory.mktemp("sshd-fault"))
    try:
        inventory = write_inventory(
            tmp_path / "i.yml",
            stack,
            dest=dest,
            state=state,
            sshd=sshd,
            capture_stop_after_restarts=0,
            capture_window_seconds=120,
            capture_heartbeat_timeout_seconds=8,
        )
        play = start_play(inventory)
        wait_for_window(state)
        # Open sessions survive the listener; end them too (this sshd's only), as a host
        # going away would.
        kill_sshd(sshd_proc)
        out, _ = play.communicate(timeout=120)
    finally:
        if sshd_proc.poll() is None:
            sshd_proc.kill()
    assert play.returncode != 0
    assert "UNREACHABLE" in out or "unreachable" in out.lower()
    assert_no_followers(state, within=30)
    assert_running(stack, stack.debug_image)
    key_dir = next(state.glob("*"))
    assert (key_dir / "compose.orig").read_bytes() == original


def _redacted(line: str) -> str:
    for secret in (REDIS_PASSWORD, MONITOR_TOKEN):
        line = line.replace(secret, "[SECRET]")
    return line


def test_bundle_over_the_cap_keeps_the_newest_part(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]
) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory("hypothetical-task-error", exit_after_ms=300, env={"STANDIN_NUMBERED": "3000"})
    stack.up()
    cap = 200_000
    inventory = write_inventory(tmp_path / "i.yml", stack, dest=dest, state=state, capture_max_bundle_bytes=cap)

    result = run_playbook("capture.yml", inventory)

    assert result.rc == 0, result.out[-3000:]
    bundle = next(p for p in dest.glob("*/*") if p.is_dir())
    manifest = json.loads((bundle / "manifest.json").read_text())
    cut = [f for f in manifest["files"] if f["truncated"]]
    assert cut, "nothing was marked truncated"
    assert sum(f["size"] for f in manifest["files"]) <= cap
    for entry in cut:
        assert entry["truncation"]["kept_bytes"] < entry["truncation"]["original_bytes"]
        assert (bundle / entry["path"]).stat().st_size == entry["size"]
    # The newest part is kept, whole: every docker log line from the first kept line to the last
    # kept line is in the bundle, and the cut removed only older lines.
    logs = stack.logs(timestamps=True)
    docker_lines = [line for line in (logs.stdout + logs.stderr).splitlines() if line]
    merged = [line for line in (bundle / "logs" / "ingester.log").read_text(errors="replace").splitlines() if line]
    assert merged, "the log was cut to nothing"
    first, last = sortable_stamp(merged[0].split(" ", 1)[0]), sortable_stamp(merged[-1].split(" ", 1)[0])
    between = {_redacted(line) for line in docker_lines if first <= sortable_stamp(line.split(" ", 1)[0]) <= last}
    # The bundle holds the same lines with the planted secrets redacted (each run's
    # Configuration line prints REDIS_URL whole); nothing else may differ.
    assert between == {re.sub(r"\[REDACTED-\d+\]", "[SECRET]", line) for line in merged}
    assert min(sortable_stamp(line.split(" ", 1)[0]) for line in docker_lines) < first, "nothing older was cut"


def test_second_capture_on_the_same_host_refuses(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]
) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory("hypothetical-task-error", exit_after_ms=2000)
    stack.up()
    inventory = write_inventory(
        tmp_path / "i.yml", stack, dest=dest, state=state, capture_stop_after_restarts=2, capture_window_seconds=40
    )
    first = start_play(inventory)
    wait_for_window(state)

    second = run_playbook("capture.yml", inventory)

    out, _ = first.communicate(timeout=300)
    assert second.rc != 0
    assert "another capture holds the lock" in second.out
    assert first.returncode == 0, out[-3000:]
    assert not list(state.glob("*/lock"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ingester_service": "no-such-service"}, "service 'no-such-service' is not in"),
        ({"ingester_compose_file": "../../etc/compose.yml"}, "relative path inside"),
        ({"capture_window_seconds": 0}, "capture_window_seconds (0) more than 0"),
        ({"capture_window_seconds": -5}, "capture_window_seconds (-5) more than 0"),
        ({"ingester_debug_image": "rsky ingester:debug"}, "no spaces or shell characters"),
        ({"capture_mode": "yolo"}, "capture_mode"),
        ({"capture_window_seconds": "soon"}, "capture_window_seconds"),
    ],
    ids=["no-service", "path-escape", "window-zero", "window-negative", "tag-space", "bad-mode", "not-a-number"],
)
def test_bad_input_is_refused_before_anything_runs(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path], overrides: dict[str, Any], message: str
) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory("healthy")
    stack.up()
    before, container = sha(stack.compose_path), stack.container_id()

    result = run_playbook(
        "capture.yml", write_inventory(tmp_path / "i.yml", stack, dest=dest, state=state, **overrides)
    )

    assert result.rc != 0
    assert message in result.out, result.out[-3000:]
    assert "Traceback" not in result.out
    assert sha(stack.compose_path) == before and stack.container_id() == container
    # No bundle. A refusal in pre-flight (inside the capture) still gets the fleet summary, which
    # names the host as failed; one before the capture (a variable the checks refuse) gets none.
    assert not list(state.glob("*/swap.json")) and not [p for p in dest.rglob("*") if p.parent != dest]
    if (dest / "fleet.json").exists():
        (row,) = json.loads((dest / "fleet.json").read_text())["hosts"]
        assert row["status"] == "failed" and message in " ".join(row["msg"].split()), row
