"""Records and helpers shared by every reader: timestamps, sizes and the `Problem` record."""

from __future__ import annotations

import calendar
import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?\s?(Z|[+-]\d\d:?\d\d)?")


_T = TypeVar("_T")


def quick_init(cls: type[_T]) -> type[_T]:
    """Give a frozen dataclass an `__init__` that fills the new instance's `__dict__` at once.

    A frozen dataclass's own `__init__` sets each field through `object.__setattr__`: about 0.1 µs
    a field, and a long log's records (the reading waits for them) and its runs are made tens of
    thousands of times, which made that a tenth of the reading. The class stays what it was:
    same signature and defaults, and assigning a field afterwards still raises
    `FrozenInstanceError`. Only the shapes that need nothing more are taken: no default factory,
    no `init=False` or keyword-only field, no `__post_init__`, no slots."""
    own = fields(cls)  # type: ignore[arg-type]
    params = getattr(cls, "__dataclass_params__", None)
    if (
        params is None
        or not params.frozen
        or hasattr(cls, "__post_init__")
        or hasattr(cls, "__slots__")
        or any(f.default_factory is not MISSING or not f.init or f.kw_only for f in own)
    ):
        raise TypeError(f"quick_init: {cls.__name__} is not a plain frozen dataclass")
    defaults: dict[str, Any] = {}
    args = []
    for i, f in enumerate(own):
        if f.default is MISSING:
            args.append(f.name)
        else:
            defaults[f"_default_{i}"] = f.default
            args.append(f"{f.name}=_default_{i}")
    body = "".join(f"\n    d[{f.name!r}] = {f.name}" for f in own)
    source = f"def __init__(self, {', '.join(args)}):\n    d = self.__dict__{body}\n"
    exec(source, defaults)  # noqa: S102 - built from the class's own field names (identifiers)
    init = defaults["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


@dataclass(frozen=True)
class Problem:
    """A line or file a reader could not read; `cost` says what the verdict loses."""

    source: str
    message: str
    line: int = field(default=0, compare=False)


def parse_time(text: str) -> float | None:
    """Epoch seconds for an RFC 3339 time (nanoseconds, `Z`, offsets, no zone = UTC), else None."""
    # Fast path for the common `....:SS.fffffffffZ`: the whole seconds come from a small cache
    # (log lines arrive in bursts within the same second).
    base = SECONDS_CACHE.get(text[:19])
    if base is not None:
        rest = text[19:]
        frac = rest[1:-1]
        if rest[:1] == "." and rest[-1:] == "Z" and frac.isdigit() and frac.isascii():
            return base + float("0." + frac[:9])
    m = _RFC3339.match(text)
    if m is None:
        return None
    year, month, day, hour, minute, sec, frac, zone = m.groups()
    midnight = _DAYS.get(text[:10])
    try:
        if midnight is None:
            midnight = calendar.timegm((int(year), int(month), int(day), 0, 0, 0, 0, 0, 0))
            if len(_DAYS) >= 1024:
                _DAYS.clear()
            _DAYS[text[:10]] = midnight
        whole = midnight + int(hour) * 3600 + int(minute) * 60 + int(sec)  # as timegm adds them
    except (ValueError, OverflowError):
        return None
    if len(SECONDS_CACHE) >= 4096:
        SECONDS_CACHE.clear()
    if text[4] == "-" and text[10] == "T":
        SECONDS_CACHE[text[:19]] = float(whole)
    value = float(whole) + (float("0." + frac[:9]) if frac else 0.0)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        value -= sign * (int(digits[:2]) * 3600 + int(digits[2:4]) * 60)
    return value


# `YYYY-MM-DDTHH:MM:SS` -> epoch seconds, bounded; logs.split_line inlines the fast path
SECONDS_CACHE: dict[str, float] = {}
# `YYYY-MM-DD` -> epoch seconds at its midnight, bounded (a new second costs no timegm)
_DAYS: dict[str, int] = {}


_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([KMGTPE]?i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
}


def parse_size(text: str) -> int | None:
    """Bytes for a Docker size such as `12.5MiB`, `1.2GB` or `0B`; None if it is not one."""
    m = _SIZE.match(text)
    if m is None:
        return None
    unit = (m.group(2) or "").upper()
    if unit not in _UNITS:
        return None
    return int(float(m.group(1)) * _UNITS[unit])


def format_time(epoch: float | None) -> str | None:
    """RFC 3339 UTC with milliseconds, or None."""
    if epoch is None:
        return None
    whole = int(epoch // 1)
    millis = round((epoch - whole) * 1000)
    if millis == 1000:
        whole, millis = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


# Terminal escape sequences as a whole (CSI; OSC, DCS, SOS, PM and APC strings up to their
# terminator or the end of the text; two-byte escapes; their 8-bit C1 forms), then every C0 and C1
# control left but tab. What a log line or a JSON string carries reaches a terminal (summarize's
# stdout) and report.md: an OSC 52 writes the reader's clipboard, a BS rewrites what they see.
_ESCAPES = (
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]?"
    r"|\x1b[\]PX^_][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|[\x90\x98\x9d\x9e\x9f][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
# one pass: an escape sequence whole, else a single control character
_STRIP = re.compile(_ESCAPES + r"|[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_STRIP_KEEP_NEWLINE = re.compile(_ESCAPES + r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_COLOURS = re.compile(r"\x1b\[[0-9;]*m")  # what a log line mostly holds: its colours


def strip_controls(text: str, *, keep_newlines: bool = False) -> str:
    """`text` without terminal escape sequences and C0/C1 control characters (tab kept; with
    `keep_newlines`, `\\n` and `\\r\\n` too, for a whole document)."""
    if text.isprintable():  # the usual case: nothing to drop (tab is not "printable")
        return text
    if keep_newlines:
        return _STRIP_KEEP_NEWLINE.sub("", text.replace("\r\n", "\n"))
    text = _COLOURS.sub("", text)
    return text if text.isprintable() else _STRIP.sub("", text)


class JsonError(ValueError):
    """A JSON text this collector will not read: malformed, nested too deep or with numbers
    no reading of it can use (integers over `INT_DIGITS` digits, infinities, NaN)."""


INT_DIGITS = 30  # beyond any byte count, epoch or exit code (a float's range is 308 digits)
JSON_DEPTH = 64  # nesting beyond any document the capture writes


def _int(text: str) -> int:
    if len(text.lstrip("-")) > INT_DIGITS:
        raise JsonError(f"an integer of {len(text)} digits")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise JsonError(f"a number out of range ({text[:20]}...)")
    return value


def _constant(name: str) -> float:
    raise JsonError(f"{name} is not a JSON number")


def load_json(text: str) -> Any:
    """The value of a JSON text, its strings without control characters (`strip_controls`);
    raises `JsonError` (a ValueError) for anything else, never RecursionError or OverflowError."""
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except RecursionError:
        raise JsonError(f"nested deeper than {JSON_DEPTH} levels") from None
    except JsonError:
        raise
    except ValueError as exc:
        raise JsonError(str(exc)) from None
    return _cleaned(value, 0)


def _cleaned(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return strip_controls(value)
    if depth > JSON_DEPTH:
        raise JsonError(f"nested deeper than {JSON_DEPTH} levels")
    if isinstance(value, dict):
        return {strip_controls(k): _cleaned(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_cleaned(v, depth + 1) for v in value]
    return value


def json_lines(lines: Iterable[str], source: str) -> Iterator[tuple[int, str, Any] | Problem]:
    """`(line number, stripped text, decoded value)` for each non-blank JSON Lines line; bad JSON is a `Problem`."""
    for number, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text:
            continue
        try:
            yield number, text, load_json(text)
        except JsonError as exc:
            yield Problem(source, f"line {number} is not JSON we read ({exc})", number)


def shown_name(path: Path) -> str:
    """A log's file name as the reports print it: bytes that are not UTF-8 replaced (a report
    does not link to such a name: the text no longer names the file)."""
    return path.name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def valid_text(value: object) -> object:
    """`value` (a JSON-like document) with every string made valid UTF-8: a path that is not
    (Python holds its bytes as surrogates) would stop the reports being written or printed."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return value
    if isinstance(value, dict):
        return {valid_text(k): valid_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [valid_text(v) for v in value]
    return value
