"""Split the log into runs (one per container start) and attach each run's exit evidence.

`split_runs` is a generator: it holds one run at a time (with capped evidence lists), so memory
does not grow with the log. Docker events, inspect, the kernel log and stats samples are small and
come in a `Context`; each finished run is matched against them by time (or by order when the log
has no timestamps).
"""

from __future__ import annotations

import bisect
import calendar
import functools
import math
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .inputs import Context, slope
from .sources.common import quick_init
from .sources.dmesg import KernelOom
from .sources.events import DockerEvent
from .sources.logs import (
    Banner,
    ComposeExit,
    Critical,
    EndOfLog,
    ErrorExit,
    ExitTrace,
    Fact,
    LogRecord,
    Panic,
    Pressure,
    TaskResult,
)

MAX_BREADCRUMBS = 12
MAX_CRITICALS = 8
MAX_EVIDENCE = 24
# A kernel line or event this close to a run's end still belongs to it (clocks drift a little).
SLACK = 3.0
# A panic this close to the run's end, with nothing logged after it, is where the process exited.
EXIT_AT_PANIC = 2.0
# A die this close (s) to the one the window saw the daemon cause is that die (same event, rounded).
DAEMON_MATCH = 0.01
MAX_CONTAINED = 4


@quick_init
@dataclass(frozen=True)
class ContainedPanic:
    """A panic the process survived: a host task died but the others (and the process) ran on."""

    location: str | None
    message: str | None
    ts: float | None
    ran_on_seconds: float | None  # how long the process was seen running after it
    cite: Cite
    # from the `CRITICAL: X task i panicked` line run_* logs when it awaits that task (the host is
    # the i-th of the family's hosts in the Configuration line); None for a banner alone
    task: str | None = None
    host: str | None = None


@quick_init
@dataclass(frozen=True)
class StartupFacts:
    """What the run said about its configuration and start (from `Fact` lines)."""

    redis_url: str | None = None  # redacted
    relay_hosts: int | None = None
    config_cite: Cite | None = None
    zero_hosts: tuple[str, ...] = ()  # families that started with 0 hosts
    unknown_mode: str | None = None
    unknown_mode_cite: Cite | None = None
    loader_error: str | None = None
    loader_cite: Cite | None = None
    retries: int = 0
    retry_hosts: tuple[str, ...] = ()
    retry_cite: Cite | None = None
    graceful_stop: Cite | None = None
    relay_list: tuple[str, ...] = ()
    labeler_list: tuple[str, ...] = ()
    batch_size: int | None = None
    write_dead: int = 0  # `Failed to send batch to write task` lines: the write task is gone
    write_dead_cite: Cite | None = None
    maxmemory: int = 0  # writes Redis refused for its maxmemory (retried)
    maxmemory_cite: Cite | None = None
    idle: Cite | None = None  # labeler mode with no hosts: sleeping forever by design


@quick_init
@dataclass(frozen=True)
class Cite:
    """A line a person can open and check."""

    file: str
    line: int | None
    text: str


