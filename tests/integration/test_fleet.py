"""One capture.yml run against several stand-in hosts at once: the closing fleet summary."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import ANSIBLE_PLAYBOOK, REPO, ansible_env
from tests.standin.stack import Stack

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
    hosts: dict[str, Any] = {}
    for host, stack in stacks.items():
        hosts[host] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": "/usr/bin/python3",
            "ingester_project_dir": str(stack.project_dir),
            "ingester_compose_file": stack.compose_file,
            "ingester_service": stack.service,
            "ingester_container": stack.container,
            "ingester_debug_image": stack.debug_image,
            "capture_state_dir": str(root / f"state-{host}"),
            "capture_mode": modes[host],
        }
    group_vars = {
        "capture_dest": str(dest),
        "capture_window_seconds": 40,
        "capture_stop_after_restarts": 3,
        "capture_stats_interval_seconds": 1,
        "capture_stop_timeout_seconds": 2,
        "capture_poll_seconds": 3,
        "capture_heartbeat_timeout_seconds": 20,
        "capture_min_free_bytes": 1_000_000,
    }
    inventory = {"all": {"children": {"ingester_hosts": {"hosts": hosts, "vars": group_vars}}}}
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


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

    proc = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(inventory), "capture.yml", "--forks", "4"],
        cwd=REPO,
        env=ansible_env({"ANSIBLE_SHOW_CUSTOM_STATS": "true"}),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    out = proc.stdout + proc.stderr

    # prod-d failed, so the run fails; the closing play ran all the same.
    assert proc.returncode == 2, out[-6000:]
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
    assert all(h[0] in md for h in HOSTS) and "debug_image" in md

    # The table is the play's last output: the last task is the summary, and it prints the
    # fleet's summary line and the failed host's step.
    last_task = out.rfind("TASK [")
    header = "TASK [rsky.ingester_capture.capture : Fleet | Summary of every targeted host]"
    assert out[last_task:].startswith(header), out[last_task : last_task + 300]
    tail = out[last_task : out.find("PLAY RECAP", last_task)]
    # The YAML result format folds long strings across lines: compare with whitespace folded.
    assert " ".join(fleet["summary"].split()) in " ".join(tail.split()), tail
    assert "prod-d" in tail and "debug_image" in tail, tail
    # AWX's copy: the custom stats carry fleet.json.
    stats = out[out.find("CUSTOM STATS") :]
    assert "ingester_fleet" in stats and "config-error:REDIS_URL" in stats, stats[:2000]
    # The failed host was put back: its capture failed before the swap.
    assert stacks["prod-d"].inspect()["Config"]["Image"] == "rsky-ingester:latest"
