"""Production hosts as they are: the Docker daemon stops and starts again during the window.

A private ``dockerd`` (its own data root, exec root, pid file and socket; no bridge, no
iptables, no network) runs the stack, so stopping it disturbs nothing else on the machine. The
capture reaches it through the inventory's ``ingester_docker_host`` alone (the play's own
environment has no DOCKER_HOST). Mid-window the test stops that daemon (SIGTERM, as an upgrade
or ``systemctl restart docker`` does), waits, and starts it again with the same flags. Restart
policy ``unless-stopped`` without live-restore: the daemon stops the container on its way down
(SIGTERM, which the ingester ignores like the real PID 1, then SIGKILL after the grace period:
exit 137) and starts it again when it comes back. The daemon comes back with live-restore on
(as an operator turning it on would restart it), and is stopped and started once more: this
time the container keeps running, and what it prints meanwhile waits in its pipe until the
daemon is back. Neither is a crash of the ingester; the bundle must say what happened each
time, keep every line Docker kept, and count nothing twice.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from standin.stack import Stack
from tests.support.inventories import write_inventory
from tests.support.numbered import SEQ, missing, seq_runs
from tests.support.playbooks import ANSIBLE_PLAYBOOK, REPO, ansible_env
from tests.support.private_daemon import PrivateDaemon, private_daemon_for
from tests.support.processes import agent_processes

pytestmark = pytest.mark.integration

# A docker logs --timestamps line of the stand-in: Docker's time, then the service's own (ANSI around it).
STAMPED = re.compile(r"^(\S+) (?:\x1b\[2m)?(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z)")
PER_RUN = 300
GRACE = "    stop_grace_period: 2s\n"


@pytest.fixture
def private_daemon(standin_images: Any) -> Iterator[PrivateDaemon]:
    yield from private_daemon_for(journald=False)


def parse_epoch(text: str) -> float | None:
    """An RFC 3339 UTC time as Docker and the stand-in print it (up to nanoseconds)."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z", text)
    if not match:
        return None
    whole = datetime.fromisoformat(match.group(1) + "+00:00").timestamp()
    return whole + float("0." + (match.group(2) or "0"))


def window_settled(state: Path) -> bool:
    """The running window has seen the daemon come back and looked at the container."""
    for progress in state.glob("*/work/*/.window.json"):
        try:
            gaps = json.loads(progress.read_text()).get("daemon_unavailable") or []
        except ValueError:
            continue
        if gaps and gaps[-1].get("end_epoch") and gaps[-1].get("container"):
            return True
    return False


