"""The log reader two ways: through the byte-level prefilter (the fast path) and line by line (the
slow path), and a comparable form of what each gives."""

from __future__ import annotations

from collections.abc import Iterator

from collector.sources.logs import LogParser, LogRecord, parse_log
from collector.sources.scan import CandidateScanner


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def fast(data: bytes, size: int) -> tuple[list[LogRecord], int]:
    parser = LogParser("x.log")
    scanner = CandidateScanner(chunks(data, size))
    out: list[LogRecord] = []
    for number, raw in scanner:
        out.extend(parser.feed(number, raw.decode("utf-8", errors="replace")))
    out.extend(parser.finish(scanner.lines))
    return out, scanner.lines


def split_newlines(text: str) -> list[str]:
    """Lines split on LF only, as the scanner does (str.splitlines also splits on CR, FF...)."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    return [*lines, parts[-1]] if parts[-1] else lines


def slow(data: bytes) -> list[LogRecord]:
    return list(parse_log(split_newlines(data.decode("utf-8", errors="replace")), "x.log"))


def record_key(recs: list[LogRecord]) -> list[tuple[str, object, int]]:
    return [(type(r).__name__, r, getattr(r, "line", 0)) for r in recs]
