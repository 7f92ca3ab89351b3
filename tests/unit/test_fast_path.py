"""The byte-level prefilter hands the parser enough lines to give the same records as reading
every line, whatever the chunking."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from collector.sources.logs import LogParser, LogRecord, Pressure
from tests.support.fixtures import BUNDLES, LOGS
from tests.support.prefilter import fast, record_key, slow, split_newlines

if TYPE_CHECKING:
    from collector.search import GrepCandidates

ALL_LOGS = sorted([*LOGS.glob("*.log"), *BUNDLES.glob("*/logs/*.log")])


@pytest.mark.parametrize("path", ALL_LOGS, ids=[str(p.relative_to(p.parents[1])) for p in ALL_LOGS])
@pytest.mark.parametrize("size", [1 << 20, 4096, 97])
def test_same_records(path: Path, size: int) -> None:
    data = path.read_bytes()
    got, lines = fast(data, size)
    assert record_key(got) == record_key(slow(data))
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


def _grep(
    data: bytes,
    tmp_path: Path,
    parts: int,
    *,
    bulk_exact: int | None = None,
    summarise: bool = False,
    helper_min: int | None = None,
) -> tuple[list[LogRecord], int]:
    g, out = _grep_run(data, tmp_path, parts, bulk_exact=bulk_exact, summarise=summarise,
                       helper_min=helper_min)
    return out, g.lines


def _grep_run(
    data: bytes,
    tmp_path: Path,
    parts: int,
    *,
    bulk_exact: int | None = None,
    summarise: bool = False,
    helper_min: int | None = None,
) -> tuple[GrepCandidates, list[LogRecord]]:
    from collector.search import GrepCandidates
    from collector.sources.scan import BULK_EXACT

    f = tmp_path / "g.log"
    f.write_bytes(data)
    parser = LogParser("x.log")
    g = GrepCandidates(f, parts=parts, bulk_exact=BULK_EXACT if bulk_exact is None else bulk_exact)
    g.follow = parser.in_block
    if summarise:  # as the loader wires it; else every Pressure line is handed out
        g.summarisable = parser.summarisable
    if helper_min is not None:
        g.helper_min = helper_min
    out: list[LogRecord] = []
    for number, raw in g:
        out.extend(parser.feed(number, raw.decode("utf-8", errors="replace")))
    out.extend(parser.finish(g.lines))
    assert not g.failures
    return g, out


# parts > 1 cuts even a small file, so every fixture crosses part boundaries; bulk_exact 0 and 1
# read the Pressure lines from the file itself instead of from their own search
@pytest.mark.parametrize("path", GREP_CASES, ids=[p.name for p in GREP_CASES])
@pytest.mark.parametrize("parts", [1, 2, 3])
@pytest.mark.parametrize("bulk_exact", [None, 0, 1])
def test_grep_candidates_same_records(
    path: Path, parts: int, bulk_exact: int | None, tmp_path: Path, search_tool: str
) -> None:
    data = path.read_bytes()
    got, lines = _grep(data, tmp_path, parts, bulk_exact=bulk_exact)
    assert record_key(got) == record_key(slow(data))
    assert lines == len(split_newlines(data.decode("utf-8", errors="replace")))


@pytest.mark.parametrize("data", EDGE)
@pytest.mark.parametrize("parts", [1, 2, 4])
@pytest.mark.parametrize("bulk_exact", [None, 0])
def test_grep_candidates_edges(
    data: bytes, parts: int, bulk_exact: int | None, tmp_path: Path, search_tool: str
) -> None:
    got, lines = _grep(data, tmp_path, parts, bulk_exact=bulk_exact)
    assert record_key(got) == record_key(slow(data))
    assert lines == len(split_newlines(data.decode("utf-8", errors="replace")))


def test_every_needle_holds_a_probe() -> None:
    from collector.sources.scan import NEEDLES, PROBES

    for needle in NEEDLES:
        assert any(p in needle for p in PROBES), needle
    # the summarised kinds are needles of their own, left out of the search for the others
    from collector.sources.scan import BULK, RARE_PROBES

    assert set(BULK) <= set(NEEDLES) and not set(BULK) & set(RARE_PROBES)
    assert len(RARE_PROBES) == len(PROBES) - len(BULK)
    # grep's Aho-Corasick loop stops at each byte that starts a probe: keep those bytes rare
    # (no space, none of the common letters of English text and tracing targets)
    assert all(p[:1] not in b" etaoinsrhldcumfpgwybk_:-." for p in PROBES)
    # ripgrep's probes (merged where needles share a tail) find every needle line too, and its
    # search for the other needles leaves the summarised kinds out as well
    from collector.sources.scan import rg_probes

    for needle in NEEDLES:
        assert any(p in needle for p in rg_probes(PROBES)), needle
        if needle not in BULK:
            assert any(p in needle for p in rg_probes(RARE_PROBES)), needle
    assert not any(b in p or p in b for b in BULK for p in rg_probes(RARE_PROBES))
    assert len(rg_probes(PROBES)) < len(PROBES)


def test_grep_follows_a_block_across_parts(tmp_path: Path, search_tool: str) -> None:
    data = (b"a\n" * 7 + b"thread 'main' panicked at src/x.rs:1:2:\nboom\n"
            + b"note: run with `RUST_BACKTRACE=1`\n" + b"b\n" * 5
            + b"Error: bad\n\nCaused by:\n    0: inner\n" + b"c\n" * 3 + b"Starting rsky-ingester")
    for parts in (1, 2, 3, 5, 8):
        got, lines = _grep(data, tmp_path, parts)
        assert record_key(got) == record_key(slow(data))
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
        # ... and under another tracing timestamp (of the same length, and of another)
        for stamp in ("2026-12-01T00:00:59.123456Z", "2026-12-01T00:00:59Z"):
            again = re.sub(r"(?<=\x1b\[2m)\d{4}-\d\d-\d\dT[\d:.]+Z(?=\x1b\[0m )", stamp, other, count=1)
            assert split_line(again) == _uncached(again)


# -- the summarising path: Pressure lines past the first few, kept per stretch -------------------
ESC = "\x1b"


def _tracing(ts: str, level: str, msg: str, target: str = "rsky_ingester::firehose") -> str:
    colour = {"INFO": "32", "WARN": "33", "ERROR": "31"}[level]
    return (f"{ts} {ESC}[2m{ts[:26]}Z{ESC}[0m {ESC}[{colour}m{level:>5}{ESC}[0m "
            f"{ESC}[2m{target}{ESC}[0m{ESC}[2m:{ESC}[0m {msg}\n")


def pressure_log(seed: int, runs: int = 6) -> bytes:
    """Runs full of backpressure warnings and memory metrics with numbers that climb, fall and
    repeat, around everything that may break a stretch: CRITICAL lines, a panic banner and an
    `Error:` block with Pressure lines inside them, two numbers on one line, leading zeros,
    Compose's attached stream after an `exited with code`, a last line without a newline."""
    rng = random.Random(seed)
    out: list[str] = []
    t = 0
    for run in range(runs):
        def ts(t: int = 0) -> str:
            return f"2026-11-29T10:{t // 600 % 60:02d}:{t // 10 % 60:02d}.{t % 10}00000000Z"

        out.append(_tracing(ts(t), "INFO", "Starting rsky-ingester", "ingester"))
        n = rng.randrange(10**rng.randint(1, 7))
        shape = run % 3  # climbing, falling, random
        for i in range(rng.randint(50, 400)):
            t += 1
            r = rng.random()
            if shape == 0:
                n += rng.randrange(0, 3000)
            elif shape == 1:
                n = max(0, n - rng.randrange(0, 3000))
            else:
                n = rng.choice([n, rng.randrange(10**rng.randint(1, 8))])
            if r < 0.45:
                out.append(_tracing(ts(t), "WARN", "Backpressure active: stream_len=1564120, "
                                    f"high_water=100000, events_in_memory={n}"))
            elif r < 0.5:
                out.append(_tracing(ts(t), "INFO", f"Memory metrics: {n} events in-flight",
                                    "rsky_ingester::batcher"))
            elif r < 0.51:
                out.append(_tracing(ts(t), "WARN", f"Backpressure active: events_in_memory=0{n} "
                                    f"events_in_memory={n * 10 + 9}"))
            elif r < 0.515:
                out.append(_tracing(ts(t), "ERROR", f"CRITICAL: Labeler task {i} completed unexpectedly."))
            elif r < 0.517:
                out.append(_tracing(ts(t), "WARN", "Backpressure active: no number here"))
            elif r < 0.537:  # retried: between two of them the reader needs no Pressure line
                out.append(_tracing(ts(t), "ERROR", f"FirehoseIngester connection error for wss://h{i % 3}: "
                                    "WebSocket(Io(Os { code: 104, kind: ConnectionReset }))"))
            else:
                out.append(_tracing(ts(t), "INFO", "Write task received batch of 500 events"))
            if i == 120 and run % 2:
                out.append(f"{ts(t)} {'=' * 80}\n{ts(t)} FATAL PANIC OCCURRED\n")
                out.append(_tracing(ts(t), "WARN", f"Backpressure active: events_in_memory={n + 7}"))
                out.append(f"{ts(t)} Location: src/x.rs:1:2\n{ts(t)} Message: boom\n")
        if run % 3 == 2:
            out.append(f"{ts(t)} Error: CRITICAL: All firehose tasks exited.\n")
            out.append(_tracing(ts(t), "WARN", f"Backpressure active: events_in_memory={n + 1}"))
            out.append(f"{ts(t)} \n{ts(t)} Caused by:\n{ts(t)}     0: inner\n")
        t += 5
    # Compose's stream: the exit, then the next run's first lines are its Pressure lines
    out.append("rust-ingester exited with code 137\n")
    # (a line of another shape first: the next run starts at the first Compose line after it)
    out.append(_tracing("2026-11-29T10:59:00.000000000Z", "WARN", "Backpressure active: events_in_memory=1"))
    for _ in range(30):
        out.append(f"rust-ingester  | 2026-11-29T11:00:{_:02d}.5Z  WARN rsky_ingester::firehose: "
                   f"Backpressure active: events_in_memory={rng.randrange(10**6)}\n")
    out.append(_tracing("2026-11-29T11:00:00.000000000Z", "WARN", "Backpressure active: "
                        "events_in_memory=42").rstrip("\n"))
    return "".join(out).encode()


