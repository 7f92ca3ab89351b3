"""Reader for rsky-ingester output in every shape it reaches us.

Accepted, mixed freely: `docker logs --timestamps` prefixes, Compose `rust-ingester  | ` prefixes
(and Compose's own `... exited with code N` lines), CRLF, ANSI colours, tracing lines and their
unprefixed continuation lines, stderr `eprintln!` lines, the panic hook banner (with or without
brackets), Rust's default panic message (old and new forms), backtraces, `Error: ...` lines and
the `JoinHandle` result Debug shapes.

`LogParser.feed` takes one physical line at a time, with its 1-based number, and returns the
records it completes. Ordinary lines produce nothing, so a caller may feed only the lines
`scan.candidate_lines` picks out (plus the follow-up lines it adds) and get the same records.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from ..sources.common import SECONDS_CACHE, Problem, parse_time, quick_init, strip_controls

TASKS = ("firehose", "backfill", "labeler")
PATH_TASK = {
    "A": "firehose",
    "B": "backfill",
    "C": "labeler",
    "D": "firehose",
    "E": "backfill",
    "F": "labeler",
    "G": "firehose",
    "H": "backfill",
}

# How many physical lines after a block's first line can still belong to it. The scanner
# forwards this many follow-up lines after each block start, so both feeding styles agree.
BLOCK_SPAN = {"hook": 20, "default": 30, "error": 24}
BACKTRACE_HEAD = 12
# Docker restarts after at least 100 ms; a process's own stdout and stderr lines after its last
# one interleave within a few milliseconds. A needle line this long after a run's end (with no
# banner in between) belongs to the next run.
RESTART_GAP = 0.08
_TEXT_CAP = 2000


@quick_init
@dataclass(frozen=True)
class Banner:
    """A container start: the `Starting rsky-ingester` line, or a first-of-run line standing in
    for a banner the stream lost (`synthetic`)."""

    ts: float | None
    prev_ts: float | None
    synthetic: bool
    text: str
    source: str = field(compare=False)
    line: int = field(compare=False)


@quick_init
@dataclass(frozen=True)
class ExitTrace:
    """An `[EXIT-TRACE]` breadcrumb (or the stdout `EXIT PATH` twin)."""

    ts: float | None
    text: str
    path: str | None
    task: str | None
    source: str = field(compare=False)
    line: int = field(compare=False)


@quick_init
@dataclass(frozen=True)
class TaskResult:
    """The Debug of a task's `JoinHandle` result: kind is `ok-ok`, `ok-err`, `join-panic`,
    `join-cancelled` or `unknown`; `error` the text inside, `innermost` with wrappers peeled."""

    ts: float | None
    task: str | None
    kind: str
    error: str | None
    innermost: str | None
    text: str
    source: str = field(compare=False)
    line: int = field(compare=False)


@quick_init
@dataclass(frozen=True)
class Critical:
    """A `CRITICAL:` line; kind is host-error, host-ok, task-completed, task-panicked,
    all-exited, family-exited or other."""

    ts: float | None
    kind: str
    task: str | None
    host: str | None
    detail: str | None
    text: str
    source: str = field(compare=False)
    line: int = field(compare=False)


@quick_init
@dataclass(frozen=True)
class Panic:
    """A panic: `hook` (FATAL PANIC OCCURRED banner) or `default` (Rust's own message)."""

    ts: float | None
    style: str
    thread: str | None
    location: str | None
    message: str | None
    backtrace: tuple[str, ...]
    text: str
    source: str = field(compare=False)
    line: int = field(compare=False)


@quick_init
@dataclass(frozen=True)
class ErrorExit:
    """main returned Err: Rust printed `Error: <message>` (then causes and a backtrace)."""

    ts: float | None
    message: str
    causes: tuple[str, ...]
    backtrace: tuple[str, ...]
    source: str = field(compare=False)
    line: int = field(compare=False)


@quick_init
@dataclass(frozen=True)
class ComposeExit:
    """Compose's own `<container> exited with code N` line in an attached stream."""

    ts: float | None
    name: str
    code: int
    source: str = field(compare=False)
    line: int = field(compare=False)


@quick_init
@dataclass(frozen=True)
class Pressure:
    """Memory pressure reported by the service: backpressure warnings, in-flight metrics."""

    ts: float | None
    events_in_memory: int | None
    text: str
    source: str = field(compare=False)
    line: int = field(compare=False)


@quick_init
@dataclass(frozen=True)
class Fact:
    """A line that says something about the run without ending it. kind:

    `config` the `Configuration: IngesterConfig { .. }` line (value: the redis_url, redacted;
    hosts: relay and labeler host counts); `hosts` `Starting X ingesters for N hosts` (task, count);
    `unknown-mode` the error! line before `exit(1)` (value: the mode); `loader` the dynamic
    loader refused the binary (value: what is missing); `retry` a connection error a host task
    logs and retries (task, host; `maxmemory` when Redis refused the write for its maxmemory;
    count: how many such lines the record stands for, None for itself alone, see `repeated`);
    `graceful-stop` Compose's own `Gracefully stopping...` (the operator's Ctrl-C); `write-dead`
    the reader could not hand a batch to the write task (it is gone); `idle` labeler mode with no
    hosts sleeping forever.
    """

    ts: float | None
    kind: str
    task: str | None
    value: str | None
    count: int | None
    text: str
    source: str = field(compare=False)
    line: int = field(compare=False)


@quick_init
@dataclass(frozen=True)
class EndOfLog:
    """The end of the stream: how many physical lines, and the time on the last one (if any)."""

    lines: int
    last_ts: float | None
    source: str = field(compare=False)


# every record class, in one order (the forked reader sends a record as its class's place here)
RECORD_TYPES = (
    Banner, ExitTrace, TaskResult, Critical, Panic, ErrorExit, ComposeExit, Pressure, Fact, EndOfLog, Problem,
)
LogRecord = (
    Banner
    | ExitTrace
    | TaskResult
    | Critical
    | Panic
    | ErrorExit
    | ComposeExit
    | Pressure
    | Fact
    | EndOfLog
    | Problem
)

_COMPOSE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*) +\| ?(.*)$", re.DOTALL)
_COMPOSE_EXIT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*) exited with code (-?\d{1,10})(?!\d)")
_TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)"
_DOCKER_TS = re.compile(r"^(" + _TS + r") ?(.*)$", re.DOTALL)
# the journald log driver, read back with journalctl: `Nov 29 10:08:34 host ident[pid]: ` (short)
# or `2026-11-29T10:08:34+0000 host ident[pid]: ` (short-iso); only the latter has a year
_JOURNALD = re.compile(
    r"^(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?))"
    r" \S+ [^\s\[\]]+\[\d+\]: (.*)$",
    re.DOTALL,
)
_TRACING = re.compile(r"^(" + _TS + r")?\s*(TRACE|DEBUG|INFO|WARN|ERROR) +(?:(\S.*?): )?(.*)$", re.DOTALL)
_PATH = re.compile(r"EXIT PATH ([A-Z])\b")
_HANDLE = re.compile(r"triggered on (firehose|backfill|labeler)_handle")
_MODE_EXITED = re.compile(r"(Firehose|Backfill|Labeler) mode exited")
_RESULT = re.compile(r"\b(Firehose|Backfill|Labeler) (?:result|ingester exited): (.*)$")
_EXITED = re.compile(r"\b(Firehose|Backfill|Labeler) ingester exited: (.*)$")
_DEFAULT_PANIC = re.compile(r"^thread '([^']*)'(?: \(\d+\))? panicked at (.*)$")
_OLD_PANIC = re.compile(r"^'(.*)', (\S+:\d+:\d+)$")
_FRAME = re.compile(r"^\s+(?:\d+: |at )")
# Bounded digit runs: a number too long for int() is no number (and never a traceback).
_EVENTS_IN_MEMORY = re.compile(r"events_in_memory=(\d{1,30})(?!\d)|Memory metrics: (\d{1,30}) events")
_CRITICALS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("host-error", re.compile(r"(\w+) ingester for (\S+) exited with error: (.*)")),
    ("host-ok", re.compile(r"(\w+) ingester for (\S+) exited successfully()")),
    ("task-completed", re.compile(r"(\w+) task (\d+) completed unexpectedly()")),
    ("task-panicked", re.compile(r"(\w+) task (\d+) panicked or was cancelled: ?(.*)")),
    ("all-exited", re.compile(r"All (\w+) tasks exited()()")),
    ("family-exited", re.compile(r"(\w+) ingester exited unexpectedly()()")),
)
_HINTS = ("[EXIT-TRACE] Running in 'all' mode", "[EXIT-TRACE] About to run ")
# Every line that can produce a record holds one of these; the scanner forwards exactly those
# lines (plus block follow-ups), so reading only them gives the same records as reading all.
NEEDLES = (
    "Starting rsky-ingester",
    "EXIT-TRACE",
    "CRITICAL",
    "PANIC OCCURRED",
    "' panicked at",  # Rust's default message: `thread 'name' panicked at`
    ") panicked at",  # ... and with the thread id: `thread 'name' (10220) panicked at`
    "Error: ",
    " exited with code ",
    " ingester exited: ",
    "Backpressure active",
    "Memory metrics:",
    "Configuration: ",  # each run's configuration (the offending value of a config error)
    "Starting firehose ingesters for 0 hosts",  # an empty relay list: run_* returns Err at once
    "Starting backfill ingesters for 0 hosts",
    "Unknown INGESTER_MODE",  # error! then exit(1): no `Error:` line
    "(required by ",  # the dynamic loader: `version 'GLIBC_2.39' not found (required by ..)`
    "Ingester connection error for",  # a host task's retried error (retry works)
    "Gracefully stopping",  # Compose v1 on the operator's Ctrl-C
    "Gracefully Stopping",  # ... and Compose v2
    "Failed to send batch to write task",  # the write task is gone: nothing is written
    "No labeler hosts configured, sleeping",  # labeler mode with no hosts idles by design
)


