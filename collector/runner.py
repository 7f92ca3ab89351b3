"""The scheduled verification: run verify.yml through ansible-runner and print one line.

Each run gets its own private data dir ``<artifacts>/<UTC timestamp>/`` (ansible-runner's
artifacts: events, stdout, status); only the newest ``--keep`` runs are kept. The verdict is read
from the run's events (the ``set_stats`` data verify.yml hands over), never from its stdout.

    python -m ingester_capture.runner -i inventory/production.yml [--artifacts DIR] [--keep N]
        [--limit HOSTS] [-e key=value ...] [--project DIR] [--timeout SECONDS]

ansible-core and ansible-runner are the package's extra ``scheduled``
(``pip install 'ingester-capture[scheduled]'``): ``summarize`` needs neither.

verify.yml is found (:func:`locate`) in ``--project DIR`` (a checkout or an installed copy of the
collection), else ``$INGESTER_CAPTURE_PROJECT``, else the working directory when it is a checkout
(the scheduled job runs from one), else the installed collection ``rsky.ingester_capture`` on
Ansible's collection path; never beside this file.

Exit codes (the one table, :class:`collector.exitcodes.Exit`): 0 every host passed, 20 a
criterion failed on some host, 21 no verdict (the play failed before judging: unreachable host,
bad input on the host), 124 stopped at ``--timeout`` (the schedule's own ``timeout`` returns the
same), 143 stopped by SIGTERM and 130 interrupted (the play and its workers stopped too), 2 usage,
3 the inventory cannot be read, 4 the collection (or ansible-runner, the extra ``scheduled``) is
not installed.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib.util
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .exitcodes import Exit
from .version import version_line

PROG = "ingester-verify-run"
COLLECTION = ("rsky", "ingester_capture")
PLAYBOOK = Path("playbooks") / "verify.yml"
PROJECT_ENV = "INGESTER_CAPTURE_PROJECT"
DEFAULT_ARTIFACTS = Path(os.environ.get("INGESTER_CAPTURE_RUNS", "/var/lib/ingester-capture/verify-runs"))
STATS_KEY = "verify_verdicts"
INSTALL_HINT = (
    "install the collection (ansible-galaxy collection install rsky-ingester_capture-*.tar.gz, "
    "or from a checkout: ansible-galaxy collection build && ansible-galaxy collection install ...) "
    f"or pass --project CHECKOUT (or set {PROJECT_ENV})"
)
EXTRA = "scheduled"
EXTRA_HINT = f"pip install 'ingester-capture[{EXTRA}]' (the scheduled run's extra: ansible-core and ansible-runner)"


class RunnerError(RuntimeError):
    """ansible-runner could not be started or its artifacts could not be written."""


class NotInstalledError(RunnerError):
    """verify.yml or ansible-runner is not installed; the message says what to install."""


class Terminated(BaseException):
    """This process was sent SIGTERM (the schedule's own `timeout`, systemd) while the play ran;
    the play was stopped (`no_leftovers`)."""


# prctl(2): orphans of this process's descendants become its children (Linux 3.4+)
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
STOP_GRACE = 3.0  # seconds between SIGTERM and SIGKILL for what a play leaves running


def _subreaper(on: bool | None) -> bool | None:
    """Set whether this process reaps its descendants' orphans (None: leave it); returns what it
    was, or None where that cannot be had (no prctl: not Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        was = ctypes.c_int(0)
        if int(libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(was), 0, 0, 0)) != 0:
            return None
        if on is not None and int(libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)) != 0:
            return None
        return bool(was.value)
    except (OSError, AttributeError):  # no C library to load, or no prctl
        return None


def _stat(pid: int | str) -> list[str] | None:
    """/proc/PID/stat's fields after the command (which may hold anything): state, ppid, ...;
    None once the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()


def descendants(root: int) -> list[int]:
    """Every process under `root` (children, theirs, ...), from /proc; [] where there is none."""
    children: dict[int, list[int]] = {}
    try:
        entries = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return []
    for name in entries:
        fields = _stat(name)
        if fields is not None and len(fields) > 1 and fields[1].isdigit():
            children.setdefault(int(fields[1]), []).append(int(name))
    out: list[int] = []
    todo = [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            out.append(pid)
            todo.append(pid)
    return out


def _running(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[:1] != ["Z"]


def _reap(pids: Iterable[int]) -> None:
    """Reap those of `pids` that are this process's children and have ended (only those: a
    program that calls this keeps the exit status of its own other children)."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def stop_leftovers(spare: Iterable[int] = (), grace: float = STOP_GRACE) -> None:
    """Stop every process still under this one but those in `spare` (the ones it had before the
    play): SIGTERM, then SIGKILL after `grace` seconds; reap them."""
    me, keep = os.getpid(), set(spare)

    def left() -> list[int]:
        return [p for p in descendants(me) if p not in keep]

    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = left()
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        end = time.monotonic() + grace
        while time.monotonic() < end:
            pids = left()
            _reap(pids)  # (an orphan of theirs becomes this one's child once its parent is gone)
            if not any(_running(p) for p in pids):
                break
            time.sleep(0.05)
    _reap(left())


