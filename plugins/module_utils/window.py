"""The capture window: a detached worker that owns the followers (Python 3.8+, stdlib only).

Docker forgets (256 events, log rotation, recreated containers lose their logs), so for the
whole window one process on the host follows the container's events, samples its stats, keeps
the runbook's attached ``docker compose up`` tee, and at the end reads every run's logs merged
by timestamp. It stops on every path: the deadline, N restarts, a signal, a stop request, or the
play no longer polling (no heartbeat), and it never leaves the service stopped.

The worker runs from a copy of the module's own payload (the zip Ansible sent, or the collection
on disk), so it needs nothing installed on the host.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO, Any, Dict, List, Optional, Tuple, Union

from ansible_collections.rsky.ingester_capture.plugins.module_utils import host_state
from ansible_collections.rsky.ingester_capture.plugins.module_utils.docker_cli import (
    UNREADABLE,
    compose_argv,
    current_project,
    end_read,
    inspect,
    logs_argv,
    merge_sources,
    run,
    use_project,
)
from ansible_collections.rsky.ingester_capture.plugins.module_utils.manifest import (
    read_json,
    record,
    record_note,
    records,
    write_atomic,
    write_json,
)
from ansible_collections.rsky.ingester_capture.plugins.module_utils.timeparse import (
    iso,
    iso_ns,
    line_ns,
    now_iso,
    parse_epoch,
)

PROGRESS_FILE = ".window.json"
HEARTBEAT_FILE = ".heartbeat"
STOP_FILE = ".stop"
CONFIG_FILE = ".window-config.json"
PAYLOAD_FILE = ".window-payload.zip"
LOG_FILE = ".window-agent.log"
# The live followers' raw reads, merged into logs/ingester.log at the end and then removed.
FOLLOW_DIR = ".follow"
# How far before a start event (or the run before it ended) a follower reads: a run prints
# before Docker reports its start.
FOLLOW_MARGIN = 2.0
# What docker attach prints about itself (not the container's output).
ATTACH_ERRORS = (b"Error response from daemon", b"You cannot attach", b"Error: ")
# What a docker client prints when the daemon goes away under it, or is not there.
DAEMON_GONE = ("unexpected EOF", "Cannot connect to the Docker daemon", "connection reset by peer", "EOF")
# The logging options that say how much of the service's output Docker keeps (an allow-list:
# other options of a driver, such as an address, stay on the host).
ROTATION_OPTIONS = ("max-size", "max-file", "compress", "mode", "max-buffer-size", "cache-disabled", "cache-max-size",
                    "cache-max-file")
# Seconds between asks whether the daemon is back.
DAEMON_POLL = 0.5
# A daemon that stops takes its containers down first (SIGTERM, the grace period, SIGKILL), then
# closes its API: a container's die and stop this long before the API closed were the daemon's doing.
DAEMON_STOP_LEAD = 120.0
# Seconds the end of the window waits for a daemon that is still away, to read the logs and
# check the service once it is back.
DAEMON_WAIT_AT_END = 60.0
# Seconds the lock holds after the window, while the play collects, seals, fetches and diagnoses.
LOCK_AFTER_WINDOW = 1800
# The worker tells the starting module it captures (or gave up) by writing to this inherited fd.
READY_FD_ENV = "INGESTER_CAPTURE_WINDOW_READY_FD"
# The worker's own argv: python -c BOOT <sys.path entry> <work folder>.
BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from ansible_collections.rsky.ingester_capture.plugins.module_utils.window import worker_main; "
    "sys.exit(worker_main(sys.argv[2]))"
)


class WindowError(Exception):
    """The window could not start or run; the message says why."""


@dataclass(frozen=True)
class ComposeTarget:
    """The service a window watches: the compose file the capture swaps (``compose_path``), the
    compose service and its container, and the compose project its compose calls run under
    (``project_name``, ``project_dir``, ``files``: the running container's labels; empty:
    compose's own choice from ``compose_path``)."""

    compose_path: str
    service: str
    container: str
    project_name: str = ""
    project_dir: str = ""
    files: Tuple[str, ...] = ()

    @classmethod
    def current(cls, compose: Path, service: str, container: str) -> ComposeTarget:
        """This process's target: the compose project target_paths chose, if any."""
        project = current_project()
        return cls(
            compose_path=str(compose),
            service=service,
            container=container,
            project_name=str(project.get("name") or ""),
            project_dir=str(project.get("working_dir") or "") if project else "",
            files=tuple(str(f) for f in project.get("files") or []),
        )

    def use(self) -> None:
        """Run this process's later compose calls under this target's project (as the module did)."""
        if self.project_name or self.project_dir or self.files:
            use_project(Path(self.compose_path), self.project_name, self.project_dir, self.files)


@dataclass(frozen=True)
class WindowConfig:
    """What the worker is asked to do, written by the module to ``.window-config.json`` and read
    back (validated) by the worker: how long (``seconds``), when to stop early (``stop_after``
    restarts; no heartbeat for ``heartbeat_timeout`` s; less than ``reserve_bytes`` free), whether
    it recreates the service first (``recreate``, stopping it with ``stop_timeout``), how it reads
    the runs (``attach`` when ``docker logs`` reads nothing; ``logs_since`` in observe mode), the
    stats interval, and the lock it keeps alive (``lock_state``, ``lock_owner``; "" for none)."""

    target: ComposeTarget
    recreate: bool = False
    seconds: float = 300.0
    stop_after: int = 3
    stats_interval: float = 5.0
    stop_timeout: int = 10
    heartbeat_timeout: float = 60.0
    logs_since: Optional[str] = None
    attach: bool = False
    reserve_bytes: int = 0
    lock_state: str = ""
    lock_owner: str = ""

    def to_json(self) -> Dict[str, Any]:
        """The config file's object: the target's keys beside the others, one level."""
        body = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "target"}
        body.update(asdict(self.target))
        body["files"] = list(self.target.files)
        return body

    @classmethod
    def from_json(cls, data: Any) -> WindowConfig:
        """The config a to_json object gives back; WindowError naming the first bad key."""
        if not isinstance(data, dict):
            raise WindowError("the window's config is not an object")
        values = {}  # type: Dict[str, Any]
        for klass in (ComposeTarget, cls):
            for f in fields(klass):
                if f.name == "target" or f.name not in data:
                    continue
                values[f.name] = _checked(f.name, data[f.name], _CONFIG_TYPES[f.name])
        missing = [f.name for f in fields(ComposeTarget) if f.name not in values and f.name in _REQUIRED]
        if missing:
            raise WindowError("the window's config lacks %s" % ", ".join(missing))
        target = ComposeTarget(**{f.name: values.pop(f.name) for f in fields(ComposeTarget) if f.name in values})
        return cls(target=target, **values)


_REQUIRED = ("compose_path", "service", "container")
# What each config key holds (a float also takes an int; nothing takes a bool but a bool).
_CONFIG_TYPES = {
    "compose_path": str,
    "service": str,
    "container": str,
    "project_name": str,
    "project_dir": str,
    "files": list,
    "recreate": bool,
    "seconds": float,
    "stop_after": int,
    "stats_interval": float,
    "stop_timeout": int,
    "heartbeat_timeout": float,
    "logs_since": (str, type(None)),
    "attach": bool,
    "reserve_bytes": int,
    "lock_state": str,
    "lock_owner": str,
}  # type: Dict[str, Any]