def _has_needle(raw: str) -> bool:
    # a loop, not any(...): a generator per line costs more, and this runs on every line read
    for needle in NEEDLES:  # noqa: SIM110
        if needle in raw:
            return True
    return False


def _task(word: str | None) -> str | None:
    if word is None:
        return None
    low = word.lower()
    return low if low in TASKS else None


def _clip(text: str) -> str:
    """A record's text: capped, with any URL password redacted (the `Configuration:` line prints
    REDIS_URL whole, and an error may quote it)."""
    if len(text) > _TEXT_CAP:
        text = text[:_TEXT_CAP] + "…"
    return redact_text(text) if "@" in text else text


def _unwrap(text: str, prefix: str) -> str | None:
    """The text inside `prefix...)` closing brackets, tolerating a cut-off tail."""
    if not text.startswith(prefix):
        return None
    inner = text[len(prefix) :]
    depth = prefix.count("(")
    end = len(inner)
    while depth and end and inner[end - 1] == ")":
        end -= 1
        depth -= 1
    return inner[:end]


def peel(text: str) -> str:
    """Innermost error text: `WebSocket(Io(Custom { .. }))` stays readable, `Ok(Err(x))` -> x."""
    current = text.strip()
    for _ in range(8):
        m = re.match(r"^(?:Ok|Err|Some)\((.*)\)$", current, re.DOTALL)
        if m is None:
            break
        current = m.group(1).strip()
    return current


