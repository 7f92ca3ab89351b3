"""Rules from runs to a verdict: scenario, root causes ranked, the six questions, next steps.

Pure: reads `Run` records and a little context, never text or files. `Accumulator` consumes runs
one at a time and keeps bounded state (counters, one float per run for intervals, a capped sample
of runs in detail), so a log with thousands of runs costs no more memory than one with ten.
"""

from __future__ import annotations

import re
import statistics
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import advice
from .advice import Step
from .inputs import Coverage, MemoryInput
from .runs import Cite, ContainedPanic, Run, StartupFacts

SCENARIOS = (
    "task-error",
    "panic",
    "task-returned-ok",
    "oom-kill",
    "external-kill",
    "config-error",
    "cannot-start",
    "impossible-path",
    "stable",
    "inconclusive",
)
CRASH_SCENARIOS = frozenset(SCENARIOS) - {"stable", "inconclusive"}
# Run-level outcomes that are not exits of the service: still running, or stopped by a person.
NOT_EXITS = ("running", "stopped")
MODES = ("firehose", "backfill", "labeler", "all")
PRODUCTION_INTERVAL = (20.0, 30.0)
# The production pattern is "every 20-30 s"; allow a fifth either side for backoff and jitter.
PATTERN_TOLERANCE = 0.2
KEEP_FIRST_RUNS = 20
KEEP_LAST_RUNS = 200
_CONFIG_WORDS = re.compile(r"config|environment|env var|INGESTER_|REDIS_URL|invalid|missing|must be set|parse", re.I)


@dataclass(frozen=True)
class RunVerdict:
    """How one run ended, in the investigation's terms."""

    scenario: str  # one of SCENARIOS, or "running" for a run still alive at the end
    reason: str


@dataclass(frozen=True)
class ConfigProblem:
    """A configuration error: which variable, its value as logged (redacted), what to do."""

    variable: str | None
    value: str | None
    detail: str
    next_step: str
    cite: Cite | None


_REDIS_URL_ERRORS = ("Redis URL did not parse", "InvalidClientConfig", "invalid URL", "Invalid URL")


def _all_error_texts(run: Run) -> list[str]:
    out: list[str] = []
    if run.error_exit is not None:
        out.append(run.error_exit.message)
        out.extend(run.error_exit.causes)
    if run.result_error:
        out.append(run.result_error)
    out.extend(c.text for c in run.criticals)
    return out


def config_problem(run: Run) -> ConfigProblem | None:
    """The configuration error this run died of, named from its own lines, or None.

    Read from the source: `Unknown INGESTER_MODE` (error! then exit(1)); `X::new(config)?` failing
    on REDIS_URL before any task starts; an empty relay list (`.. ingesters for 0 hosts`, then
    `All .. tasks exited` with no task having panicked); METRICS_PORT parsed with a panic on the
    main thread.
    """
    f = run.facts
    mode = f.unknown_mode
    if mode is None and run.exit_path == "I":
        for b in run.breadcrumbs:
            if "Unknown INGESTER_MODE:" in b:
                mode = b.split("Unknown INGESTER_MODE:", 1)[1].split(" - EXIT PATH", 1)[0].strip()
    if mode is not None or run.exit_path == "I":
        shown = f'"{mode}"' if mode is not None else "(not shown)"
        return ConfigProblem(
            "INGESTER_MODE",
            mode,
            f"INGESTER_MODE={shown} is not a mode the ingester knows: it logs the error and calls exit(1)",
            f"Set INGESTER_MODE to one of {', '.join(MODES)} (it is {shown}); every start fails "
            "the same way until it changes.",
            f.unknown_mode_cite or run.last_breadcrumb,
        )
    texts = _all_error_texts(run)
    redis = next((t for t in texts if any(e in t for e in _REDIS_URL_ERRORS)), None)
    variant = advice.redis_url_words(f.redis_url, redis) if redis is not None else None
    if redis is not None and variant is not None:
        return ConfigProblem("REDIS_URL", f.redis_url, variant[0], variant[1], f.config_cite or (
            Cite(run.error_exit.source, run.error_exit.line, "Error: " + run.error_exit.message)
            if run.error_exit else None))
    if redis is not None:
        shown = f'"{f.redis_url}"' if f.redis_url is not None else "(value not in this log: no Configuration line)"
        return ConfigProblem(
            "REDIS_URL",
            f.redis_url,
            f"REDIS_URL={shown} is not a Redis URL: redis-rs refuses it ({redis.strip()}) before any task starts",
            f"Fix REDIS_URL (it is {shown}): it must be a redis:// or rediss:// URL such as "
            "redis://redis:6379; no task starts until it parses, so Redis itself is not involved.",
            f.config_cite or (Cite(run.error_exit.source, run.error_exit.line, "Error: " + run.error_exit.message)
                              if run.error_exit else None),
        )
    if f.zero_hosts and not run.host_task_panics and (run.error_exit is not None or run.critical_count
                                                       or run.result_kind == "ok-err"):
        fams = " and ".join(f.zero_hosts)
        return ConfigProblem(
            "INGESTER_RELAY_HOSTS",
            "",
            f"INGESTER_RELAY_HOSTS is empty: {fams} started 0 host tasks and returned at once "
            "(`All .. tasks exited` with no task run)",
            "Set INGESTER_RELAY_HOSTS to a comma-separated list of relay URLs (it is empty); the "
            "exit is immediate and the same on every start.",
            f.config_cite,
        )
    p = run.panic
    if p is not None and p.message and ("METRICS_PORT" in p.message or (
            run.exit_code == 101 and "ParseIntError" in p.message)):
        return ConfigProblem(
            "METRICS_PORT",
            None,
            f"METRICS_PORT is not a port number: main panics parsing it ({p.message}), exit 101",
            "Set METRICS_PORT to a port number between 1 and 65535 (the default is 4100); the panic "
            "is on the main thread before any task starts.",
            Cite(p.source, p.line, p.text[:300]),
        )
    if (
        run.error_exit is not None
        and not (run.result_kind or run.critical_count or run.exit_path or _reached_tasks(run))
        and _CONFIG_WORDS.search(run.error_exit.message)
    ):
        msg = run.error_exit.message.splitlines()[0]
        return ConfigProblem(
            None,
            None,
            f"main returned Err before starting any task: {msg}",
            f"Fix the setting the error names ({msg}) in the service's environment.",
            Cite(run.error_exit.source, run.error_exit.line, "Error: " + msg),
        )
    return None


