"""The log reader on each output shape the reference lists, one small case at a time."""

from __future__ import annotations

from collector.sources.logs import (
    Banner,
    ComposeExit,
    Critical,
    ErrorExit,
    ExitTrace,
    Panic,
    Pressure,
    TaskResult,
    classify_result,
    parse_log,
    split_line,
)

ESC = "\x1b"
ANSI_BANNER = (
    f"{ESC}[2m2025-10-30T06:56:52.104518Z{ESC}[0m {ESC}[32m INFO{ESC}[0m "
    f"{ESC}[2mingester{ESC}[0m{ESC}[2m:{ESC}[0m Starting rsky-ingester"
)


def records(text: str) -> list[object]:
    return [r for r in parse_log(text.split("\n")) if type(r).__name__ != "EndOfLog"]


def kinds(text: str) -> list[str]:
    return [type(r).__name__ for r in records(text)]


def test_banner_in_every_prefix_form() -> None:
    forms = [
        ANSI_BANNER,
        "2025-10-30T06:56:52.104518Z  INFO ingester: Starting rsky-ingester",
        "2026-11-29T10:00:00.123456789Z " + ANSI_BANNER,
        "rust-ingester  | " + ANSI_BANNER,
        "rust-ingester  | 2026-11-29T10:00:00.123456789Z " + ANSI_BANNER + "\r",
    ]
    for form in forms:
        (rec,) = records(form)
        assert isinstance(rec, Banner), form
        assert rec.ts is not None


def test_docker_timestamp_wins_over_tracing_timestamp() -> None:
    line = split_line("2026-11-29T10:00:00.5Z 2025-01-01T00:00:00Z  INFO ingester: hi")
    assert line.level == "INFO"
    assert line.text == "hi"
    assert line.ts == 1795946400.5


def test_error_level_tracing_line_without_docker_prefix() -> None:
    line = split_line("2025-10-30T06:56:52.104518Z ERROR rsky_ingester::firehose: boom")
    assert (line.level, line.target, line.text) == ("ERROR", "rsky_ingester::firehose", "boom")


def test_exit_trace_paths_and_results() -> None:
    recs = records(
        "[EXIT-TRACE] tokio::select! triggered on backfill_handle (no labeler) - EXIT PATH H\n"
        "[EXIT-TRACE] Backfill result: Ok(Ok(()))"
    )
    trace = recs[0]
    assert isinstance(trace, ExitTrace)
    assert (trace.path, trace.task) == ("H", "backfill")
    result = recs[-1]
    assert isinstance(result, TaskResult)
    assert (result.task, result.kind) == ("backfill", "ok-ok")


def test_unknown_mode_is_path_i() -> None:
    (rec,) = records("[EXIT-TRACE] Unknown INGESTER_MODE: bogus - EXIT PATH I")
    assert isinstance(rec, ExitTrace) and rec.path == "I" and rec.task is None


def test_result_shapes() -> None:
    assert classify_result("Ok(Ok(()))") == ("ok-ok", None, None)
    kind, err, inner = classify_result("Ok(Err(WebSocket(Io(ConnectionReset))))")
    assert (kind, err, inner) == ("ok-err", "WebSocket(Io(ConnectionReset))", "ConnectionReset")
    kind, err, _ = classify_result('Err(JoinError::Panic(Id(6), "boom \\"x\\"", ..))')
    assert (kind, err) == ("join-panic", 'boom \\"x\\"')
    assert classify_result("Err(JoinError::Cancelled(Id(6)))")[0] == "join-cancelled"
    assert classify_result("Err(JoinError::Panic(Id(12), ..))") == ("join-panic", None, None)
    assert classify_result("Ok(Err(cut off")[0] == "ok-err"


def test_panic_hook_with_and_without_brackets() -> None:
    block = (
        "=" * 80 + "\nFATAL PANIC OCCURRED\n" + "=" * 80 + "\n"
        "Location: rsky-ingester/src/labeler.rs:123:45\n"
        "Message: called `Option::unwrap()` on a `None` value\n\n"
        "This is a critical error that should never occur in production.\n"
        "Please report this issue with the complete log output.\n" + "=" * 80 + "\n\n"
        "Backtrace:\nBacktrace [{ fn: \"x\", file: \"y\", line: 61 }]\n" + "=" * 80
    )
    (p,) = records(block)
    assert isinstance(p, Panic)
    assert p.style == "hook"
    assert p.location == "rsky-ingester/src/labeler.rs:123:45"
    assert p.message == "called `Option::unwrap()` on a `None` value"
    assert p.backtrace == ('Backtrace [{ fn: "x", file: "y", line: 61 }]',)
    (q,) = records("[FATAL PANIC OCCURRED]\nLocation: src/a.rs:1:2")
    assert isinstance(q, Panic) and q.location == "src/a.rs:1:2" and q.message is None


def test_default_panic_forms() -> None:
    (p,) = records(
        "thread '<unnamed>' (10220) panicked at src/x.rs:4:21:\nboom\n"
        "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace"
    )
    assert isinstance(p, Panic)
    assert (p.thread, p.location, p.message) == ("<unnamed>", "src/x.rs:4:21", "boom")
    (q,) = records(
        "thread 'main' panicked at unknown location:\nUnknown panic payload\nstack backtrace:\n"
        "   0: rust_begin_unwind\n             at /rustc/x/panicking.rs:665:5\n   1: main"
    )
    assert isinstance(q, Panic)
    assert (q.location, q.message) == ("unknown location", "Unknown panic payload")
    assert q.backtrace[0] == "0: rust_begin_unwind"
    (r,) = records("thread 'main' panicked at 'old style', src/main.rs:2:5")
    assert isinstance(r, Panic) and (r.message, r.location) == ("old style", "src/main.rs:2:5")


