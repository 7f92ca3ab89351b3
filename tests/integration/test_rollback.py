"""rollback.yml against real stand-in stacks: byte-exact restore, idempotence, --check, refusals."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import (
    REPO,
    VENV_BIN,
    PlayResult,
    ansible_env,
    run_playbook,
    start_play,
    wait_for_window,
    write_inventory,
)
from tests.standin.stack import PROD_IMAGE, Stack

pytestmark = pytest.mark.integration

ANSIBLE = str(VENV_BIN / "ansible")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def state_folder(stack: Stack, state: Path) -> Path:
    key = sha(f"{stack.project_dir}/{stack.compose_file}:{stack.service}".encode())[:12]
    return state / key


def recap(result: PlayResult) -> dict[str, int]:
    # The target host's line: the plays' first play checks the inventory on localhost.
    m = re.search(r"^(?!localhost\s)\S+\s+: (ok=.*)$", result.out, re.MULTILINE)
    assert m, result.out[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}


def image_of(stack: Stack) -> str:
    return str(stack.inspect()["Config"]["Image"])


def swap_by_hand(stack: Stack, state: Path) -> tuple[bytes, Path]:
    """Do what capture.yml's compose_swap does (docs/host-state.md), without capture.yml."""
    folder = state_folder(stack, state)
    folder.mkdir(parents=True, mode=0o700)
    original = stack.compose_path.read_bytes()
    debug = stack.debug_image
    subprocess.run(["docker", "tag", PROD_IMAGE, debug], check=True)
    swapped = original.replace(
        f"image: {PROD_IMAGE}\n    container_name: {stack.container}".encode(),
        f"image: {debug}\n    container_name: {stack.container}".encode(),
    )
    assert swapped != original
    (folder / "compose.orig").write_bytes(original)
    (folder / "swap.json").write_text(
        json.dumps(
            {
                "compose_path": str(stack.compose_path),
                "service": stack.service,
                "container": stack.container,
                "original_image": PROD_IMAGE,
                "debug_image": debug,
                "sha256_orig": sha(original),
                "sha256_swapped": sha(swapped),
                "swapped_at": "2026-01-01T00:00:00Z",
            }
        )
    )
    stack.compose_path.write_bytes(swapped)
    stack.compose("up", "-d", "--no-deps", stack.service)
    stack.wait_running()
    assert image_of(stack) == debug
    return original, folder


@pytest.fixture
def swapped(stack_factory: Any, tmp_path: Path) -> tuple[Stack, bytes, Path, Path]:
    stack: Stack = stack_factory("healthy")
    stack.up()
    state = tmp_path / "state"
    original, folder = swap_by_hand(stack, state)
    inventory = write_inventory(tmp_path / "inv.yml", stack, dest=tmp_path / "captures", state=state)
    return stack, original, folder, inventory


def test_rollback_restores_bytes_and_image_then_changes_nothing(
    swapped: tuple[Stack, bytes, Path, Path],
) -> None:
    stack, original, folder, inventory = swapped
    old_id = stack.container_id()

    first = run_playbook("playbooks/rollback.yml", inventory, extra_vars={"rollback_wait_timeout": 60})

    assert first.rc == 0, first.out[-4000:]
    assert recap(first)["changed"] > 0
    # Static roles and steps: no "included:" line between the tasks.
    assert "included:" not in first.out, [line for line in first.out.splitlines() if "included:" in line]
    assert stack.compose_path.read_bytes() == original
    assert image_of(stack) == PROD_IMAGE
    assert stack.inspect()["State"]["Running"]
    assert stack.container_id() != old_id, "the service must be recreated"
    assert not (folder / "swap.json").exists()
    done = json.loads((folder / "rollback.json").read_text())
    assert done["original_image"] == PROD_IMAGE
    assert done["sha256_orig"] == sha(original)
    assert done["compose_path"] == str(stack.compose_path)
    assert (folder / "rollback.json").stat().st_mode & 0o777 == 0o600
    # The debug image is kept unless asked for.
    assert subprocess.run(["docker", "image", "inspect", stack.debug_image], capture_output=True).returncode == 0

    second = run_playbook("playbooks/rollback.yml", inventory)

    assert second.rc == 0, second.out[-4000:]
    assert recap(second)["changed"] == 0
    assert "Nothing to roll back" in second.out
    assert stack.compose_path.read_bytes() == original