def classify_result(debug: str) -> tuple[str, str | None, str | None]:
    """(kind, error, innermost) for a `JoinHandle` result Debug string."""
    text = debug.strip()
    if text.startswith("Ok(Ok(()))"):
        return "ok-ok", None, None
    inner = _unwrap(text, "Ok(Err(")
    if inner is not None:
        return "ok-err", inner, _innermost(inner)
    if text.startswith("Err(JoinError::Panic("):
        m = re.search(r'"((?:[^"\\]|\\.)*)"', text)
        msg = m.group(1) if m else None
        return "join-panic", msg, msg
    if text.startswith("Err(JoinError::Cancelled("):
        return "join-cancelled", None, None
    if text.startswith("Err("):
        inner = _unwrap(text, "Err(")
        return "unknown", inner, _innermost(inner or "")
    return "unknown", text or None, None


def _innermost(text: str) -> str:
    """Peel `Variant(...)` wrappers down to the first one holding more than a single word."""
    current = text.strip()
    for _ in range(8):
        m = re.match(r"^[A-Z]\w*\((.*)\)$", current, re.DOTALL)
        if m is None:
            break
        inner = m.group(1).strip()
        if not inner:
            break
        current = inner
    return current


@dataclass
class _Line:
    """One physical line with its prefixes taken apart."""

    ts: float | None
    level: str | None
    target: str | None
    text: str
    compose: str | None
    compose_own: bool
    # the time is the journal's, whole seconds: the line was printed up to a second later
    coarse: bool = False


def _until(line: _Line) -> float | None:
    """The latest time the line may have been printed (a coarse time reads up to 1 s early)."""
    return line.ts + 1.0 if line.coarse and line.ts is not None else line.ts


# `docker logs --timestamps` prefix in its usual shape. After it, a line's reading depends on the
# rest alone (a Compose prefix cannot follow a timestamp), so repeated bodies are read once.
_DOCKER_PREFIX = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ")
_CACHE_MAX = 4096
_K = TypeVar("_K")
_V = TypeVar("_V")


def _remember(cache: dict[_K, _V], key: _K, value: _V) -> _V:
    """Keep `value` for `key` in one of the line caches (emptied when `_CACHE_MAX` full): a
    crash loop prints the same lines in every run, and each distinct one is read once."""
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value
    return value
_split_cache: dict[str | tuple[int, str], tuple[str | None, str | None, str]] = {}
# tracing's own timestamp as it prints it (dimmed), after Docker's
_TRACING_HEAD = re.compile(r"\x1b\[2m\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z\x1b\[0m ")


def split_line(raw: str) -> _Line:
    """Strip line ending, ANSI, Compose and Docker prefixes; parse a tracing prefix if present."""
    if raw[:1].isdigit():
        m = _DOCKER_PREFIX.match(raw)
        if m is not None:
            cut = m.end()
            rest = raw[cut:]
            # parse_time's own fast path, inlined: this runs on every line read
            frac = raw[19 : cut - 2]  # "" or ".ddd"
            base = SECONDS_CACHE.get(raw[:19])
            if base is not None and len(frac) <= 10 and frac.isascii():
                ts: float | None = base + float(frac) if frac else base
            else:
                ts = parse_time(raw[: cut - 1])
            hit = _split_cache.get(rest)
            if hit is not None:
                return _Line(ts, hit[0], hit[1], hit[2], None, False)
            # A tracing line's own timestamp is not read when Docker's is (only its length
            # moves the rest): the same body under another one reads the same.
            body: tuple[int, str] | None = None
            if ts is not None and rest[:4] == "\x1b[2m":
                h = _TRACING_HEAD.match(rest)
                if h is not None:
                    body = (h.end(), rest[h.end() :])
                    hit = _split_cache.get(body)
                    if hit is not None:
                        return _Line(ts, hit[0], hit[1], hit[2], None, False)
            line = _split_line(raw)
            if line.compose is None and not line.compose_own and line.ts == ts:
                if len(_split_cache) >= _CACHE_MAX:
                    _split_cache.clear()
                _split_cache[rest] = (line.level, line.target, line.text)
                if body is not None:
                    _split_cache[body] = (line.level, line.target, line.text)
            return line
    return _split_line(raw)