class Stop:
    """The signal that asked this run to stop (SIGTERM from the schedule's own `timeout` or
    systemd, SIGINT from Ctrl-C), as ansible-runner's `cancel_callback` asks for it."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def requested(self) -> bool:
        return self.signal is not None

    def note(self, signum: int, frame: object) -> None:
        if self.signal is None:
            self.signal = signum


@contextlib.contextmanager
def no_leftovers() -> Iterator[Stop]:
    """Whatever way the play ends, nothing it started is left running.

    ansible-runner stops a play (at its timeout, or cancelled through the `Stop` given to it)
    by killing ansible-playbook's process group, but ansible-core runs each task worker in a
    session of its own: the workers live on, orphaned, some of them blocked for good. So while
    the play runs this process is their reaper (orphans of its descendants become its children)
    and SIGTERM and SIGINT only ask the run to stop; at the end every process under this one
    that was not there before the play is stopped and reaped."""
    before = descendants(os.getpid())
    was = _subreaper(True)
    stop = Stop()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():  # (only it may set handlers)
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        for sig in previous:
            signal.signal(sig, stop.note)
    try:
        yield stop
    finally:
        try:
            stop_leftovers(spare=before)
        finally:
            if was is False:
                _subreaper(False)
            for sig, handler in previous.items():
                signal.signal(sig, handler)


@dataclass(frozen=True)
class Project:
    """Where verify.yml lives and how ansible must be pointed at it."""

    root: Path  # the folder holding playbooks/ and roles/
    playbook: Path
    config: Path | None  # a checkout's ansible.cfg (its collections_path finds the collection)
    collections_root: Path | None  # the folder holding ansible_collections/, for an installed copy


def _checkout(root: Path) -> Project | None:
    playbook = root / PLAYBOOK
    if not playbook.is_file():
        return None
    cfg = root / "ansible.cfg"
    parent = root.parent.parent.parent  # <path>/ansible_collections/rsky/ingester_capture
    installed = root.parent.parent.name == "ansible_collections"
    return Project(root, playbook, cfg if cfg.is_file() and not installed else None, parent if installed else None)


def collection_paths() -> list[Path]:
    """Ansible's collection search path (COLLECTIONS_PATHS, then sys.path, as ansible looks)."""
    try:
        import ansible.constants as ansible_constants  # deferred: only the lookup needs it
    except ImportError as exc:
        raise NotInstalledError(f"ansible-core is not installed ({exc}): {EXTRA_HINT}") from exc
    paths = [Path(p).expanduser() for p in ansible_constants.COLLECTIONS_PATHS or []]
    paths += [Path(p) for p in sys.path if p]
    return paths


def locate(project: Path | None = None, cwd: Path | None = None) -> Project:
    """verify.yml: --project, $INGESTER_CAPTURE_PROJECT, a checkout in cwd, the installed collection."""
    explicit = project or (Path(os.environ[PROJECT_ENV]) if os.environ.get(PROJECT_ENV) else None)
    if explicit is not None:
        found = _checkout(explicit.resolve())
        if found is None:
            raise NotInstalledError(f"{explicit}: no {PLAYBOOK} there; {INSTALL_HINT}")
        return found
    here = (cwd or Path.cwd()).resolve()
    if (here / "galaxy.yml").is_file() or (here / "MANIFEST.json").is_file():  # a checkout, an installed copy
        found = _checkout(here)
        if found is not None:
            return found
    for base in collection_paths():
        root = base / "ansible_collections" / COLLECTION[0] / COLLECTION[1]
        if (root / PLAYBOOK).is_file():
            return Project(root.resolve(), (root / PLAYBOOK).resolve(), None, base.resolve())
    raise NotInstalledError(f"the collection {'.'.join(COLLECTION)} ({PLAYBOOK}) is not installed: {INSTALL_HINT}")


@dataclass(frozen=True)
class HostVerdict:
    """One host's verdict as verify.yml handed it over through set_stats."""

    host: str
    passed: bool
    failed: tuple[str, ...]
    summary: str
    report: str


@dataclass(frozen=True)
class RunOutcome:
    """What one run of verify.yml produced: ansible's status and the hosts' verdicts."""

    status: str
    rc: int
    verdicts: tuple[HostVerdict, ...]
    failed_hosts: tuple[str, ...]
    artifacts: Path
    timeout: int | None = None

    @property
    def exit_code(self) -> Exit:
        """OK only when every host judged passed and no host failed before judging; TIMED_OUT
        when ansible-runner stopped the play at its timeout, whatever was judged before."""
        if self.status == "timeout":
            return Exit.TIMED_OUT
        judged = {v.host for v in self.verdicts}
        if not self.verdicts or any(h not in judged for h in self.failed_hosts):
            return Exit.NO_VERDICT
        return Exit.OK if all(v.passed for v in self.verdicts) else Exit.VERIFY_FAILED


