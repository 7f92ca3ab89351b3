"""The stand-in ingester and its stacks, in real containers on the real engine.

These tests pin what the rest of the suite relies on: each fault takes the path the real
rsky-ingester code takes (read from its source: host tasks retry forever, only the all-hosts-
panicked sequence or a configuration error ends ``run_*``, a contained panic keeps the process
running), in each build generation (``oldest``, ``hook``, ``debug``), with the real strings and
exit codes; the hypothetical paths of the seed stay available by their ``hypothetical-`` names;
OOM and host-side kills look like production's, and ``docker logs`` keeps every line of every run.
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

from standin.stack import (
    BRANCH,
    DEFAULT_RELAY_HOSTS,
    PROD_IMAGE,
    REDIS_PASSWORD,
    SCENARIO_ENV,
    SERVICE,
    Stack,
    standin_image,
)
from tests.support.stacks import StackFactory, StandinImages, sortable_stamp

pytestmark = pytest.mark.integration

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# tracing's default format with colours stripped: timestamp, level padded to 5, target.
TRACING = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z (ERROR| WARN| INFO) (?P<target>[\w:]+): (?P<msg>.*)$")
RELAYS = DEFAULT_RELAY_HOSTS  # three relays, as production
LABELER = "https://atproto.africa"
UNWRAP = "called `Option::unwrap()` on a `None` value"
EQ80 = "=" * 80
BAD_REDIS = SCENARIO_ENV["config-redis-url"]["REDIS_URL"]
REDIS_PARSE = "Redis URL did not parse- InvalidClientConfig"
# `docker logs --timestamps`: the daemon's RFC3339Nano stamp, then the line.
DOCKER_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z) (.*)$")


@dataclass(frozen=True)
class Run:
    """One finished container run: exit code, ``docker logs`` streams and final inspect."""

    rc: int
    stdout: str
    stderr: str
    inspect: dict[str, Any]
    merged: list[str]  # both streams, `docker logs --timestamps` order, stamps and colours removed

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

    @property
    def out_lines(self) -> list[str]:
        return self.out.splitlines()

    def first(self, text: str, lines: list[str] | None = None) -> int:
        """Index in ``lines`` (default :attr:`merged`) of the first line containing ``text``
        (ValueError if none).

        Lines that must follow one another are looked up in their own stream (`out_lines`,
        `err_lines`): Docker stamps stdout and stderr in two copiers, and under load their stamps
        do not order lines across the streams."""
        for i, line in enumerate(self.merged if lines is None else lines):
            if text in line:
                return i
        raise ValueError(f"{text!r} not in the log")


def _merged(name: str) -> list[str]:
    proc = subprocess.run(["docker", "logs", "--timestamps", name], check=True, capture_output=True, text=True)
    keyed = []
    for stream, text in ((0, proc.stdout), (1, proc.stderr)):
        for seq, line in enumerate(text.splitlines()):
            match = DOCKER_TS.match(line)
            stamp = sortable_stamp(match.group(1)) if match else ""
            keyed.append((stamp, stream, seq, ANSI.sub("", match.group(2) if match else line)))
    return [line for *_, line in sorted(keyed)]



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
        return Run(int(waited.stdout.strip()), logs.stdout, logs.stderr, inspect, _merged(name))
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def base_env(**extra: str) -> dict[str, str]:
    """The environment of a production-like run (three relays, one labeler, a short delay)."""
    env = {
        "INGESTER_RELAY_HOSTS": RELAYS,
        "INGESTER_LABELER_HOSTS": LABELER,
        "REDIS_URL": f"redis://:{REDIS_PASSWORD}@redis:6379",
        "RUST_LOG": "info,rsky_ingester=info",
        "STANDIN_EXIT_AFTER_MS": "300",
    }
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def image(standin_images: StandinImages) -> str:
    """This checkout's production image under its own tag (the shared tag may move under us)."""
    return standin_image()


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


def _detached(image: str, env: Mapping[str, str], memory: str | None = None) -> str:
    name = f"ict-run-{uuid.uuid4().hex[:10]}"
    argv = ["docker", "run", "-d", "--name", name, "--network", "none"]
    argv += [f"-e{k}={v}" for k, v in env.items()]
    argv += ["--memory", memory] if memory else []
    subprocess.run([*argv, image], check=True, capture_output=True)
    return name


