"""The scheduled verification: run verify.yml through ansible-runner and print one line.

Each run gets its own private data dir ``<artifacts>/<UTC timestamp>/`` (ansible-runner's
artifacts: events, stdout, status); only the newest ``--keep`` runs are kept. The verdict is read
from the run's events (the ``set_stats`` data verify.yml hands over), never from its stdout.

    python -m collector.runner -i inventory/production.yml [--artifacts DIR] [--keep N]
        [--limit HOSTS] [-e key=value ...]

Exit codes (:class:`RunExit`): 0 every host passed, 1 a criterion failed on some host, 2 no
verdict (the play failed before judging: unreachable host, bad input), 3 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PLAYBOOK = REPO / "playbooks" / "verify.yml"
DEFAULT_ARTIFACTS = Path(os.environ.get("INGESTER_CAPTURE_RUNS", "/var/lib/ingester-capture/verify-runs"))
STATS_KEY = "verify_verdicts"


class RunExit(IntEnum):
    """What the scheduled run exits with."""

    PASSED = 0
    FAILED = 1
    NO_VERDICT = 2
    USAGE = 3


class RunnerError(RuntimeError):
    """ansible-runner could not be started or its artifacts could not be written."""


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

    @property
    def exit_code(self) -> RunExit:
        """PASSED only when every host judged passed and no host failed before judging."""
        judged = {v.host for v in self.verdicts}
        if not self.verdicts or any(h not in judged for h in self.failed_hosts):
            return RunExit.NO_VERDICT
        return RunExit.PASSED if all(v.passed for v in self.verdicts) else RunExit.FAILED


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
    word = {RunExit.PASSED: "PASS", RunExit.FAILED: "FAIL", RunExit.NO_VERDICT: "ERROR"}[code]
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
    playbook: Path = PLAYBOOK,
) -> RunOutcome:
    """Run verify.yml once with ansible-runner and read the verdicts from its events."""
    import ansible_runner  # deferred: importing it is slow and only this path needs it

    run_dir = _new_run_dir(artifacts_root)
    bin_dir = str(Path(sys.executable).parent)
    env = {
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        # The venv's ansible-playbook, also when cron starts us with a bare PATH.
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
    }
    try:
        result = ansible_runner.run(
            private_data_dir=str(run_dir),
            playbook=str(playbook),
            inventory=[str(Path(i).resolve()) for i in inventory],
            limit=limit,
            extravars=dict(extravars or {}),
            envvars=env,
            project_dir=str(REPO),
            quiet=True,
            # The env/ folder would keep the extra variables and environment on disk beside the
            # artifacts; nothing of a run is written there but its events and output.
            suppress_env_files=True,
        )
    except Exception as exc:  # ansible-runner raises plain exceptions for setup problems
        raise RunnerError(f"ansible-runner could not run {playbook}: {exc}") from exc
    finally:
        rotate(artifacts_root, keep)
    events = list(result.events)
    return RunOutcome(
        status=str(result.status),
        rc=int(result.rc),
        verdicts=verdicts_from_events(events),
        failed_hosts=failed_hosts_from_events(events),
        artifacts=run_dir,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="verify-run",
        description="Run verify.yml with ansible-runner; print one line; exit 0 when all pass.",
    )
    parser.add_argument("-i", "--inventory", action="append", required=True)
    parser.add_argument("-l", "--limit")
    parser.add_argument("-e", "--extra-vars", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS)
    parser.add_argument("--keep", type=int, default=20, help="run folders to keep (default 20)")
    parser.add_argument("--playbook", type=Path, default=PLAYBOOK, help=argparse.SUPPRESS)
    return parser


def verify_run_main(argv: Sequence[str]) -> int:
    """``verify-run``: one scheduled verification; the exit code is the verdict (RunExit)."""
    parser = _parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:
        return RunExit.PASSED if exc.code == 0 else RunExit.USAGE
    if args.keep < 1:
        print("verify-run: --keep must be at least 1", file=sys.stderr)
        return RunExit.USAGE
    missing = [i for i in args.inventory if "," not in i and not Path(i).exists()]
    if missing:
        print(f"verify-run: inventory not found: {', '.join(missing)}", file=sys.stderr)
        return RunExit.USAGE
    try:
        outcome = run_verify(
            inventory=args.inventory,
            artifacts_root=args.artifacts,
            keep=args.keep,
            limit=args.limit,
            extravars=_extra_vars(args.extra_vars),
            playbook=args.playbook,
        )
    except (RunnerError, OSError, ValueError) as exc:
        print(f"verify-run: {exc}", file=sys.stderr)
        return RunExit.NO_VERDICT
    print(one_line(outcome))
    return outcome.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point: ``verify_run_main`` on ``sys.argv[1:]`` by default."""
    return verify_run_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