def test_check_mode_tells_and_changes_nothing(swapped: tuple[Stack, bytes, Path, Path]) -> None:
    stack, original, folder, inventory = swapped
    before = stack.compose_path.read_bytes()
    old_id = stack.container_id()

    result = run_playbook("playbooks/rollback.yml", inventory, "--check")

    assert result.rc == 0, result.out[-4000:]
    assert "Would restore" in result.out
    assert "Would recreate" in result.out
    assert stack.compose_path.read_bytes() == before != original
    assert stack.container_id() == old_id
    assert image_of(stack) == stack.debug_image
    assert (folder / "swap.json").exists()
    assert not (folder / "rollback.json").exists()


def test_remove_debug_image(swapped: tuple[Stack, bytes, Path, Path]) -> None:
    stack, original, _, inventory = swapped

    result = run_playbook("playbooks/rollback.yml", inventory, extra_vars={"rollback_remove_debug_image": True})

    assert result.rc == 0, result.out[-4000:]
    assert stack.compose_path.read_bytes() == original
    gone = subprocess.run(["docker", "image", "inspect", stack.debug_image], capture_output=True)
    assert gone.returncode != 0, "the debug image should be removed"
    assert subprocess.run(["docker", "image", "inspect", PROD_IMAGE], capture_output=True).returncode == 0


def test_refuses_without_backup(stack_factory: Any, tmp_path: Path) -> None:
    stack: Stack = stack_factory("healthy")
    stack.up()
    before = stack.compose_path.read_bytes()
    inventory = write_inventory(tmp_path / "inv.yml", stack, dest=tmp_path / "captures", state=tmp_path / "state")

    result = run_playbook("playbooks/rollback.yml", inventory)

    assert result.rc != 0
    assert "No backup to roll back from" in result.out
    assert "Refusing to guess" in result.out
    assert stack.compose_path.read_bytes() == before


def test_refuses_to_overwrite_a_later_edit_unless_forced(
    swapped: tuple[Stack, bytes, Path, Path],
) -> None:
    stack, original, folder, inventory = swapped
    edited = stack.compose_path.read_bytes() + b"# edited by hand after the swap\n"
    stack.compose_path.write_bytes(edited)

    refused = run_playbook("playbooks/rollback.yml", inventory)

    assert refused.rc != 0
    assert "changed after capture.yml swapped it" in refused.out
    assert stack.compose_path.read_bytes() == edited
    assert (folder / "swap.json").exists()

    forced = run_playbook("playbooks/rollback.yml", inventory, extra_vars={"rollback_force": True})

    assert forced.rc == 0, forced.out[-4000:]
    assert stack.compose_path.read_bytes() == original
    assert image_of(stack) == PROD_IMAGE


def test_refuses_a_corrupt_backup(swapped: tuple[Stack, bytes, Path, Path]) -> None:
    stack, _, folder, inventory = swapped
    before = stack.compose_path.read_bytes()
    (folder / "compose.orig").write_bytes(b"services: {}\n")

    result = run_playbook("playbooks/rollback.yml", inventory)

    assert result.rc != 0
    assert "cannot be trusted" in result.out
    assert stack.compose_path.read_bytes() == before


def test_fails_clearly_when_the_service_does_not_come_up(
    swapped: tuple[Stack, bytes, Path, Path],
) -> None:
    _, _, folder, inventory = swapped
    # The original image's entrypoint cannot start: the restored service never runs.
    folder_orig = (folder / "compose.orig").read_bytes()
    broken = folder_orig.replace(
        b"    restart: unless-stopped\n    # production",
        b'    restart: "no"\n    entrypoint: ["/nonexistent"]\n    # production',
        1,
    )
    assert broken != folder_orig
    swap = json.loads((folder / "swap.json").read_text())
    swap["sha256_orig"] = sha(broken)
    (folder / "compose.orig").write_bytes(broken)
    (folder / "swap.json").write_text(json.dumps(swap))

    result = run_playbook(
        "playbooks/rollback.yml",
        inventory,
        extra_vars={"rollback_wait_timeout": 4, "rollback_wait_delay": 1},
    )

    assert result.rc != 0
    assert "is not running on" in result.out or "Rollback stopped at" in result.out
    assert "swap.json kept" in result.out
    assert (folder / "swap.json").exists()


