"""The fleet summary: one table for every host a capture.yml (or verify.yml) run targeted.

Pure: the CLI (`ingester-collector fleet DIR`, collector/cli.py) reads the files and writes the
results; this module parses what it read (each host's report.json or verify.json, and the play's
per-host outcomes), decides (each host's exit code, hosts with the same cause grouped, the
fleet's exit code: the worst host's) and renders fleet.json, fleet.md and the printed table with
the Jinja2 templates in collector/report/templates. The schema is in docs/fleet.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from .diagnose import CRASH_SCENARIOS
from .exitcodes import Exit, worst
from .report.render import dash, render_template

SCHEMA_VERSION = 1
CAPTURE, VERIFY = "capture", "verify"
# Files written beside the per-host folders, per kind: capture.yml and verify.yml share capture_dest.
OUTPUTS = {CAPTURE: ("fleet.json", "fleet.md"), VERIFY: ("fleet-verify.json", "fleet-verify.md")}
STATUSES = ("ok", "failed", "unreachable", "missing", "unreadable")
OUTCOME_STATUSES = ("ok", "failed", "unreachable")


class FleetError(ValueError):
    """The outcomes file is not what docs/fleet.md describes; the message says why."""


@dataclass(frozen=True)
class Found:
    """What the CLI found for one host: its newest report (parsed JSON) or why there is none."""

    host: str
    report: str | None = None  # path of report.md / verify.md
    bundle: str | None = None  # the bundle tarball or folder (capture only)
    data: Mapping[str, Any] | None = None  # report.json / verify.json
    error: str | None = None  # the report exists but cannot be read


@dataclass(frozen=True)
class Outcome:
    """What the play said about one host (the outcomes file, docs/fleet.md)."""

    status: str
    failed_step: str | None = None
    msg: str | None = None
    bundle: str | None = None
    report: str | None = None


@dataclass(frozen=True)
class Host:
    """One row of the fleet table."""

    host: str
    status: str
    exit_code: Exit
    group: str
    cause: str
    verdict: str | None = None
    summary: str | None = None
    report: str | None = None
    failed_step: str | None = None
    msg: str | None = None
    # capture
    task: str | None = None
    exit_path: str | None = None
    top_cause: str | None = None
    confidence: str | None = None
    bundle: str | None = None
    # verify
    failed_criteria: tuple[str, ...] = ()
    criteria: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Group:
    """Hosts with the same cause."""

    key: str
    label: str
    hosts: tuple[str, ...]
    exit_code: Exit


@dataclass(frozen=True)
class Fleet:
    """The decided summary of one run."""

    kind: str
    hosts: tuple[Host, ...]
    groups: tuple[Group, ...]
    exit_code: Exit
    summary: str
    criteria: tuple[Mapping[str, Any], ...] = ()  # verify: per criterion, the hosts it fails on


# ---------------------------------------------------------------------------- parsing ---


def parse_outcomes(data: Any) -> dict[str, Outcome]:
    """The play's outcomes file: ``{host: {status, failed_step, msg, bundle, report}}``."""
    if not isinstance(data, Mapping):
        raise FleetError(f"outcomes: expected an object of hosts, got {type(data).__name__}")
    out: dict[str, Outcome] = {}
    for host, raw in data.items():
        if not isinstance(raw, Mapping):
            raise FleetError(f"outcomes: {host}: expected an object, got {type(raw).__name__}")
        status = raw.get("status")
        if status not in OUTCOME_STATUSES:
            raise FleetError(f"outcomes: {host}: status {status!r} is not one of {', '.join(OUTCOME_STATUSES)}")

        def text(key: str, raw: Mapping[str, Any] = raw) -> str | None:
            value = raw.get(key)
            return str(value) if value not in (None, "") else None

        out[str(host)] = Outcome(str(status), text("failed_step"), text("msg"), text("bundle"), text("report"))
    return out


# --------------------------------------------------------------------------- deciding ---


def _basename(location: str) -> str:
    """``rsky-ingester/src/firehose.rs:123:45`` -> ``firehose.rs``."""
    path = re.sub(r"(:\d+)+$", "", location)
    return PurePath(path).name or location


def capture_cause(report: Mapping[str, Any]) -> tuple[str, str]:
    """The group key and the words for a report's cause: hosts with the same key are grouped."""
    v = report.get("verdict") or {}
    scenario = str(v.get("scenario") or "inconclusive")
    task = v.get("task")
    path = v.get("exit_path")
    if scenario == "config-error":
        names = sorted({str(c["variable"]) for c in report.get("configuration_errors") or [] if c.get("variable")})
        return f"config-error:{','.join(names)}", f"configuration error ({', '.join(names)})" if names else (
            "configuration error"
        )
    if scenario == "panic":
        loc = (report.get("panic") or {}).get("location")
        if loc:
            return f"panic:{loc}", f"panic in {_basename(str(loc))}"
        return f"panic:{task or ''}", f"panic in the {task} task" if task else "panic"
    if scenario == "task-error":
        where = f"the {task} task" if task else "a task"
        return f"task-error:{task}:{path}", f"error returned by {where}" + (f" (EXIT PATH {path})" if path else "")
    if scenario == "task-returned-ok":
        return f"task-returned-ok:{task}", f"{task or 'a'} task that returned Ok"
    words = {
        "oom-kill": "OOM kill",
        "external-kill": "kill from outside the process",
        "cannot-start": "container that cannot start",
        "impossible-path": "impossible path (EXIT PATH Z)",
        "stable": "stable",
        "inconclusive": "inconclusive",
    }
    return scenario, words.get(scenario, scenario)