def classify_run(run: Run, *, oom_visible: bool = True) -> RunVerdict:
    """The scenario that explains this run's exit, strongest evidence first.

    `oom_visible` is False when no source that could show an OOM kill was read (no kernel log,
    no Docker events, no inspect): a SIGKILL is then not called an outside kill.
    """
    if not run.ended:
        return RunVerdict("running", "still running when the capture ended")
    code = run.exit_code
    if run.stopped_by_daemon:
        return RunVerdict(
            "stopped",
            f"exit {code}: stopped with the Docker daemon as it went down (and started again by its restart "
            "policy when the daemon came back), not a crash of the ingester",
        )
    if run.facts.loader_error is not None:
        return RunVerdict(
            "cannot-start",
            f"the binary cannot start: the dynamic loader says {run.facts.loader_error} (no Rust code ran)",
        )
    if run.oom:
        where = ", ".join(run.oom_sources) or "OOM evidence"
        return RunVerdict("oom-kill", f"killed by the OOM killer ({where})")
    problem = config_problem(run)
    if problem is not None:
        return RunVerdict("config-error", problem.detail)
    if run.exit_path == "Z":
        return RunVerdict("impossible-path", "reached the end of main() (EXIT PATH Z)")
    killed = code in (137, 143) or (code is not None and code > 128 and code != 134)
    if killed and run.error_exit is None and run.exit_path is None and run.panic is None:
        if run.stopped_by_operator:
            how = (
                "Compose's `Gracefully stopping...`"
                if run.facts.graceful_stop
                else "docker stop (SIGTERM, then SIGKILL)"
            )
            return RunVerdict("stopped", f"exit {code}: stopped by the operator ({how}), not a crash")
        if run.outside_restart:
            return RunVerdict("external-kill", advice.outside_restart_reason(run))
        if not oom_visible:
            return RunVerdict(
                "inconclusive",
                f"exit {code}: killed, but without the kernel log or Docker events an OOM kill "
                "cannot be told from an outside kill",
            )
        via = "the Docker API (kill event)" if run.kill_events else "outside Docker"
        return RunVerdict("external-kill", f"exit {code} with no OOM evidence: signal from {via}")
    if run.panic is not None or run.result_kind == "join-panic" or run.host_task_panics or code == 101:
        where = run.panic.location if run.panic and run.panic.location else "unknown location"
        swallowed = " (the oldest build swallows the task panics and exits 0)" if code == 0 else ""
        return RunVerdict("panic", f"panic at {where}{swallowed}")
    if run.result_kind == "ok-ok":
        return RunVerdict("task-returned-ok", "the task's run function returned Ok(())")
    kinds = set(run.critical_kinds)
    if "host-ok" in kinds and "host-error" not in kinds:
        return RunVerdict("task-returned-ok", "a host task returned Ok(()) from its infinite loop")
    if "task-completed" in kinds and "host-error" not in kinds and run.result_kind != "ok-err":
        return RunVerdict("task-returned-ok", "a host task completed, which it should never do")
    cancelled = advice.cancelled_reason(run)
    if cancelled is not None:
        return RunVerdict("task-error", cancelled)
    if run.result_kind == "ok-err" or "host-error" in kinds or run.error_exit is not None:
        return RunVerdict("task-error", "a task's run function returned an error")
    if run.result_kind == "join-cancelled":
        return RunVerdict("task-error", "a task was cancelled")
    if code == 0:
        return RunVerdict("inconclusive", "exit 0 with no explanation in the log")
    if code is None:
        return RunVerdict("inconclusive", "the run ended but no exit code or cause was recorded")
    return RunVerdict("inconclusive", f"exit {code} with no error logged")


def _reached_tasks(run: Run) -> bool:
    return any("Spawning" in b or "Entering tokio::select!" in b or "About to run" in b for b in run.breadcrumbs)


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answer: str
    answerable: bool
    needs_debug_build: bool


@dataclass(frozen=True)
class RootCause:
    id: str
    title: str
    likelihood: str  # high | medium | low | ruled-out
    score: float
    evidence: tuple[str, ...]
    next_step: str


