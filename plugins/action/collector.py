# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
"""Run the collector on the controller, in this process's environment: no module anywhere.

``command`` delegated to localhost cost a module run (an interpreter, AnsiballZ) for each
collector call, plus a ``copy`` (two more) to write its input and a ``lookup`` to read its
output back; this action writes the input, runs the collector and reads its JSON, in one task.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Dict, Optional

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.rsky.ingester_capture.plugins.plugin_utils.controller import private_folder

ARGUMENT_SPEC = {
    "command": {"type": "list", "elements": "str", "required": True},
    "args": {"type": "list", "elements": "str", "default": []},
    "answers": {"type": "list", "elements": "int", "default": [0]},
    "inputs": {"type": "dict", "default": {}},
    "read_json": {"type": "path"},
    "timeout": {"type": "int", "default": 600},
}


def write_input(path: str, data: Any) -> None:
    """``data`` as indented JSON, mode 0600; the folder made 0750 when missing."""
    target = Path(path).absolute()
    private_folder(target.parent)
    fd = os.open(str(target), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(data, indent=4, sort_keys=True) + "\n")
    target.chmod(0o600)


class ActionModule(ActionBase):
    """Write the inputs, run the collector, read its JSON."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp: Optional[str] = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if self._task.check_mode:
            result.update(changed=False, skipped=True, msg="check mode: the collector was not run")
            return result
        argv = [str(a) for a in list(args["command"]) + list(args["args"])]
        if not argv:
            raise AnsibleActionFail("collector: command is empty")
        try:
            for path, data in (args["inputs"] or {}).items():
                write_input(str(path), data)
        except (OSError, TypeError, ValueError) as exc:
            raise AnsibleActionFail("collector: the input could not be written: %s" % exc) from exc
        try:
            proc = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=args["timeout"], check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AnsibleActionFail("collector: %s could not run: %s" % (argv[0], exc)) from exc
        stdout = proc.stdout.rstrip("\n")
        # An answer is no failure, whatever its exit code: say so, or Ansible fails the task on rc != 0.
        result.update(
            changed=False,
            failed=False,
            rc=proc.returncode,
            cmd=argv,
            stdout=stdout,
            stdout_lines=stdout.splitlines(),
            stderr=proc.stderr.rstrip("\n"),
        )
        if proc.returncode not in args["answers"]:
            last = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["no output"])[-1]
            result.update(failed=True, msg="the collector exited %d: %s" % (proc.returncode, last))
            return result
        if args["read_json"]:
            try:
                with Path(str(args["read_json"])).open(encoding="utf-8") as handle:
                    result["json"] = json.load(handle)
            except (OSError, ValueError) as exc:
                result.update(failed=True, msg="collector: %s could not be read: %s" % (args["read_json"], exc))
        return result