def _checked(name: str, value: Any, kind: Any) -> Any:
    """``value`` as the config key ``name`` holds it; WindowError when it is of another type."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if kind is list:
        ok = ok and all(isinstance(item, str) for item in value)
        value = tuple(value) if ok else value
    if not ok:
        raise WindowError("the window's config key %s is %r, not a %s" % (name, value, getattr(kind, "__name__", kind)))
    return value


def write_config(out: Path, config: WindowConfig) -> None:
    write_json(out / CONFIG_FILE, config.to_json())


def read_config(out: Path) -> WindowConfig:
    """The worker's config from ``out``; WindowError when it is missing or not a WindowConfig."""
    path = out / CONFIG_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise WindowError("the window's config %s cannot be read: %s" % (path, exc)) from exc
    return WindowConfig.from_json(data)


class DaemonGaps:
    """Each time the Docker daemon went away during a window: the gap (start, end, what became of
    the container), found when the event stream ends by itself, settled once the daemon is back;
    the daemon's own stop and start of the container, which are no exit and no restart; and at
    the end, the wait for a daemon still away and what the gaps cost the log."""

    def __init__(self, window: Window) -> None:
        self.window = window
        self.gaps = []  # type: List[Dict[str, Any]]
        # Starts of the container by the daemon coming back (restart policy, or live-restore).
        self.starts = 0

    def claim_start(self) -> None:
        """A start event, under the window's lock: the first since the daemon went away, with no
        crash of its own between, is the daemon's on its way back, not a restart after an exit."""
        gap = self.gaps[-1] if self.gaps else None
        if gap is None or gap.get("start_counted") or any(
            a == "die" for a, _c, t in self.window.run_events if t >= float(gap["start_epoch"])
        ):
            return
        gap["start_counted"] = True
        self.starts += 1
        if gap.get("container") in ("stopped", "not_running", "unknown"):
            # Inspected before the daemon had started it again.
            gap["container"] = "restarted" if gap.get("container_stopped_at") else "started"
            gap["statement"] = self.statement(gap)
        if gap.get("end_epoch") is not None:
            threading.Thread(target=self.window.reattach_tee, daemon=True).start()

    def public(self) -> List[Dict[str, Any]]:
        with self.window.lock:
            return [{k: v for k, v in g.items() if k != "start_counted"} for g in self.gaps]

    def went_away(self, error: str) -> Optional[Dict[str, Any]]:
        """The event stream ended by itself: record a ``daemon_unavailable`` gap, wait until the
        daemon answers again (or the window ends), then pick the capture up again. The gap, or
        None when the window ended first (the gap stays open: no end)."""
        start = time.time()
        code, _out, err = run(["docker", "version", "--format", "{{.Server.Version}}"], timeout=10)
        if code == 0 and not any(m in error for m in DAEMON_GONE):
            # The daemon is there: the stream alone broke. Open it again, no gap.
            self.window.notes.append("the event stream ended (%s) and was opened again" % (error or "no error"))
            self.window.stopping.wait(DAEMON_POLL)
            return {"start_epoch": start}
        gap = {
            "kind": "daemon_unavailable",
            "start": iso(start),
            "start_epoch": start,
            "end": None,
            "end_epoch": None,
            "seconds": None,
            "seen_by": "docker events: %s" % (error or "the stream ended"),
            "docker_error": (err.strip()[:300] or None) if code != 0 else None,
            "container": None,
            "container_stopped_at": None,
            "exit_code_at_stop": None,
            "statement": None,
        }  # type: Dict[str, Any]
        with self.window.lock:
            self.mark_stop(gap)
            self.gaps.append(gap)
        self.window.save()
        while not self.window.stopping.is_set():
            code, _out, err = run(["docker", "version", "--format", "{{.Server.Version}}"], timeout=10)
            if code == 0:
                break
            gap["docker_error"] = err.strip()[:300] or gap["docker_error"]
            self.window.stopping.wait(DAEMON_POLL)
        else:
            gap["statement"] = self.statement(gap)
            return None
        end = time.time()
        with self.window.lock:
            gap.update({"end": iso(end), "end_epoch": end, "seconds": round(end - start, 1)})
            gap["statement"] = self.statement(gap)
        return gap

    def settle(self, gap: Dict[str, Any]) -> None:
        """The daemon is back and the event stream open again: what became of the container."""
        self.after(gap)
        with self.window.lock:
            gap["statement"] = self.statement(gap)
        self.window.save()

    def mark_stop(self, gap: Dict[str, Any]) -> None:
        """A die then a stop in this run, nothing after and the API gone soon after: the daemon
        stopped the container on its way down (docker stop looks the same, but the daemon then
        went away). That die is no crash of the ingester."""
        actions = [a for a, _code, _t in self.window.run_events]
        if "die" not in actions:
            return
        at = len(actions) - 1 - actions[::-1].index("die")
        _action, code, when = self.window.run_events[at]
        if "stop" not in actions[at:] or float(gap["start_epoch"]) - when > DAEMON_STOP_LEAD:
            return
        for die in reversed(self.window.dies):
            if die.get("epoch") == when:
                die["cause"] = "daemon_stop"
                break
        gap["container_stopped_at"] = iso(when)
        gap["container_stopped_epoch"] = when
        gap["exit_code_at_stop"] = code
        kills = [t for a, _signal, t in self.window.run_events[:at] if a == "kill"]
        # Its first kill (SIGTERM) is when the daemon began to go down.
        gap["stopping_from"] = iso(kills[0]) if kills else None
        self.window.run_events = []  # that run is over: its die belongs to this gap alone

    def after(self, gap: Dict[str, Any]) -> None:
        """The daemon is back: what became of the container, and the followers picked up again."""
        found, error = inspect(self.window.container, attempts=3)
        state = (found or {}).get("State") or {}
        started = parse_epoch(str(state.get("StartedAt") or "")) or 0.0
        running = bool(state.get("Running") or state.get("Restarting"))
        with self.window.lock:
            if gap.get("start_counted"):
                # The daemon's start of it came in first.
                gap["container"] = "restarted" if gap["container_stopped_at"] else "started"
            elif found is None:
                gap["container"] = "unknown"
                gap["inspect_error"] = error[:300]
            elif running and started and started < float(gap["start_epoch"]) - 1 and not gap["container_stopped_at"]:
                # live-restore: the container ran on without the daemon; no start event will come.
                gap["container"] = "kept_running"
                if not self.window.stopping.is_set():
                    self.window.follow_logs(float(gap["start_epoch"]) - FOLLOW_MARGIN, "the daemon came back (kept running)")
            elif running:
                gap["container"] = "restarted" if gap["container_stopped_at"] else "started"
            else:
                gap["container"] = "stopped" if gap["container_stopped_at"] else "not_running"
        if running:
            self.window.reattach_tee()

    @staticmethod
    def statement(gap: Dict[str, Any]) -> str:
        """One sentence for the play, the manifest and the report."""
        if gap.get("end_epoch") is None:
            text = "the Docker daemon went away at %s and was not back when the window ended" % gap["start"]
        else:
            text = "the Docker daemon was unavailable from %s to %s (%s s)" % (gap["start"], gap["end"], gap["seconds"])
        fate = {
            "restarted": "; the container was stopped with it (%sexit %s at %s) and started again when it came back "
            "(its restart policy): not a crash of the ingester, and nothing ran while the daemon was away"
            % (_from(gap), gap.get("exit_code_at_stop"), gap.get("container_stopped_at")),
            "stopped": "; the container was stopped with it (%sexit %s at %s) and was not started again"
            % (_from(gap), gap.get("exit_code_at_stop"), gap.get("container_stopped_at")),
            "kept_running": "; the container kept running (live-restore): what it printed meanwhile waited in its "
            "output pipe and was logged when the daemon came back, stamped with that time",
            "started": "; the container was running again when it came back",
            "not_running": "; the container was not running when it came back",
            "unknown": "; the container could not be inspected afterwards",
        }
        return text + fate.get(str(gap.get("container")), "")

    def wait_at_end(self) -> None:
        """A daemon still away when the window ends: wait a while for it, so that the logs can be
        read and the service checked; say so either way."""
        gap = self.gaps[-1] if self.gaps else None
        if gap is None or gap.get("end_epoch") is not None:
            self.window.notes.extend(str(g["statement"]) for g in self.gaps if g.get("statement"))
            return
        self.window.notes.extend(str(g["statement"]) for g in self.gaps[:-1] if g.get("statement"))
        deadline = time.time() + DAEMON_WAIT_AT_END
        while time.time() < deadline:
            if run(["docker", "version", "--format", "{{.Server.Version}}"], timeout=10)[0] == 0:
                end = time.time()
                gap.update({"end": iso(end), "end_epoch": end, "seconds": round(end - float(gap["start_epoch"]), 1)})
                self.after(gap)
                gap["statement"] = self.statement(gap) + " (after the window had ended)"
                self.window.notes.append(gap["statement"])
                return
            time.sleep(DAEMON_POLL)
        gap["statement"] = self.statement(gap)
        self.window.notes.append(
            gap["statement"] + ": the end-of-window read and the check of the service could not be done"
        )

    def account(self) -> List[Dict[str, Any]]:
        """Each time the daemon was away, and what it cost the log: nothing, when the container
        was stopped with the daemon (nothing ran meanwhile); otherwise None: not countable."""
        account = []
        for gap in self.public():
            fate = gap.get("container")
            if fate in ("restarted", "stopped"):
                lost = 0  # type: Optional[int]
                how = "the container was stopped with the daemon: it printed nothing while the daemon was away"
            elif fate == "kept_running":
                lost = None
                how = (
                    "the container ran on while the daemon was away; its output waited in the pipe and Docker "
                    "logged it on its return, so a loss cannot be counted"
                )
            else:
                lost = None
                how = "what the container printed while the daemon was away cannot be known"
            gap.update({"lines_lost": lost, "lines_how": how})
            account.append(gap)
        return account


