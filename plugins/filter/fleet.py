# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
"""fleet_outcomes: what each targeted host's capture or verify came to, for the fleet summary.

Runs on the controller, in the closing play of capture.yml and verify.yml, from the hosts'
variables as the earlier play left them: the bundle and report paths a host set, the task its
rescue caught (``ansible_failed_task``/``ansible_failed_result``), or a registered result Ansible
marked unreachable. The result is the outcomes file of docs/fleet.md.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

# The capture step a failing module belongs to (roles/capture/tasks/steps/).
STEP_OF_ACTION = {
    "rsky.ingester_capture.preflight": "preflight",
    "rsky.ingester_capture.capture_lock": "preflight",
    "rsky.ingester_capture.snapshot": "snapshot",
    "rsky.ingester_capture.bundle_command": "debug_image",
    "rsky.ingester_capture.debug_build": "debug_image",
    # The only fail tasks among the steps stop a failed pull or build.
    "ansible.builtin.fail": "debug_image",
    "rsky.ingester_capture.compose_image": "compose_swap",
    "rsky.ingester_capture.capture_window": "window",
    "rsky.ingester_capture.collect": "collect",
    "rsky.ingester_capture.seal": "seal",
    "ansible.builtin.fetch": "seal",
    "rsky.ingester_capture.fetch_bundle": "seal",
    "rsky.ingester_capture.collector": "diagnose",
    "ansible.builtin.unarchive": "seal",
    "ansible.builtin.file": "seal",
    "ansible.builtin.command": "diagnose",
    "ansible.builtin.set_fact": "diagnose",
    "rsky.ingester_capture.verify_probe": "probe",
}
# Registered results that show a host stopped answering (in the order the steps run).
REGISTERS = {
    "capture": (
        "__capture_preflight",
        "__capture_snapshot",
        "__capture_build_start",
        "__capture_build",
        "__capture_swap",
        "__capture_window_start",
        "__capture_window_progress",
        "__capture_window_stop",
    ),
    "verify": ("__verify_probe_run",),
}
MSG_CHARS = 600


def _get(hostvars: Mapping[str, Any], key: str) -> Any:
    try:
        value = hostvars.get(key)
    except Exception:  # an undefined or untemplatable variable is as good as absent
        return None
    return value if isinstance(value, (str, int, float, bool, list, dict, Mapping)) else None


def _text(value: Any) -> str:
    """One line; a long message keeps its start (what failed) and its end (docker's last words)."""
    text = " ".join(str(value or "").split())
    if len(text) <= MSG_CHARS:
        return text
    half = (MSG_CHARS - 3) // 2
    return "%s … %s" % (text[:half], text[-half:])


def _unreachable(hostvars: Mapping[str, Any], kind: str) -> Optional[str]:
    for name in REGISTERS[kind]:
        result = _get(hostvars, name)
        if isinstance(result, Mapping) and result.get("unreachable"):
            return _text(result.get("msg")) or "Ansible could not reach the host"
    return None


def _failed(hostvars: Mapping[str, Any], kind: str) -> Optional[Dict[str, str]]:
    task = _get(hostvars, "ansible_failed_task")
    result = _get(hostvars, "ansible_failed_result")
    if isinstance(task, Mapping):
        action = str(task.get("_resolved_action") or task.get("action") or "")
        name = str(task.get("name") or "")
        step = STEP_OF_ACTION.get(action) or name.split("|", 1)[-1].strip() or action or "?"
        msg = result.get("msg") or result.get("stderr") if isinstance(result, Mapping) else ""
        return {"failed_step": step, "msg": _text("%s: %s" % (name, msg) if name else msg)}
    if kind == "verify":
        probe = _get(hostvars, "__verify_probe_run")
        if isinstance(probe, Mapping) and probe.get("failed"):
            return {"failed_step": "probe", "msg": _text(probe.get("msg"))}
    return None


def outcome(hostvars: Mapping[str, Any], kind: str = "capture") -> Dict[str, str]:
    """One host's entry of the outcomes file."""
    failed = _failed(hostvars, kind)
    if kind == "verify":
        run_dir = _get(hostvars, "__verify_run_dir")
        done = isinstance(run_dir, str) and _get(hostvars, "__verify_result") is not None
        where = {"report": "%s/verify.md" % run_dir} if done else {}
        began = _get(hostvars, "__verify_probe_run") is not None or done
    else:
        local = _get(hostvars, "__capture_local_dir")
        done = isinstance(local, str) and _get(hostvars, "__capture_report") is not None
        where = {"bundle": "%s.tar.gz" % local, "report": "%s/report.md" % local} if done else {}
        began = _get(hostvars, "__capture_owner") is not None
    if failed:
        return dict(where, status="failed", **failed)
    unreachable = _unreachable(hostvars, kind)
    if unreachable:
        return {"status": "unreachable", "msg": unreachable}
    if done:
        return dict(where, status="ok")
    if not began:
        return {
            "status": "failed",
            "failed_step": "validate",
            "msg": "refused before the %s started: a variable did not pass the checks (see the play output)" % kind,
        }
    return {"status": "unreachable", "msg": "no answer from the host before a %s was written" % kind}


def fleet_outcomes(hostvars: Mapping[str, Any], hosts: Sequence[str], kind: str = "capture") -> Dict[str, Any]:
    """``{host: outcome}`` for every targeted host (docs/fleet.md, "The outcomes file")."""
    if kind not in REGISTERS:
        raise ValueError("fleet_outcomes: kind must be capture or verify, not %r" % kind)
    return {str(host): outcome(hostvars[host], kind) for host in hosts}


def fleet_targets(pattern_hosts: Sequence[str], limit_hosts: Optional[Sequence[str]] = None) -> List[str]:
    """The play's targets: the hosts of its pattern, narrowed by --limit when one was given."""
    if limit_hosts is None:
        return sorted(set(pattern_hosts))
    return sorted(set(pattern_hosts) & set(limit_hosts))


class FilterModule:
    """The fleet summary's filters."""

    def filters(self) -> Dict[str, Any]:
        return {"fleet_outcomes": fleet_outcomes, "fleet_targets": fleet_targets}