def _is_retry(r: LogRecord) -> bool:
    return type(r).__name__ == "Fact" and getattr(r, "kind", None) == "retry"


def _pressure_groups(recs: list[LogRecord]) -> list[list[LogRecord]]:
    """Runs of Pressure records and retried connection errors (both evidence that the process
    runs, in any order) between other records."""
    groups: list[list[LogRecord]] = [[]]
    for r in recs:
        if isinstance(r, Pressure) or _is_retry(r):
            groups[-1].append(r)
        elif groups[-1]:
            groups.append([])
    return [g for g in groups if g]


def _top(recs: list[LogRecord]) -> int | None:
    return max((r.events_in_memory for r in recs if isinstance(r, Pressure) and r.events_in_memory is not None),
               default=None)


def check_summarised(got: list[LogRecord], want: list[LogRecord]) -> None:
    """What the summarising reader promises, against the records of every line."""
    import dataclasses

    from collector.runs import split_runs

    # every other record as if every line was read, in the same order
    assert record_key([r for r in got if not isinstance(r, Pressure)]) == record_key(
        [r for r in want if not isinstance(r, Pressure)]
    )
    # only Pressure records of real lines, with their line numbers
    every = {(r.line, r) for r in want if isinstance(r, Pressure)}
    kept = [(r.line, r) for r in got if isinstance(r, Pressure)]
    assert all(k in every for k in kept)
    # of each stretch of Pressure records (and retried errors among them): the first and the last
    lines = {line for line, _ in kept}
    for group in _pressure_groups(want):
        for r in (group[0], group[-1]):
            assert _is_retry(r) or r.line in lines
    # and a line with the log's largest number
    assert _top(got) == _top(want)
    # so the runs the rules see are the same, but for a run's own largest number (only the
    # largest of all is read): that is the one of the log
    runs_got, runs_want = list(split_runs(got)), list(split_runs(want))

    def bare(runs: list[object]) -> list[object]:
        return [dataclasses.replace(r, pressure_max=None) for r in runs]  # type: ignore[type-var]

    assert bare(runs_got) == bare(runs_want)
    assert max((r.pressure_max or 0 for r in runs_got), default=0) == max(
        (r.pressure_max or 0 for r in runs_want), default=0)
    assert all((g.pressure_max or 0) <= (w.pressure_max or 0) for g, w in zip(runs_got, runs_want, strict=True))


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("parts", [1, 2])
@pytest.mark.parametrize("bulk_exact", [0, 3])
@pytest.mark.parametrize("helper", [True, False], ids=["helper", "alone"])
@pytest.mark.parametrize("top", ["search", "restarts", "gives-up", "off"])
def test_summarised_pressure(
    seed: int, parts: int, bulk_exact: int, helper: bool, top: str, tmp_path: Path, search_tool: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The log's largest number from one search of the file (restarting with a higher bar after
    a few lines, giving up after a few restarts) or, without it, each stretch's own."""
    import collector.search as search

    if top in ("restarts", "gives-up"):
        monkeypatch.setattr(search, "TOP_CAP", 3)
        monkeypatch.setattr(search, "TOP_SAMPLES", 1)  # a low first bar: many lines picked
        monkeypatch.setattr(search, "TOP_RESTARTS", 1 << 20 if top == "restarts" else 2)
    if top == "off":
        monkeypatch.setattr(search.GrepCandidates, "top_search", False)
    data = pressure_log(seed)
    g, got = _grep_run(data, tmp_path, parts, bulk_exact=bulk_exact, summarise=True,
                       helper_min=1 if helper else 1 << 40)
    want = slow(data)
    check_summarised(got, want)
    assert g.lines == len(split_newlines(data.decode()))
    # it did summarise: most Pressure lines were never handed out
    n_got = sum(isinstance(r, Pressure) for r in got)
    n_want = sum(isinstance(r, Pressure) for r in want)
    assert g.summarised > 0
    if top in ("search", "off"):  # (a low bar picks every line of a climb: they raise the largest)
        assert n_got * 4 < n_want


