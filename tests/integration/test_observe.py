"""Observe-only triage against a production-shaped stack running the uninstrumented build.

Observe mode must name what the kernel, Docker and Rust's own output already show, say
"deploy the debug image" when they show nothing, and never change the compose file, the image or
the container. auto mode deploys the debug image only in the inconclusive case.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from standin.stack import Stack
from tests.support.inventories import write_inventory
from tests.support.playbooks import run_playbook, start_play, wait_for_window

pytestmark = pytest.mark.integration

# What a capture window may see from the play itself in observe mode: nothing that acts on the
# container. (Faults cause die/start/oom; the play must cause none of these.)
PLAY_ACTIONS = {"create", "destroy", "stop", "kill", "restart", "pause", "unpause", "rename", "update"}


def bundles(dest: Path) -> list[Path]:
    return sorted(p for p in dest.glob("*/*") if p.is_dir())


def actions(bundle: Path) -> list[str]:
    out = []
    for line in (bundle / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        out.append(str(event.get("Action") or event.get("status")).split(":")[0])
    return out


def observe_inventory(tmp_path: Path, stack: Stack, dest: Path, state: Path, **kw: Any) -> Path:
    kw.setdefault("capture_mode", "observe")
    kw.setdefault("capture_stop_after_restarts", 2)
    kw.setdefault("capture_window_seconds", 45)
    return write_inventory(tmp_path / "i.yml", stack, dest=dest, state=state, **kw)


def unchanged(stack: Stack, compose_sha: str, container_id: str) -> None:
    assert hashlib.sha256(stack.compose_path.read_bytes()).hexdigest() == compose_sha
    assert stack.container_id() == container_id
    assert stack.inspect()["Config"]["Image"] == "rsky-ingester:latest"
    images = subprocess.run(
        ["docker", "image", "ls", "-q", stack.debug_image], capture_output=True, text=True, check=True
    )
    assert not images.stdout.strip(), "observe mode built the debug image"


@pytest.mark.parametrize(
    ("scenario", "kwargs", "expected"),
    [
        ("oom", {}, "oom-kill"),
        ("hypothetical-main-panic", {"exit_after_ms": 1500}, "panic"),
        ("hypothetical-silent-exit", {"exit_after_ms": 1500}, "inconclusive"),
    ],
)
def test_observe_names_what_production_already_shows(
    stack_factory: Any,
    tmp_path: Path,
    capture_paths: tuple[Path, Path],
    scenario: str,
    kwargs: dict[str, Any],
    expected: str,
) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory(scenario, **kwargs)
    stack.up()
    stack.wait_restarts(1, timeout=60)
    compose_sha = hashlib.sha256(stack.compose_path.read_bytes()).hexdigest()
    container_id = stack.container_id()

    result = run_playbook("capture.yml", observe_inventory(tmp_path, stack, dest, state))

    assert result.rc == 0, result.out[-4000:]
    (bundle,) = bundles(dest)
    report = json.loads((bundle / "report.json").read_text())
    assert report["verdict"]["scenario"] == expected, report["verdict"]
    unchanged(stack, compose_sha, container_id)
    assert not PLAY_ACTIONS & set(actions(bundle)), actions(bundle)
    text = json.dumps(report).lower()
    if expected == "inconclusive":
        assert "deploy the debug image" in text
        assert report["verdict"]["needs_debug_build"] is True
    else:
        assert report["verdict"]["needs_debug_build"] is False
    if expected == "panic":
        assert report["panic"]["location"].startswith("rsky-ingester/src/")


def test_observe_tells_an_outside_kill(stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory("healthy")
    stack.up()
    compose_sha = hashlib.sha256(stack.compose_path.read_bytes()).hexdigest()
    container_id = stack.container_id()
    play = start_play(observe_inventory(tmp_path, stack, dest, state))
    wait_for_window(state)
    for _ in range(2):
        stack.wait_running(timeout=30)
        time.sleep(1.5)
        stack.kill9()
    out, _ = play.communicate(timeout=300)

    assert play.returncode == 0, out[-4000:]
    (bundle,) = bundles(dest)
    verdict = json.loads((bundle / "report.json").read_text())["verdict"]
    assert verdict["scenario"] == "external-kill", verdict
    unchanged(stack, compose_sha, container_id)
    assert "kill" not in actions(bundle)


def test_auto_deploys_the_debug_image_only_when_inconclusive(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]
) -> None:
    dest, state = capture_paths
    silent: Stack = stack_factory("hypothetical-silent-exit", exit_after_ms=1500)
    silent.up()
    silent.wait_restarts(1, timeout=60)

    result = run_playbook("capture.yml", observe_inventory(tmp_path, silent, dest, state, capture_mode="auto"))

    assert result.rc == 0, result.out[-4000:]
    found = bundles(dest)
    assert [p.name.rsplit("-", 1)[1] for p in found] == ["observe", "capture"], found
    assert "Deploying" in result.out or "Second pass" in result.out
    assert silent.inspect()["Config"]["Image"] == silent.debug_image


def test_auto_stays_observing_when_the_kernel_explains_it(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]
) -> None:
    dest, state = capture_paths
    oom: Stack = stack_factory("oom")
    oom.up()
    oom.wait_restarts(1, timeout=60)
    compose_sha = hashlib.sha256(oom.compose_path.read_bytes()).hexdigest()
    container_id = oom.container_id()

    result = run_playbook("capture.yml", observe_inventory(tmp_path, oom, dest, state, capture_mode="auto"))

    assert result.rc == 0, result.out[-4000:]
    (bundle,) = bundles(dest)
    assert bundle.name.endswith("-observe")
    assert json.loads((bundle / "report.json").read_text())["verdict"]["scenario"] == "oom-kill"
    unchanged(oom, compose_sha, container_id)
