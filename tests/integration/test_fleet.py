"""One capture.yml run against several stand-in hosts at once: the closing fleet summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from standin.stack import Stack
from tests.support.inventories import write_fleet_inventory
from tests.support.playbooks import PlayResult, run_playbook

pytestmark = pytest.mark.integration

# host, scenario, stack keyword arguments, capture mode; expected (status, group key or failed step)
# from the reference: a REDIS_URL without redis:// is a configuration error naming REDIS_URL, every
# firehose task panicking in the production (hook) build is a panic in firehose.rs.
HOSTS = [
    ("prod-a", "config-redis-url", {}, "observe", ("ok", "config-error:REDIS_URL")),
    ("prod-b", "config-redis-url", {}, "observe", ("ok", "config-error:REDIS_URL")),
    ("prod-c", "all-panicked", {"exit_after_ms": 300}, "observe", ("ok", "panic:")),
    # Its debug build cannot work (a Dockerfile docker cannot parse): it fails mid-capture, after
    # the lock and the production snapshot, at the debug build.
    ("prod-d", "contained-panic", {}, "capture", ("failed", "debug_image")),
]


def fleet_inventory(path: Path, stacks: dict[str, Stack], modes: dict[str, str], dest: Path, root: Path) -> Path:
    hosts = {host: (stack, root / f"state-{host}", modes[host]) for host, stack in stacks.items()}
    return write_fleet_inventory(path, hosts, dest=dest, capture_window_seconds=40)


def run_capture(inventory: Path, *args: str, env: dict[str, str] | None = None) -> PlayResult:
    """capture.yml over ``inventory``: its exit code and output, both streams."""
    return run_playbook("capture.yml", inventory, *args, timeout=900, env=env)


def test_fleet_summary_groups_causes_and_names_the_failed_step(stack_factory: Any, tmp_path: Path) -> None:
    dest = tmp_path / "captures"
    dest.mkdir()
    stacks: dict[str, Stack] = {}
    for host, scenario, kwargs, _, _ in HOSTS:
        stacks[host] = stack_factory(scenario, **kwargs)
    broken = stacks["prod-d"].rsky_dir / "rsky-ingester" / "Dockerfile"
    broken.write_text("THIS IS NOT A DOCKERFILE\n")
    for stack in stacks.values():
        stack.up()
    for host, scenario, _, _, _ in HOSTS:
        if scenario != "contained-panic":
            stacks[host].wait_restarts(2, timeout=90)  # production has crash-looped before anyone looks
    inventory = fleet_inventory(tmp_path / "inv.yml", stacks, {h[0]: h[3] for h in HOSTS}, dest, tmp_path)

    result = run_capture(inventory, "--forks", "4", env={"ANSIBLE_SHOW_CUSTOM_STATS": "true"})
    out = result.out

    # prod-d failed, so the run fails; the closing play ran all the same.
    assert result.rc == 2, out[-6000:]
    outcomes = json.loads((dest / ".fleet-outcomes.json").read_text())
    assert sorted(outcomes) == [h[0] for h in HOSTS]
    fleet = json.loads((dest / "fleet.json").read_text())
    rows = {row["host"]: row for row in fleet["hosts"]}
    assert sorted(rows) == [h[0] for h in HOSTS], fleet
    for host, _, _, _, (status, key) in HOSTS:
        row = rows[host]
        assert row["status"] == status, row
        if status == "ok":
            assert row["group"].startswith(key), row
            assert row["report"] and Path(row["report"]).is_file(), row
            assert row["bundle"] and Path(row["bundle"]).exists(), row
        else:
            assert row["failed_step"] == key, row
            assert "docker build" in row["msg"], row
    assert rows["prod-c"]["verdict"] == "panic" and "firehose.rs" in rows["prod-c"]["group"], rows["prod-c"]
    # The same cause grouped: one group holds both REDIS_URL hosts.
    groups = {tuple(g["hosts"]): g for g in fleet["groups"]}
    assert ("prod-a", "prod-b") in groups, fleet["groups"]
    assert fleet["counts"]["ok"] == 3 and fleet["counts"]["failed"] == 1, fleet["counts"]
    md = (dest / "fleet.md").read_text()
    assert all(h[0] in md for h in HOSTS) and "debug\\_image" in md  # markdown escapes the underscore

    # The table is the play's last output but one: the summary prints the fleet's summary line and
    # the failed host's step; then the last play fails the failed host, saying what failed.
    header = "TASK [rsky.ingester_capture.capture : Fleet | Summary of every targeted host]"
    summary_at = out.rfind(header)
    assert summary_at > 0, out[-3000:]
    failing = out.find("TASK [Capture | Failed]", summary_at)
    assert failing > 0 and out.count("TASK [", summary_at) == 2, out[summary_at:][:3000]
    assert "fatal: [prod-d]" in out[failing:] and "Capture failed at" in out[failing:], out[failing:][:2000]
    assert "prod-a" not in out[failing : out.find("PLAY RECAP", failing)], "only the failed host fails"
    tail = out[summary_at:failing]
    # The YAML result format folds long strings across lines: compare with whitespace folded.
    assert " ".join(fleet["summary"].split()) in " ".join(tail.split()), tail
    assert "prod-d" in tail and "debug_image" in tail, tail
    # AWX's copy: the custom stats carry fleet.json.
    stats = out[out.find("CUSTOM STATS") :]
    assert "ingester_fleet" in stats and "config-error:REDIS_URL" in stats, stats[:2000]
    # The failed host was put back: its capture failed before the swap.
    assert stacks["prod-d"].inspect()["Config"]["Image"] == "rsky-ingester:latest"


def test_a_single_host_whose_capture_fails_still_gets_its_summary(stack_factory: Any, tmp_path: Path) -> None:
    """One host, the commonest run, and its capture fails (its debug build cannot work). Ansible
    runs no later play once every host of a play has failed: the capture ends the host, says what
    failed, and the last play fails it after the fleet summary. The run still ends non-zero."""
    dest = tmp_path / "captures"
    dest.mkdir()
    stack: Stack = stack_factory("contained-panic")
    (stack.rsky_dir / "rsky-ingester" / "Dockerfile").write_text("THIS IS NOT A DOCKERFILE\n")
    stack.up()
    inventory = fleet_inventory(tmp_path / "inv.yml", {"prod-a": stack}, {"prod-a": "capture"}, dest, tmp_path)

    result = run_capture(inventory)
    out = result.out

    assert result.rc == 2, out[-6000:]
    fleet = json.loads((dest / "fleet.json").read_text())
    (row,) = fleet["hosts"]
    assert (row["host"], row["status"], row["failed_step"]) == ("prod-a", "failed", "debug_image"), row
    summary_at = out.rfind("TASK [rsky.ingester_capture.capture : Fleet | Summary of every targeted host]")
    failing = out.find("TASK [Capture | Failed]", summary_at)
    assert 0 < summary_at < failing, out[-4000:]
    assert "capture failed at debug_image" in " ".join(out[summary_at:failing].split()), out[summary_at:failing]
    # What failed, and the host's state, at the failure and again where the host fails.
    assert out.count("Capture failed at") >= 2 and "compose file and container unchanged" in out[failing:]
    recap = out[out.find("PLAY RECAP") :]
    assert "prod-a" in recap and "failed=1" in recap.split("prod-a", 1)[1].splitlines()[0], recap
    # Nothing changed on the host: the build failed before the swap, the lock is free.
    assert stack.inspect()["Config"]["Image"] == "rsky-ingester:latest"
    assert not list((tmp_path / "state-prod-a").glob("*/lock")), "the lock was left behind"
