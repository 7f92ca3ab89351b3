"""The log reader counts retried connection errors instead of handing each to the parser
(`search._Retries`): the runs, and the verdict built from them, are those of reading every line."""

from __future__ import annotations

import dataclasses
import functools
import random
import shutil
from pathlib import Path

import pytest

from collector.diagnose import diagnose
from collector.inputs import Coverage, MemoryInput
from collector.runs import Run, split_runs
from collector.search import LogInput
from collector.sources.logs import Fact, LogRecord, parse_log
from collector.sources.scan import BULK_EXACT

ESC = "\x1b"
HOSTS = ("wss://relay1.us-east.bsky.network", "wss://relay1.us-west.bsky.network", "wss://atproto.africa")


def _stamp(t: float) -> str:
    return f"2026-11-29T10:{int(t) // 60 % 60:02d}:{int(t) % 60:02d}.{int(t * 1e6) % 10**6:06d}000Z"


def _tracing(t: float, level: str, msg: str, target: str = "rsky_ingester::firehose") -> str:
    colour = {"INFO": "32", "WARN": "33", "ERROR": "31"}[level]
    return (f"{_stamp(t)} {ESC}[2m{_stamp(t)[:26]}Z{ESC}[0m {ESC}[{colour}m{level:>5}{ESC}[0m "
            f"{ESC}[2m{target}{ESC}[0m{ESC}[2m:{ESC}[0m {msg}\n")


@functools.cache
def retry_log(seed: int) -> str:
    """Runs of backpressure warnings where about one line in ten is a retried connection error:
    three hosts, Redis's maxmemory refusals, a run with more hosts than the reader counts per
    stretch, retried errors without a Docker time stamp, one on a CRITICAL line, a panic block
    with retried errors inside it, and runs that end on a retried error."""
    rng = random.Random(seed)
    out: list[str] = []
    t = 0.0
    runs = 4
    per_run = BULK_EXACT * 2  # past BULK_EXACT warnings (from the second run on): the summarising reader
    for run in range(runs):
        out.append(_tracing(t, "INFO", "Starting rsky-ingester", "ingester"))
        n = rng.randrange(10**5)
        hosts = HOSTS if run != 2 else tuple(f"wss://h{k}.example" for k in range(90))
        for i in range(per_run):
            t += 0.01
            n += rng.randrange(0, 3000)
            r = rng.random()
            if r < 0.5:
                out.append(_tracing(t, "WARN", f"Backpressure active: stream_len=1564120, events_in_memory={n}"))
            elif r < 0.6:
                host = hosts[i % len(hosts)] if run != 2 else rng.choice(hosts)
                why = ("Redis(OOM command not allowed when used memory > 'maxmemory'.)" if rng.random() < 0.2
                       else "WebSocket(Io(Os { code: 104, kind: ConnectionReset }))")
                out.append(_tracing(t, "ERROR", f"FirehoseIngester connection error for {host}: {why}"))
                out.append(f"{_stamp(t)} Retrying in 5 seconds...\n")
            elif r < 0.605:
                out.append(f"BackfillIngester connection error for {rng.choice(HOSTS)}: reset\n")
            elif r < 0.606:
                out.append(_tracing(t, "ERROR", "CRITICAL: LabelerIngester connection error for x: y"))
            else:
                out.append(_tracing(t, "INFO", "Write task received batch of 500 events"))
            if run == 1 and i == per_run // 2:
                out.append(f"{_stamp(t)} {'=' * 80}\n{_stamp(t)} FATAL PANIC OCCURRED\n")
                out.append(_tracing(t, "ERROR", f"FirehoseIngester connection error for {HOSTS[0]}: x"))
                out.append(f"{_stamp(t)} Location: src/x.rs:1:2\n{_stamp(t)} Message: boom\n")
        if run % 2:
            out.append(_tracing(t, "ERROR", f"FirehoseIngester connection error for {HOSTS[1]}: last"))
        t += 5
    return "".join(out)


