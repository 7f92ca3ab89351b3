"""The byte-level prefilter hands the parser enough lines to give the same records as reading
every line, whatever the chunking."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.sources.logs import LogParser, LogRecord, parse_log
from collector.sources.scan import CandidateScanner
from tests.unit.conftest import BUNDLES, LOGS

ALL_LOGS = sorted([*LOGS.glob("*.log"), *BUNDLES.glob("*/logs/*.log")])


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def fast(data: bytes, size: int) -> tuple[list[LogRecord], int]:
    parser = LogParser("x.log")
    scanner = CandidateScanner(_chunks(data, size))
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


def _key(recs: list[LogRecord]) -> list[tuple[str, object, int]]:
    return [(type(r).__name__, r, getattr(r, "line", 0)) for r in recs]


@pytest.mark.parametrize("path", ALL_LOGS, ids=[str(p.relative_to(p.parents[1])) for p in ALL_LOGS])
@pytest.mark.parametrize("size", [1 << 20, 4096, 97])
def test_same_records(path: Path, size: int) -> None:
    data = path.read_bytes()
    got, lines = fast(data, size)
    assert _key(got) == _key(slow(data))
    assert lines == len(split_newlines(data.decode("utf-8", errors="replace")))


def test_line_count_without_trailing_newline() -> None:
    got, lines = fast(b"a\nb\nStarting rsky-ingester", 3)
    assert lines == 3
    assert [type(r).__name__ for r in got] == ["Banner", "EndOfLog"]


GREP_CASES = [p for p in ALL_LOGS if p.stat().st_size < 2_000_000]
EDGE = [b"", b"a", b"a\n", b"\n\n", b"Starting rsky-ingester", b"x\nStarting rsky-ingester\n",
        b"Error: x\n" + b"y\n" * 50, b"\x00\xffCRITICAL\r\n\r\n", b"thread 'a' panicked at x:\nm",
        # an opener on a last line without a newline still gets the line before it
        b"2026-11-29T10:00:00.123456789Z \nStarting rsky-ingester"]


@pytest.fixture(params=["ripgrep", "grep"])
def search_tool(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with each external search tool the collector may use."""
    import shutil

    if request.param == "ripgrep":
        if shutil.which("rg") is None:
            pytest.skip("ripgrep is not installed (scripts/setup.sh installs it)")
        monkeypatch.delenv("INGESTER_COLLECTOR_NO_RG", raising=False)
    else:
        monkeypatch.setenv("INGESTER_COLLECTOR_NO_RG", "1")
    return str(request.param)


def _grep(data: bytes, tmp_path: Path, parts: int) -> tuple[list[LogRecord], int]:
    from collector.loader import GrepCandidates

    f = tmp_path / "g.log"
    f.write_bytes(data)
    parser = LogParser("x.log")
    g = GrepCandidates(f, parts=parts)
    g.follow = parser.in_block
    out: list[LogRecord] = []
    for number, raw in g:
        out.extend(parser.feed(number, raw.decode("utf-8", errors="replace")))
    out.extend(parser.finish(g.lines))
    assert not g.failures
    return out, g.lines


# parts > 1 cuts even a small file, so every fixture crosses part boundaries
@pytest.mark.parametrize("path", GREP_CASES, ids=[p.name for p in GREP_CASES])
@pytest.mark.parametrize("parts", [1, 2, 3])
def test_grep_candidates_same_records(path: Path, parts: int, tmp_path: Path, search_tool: str) -> None:
    data = path.read_bytes()
    got, lines = _grep(data, tmp_path, parts)
    assert _key(got) == _key(slow(data))
    assert lines == len(split_newlines(data.decode("utf-8", errors="replace")))


@pytest.mark.parametrize("data", EDGE)
@pytest.mark.parametrize("parts", [1, 2, 4])
def test_grep_candidates_edges(data: bytes, parts: int, tmp_path: Path, search_tool: str) -> None:
    got, lines = _grep(data, tmp_path, parts)
    assert _key(got) == _key(slow(data))
    assert lines == len(split_newlines(data.decode("utf-8", errors="replace")))


def test_every_needle_holds_a_probe() -> None:
    from collector.sources.scan import NEEDLES, PROBES

    for needle in NEEDLES:
        assert any(p in needle for p in PROBES), needle
    # grep's Aho-Corasick loop stops at each byte that starts a probe: keep those bytes rare
    # (no space, none of the common letters of English text and tracing targets)
    assert all(p[:1] not in b" etaoinsrhldcumfpgwybk_:-." for p in PROBES)


def test_grep_follows_a_block_across_parts(tmp_path: Path, search_tool: str) -> None:
    data = (b"a\n" * 7 + b"thread 'main' panicked at src/x.rs:1:2:\nboom\n"
            + b"note: run with `RUST_BACKTRACE=1`\n" + b"b\n" * 5
            + b"Error: bad\n\nCaused by:\n    0: inner\n" + b"c\n" * 3 + b"Starting rsky-ingester")
    for parts in (1, 2, 3, 5, 8):
        got, lines = _grep(data, tmp_path, parts)
        assert _key(got) == _key(slow(data))
        assert lines == data.count(b"\n") + 1


def _uncached(raw: str) -> object:
    from collector.sources.logs import _split_line

    return _split_line(raw)


@pytest.mark.parametrize("path", ALL_LOGS, ids=[str(p.relative_to(p.parents[1])) for p in ALL_LOGS])
def test_line_reading_cache_changes_nothing(path: Path) -> None:
    """split_line reads a repeated body once; every line, read again under another Docker
    timestamp (a cache hit), reads as it does without the cache."""
    from collector.sources.logs import split_line

    for raw in split_newlines(path.read_bytes().decode("utf-8", errors="replace")):
        assert split_line(raw) == _uncached(raw)
        other = "2026-12-01T00:00:59.5Z " + raw.split(" ", 1)[-1]
        assert split_line(other) == _uncached(other)
