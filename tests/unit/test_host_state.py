"""The host state's lock and state folder under contention and against another user (host_state.py)."""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.rsky.ingester_capture.plugins.module_utils import host_state  # noqa: E402

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