def _wait_for_logs(name: str, pattern: str, count: int = 1, timeout: float = 30) -> str:
    """Poll ``docker logs`` until ``pattern`` has matched ``count`` times; return the stdout+stderr."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        proc = subprocess.run(["docker", "logs", name], check=True, capture_output=True, text=True)
        text = ANSI.sub("", proc.stdout + proc.stderr)
        if len(re.findall(pattern, text, re.M)) >= count:
            return text
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} seen fewer than {count} times in {timeout} s:\n{text[-3000:]}")


def _state(name: str) -> dict[str, Any]:
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{json .State}}", name], check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout))


def _critical_tasks(run: Run, title: str) -> list[int]:
    return [int(n) for n in re.findall(rf"CRITICAL: {title} task (\d+) panicked or was cancelled: ", run.out)]


# ------------------------------------------------------- all host tasks panicked ---


@pytest.mark.parametrize(
    ("build", "family", "hosts", "letter"),
    [("hook", "firehose", 3, "D"), ("debug", "firehose", 3, "D"), ("debug", "backfill", 3, "E"),
     ("debug", "labeler", 1, "F"), ("hook", "labeler", 1, "F")],
)  # fmt: skip
def test_all_panicked_sequence(image: str, build: str, family: str, hosts: int, letter: str) -> None:
    """A banner per host task, CRITICAL per task in task order, the select line, `Error:`, exit 1."""
    title = family.capitalize()
    run = run_container(image, base_env(STANDIN_SCENARIO="all-panicked", STANDIN_BUILD=build, STANDIN_FAMILY=family))
    assert run.rc == 1
    assert run.err_lines.count("FATAL PANIC OCCURRED") == hosts
    assert _critical_tasks(run, title) == list(range(hosts))
    out_lines = run.out_lines
    for i in range(hosts):
        critical = run.first(f"CRITICAL: {title} task {i} panicked or was cancelled: ", out_lines)
        assert re.fullmatch(
            rf".*ERROR ingester: CRITICAL: {title} task {i} panicked or was cancelled: "
            rf'JoinError::Panic\(Id\(\d+\), "{re.escape(UNWRAP)}", \.\.\.\)',
            out_lines[critical],
        ), out_lines[critical]
        assert out_lines[critical + 1] == "This indicates a serious error."
    # The whole sequence in order, stream by stream (Docker stamps stdout and stderr in two
    # copiers: under load their stamps do not order lines across the streams). stdout: every
    # CRITICAL, the select line, `exited`; stderr: every banner, the select breadcrumb, `Error:`.
    select = f"[EXIT-TRACE] tokio::select! triggered on {family}_handle - EXIT PATH {letter}"
    out_lines, err_lines = run.out.splitlines(), run.err_lines

    def at(lines: list[str], text: str) -> int:
        return next(i for i, line in enumerate(lines) if text in line)

    last_critical = at(out_lines, f"CRITICAL: {title} task {hosts - 1} panicked")
    exited = at(out_lines, f"{title} ingester exited: Ok(Err(CRITICAL: All {family} tasks exited. This should never")
    assert last_critical < exited
    last_banner = max(i for i, line in enumerate(err_lines) if line == "FATAL PANIC OCCURRED")
    error = at(err_lines, "Error: ")
    assert last_banner < error == len(err_lines) - 1, err_lines[-5:]
    assert err_lines[error] == (
        f"Error: CRITICAL: {title} ingester exited unexpectedly. This should never happen. Check logs for details."
    )
    if build == "debug":
        assert last_critical < at(out_lines, f"ERROR ingester: {select}") < exited
        assert last_banner < err_lines.index(select) < error
        assert run.traces[-2:] == [select, run.traces[-1]]
        assert run.traces[-1].startswith(f"[EXIT-TRACE] {title} result: Ok(Err(CRITICAL: All {family} tasks exited.")
    else:
        assert "EXIT-TRACE" not in run.stdout + run.stderr
    assert "CRITICAL: All" not in run.out.split(f"{title} ingester exited:")[0]  # run_* logs no line of its own


def test_all_panicked_single_mode(image: str) -> None:
    """In a single mode `?` returns the family's error: `Error: CRITICAL: All .. tasks exited`, no A."""
    run = run_container(
        image,
        base_env(STANDIN_SCENARIO="all-panicked", STANDIN_BUILD="debug", INGESTER_MODE="firehose", RUST_BACKTRACE="0"),
    )
    assert run.rc == 1
    assert _critical_tasks(run, "Firehose") == [0, 1, 2]
    assert run.traces == ["[EXIT-TRACE] About to run firehose mode"]
    assert run.err_lines[-1] == "Error: CRITICAL: All firehose tasks exited. This should never happen."