@dataclass(frozen=True)
class Distribution:
    count: int
    min: float | None
    median: float | None
    max: float | None


def distribution(values: Iterable[float]) -> Distribution:
    vals = sorted(values)
    if not vals:
        return Distribution(0, None, None, None)
    return Distribution(len(vals), vals[0], statistics.median(vals), vals[-1])


@dataclass
class Accumulator:
    """Everything the verdict needs from the runs, in bounded memory."""

    runs_total: int = 0
    ended: int = 0
    partial_first: bool = False
    instrumented: bool = False
    scenarios: Counter[str] = field(default_factory=Counter)
    exit_codes: Counter[str] = field(default_factory=Counter)
    exit_paths: Counter[str] = field(default_factory=Counter)
    path_keys: Counter[tuple[str, str | None]] = field(default_factory=Counter)
    intervals: array[float] = field(default_factory=lambda: array("d"))
    durations: array[float] = field(default_factory=lambda: array("d"))
    slopes: array[float] = field(default_factory=lambda: array("d"))
    reached_limit: Counter[bool] = field(default_factory=Counter)
    panics: int = 0
    criticals: int = 0
    first: list[tuple[Run, RunVerdict]] = field(default_factory=list)
    last: deque[tuple[Run, RunVerdict]] = field(default_factory=lambda: deque(maxlen=KEEP_LAST_RUNS))
    latest_by_scenario: dict[str, tuple[Run, RunVerdict]] = field(default_factory=dict)
    prev_start: float | None = None
    unlogged_starts: int = 0
    kill_via_api: int = 0
    pressure_max: int | None = None
    oom_visible: bool = True
    stopped: int = 0
    daemon_stopped: int = 0
    contained: list[tuple[int, ContainedPanic]] = field(default_factory=list)
    contained_total: int = 0
    retries: int = 0
    retry_hosts: dict[str, None] = field(default_factory=dict)
    retry_cite: Cite | None = None
    config_problems: dict[str, tuple[int, ConfigProblem]] = field(default_factory=dict)
    write_dead: int = 0
    maxmemory: int = 0
    last_facts: StartupFacts | None = None
    outside_restarts: int = 0

    def add(self, run: Run) -> None:
        verdict = classify_run(run, oom_visible=self.oom_visible)
        self.runs_total += 1
        self.write_dead += run.facts.write_dead
        self.maxmemory += run.facts.maxmemory
        self.last_facts = run.facts
        if verdict.scenario == "external-kill" and run.outside_restart:
            self.outside_restarts += 1
        for cp in run.contained:
            self.contained_total += 1
            if len(self.contained) < 8:
                self.contained.append((run.index, cp))
        self.retries += run.facts.retries
        for h in run.facts.retry_hosts:
            if len(self.retry_hosts) < 8:
                self.retry_hosts[h] = None
        if self.retry_cite is None and run.facts.retry_cite is not None:
            self.retry_cite = run.facts.retry_cite
        if verdict.scenario == "config-error":
            problem = config_problem(run)
            if problem is not None:
                key = problem.variable or "?"
                n = self.config_problems.get(key, (0, problem))[0]
                self.config_problems[key] = (n + 1, problem)
        if verdict.scenario == "stopped" and run.stopped_by_daemon:
            self.daemon_stopped += 1
        elif verdict.scenario == "stopped":
            self.stopped += 1
        if run.index == 1 and run.partial:
            self.partial_first = True
        if run.breadcrumbs:
            self.instrumented = True
        if run.start is not None:
            if self.prev_start is not None and run.start >= self.prev_start:
                self.intervals.append(run.start - self.prev_start)
            self.prev_start = run.start
        self.unlogged_starts += run.unlogged_starts
        self.panics += run.panic_count
        self.criticals += run.critical_count
        if run.pressure_max is not None:
            self.pressure_max = max(self.pressure_max or 0, run.pressure_max)
        if run.mem_slope is not None and run.mem_samples >= 3:
            self.slopes.append(run.mem_slope)
        if run.reached_limit is not None:
            self.reached_limit[run.reached_limit] += 1
        if run.ended and verdict.scenario not in NOT_EXITS:
            self.ended += 1
            self.scenarios[verdict.scenario] += 1
            self.exit_codes[str(run.exit_code) if run.exit_code is not None else "unknown"] += 1
            if run.exit_path:
                self.exit_paths[run.exit_path] += 1
            if run.exit_path:
                self.path_keys[(run.exit_path, run.task)] += 1
            if run.duration is not None and not run.partial:
                self.durations.append(run.duration)
            if run.kill_events:
                self.kill_via_api += 1
            self.latest_by_scenario[verdict.scenario] = (run, verdict)
        pair = (run, verdict)
        if len(self.first) < KEEP_FIRST_RUNS:
            self.first.append(pair)
        else:
            self.last.append(pair)

    @property
    def kept(self) -> list[tuple[Run, RunVerdict]]:
        return self.first + list(self.last)

    @property
    def omitted(self) -> int:
        return self.runs_total - len(self.first) - len(self.last)


@dataclass(frozen=True)
class Memory:
    limit_bytes: int | None
    peak_bytes: int | None
    slope_bytes_per_second: float | None
    seconds_to_limit: float | None
    samples: int
    reaches_limit_at_exit: bool | None
    runs_at_limit: int
    runs_with_samples: int
    pressure_events_in_memory_max: int | None


