"""A stack started under another compose project name: the capture finds it from the container."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from standin.stack import build_images
from tests.support.inventories import write_inventory
from tests.support.playbooks import run_playbook

pytestmark = pytest.mark.integration


def compose_labels(container: str) -> dict[str, str]:
    out = subprocess.run(["docker", "inspect", "--type", "container", container], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout)[0]["Config"]["Labels"])


def test_capture_and_rollback_use_the_running_containers_project(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]
) -> None:
    dest, state = capture_paths
    stack = stack_factory("hypothetical-task-error", exit_after_ms=1500)
    other = f"{stack.prefix}-othername"
    build_images()
    try:
        stack.compose("-p", other, "up", "-d")
        assert compose_labels(stack.container)["com.docker.compose.project"] == other
        original = stack.compose_path.read_bytes()
        inventory = write_inventory(tmp_path / "inv.yml", stack, dest=dest, state=state)

        result = run_playbook("capture.yml", inventory)

        assert result.rc == 0, result.out[-4000:]
        # No collision: the window recreated the container in the running project, not the file's.
        assert "is already in use" not in result.out
        labels = compose_labels(stack.container)
        assert labels["com.docker.compose.project"] == other
        assert (json.loads((next(dest.glob("*/*/report.json"))).read_text())["verdict"]["scenario"]) == "task-error"
        notes = [line for line in result.out.splitlines() if "Compose project of " + stack.container in line]
        assert notes, result.out[-4000:]
        note = notes[0]
        assert f"project {other} (inventory: {stack.project})" in note
        assert "the running container's labels win" in note
        # Said once per pass, in one line.
        assert len({n.strip() for n in notes}) == 1
        swap = json.loads(next(state.glob("*/swap.json")).read_text())
        assert swap["project"]["name"] == other

        back = run_playbook("playbooks/rollback.yml", inventory, extra_vars={"rollback_wait_timeout": 60})

        assert back.rc == 0, back.out[-4000:]
        assert stack.compose_path.read_bytes() == original
        after = stack.inspect()
        assert after["Config"]["Image"] == "rsky-ingester:latest"
        assert after["Config"]["Labels"]["com.docker.compose.project"] == other
        assert "is already in use" not in back.out
    finally:
        stack.compose("-p", other, "down", "-v", "--remove-orphans", "-t", "0", check=False)