def test_oldest_build_swallows_the_panics(image: str) -> None:
    """b6b44b4f: Rust's default panic text, `let _ = task.await`, Ok(Ok(())), main returns Ok: exit 0."""
    run = run_container(image, base_env(STANDIN_SCENARIO="all-panicked", STANDIN_BUILD="oldest", RUST_BACKTRACE="0"))
    assert run.rc == 0
    lines = run.err_lines
    assert lines.count("thread 'tokio-runtime-worker' panicked at rsky-ingester/src/firehose.rs:123:45:") == 3
    at = lines.index("thread 'tokio-runtime-worker' panicked at rsky-ingester/src/firehose.rs:123:45:")
    assert lines[at + 1] == UNWRAP
    # the hint comes with the first panic of the process only
    assert lines.count("note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace") == 1
    assert "FATAL PANIC" not in run.stderr and "CRITICAL" not in run.out and "EXIT-TRACE" not in run.stderr
    assert "ERROR ingester: Firehose ingester exited: Ok(Ok(()))" in run.out
    assert not [line for line in lines if line.startswith("Error:")]


def test_rust_log_warn_hides_the_banner(image: str) -> None:
    """RUST_LOG=warn: no INFO line at all (no `Starting rsky-ingester`), the ERROR sequence intact."""
    run = run_container(image, base_env(STANDIN_SCENARIO="all-panicked", RUST_LOG="warn"))
    assert run.rc == 1
    assert " INFO " not in run.out and "Starting rsky-ingester" not in run.out
    assert "Configuration: IngesterConfig" not in run.out
    assert _critical_tasks(run, "Firehose") == [0, 1, 2]
    assert run.first("Error: CRITICAL: Firehose ingester exited unexpectedly.") > 0
    # the default filter (no RUST_LOG) shows the banner
    default = run_container(
        image, {k: v for k, v in base_env(STANDIN_SCENARIO="all-panicked").items() if k != "RUST_LOG"}
    )
    assert "INFO ingester: Starting rsky-ingester" in default.out


def test_cancelled_join_error_shape(image: str) -> None:
    """hypothetical-cancelled: tokio's `JoinError::Cancelled(Id(n))` shape, no banner."""
    run = run_container(image, base_env(STANDIN_SCENARIO="hypothetical-cancelled"))
    assert run.rc == 1
    assert "FATAL PANIC" not in run.stderr
    assert re.findall(r"CRITICAL: Firehose task (\d) panicked or was cancelled: JoinError::Cancelled\(Id\(\d+\)\)$",
                      run.out, re.M) == ["0", "1", "2"]  # fmt: skip


# ------------------------------------------------------------- contained, retried ---


def test_contained_panic_keeps_running(image: str) -> None:
    """One relay of three panics: its banner, no CRITICAL (task 0 is still awaited), still running."""
    name = _detached(image, base_env(STANDIN_SCENARIO="contained-panic", NO_COLOR="1"))
    try:
        _wait_for_logs(name, r"^FATAL PANIC OCCURRED$")
        # ordinary lines keep coming after the banner
        text = _wait_for_logs(name, r"^\S+  INFO rsky_ingester::firehose: Write task received batch", count=1)
        banner_at = text.index("FATAL PANIC OCCURRED")
        after = _wait_for_logs(name, r"Write task received batch|Processed \d+ repos", count=8)
        state = _state(name)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    assert state["Running"] is True and state["Restarting"] is False
    assert after.count("FATAL PANIC OCCURRED") == 1
    assert "Location: rsky-ingester/src/firehose.rs:123:45" in after
    assert "CRITICAL" not in after and "Error:" not in after
    assert banner_at >= 0


