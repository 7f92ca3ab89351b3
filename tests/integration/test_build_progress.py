"""A long debug build shows where it is at each poll, and is not repeated for the same commit.

The stand-in's debug Dockerfile is replaced, in this test's own stack, by one with many steps:
FROM scratch has no shell to sleep in, so each step runs the static stand-in (exec form,
``--version``), and a fresh ENV value first makes sure no cached layer shortcuts them.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from standin.stack import Stack
from tests.support.inventories import write_inventory
from tests.support.playbooks import run_playbook

pytestmark = pytest.mark.integration

STEPS = 14
LABEL = "org.opencontainers.image.revision"


def slow_dockerfile(nonce: str) -> str:
    runs = "".join('RUN ["/ingester", "--version"]\n' for _ in range(STEPS))
    return (
        "FROM scratch\n"
        "COPY rsky-ingester/ingester /ingester\n"
        f"ENV STANDIN_IMAGE=source STANDIN_SOURCE_BUILD=debug BUILD_NONCE={nonce}\n"
        f"{runs}"
        'ENTRYPOINT ["/ingester"]\n'
    )


def head(project: Path) -> str:
    out = subprocess.run(["git", "-C", str(project), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def rollback(inventory: Path) -> None:
    """Put production back between captures, as on-call would: playbooks/rollback.yml."""
    result = run_playbook("playbooks/rollback.yml", inventory)
    assert result.rc == 0, result.out[-3000:]


def bundles(dest: Path) -> list[Path]:
    return sorted(p for p in dest.glob("*/*") if p.is_dir())


def test_slow_build_prints_progress_then_is_reused_for_the_same_commit(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]
) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory("hypothetical-task-error", exit_after_ms=1500)
    stack.up()
    dockerfile = stack.rsky_dir / "rsky-ingester" / "Dockerfile"
    dockerfile.write_text(slow_dockerfile(uuid.uuid4().hex))
    inventory = write_inventory(
        tmp_path / "inv.yml",
        stack,
        dest=dest,
        state=state,
        capture_poll_seconds=1,
        capture_window_seconds=30,
        capture_stop_after_restarts=1,
    )

    first = run_playbook("capture.yml", inventory)

    assert first.rc == 0, first.out[-4000:]
    progress = re.findall(r"^\[testhost\] build (\d+:\d\d), Step (\d+)/(\d+) ", first.out, re.MULTILINE)
    assert len(progress) >= 2, first.out[-4000:]
    steps = [int(n) for _, n, _ in progress]
    assert steps == sorted(steps) and steps[-1] == int(progress[-1][2])  # forward, up to the last step
    assert "build ended (exit 0)" in first.out
    # The image is labelled with the commit it was built from; the manifest says it was built.
    commit = head(stack.project_dir)  # after the play's git pull
    labels = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{ json .Config.Labels }}", stack.debug_image],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(labels.stdout)[LABEL] == commit
    built = json.loads((bundles(dest)[-1] / "manifest.json").read_text())["build"]
    assert built["revision"] == commit and built["reused"] is False

    rollback(inventory)
    second = run_playbook("capture.yml", inventory)

    assert second.rc == 0, second.out[-4000:]
    assert f"already built from commit {commit[:12]}: reused, not rebuilt" in second.out
    assert not re.search(r"^\[testhost\] build \d+:\d\d, Step", second.out, re.MULTILINE)
    reused = json.loads((bundles(dest)[-1] / "manifest.json").read_text())["build"]
    assert reused["revision"] == commit and reused["reused"] is True

    # -e ingester_rebuild=true builds again.
    rollback(inventory)
    third = run_playbook("capture.yml", inventory, "-e", "ingester_rebuild=true")
    assert third.rc == 0, third.out[-4000:]
    assert "reused, not rebuilt" not in third.out
    assert re.search(r"^\[testhost\] build \d+:\d\d, Step", third.out, re.MULTILINE)
