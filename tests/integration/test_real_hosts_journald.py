"""Production hosts as they are: the journald log driver, read back for real.

The machine runs no systemd as PID 1, so there is no journal to log to. The test starts a real
``systemd-journald`` of its own in a private mount namespace (its sockets under a tmpfs
``/run/systemd``, its journal on a tmpfs ``/run/log``; the machine's own are untouched) and a
private ``dockerd`` beside it, and runs the play in that namespace, as on a host where journald
runs. The stack logs with ``driver: journald``; pre-flight accepts it (the journal socket is
there) and the window reads every run with ``docker logs`` (Debian's engine links libsystemd and
reads the journal back). The journal itself, read with ``journalctl CONTAINER_ID_FULL=...``, is the
answer key: every numbered line it holds is in the bundle, once.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
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

PER_RUN = 200
JOURNALD_BLOCK = "    logging:\n      driver: journald\n"


@pytest.fixture
def journald_daemon(standin_images: Any) -> Iterator[PrivateDaemon]:
    yield from private_daemon_for(journald=True)


def test_journald_driver_is_read_back_and_every_journal_line_is_in_the_bundle(
    journald_daemon: PrivateDaemon, tmp_path: Path, capture_paths: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    dest, state = capture_paths
    daemon = journald_daemon
    monkeypatch.setenv("DOCKER_HOST", daemon.host)
    stack = Stack(
        tmp_path / "stack",
        "hypothetical-task-error",
        name_prefix=f"icj-{uuid.uuid4().hex[:8]}",
        exit_after_ms=1500,
        env={"STANDIN_NUMBERED": str(PER_RUN)},
    )
    text = stack.compose_path.read_text()
    anchor = f"    mem_limit: {stack.mem_limit}\n"
    assert text.count(anchor) == 1
    stack.compose_path.write_text(text.replace(anchor, anchor + JOURNALD_BLOCK))
    try:
        stack.up()
        inventory = write_inventory(
            tmp_path / "inv.yml",
            stack,
            dest=dest,
            state=state,
            ingester_docker_host=daemon.host,
            capture_mode="observe",  # the production container as it runs: no build, no swap
            capture_window_seconds=40,
            capture_stop_after_restarts=2,
        )
        env = ansible_env()
        env.pop("DOCKER_HOST", None)
        play = subprocess.run(
            [*daemon.inside(), ANSIBLE_PLAYBOOK, "-i", str(inventory), "capture.yml", "-v"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        container_id = json.loads(daemon.docker("inspect", stack.container).stdout)[0]["Id"]
        journal = subprocess.run(
            [*daemon.inside(), "journalctl", "--no-pager", "-o", "json", f"CONTAINER_ID_FULL={container_id}"],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    finally:
        stack.down()

    out = play.stdout + play.stderr
    assert play.returncode == 0, out[-5000:]
    assert journal.returncode == 0, journal.stderr
    # Pre-flight found journald and said docker logs reads it: no fallback to the tee.
    assert '"log_driver": "journald"' in out
    assert "docker logs reads the journald driver" in out

    bundles = sorted(p for p in dest.glob("*/*") if p.is_dir())
    assert len(bundles) == 1, bundles
    bundle = bundles[0]
    window = json.loads((bundle / "window.json").read_text())
    manifest = json.loads((bundle / "manifest.json").read_text())
    logs = manifest["logs"]
    assert logs == window["logs"]
    assert logs["only_source"] is None and logs["docker_logs_error"] is None, logs
    assert window["restarts"] >= 2

    # The journal's own copy of this container's lines (one JSON entry a line, MESSAGE a string,
    # or a list of bytes when it carries escapes) is the answer key. The service kept restarting
    # after the window (observe mode changes nothing): the window's share is
    # what the journal received before the window ended.
    journal_seq, journal_in_window = [], []
    for raw in journal.stdout.splitlines():
        entry = json.loads(raw)
        message = entry.get("MESSAGE")
        if isinstance(message, list):
            message = bytes(message).decode(errors="replace")
        match = SEQ.search(str(message))
        if match:
            journal_seq.append(match.group(0))
            if int(entry["__REALTIME_TIMESTAMP"]) / 1e6 <= window["window_end_epoch"]:
                journal_in_window.append(match.group(0))
    merged = (bundle / "logs" / "ingester.log").read_text(errors="replace").splitlines()
    merged_seq = [m.group(0) for line in merged if (m := SEQ.search(line))]
    runs = seq_runs(merged)
    assert len(runs) >= 3, sorted(runs)
    assert set(journal_in_window) <= set(merged_seq), "a line the journal kept in the window is not in the bundle"
    assert set(merged_seq) <= set(journal_seq), "a numbered line in the bundle is not in the journal"
    assert len(merged_seq) == len(set(merged_seq)), "a numbered line is in the bundle twice"
    finished = [e for e in runs.values() if e["total"] is not None]
    assert finished and all(e["seen"] == set(range(1, PER_RUN + 1)) for e in finished), runs
    assert [missing(e) for e in finished] == [0] * len(finished)
    assert not agent_processes(str(state)), "the window outlived the play"
    assert not agent_processes(stack.container), "a follower outlived the play"
    print(
        "JOURNALD FIGURES",
        json.dumps(
            {
                "runs": len(runs),
                "journal_seq_lines_in_window": len(journal_in_window),
                "bundle_seq_lines": len(merged_seq),
                "sources": logs["sources"],
            }
        ),
    )