@pytest.mark.parametrize("path", GREP_CASES, ids=[p.name for p in GREP_CASES])
def test_summarised_fixtures(path: Path, tmp_path: Path, search_tool: str) -> None:
    data = path.read_bytes()
    _, got = _grep_run(data, tmp_path, 2, bulk_exact=0, summarise=True, helper_min=1)
    check_summarised(got, slow(data))


def test_summarising_check_can_fail() -> None:
    """Dropping the log's largest number, a stretch's last line or another record is caught."""
    want = slow(pressure_log(1))
    every = [r for r in want if isinstance(r, Pressure)]
    top = max(every, key=lambda r: r.events_in_memory or -1)
    group = next(g for g in _pressure_groups(want) if top in g)
    assert top is not group[-1] and top is not group[0]
    for drop in (top, group[-1]):
        got = [r for r in want if not (isinstance(r, Pressure) and r in group and r is not group[0])]
        got = [r for r in want if r is not drop and (r in got or r in (group[0], group[-1], top))]
        with pytest.raises(AssertionError):
            check_summarised(got, want)
    with pytest.raises(AssertionError):
        check_summarised([r for r in want if type(r).__name__ != "Critical"], want)


def test_above_finds_every_larger_number() -> None:
    from collector.sources.scan import above

    rng = random.Random(5)
    for bar in [-1, 0, 9, 10, 99, 100, 999, 1000, 4721, 10999, 999999, 14123456, 10**12]:
        rx = above(bar)
        near = range(max(0, bar - 3000), bar + 3000)
        for v in [*range(0, 2000), *near, *(rng.randrange(10**rng.randint(1, 14)) for _ in range(2000))]:
            for text in (f"events_in_memory={v}\n", f"Memory metrics: {v} events", f"events_in_memory=00{v},"):
                m = rx.search(text.encode())
                if v > bar:
                    assert m is not None and int(m.group(1)) == v, (bar, text)
                elif m is not None:
                    assert int(m.group(1)) >= bar * 0.99 or text.count("=00"), (bar, text)