def test_retry_errors_never_end_a_task(image: str) -> None:
    """Every connection fails: logged and retried by each host task, forever; the process runs on."""
    name = _detached(image, base_env(STANDIN_SCENARIO="retry-errors", STANDIN_RETRY_MS="200", NO_COLOR="1"))
    try:
        text = _wait_for_logs(name, r"FirehoseIngester connection error for https://atproto\.africa: ", count=5)
        state = _state(name)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    assert state["Running"] is True
    assert re.search(
        r"ERROR rsky_ingester::firehose: FirehoseIngester connection error for https://relay1\.us-east\.bsky\.network: "
        r"Redis\(Connection refused \(os error 111\)\)\nRetrying in 5 seconds\.\.\.$",
        text,
        re.M,
    )
    backfill = r"BackfillIngester error for \S+: Redis\(Connection refused \(os error 111\)\)\nRetrying in 30 seconds"
    assert re.search(backfill, text)
    assert f"LabelerIngester connection error for {LABELER}: " in text
    assert "CRITICAL" not in text and "Error:" not in text and "FATAL PANIC" not in text


# ------------------------------------------------------------- configuration errors ---


@pytest.mark.parametrize("build", ["hook", "debug"])
def test_config_redis_url_all_mode(image: str, build: str) -> None:
    """REDIS_URL without redis://: X::new(config)? fails at once, no task starts, no CRITICAL task line."""
    run = run_container(image, base_env(STANDIN_SCENARIO="config-redis-url", REDIS_URL=BAD_REDIS, STANDIN_BUILD=build,
                                        RUST_BACKTRACE="1"))  # fmt: skip
    assert run.rc == 1
    # the Configuration line prints the URL whole, password included
    assert f'Configuration: IngesterConfig {{ redis_url: "{BAD_REDIS}", relay_hosts: [' in run.out
    assert REDIS_PASSWORD in BAD_REDIS and "redis://" not in BAD_REDIS
    assert "Starting FirehoseIngester" not in run.out and "FATAL PANIC" not in run.stderr
    assert not _critical_tasks(run, "Firehose")
    match = re.search(r"ERROR ingester: (Firehose|Backfill|Labeler) ingester exited: Ok\(Err\(Redis error: "
                      + re.escape(REDIS_PARSE) + r"$", run.out, re.M)  # fmt: skip
    assert match, run.out
    title = match.group(1)
    # (each block is one write to its own stream: tracing's on stdout, Rust's `Error:` on stderr)
    out_lines, err_lines = run.out_lines, run.err_lines
    at = run.first(f"{title} ingester exited: Ok(Err(Redis error: {REDIS_PARSE}", out_lines)
    assert out_lines[at + 1 : at + 4] == ["", "Caused by:", f"    {REDIS_PARSE}"]
    assert out_lines[at + 5] == "Stack backtrace:"
    error = run.first("Error: ", err_lines)
    assert err_lines[error] == (
        f"Error: CRITICAL: {title} ingester exited unexpectedly. This should never happen. Check logs for details."
    )
    assert err_lines[error + 1 : error + 3] == ["", "Stack backtrace:"]
    if build == "debug":
        assert re.search(rf"\[EXIT-TRACE\] tokio::select! triggered on {title.lower()}_handle - EXIT PATH [DEF]$",
                         run.stderr, re.M)  # fmt: skip
    else:
        assert "EXIT-TRACE" not in run.stderr


def test_config_redis_url_single_mode(image: str) -> None:
    """In a single mode the `?` hands main the redis error: `Error: Redis error: ..` + `Caused by:`."""
    run = run_container(image, base_env(REDIS_URL=BAD_REDIS, INGESTER_MODE="labeler", RUST_BACKTRACE="0"))
    assert run.rc == 1
    assert run.err_lines == [f"Error: Redis error: {REDIS_PARSE}", "", "Caused by:", f"    {REDIS_PARSE}"]
    assert "Starting labeler ingesters for 1 hosts" in run.out