@dataclass(frozen=True)
class Verdict:
    scenario: str
    task: str | None
    exit_path: str | None
    summary: str
    confidence: str
    evidence: tuple[Cite, ...]
    deterministic: bool | None
    determinism: str
    needs_debug_build: bool
    next_steps: tuple[str, ...]
    # each next step as data (what it is about, the command that checks it, whether it changes
    # production), in the order of next_steps
    advice: tuple[Step, ...] = ()


@dataclass(frozen=True)
class Diagnosis:
    verdict: Verdict
    representative: Run | None
    questions: tuple[Question, ...]
    root_causes: tuple[RootCause, ...]
    memory: Memory
    intervals: Distribution
    durations: Distribution
    acc: Accumulator


def _memory(acc: Accumulator, mem: MemoryInput) -> Memory:
    # Across restarts the series is a sawtooth: its overall slope says nothing. Use it only
    # when no run ended (one long run).
    if len(acc.slopes):
        slope: float | None = statistics.median(acc.slopes)
    else:
        slope = mem.series_slope if acc.ended == 0 else None
    to_limit: float | None = None
    if slope and slope > 0 and mem.limit_bytes and mem.last_bytes is not None:
        to_limit = max(0.0, (mem.limit_bytes - mem.last_bytes) / slope)
    at = acc.reached_limit[True]
    total = at + acc.reached_limit[False]
    return Memory(
        limit_bytes=mem.limit_bytes,
        peak_bytes=mem.peak_bytes,
        slope_bytes_per_second=slope,
        seconds_to_limit=to_limit,
        samples=mem.samples,
        reaches_limit_at_exit=(at > total / 2) if total else None,
        runs_at_limit=at,
        runs_with_samples=total,
        pressure_events_in_memory_max=acc.pressure_max,
    )


def _fmt_s(seconds: float | None) -> str:
    return "unknown" if seconds is None else f"{seconds:.1f} s"


_GENERIC = ("tasks exited", "exited unexpectedly")


def _error_text(run: Run) -> str | None:
    """The most specific error text: a host task's error beats "All tasks exited"."""
    found: list[str] = []
    if run.result_error:
        found.append(run.result_error)
    for c in run.criticals:
        if "exited with error:" in c.text:
            found.append(c.text.split("exited with error:", 1)[1].strip())
    if run.error_exit is not None:
        found.extend(run.error_exit.causes)
        found.append(run.error_exit.message.splitlines()[0])
    specific = [f for f in found if not any(g in f for g in _GENERIC)]
    pool = specific or found
    return pool[0] if pool else None


def diagnose(runs: Iterable[Run], memory: MemoryInput, coverage: Coverage) -> Diagnosis:
    """The verdict for a stream of runs."""
    acc = Accumulator(oom_visible=coverage.events or coverage.kernel or coverage.inspect)
    for run in runs:
        acc.add(run)
    return decide(acc, memory, coverage)


def decide(acc: Accumulator, memory: MemoryInput, coverage: Coverage) -> Diagnosis:
    """The verdict from accumulated runs (split out so tests can build an Accumulator)."""
    intervals = distribution(acc.intervals)
    durations = distribution(acc.durations)
    mem = _memory(acc, memory)
    crash = {s: n for s, n in acc.scenarios.items() if s in CRASH_SCENARIOS}
    if crash:
        scenario = max(crash, key=lambda s: (crash[s], s == "panic"))
    elif acc.ended:
        scenario = "inconclusive"
    elif acc.runs_total or coverage.events:
        scenario = "stable"
    else:
        scenario = "inconclusive"
    rep_pair = acc.latest_by_scenario.get(scenario)
    rep = rep_pair[0] if rep_pair else None
    rv = rep_pair[1] if rep_pair else None

    # determinism over ended runs: the same exit path (instrumented) and the same scenario
    det: bool | None = None
    determinism = "no run ended in the window"
    if acc.ended:
        same = acc.scenarios.get(scenario, 0)
        if acc.path_keys:
            (p, t), n = acc.path_keys.most_common(1)[0]
            who = f" ({t})" if t else ""
            determinism = f"same exit path {p}{who} in {n} of {acc.ended} completed runs"
            if same != acc.ended:
                determinism += f"; {scenario} in {same} of {acc.ended}"
            consistent = n == acc.ended and same == acc.ended
        else:
            determinism = f"same outcome ({scenario}) in {same} of {acc.ended} completed runs"
            consistent = same == acc.ended
        if scenario == "config-error" and same == acc.ended:
            determinism = f"the same configuration error in {same} of {acc.ended} completed runs"
            if len(acc.exit_paths) > 1:
                determinism += (f"; the exit path varies ({'/'.join(sorted(acc.exit_paths))}) only because "
                                "select! picks among families that all failed at once")
            consistent = True
        det = consistent if acc.ended >= 2 else None

    task = rep.task if rep else None
    single_mode = rep is not None and rep.mode is not None and scenario == "config-error"
    if scenario in ("config-error", "cannot-start") and not single_mode:
        task = None  # no task failed: in `all` mode select! names whichever family it saw first
    path = rep.exit_path if rep else None
    needs_debug = scenario == "inconclusive" and not acc.instrumented
    if scenario in ("task-error", "task-returned-ok", "panic") and not acc.instrumented:
        needs_debug = task is None
    if scenario == "panic" and rep is not None and rep.panic is not None:
        # Rust's default message already names where and why: the debug build adds no answer
        known = rep.panic.location not in (None, "unknown location")
        needs_debug = needs_debug and not (known and rep.panic.message)
    summary = _end_sentence(_summary(scenario, rep, rv, acc, mem, intervals))
    summary = _end_sentence(summary + _asides(scenario, acc))
    confidence = _confidence(scenario, rep, acc, coverage)
    evidence = tuple(rep.evidence[:12]) if rep else ()
    if scenario == "config-error" and rep is not None:
        problem = config_problem(rep)
        if problem is not None and problem.cite is not None and problem.cite not in evidence:
            evidence = (problem.cite, *evidence[:11])  # the line that shows the value first
    questions = _questions(scenario, rep, acc, durations, det, determinism)
    causes = _root_causes(scenario, rep, acc, mem)
    steps = _next_steps(scenario, rep, acc, mem, coverage, needs_debug, causes, intervals)
    verdict = Verdict(
        scenario,
        task,
        path,
        summary,
        confidence,
        evidence,
        det,
        determinism,
        needs_debug,
        steps,
        tuple(advice.describe(s) for s in steps),
    )
    return Diagnosis(verdict, rep, questions, causes, mem, intervals, durations, acc)


