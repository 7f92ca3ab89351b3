"""The stand-in ingester and its stacks, in real containers on the real engine.

These tests pin what the rest of the suite relies on: each exit path prints the breadcrumbs and
exit code of rsky-ingester, the production image prints none of them, OOM and host-side kills
look like production's, and ``docker logs`` keeps every line of every run.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import StackFactory, StandinImages
from tests.standin.stack import BRANCH, PROD_IMAGE, REDIS_PASSWORD, SERVICE, Stack

pytestmark = pytest.mark.integration

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# tracing's default format with colours stripped: timestamp, level padded to 5, target.
TRACING = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z (ERROR| WARN| INFO) (?P<target>[\w:]+): (?P<msg>.*)$")
RELAYS = "https://relay1.us-east.bsky.network,https://atproto.africa"
LABELER = "https://atproto.africa"
UNWRAP = "called `Option::unwrap()` on a `None` value"
EQ80 = "=" * 80


@dataclass(frozen=True)
class Run:
    """One finished container run: exit code, ``docker logs`` streams and final inspect."""

    rc: int
    stdout: str
    stderr: str
    inspect: dict[str, Any]

    @property
    def out(self) -> str:
        """stdout with the ANSI colour codes removed."""
        return ANSI.sub("", self.stdout)

    @property
    def err_lines(self) -> list[str]:
        return self.stderr.splitlines()

    @property
    def traces(self) -> list[str]:
        return [line for line in self.err_lines if line.startswith("[EXIT-TRACE]")]


def run_container(
    image: str,
    env: Mapping[str, str],
    *,
    memory: str | None = None,
    args: tuple[str, ...] = (),
    timeout: float = 30,
) -> Run:
    """Run ``image`` once (no restart policy, no network) and collect its logs and state."""
    name = f"ict-run-{uuid.uuid4().hex[:10]}"
    argv = ["docker", "run", "-d", "--name", name, "--network", "none"]
    for key, value in env.items():
        argv += ["-e", f"{key}={value}"]
    if memory:
        argv += ["--memory", memory]
    try:
        subprocess.run([*argv, image, *args], check=True, capture_output=True, timeout=60)
        waited = subprocess.run(["docker", "wait", name], check=True, capture_output=True, text=True, timeout=timeout)
        logs = subprocess.run(["docker", "logs", name], check=True, capture_output=True, text=True, timeout=60)
        inspect = json.loads(
            subprocess.run(["docker", "inspect", name], check=True, capture_output=True, text=True).stdout
        )[0]
        return Run(int(waited.stdout.strip()), logs.stdout, logs.stderr, inspect)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def base_env(**extra: str) -> dict[str, str]:
    """The environment of a production-like run with a short delay before the exit."""
    env = {
        "INGESTER_RELAY_HOSTS": RELAYS,
        "INGESTER_LABELER_HOSTS": LABELER,
        "REDIS_URL": f"redis://:{REDIS_PASSWORD}@redis:6379",
        "STANDIN_EXIT_AFTER_MS": "300",
    }
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def debug_image(standin_images: StandinImages, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The instrumented image, built with the runbook's own ``docker build`` command."""
    stack = Stack(
        tmp_path_factory.mktemp("debug"),
        name_prefix=f"ict-dbg-{uuid.uuid4().hex[:6]}",
    )
    image = stack.build_debug_image()
    yield image
    subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True, check=False)


# ------------------------------------------------------------------- exit paths A-Z ---