def _article(words: str) -> str:
    return ("an " if words[:1].lower() in "aeiou" else "a ") + words


def _label(key: str, cause: str, count: int) -> str:
    """The group's words: "the same configuration error (REDIS_URL)", "a panic in firehose.rs"."""
    if key.startswith(("!", "fail:")) or key in ("stable", "inconclusive", "pass"):
        return cause  # failures, verify outcomes and non-causes are not "the same"
    return f"the same {cause}" if count > 1 else _article(cause)


def _top_cause(report: Mapping[str, Any]) -> str | None:
    causes = [c for c in report.get("root_causes") or [] if c.get("likelihood") not in ("low", "ruled-out")]
    if not causes:
        return None
    c = min(causes, key=lambda c: c.get("rank", 99))
    return f"{c.get('title')} ({c.get('likelihood')})"


def _not_judged(found: Found | None, outcome: Outcome | None, what: str) -> Host | None:
    """A host without a verdict: unreachable, failed in the play, or nothing readable found."""
    host = (found.host if found else None) or ""
    if outcome is not None and outcome.status == "unreachable":
        return Host(host, "unreachable", Exit.NO_VERDICT, "!unreachable", "unreachable", msg=outcome.msg)
    # A play that failed after its report was written (verify.yml's closing assert, a step after
    # the diagnosis) still has a verdict: the outcome's own report counts, never an older one.
    judged_first = outcome is not None and outcome.report is not None and found is not None and found.data is not None
    if outcome is not None and outcome.status == "failed" and not judged_first:
        step = outcome.failed_step or "an unknown step"
        return Host(
            host,
            "failed",
            Exit.NO_VERDICT,
            f"!failed:{step}",
            f"{what} failed at {step}",
            failed_step=outcome.failed_step,
            msg=outcome.msg,
            bundle=outcome.bundle or (found.bundle if found else None),
            report=outcome.report,
        )
    if found is None or (found.data is None and found.error is None):
        msg = outcome.msg if outcome else None
        return Host(host, "missing", Exit.NO_VERDICT, "!missing", f"no {what} report found", msg=msg)
    if found.data is None:
        return Host(
            host,
            "unreadable",
            Exit.NO_VERDICT,
            "!unreadable",
            f"{what} report unreadable",
            report=found.report,
            msg=found.error,
        )
    return None


def capture_host(host: str, found: Found | None, outcome: Outcome | None) -> Host:
    """One host's row of a capture run."""
    found = found or Found(host)
    failed = _not_judged(found, outcome, "capture")
    if failed is not None:
        return failed
    report = found.data or {}
    v = report.get("verdict") or {}
    scenario = str(v.get("scenario") or "inconclusive")
    key, cause = capture_cause(report)
    code = Exit.OK if scenario == "stable" else Exit.CRASH_LOOP if scenario in CRASH_SCENARIOS else Exit.INCONCLUSIVE
    return Host(
        host,
        "ok",
        code,
        key,
        cause,
        verdict=scenario,
        summary=str(v.get("summary") or ""),
        report=(outcome.report if outcome else None) or found.report,
        task=v.get("task"),
        exit_path=v.get("exit_path"),
        top_cause=_top_cause(report),
        confidence=v.get("confidence"),
        bundle=(outcome.bundle if outcome else None) or found.bundle,
        failed_step=outcome.failed_step if outcome else None,
        msg=outcome.msg if outcome else None,
    )


def verify_host(host: str, found: Found | None, outcome: Outcome | None) -> Host:
    """One host's row of a verify run."""
    found = found or Found(host)
    failed = _not_judged(found, outcome, "verify")
    if failed is not None:
        return failed
    data = found.data or {}
    failing = tuple(str(x) for x in data.get("failed") or ())
    passed = data.get("passed") is True and not failing
    criteria = {str(c.get("name")): str(c.get("status")) for c in data.get("criteria") or [] if isinstance(c, Mapping)}
    return Host(
        host,
        "ok",
        Exit.OK if passed else Exit.VERIFY_FAILED,
        "pass" if passed else f"fail:{','.join(failing)}",
        "pass" if passed else f"fail ({', '.join(failing)})",
        verdict="pass" if passed else "fail",
        summary=str(data.get("summary") or ""),
        report=(outcome.report if outcome else None) or found.report,
        failed_criteria=failing,
        criteria=criteria,
        failed_step=outcome.failed_step if outcome else None,
        msg=outcome.msg if outcome else None,
    )