def _summary(
    scenario: str,
    rep: Run | None,
    rv: RunVerdict | None,
    acc: Accumulator,
    mem: Memory,
    intervals: Distribution,
) -> str:
    restarts = acc.ended
    every = f", every {intervals.median:.0f} s" if intervals.median else ""
    lead = f"{restarts} exit(s) in the window{every}: "
    same = acc.scenarios.get(scenario, 0)
    if restarts and 0 < same < restarts:
        lead += f"the most common outcome ({same} of {restarts} exits) is "
    if scenario == "stable" and acc.stopped:
        return "No crash in the window: the only exit was the operator's own stop."
    if scenario == "stable" and acc.daemon_stopped:
        return "No crash in the window: the only exit was the Docker daemon stopping the container as it went down."
    if scenario == "stable":
        words = advice.stable_words(acc.last_facts, [cp for _i, cp in acc.contained], acc.write_dead, acc.maxmemory)
        return words or "No exit and no restart in the window: the ingester ran steadily."
    if rep is None or rv is None:
        return lead + "no run carried enough evidence to name a cause."
    task = f"the {rep.task}" if rep.task else "a"
    if scenario == "oom-kill":
        return lead + advice.oom_words(rep, acc.instrumented, mem.limit_bytes)[0] + "."
    if scenario == "external-kill":
        return lead + f"{rv.reason}."
    if scenario == "panic":
        where = rep.panic.location if rep.panic and rep.panic.location else "an unknown location"
        msg = f" ({rep.panic.message})" if rep.panic and rep.panic.message else ""
        via = f", ending {task} task via EXIT PATH {rep.exit_path}" if rep.exit_path else ""
        zero = ""
        if rep.exit_code == 0:
            zero = (" Then exit 0, not 1: the oldest builds swallow the host tasks' panics "
                    "(`let _ = task.await`) and main returns Ok.")
        setting = advice.setting_behind_panic(rep)
        cause = (" Its cause is a setting: the Configuration line shows batch_size: 0 (INGESTER_BATCH_SIZE)."
                 if setting is not None else "")
        return lead + f"a panic at {where}{msg}{via}.{zero}{cause}"
    if scenario == "task-error" and advice.cancelled_reason(rep) is not None:
        via = f" (EXIT PATH {rep.exit_path})" if rep.exit_path else ""
        return lead + f"{rv.reason}{via}."
    if scenario == "task-error":
        err = _error_text(rep) or "an error"
        via = f" (EXIT PATH {rep.exit_path})" if rep.exit_path else ""
        return lead + f"{task} task returned an error{via}: {err}."
    if scenario == "task-returned-ok":
        via = f" (EXIT PATH {rep.exit_path})" if rep.exit_path else ""
        return lead + f"{task} run function returned Ok(()) despite its infinite loop{via}."
    if scenario == "config-error":
        random = ""
        if len(acc.exit_paths) > 1:
            paths = "/".join(sorted(acc.exit_paths))
            random = (f" (EXIT PATH {paths} at random: every family fails at once and select! "
                      "reports whichever it sees first)")
        return lead + f"configuration error at startup: {rv.reason}{random}."
    if scenario == "cannot-start":
        return lead + f"{rv.reason}."
    if scenario == "impossible-path":
        return lead + "main() reached its end after the mode match (EXIT PATH Z)."
    return lead + f"{rv.reason}."


