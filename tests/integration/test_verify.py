"""verify.yml and the ansible-runner entry point against real stand-in containers."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from collector.exitcodes import Exit
from collector.runner import verify_run_main
from standin.stack import Stack
from tests.support.inventories import write_inventory
from tests.support.playbooks import PlayResult, run_playbook
from tests.support.sshd import Sshd

pytestmark = pytest.mark.integration

# Short windows keep each run to seconds; the thresholds stay the production defaults.
QUICK = {"verify_window_seconds": 6, "verify_sample_interval_seconds": 1}


def state_folder(stack: Stack, state: Path) -> Path:
    key = f"{stack.project_dir}/{stack.compose_file}:{stack.service}"
    return state / hashlib.sha256(key.encode()).hexdigest()[:12]


def latest(dest: Path, host: str = "testhost") -> dict[str, Any]:
    report = dest / host / "verify" / "latest" / "verify.json"
    return dict(json.loads(report.read_text()))


def setup(stack_factory: Any, tmp_path: Path, scenario: str, **kw: Any) -> tuple[Stack, Path, Path, Path]:
    stack: Stack = stack_factory(scenario, **kw)
    stack.up()
    dest, state = tmp_path / "captures", tmp_path / "state"
    inventory = write_inventory(tmp_path / "inv.yml", stack, dest=dest, state=state)
    return stack, dest, state, inventory


def verify(inventory: Path, *args: str, **extra: Any) -> PlayResult:
    return run_playbook("playbooks/verify.yml", inventory, *args, extra_vars={**QUICK, **extra})


def age_baseline(stack: Stack, state: Path, hours: float) -> None:
    path = state_folder(stack, state) / "baseline.json"
    baseline = json.loads(path.read_text())
    old = datetime.now(UTC) - timedelta(hours=hours)
    baseline["recorded_at"] = old.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    path.write_text(json.dumps(baseline))


def test_healthy_passes_on_an_old_baseline_without_waiting(stack_factory: Any, tmp_path: Path) -> None:
    stack, dest, state, inventory = setup(stack_factory, tmp_path, "healthy")
    stack.wait_running()

    record = verify(inventory, verify_record_baseline=True)

    assert record.rc == 0, record.out[-4000:]
    baseline_file = state_folder(stack, state) / "baseline.json"
    baseline = json.loads(baseline_file.read_text())
    assert baseline["container_id"] == stack.container_id()
    assert baseline["restart_count"] == 0
    assert set(baseline) == {"recorded_at", "container_id", "started_at", "restart_count", "image", "kernel_oom_lines"}
    assert baseline_file.stat().st_mode & 0o777 == 0o600

    # Straight after the deployment the 24 h criterion cannot pass yet, and only it fails.
    fresh = verify(inventory)
    assert fresh.rc != 0
    assert latest(dest)["failed"] == ["uptime"], fresh.out[-3000:]
    assert "verify failed on testhost: uptime" in fresh.out
    # One host, and it failed: the fleet summary still ran, then the last play failed the host.
    summary_at = fresh.out.rfind("Fleet | Summary of every targeted host")
    failing = fresh.out.find("TASK [Verify | Failed]", max(summary_at, 0))
    assert 0 < summary_at < failing, fresh.out[-3000:]
    assert "verify failed on testhost: uptime" in fresh.out[failing:]

    # The baseline says the same container ran 25 h ago with the same StartedAt: no waiting.
    age_baseline(stack, state, 25)
    result = verify(inventory)

    assert result.rc == 0, result.out[-4000:]
    # Static roles and steps: no "included:" line between the tasks.
    assert "included:" not in result.out, [line for line in result.out.splitlines() if "included:" in line]
    report = latest(dest)
    assert report["passed"] and report["failed"] == []
    uptime = next(c for c in report["criteria"] if c["name"] == "uptime")
    assert uptime["status"] == "pass" and "25." in uptime["measured"]
    assert {c["name"] for c in report["criteria"]} == {"exit_traces", "uptime", "activity", "memory", "kernel_oom"}
    for c in report["criteria"]:
        assert c["measured"] and c["threshold"], c
    md = (dest / "testhost" / "verify" / "latest" / "verify.md").read_text()
    assert "**PASS**" in md and "Memory stable" in md
    # One history line per verification run, on the host and mirrored to the controller.
    host_history = (state_folder(stack, state) / "verify-history.jsonl").read_text().splitlines()
    assert [json.loads(line)["verdict"] for line in host_history] == ["fail", "pass"]
    mirror = (dest / "testhost" / "verify" / "verify-history.jsonl").read_text().splitlines()
    assert mirror == host_history
    table = (dest / "testhost" / "verify" / "history.md").read_text()
    assert table.count("| testhost |") == 2


def test_check_mode_writes_nothing(stack_factory: Any, tmp_path: Path) -> None:
    stack, dest, state, inventory = setup(stack_factory, tmp_path, "healthy")
    stack.wait_running()

    result = verify(inventory, "--check", verify_min_uptime_hours=0)

    assert result.rc == 0, result.out[-4000:]
    assert "PASS" in result.out
    assert not (state_folder(stack, state) / "verify-history.jsonl").exists()
    assert not (dest / "testhost").exists()


# scenario, stack keyword arguments, the criterion that must be named
CRASHES = [
    ("hypothetical-task-error", {"exit_after_ms": 1000}, "exit_traces"),
    ("hypothetical-task-error", {"exit_after_ms": 1000, "env": {"STANDIN_BUILD": "debug"}}, "exit_traces"),
    ("hypothetical-task-panic", {"exit_after_ms": 1000}, "exit_traces"),
    ("hypothetical-host-panic", {"exit_after_ms": 1000}, "exit_traces"),
    ("hypothetical-main-panic", {"exit_after_ms": 1000}, "exit_traces"),
    ("hypothetical-task-ok", {"exit_after_ms": 1000}, "exit_traces"),
    ("hypothetical-impossible", {"exit_after_ms": 1000, "env": {"STANDIN_BUILD": "debug"}}, "exit_traces"),
    ("hypothetical-silent-exit", {"exit_after_ms": 1000}, "uptime"),
    ("oom", {}, "kernel_oom"),
]


@pytest.mark.parametrize(
    ("scenario", "kwargs", "criterion"),
    CRASHES,
    ids=[f"{c[0]}{'-debug' if 'env' in c[1] else ''}" for c in CRASHES],
)
def test_crash_modes_fail_naming_the_criterion(
    stack_factory: Any, tmp_path: Path, scenario: str, kwargs: dict[str, Any], criterion: str
) -> None:
    stack, dest, _, inventory = setup(stack_factory, tmp_path, scenario, **kwargs)
    stack.wait_restarts(1, timeout=60)

    # Uptime threshold 0: a crash loop must still fail on its restarts and on its own evidence.
    result = verify(inventory, verify_min_uptime_hours=0)

    assert result.rc != 0, result.out[-4000:]
    report = latest(dest)
    assert criterion in report["failed"], report
    assert "uptime" in report["failed"], "a crash loop restarts"
    assert f"verify failed on testhost: {', '.join(report['failed'])}" in result.out
    named = next(c for c in report["criteria"] if c["name"] == criterion)
    assert named["status"] == "fail" and named["evidence"], named


def test_slow_leak_fails_on_memory_before_any_kill(stack_factory: Any, tmp_path: Path) -> None:
    stack, dest, _, inventory = setup(
        stack_factory, tmp_path, "leak", mem_limit="256m", env={"STANDIN_LEAK_KB_PER_S": "2048"}
    )
    stack.wait_running()

    result = verify(inventory, verify_min_uptime_hours=0)

    assert result.rc != 0
    report = latest(dest)
    assert report["failed"] == ["memory"], report
    assert stack.restart_count() == 0, "the leak must not have been killed yet"
    memory = next(c for c in report["criteria"] if c["name"] == "memory")
    assert "MiB/h" in memory["measured"] and "limit in" in memory["measured"]
    assert report["memory"]["slope_bytes_per_second"] > 1024 * 1024
    assert report["memory"]["hours_to_limit"] < 1


def test_idle_families_fail_activity(stack_factory: Any, tmp_path: Path) -> None:
    # A labeler that never runs: the service is up, but not all three families process.
    stack, dest, _, inventory = setup(stack_factory, tmp_path, "healthy", labeler_hosts="")
    stack.wait_running()

    result = verify(inventory, verify_min_uptime_hours=0)

    assert result.rc != 0
    report = latest(dest)
    assert report["failed"] == ["activity"], report
    assert "labeler" in next(c for c in report["criteria"] if c["name"] == "activity")["measured"]

    only_two = verify(inventory, verify_min_uptime_hours=0, verify_activity_families=["firehose", "backfill"])
    assert only_two.rc == 0, only_two.out[-3000:]


def test_runner_gives_the_playbooks_verdict_and_rotates(
    stack_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No labeler hosts: a deterministic failure (activity only) for both ways of running.
    stack, dest, _, inventory = setup(stack_factory, tmp_path, "healthy", labeler_hosts="")
    stack.wait_running()
    artifacts = tmp_path / "runs"
    settings = {**QUICK, "verify_min_uptime_hours": 0}

    play = verify(inventory, **settings)
    play_failed = latest(dest)["failed"]
    rc = verify_run_main(
        ["-i", str(inventory), "--artifacts", str(artifacts), "--keep", "2", "-e", json.dumps(settings)]
    )
    line = capsys.readouterr().out.strip()

    assert play.rc != 0
    assert play_failed == ["activity"]
    assert rc == Exit.VERIFY_FAILED
    assert "\n" not in line
    assert line.startswith("verify FAIL: testhost FAIL (activity) — artifacts ")
    assert latest(dest)["failed"] == play_failed, "the runner's run wrote the same verdict"

    for _ in range(2):
        time.sleep(0.01)
        verify_run_main(
            [
                "-i",
                str(inventory),
                "--artifacts",
                str(artifacts),
                "--keep",
                "2",
                "-e",
                "verify_window_seconds=2",
                "-e",
                "verify_sample_interval_seconds=1",
            ]
        )
    capsys.readouterr()
    runs = sorted(p.name for p in artifacts.iterdir())
    assert len(runs) == 2, runs
    # Each kept run is a whole ansible-runner private data dir with its events.
    for run in runs:
        assert list((artifacts / run).glob("artifacts/*/job_events/*.json"))


def test_runner_passes_on_a_healthy_service(
    stack_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack, _, _, inventory = setup(stack_factory, tmp_path, "healthy")
    stack.wait_running()

    rc = verify_run_main(
        [
            "-i",
            str(inventory),
            "--artifacts",
            str(tmp_path / "runs"),
            "-e",
            json.dumps({**QUICK, "verify_min_uptime_hours": 0}),
        ]
    )

    out = capsys.readouterr().out.strip()
    assert rc == 0, out
    assert out.startswith("verify PASS: testhost PASS")


def test_runner_without_a_verdict_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = tmp_path / "inv.yml"
    inventory.write_text(
        "all:\n  children:\n    ingester_hosts:\n      hosts:\n        testhost:\n"
        "          ansible_connection: local\n"
        "          ansible_python_interpreter: /usr/bin/python3\n"
        "      vars:\n        ingester_container: no-such-container-ict\n"
        f"        capture_state_dir: {tmp_path / 'state'}\n"
        f"        capture_dest: {tmp_path / 'captures'}\n"
        "        verify_window_seconds: 1\n"
    )
    # A missing container is judged (and fails); an unreachable host gives no verdict; a missing
    # inventory is unreadable input, said in one line.
    rc = verify_run_main(["-i", str(tmp_path / "missing.yml"), "--artifacts", str(tmp_path / "runs")])
    captured = capsys.readouterr()

    assert rc == Exit.UNREADABLE, captured.out
    assert captured.err.strip() == f"verify-run: inventory not found: {tmp_path / 'missing.yml'}"

    unreachable = tmp_path / "unreachable.yml"
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    unreachable.write_text(
        "all:\n  children:\n    ingester_hosts:\n      hosts:\n        testhost:\n"
        f"          ansible_host: 127.0.0.1\n          ansible_port: {port}\n"
        "          ansible_ssh_common_args: -o ConnectTimeout=3 -o StrictHostKeyChecking=no\n"
    )

    rc = verify_run_main(["-i", str(unreachable), "--artifacts", str(tmp_path / "runs")])
    out = capsys.readouterr().out.strip()

    assert rc == Exit.NO_VERDICT, out
    assert out.startswith("verify ERROR:")

    rc = verify_run_main(["-i", str(inventory), "--artifacts", str(tmp_path / "runs")])
    out = capsys.readouterr().out.strip()
    assert rc == Exit.VERIFY_FAILED, out
    assert "testhost FAIL (" in out and "uptime" in out


@pytest.mark.ssh
def test_verify_over_ssh(stack_factory: Any, tmp_path: Path, sshd: Sshd) -> None:
    # The production shape: the probe runs on the host over SSH, the judgement on the controller.
    stack: Stack = stack_factory("healthy")
    stack.up()
    stack.wait_running()
    dest, state = tmp_path / "captures", tmp_path / "state"
    inventory = write_inventory(tmp_path / "inv.yml", stack, dest=dest, state=state, sshd=sshd)

    result = verify(inventory, verify_min_uptime_hours=0)

    assert result.rc == 0, result.out[-4000:]
    assert latest(dest)["passed"]
    assert (state_folder(stack, state) / "verify-history.jsonl").exists()