def test_largest_above_mapped_and_read_agree(tmp_path: Path) -> None:
    """The search through a mapping (in windows), the one of a short range read whole and the one
    through reads find the same line, which is the first with the largest number above the bar,
    as the parser reads it."""
    import collector.search as search

    data = pressure_log(4, runs=4)
    f = tmp_path / "p.log"
    f.write_bytes(data)
    lines = split_newlines(data.decode())
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line.encode()))
    rng = random.Random(9)
    with f.open("rb") as fh:
        fd = fh.fileno()
        # (SHORT 0: every range through the mapping; else the short ones read whole)
        for window, short in ((search.WINDOW, search.SHORT), (search.WINDOW, 0), (4096, 0), (65536, 0)):
            search.WINDOW, search.SHORT = window, short
            try:
                for _ in range(30):
                    i, j = sorted(rng.sample(range(len(offsets)), 2))
                    bar = rng.choice([-1, 0, 1000, 10**5, 10**6])
                    want = None
                    for k in range(i, j):
                        n = search._pressure(lines[k].encode())
                        if n is not None and n > bar and (want is None or n > want[0]):
                            want = (n, offsets[k], lines[k].encode())
                    assert search._largest_above(fd, offsets[i], offsets[j], bar) == want
                    assert search._largest_above_read(fd, offsets[i], offsets[j], bar) == want
            finally:
                search.WINDOW, search.SHORT = 32 << 20, 256 << 10