def _asides(scenario: str, acc: Accumulator) -> str:
    """What else the runs show that does not decide the verdict: memory pressure before
    unexplained exits, contained panics, the operator's stops, retried connection errors."""
    out = ""
    if scenario == "inconclusive" and acc.ended and acc.pressure_max:
        out += advice.pressure_words(acc.pressure_max, acc.instrumented)
    if acc.contained:
        idx, cp = acc.contained[0]
        where = cp.location or "an unknown location"
        msg = f" ({cp.message})" if cp.message else ""
        on = f" for {cp.ran_on_seconds:.0f} s" if cp.ran_on_seconds is not None else ""
        more = f" ({acc.contained_total} contained panics in all)" if acc.contained_total > 1 else ""
        out += (f" A contained panic at {where}{msg} in run {idx}: the process kept running{on} "
                f"after it, so it did not end the run{more}.")
    if acc.stopped:
        out += f" {acc.stopped} run(s) ended by the operator's own stop, not a crash (not counted)."
    if acc.daemon_stopped:
        out += (f" {acc.daemon_stopped} run(s) stopped with the Docker daemon as it went down, not a crash of the "
                "ingester (not counted).")
    if acc.retries and scenario not in ("task-error",):
        hosts = ", ".join(list(acc.retry_hosts)[:3])
        out += (f" {acc.retries} connection error(s) ({hosts}) were logged and retried: evidence that "
                "retry works, not a cause of exit.")
    return out


def _end_sentence(text: str) -> str:
    """One final period: quoted messages often end with their own ("...never happen.")."""
    text = text.rstrip()
    if text.endswith("....") or (text.endswith("..") and not text.endswith("...")):
        return text[:-1]
    return text


def _confidence(scenario: str, rep: Run | None, acc: Accumulator, cov: Coverage) -> str:
    if scenario == "inconclusive" or rep is None:
        return "low"
    if scenario == "stable":
        return "medium" if cov.window_seconds is None or cov.window_seconds < 120 else "high"
    agree = acc.scenarios[scenario]
    sources = len(rep.oom_sources) if scenario == "oom-kill" else 1
    if scenario == "external-kill" and not cov.events:
        return "low"  # without events a Docker-API kill cannot be told from one outside
    if scenario == "oom-kill" and sources >= 2:
        return "high"
    if agree >= 3 and agree == acc.ended:
        return "high"
    return "medium"


# An answer to one of the six questions: its text, whether these sources answer it, and
# whether the debug build would (when they do not).
_Answer = tuple[str, bool, bool]


def _startup_answers(scenario: str, rep: Run, acc: Accumulator) -> dict[str, _Answer]:
    """Questions 1-4 at once, for a process that stops at startup (configuration, loader)."""
    problem = config_problem(rep)
    what = problem.detail if problem is not None else f"the dynamic loader refused the binary: {rep.facts.loader_error}"
    where = "a configuration error" if scenario == "config-error" else "the binary cannot load"
    random = " (select! names a family at random)" if len(acc.exit_paths) > 1 else ""
    panic = rep.exit_code == 101
    return {
        "which_task": (f"None: {where}, before any host task ran{random}.", True, False),
        "ok_or_err": ("A panic on the main thread (exit 101)." if panic else "Err at startup (exit 1).", True, False),
        "what_error": (what, True, False),
        "panic_or_clean": (
            "Panic on the main thread (exit 101)."
            if panic
            else "Neither a panic nor a task's exit: the process stops at startup (exit 1).",
            True,
            False,
        ),
    }


def _which_task(scenario: str, rep: Run | None) -> _Answer:
    task = rep.task if rep else None
    if task:
        via = f" (EXIT PATH {rep.exit_path})" if rep and rep.exit_path else ""
        return f"{task}{via}", True, False
    if scenario in ("oom-kill", "external-kill"):
        return "None: the process was killed from outside before any task exited.", True, False
    return "Unknown: nothing in these sources names it.", False, True


def _ok_or_err(scenario: str, rep: Run | None) -> _Answer:
    kind = rep.result_kind if rep else None
    if scenario in ("oom-kill", "external-kill"):
        return "Neither: no task returned; the process was killed.", True, False
    known = {
        "ok-ok": "Ok: the task returned Ok(Ok(())).",
        "ok-err": "Err: the task returned Ok(Err(..)).",
        "join-panic": "Err: the JoinHandle gave Err(JoinError) (panic).",
        "join-cancelled": "Err: the JoinHandle gave Err(JoinError) (panic).",
    }
    if kind in known:
        return known[str(kind)], True, False
    if scenario == "panic":
        return "Err: a panic (no result line was logged).", True, False
    if rep is not None and rep.error_exit is not None:
        return "Err: main returned an error (`Error:` line).", True, False
    return "Unknown: no result line in these sources.", False, True


def _what_error(scenario: str, rep: Run | None) -> _Answer:
    err = _error_text(rep) if rep else None
    if scenario == "oom-kill":
        return "No error: the kernel OOM killer (SIGKILL).", True, False
    if scenario == "external-kill":
        return "No error: a signal from outside the process.", True, False
    if scenario == "panic" and rep is not None and rep.panic is not None:
        return f"Panic: {rep.panic.message or 'unknown panic payload'} at {rep.panic.location}", True, False
    if err:
        return err, True, False
    if scenario == "task-returned-ok":
        return "None: the run function returned Ok(()).", True, False
    return "Unknown: no error text was logged.", False, True


def _panic_or_clean(scenario: str) -> _Answer:
    if scenario == "panic":
        return "Panic.", True, False
    if scenario in ("oom-kill", "external-kill"):
        return "Neither: killed by a signal (exit 137).", True, False
    if scenario in ("task-error", "task-returned-ok", "config-error", "impossible-path"):
        return "Clean exit: main returned (exit code 1).", True, False
    return (
        "Unknown: no panic text, but without the debug build a silent exit cannot be ruled a clean return.",
        False,
        True,
    )