def _split_line(raw: str) -> _Line:
    # Every record is made from what is left: no escape sequence, no control but tab.
    s = strip_controls(raw.rstrip("\r\n"))
    compose: str | None = None
    compose_own = False
    journal_ts: float | None = None
    if "]: " in s[:120]:
        jm = _JOURNALD.match(s)
        if jm is not None:
            journal_ts = parse_time(jm.group(1)) if jm.group(1) else None
            s = jm.group(2)
    if "| " in s[:80] or s.endswith("|"):
        m = _COMPOSE.match(s)
        if m is not None:
            compose, s = m.group(1), m.group(2)
    elif " exited with code " in s and _COMPOSE_EXIT.match(s):
        compose_own = True
    ts: float | None = None
    t: re.Match[str] | None = None
    matched = False  # t is the tracing match of s
    if s[:1].isdigit():
        m = _DOCKER_TS.match(s)
        if m is not None:
            rest = m.group(2)
            t = _TRACING.match(rest)
            if t is not None and t.group(1) is None and rest[:1] == " ":
                # `<ts>  INFO target: msg`: the timestamp is tracing's own, no Docker prefix
                t = _TRACING.match(s)
            else:
                ts = parse_time(m.group(1))
                s = rest
            matched = True
    level: str | None = None
    target: str | None = None
    if s[:1].isdigit() or s[:1] == " " or s[:5] in ("TRACE", "DEBUG", "INFO ", "WARN ", "ERROR"):
        if not matched:
            t = _TRACING.match(s)
        if t is not None and (t.group(1) is not None or ts is not None or s[:1] != " "):
            if ts is None and t.group(1) is not None:
                ts = parse_time(t.group(1))
            level, target, s = t.group(2), t.group(3), t.group(4)
    coarse = False
    if ts is None and journal_ts is not None:
        ts, coarse = journal_ts, journal_ts == int(journal_ts)
    return _Line(ts, level, target, s, compose, compose_own, coarse)


@dataclass
class _Block:
    kind: str  # hook | default | error
    first: int
    ts: float | None
    thread: str | None = None
    location: str | None = None
    message: list[str] = field(default_factory=list)
    backtrace: list[str] = field(default_factory=list)
    causes: list[str] = field(default_factory=list)
    section: str = "head"
    text: str = ""
    # a second hook banner interleaved line by line with this one (two threads panicking at once)
    twin: _Block | None = None


_OLD_TAIL = re.compile(r"^(.*)', (\S+:\d+:\d+)$")


def _default_panic(head: tuple[str, str], number: int, ts: float | None, text: str) -> _Block:
    """The block of Rust's own panic message, `thread 'x' panicked at <where>` (`_DEFAULT_PANIC`:
    the thread and where)."""
    thread, where = head
    b = _Block("default", number, ts, thread=thread, text=text)
    where = where.rstrip()
    old = _OLD_PANIC.match(where)
    if old is not None:  # Rust < 1.73: message and location on one line
        b.message = [old.group(1)]
        b.location = old.group(2)
        b.section = "note"
    elif where.startswith("'"):  # ... and a message over several lines
        b.message = [where[1:]]
        b.section = "quoted"
    else:
        b.location = where[:-1] if where.endswith(":") else where
    return b