@pytest.mark.skipif(not (REPO / "capture.yml").exists(), reason="capture.yml is not in this tree yet")
def test_capture_then_rollback(stack_factory: Any, tmp_path: Path) -> None:
    stack: Stack = stack_factory("hypothetical-task-error", exit_after_ms=1500)
    stack.up()
    original = stack.compose_path.read_bytes()
    state = tmp_path / "state"
    inventory = write_inventory(tmp_path / "inv.yml", stack, dest=tmp_path / "captures", state=state)

    capture = run_playbook("capture.yml", inventory)

    assert capture.rc == 0, capture.out[-4000:]
    assert image_of(stack) == stack.debug_image, "capture.yml should leave the debug image in place"
    assert "included:" not in capture.out, [line for line in capture.out.splitlines() if "included:" in line]

    first = run_playbook("playbooks/rollback.yml", inventory)

    assert first.rc == 0, first.out[-4000:]
    assert stack.compose_path.read_bytes() == original
    assert image_of(stack) == PROD_IMAGE
    assert not (state_folder(stack, state) / "swap.json").exists()

    second = run_playbook("playbooks/rollback.yml", inventory)

    assert second.rc == 0, second.out[-4000:]
    assert recap(second)["changed"] == 0
    assert stack.compose_path.read_bytes() == original


def lock_module(stack: Stack, state_root: Path, **args: Any) -> subprocess.CompletedProcess[str]:
    """Run the collection's capture_lock module, as capture.yml and rollback.yml do."""
    args = {
        "project_dir": str(stack.project_dir),
        "compose_file": stack.compose_file,
        "service": stack.service,
        "state_dir": str(state_root),
        **args,
    }
    argv = [
        ANSIBLE,
        "localhost",
        "-c",
        "local",
        "-i",
        "localhost,",
        "-e",
        "ansible_python_interpreter=/usr/bin/python3",
    ]
    return subprocess.run(
        [*argv, "-m", "rsky.ingester_capture.capture_lock", "-a", json.dumps(args)],
        cwd=REPO,
        env=ansible_env(),
        capture_output=True,
        text=True,
        check=False,
    )


def test_refuses_while_a_capture_holds_the_lock(swapped: tuple[Stack, bytes, Path, Path]) -> None:
    stack, original, folder, inventory = swapped
    before = stack.compose_path.read_bytes()
    owner = "testhost@capture-under-test"
    taken = lock_module(stack, folder.parent, owner=owner, purpose="capture", ttl=600)
    assert taken.returncode == 0, taken.stdout + taken.stderr
    assert json.loads((folder / "lock").read_text())["owner"] == "testhost@capture-under-test"

    refused = run_playbook("playbooks/rollback.yml", inventory)

    assert refused.rc != 0
    assert "A capture holds" in refused.out
    assert stack.compose_path.read_bytes() == before
    assert json.loads((folder / "lock").read_text())["owner"] == "testhost@capture-under-test", "rollback took the lock"

    # The capture ends and releases it, the way capture.yml does; then the rollback goes ahead.
    released = lock_module(stack, folder.parent, owner=owner, state="released")
    assert released.returncode == 0, released.stdout + released.stderr
    result = run_playbook("playbooks/rollback.yml", inventory)
    assert result.rc == 0, result.out[-4000:]
    assert stack.compose_path.read_bytes() == original
    assert not (folder / "lock").exists(), "rollback must release the lock it took"


def test_a_lock_left_by_a_dead_capture_is_stale(stack_factory: Any, tmp_path: Path) -> None:
    stack: Stack = stack_factory("task-error", exit_after_ms=3000)
    stack.up()
    original = stack.compose_path.read_bytes()
    state = tmp_path / "state"
    inventory = write_inventory(
        tmp_path / "inv.yml",
        stack,
        dest=tmp_path / "captures",
        state=state,
        capture_stop_after_restarts=0,
        capture_window_seconds=120,
        capture_heartbeat_timeout_seconds=600,
    )
    play = start_play(inventory)
    progress = wait_for_window(state)
    worker = int(json.loads(progress.read_text())["pid"])
    lock = json.loads((state_folder(stack, state) / "lock").read_text())
    assert lock["pid"] == worker, lock
    # The capture dies for good: the play and its window worker are killed, nothing cleans up.
    # Ansible's forked workers outlive a killed parent: take the whole tree, parent first.
    doomed = [play.pid, *_descendants(play.pid), worker, *_descendants(worker)]
    for pid in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    play.wait()
    assert (state_folder(stack, state) / "lock").exists(), "the dead capture's lock is left behind"

    result = run_playbook("playbooks/rollback.yml", inventory)

    assert result.rc == 0, result.out[-4000:]
    assert stack.compose_path.read_bytes() == original
    assert image_of(stack) == PROD_IMAGE
    assert not (state_folder(stack, state) / "lock").exists()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                found += [int(x) for x in (task / "children").read_text().split()]
    return found


def _descendants(pid: int) -> list[int]:
    found, todo = [], _children(pid)
    while todo:
        child = todo.pop()
        found.append(child)
        todo += _children(child)
    return found