def _how_soon(durations: Distribution) -> _Answer:
    if durations.median is None:
        return "Unknown: the log has no usable timestamps.", False, False
    return (
        f"{_fmt_s(durations.median)} after start (median; min {_fmt_s(durations.min)}, "
        f"max {_fmt_s(durations.max)}, {durations.count} runs).",
        True,
        False,
    )


def _questions(
    scenario: str,
    rep: Run | None,
    acc: Accumulator,
    durations: Distribution,
    det: bool | None,
    determinism: str,
) -> tuple[Question, ...]:
    """The investigation's six questions, each answered from these sources or said not to be."""
    if scenario == "stable":
        return tuple(Question(qid, text, "No task exited in the window.", True, False) for qid, text in QUESTIONS)
    answers: dict[str, _Answer] = {}
    if scenario in ("config-error", "cannot-start") and rep is not None:
        answers = _startup_answers(scenario, rep, acc)
    if det is None:
        deterministic: _Answer = (f"Cannot tell from one run: {determinism}.", False, False)
    else:
        deterministic = (f"{'Deterministic' if det else 'Not deterministic'}: {determinism}.", True, False)
    ask: dict[str, Callable[[], _Answer]] = {
        "which_task": lambda: _which_task(scenario, rep),
        "ok_or_err": lambda: _ok_or_err(scenario, rep),
        "what_error": lambda: _what_error(scenario, rep),
        "panic_or_clean": lambda: _panic_or_clean(scenario),
        "how_soon": lambda: _how_soon(durations),
        "deterministic": lambda: deterministic,
    }
    out = []
    for qid, text in QUESTIONS:
        answer, ok, debug = answers[qid] if qid in answers else ask[qid]()
        out.append(Question(qid, text, answer, ok, debug and not ok))
    return tuple(out)


QUESTIONS: tuple[tuple[str, str], ...] = (
    ("which_task", "Which ingester type exits first? (firehose, backfill, or labeler)"),
    ("ok_or_err", "Does it exit with Ok or Err?"),
    ("what_error", "What is the error if any?"),
    ("panic_or_clean", "Is it a panic or clean exit?"),
    ("how_soon", "Does it happen immediately or after some time?"),
    ("deterministic", "Is the exit deterministic?"),
)

_CAUSES = (
    (
        "websocket-close",
        "WebSocket connection closes without retry",
        "Review the connection error handling in firehose.rs / backfill.rs / labeler.rs: "
        "find the path in the infinite loop that can `return`.",
    ),
    (
        "redis-lost",
        "Redis connection lost",
        "Check Redis health and maxmemory at the exit times; add connection checks and retries.",
    ),
    (
        "panic-malformed-data",
        "Task panic on malformed data",
        "Open the panic location and replace the unwrap()/expect()/index with error handling.",
    ),
    (
        "oom",
        "OOM kill",
        "Compare the memory slope (stats samples) with mem_limit; builds before ea4869ca hold events in "
        "unbounded batcher channels under Redis backpressure.",
    ),
    (
        "loop-logic-bug",
        "Bug in infinite loop logic",
        "Review the run loop: find the early return or break that lets run() return Ok(()).",
    ),
    (
        "external-signal",
        "External signal",
        "Look for automation, health checks or people killing the container (kill events, "
        "host audit log, cron, orchestration).",
    ),
    (
        "configuration",
        "Configuration error",
        "Fix the value the error names in the service's environment (compose file).",
    ),
    (
        "image",
        "The image's binary cannot start",
        "Rebuild the image so the binary runs on its base image: build on the same distribution "
        "release as the runtime stage (or link statically), then redeploy.",
    ),
)