def test_config_redis_url_picks_d_e_or_f_at_random(image: str) -> None:
    """Every family fails at once in all mode, so select reports D, E or F at random from run to run."""
    letters: list[str] = []
    for _ in range(15):
        run = run_container(image, base_env(REDIS_URL=BAD_REDIS, STANDIN_BUILD="debug", RUST_BACKTRACE="0"))
        assert run.rc == 1
        found = re.findall(
            r"^\[EXIT-TRACE\] tokio::select! triggered on \w+_handle - EXIT PATH ([A-Z])$", run.stderr, re.M
        )
        assert len(found) == 1, run.stderr
        letters.append(found[0])
        if len(set(letters)) >= 2:
            break
    assert set(letters) <= {"D", "E", "F"}
    assert len(set(letters)) >= 2, letters


@pytest.mark.parametrize(("labeler", "letters"), [(LABELER, "DE"), ("", "GH")])
def test_config_no_relays(image: str, labeler: str, letters: str) -> None:
    """INGESTER_RELAY_HOSTS="": 0 hosts, run_firehose/run_backfill return Err(All .. exited) at once."""
    run = run_container(image, base_env(INGESTER_RELAY_HOSTS="", INGESTER_LABELER_HOSTS=labeler, STANDIN_BUILD="debug",
                                        RUST_BACKTRACE="0"))  # fmt: skip
    assert run.rc == 1
    assert "Starting firehose ingesters for 0 hosts" in run.out
    assert "relay_hosts: []" in run.out
    assert "CRITICAL: Firehose task" not in run.out and "CRITICAL: Backfill task" not in run.out
    path = re.findall(r"EXIT PATH ([A-Z])$", "\n".join(run.traces), re.M)
    assert len(path) == 1 and path[0] in letters, run.traces
    assert re.search(r"ingester exited: Ok\(Err\(CRITICAL: All (firehose|backfill) tasks exited\. This should never "
                     r"happen\.\)\)$", run.out, re.M)  # fmt: skip


@pytest.mark.parametrize("build", ["hook", "debug"])
def test_config_unknown_mode(image: str, build: str) -> None:
    """Unknown INGESTER_MODE: error! line, std::process::exit(1), no `Error:` line (EXIT PATH I: debug only)."""
    mode = SCENARIO_ENV["config-unknown-mode"]["INGESTER_MODE"]
    run = run_container(image, base_env(INGESTER_MODE=mode, STANDIN_BUILD=build))
    assert run.rc == 1
    assert f"ERROR ingester: Unknown INGESTER_MODE: {mode}" in run.out
    assert not [line for line in run.err_lines if line.startswith("Error:")]
    assert "Starting firehose ingesters" not in run.out
    if build == "debug":
        assert run.err_lines == [f"[EXIT-TRACE] Unknown INGESTER_MODE: {mode} - EXIT PATH I"]
    else:
        assert run.stderr == ""


def test_config_metrics_port(image: str) -> None:
    """METRICS_PORT not a number (debug build, 13f9a6b7): main-thread panic through the hook, 101."""
    port = SCENARIO_ENV["config-metrics-port"]["METRICS_PORT"]
    run = run_container(image, base_env(METRICS_PORT=port, STANDIN_BUILD="debug"))
    assert run.rc == 101
    lines = run.err_lines
    at = lines.index("FATAL PANIC OCCURRED")
    assert lines[at + 2] == "Location: rsky-ingester/src/bin/ingester.rs:79:10"
    assert lines[at + 3] == "Message: METRICS_PORT must be a valid port number: ParseIntError { kind: InvalidDigit }"
    assert "thread" not in lines[at + 2]  # the hook never names the thread
    assert not [line for line in lines if line.startswith("Error:")]
    assert "Metrics initialized" in run.out and "Configuration:" not in run.out
    # the hook build (2f7ec42a) has no metrics server and never reads METRICS_PORT
    hook = run_container(image, base_env(METRICS_PORT=port, STANDIN_SCENARIO="all-panicked", STANDIN_BUILD="hook"))
    assert hook.rc == 1 and "Metrics initialized" not in hook.out
    assert _critical_tasks(hook, "Firehose") == [0, 1, 2]