def verdicts_from_events(events: Iterable[Mapping[str, Any]]) -> tuple[HostVerdict, ...]:
    """The verdicts in the ``playbook_on_stats`` event's set_stats data (``artifact_data``)."""
    found: dict[str, HostVerdict] = {}
    for event in events:
        if event.get("event") != "playbook_on_stats":
            continue
        data = (event.get("event_data") or {}).get("artifact_data") or {}
        for host, raw in (data.get(STATS_KEY) or {}).items():
            if not isinstance(raw, Mapping):
                continue
            passed = raw.get("passed")
            found[str(host)] = HostVerdict(
                host=str(host),
                passed=passed is True or str(passed).lower() == "true",
                failed=tuple(str(x) for x in raw.get("failed") or ()),
                summary=str(raw.get("summary", "")),
                report=str(raw.get("report", "")),
            )
    return tuple(found[h] for h in sorted(found))


def failed_hosts_from_events(events: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """Hosts the stats event lists as failed or unreachable."""
    hosts: set[str] = set()
    for event in events:
        if event.get("event") == "playbook_on_stats":
            data = event.get("event_data") or {}
            hosts |= set(data.get("failures") or {}) | set(data.get("dark") or {})
    return tuple(sorted(hosts))


def one_line(outcome: RunOutcome) -> str:
    """The single line the scheduled run prints."""
    code = outcome.exit_code
    if code == Exit.TIMED_OUT:
        # The words the scheduled job's own timeout writes to the log (roles/schedule).
        return f"verify-run: timed out after {outcome.timeout} s — artifacts {outcome.artifacts}"
    word = {Exit.OK: "PASS", Exit.VERIFY_FAILED: "FAIL", Exit.NO_VERDICT: "ERROR"}[code]
    parts = []
    for v in outcome.verdicts:
        parts.append(f"{v.host} PASS" if v.passed else f"{v.host} FAIL ({', '.join(v.failed)})")
    judged = {v.host for v in outcome.verdicts}
    parts += [f"{h} no verdict" for h in outcome.failed_hosts if h not in judged]
    if not parts:
        parts.append(f"no verdict (ansible-runner {outcome.status}, rc {outcome.rc})")
    return f"verify {word}: {'; '.join(parts)} — artifacts {outcome.artifacts}"


def rotate(root: Path, keep: int) -> list[Path]:
    """Remove all but the newest ``keep`` run folders under ``root``; return the removed ones."""
    runs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    removed = runs[: max(len(runs) - keep, 0)]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def _new_run_dir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    path = root / stamp
    path.mkdir(mode=0o700)
    return path


def _extra_vars(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        if pair.startswith("@"):
            raise RunnerError(f"-e {pair}: files are not supported, pass key=value")
        if pair.lstrip().startswith("{"):
            out.update(json.loads(pair))
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RunnerError(f"-e wants key=value or a JSON object, got {pair!r}")
        out[key] = value
    return out


def run_verify(
    *,
    inventory: Sequence[str],
    artifacts_root: Path,
    keep: int,
    limit: str | None = None,
    extravars: Mapping[str, Any] | None = None,
    project: Project | None = None,
    timeout: int | None = None,
) -> RunOutcome:
    """Run verify.yml once with ansible-runner and read the verdicts from its events; the play is
    stopped after ``timeout`` seconds when given."""
    try:
        import ansible_runner  # deferred: importing it is slow and only this path needs it
    except ImportError as exc:
        raise NotInstalledError(f"ansible-runner is not installed ({exc}): {EXTRA_HINT}") from exc

    proj = project or locate()
    run_dir = _new_run_dir(artifacts_root)
    bin_dir = str(Path(sys.executable).parent)
    env = {
        "ANSIBLE_ROLES_PATH": str(proj.root / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        # The venv's ansible-playbook, also when cron starts us with a bare PATH.
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
    }
    if proj.config is not None:
        env["ANSIBLE_CONFIG"] = str(proj.config)
    if proj.collections_root is not None:
        known = os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")
        env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(p for p in (str(proj.collections_root), known) if p)
    playbook = proj.playbook
    limits = {"timeout": timeout} if timeout else {}
    try:
        with no_leftovers() as stop:
            result = ansible_runner.run(
                private_data_dir=str(run_dir),
                playbook=str(playbook),
                inventory=[str(Path(i).resolve()) for i in inventory],
                limit=limit,
                extravars=dict(extravars or {}),
                envvars=env,
                project_dir=str(proj.root),
                quiet=True,
                # The env/ folder would keep the extra variables and environment on disk beside the
                # artifacts; nothing of a run is written there but its events and output.
                suppress_env_files=True,
                cancel_callback=stop.requested,
                **limits,
            )
    except Exception as exc:  # ansible-runner raises plain exceptions for setup problems
        raise RunnerError(f"ansible-runner could not run {playbook}: {exc}") from exc
    finally:
        rotate(artifacts_root, keep)
    if stop.signal == signal.SIGTERM:
        raise Terminated
    if stop.signal == signal.SIGINT:
        raise KeyboardInterrupt
    events = list(result.events)
    return RunOutcome(
        status=str(result.status),
        rc=int(result.rc),
        verdicts=verdicts_from_events(events),
        failed_hosts=failed_hosts_from_events(events),
        artifacts=run_dir,
        timeout=timeout,
    )


def _parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run verify.yml with ansible-runner; print one line; exit 0 when all pass.",
    )
    parser.add_argument("--version", action="version", version=version_line(prog))
    parser.add_argument("-i", "--inventory", action="append", required=True)
    parser.add_argument("-l", "--limit")
    parser.add_argument("-e", "--extra-vars", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS)
    parser.add_argument("--keep", type=int, default=20, help="run folders to keep (default 20)")
    parser.add_argument(
        "--project",
        type=Path,
        help=f"a checkout or installed copy of the collection holding {PLAYBOOK} "
        f"(default: ${PROJECT_ENV}, a checkout in the working directory, the installed collection)",
    )
    parser.add_argument(
        "--timeout",
        type=int,
        metavar="SECONDS",
        help="stop the play after this long and exit 124 (default: no limit; the schedule's timer sets its own)",
    )
    parser.add_argument("--playbook", type=Path, help=argparse.SUPPRESS)
    return parser


def _runner_installed() -> bool:
    """ansible_runner can be imported (found, not imported: importing it is slow)."""
    if sys.modules.get("ansible_runner") is not None:
        return True
    try:
        return importlib.util.find_spec("ansible_runner") is not None
    except (ImportError, ValueError):
        return False


def verify_run_main(argv: Sequence[str], prog: str = PROG) -> int:
    """``verify-run``: one scheduled verification; the exit code is the verdict (collector.exitcodes).
    ``prog`` is what the user typed, for usage lines and ``--version``."""
    parser = _parser(prog)
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:
        return Exit.OK if exc.code == 0 else Exit.USAGE
    if args.keep < 1:
        print("verify-run: --keep must be at least 1", file=sys.stderr)
        return Exit.USAGE
    if args.timeout is not None and args.timeout < 1:
        print("verify-run: --timeout must be at least 1 second", file=sys.stderr)
        return Exit.USAGE
    if not _runner_installed():
        # Before anything else is looked up: summarize installs without the extra, this does not.
        print(f"verify-run: ansible-runner is not installed: {EXTRA_HINT}", file=sys.stderr)
        return Exit.NOT_INSTALLED
    try:
        extravars = _extra_vars(args.extra_vars)
    except (RunnerError, ValueError) as exc:
        print(f"verify-run: {exc}", file=sys.stderr)
        return Exit.USAGE
    missing = [i for i in args.inventory if "," not in i and not Path(i).exists()]
    if missing:
        print(f"verify-run: inventory not found: {', '.join(missing)}", file=sys.stderr)
        return Exit.UNREADABLE
    try:
        project = locate(args.project)
        if args.playbook is not None:
            project = Project(project.root, args.playbook.resolve(), project.config, project.collections_root)
        outcome = run_verify(
            inventory=args.inventory,
            artifacts_root=args.artifacts,
            keep=args.keep,
            limit=args.limit,
            extravars=extravars,
            project=project,
            timeout=args.timeout,
        )
    except NotInstalledError as exc:
        print(f"verify-run: {exc}", file=sys.stderr)
        return Exit.NOT_INSTALLED
    except Terminated:
        print("verify-run: stopped (SIGTERM); the play and its workers were stopped", file=sys.stderr)
        return Exit.TERMINATED
    except KeyboardInterrupt:
        print("verify-run: interrupted; the play and its workers were stopped", file=sys.stderr)
        return Exit.INTERRUPTED
    except (RunnerError, OSError, ValueError) as exc:
        print(f"verify-run: {exc}", file=sys.stderr)
        return Exit.NO_VERDICT
    print(one_line(outcome))
    return outcome.exit_code


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Console-script entry point (``ingester-verify-run``): ``verify_run_main`` on ``sys.argv[1:]``
    by default."""
    return verify_run_main(sys.argv[1:] if argv is None else argv, prog)


if __name__ == "__main__":
    sys.exit(main(prog=f"python -m {__package__}.runner"))
