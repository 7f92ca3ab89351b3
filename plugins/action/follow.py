# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
"""Follow a long step on the host (the capture window, the debug build): one progress line per poll.

One task instead of a loop of included poll files: the action calls the step's module with
``state: status`` until it reports ``done``, and prints each poll's progress on the controller.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.rsky.ingester_capture.plugins.module_utils.host_state import target_argument_spec

display = Display()

# The target options every module of the collection takes, from their one spec: a copy kept here
# drifted once (the compose project options) and every follow refused its module_defaults.
_TARGET = tuple(target_argument_spec())


def _clock(seconds: Any) -> str:
    total = int(float(seconds or 0))
    return "%d:%02d" % (total // 60, total % 60)


def window_line(progress: Dict[str, Any], window_seconds: int) -> str:
    """The capture window's progress: elapsed of the window, restarts, exit codes, OOM events."""
    line = "%s of %s, %s restart(s) seen" % (
        _clock(progress.get("elapsed")),
        _clock(window_seconds),
        progress.get("restarts", 0),
    )
    if progress.get("exit_codes"):
        line += ", exit codes " + ", ".join(str(c) for c in progress["exit_codes"])
    if progress.get("oom_events"):
        line += ", %s OOM event(s)" % progress["oom_events"]
    gaps = [g for g in progress.get("daemon_unavailable") or [] if isinstance(g, dict)]
    if gaps and gaps[-1].get("end") is None:
        line += ", the Docker daemon is unavailable since %s" % gaps[-1].get("start")
    elif gaps:
        line += ", the Docker daemon was unavailable %d time(s) (%s s)" % (
            len(gaps),
            ", ".join(str(g.get("seconds")) for g in gaps),
        )
    if progress.get("done"):
        line += " - window ended (%s)" % progress.get("ended_by", "?")
    return line


def build_line(progress: Dict[str, Any]) -> str:
    """The debug build's progress: elapsed time, Docker's current step, cargo's crate count."""
    if progress.get("reused"):
        return str(progress.get("msg") or "image reused")
    parts = [_clock(progress.get("elapsed"))]
    if progress.get("step"):
        parts.append(str(progress["step"]))
    if progress.get("compiled"):
        parts.append("%s crate(s) compiled" % progress["compiled"])
    if progress.get("done"):
        parts.append("build ended (exit %s)" % progress.get("rc"))
    return ", ".join(parts)


def gate_line(progress: Dict[str, Any]) -> str:
    """The deploy gate's progress: the module's own line (elapsed of T, exits, the odds so far)."""
    return str(progress.get("line") or "gate: %s" % progress.get("phase", "?"))


class ActionModule(ActionBase):
    """Poll ``module`` with ``args`` plus ``state: status`` until done; one display line per poll."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("module", "args", "polls", "kind", "window_seconds", "ended") + _TARGET)
    # What a start's result may hand on as the step's end (``ended``), when nothing is left to poll.
    _ENDED_KEYS = ("done", "rc", "reused", "revision", "msg", "tail", "elapsed", "step", "compiled")

    def run(self, tmp: Optional[str] = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        result = super().run(tmp, task_vars)
        del tmp
        targs = self._task.args
        module = str(targs.get("module") or "")
        if not module.startswith("rsky.ingester_capture."):
            raise AnsibleActionFail("follow: module must be one of rsky.ingester_capture's modules")
        kind = str(targs.get("kind") or "window")
        polls = int(targs.get("polls") or 100)
        window_seconds = int(targs.get("window_seconds") or 0)
        args = dict(targs.get("args") or {})
        args["state"] = "status"
        for key in _TARGET:
            if targs.get(key) is not None:
                args.setdefault(key, targs[key])
        if self._task.check_mode:
            # Check mode starts no window and no build: there is nothing to follow.
            result.update(changed=False, skipped=True, msg="check mode: %s has nothing running to follow" % kind)
            return result
        host = (task_vars or {}).get("inventory_hostname", "?")
        lines: List[str] = []
        progress: Dict[str, Any] = {}
        started = time.monotonic()
        # The start's own result, when it says the step already ended (an image of this commit
        # reused): its line, and no module run to learn what the play already knows.
        ended = targs.get("ended") or {}
        if not isinstance(ended, dict):
            raise AnsibleActionFail("follow: ended must be a start's result (a dict)")
        for _attempt in range(polls):
            if ended.get("done"):
                progress = {k: ended[k] for k in self._ENDED_KEYS if k in ended}
            else:
                progress = self._execute_module(module_name=module, module_args=args, task_vars=task_vars)
            if progress.get("failed"):
                result.update(progress)
                return result
            if kind == "gate":
                line = gate_line(progress)
            else:
                line = window_line(progress, window_seconds) if kind == "window" else build_line(progress)
            lines.append(line)
            display.display("[%s] %s %s" % (host, kind, line))
            if progress.get("done"):
                break
        else:
            progress["failed"] = True
            progress["msg"] = "%s did not end after %d polls (%d s)" % (module, polls, time.monotonic() - started)
        progress.pop("invocation", None)
        result.update(progress)
        # The step's own exit code (a failed build) is for the play to judge, not a failure of
        # following it: say so, or Ansible would fail the task on rc != 0.
        result["failed"] = bool(progress.get("failed"))
        result["changed"] = False
        result["progress_lines"] = lines
        return result