# (letter, env, exit code, the [EXIT-TRACE] line naming the path)
EXIT_PATHS = [
    ("A", {"INGESTER_MODE": "firehose", "STANDIN_SCENARIO": "task-ok"}, 1,
     "[EXIT-TRACE] Firehose mode exited - EXIT PATH A"),
    ("B", {"INGESTER_MODE": "backfill", "STANDIN_SCENARIO": "task-ok"}, 1,
     "[EXIT-TRACE] Backfill mode exited - EXIT PATH B"),
    ("C", {"INGESTER_MODE": "labeler", "STANDIN_SCENARIO": "task-ok"}, 1,
     "[EXIT-TRACE] Labeler mode exited - EXIT PATH C"),
    ("D", {"STANDIN_SCENARIO": "task-error", "STANDIN_TASK": "firehose"}, 1,
     "[EXIT-TRACE] tokio::select! triggered on firehose_handle - EXIT PATH D"),
    ("E", {"STANDIN_SCENARIO": "task-error", "STANDIN_TASK": "backfill"}, 1,
     "[EXIT-TRACE] tokio::select! triggered on backfill_handle - EXIT PATH E"),
    ("F", {"STANDIN_SCENARIO": "task-error", "STANDIN_TASK": "labeler"}, 1,
     "[EXIT-TRACE] tokio::select! triggered on labeler_handle - EXIT PATH F"),
    ("G", {"STANDIN_SCENARIO": "task-error", "STANDIN_TASK": "firehose",
           "INGESTER_LABELER_HOSTS": ""}, 1,
     "[EXIT-TRACE] tokio::select! triggered on firehose_handle (no labeler) - EXIT PATH G"),
    ("H", {"STANDIN_SCENARIO": "task-error", "STANDIN_TASK": "backfill",
           "INGESTER_LABELER_HOSTS": ""}, 1,
     "[EXIT-TRACE] tokio::select! triggered on backfill_handle (no labeler) - EXIT PATH H"),
    ("I", {"INGESTER_MODE": "bogus"}, 1, "[EXIT-TRACE] Unknown INGESTER_MODE: bogus - EXIT PATH I"),
    ("Z", {"STANDIN_SCENARIO": "impossible"}, 1,
     "[EXIT-TRACE] IMPOSSIBLE: Reached end of main() after match - EXIT PATH Z"),
]  # fmt: skip


@pytest.mark.parametrize(("letter", "env", "code", "trace"), EXIT_PATHS, ids=[p[0] for p in EXIT_PATHS])
def test_exit_path(debug_image: str, letter: str, env: dict[str, str], code: int, trace: str) -> None:
    """The debug image names each exit path on stderr and, as an ERROR line, on stdout."""
    run = run_container(debug_image, base_env(**env))
    assert run.rc == code
    assert trace in run.err_lines
    error_lines = [m for m in map(TRACING.match, run.out.splitlines()) if m]
    if letter == "I":
        # The real code logs the mode with error! and calls process::exit(1): no `Error:`.
        assert any(m["msg"] == "Unknown INGESTER_MODE: bogus" for m in error_lines)
        assert not any(line.startswith("Error:") for line in run.err_lines)
        return
    assert any(m[1] == "ERROR" and m["target"] == "ingester" and m["msg"] == trace for m in error_lines)
    assert [line for line in run.err_lines if line.startswith("Error: ")], run.stderr
    if letter in "DEFGH":
        assert run.traces[0] == "[EXIT-TRACE] Running in 'all' mode"
        # The path line is followed by the JoinHandle result line.
        after = run.traces[run.traces.index(trace) + 1]
        assert re.fullmatch(r"\[EXIT-TRACE\] (Firehose|Backfill|Labeler) result: Ok\(Err\(.*\)\)", after)
    if letter in "GH":
        assert "[EXIT-TRACE] No labeler hosts configured" in run.traces
        assert "[EXIT-TRACE] Entering tokio::select! with firehose and backfill only" in run.traces
    if letter in "DEF":
        assert "[EXIT-TRACE] Spawning labeler task (hosts configured)" in run.traces
        assert "[EXIT-TRACE] Entering tokio::select! with all three tasks" in run.traces


def test_task_error_labeler_critical_lines(debug_image: str) -> None:
    """task-error: CRITICAL lines on stdout, the Ok(Err(..)) result, `Error:` last, exit 1."""
    run = run_container(debug_image, base_env(STANDIN_SCENARIO="task-error", RUST_BACKTRACE="0"))
    assert run.rc == 1
    assert f"CRITICAL: Labeler ingester for {LABELER} exited with error: WebSocket(ConnectionClosed)" in run.out
    # The second line of the message continues without a prefix.
    assert "\nThis task should never exit. Investigate immediately.\n" in run.out
    assert (
        "[EXIT-TRACE] Labeler result: Ok(Err(CRITICAL: All labeler tasks exited. "
        "This should never happen.))" in run.err_lines
    )
    assert run.err_lines[-1] == (
        "Error: CRITICAL: Labeler ingester exited unexpectedly. This should never happen. Check logs for details."
    )