def _runs(records: list[LogRecord]) -> list[Run]:
    # only the log's largest Pressure number is read, not each run's (`GrepCandidates._stretch`)
    return [dataclasses.replace(r, pressure_max=None) for r in split_runs(records)]


def _retries(records: list[LogRecord]) -> list[Fact]:
    return [r for r in records if isinstance(r, Fact) and r.kind in ("retry", "maxmemory")]


@pytest.fixture(params=["ripgrep", "grep"])
def search_tool(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "ripgrep":
        if shutil.which("rg") is None:
            pytest.skip("ripgrep is not installed (scripts/setup.sh installs it)")
        monkeypatch.delenv("INGESTER_COLLECTOR_NO_RG", raising=False)
    else:
        monkeypatch.setenv("INGESTER_COLLECTOR_NO_RG", "1")
    monkeypatch.delenv("INGESTER_COLLECTOR_NO_GREP", raising=False)
    return str(request.param)


@pytest.mark.parametrize("seed", [1, 2])
def test_counted_retries_give_the_runs_of_every_line(seed: int, tmp_path: Path, search_tool: str) -> None:
    text = retry_log(seed)
    path = tmp_path / "ingester.log"
    path.write_text(text)
    got = list(LogInput(path, "ingester.log").records())
    want = list(parse_log(text.splitlines(keepends=True), "ingester.log"))
    assert _runs(got) == _runs(want)
    # the verdict's own words: "N connection error(s) (hosts) were logged and retried"
    verdicts = [diagnose(split_runs(recs), MemoryInput(), Coverage()).verdict for recs in (got, want)]
    assert verdicts[0] == verdicts[1]
    assert " connection error(s) (" in verdicts[0].summary
    # counted, not read: fewer records, each a real line's (its file:line cited as read), and
    # together they stand for every retried line
    mine, every = _retries(got), _retries(want)
    assert len(mine) * 2 < len(every)
    by_line = {r.line: r for r in every}
    assert all(dataclasses.replace(r, count=None) == by_line[r.line] for r in mine)
    assert sum(r.count or 1 for r in mine) == len(every)
    for kind in ("retry", "maxmemory"):
        assert sum(r.count or 1 for r in mine if r.kind == kind) == sum(r.kind == kind for r in every)


def test_retries_read_one_by_one_without_a_count(tmp_path: Path, search_tool: str) -> None:
    """A log with few warnings is read line by line: every retried error is its own record."""
    text = "".join(_tracing(i, "ERROR", f"FirehoseIngester connection error for {HOSTS[i % 3]}: x")
                   for i in range(50))
    path = tmp_path / "ingester.log"
    path.write_text(text)
    got = _retries(list(LogInput(path, "ingester.log").records()))
    assert [r.line for r in got] == list(range(1, 51)) and all(r.count is None for r in got)


@pytest.mark.parametrize("parts", [1, 3])
@pytest.mark.parametrize("bulk_exact", [0, BULK_EXACT])
def test_counted_retries_across_parts(parts: int, bulk_exact: int, tmp_path: Path, search_tool: str) -> None:
    """The file cut into parts searched apart (their hits spooled), the BULK lines from a search
    of their own or summarised from the first: the same runs."""
    from collector.search import GrepCandidates
    from collector.sources.logs import LogParser, repeated

    text = retry_log(3)
    path = tmp_path / "ingester.log"
    path.write_text(text)
    parser = LogParser("ingester.log")
    g = GrepCandidates(path, parts=parts, bulk_exact=bulk_exact)
    # wired as `LogInput` wires it
    g.follow, g.summarisable, g.repeats = parser.in_block, parser.summarisable, {}
    got: list[LogRecord] = []
    for number, raw in g:
        got.extend(repeated(parser.feed(number, raw.decode()), g.repeats.pop(number, 1)))
    got.extend(parser.finish(g.lines))
    assert not g.failures
    want = list(parse_log(text.splitlines(keepends=True), "ingester.log"))
    assert _runs(got) == _runs(want)
    mine, every = _retries(got), _retries(want)
    assert sum(r.count or 1 for r in mine) == len(every) and len(mine) * 2 < len(every)