@pytest.mark.parametrize("path", GREP_CASES[:12], ids=[p.name for p in GREP_CASES[:12]])
def test_forked_reader_same_records(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long log is read in a forked process: the same records, line count, hash, problems."""
    import collector.search as search

    def read(fork: bool) -> tuple[list[LogRecord], int, str | None, list[object]]:
        monkeypatch.setattr(search, "FORK_MIN", 0 if fork else 1 << 62)
        log = search.LogInput(path, path.name)
        recs = list(log.records(hash_it=True))
        return recs, log.lines, log.sha256, list(log.problems)

    forked, plain = read(True), read(False)
    assert record_key(forked[0]) == record_key(plain[0])
    # every field, those equality leaves out (source, line) too, rebuilt as the reader made it
    assert [(type(r), vars(r)) for r in forked[0]] == [(type(r), vars(r)) for r in plain[0]]
    assert forked[1:] == plain[1:]


def test_forked_reader_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The child's BundleError is raised in the parent, with its message."""
    import collector.search as search
    from collector.errors import BundleError

    monkeypatch.setattr(search, "FORK_MIN", 0)
    f = tmp_path / "gone.log"
    f.write_bytes(b"Starting rsky-ingester\n")
    log = search.LogInput(f, f.name)
    monkeypatch.setattr(search.LogInput, "_records", _raises)
    with pytest.raises(BundleError, match="cannot open: gone"):
        list(log.records())


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_read_ahead_taken_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader started ahead (`read_ahead`, as the command line does before its imports) is the
    one `records` reads from: the same records, line count and hash; none is left running."""
    import collector.search as search

    path = GREP_CASES[0]
    monkeypatch.setattr(search, "FORK_MIN", 1 << 62)
    plain = search.LogInput(path, path.name)
    want = record_key(list(plain.records(hash_it=True)))
    monkeypatch.setattr(search, "FORK_MIN", 0)
    search.read_ahead(path, path.name, hash_it=True)
    [(_, pid, _)] = search._AHEAD.started.values()
    log = search.LogInput(path, path.name)
    monkeypatch.setattr(search, "_start_reader", _no_second_reader)
    assert record_key(list(log.records(hash_it=True))) == want
    assert (log.lines, log.sha256) == (plain.lines, plain.sha256)
    assert not search._AHEAD.started
    assert not _alive(pid)


@pytest.mark.parametrize("change", ["hash", "source", "appended"])
def test_read_ahead_for_another_reading_is_stopped(
    change: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader started for another source name, hashing, or a file that has grown since is
    stopped, and a new one reads the file as it is now."""
    import collector.search as search

    monkeypatch.setattr(search, "FORK_MIN", 0)
    path = tmp_path / "ingester.log"
    path.write_bytes(GREP_CASES[0].read_bytes())
    search.read_ahead(path, "ingester.log", hash_it=change == "hash")
    [(_, pid, _)] = search._AHEAD.started.values()
    if change == "appended":
        with path.open("ab") as fh:
            fh.write(b"2026-11-29T10:00:00.000000000Z Error: CRITICAL: Firehose ingester exited unexpectedly.\n")
    log = search.LogInput(path, "other.log" if change == "source" else "ingester.log")
    recs = list(log.records())
    assert not _alive(pid)
    want = search.LogInput(path, log.source)
    monkeypatch.setattr(search, "FORK_MIN", 1 << 62)
    assert record_key(recs) == record_key(list(want.records()))


def test_read_ahead_never_taken_is_stopped_and_skips_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader nobody takes over is killed and reaped at exit (`stop_all`, registered with
    atexit); a link or a missing file is not read ahead (the loader refuses or reports them)."""
    import collector.search as search

    monkeypatch.setattr(search, "FORK_MIN", 0)
    link = tmp_path / "link.log"
    link.symlink_to(GREP_CASES[0])
    search.read_ahead(link, "link.log")
    search.read_ahead(tmp_path / "missing.log", "missing.log")
    assert not search._AHEAD.started
    search.read_ahead(GREP_CASES[0], "x")
    [(_, pid, _)] = search._AHEAD.started.values()
    search._AHEAD.stop_all()
    assert not search._AHEAD.started
    assert not _alive(pid)


def _no_second_reader(log: object, hash_it: bool) -> None:
    raise AssertionError("a second reader was started although one was read ahead")


def _raises(self: object, hash_it: bool) -> Iterator[LogRecord]:
    from collector.errors import BundleError

    raise BundleError("cannot open: gone")
    yield  # a generator, like the reader


def test_external_above_picks_every_larger_number_and_not_other_fields(tmp_path: Path, search_tool: str) -> None:
    """`above_source`, as the external search reads it: every line whose Pressure number is above
    the bar, and not the lines where another field ending in "y=" holds a larger number."""
    import subprocess

    from collector.search import GrepCandidates
    from collector.sources.scan import above_source

    rng = random.Random(7)
    values = [0, 9, 10, 99, 100, 4721, 10999, 999999, 14123456]
    values += [rng.randrange(10 ** rng.randint(1, 12)) for _ in range(300)]
    lines, number = [], {}
    for v in values:
        lines += [
            f"WARN Backpressure active: stream_len=5, high_water=100000, events_in_memory={v}\n",
            f"INFO Memory metrics: {v} events, 12 bytes\n",
            f"INFO policy={v} retry_delay={v} latency={v}\n",
        ]
        number.update({lines[-3]: v, lines[-2]: v})
    log = tmp_path / "p.log"
    log.write_text("".join(lines))
    tool = str(GrepCandidates._tool())
    for bar in [-1, 0, 99, 4720, 999999, 10**11]:
        ere = search_tool == "grep"
        argv = [tool, "-a", "-E" if ere else "--no-config", "-e", above_source(bar, ere=ere), str(log)]
        found = subprocess.run(argv, capture_output=True, check=False, env={"LC_ALL": "C"}).stdout
        got = set(found.decode().splitlines(True))
        want = {line for line, v in number.items() if v > bar}
        assert want <= got, (bar, sorted(want - got)[:3])
        assert not any("policy=" in line for line in got), bar