def test_single_mode_task_error_skips_path_letter(debug_image: str) -> None:
    """In a single mode `?` returns before the A/B/C breadcrumb: only `Error: CRITICAL: All`."""
    run = run_container(
        debug_image,
        base_env(INGESTER_MODE="firehose", STANDIN_SCENARIO="task-error", RUST_BACKTRACE="0"),
    )
    assert run.rc == 1
    assert run.traces == ["[EXIT-TRACE] About to run firehose mode"]
    assert run.err_lines[-1] == "Error: CRITICAL: All firehose tasks exited. This should never happen."


def test_task_ok_result(debug_image: str) -> None:
    """task-ok in all mode: `exited successfully` CRITICAL and result Ok(Ok(()))."""
    run = run_container(debug_image, base_env(STANDIN_SCENARIO="task-ok", STANDIN_TASK="firehose"))
    assert run.rc == 1
    assert "exited successfully but should never exit!\nThis indicates a logic error" in run.out
    assert "[EXIT-TRACE] Firehose result: Ok(Ok(()))" in run.err_lines
    assert "Firehose ingester exited: Ok(Ok(()))" in run.out
    assert "Error: CRITICAL: Firehose ingester exited unexpectedly." in run.stderr


def test_task_panic_banner_and_join_error(debug_image: str) -> None:
    """task-panic: the hook's banner on stderr, a JoinError::Panic result, exit 1."""
    run = run_container(debug_image, base_env(STANDIN_SCENARIO="task-panic"))
    assert run.rc == 1
    lines = run.err_lines
    start = lines.index("FATAL PANIC OCCURRED")
    assert lines[start - 1] == lines[start + 1] == EQ80
    assert lines[start + 2] == "Location: rsky-ingester/src/labeler.rs:123:45"
    assert lines[start + 3] == f"Message: {UNWRAP}"
    assert "Backtrace:" in lines
    assert f'[EXIT-TRACE] Labeler result: Err(JoinError::Panic(Id(6), "{UNWRAP}", ..))' in lines
    assert "panicked at" not in run.stderr  # the hook replaces Rust's default text


def test_host_panic_caught_by_run_fn(debug_image: str) -> None:
    """host-panic: run_labeler logs the JoinError, the family ends with Ok(Err(..)), exit 1."""
    run = run_container(debug_image, base_env(STANDIN_SCENARIO="host-panic"))
    assert run.rc == 1
    assert "FATAL PANIC OCCURRED" in run.err_lines
    assert (
        f'CRITICAL: Labeler task 0 panicked or was cancelled: JoinError::Panic(Id(9), "{UNWRAP}",'
        " ..)\nThis indicates a serious error." in run.out
    )
    assert (
        "[EXIT-TRACE] Labeler result: Ok(Err(CRITICAL: All labeler tasks exited. "
        "This should never happen.))" in run.err_lines
    )


@pytest.mark.parametrize(
    "env",
    [
        {"STANDIN_SCENARIO": "main-panic"},
        {"STANDIN_SCENARIO": "task-panic", "INGESTER_MODE": "labeler"},
    ],
    ids=["main-panic", "single-mode-task-panic"],
)
def test_main_thread_panic_exits_101(debug_image: str, env: dict[str, str]) -> None:
    """A panic on the main thread ends the process with 101 and no `Error:` line."""
    run = run_container(debug_image, base_env(**env))
    assert run.rc == 101
    assert "FATAL PANIC OCCURRED" in run.err_lines
    assert not any(line.startswith("Error:") for line in run.err_lines)


def test_silent_exit_logs_nothing(debug_image: str) -> None:
    """silent-exit: exit 1 with nothing after the breadcrumb `Entering tokio::select!`."""
    run = run_container(debug_image, base_env(STANDIN_SCENARIO="silent-exit"))
    assert run.rc == 1
    assert run.traces[-1] == "[EXIT-TRACE] Entering tokio::select! with all three tasks"
    assert run.err_lines == run.traces
    assert "CRITICAL" not in run.out
    assert "ERROR" not in run.out


# ------------------------------------------------------------------ production build ---