class LogParser:
    """Turns physical lines into records; holds only the block being read and run-start hints."""

    def __init__(self, source: str, service: str = "ingester") -> None:
        self.source = source
        # `docker compose logs` of a project interleaves every service: only the ones whose
        # prefix names the ingester are read (`rust-indexer  | ..` is another program)
        self.service = service
        self._block: _Block | None = None
        self._prev_raw = ""
        self._prev_line = 0
        self._lines = 0
        self._terminal = False
        self._terminal_ts: float | None = None
        self._after_compose_exit = False
        self._hints: set[str] = set()
        # A run's stderr breadcrumbs can reach Docker before its stdout banner; a first-of-run
        # line then opens the run and the banner that follows joins it.
        self._synthetic_open = False
        self._synthetic_ts: float | None = None
        self._emitted = False

    # -- public -------------------------------------------------------------------------------
    def feed(self, number: int, raw: str) -> list[LogRecord]:
        """Records completed by line `number` (1-based, may skip ordinary lines)."""
        if number > self._lines:
            self._lines = number
        block = self._block
        if block is None and not _has_needle(raw):
            # an ordinary line (most of a log): only remembered, parsed if a banner needs it
            self._prev_line, self._prev_raw = number, raw
            return []
        out: list[LogRecord] = []
        line = split_line(raw)
        if line.compose is not None and self.service not in line.compose.lower():
            self._prev_line, self._prev_raw = number, raw
            return out
        if line.compose_own and self.service not in line.text.split(" exited with code ", 1)[0].lower():
            self._prev_line, self._prev_raw = number, raw
            return out
        if block is not None and number - block.first > BLOCK_SPAN[block.kind]:
            self._close_block(out)
            block = None
        if block is None or not self._continue_block(block, line, out):
            self._classify(number, line, out)
        self._prev_line, self._prev_raw = number, raw
        if out or self._block is not None:
            self._emitted = True
        return out

    def in_block(self) -> bool:
        """True while a panic or `Error:` block is open: the lines that follow may belong to it."""
        return self._block is not None

    def summarisable(self) -> bool:
        """True when a line that yields only a `Pressure` record would change nothing here but
        `_prev_*` (no open block, no Compose exit waiting for the next run's first line)."""
        # A run that has ended must see its next line: a late one opens the next run.
        return self._block is None and not self._after_compose_exit and not self._terminal

    def finish(self, total_lines: int | None = None) -> list[LogRecord]:
        """Flush what is pending and close the stream."""
        out: list[LogRecord] = []
        self._close_block(out)
        lines = total_lines if total_lines is not None else self._lines
        # the time on the file's last line itself (the scanner always forwards that line)
        last_ts = self._prev_ts() if self._prev_line == lines else None
        out.append(EndOfLog(lines, last_ts, self.source))
        return out

    # -- internals ----------------------------------------------------------------------------
    def _prev_ts(self) -> float | None:
        return split_line(self._prev_raw).ts if self._prev_raw else None

    def _close_block(self, out: list[LogRecord]) -> None:
        b = self._block
        if b is None:
            return
        self._block = None
        if b.kind == "error":
            out.append(
                ErrorExit(
                    b.ts,
                    _clip(b.text),
                    tuple(b.causes[:BACKTRACE_HEAD]),
                    tuple(b.backtrace[:BACKTRACE_HEAD]),
                    self.source,
                    b.first,
                )
            )
            return
        out.append(self._panic(b, b.backtrace))
        if b.twin is not None:
            out.append(self._panic(b.twin, b.backtrace))

    def _panic(self, b: _Block, backtrace: list[str]) -> Panic:
        message = " ".join(b.message).strip() or None
        return Panic(
            b.ts,
            b.kind,
            b.thread,
            b.location,
            _clip(message) if message else None,
            tuple(backtrace[:BACKTRACE_HEAD]),
            _clip(b.text),
            self.source,
            b.first,
        )

    def _starts_block(self, text: str) -> bool:
        return (
            "FATAL PANIC OCCURRED" in text
            or (text.startswith("thread '") and " panicked at " in text)
            or text.startswith("Error: ")
            or "Starting rsky-ingester" in text
        )

    def _continue_block(self, b: _Block, line: _Line, out: list[LogRecord]) -> bool:
        """True if the line belonged to the open block (and needs no other reading)."""
        text = line.text.strip()
        if line.compose_own:
            self._close_block(out)
            return False
        if line.level is not None:
            return False  # another thread's tracing line: not part of a stderr block
        if b.kind == "hook" and b.twin is None and b.location is None and "FATAL PANIC OCCURRED" in text:
            # a second thread's banner, line by line between this one's: read both
            b.twin = _Block("hook", b.first + 1, line.ts, text=text)
            return True
        if self._starts_block(text) or "[EXIT-TRACE]" in text:
            self._close_block(out)
            return False
        if b.kind == "hook":
            return self._continue_hook(b, text, out)
        if b.kind == "default":
            return self._continue_default(b, text, out)
        return self._continue_error(b, text, out)

    def _continue_hook(self, b: _Block, text: str, out: list[LogRecord]) -> bool:
        if text.startswith("===="):
            if b.section == "backtrace":
                self._close_block(out)
            elif b.section == "message":
                b.section = "tail"
            return True
        twin = b.twin
        if text.startswith("Location:"):
            if twin is not None and b.location is not None and twin.location is None:
                twin.location = text[len("Location:") :].strip() or None
            else:
                b.location = text[len("Location:") :].strip() or None
                b.section = "location"
        elif text.startswith("Message:"):
            if twin is not None and b.message and not twin.message:
                twin.message = [text[len("Message:") :].strip()]
            else:
                b.message = [text[len("Message:") :].strip()]
                b.section = "message"
        elif text.startswith("Backtrace:"):
            b.section = "backtrace"
            rest = text[len("Backtrace:") :].strip()
            if rest:
                b.backtrace.append(_clip(rest))
        elif b.section == "backtrace":
            if text:
                b.backtrace.append(_clip(text))
        elif b.section == "message" and text and not text.startswith(("This is a critical", "Please report")):
            if len(b.message) < 5:
                b.message.append(text)
        elif not text or text.startswith(("This is a critical", "Please report")):
            b.section = "tail" if b.section == "message" else b.section
        return True

    def _continue_default(self, b: _Block, text: str, out: list[LogRecord]) -> bool:
        if b.section == "quoted":
            # Rust < 1.73: `panicked at '<msg>', file:line:col` with the message over several lines
            m = _OLD_TAIL.match(text)
            if len(b.message) < 5:
                b.message.append(m.group(1) if m is not None else text)
            if m is not None:
                b.location = m.group(2)
                b.section = "note"
            return True
        if b.section == "head":
            if text.startswith("note: "):
                b.section = "note"
                return True
            if text.startswith("stack backtrace:"):
                b.section = "backtrace"
                return True
            if not text:
                b.section = "note"
                return True
            if len(b.message) < 5:
                b.message.append(text)
            return True
        if b.section == "note":
            if text.startswith("stack backtrace:"):
                b.section = "backtrace"
                return True
            if text.startswith("note: "):
                return True
            self._close_block(out)
            return False
        # backtrace frames
        if _FRAME.match(text if text.startswith(" ") else " " + text) and (
            text[:1].isdigit() or text.startswith("at ")
        ):
            b.backtrace.append(_clip(text))
            return True
        if text.startswith("note: "):
            return True
        self._close_block(out)
        return False

    def _continue_error(self, b: _Block, text: str, out: list[LogRecord]) -> bool:
        if not text:
            if b.section == "head":
                b.section = "gap"
            return True
        if text.startswith("Caused by:"):
            b.section = "causes"
            return True
        if text.startswith(("Stack backtrace:", "stack backtrace:")):
            b.section = "backtrace"
            return True
        if b.section == "causes" and (text[:1].isdigit() or not b.causes):
            b.causes.append(_clip(text.split(": ", 1)[1] if text[:1].isdigit() else text))
            return True
        if b.section == "backtrace" and (text[:1].isdigit() or text.startswith("at ")):
            b.backtrace.append(_clip(text))
            return True
        if b.section == "head" and b.text.count("\n") < 3 and len(b.text) < _TEXT_CAP:
            b.text += "\n" + text
            return True
        self._close_block(out)
        return False

    def _new_run(
        self, number: int, line: _Line, synthetic: bool, out: list[LogRecord], *, prev: bool = True
    ) -> None:
        self._close_block(out)
        prev_ts = self._prev_ts() if prev and self._prev_line == number - 1 else None
        out.append(Banner(line.ts, prev_ts, synthetic, _clip(line.text.strip()), self.source, number))
        self._terminal = False
        self._terminal_ts = None
        self._after_compose_exit = False
        self._hints = set()
        self._synthetic_open = synthetic
        self._synthetic_ts = line.ts if synthetic else None
        self._emitted = True

    def _classify(self, number: int, line: _Line, out: list[LogRecord]) -> None:
        """The records of a line outside any block, and the run or block it starts."""
        text = line.text.strip()
        if not text and not line.compose_own:
            return
        if line.compose_own:
            self._compose_exit(number, line, text, out)
            return
        key = (text, line.level, line.target)
        reading = _readings.get(key)
        if reading is None:
            reading = _read(text, line.level, line.target)
            if reading[0] != "pressure":  # (each carries its own number: never read again)
                _remember(_readings, key, reading)
        kind, hint, needle, got = reading
        if kind == "banner":
            self._banner(number, line, out)
            return
        self._maybe_new_run(number, line, hint, needle, out)
        src = self.source
        if kind in _OPENS:
            self._close_block(out)
            if kind == "hook":
                self._block = _Block("hook", number, line.ts, text=text)
            elif kind == "default":
                self._block = _default_panic(got, number, line.ts, text)
            else:  # `Error: ` printed by main: the end of the run
                self._block = _Block("error", number, line.ts, text=text[len("Error: ") :])
                self._terminal = True
                self._terminal_ts = _until(line)
        elif kind == "trace":
            body, path, task, result = got
            out.append(ExitTrace(line.ts, body, path, task, src, number))
            if result is not None:
                rkind, error, inner = result
                out.append(TaskResult(line.ts, task, rkind, error, inner, body, src, number))
            if path is not None:
                self._terminal = True
                if self._terminal_ts is None:
                    self._terminal_ts = _until(line)
        elif kind == "critical":
            ckind, task, host, detail, clipped = got
            out.append(Critical(line.ts, ckind, task, host, detail, clipped, src, number))
        elif kind == "exited":
            task, (rkind, error, inner), clipped = got
            out.append(TaskResult(line.ts, task, rkind, error, inner, clipped, src, number))
        elif kind == "pressure":
            n, clipped = got
            out.append(Pressure(line.ts, n, clipped, src, number))
        elif kind == "fact":
            fkind, task, value, count, clipped = got
            if fkind in ("unknown-mode", "loader"):
                self._terminal = True  # exit(1) follows; the loader's line is all a run prints
                if self._terminal_ts is None or fkind == "loader":
                    self._terminal_ts = _until(line)
            out.append(Fact(line.ts, fkind, task, value, count, clipped, src, number))

    def _compose_exit(self, number: int, line: _Line, text: str, out: list[LogRecord]) -> None:
        """Compose's own `<container> exited with code N` line: the run has ended."""
        m = _COMPOSE_EXIT.match(text)
        if m is not None:
            self._close_block(out)
            out.append(ComposeExit(line.ts, m.group(1), int(m.group(2)), self.source, number))
            self._terminal = True
            self._terminal_ts = _until(line)
            self._after_compose_exit = True

    def _banner(self, number: int, line: _Line, out: list[LogRecord]) -> None:
        """The `Starting rsky-ingester` line: a new run, unless the run its breadcrumbs opened
        (they can reach Docker before the banner) is still this one."""
        soon = (
            line.ts is not None
            and self._synthetic_ts is not None
            and line.ts - self._synthetic_ts < RESTART_GAP
        )
        if self._synthetic_open and (not self._terminal or soon):
            self._synthetic_open = False  # the banner of the run its breadcrumbs opened
            return
        self._new_run(number, line, False, out)

    def _maybe_new_run(
        self, number: int, line: _Line, hint: str | None, needle: bool, out: list[LogRecord]
    ) -> None:
        """Open a run without a banner when the line must be the next process's: printed well
        after the last run ended, a run-start breadcrumb seen again (or after an end), or the
        first ingester line of Compose's stream after an `exited with code`."""
        if (
            self._terminal
            and self._terminal_ts is not None
            and line.ts is not None
            and line.ts > self._terminal_ts + RESTART_GAP
        ):
            # no banner (RUST_LOG=warn hides it) but the last run already ended: a line this
            # much later is printed by the next process
            self._new_run(number, line, True, out)
        if hint is not None and (self._terminal or hint in self._hints or not self._emitted):
            self._new_run(number, line, True, out)
        elif (
            self._after_compose_exit
            and line.compose is not None
            and needle
        ):
            self._new_run(number, line, True, out, prev=False)
        if hint is not None:
            self._hints.add(hint)