class Window:
    """Owns the followers for one capture window and stops them on every path."""

    def __init__(self, out: Path, config: WindowConfig) -> None:
        self.out = out
        self.cfg = config
        self.compose = Path(config.target.compose_path)
        self.container = config.target.container
        self.service = config.target.service
        self.recreate_first = config.recreate
        self.children = []  # type: List[subprocess.Popen[bytes]]
        # (pid, start time) of each follower, in the progress file: if this worker is killed, its
        # followers (each in a session of its own) live on, and whoever finds it dead stops them.
        self.child_starts = []  # type: List[Tuple[int, Optional[str]]]
        self.pid_start = host_state.process_start(os.getpid())
        self.lock = threading.Lock()
        self.starts = 0
        self.dies = []  # type: List[Dict[str, Any]]
        self.ooms = 0
        self.kills = 0
        self.stop_reason = ""
        self.stopping = threading.Event()
        self.started_epoch = time.time()
        self.phase = "starting"
        self.notes = []  # type: List[str]
        self.error = ""
        self.old_id = ""
        self.followers = []  # type: List[Dict[str, Any]]
        self.tee_times = []  # type: List[int]
        self.tee_thread = None  # type: Optional[threading.Thread]
        self.copiers = []  # type: List[threading.Thread]
        self.logs = None  # type: Optional[Dict[str, Any]]
        # Each time the Docker daemon was away: start and end, and what that did to the container.
        self.daemon = DaemonGaps(self)
        # This run's events since its start (action, exit code, epoch): to tell the daemon's stop.
        self.run_events = []  # type: List[Any]
        self.stats_failed = 0
        self.tee_proc = None  # type: Optional[subprocess.Popen[bytes]]
        self.tee_attaches = 0
        self.tee_lock = threading.Lock()
        self.events_spawned = threading.Event()
        self.stats_proc = None  # type: Optional[subprocess.Popen[str]]

    # progress ---------------------------------------------------------------------------------
    def restarts(self) -> int:
        # With a recreate, the first start is ours; every later one is a restart. In observe mode
        # the container was already running, so every start seen is a restart.
        # A start by the daemon coming back (restart policy, or live-restore) is not a restart.
        starts = self.starts - self.daemon.starts
        return max(0, starts - 1) if self.recreate_first else starts

    def crash_codes(self) -> List[Any]:
        return [d.get("exit_code") for d in self.dies if d.get("cause") != "daemon_stop"]

    def progress(self) -> Dict[str, Any]:
        return {
            "phase": self.phase,
            "pid": os.getpid(),
            "pid_start": self.pid_start,
            "children": [[pid, start] for pid, start in self.child_starts if start],
            "started_epoch": self.started_epoch,
            "elapsed": round(time.time() - self.started_epoch, 1),
            "window_seconds": self.cfg.seconds,
            "restarts": self.restarts(),
            "exit_codes": self.crash_codes(),
            "daemon_unavailable": self.daemon.public(),
            "oom_events": self.ooms,
            "kill_events": self.kills,
            "ended_by": self.stop_reason or None,
            "error": self.error or None,
            "notes": self.notes,
            "logs": self.logs,
        }

    def save(self) -> None:
        write_json(self.out / PROGRESS_FILE, self.progress(), mode=0o600)

    # followers --------------------------------------------------------------------------------
    def spawn(
        self, argv: List[str], sink: Union[IO[bytes], int], err: Union[IO[bytes], int] = subprocess.STDOUT
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, stdout=sink, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
        self.own(proc)
        return proc

    def own(self, proc: subprocess.Popen[bytes]) -> None:
        """A follower this window stops at its end (or, if it dies, whoever finds it dead)."""
        self.children.append(proc)
        self.child_starts.append((proc.pid, host_state.process_start(proc.pid)))

    def events_argv(self, since: float) -> List[str]:
        return [
            "docker",
            "events",
            "--format",
            "{{json .}}",
            "--filter",
            "type=container",
            "--filter",
            "container=%s" % self.container,
            "--since",
            str(int(since)),
        ]

    def follow_events(self) -> None:
        """Stream the container's events for the whole window. The stream ends by itself only
        when the daemon goes away: then the gap is recorded, and once the daemon answers again
        the stream is opened anew with --since the gap's start (the daemon's events since it
        came back; what it held before is gone with it), each event kept once."""
        started = now_iso()
        since = self.started_epoch - 1
        streams = []  # type: List[Dict[str, Any]]
        seen = set()  # type: set
        folder = self.out / FOLLOW_DIR
        folder.mkdir(parents=True, exist_ok=True)
        settle = None  # type: Optional[Dict[str, Any]]
        with (self.out / "events.jsonl").open("ab") as sink:
            while True:
                argv = self.events_argv(since)
                err_path = folder / ("events-%d.stderr" % (len(streams) + 1))
                with err_path.open("wb") as err:
                    proc = self.spawn(argv, subprocess.PIPE, err)
                self.events_spawned.set()
                if settle is not None:
                    # The stream is open again first (the daemon's starts must not slip by), then
                    # what became of the container is looked at, beside it.
                    thread = threading.Thread(target=self.daemon.settle, args=(settle,), daemon=True)
                    thread.start()
                    self.copiers.append(thread)
                    settle = None
                if proc.stdout is None:
                    raise AssertionError("the follower's stdout is a pipe")
                for raw in proc.stdout:
                    key = _event_key(raw)
                    if key is not None and key in seen:
                        continue
                    if key is not None:
                        seen.add(key)
                    sink.write(raw)
                    sink.flush()
                    self._count(raw)
                code = proc.wait()
                error = _tail(err_path)
                streams.append(
                    {"argv": argv, "exit_code": 0 if self.stopping.is_set() else code, "error": error or None}
                )
                if self.stopping.is_set():
                    break
                # The stream never ends by itself while the daemon is there.
                gap = self.daemon.went_away(error)
                if gap is None:
                    break
                since = float(gap["start_epoch"]) - 1
                settle = gap if gap.get("kind") else None
        # The stream never ends by itself: the worker stops it at the end of the window.
        entry = {
            "file": "events.jsonl",
            "argv": streams[0]["argv"] if streams else self.events_argv(since),
            "exit_code": 0 if all(s["exit_code"] == 0 for s in streams[-1:]) else streams[-1]["exit_code"],
            "started": started,
            "ended": now_iso(),
            "timed_out": False,
            "note": "streamed live for the whole window",
        }  # type: Dict[str, Any]
        if len(streams) > 1:
            entry["streams"] = streams
            entry["note"] = (
                "streamed live for the whole window; the stream was opened again with --since after each time the "
                "Docker daemon was away (%d)" % (len(streams) - 1)
            )
        record(self.out, entry)

    # the daemon going away -------------------------------------------------------------------
    def reattach_tee(self) -> None:
        """The attached stream ended with the daemon: attach again, as the runbook's tee would be
        (only to a running container: `up` would start a stopped one)."""
        with self.tee_lock:
            if self.stopping.is_set() or self.tee_proc is None or self.tee_proc.poll() is None:
                return
            if self.tee_thread is not None:
                self.tee_thread.join(timeout=10)
            self.start_tee()

    def _count(self, raw: bytes) -> None:
        try:
            event = json.loads(raw)
        except ValueError:
            return
        if self.old_id and event.get("id") == self.old_id:
            return  # the production container being stopped by the recreate: ours
        action = str(event.get("Action") or event.get("status") or "")
        attrs = (event.get("Actor") or {}).get("Attributes") or {}
        nano = event.get("timeNano") or int(float(event.get("time") or time.time()) * 1e9)
        epoch = int(nano) / 1e9
        with self.lock:
            if action == "start":
                self.starts += 1
                self.daemon.claim_start()
                self.run_events = []
                if not self.stopping.is_set():
                    # From the last run's end when there is one: nothing of this run can be older,
                    # however late a loaded daemon stamps the start (the merge drops what was read twice).
                    since = epoch if not self.dies else min(epoch, float(self.dies[-1]["epoch"]))
                    self.follow_logs(since - FOLLOW_MARGIN, "start event", run_start=epoch)
            elif action == "die":
                code = str(attrs.get("exitCode"))
                exit_code = int(code) if code.lstrip("-").isdigit() else code  # type: Any
                self.dies.append({"exit_code": exit_code, "time": event.get("time"), "epoch": epoch})
                self.run_events.append(("die", exit_code, epoch))
            elif action == "stop":
                self.run_events.append(("stop", None, epoch))
            elif action == "oom":
                self.ooms += 1
            elif action.startswith("kill"):
                self.kills += 1
                self.run_events.append(("kill", attrs.get("signal"), epoch))

    def follow_logs(self, since: float, why: str, run_start: Optional[float] = None) -> None:
        """Follow one run's logs live from its start: rotation cannot take what was read.

        When the logging driver keeps nothing ``docker logs`` can read (pre-flight said so), the
        run's output is taken from ``docker attach`` instead, each line stamped on arrival."""
        if self.cfg.attach:
            self.attach_run(why)
            return
        folder = self.out / FOLLOW_DIR
        folder.mkdir(parents=True, exist_ok=True)
        index = len(self.followers) + 1
        base = folder / ("run-%03d" % index)
        argv = logs_argv(self.container, since=iso(since), follow=True)
        out_path, err_path = base.with_suffix(".stdout"), base.with_suffix(".stderr")
        with out_path.open("wb") as stdout, err_path.open("wb") as stderr:
            proc = subprocess.Popen(argv, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, start_new_session=True)
        self.own(proc)
        self.followers.append(
            {
                "index": index,
                "since": iso(since),
                "started": now_iso(),
                "why": why,
                "argv": argv,
                "proc": proc,
                "stdout": out_path,
                "stderr": err_path,
                "run_start": run_start,
            }
        )

    def attach_run(self, why: str) -> None:
        folder = self.out / FOLLOW_DIR
        folder.mkdir(parents=True, exist_ok=True)
        index = len(self.followers) + 1
        base = folder / ("run-%03d" % index)
        argv = ["docker", "attach", "--no-stdin", "--sig-proxy=false", self.container]
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True
        )
        self.own(proc)
        entry = {
            "index": index,
            "since": None,
            "started": now_iso(),
            "why": why,
            "argv": argv,
            "proc": proc,
            "stdout": base.with_suffix(".stdout"),
            "stderr": base.with_suffix(".stderr"),
            "kind": "attach",
            "cli_errors": [],
        }  # type: Dict[str, Any]
        self.followers.append(entry)
        for pipe, path in ((proc.stdout, entry["stdout"]), (proc.stderr, entry["stderr"])):
            thread = threading.Thread(target=self._stamp, args=(pipe, path, entry), daemon=True)
            thread.start()
            self.copiers.append(thread)

    @staticmethod
    def _stamp(pipe: IO[bytes], path: Path, entry: Dict[str, Any]) -> None:
        """Copy an attached stream, each line prefixed with its arrival time, as docker logs would."""
        with path.open("wb") as handle:
            for raw in pipe:
                if raw.startswith(ATTACH_ERRORS):
                    entry["cli_errors"].append(raw.decode(errors="replace").strip()[:300])
                    continue
                handle.write(("%sZ " % iso_ns(time.time_ns())).encode() + raw)
                handle.flush()

    def sample_stats(self) -> None:
        argv = ["docker", "stats", "--no-stream", "--format", "{{json .}}", self.container]
        started = now_iso()
        samples = 0
        interval = self.cfg.stats_interval
        with (self.out / "stats.jsonl").open("a", encoding="utf-8") as sink:
            while not self.stopping.is_set():
                code, out = self._stats_sample(argv)
                if code == 0 and out.strip():
                    try:
                        stats = json.loads(out.strip().splitlines()[-1])
                    except ValueError:
                        stats = {"raw": out.strip()}
                    sink.write(json.dumps({"ts": now_iso(), "epoch": time.time(), "stats": stats}) + "\n")
                    sink.flush()
                    samples += 1
                else:
                    # The container between runs, or the daemon away: no sample, counted.
                    self.stats_failed += 1
                self.stopping.wait(interval)
        record(
            self.out,
            {
                "file": "stats.jsonl",
                "argv": argv,
                "exit_code": 0,
                "started": started,
                "ended": now_iso(),
                "timed_out": False,
                "samples": samples,
                "failed_samples": self.stats_failed,
                "note": "one sample every %s s" % interval,
            },
        )

    def _stats_sample(self, argv: List[str]) -> Tuple[int, str]:
        """One docker stats sample (it takes a second or two); the end of the window kills one
        still running instead of waiting for a sample that would come after the window."""
        try:
            proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True
            )
        except OSError:
            return 127, ""
        self.stats_proc = proc
        try:
            out, _err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _err = proc.communicate()
            return -1, ""
        finally:
            self.stats_proc = None
        return proc.returncode, out or ""

    def start_tee(self) -> None:
        # The runbook's `docker compose up SERVICE | tee FILE`: attached, so it re-attaches after
        # each restart and misses what was printed in between. Kept as evidence of that loss.
        argv = compose_argv(self.compose, "up", "--no-deps", "--no-recreate", "--no-build", "--no-color", self.service)
        sink = self.out / "logs" / "tee.log"
        sink.parent.mkdir(parents=True, exist_ok=True)
        proc = self.spawn(argv, subprocess.PIPE)
        self.tee_proc = proc
        self.tee_attaches += 1
        self.tee_thread = threading.Thread(target=self._copy_tee, args=(proc, sink), daemon=True)
        self.tee_thread.start()
        if self.tee_attaches > 1:
            return  # attached again after the daemon came back: the same file, appended
        record(
            self.out,
            {
                "file": "logs/tee.log",
                "argv": argv,
                "exit_code": None,
                "started": now_iso(),
                "ended": None,
                "timed_out": False,
                "note": "attached stream, as the runbook tees it; loses lines at each re-attach",
            },
        )

    def _copy_tee(self, proc: subprocess.Popen[bytes], sink: Path) -> None:
        """Copy the attached stream byte for byte, noting when each line arrived: a line only
        the tee caught (Docker rotated it away) goes into the merged log at that time."""
        if proc.stdout is None:
            raise AssertionError("the follower's stdout is a pipe")
        with sink.open("ab") as handle:
            for raw in proc.stdout:
                self.tee_times.append(time.time_ns())
                handle.write(raw)
                handle.flush()

    def recreate(self) -> None:
        """The runbook's step 3: stop and remove the service, bring it up on the swapped image."""
        for rest in (
            ("stop", "--timeout", str(self.cfg.stop_timeout), self.service),
            ("rm", "-f", self.service),
            ("up", "-d", "--no-deps", "--no-build", "--pull", "never", self.service),
        ):
            code, out, err = run(compose_argv(self.compose, *rest), timeout=180)
            if code != 0:
                raise WindowError("'docker compose %s' failed: %s" % (" ".join(rest), (err or out).strip()[:300]))

    def ensure_not_stopped(self) -> None:
        """Never leave the service stopped: bring it up if the capture left it exited."""
        found, _error = inspect(self.container)
        state = (found or {}).get("State") or {}
        if state.get("Running") or state.get("Restarting"):
            return
        code, _out, err = run(
            compose_argv(self.compose, "up", "-d", "--no-deps", "--no-build", "--pull", "never", self.service),
            timeout=180,
        )
        self.notes.append(
            "the service was found stopped at the end of the window and was started again"
            if code == 0
            else "the service was found stopped and could not be started: %s" % err.strip()[:200]
        )

    # lifecycle --------------------------------------------------------------------------------
    def disk_short(self) -> str:
        """Why the window must stop for disk space, or "": the merge at the end needs about as
        much room as the followers have written, plus the reserve."""
        reserve = self.cfg.reserve_bytes
        if not reserve:
            return ""
        try:
            free = shutil.disk_usage(str(self.out)).free
            written = sum(p.stat().st_size for p in (self.out / FOLLOW_DIR).glob("*")) if (
                self.out / FOLLOW_DIR
            ).is_dir() else 0
        except OSError:
            return ""
        if free >= reserve + written:
            return ""
        return (
            "disk nearly full: %d bytes free under %s, the followers wrote %d and the merge, seal and reserve need "
            "%d; the window stopped early and kept what it had" % (free, self.out, written, reserve + written)
        )

    def should_stop(self) -> str:
        if (self.out / STOP_FILE).exists():
            return "stopped"
        short = self.disk_short()
        if short:
            return short
        if time.time() - self.started_epoch >= self.cfg.seconds:
            return "deadline"
        if self.cfg.stop_after and self.restarts() >= self.cfg.stop_after:
            return "restarts"
        hb = self.out / HEARTBEAT_FILE
        last = hb.stat().st_mtime if hb.exists() else self.started_epoch
        timeout = self.cfg.heartbeat_timeout
        if timeout and time.time() - last > timeout:
            return "aborted: the controller stopped polling (play interrupted or host unreachable)"
        return ""

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        if self.cfg.lock_state and self.cfg.lock_owner:
            until = time.time() + self.cfg.seconds + 900
            host_state.lock_attach(Path(self.cfg.lock_state), self.cfg.lock_owner, os.getpid(), until)
        if self.recreate_first:
            found, _error = inspect(self.container, attempts=1)
            self.old_id = str((found or {}).get("Id") or "")
        threads = [threading.Thread(target=self.follow_events, daemon=True)]
        threads[0].start()
        # The stream replays from a second before the window (--since), so it misses nothing of
        # the recreate once the docker events process runs: no fixed wait for it to attach.
        self.events_spawned.wait(5.0)
        try:
            if self.recreate_first:
                self.phase = "recreating"
                self.save()
                self.recreate()
            self.started_epoch = time.time()
            if not self.recreate_first:
                with self.lock:
                    self.follow_logs(self.started_epoch - FOLLOW_MARGIN, "window start (already running)")
            self.phase = "capturing"
            self.save()
            self.signal_ready()
            self.start_tee()
            stats = threading.Thread(target=self.sample_stats, daemon=True)
            stats.start()
            threads.append(stats)
            while not self.stop_reason:
                reason = self.should_stop()
                if reason:
                    if reason == "restarts":
                        time.sleep(1.0)  # let the new run print its first lines
                    self.stop_reason = reason
                    break
                self.save()
                time.sleep(0.5)
        except WindowError as exc:
            self.error = str(exc)
            self.stop_reason = "failed"
        except Exception as exc:  # the window must clean up whatever went wrong
            self.error = "%s: %s" % (type(exc).__name__, exc)
            self.stop_reason = "failed"
        finally:
            self.finish(threads)
        return 0 if not self.error else 1

    @staticmethod
    def signal_ready() -> None:
        """Wake the module waiting in start(): the progress file says what happened."""
        fd = os.environ.pop(READY_FD_ENV, "")
        if fd.isdigit():
            try:
                os.write(int(fd), b"r")
                os.close(int(fd))
            except OSError:
                pass

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stop_reason = "aborted: signal %s" % signal.Signals(signum).name

    def split_setup_events(self) -> None:
        """Move the old container's events (our own stop and rm) out of events.jsonl, into
        events-setup.jsonl: they are the capture's doing, not evidence about the ingester."""
        events = self.out / "events.jsonl"
        if not events.exists():
            return
        marker = ('"id":"%s"' % self.old_id).encode()
        kept = []  # type: List[bytes]
        setup = []  # type: List[bytes]
        for line in events.read_bytes().splitlines(True):
            (setup if marker in line.replace(b" ", b"") else kept).append(line)
        write_atomic(events, b"".join(kept), 0o600)
        write_atomic(self.out / "events-setup.jsonl", b"".join(setup), 0o600)
        record_note(
            self.out,
            "events-setup.jsonl",
            "events of the production container while the capture stopped and removed it",
        )

    def tee_only_why(self, tee_only: int, unreadable: bool) -> Optional[str]:
        """Why Docker had no copy of lines only the tee held; None when there were none."""
        if not tee_only:
            return None
        why = (
            "the logging driver keeps no copy Docker can read"
            if unreadable
            else "Docker's log rotation removed them before a follower read them"
        )
        if self.daemon.gaps:
            why += "; the Docker daemon was away for part of the window (daemon_unavailable)"
        return why

    def log_config(self) -> Optional[Dict[str, Any]]:
        """The container's logging driver and its options (max-size, max-file: how much Docker
        keeps of what the service writes); None when it cannot be inspected."""
        found, _error = inspect(self.container, attempts=1)
        config = ((found or {}).get("HostConfig") or {}).get("LogConfig")
        if not isinstance(config, dict):
            return None
        options = config.get("Config") or {}
        kept = {k: str(v) for k, v in options.items() if k in ROTATION_OPTIONS} if isinstance(options, dict) else {}
        return {"driver": config.get("Type"), "options": kept}

    def beginnings_unread(self, rotation: Optional[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """The runs whose first lines log rotation may have taken before anything read them.

        Each run's follower reads from before the run started (the run before it ended, less the
        margin). The follower before it read that run's last lines; when one of them falls in this
        follower's span and this follower's oldest line is still later, Docker no longer held it:
        the file it was in had been rotated away, and with it whatever the new run wrote into that
        file after it (a run prints before Docker stamps its start, so the start event cannot
        bound it). Only lines the tee caught are left of them. Said only when the driver rotates:
        else Docker keeps every line."""
        if not rotates(rotation):
            return []
        found = []  # type: List[Dict[str, Any]]
        previous = None  # type: Optional[Dict[str, Any]]
        runs = [f for f in self.followers if f.get("run_start") is not None]
        for number, entry in enumerate(runs, 1):
            before, previous = previous, entry
            if before is None:
                continue  # the window's first run: nothing before it shows what Docker held
            since_ns = int((parse_epoch(entry["since"]) or 0) * 1e9)
            held = newest_ns((before["stdout"], before["stderr"]))
            oldest = oldest_ns((entry["stdout"], entry["stderr"]))
            if held is None or oldest is None or not since_ns <= held < oldest:
                continue
            lost = {
                "run": number,
                "started": iso(float(entry["run_start"])),
                "follower_started": entry["started"],
                "last_line_before": iso_ns(held) + "Z",
                "oldest_read": iso_ns(oldest) + "Z",
            }
            lost["statement"] = (
                "run %(run)d of the window (started %(started)s): when its follower opened Docker's log at "
                "%(follower_started)s, the previous run's last line (%(last_line_before)s) was gone and the oldest "
                "line left was from %(oldest_read)s; log rotation had removed what was written between them, the "
                "start of run %(run)d, before it could be read (only lines the tee caught are kept)" % lost
            )
            found.append(lost)
        return found

    def merge_logs(self, since: Optional[str]) -> Dict[str, Any]:
        """logs/ingester.log from the live followers, the end-of-window read and the tee, each
        line once; what each source gave, and every loss that can be counted."""
        folder = self.out / FOLLOW_DIR
        folder.mkdir(parents=True, exist_ok=True)
        argv = logs_argv(self.container, since=since)
        started = now_iso()
        end_out, end_err = folder / "end.stdout", folder / "end.stderr"
        code, timed_out, end_error = end_read(argv, end_out, end_err)
        parts = []
        followers = []
        errors = []
        for entry in self.followers:
            proc = entry["proc"]
            # A follower ends by itself when its run ends; the rest were stopped at the end.
            returncode = proc.poll()
            error = ""
            if entry.get("kind") == "attach":
                error = "; ".join(entry["cli_errors"][:3])
            elif returncode not in (0, None, -signal.SIGKILL):
                body = entry["stderr"].read_bytes().rstrip(b"\n")
                head, _sep, tail = body.rpartition(b"\n")
                error = tail.decode(errors="replace").strip()[:300]
                entry["stderr"].write_bytes(head + b"\n" if head else b"")
                if self.daemon.gaps and any(m in error for m in DAEMON_GONE):
                    # Cut off by the daemon going away: a follower from the next start (or from the
                    # daemon's return, under live-restore) reads on. Not docker refusing the driver.
                    error = "ended when the Docker daemon went away: %s" % error
                else:
                    errors.append(error)
            parts.append((entry.get("kind", "follow"), entry["stdout"], entry["stderr"]))
            followers.append(
                {
                    "kind": entry.get("kind", "follow"),
                    "index": entry["index"],
                    "since": entry["since"],
                    "started": entry["started"],
                    "why": entry["why"],
                    "exit_code": returncode,
                    "error": error or None,
                }
            )
        parts.append(("end_read", end_out, end_err))
        rotation = self.log_config()
        beginnings = self.beginnings_unread(rotation)
        counts = merge_sources(
            self.out / "logs" / "ingester.log", parts, (self.out / "logs" / "tee.log", list(self.tee_times))
        )
        unreadable = self.cfg.attach or UNREADABLE in end_error or any(UNREADABLE in e for e in errors)
        logs = {
            "sources": {
                "follow": counts["read"].get("follow", 0),
                "attach": counts["read"].get("attach", 0),
                "end_read": counts["read"].get("end_read", 0),
                "tee_container_lines": counts["tee_lines"],
                "tee_only": counts["kept"]["tee_only"],
                "tee_repeats": counts["tee_repeats"],
                "tee_only_at": counts["tee_only_at"],
                "tee_missed_lines": counts["tee_missed"],
            },
            "tee_only_why": self.tee_only_why(counts["kept"]["tee_only"], unreadable),
            "rotation": rotation,
            # Runs whose first lines Docker no longer held when their follower opened the log.
            "beginnings_unread": beginnings,
            "merged_lines": counts["merged"],
            "lines": {"stdout": counts["kept"]["stdout"], "stderr": counts["kept"]["stderr"]},
            # docker logs could not read the driver: the attached streams (the window's own
            # `docker attach` of each run, and the tee) are all there is.
            "only_source": ("attach" if self.cfg.attach else "tee") if unreadable else None,
            "docker_logs_error": (end_error or (errors[0] if errors else "")) or None,
            "followers": followers,
            "daemon_unavailable": self.daemon.account(),
        }
        record(
            self.out,
            {
                "file": "logs/ingester.log",
                "argv": argv,
                "exit_code": code,
                "started": started,
                "ended": now_iso(),
                "timed_out": timed_out,
                "lines": logs["lines"],
                "logs": logs,
                "note": "each run followed live from its start (docker logs --follow), the end-of-window read and "
                "the lines only the attached stream caught, each line once, merged by timestamp",
            },
        )
        shutil.rmtree(str(folder), ignore_errors=True)
        return logs

    def finish(self, threads: List[threading.Thread]) -> None:
        self.phase = "finishing"
        self.save()
        self.signal_ready()
        self.stopping.set()
        window_end = time.time()
        sampling = self.stats_proc
        if sampling is not None and sampling.poll() is None:
            sampling.kill()
        for proc in self.children:
            # SIGKILL the attached compose: SIGINT or SIGTERM would make it stop the service.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in self.children:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for thread in threads + ([self.tee_thread] if self.tee_thread else []) + self.copiers:
            thread.join(timeout=30)
        self.daemon.wait_at_end()
        if self.recreate_first and not self.error.startswith("'docker compose stop"):
            self.ensure_not_stopped()
        if self.old_id:
            self.split_setup_events()
        since = None if self.recreate_first else self.cfg.logs_since
        try:
            self.logs = self.merge_logs(since)
        except OSError as exc:
            # Out of space (or the folder went away): keep what was written, say so.
            self.notes.append("the merged log could not be written: %s" % exc)
            self.logs = {"error": str(exc)}
        self.phase = "done"
        progress = self.progress()
        progress.update(
            {
                "window_start_epoch": self.started_epoch,
                "window_end_epoch": window_end,
                "mode": "capture" if self.recreate_first else "observe",
                "dies": self.dies,
                "daemon_starts": self.daemon.starts,
            }
        )
        progress.pop("children", None)  # the host's process ids: for the progress file only
        write_json(self.out / "window.json", progress, mode=0o600)
        record_note(self.out, "window.json", "")
        self.save()
        if self.cfg.lock_state and self.cfg.lock_owner:
            lock_state, owner = Path(self.cfg.lock_state), self.cfg.lock_owner
            if self.stop_reason.startswith("aborted"):
                # Nobody is left to release it: the play that owns it is gone.
                host_state.lock_release(lock_state, owner)
            else:
                host_state.lock_detach(lock_state, owner, time.time() + LOCK_AFTER_WINDOW)


def rotates(rotation: Optional[Dict[str, Any]]) -> bool:
    """Whether the logging driver throws old lines away: json-file with max-size, or local
    (which rotates by default). Unknown (inspect failed) counts as rotating: better a run's
    start said to be unread than lost without a word."""
    if rotation is None:
        return True
    driver = rotation.get("driver")
    options = rotation.get("options") or {}
    return driver == "local" or (driver == "json-file" and "max-size" in options)


def newest_ns(paths: Tuple[Path, ...], tail: int = 65536) -> Optional[int]:
    """The newest timestamp among the last lines of a follower's reads; None when it read nothing."""
    newest = None  # type: Optional[int]
    for path in paths:
        try:
            with path.open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - tail))
                block = handle.read(tail)
        except OSError:
            continue
        for line in block.split(b"\n")[1 if size > tail else 0 :]:
            ns = line_ns(line)
            if ns and (newest is None or ns > newest):
                newest = ns
    return newest