@pytest.mark.parametrize(
    ("scenario", "backtrace", "thread", "where"),
    [
        ("task-panic", "0", "tokio-runtime-worker", "rsky-ingester/src/labeler.rs:123:45"),
        ("task-panic", "1", "tokio-runtime-worker", "rsky-ingester/src/labeler.rs:123:45"),
        ("main-panic", "0", "main", "rsky-ingester/src/bin/ingester.rs:152:38"),
    ],
)
def test_production_build_default_panic_text(
    standin_images: StandinImages, scenario: str, backtrace: str, thread: str, where: str
) -> None:
    """rsky-ingester:latest has no [EXIT-TRACE] and prints Rust's default panic message."""
    run = run_container(standin_images.prod_image, base_env(STANDIN_SCENARIO=scenario, RUST_BACKTRACE=backtrace))
    assert run.rc == (101 if thread == "main" else 1)
    assert "EXIT-TRACE" not in run.stderr + run.stdout
    assert "FATAL PANIC" not in run.stderr
    lines = run.err_lines
    at = lines.index(f"thread '{thread}' panicked at {where}:")
    if scenario == "task-panic":
        assert lines[at + 1] == UNWRAP
    if backtrace == "1":
        assert lines[at + 2] == "stack backtrace:"
    else:
        assert lines[at + 2] == ("note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace")


def test_production_build_task_error(standin_images: StandinImages) -> None:
    """Production task-error: CRITICAL lines and `Error:` (with anyhow's backtrace), no traces."""
    run = run_container(standin_images.prod_image, base_env(STANDIN_SCENARIO="task-error", RUST_BACKTRACE="1"))
    assert run.rc == 1
    assert "EXIT-TRACE" not in run.stdout + run.stderr
    assert "Labeler ingester exited: Ok(Err(CRITICAL: All labeler tasks exited." in run.out
    lines = run.err_lines
    at = lines.index(
        "Error: CRITICAL: Labeler ingester exited unexpectedly. This should never happen. Check logs for details."
    )
    assert lines[at + 1 : at + 3] == ["", "Stack backtrace:"]


def test_output_format_and_secrets(standin_images: StandinImages) -> None:
    """stdout is tracing's format (ANSI on by default, off with NO_COLOR); REDIS_URL whole."""
    coloured = run_container(standin_images.prod_image, base_env(STANDIN_SCENARIO="silent-exit"))
    first = coloured.stdout.splitlines()[0]
    assert re.fullmatch(
        r"\x1b\[2m\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\x1b\[0m \x1b\[32m INFO\x1b\[0m "
        r"\x1b\[2mingester\x1b\[0m\x1b\[2m:\x1b\[0m Starting rsky-ingester",
        first,
    )
    plain = run_container(standin_images.prod_image, base_env(STANDIN_SCENARIO="silent-exit", NO_COLOR="1"))
    assert "\x1b" not in plain.stdout
    lines = plain.stdout.splitlines()
    assert all(TRACING.match(line) for line in lines), lines
    assert f'redis_url: "redis://:{REDIS_PASSWORD}@redis:6379"' in lines[3]
    assert "Starting firehose ingesters for 2 hosts" in plain.stdout
    assert f"Starting LabelerIngester for {LABELER}" in plain.stdout


def test_healthcheck_argv(standin_images: StandinImages) -> None:
    """`/ingester --healthcheck` exits 0 at once (the compose healthcheck of the sidecar)."""
    run = run_container(standin_images.prod_image, {}, args=("--healthcheck",))
    assert run.rc == 0
    assert run.stdout == run.stderr == ""


# ---------------------------------------------------------------- long-running modes ---


def _detached(image: str, env: Mapping[str, str], memory: str | None = None) -> str:
    name = f"ict-run-{uuid.uuid4().hex[:10]}"
    argv = ["docker", "run", "-d", "--name", name, "--network", "none"]
    argv += [f"-e{k}={v}" for k, v in env.items()]
    argv += ["--memory", memory] if memory else []
    subprocess.run([*argv, image], check=True, capture_output=True)
    return name