@quick_init
@dataclass(frozen=True)
class Run:
    """One container run: how it started, what it printed, how it ended and what killed it."""

    index: int
    start: float | None
    end: float | None
    start_cite: Cite | None
    partial: bool
    synthetic_start: bool
    ended: bool
    exit_code: int | None
    exit_code_source: str | None
    breadcrumbs: tuple[str, ...]
    last_breadcrumb: Cite | None
    exit_path: str | None
    task: str | None
    result_kind: str | None
    result_error: str | None
    result_innermost: str | None
    result_cite: Cite | None
    panic: Panic | None
    panic_count: int
    host_task_panics: int
    criticals: tuple[Cite, ...]
    critical_count: int
    critical_kinds: tuple[str, ...]
    error_exit: ErrorExit | None
    oom: tuple[Cite, ...]
    oom_sources: tuple[str, ...]
    host_wide_oom: bool
    kill_events: tuple[Cite, ...]
    kill_signals: tuple[int, ...]
    unlogged_starts: int
    pressure_max: int | None
    mem_samples: int
    mem_peak: int | None
    mem_last: int | None
    mem_slope: float | None
    reached_limit: bool | None
    evidence: tuple[Cite, ...] = field(compare=False)
    contained: tuple[ContainedPanic, ...] = ()
    facts: StartupFacts = StartupFacts()
    stopped_by_operator: bool = False
    stopped_by_daemon: bool = False
    # killed through the Docker API and started again by someone: "docker restart" (a restart
    # event follows the start) or "docker start" (a watchdog's kill and start)
    outside_restart: str | None = None
    cancelled_tasks: int = 0  # `CRITICAL: X task i panicked or was cancelled: JoinError::Cancelled`
    mode: str | None = None  # a single INGESTER_MODE (`About to run X mode`), None for all

    @property
    def duration(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return max(0.0, self.end - self.start)


def _cite(rec: object, text: str | None = None) -> Cite:
    source = str(getattr(rec, "source", "?"))
    line = getattr(rec, "line", None)
    body = text if text is not None else str(getattr(rec, "text", ""))
    return Cite(source, line if isinstance(line, int) else None, body[:300])


def _task_in(text: str) -> str | None:
    low = text.lower()
    found = [t for t in ("firehose", "backfill", "labeler") if t in low]
    return found[0] if len(found) == 1 else None


@dataclass
class _Builder:
    index: int
    start: float | None
    start_cite: Cite | None
    partial: bool
    synthetic: bool
    last_ts: float | None = None
    breadcrumbs: list[str] = field(default_factory=list)
    last_breadcrumb: ExitTrace | None = None  # cited when the run is finished
    exit_path: str | None = None
    task: str | None = None
    result: TaskResult | None = None
    panic: Panic | None = None
    panic_count: int = 0
    host_task_panics: int = 0
    criticals: list[Cite] = field(default_factory=list)
    critical_count: int = 0
    critical_kinds: dict[str, None] = field(default_factory=dict)
    critical_task: str | None = None
    error_exit: ErrorExit | None = None
    compose_exit: ComposeExit | None = None
    pressure_max: int | None = None
    evidence: list[Cite] = field(default_factory=list)
    end_ts: float | None = None
    mode_task: str | None = None
    panics: list[Panic] = field(default_factory=list)
    panic_seen_at: list[int] = field(default_factory=list)  # running evidence seen before each
    running_seen: int = 0
    fatal_after: int = 0  # panics[:fatal_after] were followed by the fatal sequence
    facts: dict[str, object] = field(default_factory=dict)
    retries: int = 0
    retry_hosts: dict[str, None] = field(default_factory=dict)
    cancelled: int = 0
    # `CRITICAL: X task i panicked` lines not (yet) followed by the rest of the fatal sequence
    open_criticals: list[Critical] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def fatal(self) -> None:
        """The fatal sequence (All .. exited, select line, result, Error:) is here: the panics and
        per-task CRITICAL lines before it are part of it."""
        self.fatal_after = len(self.panics)
        self.open_criticals.clear()

    def note(self, cite: Cite) -> None:
        if len(self.evidence) < MAX_EVIDENCE:
            self.evidence.append(cite)

    def add(self, rec: LogRecord) -> None:
        ts = getattr(rec, "ts", None)
        if isinstance(ts, float):
            self.last_ts = ts
            if self.start is None:
                self.start = ts
        if isinstance(rec, ExitTrace):
            if rec.text.startswith("About to run ") and self.mode_task is None:
                self.mode_task = _task_in(rec.text)
            if rec.text not in self.breadcrumbs:
                if len(self.breadcrumbs) < MAX_BREADCRUMBS:
                    self.breadcrumbs.append(rec.text)
                else:
                    self.breadcrumbs[-1] = rec.text
            self.last_breadcrumb = rec
            if rec.path is not None:
                self.fatal()
            if rec.path is not None and self.exit_path is None:
                self.exit_path = rec.path
                self.task = rec.task
                self.note(_cite(rec))
        elif isinstance(rec, TaskResult):
            self.fatal()
            if self.result is None:
                self.result = rec
                self.note(_cite(rec))
            if self.task is None and rec.task is not None:
                self.task = rec.task
        elif isinstance(rec, Panic):
            self.panic_count += 1
            if len(self.panics) >= MAX_CONTAINED * 2:
                del self.panics[MAX_CONTAINED], self.panic_seen_at[MAX_CONTAINED]
                self.fatal_after = min(self.fatal_after, len(self.panics))
            self.panics.append(rec)
            self.panic_seen_at.append(self.running_seen)
            return
        elif isinstance(rec, Fact):
            self._fact(rec)
            return
        elif isinstance(rec, Critical):
            # one task's CRITICAL line is not the end: run_* then awaits the next task, which may
            # run on (a contained panic); only `All .. tasks exited` and what follows end it
            if rec.kind in ("all-exited", "family-exited", "host-error"):
                self.fatal()
            self.critical_count += 1
            self.critical_kinds[rec.kind] = None
            if rec.kind == "task-panicked" and (rec.detail or "").startswith("JoinError::Cancelled"):
                self.cancelled += 1
            elif rec.kind == "task-panicked":
                self.host_task_panics += 1
                if len(self.open_criticals) < MAX_CONTAINED * 2:
                    self.open_criticals.append(rec)
            if rec.kind in ("family-exited", "all-exited") and self.critical_task is None:
                self.critical_task = rec.task
            if len(self.criticals) < MAX_CRITICALS:
                self.criticals.append(_cite(rec))
                if len(self.criticals) <= 3:
                    self.note(_cite(rec))
        elif isinstance(rec, ErrorExit):
            self.fatal()
            if self.error_exit is None:
                self.error_exit = rec
                self.note(_cite(rec, "Error: " + rec.message))
        elif isinstance(rec, ComposeExit):
            self.compose_exit = rec
            self.end_ts = rec.ts if rec.ts is not None else self.end_ts
            self.note(_cite(rec, f"{rec.name} exited with code {rec.code}"))
        elif isinstance(rec, Pressure):
            self.running_seen += 1
            if rec.events_in_memory is not None and (
                self.pressure_max is None or rec.events_in_memory > self.pressure_max
            ):
                self.pressure_max = rec.events_in_memory

    def _fact(self, rec: Fact) -> None:
        f = self.facts
        if rec.kind == "config" and "config" not in f:
            f["config"] = rec
        elif rec.kind == "hosts" and rec.count == 0 and rec.task:
            f.setdefault("zero", {})
            zero = f["zero"]
            if isinstance(zero, dict):
                zero[rec.task] = rec
        elif rec.kind == "unknown-mode" and "unknown-mode" not in f:
            f["unknown-mode"] = rec
            self.note(_cite(rec))
        elif rec.kind == "loader" and "loader" not in f:
            f["loader"] = rec
            self.note(_cite(rec))
        elif rec.kind in ("write-dead", "maxmemory", "idle"):
            # (a retried error's record may stand for repeats of its line: `logs.repeated`)
            self.counts[rec.kind] = self.counts.get(rec.kind, 0) + (rec.count or 1)
            f.setdefault(rec.kind, rec)
            if rec.kind == "maxmemory":
                self._fact(Fact(rec.ts, "retry", rec.task, rec.value, rec.count, rec.text, rec.source, rec.line))
        elif rec.kind == "retry":
            self.retries += rec.count or 1
            self.running_seen += rec.count or 1
            if rec.value and len(self.retry_hosts) < 8:
                self.retry_hosts[rec.value] = None
            f.setdefault("retry", rec)
        elif rec.kind == "graceful-stop" and "graceful-stop" not in f:
            f["graceful-stop"] = rec
            self.note(_cite(rec))

    def startup(self) -> StartupFacts:
        f = self.facts
        config = f.get("config")
        zero = f.get("zero")
        mode = f.get("unknown-mode")
        loader = f.get("loader")
        retry = f.get("retry")
        stop = f.get("graceful-stop")
        relays, labelers, batch_size = _config_fields(config.text) if isinstance(config, Fact) else ((), (), None)
        return StartupFacts(
            redis_url=config.value if isinstance(config, Fact) else None,
            relay_hosts=config.count if isinstance(config, Fact) else None,
            config_cite=_cite(config) if isinstance(config, Fact) else None,
            zero_hosts=tuple(zero) if isinstance(zero, dict) else (),
            unknown_mode=mode.value if isinstance(mode, Fact) else None,
            unknown_mode_cite=_cite(mode) if isinstance(mode, Fact) else None,
            loader_error=loader.value if isinstance(loader, Fact) else None,
            loader_cite=_cite(loader) if isinstance(loader, Fact) else None,
            retries=self.retries,
            retry_hosts=tuple(self.retry_hosts),
            retry_cite=_cite(retry) if isinstance(retry, Fact) else None,
            graceful_stop=_cite(stop) if isinstance(stop, Fact) else None,
            relay_list=relays,
            labeler_list=labelers,
            batch_size=batch_size,
            write_dead=self.counts.get("write-dead", 0),
            write_dead_cite=_fact_cite(f.get("write-dead")),
            maxmemory=self.counts.get("maxmemory", 0),
            maxmemory_cite=_fact_cite(f.get("maxmemory")),
            idle=_fact_cite(f.get("idle")),
        )


def _fact_cite(rec: object) -> Cite | None:
    return _cite(rec) if isinstance(rec, Fact) else None


# compiled once: the `re` module's own cache is churned by the searches built per log
_CONFIG_LISTS = {k: re.compile(k + r": \[([^\]]*)\]") for k in ("relay_hosts", "labeler_hosts")}
_BATCH_SIZE = re.compile(r"\bbatch_size: (\d{1,12})\b")
_TASK_INDEX = re.compile(r"\btask (\d{1,6}) panicked")


@functools.lru_cache(maxsize=64)
def _config_fields(text: str) -> tuple[tuple[str, ...], tuple[str, ...], int | None]:
    """The relay hosts, the labeler hosts and the batch size of a `Configuration:` line (every
    run of a crash loop prints the same line: read once)."""
    relays, labelers = (_config_list(text, key) for key in ("relay_hosts", "labeler_hosts"))
    m = _BATCH_SIZE.search(text)
    return relays, labelers, int(m.group(1)) if m else None


def _config_list(text: str, key: str) -> tuple[str, ...]:
    """The hosts of `relay_hosts: [..]` / `labeler_hosts: [..]` in the Configuration line."""
    m = _CONFIG_LISTS[key].search(text)
    return tuple(h.strip(' "') for h in m.group(1).split(",") if h.strip(' "')) if m else ()


class _Matcher:
    """Finds the Docker, kernel and stats evidence for a run's time span."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.events = sorted(ctx.events, key=lambda e: e.time)
        self.event_times = [e.time for e in self.events]
        self.dies = [e for e in self.events if e.action == "die"]
        self.starts = [e.time for e in self.events if e.action == "start"]
        self.used_dies: set[int] = set()
        self.die_cursor = 0
        self.last_die: float | None = None  # the previous run's die: evidence after it is newer
        cid = ctx.container_id or (ctx.inspect.container_id if ctx.inspect else None)
        self.cid = cid
        # "Killed process PID" lines carry no memcg path: they belong with the constraint line
        # that named the same pid just before.
        ids_by_pid: dict[int, tuple[str, ...]] = {}
        kernel: list[KernelOom] = []
        for k in ctx.kernel:
            ids = k.container_ids
            if ids and k.pid is not None:
                ids_by_pid[k.pid] = ids
            elif not ids and k.pid is not None:
                ids = ids_by_pid.get(k.pid, ())
            if self._ours(k, ids):
                kernel.append(k)
        self.kernel = kernel
        self.kernel_used: set[int] = set()
        insp = ctx.inspect
        self.ref_time: float | None = (
            self.event_times[0] if self.event_times
            else insp.finished_at if insp is not None and insp.finished_at is not None
            else ctx.window_end
        )
        self.samples = sorted((s for s in ctx.stats if s.mem_bytes is not None), key=lambda s: s.epoch)
        self.sample_times = [s.epoch for s in self.samples]

    def _ours(self, k: KernelOom, ids: tuple[str, ...]) -> bool:
        """Whether a kernel OOM line is about this container (dmesg keeps other incidents)."""
        if ids:
            cid = self.cid
            return cid is None or any(cid.startswith(i) or i.startswith(cid) for i in ids)
        if k.kind == "invoked":
            return False  # names the allocating task, not the victim; the constraint line decides
        # no memcg path on the line: only a host-wide kill of our process name, matched by time
        return (k.kind == "host-killed" and bool(k.comm and "ingester" in k.comm)) or (
            self.cid is None and bool(k.comm and "ingester" in k.comm)
        )

    def kernel_time(self, k: KernelOom) -> float | None:
        if k.clock == "wall":
            return k.t
        if k.clock == "syslog" and k.t is not None:
            return _place_year(k.t, self.ref_time)
        if k.clock == "boot" and k.t is not None and self.ctx.boot_epoch is not None:
            return self.ctx.boot_epoch + k.t
        return None

    def die_for(self, start: float | None, until: float | None) -> DockerEvent | None:
        if not self.dies:
            return None
        if start is None:
            # no timestamps in the log: match by order
            while self.die_cursor < len(self.dies) and self.die_cursor in self.used_dies:
                self.die_cursor += 1
            if self.die_cursor < len(self.dies):
                self.used_dies.add(self.die_cursor)
                return self.dies[self.die_cursor]
            return None
        for i, d in enumerate(self.dies):
            if i in self.used_dies:
                continue
            if d.time + SLACK < start:
                continue
            if until is not None and d.time > until + 0.5:
                break
            self.used_dies.add(i)
            return d
        return None

    def events_between(self, lo: float, hi: float) -> list[DockerEvent]:
        i = bisect.bisect_left(self.event_times, lo)
        j = bisect.bisect_right(self.event_times, hi)
        return self.events[i:j]


def _place_year(t: float, ref: float | None) -> float | None:
    """A `Mon DD HH:MM:SS` time (parsed in dmesg.SYSLOG_YEAR) moved to the year nearest `ref`."""
    if ref is None:
        return None
    parts = time.gmtime(t)
    year = time.gmtime(ref).tm_year
    best: float | None = None
    for y in (year - 1, year, year + 1):
        try:
            cand = float(calendar.timegm((y, parts.tm_mon, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec)))
        except (ValueError, OverflowError):
            continue
        if best is None or abs(cand - ref) < abs(best - ref):
            best = cand
    return best


def split_runs(records: Iterable[LogRecord], ctx: Context | None = None) -> Iterator[Run]:
    """Runs in order; the first is `partial` when the log starts mid-run."""
    ctx = ctx or Context()
    matcher = _Matcher(ctx)
    current: _Builder | None = None
    index = 0
    end_of_log: EndOfLog | None = None
    starts = matcher.starts
    si = 0
    for rec in records:
        ts = getattr(rec, "ts", None)
        if starts and isinstance(ts, float) and si < len(starts) and starts[si] <= ts:
            # Docker's start events split runs too: RUST_LOG=warn hides the banner
            while si < len(starts) and starts[si] <= ts:
                st = starts[si]
                si += 1
                if isinstance(rec, Banner) and st >= ts - SLACK:
                    continue  # the banner's own start
                if current is not None and current.start is not None and st <= current.start + SLACK:
                    continue  # this run's own start
                if current is not None:
                    yield _finish(current, st, matcher, ctx, last=False)
                index += 1
                current = _Builder(index, st, None, False, True)
        if isinstance(rec, Banner):
            if current is not None:
                if rec.prev_ts is not None:
                    current.last_ts = rec.prev_ts
                yield _finish(current, rec.ts, matcher, ctx, last=False)
            index += 1
            current = _Builder(index, rec.ts, _cite(rec), False, rec.synthetic)
            continue
        if isinstance(rec, EndOfLog):
            end_of_log = rec
            continue
        if current is None:
            index += 1
            current = _Builder(index, None, None, True, False)
        current.add(rec)
    if current is None and matcher.starts:
        # no log at all: the runs Docker saw are all we have
        for i, t in enumerate(matcher.starts):
            nxt = matcher.starts[i + 1] if i + 1 < len(matcher.starts) else None
            b = _Builder(i + 1, t, None, False, True)
            yield _finish(b, nxt, matcher, ctx, last=nxt is None)
        return
    if current is None and end_of_log is not None and end_of_log.lines > 0:
        # lines, but none that starts, ends or marks a run (`--tail` of a run that began before
        # it): one run, going on before the log and still going at its end
        current = _Builder(1, None, None, True, False)
    if current is not None:
        if end_of_log is not None and end_of_log.last_ts is not None:
            current.last_ts = max(current.last_ts or end_of_log.last_ts, end_of_log.last_ts)
        yield _finish(current, None, matcher, ctx, last=True)


@dataclass
class _End:
    """How a run ended, as far as the sources say: its die event, exit code and end time."""

    die: DockerEvent | None
    exit_code: int | None
    code_source: str | None
    end: float | None
    inspect_applies: bool
    ended: bool = False
    main_panic: bool = False


def _exit_of(b: _Builder, next_start: float | None, m: _Matcher, ctx: Context, last: bool) -> _End:
    """The run's die event (inside the window), else Compose's or inspect's exit code."""
    start = b.start
    die = m.die_for(start, next_start)
    exit_code: int | None = None
    code_source: str | None = None
    end = b.end_ts or b.last_ts
    after = ctx.window_end + SLACK if ctx.window_end is not None else math.inf
    if die is not None and die.time > after:
        die = None  # stopped after the window closed: the run was still going inside it
    if die is not None:
        exit_code, code_source, end = die.exit_code, "docker events (die)", die.time
        b.note(_cite(die, f"docker event die exitCode={die.exit_code}"))
    elif b.compose_exit is not None:
        exit_code, code_source = b.compose_exit.code, "compose (exited with code)"
    insp = ctx.inspect
    inspect_applies = False
    if insp is not None and insp.finished_at is not None and insp.finished_at <= after:
        if start is not None:
            inspect_applies = (start - SLACK) <= insp.finished_at and (
                next_start is None or insp.finished_at <= next_start + SLACK
            )
        else:
            inspect_applies = last or (next_start is None)
    if exit_code is None and inspect_applies and insp is not None and not insp.running:
        exit_code, code_source = insp.exit_code, "docker inspect (State.ExitCode)"
        end = insp.finished_at
    return _End(die, exit_code, code_source, end, inspect_applies)


def _ended(b: _Builder, e: _End, ctx: Context, last: bool) -> None:
    """Whether the run ended, and the exit code the log implies when no source gave one."""
    insp = ctx.inspect
    last_panic = b.panics[-1] if b.panics else None
    quiet_after = last_panic is not None and b.running_seen == b.panic_seen_at[-1]
    main_panic = last_panic is not None and quiet_after and _main_thread(last_panic)
    if (
        last
        and last_panic is not None
        and quiet_after
        and e.exit_code is None
        and not (insp is not None and insp.running and e.inspect_applies)
        and not (ctx.events_present and e.die is None)
    ):
        # a bare log that ends at a panic with nothing after it: the process ended there
        main_panic = main_panic or b.fatal_after < len(b.panics)
    ends_itself = "unknown-mode" in b.facts or "loader" in b.facts  # exit(1) follows at once
    # `X ingester exited: Ok(Ok(()))` with no `Error:`: main returns Ok right after (exit 0)
    returned_ok = b.result is not None and b.result.kind == "ok-ok" and b.error_exit is None
    e.main_panic = main_panic
    e.ended = (
        not last
        or ends_itself
        or returned_ok
        or e.exit_code is not None
        or b.error_exit is not None
        or b.exit_path is not None
        or main_panic
    )
    if e.exit_code is None and e.ended:
        if ends_itself:
            e.exit_code, e.code_source = 1, "inferred (exit(1) at start)"
        elif returned_ok:
            # main returned Ok: the oldest builds, whose run_* return Ok(()) after the panics
            e.exit_code, e.code_source = 0, "inferred (main returned Ok)"
        elif b.error_exit is not None:
            e.exit_code, e.code_source = 1, "inferred (main returned Err)"
        elif main_panic and last_panic is not None and _main_thread(last_panic):
            e.exit_code, e.code_source = 101, "inferred (panic on the main thread)"


def _panics(b: _Builder, e: _End) -> list[ContainedPanic]:
    """Which panics ended the process (set as `b.panic`, cited) and which it survived: the ones
    the fatal sequence followed, and the last ones when the process exited at them (nothing
    logged after, the end within EXIT_AT_PANIC)."""
    fatal: Panic | None = None
    contained: list[ContainedPanic] = []
    run_end = e.end if e.end is not None else b.last_ts
    for i, p in enumerate(b.panics):
        at_exit = (
            e.ended
            and b.running_seen == b.panic_seen_at[i]
            and (p.ts is None or run_end is None or run_end - p.ts <= EXIT_AT_PANIC or e.exit_code == 101)
        )
        if i < b.fatal_after or at_exit:
            if fatal is None:
                fatal = p
        elif len(contained) < MAX_CONTAINED:
            on = (run_end - p.ts) if (run_end is not None and p.ts is not None) else None
            contained.append(ContainedPanic(p.location, p.message, p.ts, on, _cite(p)))
    if b.open_criticals:
        contained = _name_hosts(contained, b.open_criticals, b.startup())
    if fatal is not None:
        b.panic = fatal
        b.evidence.insert(min(1, len(b.evidence)), _cite(fatal))
    return contained


@dataclass
class _Kills:
    """What killed the run, if anything: oom and kill events, inspect's flag, kernel lines."""

    oom: list[Cite] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    kills: list[Cite] = field(default_factory=list)
    signals: list[int] = field(default_factory=list)
    unlogged: int = 0
    host_wide: bool = False
    kernel_killed: Cite | None = None
    kernel_time: float | None = None  # when the kernel's kill line says it killed
    restart: str | None = None  # how an outsider started it again (`_outside_restart`)


def _events(k: _Kills, b: _Builder, e: _End, m: _Matcher, span: tuple[float, float], next_start: float | None) -> None:
    """Docker's oom and kill events come before the die they cause (and after the previous
    run's die); starts inside the run are starts the log did not show."""
    start = b.start
    lo, hi = span
    ev_hi = (e.die.time + 0.5) if e.die is not None else hi
    ev_lo = m.last_die if m.last_die is not None else -math.inf
    for ev in m.events_between(lo, hi):
        if ev.action in ("oom", "kill") and not ev_lo < ev.time <= ev_hi:
            continue
        if ev.action == "oom":
            k.oom.append(_cite(ev, "docker event oom"))
            if "docker events (oom)" not in k.sources:
                k.sources.append("docker events (oom)")
        elif ev.action == "kill":
            k.kills.append(_cite(ev, f"docker event kill signal={ev.signal}"))
            if ev.signal is not None:
                k.signals.append(ev.signal)
        elif (
            ev.action == "start"
            and start is not None
            and ev.time > start + SLACK
            and (next_start is None or ev.time < next_start - SLACK)
        ):
            k.unlogged += 1


def _kernel(k: _Kills, b: _Builder, e: _End, m: _Matcher, span: tuple[float, float]) -> None:
    """The kernel's OOM lines of this run (each line is given to one run only)."""
    lo, hi = span
    timed = e.exit_code in (137, None)
    ev_lo = m.last_die if m.last_die is not None else -math.inf
    # The kernel kills before Docker sees the die: a line after this run's die belongs to the
    # next run (restarts can come every second or two, well inside SLACK). Kernel times are
    # placed with host.json's whole-second boot_epoch, so they may read up to 1 s early.
    k_hi = (e.die.time + 0.5) if e.die is not None else hi
    for i, kl in enumerate(m.kernel):
        if i in m.kernel_used:
            continue
        t = m.kernel_time(kl)
        if t is not None and (b.start is not None or e.end is not None):
            if not (max(lo, ev_lo - 1.0) <= t <= k_hi):
                continue
        elif t is None:
            # no usable clock: hand kernel kills to SIGKILLed runs in order
            if not (timed and e.ended and e.exit_code == 137):
                continue
            if kl.kind not in ("memcg-killed", "host-killed") and not k.oom:
                continue
        m.kernel_used.add(i)
        if kl.kind == "host-killed" and not kl.container_ids:
            if not (kl.comm and "ingester" in kl.comm) and e.exit_code != 137:
                continue
            k.host_wide = True
        k.oom.append(_cite(kl))
        if k.kernel_killed is None and kl.kind in ("memcg-killed", "host-killed"):
            k.kernel_killed = k.oom[-1]
            k.kernel_time = t
        label = f"kernel log ({kl.source})"
        if label not in k.sources:
            k.sources.append(label)
        if t is None and kl.kind in ("memcg-killed", "host-killed"):
            break


def _kills(
    b: _Builder, e: _End, m: _Matcher, ctx: Context, span: tuple[float, float], next_start: float | None
) -> _Kills:
    """Every sign that the run was killed, and by what."""
    k = _Kills()
    if b.start is not None or e.end is not None:
        _events(k, b, e, m, span, next_start)
    insp = ctx.inspect
    if e.inspect_applies and insp is not None and insp.oom_killed:
        k.oom.append(Cite(insp.source, None, "State.OOMKilled: true"))
        k.sources.append("docker inspect (OOMKilled)")
    _kernel(k, b, e, m, span)
    if e.die is not None:
        m.last_die = e.die.time
    return k


def _memory_points(b: _Builder, e: _End, m: _Matcher, span: tuple[float, float]) -> list[tuple[float, float]]:
    if not m.samples or (b.start is None and e.end is None):
        return []
    i = bisect.bisect_left(m.sample_times, b.start if b.start is not None else span[0])
    j = bisect.bisect_right(m.sample_times, e.end if e.end is not None else span[1])
    return [(s.epoch, float(s.mem_bytes or 0)) for s in m.samples[i:j]]


def _finish(b: _Builder, next_start: float | None, m: _Matcher, ctx: Context, *, last: bool) -> Run:
    e = _exit_of(b, next_start, m, ctx, last)
    _ended(b, e, ctx, last)
    contained = _panics(b, e)
    start, end, ended = b.start, e.end, e.ended
    lo = (start if start is not None else (end or 0.0)) - SLACK
    hi = end if end is not None else (next_start if next_start is not None else float("inf"))
    span = (lo, hi + SLACK)
    k = _kills(b, e, m, ctx, span, next_start)
    if last and not e.ended and k.kernel_killed is not None:
        # the kernel's kill of this container after this run's start (no later start): an exit
        e.ended, e.exit_code, e.code_source = True, 137, "kernel log (OOM kill)"
        e.end = k.kernel_time if k.kernel_time is not None else e.end
        end, ended = e.end, True
    k.restart = _outside_restart(m, e.die) if k.kills else None
    pts = _memory_points(b, e, m, span)
    limit = ctx.memory_limit
    reached: bool | None = None
    if pts and limit and ended and end is not None:
        near = [p for p in pts if end - p[0] <= 10.0]
        reached = bool(near) and max(p[1] for p in near) >= 0.9 * limit
    if k.kernel_killed is not None:
        # the kernel's own "Killed process" line is the strongest evidence: cite it first
        b.evidence.insert(0, k.kernel_killed)
        b.evidence[MAX_EVIDENCE:] = []
    for c in k.oom[:4]:
        if c is not k.kernel_killed:
            b.note(c)
    for c in k.kills[:2]:
        b.note(c)
    return _run(b, e, k, pts, reached, contained, ctx)


def _run(
    b: _Builder,
    e: _End,
    k: _Kills,
    pts: list[tuple[float, float]],
    reached: bool | None,
    contained: list[ContainedPanic],
    ctx: Context,
) -> Run:
    task = (
        b.task
        or (b.result.task if b.result else None)
        or b.critical_task
        or _task_in(b.error_exit.message if b.error_exit else "")
        or b.mode_task
        or _location_task(b.panic)
    )
    res = b.result
    die = e.die
    restart = k.restart
    return Run(
        index=b.index,
        start=b.start,
        end=e.end if e.ended else (b.last_ts or e.end),
        start_cite=b.start_cite,
        partial=b.partial,
        synthetic_start=b.synthetic,
        ended=e.ended,
        exit_code=e.exit_code,
        exit_code_source=e.code_source,
        breadcrumbs=tuple(b.breadcrumbs),
        last_breadcrumb=_cite(b.last_breadcrumb) if b.last_breadcrumb is not None else None,
        exit_path=b.exit_path,
        task=task,
        result_kind=res.kind if res else None,
        result_error=res.error if res else None,
        result_innermost=res.innermost if res else None,
        result_cite=_cite(res) if res else None,
        panic=b.panic,
        panic_count=b.panic_count,
        host_task_panics=b.host_task_panics,
        criticals=tuple(b.criticals),
        critical_count=b.critical_count,
        critical_kinds=tuple(b.critical_kinds),
        error_exit=b.error_exit,
        oom=tuple(k.oom[:6]),
        oom_sources=tuple(k.sources),
        host_wide_oom=k.host_wide,
        kill_events=tuple(k.kills[:4]),
        kill_signals=tuple(k.signals[:4]),
        unlogged_starts=k.unlogged,
        pressure_max=b.pressure_max,
        mem_samples=len(pts),
        mem_peak=int(max(p[1] for p in pts)) if pts else None,
        mem_last=int(pts[-1][1]) if pts else None,
        mem_slope=slope(pts),
        reached_limit=reached,
        evidence=tuple(b.evidence),
        contained=tuple(contained),
        facts=b.startup(),
        stopped_by_operator=b.facts.get("graceful-stop") is not None or (15 in k.signals and restart is None),
        outside_restart=restart,
        cancelled_tasks=b.cancelled,
        mode=b.mode_task,
        stopped_by_daemon=die is not None and any(abs(die.time - t) <= DAEMON_MATCH for t in ctx.daemon_stops),
    )


def _outside_restart(m: _Matcher, die: DockerEvent | None) -> str | None:
    """How a run killed through the Docker API came back, if it did: a `docker stop` by the
    operator ends with stop and no start; a start after the die is someone's (`docker kill` and
    `docker stop` are manual stops the restart policy never undoes). "docker restart" when Docker
    logged a restart with that start, else "docker start" (a watchdog's)."""
    if die is None:
        return None
    i = bisect.bisect_right(m.event_times, die.time)
    later = m.events[i:]
    start = next((e for e in later if e.action == "start"), None)
    if start is None:
        return None
    near = (e for e in later if abs(e.time - start.time) <= SLACK)
    return "docker restart" if any(e.action == "restart" for e in near) else "docker start"


def _name_hosts(
    contained: list[ContainedPanic], criticals: list[Critical], facts: StartupFacts
) -> list[ContainedPanic]:
    """Each contained panic with the host task its `CRITICAL: X task i` line names (the first such
    line at or after the banner; run_* awaits tasks in order, so a later task's line may wait)."""
    if not criticals:
        return contained
    left = list(criticals)
    out: list[ContainedPanic] = []
    for cp in contained:
        crit = next((c for c in left if cp.ts is None or c.ts is None or c.ts >= cp.ts), None)
        if crit is None:
            out.append(cp)
            continue
        left.remove(crit)
        hosts = facts.labeler_list if crit.task == "labeler" else facts.relay_list
        idx = _task_index(crit.text)
        host = hosts[idx] if idx is not None and idx < len(hosts) else None
        out.append(ContainedPanic(cp.location, cp.message, cp.ts, cp.ran_on_seconds, cp.cite, crit.task, host))
    return out


def _task_index(text: str) -> int | None:
    m = _TASK_INDEX.search(text)
    return int(m.group(1)) if m else None


def _location_task(p: Panic | None) -> str | None:
    """The family whose source file panicked (`rsky-ingester/src/firehose.rs:..`), if any."""
    if p is None or not p.location:
        return None
    for t in ("firehose", "backfill", "labeler"):
        if f"/src/{t}.rs:" in p.location or p.location.startswith(f"src/{t}.rs:"):
            return t
    return None


def _main_thread(p: Panic) -> bool:
    """A panic on main's thread (exit 101): Rust names it; the hook does not, but its location
    is main's own file."""
    if p.thread == "main":
        return True
    loc = p.location or ""
    return p.thread is None and ("/src/bin/" in loc or "src/main.rs" in loc)