def test_binary_cannot_start(image: str, debug_image: str) -> None:
    """A glibc mismatch: the loader's one line on stderr, exit 1, no Rust output; a source build starts."""
    run = run_container(image, base_env(STANDIN_SCENARIO="binary-cannot-start"))
    assert run.rc == 1
    assert run.stdout == ""
    assert run.err_lines == [
        "/usr/local/bin/ingester: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.39' not found "
        "(required by /usr/local/bin/ingester)"
    ]
    name = _detached(debug_image, base_env(STANDIN_SCENARIO="binary-cannot-start"))
    try:
        text = _wait_for_logs(name, r"Write task received batch")
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    assert "GLIBC" not in text


# ------------------------------------------------------------------- formats ---


def test_long_backtrace_line_split_by_docker(image: str) -> None:
    """The hook's one-line `Backtrace [..]` passes 16 KiB: Docker stores it as two entries."""
    env = base_env(
        STANDIN_SCENARIO="all-panicked",
        RUST_BACKTRACE="1",
        STANDIN_BACKTRACE_FRAMES="100",
        INGESTER_RELAY_HOSTS="https://atproto.africa",
        NO_COLOR="1",
    )
    name = _detached(image, env)
    try:
        subprocess.run(["docker", "wait", name], check=True, capture_output=True, timeout=30)
        plain = subprocess.run(["docker", "logs", name], check=True, capture_output=True, text=True).stderr
        stamped = subprocess.run(
            ["docker", "logs", "--timestamps", name], check=True, capture_output=True, text=True
        ).stderr
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    long = [line for line in plain.splitlines() if line.startswith("Backtrace [")]
    assert len(long) == 1 and long[0].endswith('{ fn: "clone3" }]')
    assert len(long[0].encode()) > 16 * 1024
    # With timestamps each partial entry carries its own stamp: a second one inside the line,
    # after exactly 16 KiB of the message.
    line = next(line for line in stamped.splitlines() if "Backtrace [" in line)
    parts = re.split(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z) ", line)
    assert parts[0] == "" and len(parts) == 5, [p[:40] for p in parts]
    first, second = parts[2], parts[4]
    assert len(first.encode()) == 16 * 1024
    assert first + second == long[0]


def test_backtrace_only_with_rust_backtrace(image: str) -> None:
    """anyhow prints `Stack backtrace:` after `Error:` only when RUST_BACKTRACE is set and not 0."""
    for value, expected in (("1", True), ("full", True), ("0", False)):
        run = run_container(
            image, base_env(STANDIN_SCENARIO="all-panicked", STANDIN_FAMILY="labeler", RUST_BACKTRACE=value)
        )
        assert ("Stack backtrace:" in run.err_lines) is expected, value
    short = [line for line in run.err_lines if line.startswith("Backtrace [")]
    assert short and len(short[0]) < 2048


def test_output_format_and_secrets(image: str) -> None:
    """stdout is tracing's format (ANSI on by default, off with NO_COLOR); REDIS_URL whole."""
    coloured = run_container(image, base_env(STANDIN_SCENARIO="hypothetical-silent-exit"))
    first = coloured.stdout.splitlines()[0]
    assert re.fullmatch(
        r"\x1b\[2m\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\x1b\[0m \x1b\[32m INFO\x1b\[0m "
        r"\x1b\[2mingester\x1b\[0m\x1b\[2m:\x1b\[0m Starting rsky-ingester",
        first,
    )
    plain = run_container(image, base_env(STANDIN_SCENARIO="hypothetical-silent-exit", NO_COLOR="1"))
    assert "\x1b" not in plain.stdout
    lines = plain.stdout.splitlines()
    assert all(TRACING.match(line) for line in lines), lines
    relays = ", ".join(f'"{h}"' for h in RELAYS.split(","))
    assert lines[1].endswith(
        f'Configuration: IngesterConfig {{ redis_url: "redis://:{REDIS_PASSWORD}@redis:6379", relay_hosts: [{relays}], '
        f'labeler_hosts: ["{LABELER}"], high_water_mark: 100000, batch_size: 500, batch_timeout_ms: 1000 }}'
    )
    assert "Starting firehose ingesters for 3 hosts" in plain.stdout
    assert f"Starting LabelerIngester for {LABELER}" in plain.stdout


# ------------------------------------------------------- the seed's hypothetical paths ---

