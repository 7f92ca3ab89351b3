"""rollback.yml against real stand-in stacks: byte-exact restore, idempotence, --check, refusals."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from standin.stack import PROD_IMAGE, Stack, build_images
from tests.support.inventories import write_inventory
from tests.support.playbooks import (
    REPO,
    VENV_BIN,
    BackgroundPlay,
    PlayResult,
    ansible_env,
    run_playbook,
    start_play,
    wait_for_window,
)
from tests.support.processes import descendants

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
    doomed = [play.pid, *descendants(play.pid), worker, *descendants(worker)]
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


# ------------------------------------------------------------------- two rollbacks at once ---

CHECK_TASK = "Rollback | Look for a capture holding the lock"
RESTORE_TASK = "Rollback | Restore the compose file byte for byte"


class Play(BackgroundPlay):
    """rollback.yml in the background; ``at_check`` is set once it reaches the lock check (or ends)."""

    def __init__(self, inventory: Path) -> None:
        self.at_check = threading.Event()
        super().__init__("playbooks/rollback.yml", inventory)

    def seen(self, line: str) -> None:
        if line.startswith("TASK [") and CHECK_TASK in line:
            self.at_check.set()

    def ended(self) -> None:
        self.at_check.set()


def container_creates(project: str, since: str) -> list[dict[str, Any]]:
    """The containers Docker created for this compose project since ``since`` (its own record)."""
    until = subprocess.run(["date", "-u", "+%Y-%m-%dT%H:%M:%S.%NZ"], capture_output=True, text=True, check=True)
    out = subprocess.run(
        [
            "docker",
            "events",
            "--since",
            since,
            "--until",
            until.stdout.strip(),
            "--filter",
            "type=container",
            "--filter",
            "event=create",
            "--filter",
            f"label=com.docker.compose.project={project}",
            "--format",
            "{{json .}}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def test_two_rollbacks_started_together_one_restores_the_other_refuses(
    swapped: tuple[Stack, bytes, Path, Path],
) -> None:
    stack, original, folder, inventory = swapped
    since = subprocess.run(["date", "-u", "+%Y-%m-%dT%H:%M:%S.%NZ"], capture_output=True, text=True, check=True)

    first, second = Play(inventory), Play(inventory)
    # Both look at the lock together, whatever the machine's load: the one that gets there first
    # is held (SIGSTOP, before its check has run) until the other is there too.
    first_there = first.at_check.wait(300) and second.proc.poll() is None
    if first_there and not second.at_check.is_set():
        first.hold()
        second.at_check.wait(300)
        first.release()
    results = [first.finish(), second.finish()]

    restored = [r for r in results if r.rc == 0]
    refused = [r for r in results if r.rc != 0]
    assert len(restored) == 1 and len(refused) == 1, f"exit codes {[r.rc for r in results]}:\n" + "\n----\n".join(
        r.out[-3000:] for r in results
    )
    (won,), (lost,) = restored, refused
    assert "restored" in won.out or "Restoring" in won.out, won.out[-3000:]
    assert re.search(r"another rollback holds the lock|A rollback holds", lost.out), lost.out[-3000:]
    # The refused run never reached the restore: no compose call, no container of its own.
    assert RESTORE_TASK not in lost.out, lost.out[-3000:]
    creates = container_creates(stack.project, since.stdout.strip())
    assert len(creates) == 1, f"Docker created {len(creates)} containers for the service: {creates}"
    assert stack.compose_path.read_bytes() == original
    assert image_of(stack) == PROD_IMAGE
    assert stack.inspect()["State"]["Running"]
    assert not (folder / "swap.json").exists()
    assert not (folder / "lock").exists(), "the winner releases its lock; the loser never held it"


# ------------------------------------------------------------ a state folder others can write ---


def test_rollback_refuses_a_state_folder_others_can_write(swapped: tuple[Stack, bytes, Path, Path]) -> None:
    stack, _, folder, inventory = swapped
    before, old_id = stack.compose_path.read_bytes(), stack.container_id()
    folder.parent.chmod(0o777)

    result = run_playbook("playbooks/rollback.yml", inventory)

    assert result.rc != 0
    said = [line for line in result.out.splitlines() if "can be written by group and others (mode 0777)" in line]
    assert said, result.out[-3000:]
    assert "nothing was changed" in said[0]
    assert stack.compose_path.read_bytes() == before
    assert stack.container_id() == old_id
    assert (folder / "swap.json").exists() and not (folder / "lock").exists()


COMPOSE_IMAGE = REPO / "plugins" / "modules" / "compose_image.py"


def test_a_planted_swap_record_does_not_make_rollback_write_a_chosen_file(tmp_path: Path) -> None:
    # Someone planted a swap record naming a file root keeps, and a "backup" of their choosing;
    # the original image it names is on the host, the container is not.
    build_images()
    project = tmp_path / "atproto"
    project.mkdir()
    (project / "docker-compose.yml").write_text("services:\n  ingester:\n    image: rsky-ingester:latest\n")
    victim = tmp_path / "cron.d" / "job"
    victim.parent.mkdir()
    victim.write_bytes(b"# root's own job\n")
    chosen = b"* * * * * root chosen-command\n"
    root = tmp_path / "state"
    args = {
        "project_dir": str(project),
        "compose_file": "docker-compose.yml",
        "service": "ingester",
        "state_dir": str(root),
        "state": "restored",
        "container": "ingester-capture-test-no-such-container",
        "recreate": False,
    }
    folder = root / sha(f"{project}/docker-compose.yml:ingester".encode())[:12]
    folder.mkdir(parents=True, mode=0o700)
    (folder / "compose.orig").write_bytes(chosen)
    (folder / "swap.json").write_text(
        json.dumps(
            {
                "compose_path": str(victim),
                "service": "ingester",
                "container": args["container"],
                "original_image": PROD_IMAGE,
                "debug_image": PROD_IMAGE,
                "sha256_orig": sha(chosen),
                "sha256_swapped": sha(victim.read_bytes()),
                "swapped_at": "2026-01-01T00:00:00Z",
                "project": {
                    "name": "",
                    "working_dir": str(victim.parent),
                    "config_files": [str(victim)],
                    "compose_path": str(victim),
                },
            }
        )
    )
    (tmp_path / "args.json").write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))

    proc = subprocess.run(
        [sys.executable, str(COMPOSE_IMAGE), str(tmp_path / "args.json")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO / "collections")},
        stdin=subprocess.DEVNULL,
    )

    result = json.loads(proc.stdout)
    assert result.get("failed"), result
    assert "is neither the inventory's compose file" in result["msg"], result["msg"]
    assert victim.read_bytes() == b"# root's own job\n"
    assert (folder / "swap.json").exists() and not (folder / "rollback.json").exists()
