"""Production hosts as they are: other log drivers, a missing container, a nearly full disk.

Real containers on the real engine. ``docker logs`` reads json-file, local and journald (and other
drivers through the daemon's dual-logging cache); for ``none``, or a driver with the cache
disabled, pre-flight says so and the window's merged log comes from the attached stream alone.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from standin.stack import Stack
from tests.support.bundles import only_bundle, tee_bodies
from tests.support.inventories import write_inventory
from tests.support.numbered import missing, seq_runs
from tests.support.playbooks import run_playbook
from tests.support.stacks import with_logging

pytestmark = pytest.mark.integration

JOURNAL_SOCKET = Path("/run/systemd/journal/socket")


def logging_block(driver: str, options: dict[str, str]) -> str:
    lines = ["    logging:", f"      driver: {driver}"]
    if options:
        lines.append("      options:")
        lines += [f'        {key}: "{value}"' for key, value in options.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def syslog_socket(tmp_path: Path) -> Iterator[Path]:
    """A unix datagram socket standing in for a syslog daemon (nothing leaves the machine)."""
    # Short (a socket path has ~100 bytes) and unique across parallel workers, whose tmp_path
    # names repeat.
    path = Path("/tmp") / f"ict-syslog-{uuid.uuid4().hex[:16]}.sock"
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.5)
    received: list[bytes] = []
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            try:
                received.append(sock.recv(65536))
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        stop.set()
        thread.join(timeout=5)
        sock.close()
        path.unlink(missing_ok=True)


def observe(tmp_path: Path, stack: Stack, dest: Path, state: Path, **kw: Any) -> Path:
    kw.setdefault("capture_mode", "observe")
    kw.setdefault("capture_stop_after_restarts", 2)
    kw.setdefault("capture_window_seconds", 45)
    return write_inventory(tmp_path / "inv.yml", stack, dest=dest, state=state, **kw)


@pytest.mark.parametrize(
    ("driver", "options", "readable"),
    [
        ("none", {}, False),
        ("syslog", {"cache-disabled": "true"}, False),
        ("syslog", {}, True),
        # Rotation at 20k: whether a follower keeps up is a matter of CPU, so it runs alone.
        pytest.param("local", {"max-size": "20k", "max-file": "2"}, True, marks=pytest.mark.serial),
    ],
    ids=["none", "syslog-no-cache", "syslog-dual-logging", "local-rotated"],
)
def test_log_driver_read_or_tee_named_the_one_source(
    stack_factory: Any,
    tmp_path: Path,
    capture_paths: tuple[Path, Path],
    syslog_socket: Path,
    driver: str,
    options: dict[str, str],
    readable: bool,
) -> None:
    dest, state = capture_paths
    if driver == "syslog":
        options = {"syslog-address": f"unixgram://{syslog_socket}", **options}
    stack: Stack = stack_factory("hypothetical-task-error", exit_after_ms=1500, env={"STANDIN_NUMBERED": "200"})
    with_logging(stack, logging_block(driver, options))
    stack.up()
    inventory = observe(tmp_path, stack, dest, state)

    result = run_playbook("capture.yml", inventory)

    assert result.rc == 0, result.out[-4000:]
    said = "docker logs cannot read this service's logs" in result.out
    assert said is (not readable), result.out[-3000:]
    bundle = only_bundle(dest)
    logs = json.loads((bundle / "manifest.json").read_text())["logs"]
    merged = (bundle / "logs" / "ingester.log").read_text(errors="replace").splitlines()
    report_md = (bundle / "report.md").read_text()
    bodies = tee_bodies(bundle / "logs" / "tee.log")
    # The driver and how much it keeps, as Docker has them; no other option (an address) leaves the host.
    kept = {k: v for k, v in options.items() if k != "syslog-address"}
    assert logs["rotation"] == {"driver": driver, "options": kept}, logs["rotation"]
    if readable:
        assert logs["only_source"] is None
        assert logs["sources"]["follow"] > 0 and logs["sources"]["end_read"] > 0
        assert "One source only" not in report_md
        # Each run of the window that printed its done line kept every numbered line.
        runs = seq_runs(merged)
        complete = [r for r in runs.values() if r["total"] is not None]
        assert len(complete) >= 2
        # The run already running when the window opened may have rotated away before it (and
        # then says so); every run the window saw start is whole.
        lost = [missing(r) for r in list(runs.values())[1:]]
        if any(lost):
            # Rotation at 20k outran a follower on a loaded machine: the capture must say so.
            assert "rotation" in (logs["tee_only_why"] or ""), (lost, logs["sources"])
    else:
        assert logs["only_source"] == "attach"
        assert "does not support reading" in (logs["docker_logs_error"] or "")
        assert logs["sources"]["follow"] == 0 and logs["sources"]["end_read"] == 0
        assert logs["sources"]["attach"] > 0
        # Compose's attached `up` may fail on such a driver (docker's error is then the whole
        # tee); the window's own `docker attach` of each run is the one source, each line stamped
        # on arrival, with whatever only the tee caught.
        assert len(merged) == logs["sources"]["attach"] + logs["sources"]["tee_only"] > 0
        assert set(bodies) <= {line.split(" ", 1)[1] for line in merged}
        # An attach begins after the run has started: what it printed first is lost (the harness
        # counts it; the product cannot), and the product says the attached stream is all there is.
        assert "One source only" in report_md
        assert "docker logs" in report_md


def test_journald_without_journald_is_refused_by_preflight(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]
) -> None:
    if JOURNAL_SOCKET.exists():
        pytest.skip("systemd-journald runs here: the refusal path cannot be caused")
    dest, state = capture_paths
    stack: Stack = stack_factory("healthy")
    with_logging(stack, logging_block("journald", {}))
    before = hashlib.sha256(stack.compose_path.read_bytes()).hexdigest()
    inventory = write_inventory(tmp_path / "inv.yml", stack, dest=dest, state=state, capture_expect_missing=True)

    result = run_playbook("capture.yml", inventory)

    assert result.rc != 0
    assert "Pre-flight failed; nothing was changed" in result.out
    assert "no systemd-journald runs here" in result.out
    assert hashlib.sha256(stack.compose_path.read_bytes()).hexdigest() == before
    assert not list(dest.rglob("*.tar.gz"))


@pytest.mark.parametrize("expect_missing", [False, True], ids=["refused", "expected"])
def test_missing_container_is_a_preflight_failure_unless_expected(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path], expect_missing: bool
) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory("healthy")  # laid out, never started: no container
    inventory = write_inventory(
        tmp_path / "inv.yml", stack, dest=dest, state=state, capture_expect_missing=expect_missing
    )

    result = run_playbook("capture.yml", inventory, "--check")

    if expect_missing:
        assert result.rc == 0, result.out[-3000:]
        assert "Check mode: nothing was changed" in result.out
    else:
        assert result.rc != 0
        assert "Pre-flight failed; nothing was changed" in result.out
        assert f"the service's container {stack.container} cannot be inspected" in result.out
        # Docker's own words are kept.
        assert "No such container" in result.out or "no such container" in result.out.lower()
        assert "capture_expect_missing=true" in result.out


def test_nearly_full_host_is_refused_before_anything_changes(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]
) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory("healthy")
    stack.up()
    before_sha = hashlib.sha256(stack.compose_path.read_bytes()).hexdigest()
    before_id = stack.container_id()
    inventory = write_inventory(
        tmp_path / "inv.yml", stack, dest=dest, state=state, capture_min_free_bytes=1 << 62
    )

    result = run_playbook("capture.yml", inventory)

    assert result.rc != 0
    assert "not enough disk for the bundle" in result.out
    assert f"need {1 << 62}" in result.out
    assert hashlib.sha256(stack.compose_path.read_bytes()).hexdigest() == before_sha
    assert stack.container_id() == before_id
    assert stack.inspect()["Config"]["Image"] == "rsky-ingester:latest"
    assert not list(state.rglob("compose.orig")) and not list(dest.rglob("*.tar.gz"))


@pytest.fixture
def small_state_dir(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs as the host's state dir (root mounts it; unmounted at teardown)."""
    mount = tmp_path / "small-state"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_filling_mid_window_stops_it_cleanly_and_keeps_what_was_written(
    stack_factory: Any, tmp_path: Path, small_state_dir: Path
) -> None:
    dest = tmp_path / "captures"
    dest.mkdir()
    stack: Stack = stack_factory("hypothetical-task-error", exit_after_ms=1500, env={"STANDIN_NUMBERED": "3000"})
    stack.up()
    inventory = write_inventory(
        tmp_path / "inv.yml",
        stack,
        dest=dest,
        state=small_state_dir,
        capture_stop_after_restarts=40,
        capture_window_seconds=120,
        capture_window_reserve_bytes=3_000_000,
    )

    result = run_playbook("capture.yml", inventory)

    assert result.rc == 0, result.out[-4000:]
    assert "disk nearly full" in result.out
    bundle = only_bundle(dest)
    window = json.loads((bundle / "window.json").read_text())
    assert window["ended_by"].startswith("disk nearly full"), window["ended_by"]
    assert window["restarts"] < 40
    merged = (bundle / "logs" / "ingester.log").read_text(errors="replace").splitlines()
    logs = json.loads((bundle / "manifest.json").read_text())["logs"]
    assert logs["merged_lines"] == len(merged) > 0
    assert len(seq_runs(merged)) >= 2
    assert (bundle / "report.json").is_file()
    state = stack.inspect()["State"]
    assert state["Running"] or state["Restarting"], state