def wait_for(what: str, check: Any, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_daemon_restarts_mid_window_are_stated_and_lose_nothing(
    private_daemon: PrivateDaemon, tmp_path: Path, capture_paths: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    dest, state = capture_paths
    daemon = private_daemon
    # The stack's own docker and compose calls go to the private daemon; the play's do not
    # inherit this (its environment is built without DOCKER_HOST below).
    monkeypatch.setenv("DOCKER_HOST", daemon.host)
    stack = Stack(
        tmp_path / "stack",
        "healthy",
        name_prefix=f"icd-{uuid.uuid4().hex[:8]}",
        env={"STANDIN_NUMBERED": str(PER_RUN)},
    )
    text = stack.compose_path.read_text()
    anchor = f"    mem_limit: {stack.mem_limit}\n"
    assert text.count(anchor) == 1
    stack.compose_path.write_text(text.replace(anchor, anchor + GRACE))
    play: subprocess.Popen[str] | None = None
    try:
        stack.up()
        inventory = write_inventory(
            tmp_path / "inv.yml",
            stack,
            dest=dest,
            state=state,
            ingester_docker_host=daemon.host,
            capture_window_seconds=30,
            capture_stop_after_restarts=3,
        )
        env = ansible_env()
        env.pop("DOCKER_HOST", None)
        play = subprocess.Popen(
            [ANSIBLE_PLAYBOOK, "-i", str(inventory), "capture.yml"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # The window captures on the debug image; its first run has printed all its numbered lines.
        wait_for(
            "the capture window",
            lambda: any(
                json.loads(p.read_text() or "{}").get("phase") == "capturing"
                for p in state.glob("*/work/*/.window.json")
            ),
            timeout=240,
        )
        time.sleep(2)  # the window's tee attaches
        wait_for(
            "the first run's numbered lines",
            lambda: "done total=" in daemon.docker("logs", stack.container, check=False).stdout,
        )
        asked_to_stop = time.time()
        gone = daemon.stop()
        time.sleep(3)
        back = daemon.start(live_restore=True)
        # The run the daemon started prints its numbered lines, and the window has picked up again
        # (a daemon does not go away again within a second); then the daemon goes again.
        wait_for(
            "the second run's numbered lines",
            lambda: daemon.docker("logs", stack.container, check=False).stdout.count("done total=") >= 2,
        )
        wait_for("the window to see the daemon back", lambda: window_settled(state))
        time.sleep(1)
        asked_to_stop_2 = time.time()
        gone_2 = daemon.stop()
        time.sleep(3)
        back_2 = daemon.start(live_restore=True)
        out, _ = play.communicate(timeout=420)
        rc = play.returncode
    finally:
        if play is not None and play.poll() is None:
            play.kill()
            play.communicate()
        running_after = daemon.docker("inspect", stack.container, check=False)
        docker_logs = daemon.docker("logs", stack.container, check=False)
        docker_stamped = daemon.docker("logs", "--timestamps", stack.container, check=False)
        stack.down()

    assert rc == 0, out[-5000:]
    # The service runs afterwards (on the debug image the capture swapped in).
    assert json.loads(running_after.stdout)[0]["State"]["Running"] is True

    bundles = sorted(p for p in dest.glob("*/*") if p.is_dir())
    assert len(bundles) == 1, bundles
    bundle = bundles[0]
    window = json.loads((bundle / "window.json").read_text())
    manifest = json.loads((bundle / "manifest.json").read_text())
    host = json.loads((bundle / "host.json").read_text())
    report = json.loads((bundle / "report.json").read_text())

    # The gaps: from when the daemon's API went away to when it answered again.
    gaps = window["daemon_unavailable"]
    assert len(gaps) == 2, gaps
    gap, gap_2 = gaps
    assert asked_to_stop - 1 <= gap["start_epoch"] <= gone + 1, (asked_to_stop, gone, gap)
    assert back - 1 <= gap["end_epoch"] <= back + 15, (back, gap)
    assert gap["seconds"] >= 3
    # Stopped with the daemon: SIGTERM ignored, SIGKILL after the grace period; started again.
    assert gap["container"] == "restarted", gap
    assert gap["exit_code_at_stop"] == 137, gap
    assert "Docker daemon was unavailable" in gap["statement"] and "not a crash" in gap["statement"]
    # Under live-restore it ran on: no die, no start, the same run.
    assert asked_to_stop_2 - 1 <= gap_2["start_epoch"] <= gone_2 + 1, (asked_to_stop_2, gone_2, gap_2)
    assert back_2 - 1 <= gap_2["end_epoch"] <= back_2 + 15, (back_2, gap_2)
    assert gap_2["container"] == "kept_running", gap_2
    assert gap_2["exit_code_at_stop"] is None
    assert "kept running" in gap_2["statement"]
    assert host["daemon_unavailable"] == gaps
    # Not a restart of the ingester, not an exit of its own.
    assert window["restarts"] == 0, window
    assert window["exit_codes"] == [], window
    assert window["daemon_starts"] == 1
    assert [d["cause"] for d in window["dies"] if d.get("cause")] == ["daemon_stop"]
    # The event stream was opened again after the gap: the daemon's start is in events.jsonl.
    events = [json.loads(line) for line in (bundle / "events.jsonl").read_text().splitlines() if line.strip()]
    starts = [e for e in events if e.get("Action") == "start"]
    assert any(e["timeNano"] / 1e9 >= gap["start_epoch"] for e in starts), starts
    assert len({(e.get("timeNano"), e.get("Action")) for e in events}) == len(events), "an event is kept twice"

    # Lines: every line of both runs, once; the gap cost none (the container was stopped with it).
    merged = (bundle / "logs" / "ingester.log").read_text(errors="replace").splitlines()
    runs = seq_runs(merged)
    assert len(runs) >= 2, sorted(runs)
    for run_id, entry in runs.items():
        assert entry["total"] == PER_RUN, (run_id, entry["total"])
        assert entry["seen"] == set(range(1, PER_RUN + 1)), (run_id, PER_RUN - len(entry["seen"]))
    assert len(merged) == len(set(merged)), "a line is in the merged log twice"
    kept = docker_logs.stdout.splitlines() + docker_logs.stderr.splitlines()
    kept_seq = sorted(m.group(0) for line in kept if (m := SEQ.search(line)))
    merged_seq = sorted(m.group(0) for line in merged if (m := SEQ.search(line)))
    assert set(kept_seq) <= set(merged_seq), "a line Docker still has is not in the bundle"
    logs = manifest["logs"]
    assert logs == window["logs"]
    assert logs["merged_lines"] == len(merged)
    assert [missing(r) for r in runs.values()] == [0] * len(runs)
    account = logs["daemon_unavailable"]
    # The host can count the first gap's cost (the container was stopped with the daemon: none); the
    # live-restored one it cannot (production prints no numbered lines), and says so. The numbered
    # lines above are the test's own count: nothing was lost there either.
    assert [a["lines_lost"] for a in account] == [0, None], account
    assert "cannot be counted" in account[1]["lines_how"], account[1]

    # What the service printed while the live-restored daemon was away (its own clock inside the
    # gap) waited in the pipe, Docker logged it on its return (its clock after the gap), and the
    # bundle has every such line.
    def waited(lines: list[str]) -> set[str]:
        found = set()
        for line in lines:
            match = STAMPED.match(line)
            if not match:
                continue
            own = parse_epoch(match.group(2))
            if own is not None and gap_2["start_epoch"] < own < gap_2["end_epoch"]:
                found.add(line)
        return found

    waited_docker = waited(docker_stamped.stdout.splitlines() + docker_stamped.stderr.splitlines())
    assert waited_docker, "the service printed nothing while the daemon was away: the test shows nothing"
    assert all(parse_epoch(line.split(" ", 1)[0]) >= gap_2["end_epoch"] - 1 for line in waited_docker)
    assert waited_docker <= waited(merged), "a line printed while the daemon was away is not in the bundle"

    # The report: the daemon's stop is said, and is not a crash of the ingester.
    assert report["verdict"]["scenario"] == "stable", report["verdict"]
    assert [g["seconds"] for g in report["capture"]["daemon_unavailable"]] == [gap["seconds"], gap_2["seconds"]]
    stopped = [r for r in report["runs"] if r.get("stopped_by_daemon")]
    assert len(stopped) == 1 and stopped[0]["exit_code"] == 137, report["runs"]
    md = (bundle / "report.md").read_text()
    assert md.count("the Docker daemon was down from") == 2
    assert "restarted by its restart policy, which is not a crash of the ingester" in md
    assert "the container kept running (live-restore)" in md
    # The play says it too.
    assert "Docker daemon was unavailable" in out

    # Nothing left running: the window's worker, its followers, the tee.
    assert not agent_processes(str(state)), "the window outlived the play"
    assert not agent_processes(stack.container), "a follower outlived the play"
    figures = {
        "runs": len(runs),
        "seq_lines_printed": sum(PER_RUN + 1 for r in runs.values() if r["total"] is not None),
        "seq_lines_merged": len(merged_seq),
        "seq_lines_docker_kept": len(kept_seq),
        "lines_lost_stated": [a["lines_lost"] for a in account],
        "gap_seconds": [gap["seconds"], gap_2["seconds"]],
        "lines_printed_while_away_live_restore": len(waited_docker),
        "sources": logs["sources"],
    }
    print("DAEMON FIGURES", json.dumps(figures))
