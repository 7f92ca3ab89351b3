"""capture.yml against stand-in stacks that take the real code's paths, in capture and observe mode.

The expected verdicts are argued from the reference (``shared/reference/rsky-ingester.md``,
"What the real code can and cannot do"), not recorded from the collector:

* ``REDIS_URL`` without ``redis://`` is a configuration error: ``X::new(config)?`` fails before
  any task starts, every run, whatever select! reports; the verdict names ``REDIS_URL`` (its
  value redacted: the planted password never reaches the bundle) and never sends the operator to
  Redis health or a debug build.
* One relay of three panicking is a contained panic: ``run_firehose`` still awaits task 0, so the
  process keeps running; the panic is reported as contained and does not decide the verdict.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from standin.stack import REDIS_PASSWORD, Stack
from tests.support.bundles import only_bundle
from tests.support.inventories import write_inventory
from tests.support.playbooks import run_playbook

pytestmark = pytest.mark.integration

MODES = ["capture", "observe"]


def bundle_text(bundle: Path) -> str:
    """Every file of the bundle (and the tarball beside it, if any) as one text."""
    parts = [p.read_bytes().decode("utf-8", "replace") for p in sorted(bundle.rglob("*")) if p.is_file()]
    return "\n".join(parts)


def wait_for_log(stack: Stack, pattern: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = stack.logs()
        if re.search(pattern, logs.stdout + logs.stderr, re.M):
            return
        time.sleep(0.5)
    raise AssertionError(f"{stack.container}: {pattern!r} not in the logs after {timeout} s")


@pytest.mark.parametrize("mode", MODES)
def test_bad_redis_url_is_a_configuration_error(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path], mode: str
) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory("config-redis-url")
    stack.up()
    stack.wait_restarts(2, timeout=60)  # production has crash-looped before anyone looks
    inventory = write_inventory(
        tmp_path / "inv.yml",
        stack,
        dest=dest,
        state=state,
        capture_mode=mode,
        capture_window_seconds=40,
        capture_stop_after_restarts=3,
    )

    result = run_playbook("capture.yml", inventory)

    assert result.rc == 0, result.out[-4000:]
    bundle = only_bundle(dest)
    report = json.loads((bundle / "report.json").read_text())
    verdict = report["verdict"]
    assert verdict["scenario"] == "config-error", verdict
    said = json.dumps(verdict)
    assert "REDIS_URL" in said, verdict
    assert "redis health" not in said.lower(), verdict
    assert verdict.get("needs_debug_build") is False, verdict
    assert REDIS_PASSWORD not in bundle_text(bundle), "the Redis password reached the bundle"
    assert REDIS_PASSWORD not in result.out, "the Redis password reached the play output"


@pytest.mark.parametrize("mode", MODES)
def test_contained_panic_does_not_decide_the_verdict(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path], mode: str
) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory("contained-panic", exit_after_ms=2000)
    stack.up()
    wait_for_log(stack, r"^FATAL PANIC OCCURRED$")  # relay 1's task has panicked; the rest runs on
    inventory = write_inventory(
        tmp_path / "inv.yml",
        stack,
        dest=dest,
        state=state,
        capture_mode=mode,
        capture_window_seconds=20,
    )

    result = run_playbook("capture.yml", inventory)

    assert result.rc == 0, result.out[-4000:]
    bundle = only_bundle(dest)
    report = json.loads((bundle / "report.json").read_text())
    verdict = report["verdict"]
    assert verdict["scenario"] != "panic", verdict
    said = json.dumps(verdict).lower()
    assert "contained" in said and "kept running" in said, verdict
    state_now = stack.inspect()["State"]
    assert state_now["Running"] is True and stack.restart_count() == 0
    # the process never exited: no die event for it in the bundle's events, if it has them
    events = bundle / "events.jsonl"
    if events.is_file():
        dies = [json.loads(line) for line in events.read_text().splitlines() if '"die"' in line]
        assert not dies, dies


def test_stand_in_really_took_those_paths(stack_factory: Any) -> None:
    """Guard for the two tests above: the stacks do what the reference says (else they prove nothing)."""
    bad: Stack = stack_factory("config-redis-url", restart="no")
    bad.up()
    state = bad.wait_exited(timeout=60)
    assert state["ExitCode"] == 1
    logs = bad.logs()
    assert "Redis URL did not parse- InvalidClientConfig" in logs.stdout + logs.stderr
    contained: Stack = stack_factory("contained-panic", exit_after_ms=500)
    contained.up()
    wait_for_log(contained, r"^FATAL PANIC OCCURRED$")
    time.sleep(2)
    assert contained.inspect()["State"]["Running"] is True
    out = subprocess.run(["docker", "logs", contained.container], capture_output=True, text=True, check=True)
    assert "CRITICAL" not in out.stdout