def test_error_with_causes_and_anyhow_backtrace() -> None:
    (e,) = records(
        "Error: CRITICAL: All firehose tasks exited. This should never happen.\n\n"
        "Caused by:\n    0: outer\n    1: inner\n\nStack backtrace:\n"
        "   0: anyhow::error::msg\n             at /x.rs:27:14"
    )
    assert isinstance(e, ErrorExit)
    assert e.message == "CRITICAL: All firehose tasks exited. This should never happen."
    assert e.causes == ("outer", "inner")
    assert e.backtrace[0] == "0: anyhow::error::msg"


def test_critical_kinds() -> None:
    recs = records(
        "ERROR x: CRITICAL: Firehose ingester for https://h exited with error: Redis(OOM)\n"
        "This task should never exit. Investigate immediately.\n"
        "ERROR x: CRITICAL: Labeler task 2 panicked or was cancelled: JoinError::Panic(Id(3), ..)\n"
        "ERROR x: CRITICAL: Backfill ingester for https://h exited successfully but should never "
        "exit!\nERROR x: CRITICAL: All backfill tasks exited. This should never happen."
    )
    crits = [r for r in recs if isinstance(r, Critical)]
    assert [(c.kind, c.task) for c in crits] == [
        ("host-error", "firehose"),
        ("task-panicked", "labeler"),
        ("host-ok", "backfill"),
        ("all-exited", "backfill"),
    ]
    assert crits[0].host == "https://h" and crits[0].detail == "Redis(OOM)"


def test_compose_exit_and_synthetic_start_after_lost_banner() -> None:
    recs = records(
        "rust-ingester  | INFO ingester: Starting rsky-ingester\n"
        "rust-ingester  | Error: boom\n"
        "rust-ingester exited with code 1\n"
        "rust-ingester  | [EXIT-TRACE] Spawning firehose and backfill tasks"
    )
    assert [type(r).__name__ for r in recs] == [
        "Banner",
        "ErrorExit",
        "ComposeExit",
        "Banner",
        "ExitTrace",
    ]
    assert isinstance(recs[2], ComposeExit) and recs[2].code == 1
    assert isinstance(recs[3], Banner) and recs[3].synthetic


def test_breadcrumbs_before_banner_open_one_run() -> None:
    text = (
        "2026-11-29T10:00:00.1Z [EXIT-TRACE] Running in 'all' mode\n"
        "2026-11-29T10:00:00.2Z 2026-11-29T10:00:00.0Z  INFO ingester: Starting rsky-ingester\n"
        "2026-11-29T10:00:01Z Error: x\n"
        "2026-11-29T10:00:02.1Z [EXIT-TRACE] Running in 'all' mode\n"
        "2026-11-29T10:00:02.2Z 2026-11-29T10:00:02.0Z  INFO ingester: Starting rsky-ingester\n"
    )
    assert kinds(text) == ["Banner", "ExitTrace", "ErrorExit", "Banner", "ExitTrace"]


def test_pressure_lines() -> None:
    recs = records(
        "WARN rsky_ingester::firehose: Backpressure active: stream_len=1564120, "
        "high_water=100000, events_in_memory=4242\n"
        "INFO rsky_ingester::firehose: Memory metrics: 99 events in-flight"
    )
    assert [r.events_in_memory for r in recs if isinstance(r, Pressure)] == [4242, 99]


def test_numbers_too_long_for_int_are_no_numbers() -> None:
    # Python refuses int() on more than 4300 digits: a damaged line must not raise.
    huge = "9" * 5000
    recs = records(
        f"WARN rsky_ingester::firehose: Backpressure active: stream_len=1, high_water=1, events_in_memory={huge}\n"
        f"rust-ingester exited with code {huge}"
    )
    assert [r.events_in_memory for r in recs if isinstance(r, Pressure)] == [None]
    assert not [r for r in recs if isinstance(r, ComposeExit)]


def test_continuation_lines_are_ignored() -> None:
    assert kinds("INFO a: x\nRetrying in 5 seconds...\n\n   \n") == []


def test_lines_read_again_from_the_parser_memory_read_the_same() -> None:
    """The parser reads each distinct line once (`_readings`, `_split_cache`) and takes it from
    memory after: every fixture log read with both empty, then again with them full, gives the
    same records, field for field."""
    from pathlib import Path

    from collector.sources import logs

    folder = Path(__file__).resolve().parent.parent / "fixtures" / "logs"
    paths = sorted(folder.glob("*.log"))
    assert len(paths) > 20
    remembered = 0
    for path in paths:
        lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
        logs._readings.clear()
        logs._split_cache.clear()
        first = [(type(r), vars(r)) for r in parse_log(lines, path.name)]
        remembered += len(logs._readings)
        again = [(type(r), vars(r)) for r in parse_log(lines, path.name)]
        assert again == first, path.name
    assert remembered > 100  # the second readings came from memory
