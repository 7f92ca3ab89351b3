"""The verify probe's facts, the thresholds and the verdict as typed values, and the parsing
of the probe's JSON and of verify-history.jsonl into them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ..sources.common import load_json
from ..sources.common import parse_time as _parse_time

MIB = 1024 * 1024
FAMILIES = ("firehose", "backfill", "labeler")


class VerifyError(ValueError):
    """The probe's facts, the history or a threshold cannot be read; the message says why."""


class Status(StrEnum):
    """A criterion's outcome; UNKNOWN (the evidence is missing) fails unless allowed."""

    PASS = "pass"  # noqa: S105 - an outcome, not a password
    FAIL = "fail"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Container:
    """The parts of ``docker inspect`` verify needs."""

    name: str
    id: str
    image: str
    path: str
    created: float | None
    started_at: float | None
    started_at_raw: str
    status: str
    running: bool
    restarting: bool
    oom_killed: bool
    exit_code: int
    restart_count: int
    memory_limit: int


@dataclass(frozen=True)
class Sample:
    """One memory reading of the container's cgroup."""

    epoch: float
    bytes: int
    started_at_raw: str
    restart_count: int


@dataclass(frozen=True)
class ExitLine:
    """A log line that means a task or the process ended."""

    ts: str | None
    kind: str
    text: str


@dataclass(frozen=True)
class Logs:
    """What one streaming pass over ``docker logs`` kept."""

    since: str | None
    lines: int
    starts: int
    family_last: Mapping[str, float | None]
    family_count: Mapping[str, int]
    exit_lines_total: int
    exit_lines: tuple[ExitLine, ...]
    error: str | None


@dataclass(frozen=True)
class Baseline:
    """baseline.json: the container as it was when the fix was deployed."""

    recorded_at: float
    recorded_at_raw: str
    container_id: str
    started_at_raw: str
    restart_count: int
    image: str
    kernel_oom_lines: tuple[str, ...]


@dataclass(frozen=True)
class Facts:
    """Everything the host probe reported for one run."""

    probe_started: float
    probe_ended: float
    boot_epoch: float | None
    window_seconds: float
    container: Container | None
    inspect_error: str | None
    samples: tuple[Sample, ...]
    logs: Logs | None
    kernel_source: str | None
    kernel_error: str | None
    kernel_lines: tuple[str, ...]
    baseline: Baseline | None
    baseline_error: str | None


@dataclass(frozen=True)
class HistoryEntry:
    """One line of verify-history.jsonl, as far as later runs use it."""

    checked_at: float
    container_id: str
    started_at: str
    memory_bytes: int | None
    raw: Mapping[str, Any] = field(compare=False, repr=False)


@dataclass(frozen=True)
class Thresholds:
    """The knobs of verify.yml (verify_* variables), in the units a person sets them."""

    min_uptime_hours: float = 24.0
    activity_minutes: float = 10.0
    families: tuple[str, ...] = FAMILIES
    memory_noise_mib: float = 4.0
    memory_min_hours_to_limit: float = 24.0
    memory_max_growth_mib_per_hour: float = 64.0
    memory_min_r2: float = 0.5
    history_hours: float = 168.0
    allow_unknown: bool = False


@dataclass(frozen=True)
class Criterion:
    """One success criterion: outcome, the measured value, the threshold, the evidence."""

    name: str
    title: str
    status: Status
    measured: str
    threshold: str
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True)
class MemoryTrend:
    """A least-squares line through memory readings."""

    points: int
    span_seconds: float
    slope_bytes_per_second: float
    r2: float
    last_bytes: int
    hours_to_limit: float | None


@dataclass(frozen=True)
class Verification:
    """The outcome of one verification run."""

    host: str
    checked_at: float
    criteria: tuple[Criterion, ...]
    allow_unknown: bool
    container_id: str
    started_at: str
    restart_count: int | None
    uptime_hours: float | None
    memory: MemoryTrend | None
    memory_limit: int
    exit_lines: int
    oom_kills: int

    @property
    def failed(self) -> tuple[str, ...]:
        """Names of the criteria that did not pass (unknown counts unless allowed)."""
        bad = {Status.FAIL} if self.allow_unknown else {Status.FAIL, Status.UNKNOWN}
        return tuple(c.name for c in self.criteria if c.status in bad)

    @property
    def passed(self) -> bool:
        """True when no criterion failed."""
        return not self.failed


def parse_time(text: str | None) -> float | None:
    """Epoch of an RFC 3339 time (`sources.common.parse_time`); None for empty or Docker's zero time."""
    if not text or text.strip().startswith("0001-"):
        return None
    return _parse_time(text.strip())


