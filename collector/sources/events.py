"""Reader for `events.jsonl`: `docker events --format '{{json .}}'`, one object a line."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ..sources.common import Problem, json_lines

SOURCE = "events.jsonl"


@dataclass(frozen=True)
class DockerEvent:
    """One container event; `action` is its first word (`die`, `start`, `oom`, `kill`...)."""

    time: float
    action: str
    container_id: str | None
    name: str | None
    exit_code: int | None
    signal: int | None
    text: str
    source: str = field(compare=False)
    line: int = field(compare=False)


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def parse_events(lines: Iterable[str], source: str = SOURCE) -> Iterator[DockerEvent | Problem]:
    """Container events in file order; unreadable lines become `Problem` records."""
    for item in json_lines(lines, source):
        if isinstance(item, Problem):
            yield item
            continue
        number, text, obj = item
        if not isinstance(obj, dict):
            yield Problem(source, f"line {number} is not a JSON object", number)
            continue
        if obj.get("Type", "container") != "container":
            continue
        action = str(obj.get("Action") or obj.get("status") or "").split(":", 1)[0].strip()
        nano = obj.get("timeNano")
        secs = obj.get("time")
        try:
            when = int(nano) / 1e9 if nano is not None else float(secs)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            yield Problem(source, f"line {number} has no usable time", number)
            continue
        actor = obj.get("Actor") if isinstance(obj.get("Actor"), dict) else {}
        assert isinstance(actor, dict)
        attrs = actor.get("Attributes") if isinstance(actor.get("Attributes"), dict) else {}
        assert isinstance(attrs, dict)
        cid = actor.get("ID") or obj.get("id")
        yield DockerEvent(
            when,
            action,
            str(cid) if cid else None,
            str(attrs["name"]) if attrs.get("name") else None,
            _int(attrs.get("exitCode")),
            _int(attrs.get("signal")),
            text[:500],
            source,
            number,
        )