# (letter, env, the [EXIT-TRACE] line naming the path)
EXIT_PATHS = [
    ("A", {"INGESTER_MODE": "firehose", "STANDIN_SCENARIO": "hypothetical-single-mode"},
     "[EXIT-TRACE] Firehose mode exited - EXIT PATH A"),
    ("B", {"INGESTER_MODE": "backfill", "STANDIN_SCENARIO": "hypothetical-task-ok"},
     "[EXIT-TRACE] Backfill mode exited - EXIT PATH B"),
    ("C", {"INGESTER_MODE": "labeler", "STANDIN_SCENARIO": "hypothetical-task-ok"},
     "[EXIT-TRACE] Labeler mode exited - EXIT PATH C"),
    ("D", {"STANDIN_SCENARIO": "hypothetical-task-error", "STANDIN_TASK": "firehose"},
     "[EXIT-TRACE] tokio::select! triggered on firehose_handle - EXIT PATH D"),
    ("E", {"STANDIN_SCENARIO": "hypothetical-task-error", "STANDIN_TASK": "backfill"},
     "[EXIT-TRACE] tokio::select! triggered on backfill_handle - EXIT PATH E"),
    ("F", {"STANDIN_SCENARIO": "hypothetical-task-error", "STANDIN_TASK": "labeler"},
     "[EXIT-TRACE] tokio::select! triggered on labeler_handle - EXIT PATH F"),
    ("G", {"STANDIN_SCENARIO": "hypothetical-task-error", "STANDIN_TASK": "firehose", "INGESTER_LABELER_HOSTS": ""},
     "[EXIT-TRACE] tokio::select! triggered on firehose_handle (no labeler) - EXIT PATH G"),
    ("H", {"STANDIN_SCENARIO": "hypothetical-task-error", "STANDIN_TASK": "backfill", "INGESTER_LABELER_HOSTS": ""},
     "[EXIT-TRACE] tokio::select! triggered on backfill_handle (no labeler) - EXIT PATH H"),
    ("Z", {"STANDIN_SCENARIO": "hypothetical-impossible"},
     "[EXIT-TRACE] IMPOSSIBLE: Reached end of main() after match - EXIT PATH Z"),
]  # fmt: skip


@pytest.mark.parametrize(("letter", "env", "trace"), EXIT_PATHS, ids=[p[0] for p in EXIT_PATHS])
def test_hypothetical_exit_path(debug_image: str, letter: str, env: dict[str, str], trace: str) -> None:
    """The debug image names each hypothetical exit path on stderr and, as an ERROR line, on stdout."""
    run = run_container(debug_image, base_env(**env))
    assert run.rc == 1
    assert trace in run.err_lines
    error_lines = [m for m in map(TRACING.match, run.out.splitlines()) if m]
    assert any(m[1] == "ERROR" and m["target"] == "ingester" and m["msg"] == trace for m in error_lines)
    assert [line for line in run.err_lines if line.startswith("Error: ")], run.stderr
    if letter in "DEFGH":
        after = run.traces[run.traces.index(trace) + 1]
        assert re.fullmatch(r"\[EXIT-TRACE\] (Firehose|Backfill|Labeler) result: Ok\(Err\(.*\)\)", after)


@pytest.mark.parametrize(
    ("scenario", "rc"),
    [("hypothetical-main-panic", 101), ("hypothetical-task-panic", 1), ("hypothetical-silent-exit", 1)],
)
def test_hypothetical_endings(image: str, scenario: str, rc: int) -> None:
    """The seed's other endings stay available, under names that say they are hypothetical."""
    run = run_container(image, base_env(STANDIN_SCENARIO=scenario, STANDIN_BUILD="debug"))
    assert run.rc == rc
    if scenario == "hypothetical-silent-exit":
        assert run.err_lines == run.traces and "ERROR" not in run.out
    else:
        assert "FATAL PANIC OCCURRED" in run.err_lines
    # the seed's names are accepted as aliases
    alias = run_container(image, base_env(STANDIN_SCENARIO=scenario[len("hypothetical-") :], STANDIN_BUILD="debug"))
    assert alias.rc == rc


# ------------------------------------------------------------- build generations ---