def oldest_ns(paths: Tuple[Path, ...], lines: int = 64) -> Optional[int]:
    """The oldest timestamp among the first lines of a follower's reads (a read that crossed a
    rotation can hand lines back out of order); None when it read nothing."""
    oldest = None  # type: Optional[int]
    for path in paths:
        try:
            with path.open("rb") as handle:
                for _n, line in zip(range(lines), handle):
                    ns = line_ns(line)
                    if ns and (oldest is None or ns < oldest):
                        oldest = ns
        except OSError:
            continue
    return oldest


def _from(gap: Dict[str, Any]) -> str:
    return "SIGTERM at %s, " % gap["stopping_from"] if gap.get("stopping_from") else ""


def _event_key(raw: bytes) -> Optional[Any]:
    """An event's identity (time, id, action): a stream opened again with --since may repeat it."""
    try:
        event = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    return (event.get("timeNano") or event.get("time"), event.get("id"), event.get("Action") or event.get("status"))


def _tail(path: Path) -> str:
    """The last line of a client's stderr (docker's error), or ""."""
    try:
        body = path.read_bytes().strip()
    except OSError:
        return ""
    return body.rpartition(b"\n")[2].decode(errors="replace").strip()[:300]


def worker_main(out: str) -> int:
    """The detached worker's entry point: run the window described by out/.window-config.json."""
    folder = Path(out)
    config = read_config(folder)
    # The compose project the module ran under, so the worker's compose calls are the same.
    config.target.use()
    return Window(folder, config).run()