_CONFIG_URL = re.compile(r'redis_url: "((?:[^"\\]|\\.)*)"')
_CONFIG_LIST = re.compile(r"(relay_hosts|labeler_hosts): \[([^\]]*)\]")
_HOSTS = re.compile(r"Starting (firehose|backfill|labeler) ingesters for (\d+) hosts")
_UNKNOWN_MODE = re.compile(r"Unknown INGESTER_MODE: ?(\S*)")
_LOADER = re.compile(r"(version [`'][^`']+[`'] not found) \(required by")
_RETRY = re.compile(r"(Firehose|Backfill|Labeler)Ingester connection error for (\S+?):? (.*)$")
_URL_PASSWORD = re.compile(r'((?:\b[a-z][a-z0-9+.-]*://|(?<=")|^)[^:/@\s"]*:)[^@\s"]+@')


def redact_url(value: str) -> str:
    """A URL (or URL-like value) with its password replaced: `redis://:<redacted>@redis:6379`."""
    return _URL_PASSWORD.sub(lambda m: m.group(1) + "<redacted>@", value)


def redact_text(text: str) -> str:
    """A log line with every URL password redacted (the `Configuration:` line prints REDIS_URL)."""
    return redact_url(text) if "@" in text else text


def _fact(level: str | None, target: str | None, text: str) -> tuple[str, str | None, str | None, int | None] | None:
    """(kind, task, value, count) of a `Fact` line, or None."""
    if "Configuration: " in text and "IngesterConfig" in text:
        um = _CONFIG_URL.search(text)
        lists = {k: v for k, v in _CONFIG_LIST.findall(text)}
        relays = lists.get("relay_hosts")
        count = None if relays is None else len([h for h in relays.split(",") if h.strip(' "')])
        return "config", None, redact_url(um.group(1)) if um else None, count
    # each search only where its literal is: a retried connection error (1 line in 100 of some
    # logs) then costs one search, not four
    if "Ingester connection error for" in text:
        rm = _RETRY.search(text)
        if rm is not None:
            return ("maxmemory" if "maxmemory" in text else "retry"), _task(rm.group(1)), rm.group(2), None
    hm = _HOSTS.search(text) if " ingesters for " in text else None
    if hm is not None:
        return "hosts", hm.group(1), None, int(hm.group(2))
    if "Unknown INGESTER_MODE" in text and level is not None:
        mm = _UNKNOWN_MODE.search(text)
        return "unknown-mode", None, (mm.group(1) if mm else None), None
    lm = _LOADER.search(text) if "(required by" in text else None
    if lm is not None:
        return "loader", None, lm.group(1), None
    if "Failed to send batch to write task" in text:
        return "write-dead", _task((target or "").rsplit("::", 1)[-1]), None, None
    if "No labeler hosts configured, sleeping" in text:
        return "idle", "labeler", None, None
    if text.startswith(("Gracefully stopping", "Gracefully Stopping")):
        return "graceful-stop", None, None, None
    return None


