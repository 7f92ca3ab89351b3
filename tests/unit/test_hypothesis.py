"""Property tests: no input makes the reader or the CLI raise anything but BundleError, and the
fast path agrees with reading every line on any mix of real output shapes."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.cli import main
from collector.diagnose import diagnose
from collector.errors import BundleError
from collector.exitcodes import Exit
from collector.inputs import Coverage, MemoryInput
from collector.runs import split_runs
from collector.sources.dmesg import parse_dmesg
from collector.sources.events import parse_events
from collector.sources.inspect import parse_inspect
from collector.sources.logs import parse_log
from collector.sources.stats import parse_stats
from tests.support.prefilter import fast, record_key, slow

VOCAB = [
    "2026-11-29T10:00:00.123456789Z ",
    "rust-ingester  | ",
    "\x1b[2m2025-10-30T06:56:52.104518Z\x1b[0m \x1b[32m INFO\x1b[0m \x1b[2mingester\x1b[0m: ",
    "2025-10-30T06:56:52.104518Z ERROR rsky_ingester::firehose: ",
    "Starting rsky-ingester",
    "[EXIT-TRACE] Running in 'all' mode",
    "[EXIT-TRACE] tokio::select! triggered on labeler_handle - EXIT PATH F",
    "[EXIT-TRACE] Firehose result: Ok(Err(WebSocket(ConnectionClosed)))",
    "[EXIT-TRACE] Backfill result: Err(JoinError::Panic(Id(6), \"x\", ..))",
    "[EXIT-TRACE] Unknown INGESTER_MODE: x - EXIT PATH I",
    "CRITICAL: Firehose ingester for h exited with error: Redis(x)",
    "CRITICAL: All labeler tasks exited. This should never happen.",
    "FATAL PANIC OCCURRED",
    "[FATAL PANIC OCCURRED]",
    "=" * 80,
    "Location: src/a.rs:1:2",
    "Message: boom",
    "Backtrace:",
    "thread 'main' panicked at src/x.rs:4:21:",
    "thread '<unnamed>' (10220) panicked at unknown location:",
    "note: run with `RUST_BACKTRACE=1`",
    "stack backtrace:",
    "   0: frame",
    "             at /x.rs:1:1",
    "Error: CRITICAL: All firehose tasks exited.",
    "Caused by:",
    "Stack backtrace:",
    "rust-ingester exited with code 137",
    "Backpressure active: events_in_memory=12",
    "Configuration: IngesterConfig { }",
    'Configuration: IngesterConfig { redis_url: ":pw@r:1", relay_hosts: [], labeler_hosts: [""] }',
    "Nov 29 10:00:01 host 4e5f1c2d3b4a[800]: ",
    "2026-11-29T10:00:01+0000 host ident[1]: ",
    "rust-indexer   | ",
    "rust-indexer exited with code 101",
    "Starting firehose ingesters for 0 hosts",
    "Unknown INGESTER_MODE: x",
    "/usr/local/bin/ingester: version `GLIBC_2.39' not found (required by /usr/local/bin/ingester)",
    "FirehoseIngester connection error for https://h: WebSocket(ConnectionClosed)",
    "Gracefully stopping... (press Ctrl+C again to force)",
    "Error: Redis URL did not parse- InvalidClientConfig",
    "CRITICAL: Firehose task 0 panicked or was cancelled: JoinError::Cancelled(Id(3))",
    "Retrying in 5 seconds...",
    "",
    "\r",
    "\x00\xff",
]

line = st.lists(st.sampled_from(VOCAB), min_size=0, max_size=3).map("".join)
realistic = st.lists(line, min_size=0, max_size=60).map(lambda ls: "\n".join(ls))


@settings(max_examples=300, deadline=None)
@given(realistic, st.integers(min_value=1, max_value=300))
def test_fast_path_matches_full_read(text: str, size: int) -> None:
    data = text.encode("utf-8", errors="replace")
    got, _ = fast(data, size)
    assert record_key(got) == record_key(slow(data))


STAMPS = ["2026-11-29T10:00:00.123456789Z ", "2026-11-29T10:00:01Z ", "2026-11-29T10:00:00.5Z ",
          "2026-11-29T10:00:00.1234567890123Z ", "2026-11-29T10:00:00.12+01:00 ", "٢٠٢٦-11-29T10:00:00Z "]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(STAMPS), line | st.text(max_size=80)), max_size=8))
def test_line_reading_cache_changes_nothing(lines: list[tuple[str, str]]) -> None:
    """The same body under different Docker timestamps (cache hits) reads as without the cache."""
    from collector.sources.logs import _split_line, split_line

    for stamp, body in lines * 2:
        for raw in (stamp + body, STAMPS[0] + body, body):
            assert split_line(raw) == _split_line(raw)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=40))
def test_readers_never_raise_on_text(lines: list[str]) -> None:
    records = list(parse_log(lines))
    list(diagnose(split_runs(iter(records)), MemoryInput(), Coverage()).verdict.next_steps)
    list(parse_events(lines))
    list(parse_stats(lines))
    list(parse_dmesg(lines))
    parse_inspect("\n".join(lines))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.integers(min_value=1, max_value=500))
def test_fast_path_never_raises_on_bytes(data: bytes, size: int) -> None:
    got, lines = fast(data, size)
    assert lines >= 0
    assert type(got[-1]).__name__ == "EndOfLog"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(
    st.sampled_from(["logs/ingester.log", "events.jsonl", "stats.jsonl", "inspect.json",
                     "dmesg.txt", "host.json", "window.json", "manifest.json"]),
    st.binary(max_size=400),
))
def test_cli_never_raises_on_random_bundles(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for rel, data in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        try:
            code = main(["summarize", str(root), "--quiet"])
        except BundleError:  # pragma: no cover - main() must turn it into an exit code
            raise AssertionError("BundleError escaped main()") from None
        assert code in set(Exit)
