"""A capture whose window worker is killed mid-window: the play says so within one poll, and what
was captured is sealed, redacted, fetched and marked partial; no raw copy stays on the host.

The worker is found the way the product records it (the pid in the window's progress file) and
killed with SIGKILL, as the kernel's OOM killer or an operator's `kill -9` would.
"""

from __future__ import annotations

import json
import os
import signal
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from standin.stack import MONITOR_TOKEN, REDIS_PASSWORD, Stack
from tests.support.inventories import write_inventory
from tests.support.playbooks import start_play, wait_for_window
from tests.support.processes import agent_processes

pytestmark = pytest.mark.integration

SECRETS = (REDIS_PASSWORD.encode(), MONITOR_TOKEN.encode())
PROGRESS_LINE = "[testhost] window "


def holding_a_secret(root: Path) -> set[Path]:
    """Every file under ``root`` (git objects aside) that holds a planted secret as it is."""
    found = set()
    for path in root.rglob("*"):
        if ".git" in path.parts or not path.is_file() or path.is_symlink():
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if any(secret in data for secret in SECRETS):
            found.add(path)
    return found


def test_a_killed_window_worker_is_said_within_one_poll_and_its_capture_kept_partial(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]
) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory("hypothetical-task-error", exit_after_ms=3000)
    stack.up()
    original = stack.compose_path.read_bytes()
    # The stack's own files hold the secrets (the compose file, as production's does).
    before = holding_a_secret(tmp_path)
    inventory = write_inventory(
        tmp_path / "i.yml",
        stack,
        dest=dest,
        state=state,
        capture_stop_after_restarts=0,
        capture_window_seconds=180,
        capture_poll_seconds=3,
    )
    play = start_play(inventory)
    lines: list[str] = []
    assert play.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(play.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        progress_file = wait_for_window(state)
        work = progress_file.parent
        # Mid-window: a follower has read a run's output (its Configuration line prints REDIS_URL
        # whole, the password in it) and the play has printed a poll.
        deadline = time.time() + 300
        while time.time() < deadline:
            raw = [p for p in (work / ".follow").glob("*.stdout") if REDIS_PASSWORD.encode() in p.read_bytes()]
            if raw and any(line.startswith(PROGRESS_LINE) for line in list(lines)):
                break
            time.sleep(0.5)
        else:
            raise AssertionError("no follower read the container's output, or the play printed no poll")
        pid = json.loads(progress_file.read_text())["pid"]
        polls_before = sum(line.startswith(PROGRESS_LINE) for line in list(lines))
        os.kill(pid, signal.SIGKILL)
        play.wait(timeout=600)
    finally:
        if play.poll() is None:
            play.kill()
            play.wait()
    reader.join(timeout=30)
    out = "".join(lines)

    assert play.returncode != 0
    # Within one poll: the poll under way when the worker died is the last (a line printed
    # between the count and the kill is the one allowed).
    polls_after = sum(line.startswith(PROGRESS_LINE) for line in lines)
    assert polls_after - polls_before <= 1, out[-3000:]
    said = f"the capture window's worker (pid {pid}) died"
    assert said in out, out[-3000:]
    assert "A partial bundle (marked partial in its manifest.json" in out, out[-3000:]

    # The fetched bundle is marked partial, with the reason, and keeps what was captured.
    (bundle,) = [p for p in dest.glob("*/*") if p.is_dir()]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["partial"] is True
    assert any(said in reason for reason in manifest["partial_reasons"]), manifest["partial_reasons"]
    window = json.loads((bundle / "window.json").read_text())
    assert window["ended_by"] == "worker died"
    merged = (bundle / "logs" / "ingester.log").read_text()
    assert "redis://:[REDACTED-" in merged, "the captured runs' lines are not in the bundle"
    assert {f["path"] for f in manifest["files"]} | {"manifest.json"} == {
        str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file()
    } - {"report.json", "report.md", "report.html"}

    # No raw secret reached the controller: not in the bundle, not in the tarball.
    leaks = [str(p) for p in dest.rglob("*") if p.is_file() and any(s in p.read_bytes() for s in SECRETS)]
    (tarball,) = list(dest.glob("*/*.tar.gz"))
    assert Path(f"{tarball}.sha256").read_text().split()[1] == tarball.name
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            assert not member.name.startswith((".", "./.")), f"a hidden work file was shipped: {member.name}"
            if handle is not None and any(s in handle.read() for s in SECRETS):
                leaks.append(f"tar:{member.name}")
    assert not leaks, leaks

    # The host keeps no unredacted copy outside the state folder, and the work folder is gone.
    assert not work.exists(), f"the work folder was left: {sorted(work.rglob('*'))}"
    new = holding_a_secret(tmp_path) - before
    outside = [p for p in new if state not in p.parents]
    assert not outside, f"unredacted copies outside the state folder: {outside}"

    # The followers the dead worker left are stopped; the service runs on its original image.
    assert not agent_processes(stack.container), agent_processes(stack.container)
    assert not agent_processes(str(state))
    info = stack.inspect()
    assert info["State"]["Running"] or info["State"]["Restarting"]
    assert info["Config"]["Image"] == "rsky-ingester:latest"
    assert stack.compose_path.read_bytes() == original
    assert not list(state.glob("*/lock"))


def test_a_window_that_fails_after_it_started_hands_back_a_partial_bundle(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]
) -> None:
    """The debug image never starts: the window recreated the service and watched it fail, then the
    pass fails. What the window saw (events, the failed runs' output) is evidence all the same."""
    dest, state = capture_paths
    stack: Stack = stack_factory("healthy")
    stack.up()
    dockerfile = stack.rsky_dir / "rsky-ingester" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + '\nENTRYPOINT ["/no-such-binary"]\n')
    before = holding_a_secret(tmp_path)

    play = start_play(write_inventory(tmp_path / "i.yml", stack, dest=dest, state=state))
    out, _ = play.communicate(timeout=900)

    assert play.returncode != 0
    assert "compose file restored from the backup" in out
    assert "A partial bundle (marked partial in its manifest.json" in out, out[-3000:]
    (bundle,) = [p for p in dest.glob("*/*") if p.is_dir()]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["partial"] is True
    assert any("capture window" in reason for reason in manifest["partial_reasons"]), manifest["partial_reasons"]
    assert (bundle / "events.jsonl").is_file() and (bundle / "inspect.json").is_file()
    leaks = [str(p) for p in dest.rglob("*") if p.is_file() and any(s in p.read_bytes() for s in SECRETS)]
    assert not leaks, leaks
    assert not list(state.glob("*/work/*")), "the work folder was left on the host"
    assert not [p for p in holding_a_secret(tmp_path) - before if state not in p.parents]
