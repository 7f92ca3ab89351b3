"""Where capture.yml's time goes: seconds per task, written as JSON (bench_play.py --profile).

ansible.posix's profile_tasks is not among the project's dependencies; this is the part of it the
benchmark needs. Enabled only by bench_play.py --profile (ANSIBLE_CALLBACKS_ENABLED=task_times).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: task_times
type: aggregate
short_description: seconds per task, as JSON in $TASK_TIMES_FILE
description: The benchmark's profile of capture.yml.
"""


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.started = time.monotonic()
        self.current: tuple[str, float] | None = None
        self.rows: list[dict[str, Any]] = []

    def _next(self, name: str) -> None:
        now = time.monotonic()
        if self.current is not None:
            self.rows.append({"task": self.current[0], "seconds": round(now - self.current[1], 3)})
        self.current = (name, now)

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._next(task.get_name())

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._next("PLAY " + play.get_name())

    def v2_playbook_on_stats(self, stats: Any) -> None:
        self._next("end")
        path = os.environ.get("TASK_TIMES_FILE")
        if path:
            with open(path, "w", encoding="utf-8") as handle:  # noqa: PTH123
                json.dump({"total": round(time.monotonic() - self.started, 3), "tasks": self.rows}, handle)
