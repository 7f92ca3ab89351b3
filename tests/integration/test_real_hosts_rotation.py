"""Production hosts as they are: json-file rotation (max-size 20k, max-file 2) across restarts.

The stand-in's numbered mode prints ``[SEQ] run=<id> n=<k>`` lines (odd k on stdout, even on
stderr) and ``[SEQ] run=<id> done total=N``; every gap is countable. Docker keeps about 40 KB
of a rotated json-file log, so the end-of-window read alone holds only the last run or two: the
window must follow each run live from its start, or say exactly what was lost, from which run.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from standin.stack import Stack
from tests.support.bundles import only_bundle, tee_bodies
from tests.support.inventories import write_inventory
from tests.support.numbered import SEQ, missing, seq_runs
from tests.support.playbooks import run_playbook
from tests.support.processes import agent_processes
from tests.support.stacks import with_logging

pytestmark = pytest.mark.integration

ROTATING = '    logging:\n      driver: json-file\n      options:\n        max-size: "20k"\n        max-file: "2"\n'


# Whether the live followers keep up with a 20k rotation is a matter of CPU: alone, not beside
# three other workers on two cores (there, lines rotate away before a follower reads them, and are
# counted lost, as they should be, but the test asks that every line of a run that fits is kept).
@pytest.mark.serial
@pytest.mark.parametrize("per_run", [300, 3000], ids=["fits-between-rotations", "burst-beyond-rotation"])
def test_rotated_json_file_every_line_or_every_loss_counted(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path], per_run: int
) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory(
        "hypothetical-task-error", exit_after_ms=1500, env={"STANDIN_NUMBERED": str(per_run)}
    )
    with_logging(stack, ROTATING)
    stack.up()
    inventory = write_inventory(
        tmp_path / "inv.yml", stack, dest=dest, state=state, capture_stop_after_restarts=4, capture_window_seconds=90
    )

    result = run_playbook("capture.yml", inventory)

    assert result.rc == 0, result.out[-4000:]
    bundle = only_bundle(dest)
    merged = (bundle / "logs" / "ingester.log").read_text(errors="replace").splitlines()
    runs = seq_runs(merged)
    window = json.loads((bundle / "window.json").read_text())
    manifest = json.loads((bundle / "manifest.json").read_text())
    logs = manifest["logs"]
    assert logs == window["logs"]
    # The capture's own runs: five starts (the recreate, then four restarts) on the debug image.
    assert window["restarts"] >= 4
    assert len(runs) >= 5, sorted(runs)
    # Docker itself kept only a sliver: rotation was real.
    kept_by_docker = subprocess.run(
        ["docker", "logs", stack.container], capture_output=True, text=True, check=False
    )
    docker_seq = len(SEQ.findall(kept_by_docker.stdout + kept_by_docker.stderr))
    printed = sum(per_run + 1 for r in runs.values() if r["total"] is not None)
    assert docker_seq < printed // 2, (docker_seq, printed)
    # What the merged log lost, per run, is counted here from the numbered lines (the product
    # cannot know them); the product says what it can: the rotation and why the tee alone held lines.
    counted_lost = sum(missing(entry) for entry in runs.values())
    assert logs["rotation"] == {"driver": "json-file", "options": {"max-size": "20k", "max-file": "2"}}
    if logs["sources"]["tee_only"]:
        assert "rotation" in logs["tee_only_why"]
    else:
        assert logs["tee_only_why"] is None
    # Each line once.
    assert len(merged) == len(set(merged)), "a line is in the merged log twice"
    # Every line the tee caught is in the merged log (Compose repeats a run's first lines when it
    # re-attaches: the tee holds some lines twice), so the tee's count of misses is true.
    bodies = tee_bodies(bundle / "logs" / "tee.log")
    merged_bodies: dict[str, int] = {}
    for line in merged:
        body = line.split(" ", 1)[1] if " " in line else ""
        merged_bodies[body] = merged_bodies.get(body, 0) + 1
    tee_count: dict[str, int] = {}
    for body in bodies:
        assert body in merged_bodies, f"a tee line is not in the merged log: {body!r}"
        tee_count[body] = tee_count.get(body, 0) + 1
    missed = sum(max(0, n - tee_count.get(body, 0)) for body, n in merged_bodies.items())
    missed_seq = sum(1 for body in merged_bodies if "[SEQ]" in body and body not in tee_count)
    report = json.loads((bundle / "report.json").read_text())
    assert report["capture"]["tee_missed_lines"] == missed
    assert missed >= missed_seq > 0, "the tee lost nothing: the test proves nothing about the merge"
    assert report["capture"]["lines"]["logs/ingester.log"] == len(merged)
    assert logs["sources"]["tee_container_lines"] == len(bodies)
    assert logs["merged_lines"] == len(merged)
    if per_run <= 300:
        # A run fits in what Docker keeps until the next run starts: the followers read it all,
        # with each run's start banner.
        assert counted_lost == 0, {run_id: missing(entry) for run_id, entry in runs.items()}
        banners = sum("Starting rsky-ingester" in line for line in merged)
        # A run's first lines sit in the file Docker is about to rotate when the run before filled
        # it: a burst can rotate them away before the run's follower opens the log (seen on a
        # loaded machine, and once in an idle one: 4 banners for 5 runs). The capture must then
        # say which run's start it could not read, and why; the tee may still hold them.
        unread = logs["beginnings_unread"]
        assert banners + len(unread) >= len(runs), (banners, len(runs), unread, logs["sources"])
        for entry in unread:
            assert "log rotation" in entry["statement"], entry
            assert entry["oldest_read"] > entry["last_line_before"], entry
        if unread:
            assert f"Lost to rotation: run {unread[0]['run']} of the window" in (bundle / "report.md").read_text()
    else:
        # 3000 lines in a burst rotate away before any reader can attach: the loss is said.
        assert counted_lost > 0
    assert not agent_processes(str(state)), "a follower outlived the play"
    figures = {
        "per_run": per_run,
        "runs": len(runs),
        "seq_lines_printed": printed,
        "merged_lines": len(merged),
        "merged_seq_lines": sum(len(r["seen"]) + (r["total"] is not None) for r in runs.values()),
        "tee_container_lines": len(bodies),
        "tee_seq_lines": sum(1 for b in bodies if "[SEQ]" in b),
        "docker_kept_seq_lines": docker_seq,
        "lost": counted_lost,
        "sources": logs["sources"],
    }
    print("ROTATION FIGURES", json.dumps(figures))