def _root_causes(scenario: str, rep: Run | None, acc: Accumulator, mem: Memory) -> tuple[RootCause, ...]:
    err = (_error_text(rep) or "") if rep else ""
    low = err.lower()
    scores: dict[str, tuple[float, list[str]]] = {c[0]: (0.1, []) for c in _CAUSES}

    def put(cid: str, score: float, why: str) -> None:
        old, ev = scores[cid]
        ev.append(why)
        scores[cid] = (max(old, score), ev)

    if scenario == "task-error":
        if "redis" in low:
            put("redis-lost", 0.9, f"the task error mentions Redis: {err}")
        elif any(w in low for w in ("websocket", "connection", "closed", "tungstenite", "io(")):
            put("websocket-close", 0.9, f"the task error is a connection failure: {err}")
        else:
            put("websocket-close", 0.5, f"a task returned an error: {err or 'unknown'}")
            put("redis-lost", 0.3, "a task returned an error not naming its source")
    if scenario == "panic":
        where = rep.panic.location if rep and rep.panic else None
        put("panic-malformed-data", 0.9, f"panic at {where or 'unknown location'}")
    elif acc.panics:
        put("panic-malformed-data", 0.4, f"{acc.panics} panic(s) logged without ending the run")
    if scenario == "oom-kill":
        srcs = ", ".join(rep.oom_sources) if rep else ""
        put("oom", 0.95, f"OOM kill confirmed by {srcs}")
    elif mem.seconds_to_limit is not None and mem.seconds_to_limit < 600:
        put("oom", 0.4, f"memory grows and would reach the limit in {mem.seconds_to_limit:.0f} s")
    if acc.pressure_max:
        if acc.instrumented:  # bounded channels: events_in_memory is a counter, not memory
            put("oom", 0.1, f"backpressure (events_in_memory up to {acc.pressure_max}, a counter in this build)")
        else:
            put("oom", 0.3, f"backpressure: up to {acc.pressure_max} events held in memory (builds before ea4869ca)")
    if scenario == "task-returned-ok":
        put("loop-logic-bug", 0.9, "a run function returned Ok(()) from its infinite loop")
    if scenario == "external-kill":
        api = "Docker API kill events" if acc.kill_via_api else "no Docker kill event: from outside"
        put("external-signal", 0.9, f"exit 137/143 without OOM evidence; {api}")
    if scenario == "config-error":
        for _n, problem in acc.config_problems.values():
            put("configuration", 0.95, problem.detail)
    if scenario == "cannot-start" and rep is not None:
        put("image", 0.95, f"the loader refuses the binary: {rep.facts.loader_error}")
    if acc.retries and scenario != "task-error":
        for cid in ("websocket-close", "redis-lost"):
            scores[cid] = (0.05, [f"{acc.retries} connection error(s) logged and retried "
                                  "(`Retrying in 5 seconds...`): retry works, so they do not end a task"])
    if scenario in ("oom-kill", "panic", "external-kill", "task-returned-ok", "config-error", "cannot-start"):
        for cid in ("websocket-close", "redis-lost"):
            if scores[cid][0] <= 0.1:
                scores[cid] = (0.05, [*scores[cid][1], "the exit is explained by another cause"][-2:])
    out = []
    for cid, title, step in _CAUSES:
        score, ev = scores[cid]
        like = "high" if score >= 0.8 else "medium" if score >= 0.4 else "low" if score > 0.05 else "ruled-out"
        out.append(RootCause(cid, title, like, round(score, 2), tuple(ev[:4]), step))
    out.sort(key=lambda c: -c.score)
    return tuple(out)


def _next_steps(
    scenario: str,
    rep: Run | None,
    acc: Accumulator,
    mem: Memory,
    cov: Coverage,
    needs_debug: bool,
    causes: tuple[RootCause, ...],
    intervals: Distribution | None = None,
) -> tuple[str, ...]:
    steps: list[str] = []
    if needs_debug:
        steps.append(
            "Deploy the debug image (capture_mode=capture): these production logs cannot say which task exits or why."
        )
    if scenario == "oom-kill":
        steps.append(advice.oom_words(rep, acc.instrumented, mem.limit_bytes)[1].text)
    elif scenario == "external-kill" and acc.outside_restarts:
        steps.append(advice.outside_restart_step([], intervals.median if intervals else None).text)
    elif scenario == "external-kill":
        if cov.events and not acc.kill_via_api:
            steps.append(
                "Nothing in Docker sent the kill: look on the host (audit log, cron, watchdogs, "
                "`kill -9` by a person or script)."
            )
        elif acc.kill_via_api:
            steps.append("Find the client calling the Docker API kill (automation, health check).")
        else:
            steps.append("Capture docker events to tell a Docker API kill from one outside Docker.")
    elif scenario == "panic" and rep is not None and rep.panic is not None:
        setting = advice.setting_behind_panic(rep)
        where = rep.panic.location or "the panic site"
        steps.append(setting.text if setting is not None else f"Fix the panic at {where}.")
    elif scenario == "task-error" and rep is not None and advice.cancelled_reason(rep) is not None:
        steps.append("Find what cancels the task handles (JoinHandle::abort, a runtime shutdown): a cancelled "
                     "task neither panicked nor returned an error.")
    elif scenario in ("task-error", "task-returned-ok") and causes:
        steps.append(causes[0].next_step)
    elif scenario == "config-error":
        problems = sorted(acc.config_problems.values(), key=lambda x: -x[0])
        for _n, problem in problems[:2]:
            steps.append(problem.next_step)
        if not problems:
            steps.append("Check the service's environment in the compose file: the error is in the log.")
        return tuple(steps)
    elif scenario == "cannot-start":
        err = rep.facts.loader_error if rep is not None else None
        steps.append(
            f"Fix the image, not the code: the dynamic loader refuses the binary ({err}). Rebuild it "
            "on the same distribution release as the runtime base image (or link statically) and "
            "redeploy; no debug build can help while the binary cannot load."
        )
        return tuple(steps)
    elif scenario == "impossible-path":
        steps.append("Review main(): a mode arm returned without an exit path.")
    elif scenario == "stable":
        extra = advice.stable_steps(acc.last_facts, acc.write_dead, acc.maxmemory)
        steps.extend(x.text for x in extra)
        if not extra and not any(cp.host for _i, cp in acc.contained):
            steps.append("No restart seen: watch longer, or close the incident if this is the fix.")
    if acc.contained and scenario not in ("config-error", "cannot-start"):
        _idx, cp = acc.contained[0]
        steps.append(
            f"Fix the contained panic at {cp.location or 'the panic site'}: that host task stays dead "
            "until the process restarts (the others run on), but it is not why the process exits."
        )
    if not cov.kernel and scenario in ("external-kill", "inconclusive"):
        steps.append("Capture the kernel log (dmesg as root or journalctl -k) to rule OOM in or out.")
    if not cov.events and scenario != "stable":
        steps.append("Capture docker events live during the window (die exit codes, oom, kill).")
    return tuple(steps)