def iso(epoch: float) -> str:
    """RFC 3339 UTC, seconds precision."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise VerifyError(f"{what}: expected an object, got {type(value).__name__}")
    return value


def _num(data: Mapping[str, Any], key: str, what: str, default: float | None = None) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise VerifyError(f"{what}: {key!r} should be a number, got {value!r}")
    return float(value)


def _container(data: Mapping[str, Any]) -> Container:
    try:
        return Container(
            name=str(data["name"]),
            id=str(data["id"]),
            image=str(data["image"]),
            path=str(data.get("path", "")),
            created=parse_time(str(data.get("created", ""))),
            started_at=parse_time(str(data.get("started_at", ""))),
            started_at_raw=str(data.get("started_at", "")),
            status=str(data.get("status", "")),
            running=bool(data.get("running")),
            restarting=bool(data.get("restarting")),
            oom_killed=bool(data.get("oom_killed")),
            exit_code=int(data.get("exit_code", 0)),
            restart_count=int(data.get("restart_count", 0)),
            memory_limit=int(data.get("memory_limit", 0) or 0),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise VerifyError(f"container facts: {exc!r}") from exc


def _logs(data: Mapping[str, Any]) -> Logs:
    families = _obj(data.get("families", {}), "logs.families")
    last: dict[str, float | None] = {}
    count: dict[str, int] = {}
    for name, entry in families.items():
        entry = _obj(entry, f"logs.families.{name}")
        last[str(name)] = parse_time(entry.get("last"))
        count[str(name)] = int(entry.get("count", 0))
    lines = tuple(
        ExitLine(ts=e.get("ts"), kind=str(e.get("kind", "")), text=str(e.get("text", "")))
        for e in (_obj(x, "logs.exit_lines[]") for x in data.get("exit_lines", []))
    )
    return Logs(
        since=data.get("since"),
        lines=int(data.get("lines", 0)),
        starts=int(data.get("starts", 0)),
        family_last=last,
        family_count=count,
        exit_lines_total=int(data.get("exit_lines_total", len(lines))),
        exit_lines=lines,
        error=data.get("error"),
    )


def parse_baseline(data: Mapping[str, Any]) -> Baseline:
    """baseline.json as docs/host-state.md describes it."""
    recorded = parse_time(str(data.get("recorded_at", "")))
    if recorded is None:
        raise VerifyError(f"baseline: recorded_at is not a time: {data.get('recorded_at')!r}")
    try:
        return Baseline(
            recorded_at=recorded,
            recorded_at_raw=str(data["recorded_at"]),
            container_id=str(data["container_id"]),
            started_at_raw=str(data["started_at"]),
            restart_count=int(data["restart_count"]),
            image=str(data.get("image", "")),
            kernel_oom_lines=tuple(str(x) for x in data.get("kernel_oom_lines", [])),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise VerifyError(f"baseline: missing or bad field {exc}") from exc


def parse_facts(data: Any) -> Facts:
    """The probe's JSON object as typed facts; raises VerifyError on a malformed document."""
    try:
        return _parse_facts(data)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        if isinstance(exc, VerifyError):
            raise
        raise VerifyError(f"facts: malformed ({exc})") from exc


def _parse_facts(data: Any) -> Facts:
    data = _obj(data, "facts")
    if data.get("schema") != 1:
        raise VerifyError(f"facts: unknown schema {data.get('schema')!r} (this reads 1)")
    container = data.get("container")
    logs = data.get("logs")
    kernel = _obj(data.get("kernel") or {}, "kernel")
    baseline_raw = data.get("baseline")
    baseline_error = data.get("baseline_error")
    baseline = None
    if baseline_raw is not None:
        try:
            baseline = parse_baseline(_obj(baseline_raw, "baseline"))
        except VerifyError as exc:
            baseline_error = str(exc)
    samples = []
    for raw in data.get("samples", []):
        raw = _obj(raw, "samples[]")
        samples.append(
            Sample(
                epoch=_num(raw, "epoch", "sample"),
                bytes=int(_num(raw, "bytes", "sample")),
                started_at_raw=str(raw.get("started_at", "")),
                restart_count=int(_num(raw, "restart_count", "sample", 0)),
            )
        )
    boot = data.get("boot_epoch")
    return Facts(
        probe_started=_num(data, "probe_started", "facts"),
        probe_ended=_num(data, "probe_ended", "facts"),
        boot_epoch=float(boot) if isinstance(boot, int | float) else None,
        window_seconds=_num(data, "window_seconds", "facts", 0),
        container=_container(_obj(container, "container")) if container is not None else None,
        inspect_error=data.get("inspect_error"),
        samples=tuple(samples),
        logs=_logs(_obj(logs, "logs")) if logs is not None else None,
        kernel_source=kernel.get("source"),
        kernel_error=kernel.get("error"),
        kernel_lines=tuple(str(x) for x in kernel.get("lines", [])),
        baseline=baseline,
        baseline_error=baseline_error,
    )


def parse_history(lines: Iterable[str]) -> tuple[HistoryEntry, ...]:
    """verify-history.jsonl; a line that is not one of ours is skipped, not fatal."""
    entries = []
    for line in lines:
        try:
            raw = load_json(line)
            checked = parse_time(raw["checked_at"])
        except (ValueError, KeyError, TypeError):
            continue
        if checked is None or not isinstance(raw, dict):
            continue
        mem = raw.get("memory_bytes")
        entries.append(
            HistoryEntry(
                checked_at=checked,
                container_id=str(raw.get("container_id", "")),
                started_at=str(raw.get("started_at", "")),
                memory_bytes=int(mem) if isinstance(mem, int | float) else None,
                raw=raw,
            )
        )
    return tuple(entries)
