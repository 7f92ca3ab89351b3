"""capture.yml end to end: real stand-in containers, real ansible-playbook, real bundles."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from standin.stack import Stack
from tests.support.bundles import only_bundle
from tests.support.inventories import write_inventory
from tests.support.playbooks import run_playbook, start_play, wait_for_window
from tests.support.processes import agent_processes
from tests.support.sshd import Sshd

pytestmark = pytest.mark.integration


def report_of(bundle: Path) -> dict[str, Any]:
    return json.loads((bundle / "report.json").read_text())


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# scenario, stack keyword arguments, expected (scenario, task, exit path)
CASES = [
    ("hypothetical-task-error", {"exit_after_ms": 1500}, ("task-error", "labeler", "F")),
    (
        "hypothetical-task-error",
        {"exit_after_ms": 1500, "labeler_hosts": "", "env": {"STANDIN_TASK": "backfill"}},
        ("task-error", "backfill", "H"),
    ),
    ("hypothetical-task-panic", {"exit_after_ms": 1500}, ("panic", "labeler", "F")),
    ("hypothetical-main-panic", {"exit_after_ms": 1500}, ("panic", None, None)),
    (
        "hypothetical-task-ok",
        {"exit_after_ms": 1500, "env": {"STANDIN_TASK": "firehose"}},
        ("task-returned-ok", "firehose", "D"),
    ),
    ("oom", {}, ("oom-kill", None, None)),
]


@pytest.mark.parametrize(("scenario", "kwargs", "expected"), CASES, ids=[f"{c[0]}-{c[2][1]}-{c[2][2]}" for c in CASES])
def test_capture_names_the_scenario(
    stack_factory: Any,
    tmp_path: Path,
    capture_paths: tuple[Path, Path],
    scenario: str,
    kwargs: dict[str, Any],
    expected: tuple[str, str | None, str | None],
) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory(scenario, **kwargs)
    stack.up()
    original = stack.compose_path.read_bytes()
    inventory = write_inventory(tmp_path / "inv.yml", stack, dest=dest, state=state)

    result = run_playbook("capture.yml", inventory)

    assert result.rc == 0, result.out[-4000:]
    bundle = only_bundle(dest)
    verdict = report_of(bundle)["verdict"]
    assert (verdict["scenario"], verdict["task"], verdict["exit_path"]) == expected, verdict
    assert verdict["evidence"], "a verdict must cite evidence"
    # The report says which host and which capture it is about, from what the seal recorded.
    header = report_of(bundle)["header"]
    assert header["host"] == "testhost" and header["mode"] == "capture", header
    assert header["image"] == stack.debug_image and header["window"]["start"], header
    assert header["rollback"]["pending"] is True and "rollback.yml" in (header["rollback"]["command"] or ""), header
    # The final stats sample: the Engine API's one-shot sample, as the manifest says.
    made = {f["path"]: f for f in json.loads((bundle / "manifest.json").read_text())["files"]}
    final = made["stats-final.json"]
    assert final["command"][0] == "GET" and "one-shot=true" in final["command"][1], final
    assert {"read", "memory_stats", "pids_stats"} <= set(json.loads((bundle / "stats-final.json").read_text()))
    # The play ends by printing the verdict, the bundle and the report.
    tail = result.out[result.out.rfind("Capture | Verdict") :]
    assert str(bundle) in tail and "report.md" in tail
    assert expected[0] in tail
    # The service is left running on the debug image; the compose file swapped with a backup.
    assert stack.inspect()["Config"]["Image"] == stack.debug_image
    key_dir = next(state.glob("*"))
    assert (key_dir / "compose.orig").read_bytes() == original
    assert not agent_processes(str(state)), "a follower outlived the play"


def test_capture_over_ssh_and_swap_touches_one_line(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path], sshd: Sshd
) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory("hypothetical-task-error", exit_after_ms=1500)
    stack.up()
    original = stack.compose_path.read_bytes()
    inventory = write_inventory(tmp_path / "inv.yml", stack, dest=dest, state=state, sshd=sshd)

    result = run_playbook("capture.yml", inventory)

    assert result.rc == 0, result.out[-4000:]
    assert "ok: [testhost]" in result.out
    report = report_of(only_bundle(dest))
    assert report["verdict"]["scenario"] == "task-error"
    assert report["verdict"]["exit_path"] == "F"
    # Only the ingester's image line differs; the backup is the original byte for byte.
    key_dir = next(state.glob("*"))
    backup = (key_dir / "compose.orig").read_bytes()
    assert backup == original
    before, after = original.decode().splitlines(), stack.compose_path.read_text().splitlines()
    assert len(before) == len(after)
    changed = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert len(changed) == 1, changed
    assert changed[0][0].replace("rsky-ingester:latest", stack.debug_image) == changed[0][1]
    swap = json.loads((key_dir / "swap.json").read_text())
    assert swap["original_image"] == "rsky-ingester:latest"
    assert swap["sha256_orig"] == hashlib.sha256(original).hexdigest()


def test_numbered_lines_are_all_kept_across_restarts(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]
) -> None:
    dest, state = capture_paths
    per_run = 400
    stack: Stack = stack_factory("hypothetical-task-error", exit_after_ms=300, env={"STANDIN_NUMBERED": str(per_run)})
    stack.up()
    inventory = write_inventory(tmp_path / "inv.yml", stack, dest=dest, state=state, capture_stop_after_restarts=5)

    result = run_playbook("capture.yml", inventory)

    assert result.rc == 0, result.out[-4000:]
    bundle = only_bundle(dest)
    text = (bundle / "logs" / "ingester.log").read_text(errors="replace")
    runs: dict[str, set[int]] = {}
    done: set[str] = set()
    for match in re.finditer(r"\[SEQ\] run=(\w+) n=(\d+)", text):
        runs.setdefault(match.group(1), set()).add(int(match.group(2)))
    for match in re.finditer(r"\[SEQ\] run=(\w+) done total=(\d+)", text):
        done.add(match.group(1))
    assert len(done) >= 6, f"expected at least 6 complete runs (5 restarts), got {len(done)}"
    for run_id in done:
        missing = set(range(1, per_run + 1)) - runs[run_id]
        assert not missing, f"run {run_id} lost {len(missing)} lines"
    report = report_of(bundle)
    assert report["restarts"]["count"] >= 5
    tee_lines = (bundle / "logs" / "tee.log").read_text(errors="replace").count("[SEQ]")
    merged_lines = text.count("[SEQ]")
    assert report["capture"]["tee_missed_lines"] >= merged_lines - tee_lines - 5
    assert report["capture"]["tee_missed_lines"] > 0


def test_external_kill9_is_told_apart(stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory("healthy")
    stack.up()
    inventory = write_inventory(tmp_path / "inv.yml", stack, dest=dest, state=state, capture_stop_after_restarts=2)
    play = start_play(inventory)
    wait_for_window(state)
    kills = 0
    for _ in range(2):
        stack.wait_running(timeout=60)
        time.sleep(2.5)  # a run long enough to have printed its start-up lines
        stack.kill9()
        kills += 1
    out, _ = play.communicate(timeout=300)
    output = [out]
    assert kills == 2
    assert play.returncode == 0, output[0][-4000:]
    verdict = report_of(only_bundle(dest))["verdict"]
    assert verdict["scenario"] == "external-kill", verdict
    assert "outside" in verdict["summary"].lower() or "docker api" not in verdict["summary"].lower()


def test_healthy_service_is_stable(stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory("healthy")
    stack.up()
    inventory = write_inventory(tmp_path / "inv.yml", stack, dest=dest, state=state, capture_window_seconds=12)

    result = run_playbook("capture.yml", inventory)

    assert result.rc == 0, result.out[-4000:]
    report = report_of(only_bundle(dest))
    assert report["verdict"]["scenario"] == "stable"
    assert report["restarts"]["count"] == 0


def test_check_mode_changes_nothing(stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory("hypothetical-task-error", exit_after_ms=1500)
    stack.up()
    before_sha = sha(stack.compose_path)
    before_id = stack.container_id()
    inventory = write_inventory(tmp_path / "inv.yml", stack, dest=dest, state=state)

    result = run_playbook("capture.yml", inventory, "--check", "--diff")

    assert result.rc == 0, result.out[-4000:]
    assert sha(stack.compose_path) == before_sha
    assert stack.container_id() == before_id
    assert stack.inspect()["Config"]["Image"] == "rsky-ingester:latest"
    assert not list(dest.rglob("*")), "check mode fetched a bundle"
    assert not list(state.rglob("*.json")) and not list(state.rglob("compose.orig"))
    images = subprocess.run(
        ["docker", "image", "ls", "-q", stack.debug_image],
        capture_output=True,
        text=True,
        check=True,
    )
    assert not images.stdout.strip(), "check mode built the debug image"
    # It still says what it would do: the diff of the swap and the plan.
    assert f"+    image: {stack.debug_image}" in result.out
    assert "Check mode: nothing was changed" in result.out