# --- the module's side: start, status, stop ---------------------------------------------------


def _payload_root() -> str:
    """The sys.path entry this code was imported from: Ansible's payload zip, or a folder."""
    here = os.path.abspath(__file__)
    marker = os.sep + "ansible_collections" + os.sep
    return here[: here.index(marker)] if marker in here else str(Path(here).parents[5])


def read_progress(out: Path) -> Dict[str, Any]:
    return read_json(out / PROGRESS_FILE)


def start(out: Path, config: WindowConfig, start_timeout: float, python: Optional[str] = None) -> Dict[str, Any]:
    """Start the detached worker and wait until it captures (or failed); its progress."""
    if (out / PROGRESS_FILE).exists():
        raise WindowError("a window already ran in %s" % out)
    stop_abandoned(out.parent)
    out.mkdir(parents=True, exist_ok=True)
    root = _payload_root()
    if os.path.isfile(root):
        # Ansible removes its payload when the module returns: the worker runs from a copy.
        shutil.copyfile(root, str(out / PAYLOAD_FILE))
        root = str(out / PAYLOAD_FILE)
    write_config(out, config)
    (out / HEARTBEAT_FILE).touch()
    log = (out / LOG_FILE).open("ab")
    # The worker writes to this pipe once it captures (or is finishing): no polling in between.
    ready_r, ready_w = os.pipe()
    # A new session: the window outlives this module and Ansible's connection, but not the
    # heartbeat: it stops by itself when the play stops polling.
    try:
        proc = subprocess.Popen(
            [python or sys.executable, "-c", BOOT, root, str(out)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            pass_fds=(ready_w,),
            env=dict(os.environ, **{READY_FD_ENV: str(ready_w)}),
            cwd=str(out),
        )
    finally:
        os.close(ready_w)
    deadline = time.time() + start_timeout
    eof = False
    parent = os.getppid()
    try:
        while time.time() < deadline:
            # The play is waiting right here: a recreate slower than the heartbeat timeout (a
            # loaded host) must not look like a play that stopped polling. Once whoever ran this
            # module is gone, the heartbeat goes stale as it should.
            if os.getppid() == parent:
                (out / HEARTBEAT_FILE).touch()
            progress = read_progress(out)
            if progress.get("phase") in {"capturing", "finishing", "done"}:
                progress["worker_pid"] = proc.pid
                return progress
            if proc.poll() is not None:
                break
            if eof:  # the worker closed the pipe without a word: it is exiting
                time.sleep(0.1)
                continue
            readable, _writable, _exceptional = select.select([ready_r], [], [], max(0.0, min(1.0, deadline - time.time())))
            if readable and not os.read(ready_r, 64):
                eof = True
    finally:
        os.close(ready_r)
    progress = read_progress(out)
    if proc.poll() is None and not progress.get("error"):
        raise WindowError(
            "the capture window did not start within %s s (phase %s)" % (start_timeout, progress.get("phase"))
        )
    tail = (out / LOG_FILE).read_bytes()[-500:].decode(errors="replace").strip()
    raise WindowError("the capture window failed to start: %s" % (progress.get("error") or tail))


def worker_death(out: Path, progress: Dict[str, Any]) -> str:
    """One sentence when the window's worker died before it ended the window (killed, out of
    memory), "" while it runs or once it ended. The worker is known by its pid and that process's
    start time (a recycled pid is another process), as the lock knows it."""
    pid = progress.get("pid")
    if progress.get("phase") in (None, "done") or not isinstance(pid, int) or not progress.get("pid_start"):
        return ""
    if host_state.process_start(pid) == progress.get("pid_start"):
        return ""
    # It may have ended the window and exited between the two reads.
    again = read_progress(out)
    if again.get("phase") == "done":
        return ""
    return (
        "the capture window's worker (pid %d) died %.0f s into the window (phase %s) without ending it: killed, "
        "or out of memory; what it captured until then is kept as a partial bundle"
        % (pid, time.time() - float(progress.get("started_epoch") or time.time()), progress.get("phase"))
    )


def stop_orphans(progress: Dict[str, Any]) -> int:
    """SIGKILL the followers a dead worker left running (each leads its own process group; the
    attached compose is killed, never interrupted, so it does not stop the service); how many."""
    stopped = 0
    for item in progress.get("children") or []:
        try:
            pid, start = int(item[0]), str(item[1])
        except (TypeError, ValueError, IndexError):
            continue
        if host_state.process_start(pid) != start:
            continue  # ended, or the pid is someone else's now
        try:
            os.killpg(pid, signal.SIGKILL)
            stopped += 1
        except OSError:
            pass
    return stopped


def stop_abandoned(work: Path) -> int:
    """Stop the followers of earlier windows in ``work`` (this target's work folders) whose worker
    died and whose play never ended them (it was gone too); how many."""
    stopped = 0
    for progress_file in sorted(work.glob("*/%s" % PROGRESS_FILE)):
        progress = read_json(progress_file)
        if worker_death(progress_file.parent, progress):
            stopped += stop_orphans(progress)
    return stopped


def salvage(out: Path, reason: str) -> Dict[str, Any]:
    """End a window whose worker died: stop its followers, merge what they wrote (and what Docker
    still holds) into the merged log, record the files the worker could not, never leave the
    service stopped, and write ``window.json`` saying the window is partial and why. The raw
    follower copies are removed once merged. The progress, done."""
    progress = read_progress(out)
    stopped = stop_orphans(progress)
    notes = list(progress.get("notes") or [])
    notes.append(reason)
    try:
        cfg = read_config(out)  # type: Optional[WindowConfig]
    except WindowError as exc:
        cfg = None
        notes.append("%s: no merged log was written and the service was not checked" % exc)
    if stopped:
        notes.append("%d follower(s) the worker left running were stopped" % stopped)
    logs = None  # type: Optional[Dict[str, Any]]
    if cfg is not None:
        try:
            logs = _salvage_logs(out, cfg, reason)
        except OSError as exc:
            notes.append("the merged log could not be written: %s" % exc)
            logs = {"error": str(exc)}
        if cfg.recreate:
            # Killed during the recreate, the service may be down: never leave it stopped.
            win = Window(out, cfg)
            try:
                win.ensure_not_stopped()
            except OSError as exc:
                notes.append("whether the service runs could not be checked: %s" % exc)
            notes.extend(win.notes)
        for name, note in (
            ("events.jsonl", "streamed live until the window's worker died"),
            ("stats.jsonl", "sampled until the window's worker died"),
        ):
            if (out / name).is_file() and name not in records(out):
                record_note(out, name, note)
    progress.update(
        {
            "phase": "done",
            "ended_by": "worker died",
            "error": reason,
            "partial": reason,
            "notes": notes,
            "logs": logs,
            "mode": "capture" if cfg is not None and cfg.recreate else "observe",
            "window_start_epoch": progress.get("started_epoch"),
            "window_end_epoch": time.time(),
        }
    )
    progress.pop("children", None)
    write_json(out / "window.json", progress, mode=0o600)
    record_note(out, "window.json", "written after the window's worker died (partial)")
    write_json(out / PROGRESS_FILE, progress, mode=0o600)
    if cfg is not None and cfg.lock_state and cfg.lock_owner:
        # The play goes on (seal, fetch) without a process on the host: the lock holds by its time.
        host_state.lock_detach(Path(cfg.lock_state), cfg.lock_owner, time.time() + LOCK_AFTER_WINDOW)
    progress["done"] = True
    return progress


def _salvage_logs(out: Path, cfg: WindowConfig, reason: str) -> Dict[str, Any]:
    """The merged log from the followers' raw copies and an end-of-window read."""
    folder = out / FOLLOW_DIR
    folder.mkdir(parents=True, exist_ok=True)
    kind = "attach" if cfg.attach else "follow"
    parts = []  # type: List[Tuple[str, Path, Path]]
    for stdout in sorted(folder.glob("run-*.stdout")):
        parts.append((kind, stdout, stdout.with_suffix(".stderr")))
    argv = logs_argv(cfg.target.container, since=None if cfg.recreate else cfg.logs_since)
    started = now_iso()
    end_out, end_err = folder / "end.stdout", folder / "end.stderr"
    code, timed_out, end_error = end_read(argv, end_out, end_err, timeout=120)
    parts.append(("end_read", end_out, end_err))
    for _name, out_path, err_path in parts:
        for path in (out_path, err_path):
            if not path.exists():
                path.touch()
    counts = merge_sources(out / "logs" / "ingester.log", parts, None)
    logs = {
        "sources": {
            "follow": counts["read"].get("follow", 0),
            "attach": counts["read"].get("attach", 0),
            "end_read": counts["read"].get("end_read", 0),
        },
        "merged_lines": counts["merged"],
        "lines": {"stdout": counts["kept"]["stdout"], "stderr": counts["kept"]["stderr"]},
        "docker_logs_error": end_error or None,
        "partial": reason,
    }
    record(
        out,
        {
            "file": "logs/ingester.log",
            "argv": argv,
            "exit_code": code,
            "started": started,
            "ended": now_iso(),
            "timed_out": timed_out,
            "lines": logs["lines"],
            "logs": logs,
            "note": "partial: what the live followers had read when the window's worker died, and an end-of-window "
            "read, each line once, merged by timestamp",
        },
    )
    shutil.rmtree(str(folder), ignore_errors=True)
    return logs


def status(out: Path, poll: float) -> Dict[str, Any]:
    """Wait up to ``poll`` seconds (the heartbeat kept fresh), then the progress.

    Only the end of the window, or its worker's death (``worker_died``), cuts a poll short: the
    play counts on every poll lasting the full period to cover the window with a bounded number
    of polls."""
    (out / HEARTBEAT_FILE).touch()
    deadline = time.time() + poll
    died = ""
    while time.time() < deadline:
        progress = read_progress(out)
        if progress.get("phase") == "done":
            break
        died = worker_death(out, progress)
        if died:
            break
        time.sleep(0.1)
        (out / HEARTBEAT_FILE).touch()
    progress = read_progress(out)
    progress["done"] = progress.get("phase") == "done"
    if died:
        progress["worker_died"] = died
    return progress


def stop(out: Path, wait: float) -> Dict[str, Any]:
    """Ask the worker to stop and wait for it to finish; the progress. A worker found dead is not
    waited for: its window is ended here (:func:`salvage`)."""
    if not out.exists():
        return {"done": True, "phase": None}
    progress = read_progress(out)
    if progress.get("phase") == "done" and progress.get("partial"):
        progress["done"] = True
        return progress  # salvaged already
    (out / STOP_FILE).touch()
    deadline = time.time() + wait
    while progress.get("phase") not in {"done", None} and time.time() < deadline:
        died = worker_death(out, progress)
        if died:
            return salvage(out, died)
        time.sleep(0.5)
        progress = read_progress(out)
    progress["done"] = progress.get("phase") in {"done", None}
    return progress