def test_healthy_keeps_running(standin_images: StandinImages) -> None:
    """healthy: still running after a few seconds, processing lines from all three families."""
    name = _detached(standin_images.prod_image, base_env(NO_COLOR="1"))
    try:
        time.sleep(2.5)
        state = json.loads(
            subprocess.run(
                ["docker", "inspect", "-f", "{{json .State}}", name],
                check=True, capture_output=True, text=True,
            ).stdout
        )  # fmt: skip
        logs = subprocess.run(["docker", "logs", name], check=True, capture_output=True, text=True)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    assert state["Running"] is True
    assert "EXIT-TRACE" not in logs.stderr
    for target, text in [
        ("rsky_ingester::firehose", "Write task received batch of 500 events"),
        ("rsky_ingester::backfill", "repos, cursor: did:plc:"),
        ("rsky_ingester::labeler", "labels from"),
    ]:
        assert f" INFO {target}: " in logs.stdout and text in logs.stdout, target
    # A reconnect WARN, and an ERROR whose second line has no prefix.
    assert re.search(
        r" WARN rsky_ingester::firehose: FirehoseIngester connection for \S+ closed gracefully\. "
        r"Reconnecting in 5 seconds\.\.\.$",
        logs.stdout,
        re.M,
    )
    assert re.search(
        r"ERROR rsky_ingester::firehose: FirehoseIngester connection error for \S+: "
        r"WebSocket\(ConnectionClosed\)\nRetrying in 5 seconds\.\.\.$",
        logs.stdout,
        re.M,
    )


def _mem_bytes(name: str) -> float:
    usage = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", name],
        check=True, capture_output=True, text=True,
    ).stdout.split("/")[0].strip()  # fmt: skip
    number, unit = re.fullmatch(r"([\d.]+)\s*([KMG]?i?B)", usage).groups()  # type: ignore[union-attr]
    return float(number) * {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[unit]


def test_leak_grows_without_dying(standin_images: StandinImages) -> None:
    """leak: memory climbs but the process is not killed within the test's few seconds."""
    name = _detached(
        standin_images.prod_image, base_env(STANDIN_SCENARIO="leak", STANDIN_LEAK_KB_PER_S="4096"),
        memory="64m",
    )  # fmt: skip
    try:
        time.sleep(1.0)
        before = _mem_bytes(name)
        time.sleep(2.5)
        after = _mem_bytes(name)
        running = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Running}}", name],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    assert running == "true"
    assert after - before > 4 * 2**20, (before, after)


def test_oom_kill_under_mem_limit(stack_factory: StackFactory) -> None:
    """oom under mem_limit 64m: OOMKilled, 137, an `oom` event, a dmesg line for this container."""
    stack = stack_factory("oom", restart="no", env={"NO_COLOR": "1"})
    since = time.time() - 1
    stack.up()
    pid = stack.wait_running()
    cid = stack.container_id()
    state = stack.wait_exited(timeout=60)
    assert state["OOMKilled"] is True
    assert state["ExitCode"] == 137
    assert state["Error"] == ""
    actions = [e["Action"] for e in stack.events(since)]
    assert "oom" in actions and actions.index("oom") < actions.index("die"), actions
    logs = stack.logs()
    counts = [int(n) for n in re.findall(r"Memory metrics: (\d+) events in-flight", logs.stdout)]
    assert len(counts) >= 3 and counts == sorted(counts) and counts[-1] > counts[0]
    assert "Backpressure active: stream_len=" in logs.stdout
    assert "EXIT-TRACE" not in logs.stderr  # production image
    dmesg = subprocess.run(["dmesg"], check=True, capture_output=True, text=True).stdout
    ours = [
        line for line in dmesg.splitlines()
        if (cid in line and "oom" in line.lower()) or f"Killed process {pid} " in line
    ]  # fmt: skip
    assert ours, f"no kernel OOM line for container {cid[:12]} / pid {pid}"


def test_host_kill9_is_restarted(stack_factory: StackFactory) -> None:
    """A host-side kill -9 of PID 1 exits 137, not OOM, and the restart policy restarts it."""
    stack = stack_factory("healthy")
    stack.up()
    since = time.time() - 1
    first = stack.kill9()
    assert stack.wait_restarts(1, timeout=30) >= 1
    second = stack.wait_running()
    assert second != first
    state = stack.inspect()["State"]
    assert state["OOMKilled"] is False
    dies = [e for e in stack.events(since) if e["Action"] == "die"]
    assert dies and dies[0]["Actor"]["Attributes"]["exitCode"] == "137"
    assert "oom" not in [e["Action"] for e in stack.events(since)]