def _read_critical(text: str) -> tuple[str, str | None, str | None, str | None, str]:
    """(kind, task, host, clipped detail, clipped text) of a `CRITICAL` line."""
    body = text.split("CRITICAL", 1)[1].lstrip(":").strip()
    for kind, rx in _CRITICALS:
        m = rx.search(body)
        if m is not None:
            word, host, detail = m.group(1), m.group(2), m.group(3)
            if kind in ("task-completed", "task-panicked"):
                host = None
            return kind, _task(word), host or None, _clip(detail) if detail else None, _clip(text)
    return "other", None, None, None, _clip(text)


_FactRead = tuple[str, str | None, str | None, int | None, str]  # `_fact`'s, and the clipped text
_Trace = tuple[str, str | None, str | None, tuple[str, str | None, str | None] | None]
# What `LogParser._classify` reads in a line outside any block, once per distinct line (text,
# level, target; `_remember`), a crash loop printing the same lines in every run: (kind, the
# run-start hint it holds, whether it holds a needle, what the kind reads). kind: "banner",
# a block it opens (`_OPENS`: the panic hook's, Rust's own panic message, main's `Error:`),
# "trace" (`_Trace`), "critical" (`_read_critical`), "exited" (task, classified result,
# clipped text), "pressure" (number, clipped text), "fact" (`_FactRead`) or "none".
_Reading = tuple[str, str | None, bool, Any]
_readings: dict[tuple[str, str | None, str | None], _Reading] = {}
_OPENS = ("hook", "default", "error")


