"""The capture window when the Docker daemon goes away: which die was the daemon's, which start
was the daemon's, and how the collector reads it. Events are Docker's own shapes (measured on
the project's engine: a daemon stopping sends kill 15, kill 9 after the grace period, die 137,
stop, then its API closes; coming back, it sends start and no restart event). The live daemon
restart is tests/integration/test_real_hosts_daemon.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.rsky.ingester_capture.plugins.module_utils.timeparse import iso  # noqa: E402
from ansible_collections.rsky.ingester_capture.plugins.module_utils.window import (  # noqa: E402
    ComposeTarget,
    DaemonGaps,
    Window,
    WindowConfig,
)

from collector.diagnose import classify_run  # noqa: E402
from collector.report.model import daemon_json  # noqa: E402
from collector.sources.bundle_meta import parse_host  # noqa: E402

T0 = 1_796_170_000.0


def event(action: str, at: float, **attrs: str) -> bytes:
    nano = int(at * 1e9)
    obj = {
        "status": action,
        "id": "c" * 64,
        "Type": "container",
        "Action": action,
        "Actor": {"ID": "c" * 64, "Attributes": {"name": "rust-ingester", **attrs}},
        "time": int(at),
        "timeNano": nano,
    }
    return json.dumps(obj).encode() + b"\n"


def window(tmp_path: Path, recreate: bool = True) -> Window:
    config = WindowConfig(
        target=ComposeTarget(str(tmp_path / "compose.yml"), "ingester", "rust-ingester"),
        recreate=recreate,
        seconds=60,
        stop_after=3,
        attach=True,  # followers would be docker attach: none is started before a start event here
    )
    w = Window(tmp_path, config)
    w.stopping.set()  # no follower is spawned by _count
    return w


def gap(w: Window, start: float, end: float) -> dict[str, Any]:
    entry: dict[str, Any] = {"start_epoch": start, "end_epoch": end, "container": None, "container_stopped_at": None}
    w.daemon.mark_stop(entry)
    w.daemon.gaps.append(entry)
    return entry


def test_the_daemons_stop_and_start_are_no_exit_and_no_restart(tmp_path: Path) -> None:
    w = window(tmp_path)
    w._count(event("start", T0))  # the recreate: ours
    w._count(event("kill", T0 + 5, signal="15"))
    w._count(event("kill", T0 + 15, signal="9"))
    w._count(event("die", T0 + 15.03, exitCode="137"))
    w._count(event("stop", T0 + 15.05))
    g = gap(w, T0 + 15.2, T0 + 20)
    assert g["exit_code_at_stop"] == 137 and g["container_stopped_epoch"] == T0 + 15.03
    assert g["stopping_from"] == iso(T0 + 5)  # the SIGTERM, 10 s before the die
    w._count(event("start", T0 + 19.9))  # the daemon starts it as it comes back
    assert w.restarts() == 0 and w.daemon.starts == 1
    assert w.crash_codes() == []
    # A real crash after the daemon came back still counts.
    w._count(event("die", T0 + 25, exitCode="1"))
    w._count(event("start", T0 + 25.1))
    assert w.restarts() == 1 and w.crash_codes() == [1]


def test_a_crash_just_before_the_daemon_went_away_stays_a_crash(tmp_path: Path) -> None:
    w = window(tmp_path)
    w._count(event("start", T0))
    # The process exits by itself (no stop event after the die): the API then goes away.
    w._count(event("die", T0 + 3, exitCode="1"))
    g = gap(w, T0 + 3.5, T0 + 8)
    assert g["container_stopped_at"] is None
    assert w.crash_codes() == [1]
    # A die with its stop long before the daemon went away was somebody's docker stop, not the daemon's.
    w2 = window(tmp_path / "w2")
    w2._count(event("start", T0))
    w2._count(event("die", T0 + 1, exitCode="137"))
    w2._count(event("stop", T0 + 1.1))
    assert gap(w2, T0 + 500, T0 + 505)["container_stopped_at"] is None


def test_the_account_states_what_the_gap_cost(tmp_path: Path) -> None:
    w = window(tmp_path)
    w.daemon.gaps = [
        {"start_epoch": T0, "end_epoch": T0 + 4, "container": "restarted"},
        {"start_epoch": T0 + 10, "end_epoch": T0 + 14, "container": "kept_running"},
        {"start_epoch": T0 + 20, "end_epoch": None, "container": None},
    ]
    account = w.daemon.account()
    assert [a["lines_lost"] for a in account] == [0, None, None]
    assert "cannot be counted" in account[1]["lines_how"]
    statement = DaemonGaps.statement(
        {
            "start": "A",
            "end": "B",
            "end_epoch": 1,
            "seconds": 4.0,
            "container": "restarted",
            "exit_code_at_stop": 137,
            "container_stopped_at": "S",
        }
    )
    assert statement.startswith("the Docker daemon was unavailable from A to B (4.0 s)")
    assert "not a crash of the ingester" in statement
    assert "was not back" in DaemonGaps.statement({"start": "A", "end_epoch": None, "container": None})


def test_the_collector_reads_the_gap_and_names_the_daemons_stop(tmp_path: Path) -> None:
    win = {
        "daemon_unavailable": [
            {
                "start_epoch": T0 + 15.2,
                "end_epoch": T0 + 20,
                "seconds": 4.8,
                "container": "restarted",
                "container_stopped_epoch": T0 + 15.03,
                "exit_code_at_stop": 137,
            }
        ]
    }
    host, problems = parse_host(None, json.dumps(win))
    assert not problems
    (g,) = host.daemon_gaps
    assert g.stopped_at == T0 + 15.03 and g.exit_code == 137
    text = daemon_json(g)["statement"]
    assert text.startswith("the Docker daemon was down from ")
    assert "(5 s); the container was stopped with it (exit 137) and restarted by its restart policy" in text
    assert "not a crash of the ingester" in text


def test_a_run_the_daemon_stopped_is_not_an_outside_kill() -> None:
    from collector.inputs import Context
    from collector.runs import split_runs
    from collector.sources.events import parse_events

    lines = [
        event("start", T0).decode(),
        event("kill", T0 + 5, signal="15").decode(),
        event("kill", T0 + 15, signal="9").decode(),
        event("die", T0 + 15.03, exitCode="137").decode(),
        event("stop", T0 + 15.05).decode(),
        event("start", T0 + 19.9).decode(),
    ]
    events = [e for e in parse_events(lines) if not hasattr(e, "message")]
    # Without the window's gap, SIGTERM, SIGKILL, stop and a later start read as a restart from
    # outside through the Docker API (an operator's docker stop has no start after it).
    for stops, scenario, phrase in (((T0 + 15.03,), "stopped", "stopped with the Docker daemon"),
                                    ((), "external-kill", "restarted from outside through the Docker API")):
        ctx = Context(events=events, events_present=True, daemon_stops=stops)
        first = next(iter(split_runs([], ctx)))
        assert first.exit_code == 137
        assert first.stopped_by_daemon is bool(stops)
        verdict = classify_run(first)
        assert verdict.scenario == scenario and phrase in verdict.reason, verdict


def test_the_progress_line_says_the_daemon_is_away() -> None:
    from ansible_collections.rsky.ingester_capture.plugins.action.follow import window_line

    away = {"elapsed": 12, "restarts": 0, "daemon_unavailable": [{"start": "T1", "end": None}]}
    assert window_line(away, 30).endswith(", the Docker daemon is unavailable since T1")
    back = {"elapsed": 20, "restarts": 0, "daemon_unavailable": [{"start": "T1", "end": "T2", "seconds": 4.6}]}
    assert window_line(back, 30).endswith(", the Docker daemon was unavailable 1 time(s) (4.6 s)")
    assert "daemon" not in window_line({"elapsed": 1, "restarts": 0}, 30)