def group(hosts: Sequence[Host]) -> tuple[Group, ...]:
    """Hosts with the same cause together; the biggest group first, then the worst."""
    keys: dict[str, list[Host]] = {}
    for h in hosts:
        keys.setdefault(h.group, []).append(h)
    groups = [
        Group(k, _label(k, members[0].cause, len(members)), tuple(m.host for m in members), members[0].exit_code)
        for k, members in keys.items()
    ]
    return tuple(sorted(groups, key=lambda g: (-len(g.hosts), -int(g.exit_code), g.key)))


def one_line(groups: Sequence[Group], total: int) -> str:
    """ "2 of 3 hosts: the same configuration error (REDIS_URL) · 1 host: a panic in firehose.rs"."""
    if not groups:
        return "no host"
    parts = []
    for i, g in enumerate(groups):
        n = len(g.hosts)
        count = f"{n} of {total} hosts" if i == 0 and total != 1 else f"{n} host" + ("s" if n != 1 else "")
        parts.append(f"{count}: {g.label}")
    return " · ".join(parts)


def summarise(
    kind: str,
    found: Mapping[str, Found],
    outcomes: Mapping[str, Outcome] | None = None,
) -> Fleet:
    """The fleet: every targeted host (the outcomes' hosts when given, else every host found)."""
    targeted = sorted(outcomes) if outcomes else sorted(found)
    make = capture_host if kind == CAPTURE else verify_host
    hosts = tuple(make(h, found.get(h), (outcomes or {}).get(h)) for h in targeted)
    groups = group(hosts)
    criteria: tuple[Mapping[str, Any], ...] = ()
    if kind == VERIFY:
        names: list[str] = []
        for h in hosts:
            names += [n for n in h.criteria if n not in names]
        criteria = tuple(
            {
                "name": n,
                "failing_hosts": [h.host for h in hosts if n in h.failed_criteria],
                "unknown_hosts": [h.host for h in hosts if h.criteria.get(n) == "unknown"],
                "passing_hosts": [h.host for h in hosts if h.criteria.get(n) == "pass"],
            }
            for n in names
        )
    return Fleet(kind, hosts, groups, worst(h.exit_code for h in hosts), one_line(groups, len(hosts)), criteria)


# -------------------------------------------------------------------------- rendering ---


def fleet_json(fleet: Fleet, *, dest: str, generated_by: str, generated_at: str) -> dict[str, Any]:
    """fleet.json (fleet-verify.json for verify), schema_version 1 (docs/fleet.md)."""
    hosts = []
    for h in fleet.hosts:
        row: dict[str, Any] = {
            "host": h.host,
            "status": h.status,
            "exit_code": int(h.exit_code),
            "group": h.group,
            "cause": h.cause,
            "verdict": h.verdict,
            "summary": h.summary,
            "report": h.report,
            "failed_step": h.failed_step,
            "msg": h.msg,
        }
        if fleet.kind == CAPTURE:
            row.update(
                task=h.task, exit_path=h.exit_path, top_cause=h.top_cause, confidence=h.confidence, bundle=h.bundle
            )
        else:
            row.update(failed_criteria=list(h.failed_criteria), criteria=dict(h.criteria))
        hosts.append(row)
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": fleet.kind,
        "generated_by": generated_by,
        "generated_at": generated_at,
        "dest": dest,
        "exit_code": int(fleet.exit_code),
        "summary": fleet.summary,
        "counts": {s: sum(1 for h in fleet.hosts if h.status == s) for s in STATUSES},
        "groups": [
            {"key": g.key, "label": g.label, "hosts": list(g.hosts), "exit_code": int(g.exit_code)}
            for g in fleet.groups
        ],
        "hosts": hosts,
    }
    if fleet.kind == VERIFY:
        out["criteria"] = [dict(c) for c in fleet.criteria]
    return out


def _columns(fleet: Fleet) -> list[tuple[str, ...]]:
    if fleet.kind == CAPTURE:
        rows: list[tuple[str, ...]] = [("host", "verdict", "task", "path", "top cause", "confidence")]
        for h in fleet.hosts:
            verdict = h.verdict if h.status == "ok" else h.cause
            rows.append(tuple(dash(x) for x in (h.host, verdict, h.task, h.exit_path, h.top_cause, h.confidence)))
    else:
        rows = [("host", "verdict", "failing criteria")]
        for h in fleet.hosts:
            verdict = (h.verdict or "").upper() if h.status == "ok" else h.cause
            rows.append((h.host, verdict, dash(", ".join(h.failed_criteria))))
    return rows


def _aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def render_markdown(doc: Mapping[str, Any]) -> str:
    """fleet.md (or fleet-verify.md) from fleet.json."""
    name = "fleet.md.j2" if doc["kind"] == CAPTURE else "fleet-verify.md.j2"
    return render_template(name, f=doc)


def render_text(fleet: Fleet, doc: Mapping[str, Any], written: Sequence[str] = ()) -> str:
    """What `ingester-collector fleet` prints: the summary line, the table, where each report is."""
    return render_template("fleet.txt.j2", f=doc, table=_aligned(_columns(fleet)), written=written)


def dumps(doc: Mapping[str, Any]) -> str:
    """fleet.json's text."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