def _read(text: str, level: str | None, target: str | None) -> _Reading:
    """A line's `_Reading`, its checks in the order they decide (a banner first, then a block it
    opens, then the record it makes)."""
    if "Starting rsky-ingester" in text:
        return "banner", None, True, None
    hint: str | None = None
    if "[EXIT-TRACE] " in text:  # both hints start so
        for h in _HINTS:
            if h in text:
                hint = h
                break
    needle = _has_needle(text)
    if "FATAL PANIC OCCURRED" in text:
        return "hook", hint, needle, None
    if text.startswith("thread '") and " panicked at " in text:
        m = _DEFAULT_PANIC.match(text)
        if m is not None:
            return "default", hint, needle, (m.group(1), m.group(2))
    if text.startswith("Error: ") and level is None:
        return "error", hint, needle, None
    if "[EXIT-TRACE]" in text:
        return "trace", hint, needle, _read_trace(text)
    if "CRITICAL" in text:
        return "critical", hint, needle, _read_critical(text)
    m = _EXITED.search(text)
    if m is not None:
        return "exited", hint, needle, (_task(m.group(1)), classify_result(m.group(2)), _clip(text))
    if "Backpressure active" in text or "Memory metrics:" in text:
        m2 = _EVENTS_IN_MEMORY.search(text)
        return "pressure", hint, needle, (int(m2.group(1) or m2.group(2)) if m2 else None, _clip(text))
    fact = _fact(level, target, text)
    if fact is not None:
        return "fact", hint, needle, (*fact, _clip(text))
    return "none", hint, needle, None


def _read_trace(text: str) -> _Trace:
    """(clipped body, exit path, task, classified result or None) of an `[EXIT-TRACE]` line."""
    body = text.split("[EXIT-TRACE]", 1)[-1].strip()
    pm = _PATH.search(body)
    path = pm.group(1) if pm else None
    task: str | None = None
    hm = _HANDLE.search(body)
    if hm is not None:
        task = hm.group(1)
    else:
        mm = _MODE_EXITED.search(body)
        if mm is not None:
            task = _task(mm.group(1))
    if task is None and path is not None:
        task = PATH_TASK.get(path)
    rm = _RESULT.search(body)
    if rm is not None:
        task = _task(rm.group(1))
    return _clip(body), path, task, classify_result(rm.group(2)) if rm is not None else None


def repeated(records: list[LogRecord], lines: int) -> list[LogRecord]:
    """The records of a retried connection error's line that stands for `lines` lines reading
    the same (the reader counted the others instead of handing them out): its `retry` or
    `maxmemory` Fact carries the count."""
    if lines <= 1:
        return records
    return [
        replace(r, count=lines) if isinstance(r, Fact) and r.kind in ("retry", "maxmemory") else r
        for r in records
    ]


def parse_log(lines: Iterable[str], source: str = "ingester.log") -> Iterator[LogRecord]:
    """Every record in a log, reading every line."""
    parser = LogParser(source)
    number = 0
    for number, raw in enumerate(lines, 1):
        yield from parser.feed(number, raw)
    yield from parser.finish(number)
