"""schedule.yml on this controller: no systemd runs here, so the cron.d path is the one tested."""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from collector.exitcodes import Exit
from standin.stack import Stack
from tests.support.inventories import write_inventory
from tests.support.playbooks import REPO, PlayResult, run_playbook

pytestmark = pytest.mark.integration


def recap(result: PlayResult) -> dict[str, int]:
    m = re.search(r"^localhost\s+: (ok=.*)$", result.out, re.MULTILINE)
    assert m, result.out[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}


@pytest.fixture
def cron_dir() -> Path:
    if Path("/run/systemd/system").is_dir():
        pytest.skip("systemd runs here: schedule.yml would install a timer, not a cron entry")
    path = Path("/etc/cron.d")
    path.mkdir(exist_ok=True)
    return path


def schedule(inventory: Path, **extra: Any) -> PlayResult:
    return run_playbook("playbooks/schedule.yml", inventory, extra_vars=extra)


def test_install_twice_run_it_remove_twice(stack_factory: Any, tmp_path: Path, cron_dir: Path) -> None:
    stack: Stack = stack_factory("healthy", labeler_hosts="")
    stack.up()
    stack.wait_running()
    inventory = write_inventory(tmp_path / "inv.yml", stack, dest=tmp_path / "captures", state=tmp_path / "state")
    name = f"ict-verify-{uuid.uuid4().hex[:8]}"
    settings = {
        "schedule_name": name,
        "schedule_interval_minutes": 15,
        "schedule_minute_offset": 4,
        "schedule_artifacts_dir": str(tmp_path / "runs"),
        "schedule_log_file": str(tmp_path / "verify.log"),
        "schedule_keep_runs": 3,
        "schedule_extra_vars": {
            "verify_window_seconds": 3,
            "verify_sample_interval_seconds": 1,
            "verify_min_uptime_hours": 0,
        },
    }
    entry = cron_dir / name
    try:
        first = schedule(inventory, **settings)
        assert first.rc == 0, first.out[-4000:]
        assert recap(first)["changed"] == 1
        text = entry.read_text()
        assert entry.stat().st_mode & 0o777 == 0o644

        second = schedule(inventory, **settings)
        assert second.rc == 0, second.out[-4000:]
        assert recap(second)["changed"] == 0
        assert entry.read_text() == text

        jobs = [ln for ln in text.splitlines() if ln and not ln.startswith("#") and "=" not in ln[:8]]
        assert len(jobs) == 1, text
        fields = jobs[0].split(None, 6)
        assert fields[:6] == ["4-59/15", "*", "*", "*", "*", "root"]
        assert f"-i {inventory}" in fields[6] and "-m ingester_capture.runner" in fields[6]

        # What cron would run, run by sh as cron does: one line lands in the log.
        command = fields[6].replace("\\%", "%")
        run = subprocess.run(
            ["/bin/sh", "-c", command],
            capture_output=True,
            text=True,
            timeout=300,
            env={"PATH": "/usr/bin:/bin", "HOME": "/root"},
        )
        log = (tmp_path / "verify.log").read_text()
        # No labeler hosts: the scheduled run fails on activity, exactly one line, exit 20.
        assert run.returncode == Exit.VERIFY_FAILED, log
        assert log.count("\n") == 1 and log.startswith("verify FAIL: testhost FAIL (activity)"), log
        assert len(list((tmp_path / "runs").iterdir())) == 1

        gone = schedule(inventory, schedule_name=name, schedule_state="absent")
        assert gone.rc == 0, gone.out[-4000:]
        assert recap(gone)["changed"] == 1
        assert not entry.exists()

        again = schedule(inventory, schedule_name=name, schedule_state="absent")
        assert again.rc == 0, again.out[-4000:]
        assert recap(again)["changed"] == 0
    finally:
        entry.unlink(missing_ok=True)


def test_interval_change_rewrites_the_entry(tmp_path: Path, cron_dir: Path) -> None:
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  hosts: {}\n")
    name = f"ict-verify-{uuid.uuid4().hex[:8]}"
    entry = cron_dir / name
    try:
        hourly = schedule(inventory, schedule_name=name)
        assert hourly.rc == 0, hourly.out[-4000:]
        assert re.search(r"^7 \* \* \* \* root cd ", entry.read_text(), re.MULTILINE)

        six_hourly = schedule(inventory, schedule_name=name, schedule_interval_minutes=360)
        assert recap(six_hourly)["changed"] == 1
        assert re.search(r"^7 \*/6 \* \* \* root cd ", entry.read_text(), re.MULTILINE)
        assert f"cd {REPO} && " in entry.read_text()
    finally:
        schedule(inventory, schedule_name=name, schedule_state="absent")
        entry.unlink(missing_ok=True)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"schedule_interval_minutes": 7}, "must divide 60"),
        ({"schedule_name": "bad.name"}, "letters, digits"),
        ({"schedule_backend": "launchd"}, "launchd"),
    ],
)
def test_bad_input_is_refused(tmp_path: Path, extra: dict[str, Any], message: str) -> None:
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  hosts: {}\n")

    result = schedule(inventory, schedule_cron_dir=str(tmp_path / "cron.d"), **extra)

    assert result.rc != 0
    assert message in result.out
    assert not (tmp_path / "cron.d").exists()
