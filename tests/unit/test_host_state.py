"""The host state's lock and state folder under contention and against another user (host_state.py)."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.rsky.ingester_capture.plugins.module_utils import docker_cli, host_state  # noqa: E402

TRIALS = 200
TAKERS = 4


def expired_lock(state: Path, owner: str = "capture.yml@ctl#dead") -> None:
    """A lock its capture left behind: no process named, expired an hour ago."""
    state.mkdir(parents=True, mode=0o700)
    body = {
        "owner": owner,
        "purpose": "capture",
        "host": "elsewhere",
        "since": "2026-01-01T00:00:00Z",
        "expires": time.time() - 3600,
        "pid": None,
        "pid_start": None,
    }
    (state / host_state.LOCK_FILE).write_text(json.dumps(body))


def _taker(index: int, states: list[str], barrier: Any, results: Any) -> None:
    """One of the racing runs: for every trial, wait for the others, then take the lock as the modules do."""
    for trial, state in enumerate(states):
        barrier.wait()
        try:
            taken = host_state.lock_acquire(Path(state), f"run-{index}", "rollback", ttl=600)
            outcome = "acquired" if taken["acquired"] and not taken["again"] else "again"
        except host_state.LockedError:
            outcome = "refused"
        except Exception as exc:  # the test reports it, with the trial
            outcome = f"error: {exc!r}"
        results.put((trial, index, outcome))


def test_stale_lock_is_taken_over_by_exactly_one_of_many(tmp_path: Path) -> None:
    # Every trial: TAKERS processes find the same expired lock at once and try to take it over.
    states = []
    for trial in range(TRIALS):
        state = tmp_path / f"t{trial:03d}" / "key"
        expired_lock(state)
        states.append(str(state))
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(TAKERS)
    results = ctx.Queue()
    procs = [ctx.Process(target=_taker, args=(i, states, barrier, results)) for i in range(TAKERS)]
    for proc in procs:
        proc.start()
    outcomes: list[tuple[int, int, str]] = [results.get(timeout=600) for _ in range(TRIALS * TAKERS)]
    for proc in procs:
        proc.join()
    by_trial: dict[int, list[tuple[int, str]]] = {}
    for trial, index, outcome in outcomes:
        by_trial.setdefault(trial, []).append((index, outcome))
    errors = [(t, o) for t, o in by_trial.items() if any(x.startswith("error") for _, x in o)]
    assert not errors, errors[:3]
    doubles = {t: o for t, o in by_trial.items() if sum(x == "acquired" for _, x in o) != 1}
    assert not doubles, f"{len(doubles)} of {TRIALS} trials had not exactly one taker: {list(doubles.items())[:3]}"
    # The lock left is the winner's, whole.
    for trial, outs in by_trial.items():
        (winner,) = [i for i, x in outs if x == "acquired"]
        held = json.loads((Path(states[trial]) / host_state.LOCK_FILE).read_text())
        assert held["owner"] == f"run-{winner}"
        assert all(x == "refused" for i, x in outs if i != winner)


# ------------------------------------------------------------ a state folder others can write ---

NOBODY = 65534


def _group_writable(root: Path, state: Path) -> None:
    state.mkdir(parents=True)
    state.chmod(0o770)


def _others_write_the_root(root: Path, state: Path) -> None:
    root.mkdir(parents=True)
    root.chmod(0o1777)


def _owned_by_another_user(root: Path, state: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    state.mkdir(parents=True, mode=0o700)
    os.chown(state, NOBODY, NOBODY)


UNSAFE = {
    "group-writable": (_group_writable, r"can be written by group \(mode 0770\)"),
    "world-writable-root": (_others_write_the_root, r"can be written by group and others \(mode 1777\)"),
    "another-owner": (_owned_by_another_user, rf"owned by uid {NOBODY}, not by uid \d+ that runs the modules"),
}


@pytest.mark.parametrize("make", sorted(UNSAFE))
def test_a_state_folder_others_can_write_is_refused_and_left_alone(tmp_path: Path, make: str) -> None:
    root = tmp_path / "state"
    state = root / "key"
    plant, says = UNSAFE[make]
    plant(root, state)
    before = sorted(p.name for p in root.rglob("*")), state.stat().st_mode if state.exists() else None

    with pytest.raises(host_state.UnsafeStateError, match=says) as taking:
        host_state.lock_acquire(state, "capture.yml@ctl#run1", "capture", ttl=600)
    with pytest.raises(host_state.UnsafeStateError, match=says):
        host_state.read_swap(state)
    with pytest.raises(host_state.UnsafeStateError, match=says):
        host_state.make_state_dir(state)

    message = str(taking.value)
    assert "\n" not in message and "nothing was changed" in message
    # Nothing was created in it, nothing was chmod'ed.
    assert (sorted(p.name for p in root.rglob("*")), state.stat().st_mode if state.exists() else None) == before


def test_a_state_file_someone_else_wrote_is_not_trusted(tmp_path: Path) -> None:
    state = tmp_path / "state" / "key"
    state.mkdir(parents=True, mode=0o700)
    (state / "swap.json").write_text("{}")
    (state / "swap.json").chmod(0o666)
    with pytest.raises(host_state.UnsafeStateError, match=r"swap\.json can be written by group and others"):
        host_state.read_swap(state)
    (state / "swap.json").unlink()
    (state / "swap.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(host_state.UnsafeStateError, match="not a regular file"):
        host_state.read_swap(state)


def test_a_safe_state_folder_is_used(tmp_path: Path) -> None:
    root = tmp_path / "state"
    root.mkdir(mode=0o755)
    taken = host_state.lock_acquire(root / "key", "capture.yml@ctl#run1", "capture", ttl=600)
    assert taken["acquired"] and not taken["again"]
    assert (root / "key").stat().st_mode & 0o777 == 0o700
    again = host_state.lock_acquire(root / "key", "capture.yml@ctl#run1", "capture", ttl=600)
    assert again["again"]
    with pytest.raises(host_state.LockedError):
        host_state.lock_acquire(root / "key", "capture.yml@ctl#run2", "capture", ttl=600)


# ----------------------------------------------------- what a rollback writes: the inventory's ---

SERVICE = "ingester"


@pytest.fixture(autouse=True)
def no_project() -> Iterator[None]:
    """Each test starts with no compose project chosen (target_paths chooses one per process)."""
    docker_cli.forget_project()
    yield
    docker_cli.forget_project()


def planted(tmp_path: Path, target: Path, chosen: bytes) -> tuple[dict[str, Any], Path]:
    """A state folder that says the last swap edited ``target`` and backed up ``chosen``: what
    someone who could write the state folder would plant. The folder itself is root's alone, so
    the check on whom it belongs to passes and the record itself must be caught."""
    project = tmp_path / "atproto"
    project.mkdir()
    (project / "docker-compose.yml").write_bytes(b"services:\n  ingester:\n    image: rsky-ingester:latest\n")
    params = {
        "project_dir": str(project),
        "compose_file": "docker-compose.yml",
        "service": SERVICE,
        "state_dir": str(tmp_path / "state"),
        "project_name": "",
        "project_working_dir": "",
        "project_config_files": [],
    }
    state = host_state.state_dir(params["state_dir"], str(project), "docker-compose.yml", SERVICE)
    state.mkdir(parents=True, mode=0o700)
    (state / "compose.orig").write_bytes(chosen)
    record = {
        "compose_path": str(target),
        "service": SERVICE,
        "container": "rust-ingester",
        "original_image": "rsky-ingester:latest",
        "debug_image": "rsky-ingester:debug",
        "sha256_orig": host_state.sha256_bytes(chosen),
        "sha256_swapped": host_state.sha256_bytes(target.read_bytes()),
        "swapped_at": "2026-01-01T00:00:00Z",
        "project": {
            "name": "",
            "working_dir": str(target.parent),
            "config_files": [str(target)],
            "compose_path": str(target),
        },
    }
    (state / "swap.json").write_text(json.dumps(record))
    return params, state


def test_a_planted_swap_record_cannot_choose_what_a_rollback_writes(tmp_path: Path) -> None:
    victim = tmp_path / "etc" / "cron.d" / "job"
    victim.parent.mkdir(parents=True)
    victim.write_bytes(b"# a file root keeps\n")
    params, _ = planted(tmp_path, victim, b"* * * * * root chosen-command\n")

    # As compose_image does: the target from the parameters (and, given none, the swap's project).
    found, compose = host_state.target_paths(params)
    with pytest.raises(host_state.StateError, match=r"restore target .*job is neither the inventory's compose file"):
        host_state.plan_restore(found, compose, SERVICE, force=True, allowed=host_state.restore_targets(params))
    assert victim.read_bytes() == b"# a file root keeps\n"


def test_a_swap_record_for_another_file_is_refused_even_for_the_inventorys_target(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"x\n")
    params, state = planted(tmp_path, victim, b"chosen\n")
    inventory = host_state.compose_path(params["project_dir"], params["compose_file"])
    with pytest.raises(host_state.StateError, match=r"swap\.json is for .*victim"):
        host_state.plan_restore(state, inventory, SERVICE, force=True, allowed=host_state.restore_targets(params))


def test_the_inventorys_file_through_a_link_is_the_same_target(tmp_path: Path) -> None:
    # The record names the real path, the inventory a link to its folder: the same file, restored.
    params, state = planted(tmp_path, tmp_path / "atproto" / "docker-compose.yml", b"services: {}\n")
    link = tmp_path / "current"
    link.symlink_to(tmp_path / "atproto")
    params["project_dir"] = str(link)
    state.rename(host_state.state_dir(params["state_dir"], str(link), "docker-compose.yml", SERVICE))
    found, compose = host_state.target_paths(params)
    plan = host_state.plan_restore(found, compose, SERVICE, force=False, allowed=host_state.restore_targets(params))
    assert plan.status == "restore" and plan.backup == b"services: {}\n"