def test_debug_image_pins_its_build(debug_image: str) -> None:
    """The image built from the source tree is the debug build whatever STANDIN_BUILD the compose file sets."""
    run = run_container(debug_image, base_env(STANDIN_SCENARIO="all-panicked", STANDIN_BUILD="oldest"))
    assert run.rc == 1
    assert "[EXIT-TRACE] Running in 'all' mode" in run.traces
    assert "FATAL PANIC OCCURRED" in run.err_lines


def test_stack_plants_each_fault(stack_factory: StackFactory) -> None:
    """The config-* scenarios plant their fault in the compose env; env and build override."""
    for scenario, planted in SCENARIO_ENV.items():
        env = stack_factory(scenario, write=False).ingester_env()
        for key, value in planted.items():
            assert env[key] == value, (scenario, key)
        assert "STANDIN_BUILD" not in env
    stack = stack_factory("config-redis-url", build="oldest", env={"RUST_LOG": "warn", "REDIS_URL": "redis"})
    doc = yaml.safe_load(stack.compose_path.read_text())
    env = doc["services"][SERVICE]["environment"]
    assert env["STANDIN_BUILD"] == "oldest" and env["RUST_LOG"] == "warn" and env["REDIS_URL"] == "redis"
    assert Stack.load(stack.root).build == "oldest"
    with pytest.raises(ValueError, match="unknown scenario"):
        stack_factory("no-such-scenario", write=False)
    with pytest.raises(ValueError, match="build must be one of"):
        stack_factory("healthy", build="newest", write=False)


# ---------------------------------------------------------------- long-running modes ---


def test_healthcheck_argv(image: str) -> None:
    """`/ingester --healthcheck` exits 0 at once (the compose healthcheck of the sidecar)."""
    run = run_container(image, {}, args=("--healthcheck",))
    assert run.rc == 0
    assert run.stdout == run.stderr == ""


# ---------------------------------------------------------------- long-running modes ---


def test_healthy_keeps_running(image: str) -> None:
    """healthy: still running after a few seconds, processing lines from all three families."""
    name = _detached(image, base_env(NO_COLOR="1"))
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


def test_leak_grows_without_dying(image: str) -> None:
    """leak: memory climbs but the process is not killed within the test's few seconds."""
    name = _detached(
        image, base_env(STANDIN_SCENARIO="leak", STANDIN_LEAK_KB_PER_S="4096"),
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
    stack = stack_factory(
        "hypothetical-task-error", exit_after_ms=100, env={"STANDIN_NUMBERED": str(total), "NO_COLOR": "1"}
    )
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
    stack = stack_factory("all-panicked", exit_after_ms=300)
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
    assert "STANDIN_SOURCE_BUILD=debug" in json.loads(env)


def test_swap_to_debug_image_shows_traces(stack_factory: StackFactory) -> None:
    """The runbook's swap on a live stack: production logs have no traces, debug ones do."""
    stack = stack_factory("all-panicked", exit_after_ms=300, env={"STANDIN_FAMILY": "labeler"})
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
    """`python -m standin.stack up` prints the stack's JSON; `down` removes it."""
    from standin.stack import main

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


# ------------------------------------------------------------------ recorded fixtures ---

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded"


def test_recorded_fixtures_are_whole() -> None:
    """Each recorded log has its .json (the interface's keys), a README line, and stays small."""
    logs = sorted(RECORDED.glob("*.log"))
    assert len(logs) >= 15
    readme = (RECORDED / "README.md").read_text()
    for log in logs:
        meta = json.loads(log.with_suffix(".json").read_text())
        assert set(meta) == {"scenario", "build", "env", "runs", "exit_codes", "oom_killed", "how"}, log.name
        assert meta["build"] in ("oldest", "hook", "debug")
        assert meta["runs"] >= 1 and len(meta["exit_codes"]) in (meta["runs"], meta["runs"] - 1), log.name
        assert REDIS_PASSWORD not in json.dumps(meta["env"])
        assert log.stat().st_size < 200 * 1024
        assert f"- `{log.stem}` (" in readme
        # every line carries Docker's timestamp
        assert all(DOCKER_TS.match(line) for line in log.read_text().splitlines()), log.name