def test_numbered_lines_survive_every_run(stack_factory: StackFactory) -> None:
    """Numbered mode: in `docker logs`, every run's lines 1..N, on their streams, none lost."""
    total = 400
    stack = stack_factory("task-error", exit_after_ms=100, env={"STANDIN_NUMBERED": str(total), "NO_COLOR": "1"})
    stack.up()
    stack.wait_restarts(3, timeout=60)
    logs = stack.logs()
    done = re.findall(r"^\[SEQ\] run=([0-9a-f]{8}) done total=(\d+)$", logs.stdout, re.M)
    assert len(done) >= 3
    for run_id, count in done:
        assert int(count) == total
        out = set(re.findall(rf"^\[SEQ\] run={run_id} n=(\d+)$", logs.stdout, re.M))
        err = set(re.findall(rf"^\[SEQ\] run={run_id} n=(\d+)$", logs.stderr, re.M))
        assert out == {str(k) for k in range(1, total + 1, 2)}, run_id
        assert err == {str(k) for k in range(2, total + 1, 2)}, run_id


# -------------------------------------------------------------------- stack layout ---


def test_stack_is_production_shaped(stack_factory: StackFactory) -> None:
    """Compose file order and keys, the git checkout one commit behind origin, the debug build."""
    stack = stack_factory("task-error", exit_after_ms=300)
    doc = yaml.safe_load(stack.compose_path.read_text())
    assert list(doc["services"]) == ["redis", SERVICE, "relay-monitor"]
    svc = doc["services"][SERVICE]
    assert svc["image"] == PROD_IMAGE
    assert svc["container_name"] == stack.container
    assert svc["restart"] == "unless-stopped"
    assert svc["mem_limit"] == "64m"
    assert svc["network_mode"] == "none"
    assert REDIS_PASSWORD in svc["environment"]["REDIS_URL"]
    assert stack.compose_path.read_text().startswith("#")
    assert stack.compose_path == stack.project_dir / stack.compose_file

    git = ["git", "-C", str(stack.project_dir)]
    branch = subprocess.run([*git, "rev-parse", "--abbrev-ref", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    assert branch == BRANCH
    pulled = subprocess.run([*git, "pull", "--ff-only", "origin", BRANCH], check=True,
                            capture_output=True, text=True)  # fmt: skip
    assert (stack.project_dir / "NOTES.md").is_file(), pulled.stdout + pulled.stderr

    image = stack.build_debug_image()
    env = subprocess.run(["docker", "image", "inspect", "-f", "{{json .Config.Env}}", image],
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    assert "STANDIN_INSTRUMENTED=1" in json.loads(env)


def test_swap_to_debug_image_shows_traces(stack_factory: StackFactory) -> None:
    """The runbook's swap on a live stack: production logs have no traces, debug ones do."""
    stack = stack_factory("task-error", exit_after_ms=300)
    stack.up()
    stack.wait_restarts(1, timeout=30)
    assert "EXIT-TRACE" not in stack.logs().stderr
    stack.build_debug_image()
    text = stack.compose_path.read_text()
    stack.compose_path.write_text(
        text.replace(f"image: {PROD_IMAGE}\n    container_name: {stack.container}",
                     f"image: {stack.debug_image}\n    container_name: {stack.container}")
    )  # fmt: skip
    stack.compose("up", "-d", SERVICE)
    stack.wait_restarts(1, timeout=30)
    assert stack.inspect()["Config"]["Image"] == stack.debug_image
    assert "[EXIT-TRACE] tokio::select! triggered on labeler_handle - EXIT PATH F" in (stack.logs().stderr.splitlines())


def test_cli_up_and_down(standin_images: StandinImages, tmp_path: Path) -> None:
    """`python -m tests.standin.stack up` prints the stack's JSON; `down` removes it."""
    from tests.standin.stack import main

    prefix = f"ict-cli-{uuid.uuid4().hex[:6]}"
    root = tmp_path / "demo"
    try:
        assert main(["up", "--root", str(root), "--scenario", "healthy", "--prefix", prefix]) == 0
        desc = json.loads((root / "stack.json").read_text())
        assert desc["container"] == f"{prefix}-rust-ingester"
        assert desc["debug_image"] == f"rsky-ingester:debug-{prefix}"
        assert Path(desc["compose_path"]).is_file()
        running = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}",
                                  desc["container"]], capture_output=True, text=True)  # fmt: skip
        assert running.stdout.strip() == "true"
    finally:
        assert main(["down", "--root", str(root)]) == 0
    gone = subprocess.run(["docker", "inspect", f"{prefix}-rust-ingester"], capture_output=True)
    assert gone.returncode != 0
