"""The plays tell the truth: no host matched or an unreachable host fails non-zero and says what to do.

Real ``ansible-playbook`` runs with the repository's ansible.cfg; the unreachable host is a
closed port on 127.0.0.1, so nothing leaves the machine.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from standin.stack import MONITOR_TOKEN, REDIS_PASSWORD, Stack
from tests.support.inventories import write_inventory
from tests.support.playbooks import ANSIBLE_PLAYBOOK, REPO, ansible_env, run_playbook

pytestmark = pytest.mark.integration

PLAYBOOKS = ["capture.yml", "playbooks/rollback.yml", "playbooks/verify.yml"]


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again once the socket is gone


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_ad_hoc_inventory_fails_naming_capture_hosts(playbook: str) -> None:
    # -i prod-host, : the host is not in the group ingester_hosts.
    result = run_playbook(playbook, Path("prod-host,"))
    assert result.rc != 0, result.out[-3000:]
    assert "capture_hosts=" in result.out and "ingester_hosts" in result.out
    assert "hosts in the inventory: prod-host" in result.out
    assert "copy inventory/production.yml" in result.out
    assert f"ansible-playbook -i inventory/prod.yml {playbook}" in result.out


def test_bare_run_uses_no_example_host_and_says_what_to_do() -> None:
    # ansible.cfg's default inventory: no host, no DNS name to fail on.
    proc = subprocess.run(
        [ANSIBLE_PLAYBOOK, "capture.yml"],
        cwd=REPO,
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "example.internal" not in out
    assert "copy inventory/production.yml" in out and "hosts in the inventory: none" in out


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_unreachable_example_inventory_fails_saying_what_to_check(playbook: str) -> None:
    result = run_playbook(
        playbook,
        REPO / "inventory" / "production.yml",
        extra_vars={"ansible_host": "127.0.0.1", "ansible_port": _closed_port()},
        timeout=180,
    )
    assert result.rc != 0, result.out[-3000:]
    assert "Cannot reach bsky-prod (ansible_host=127.0.0.1" in result.out
    assert "What to do: copy inventory/production.yml" in result.out
    assert "Nothing was changed." in result.out


@pytest.mark.parametrize("mode", ["auto", "capture", "observe"])
def test_check_diff_shows_the_redacted_compose_diff_in_every_mode(
    mode: str, stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]
) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory("hypothetical-task-error", exit_after_ms=1500)
    stack.up()
    before = stack.compose_path.read_bytes()
    inventory = write_inventory(tmp_path / "inv.yml", stack, dest=dest, state=state, capture_mode=mode)

    result = run_playbook("capture.yml", inventory, "--check", "--diff", "-v")

    assert result.rc == 0, result.out[-4000:]
    assert stack.compose_path.read_bytes() == before
    assert not list(dest.rglob("*")), "check mode fetched a bundle"
    for secret in (REDIS_PASSWORD, MONITOR_TOKEN):
        assert secret not in result.out, "a secret reached the play output"
    flat = " ".join(result.out.split())  # the YAML callback folds long messages
    assert "Check mode: nothing was changed" in flat
    swap_line = f"+    image: {stack.debug_image}"
    if mode == "observe":
        assert swap_line not in result.out
        assert "nothing would change on the host" in flat
    else:
        assert swap_line in result.out, result.out[-4000:]
        assert "-    image: rsky-ingester:latest" in result.out
        assert "the compose diff is above" in flat
        if mode == "auto":
            assert "only if that is inconclusive" in flat


def test_runner_events_carry_each_hosts_verdict_bundle_and_report(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]
) -> None:
    import ansible_runner

    dest, state = capture_paths
    stack: Stack = stack_factory("hypothetical-task-error", exit_after_ms=1500)
    stack.up()
    inventory = write_inventory(tmp_path / "inv.yml", stack, dest=dest, state=state, host="runnerhost")
    private = tmp_path / "runner"
    private.mkdir()
    result = ansible_runner.run(
        private_data_dir=str(private),
        playbook=str(REPO / "capture.yml"),
        inventory=str(inventory),
        envvars={k: v for k, v in ansible_env().items() if k.startswith("ANSIBLE_") or k == "PATH"},
        project_dir=str(REPO),
        quiet=True,
        suppress_env_files=True,
    )
    assert result.rc == 0, result.stdout.read()[-3000:]
    stats = [e for e in result.events if e.get("event") == "playbook_on_stats"]
    assert len(stats) == 1
    data = stats[0]["event_data"]["artifact_data"]["capture_results"]
    assert set(data) == {"runnerhost"}
    entry = data["runnerhost"]
    # The answer key: this stand-in scenario is the labeler task returning an error.
    assert entry["verdict"] == "task-error"
    assert Path(entry["bundle"]).is_dir() and Path(entry["bundle"]).parent.parent == dest
    assert Path(entry["report"]).is_file() and Path(entry["tarball"]).is_file()
    assert entry["rollback_needed"] is True
    # Nothing leaked into the runner's artifacts.
    for path in private.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert REDIS_PASSWORD not in text and MONITOR_TOKEN not in text, path


def _cron_job(entry: Path) -> str:
    jobs = [ln for ln in entry.read_text().splitlines() if ln and not ln.startswith("#") and "=" not in ln[:8]]
    assert len(jobs) == 1, entry.read_text()
    return jobs[0].split(None, 6)[6].replace("\\%", "%")  # what cron hands to /bin/sh


def test_scheduled_failure_reaches_mailto_and_the_log_and_the_runner_has_a_timeout(
    stack_factory: Any, tmp_path: Path
) -> None:
    if Path("/run/systemd/system").is_dir():
        pytest.skip("systemd runs here: schedule.yml would install a timer, not a cron entry")
    Path("/etc/cron.d").mkdir(exist_ok=True)
    stack: Stack = stack_factory("healthy", labeler_hosts="")
    stack.up()
    stack.wait_running()
    inventory = write_inventory(tmp_path / "inv.yml", stack, dest=tmp_path / "captures", state=tmp_path / "state")
    name = f"ict-verify-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "verify.log"
    settings: dict[str, Any] = {
        "schedule_name": name,
        "schedule_artifacts_dir": str(tmp_path / "runs"),
        "schedule_log_file": str(log),
        "schedule_mailto": "oncall@example.invalid",
        "schedule_extra_vars": {
            "verify_window_seconds": 3,
            "verify_sample_interval_seconds": 1,
            "verify_min_uptime_hours": 0,
        },
    }
    entry = Path("/etc/cron.d") / name
    env = {"PATH": "/usr/bin:/bin", "HOME": "/root"}
    try:
        installed = run_playbook("playbooks/schedule.yml", inventory, extra_vars=settings)
        assert installed.rc == 0, installed.out[-3000:]
        assert 'MAILTO="oncall@example.invalid"' in entry.read_text()
        # No labeler hosts: the run fails on activity. Its line is in the log and on stdout,
        # which is what cron mails to MAILTO.
        run = subprocess.run(["/bin/sh", "-c", _cron_job(entry)], capture_output=True, text=True, timeout=300, env=env)
        assert run.returncode != 0, log.read_text()
        assert log.read_text().startswith("verify FAIL: testhost FAIL (activity)")
        assert run.stdout.strip() == log.read_text().strip()

        # A run longer than schedule_timeout_seconds is stopped and says so, in the log and the mail.
        slow = run_playbook("playbooks/schedule.yml", inventory, extra_vars={**settings, "schedule_timeout_seconds": 1})
        assert slow.rc == 0, slow.out[-3000:]
        assert "timeout --kill-after=60 1 " in entry.read_text()
        run = subprocess.run(["/bin/sh", "-c", _cron_job(entry)], capture_output=True, text=True, timeout=300, env=env)
        assert run.returncode == 124
        assert log.read_text().splitlines()[-1] == "verify-run: timed out after 1 s"
        assert run.stdout.strip() == "verify-run: timed out after 1 s"
    finally:
        entry.unlink(missing_ok=True)


def test_the_checkout_prints_results_as_yaml(tmp_path: Path) -> None:
    # ansible.cfg's callback_result_format (the key, not result_format): a user sees YAML.
    play = tmp_path / "play.yml"
    play.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n        msg: [one, two]\n"
    )
    env = ansible_env()
    env.pop("ANSIBLE_CALLBACK_RESULT_FORMAT")
    proc = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", str(play)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "    msg:\n    - one\n    - two" in proc.stdout, proc.stdout
    assert '"msg"' not in proc.stdout
