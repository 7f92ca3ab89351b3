"""``--dist loadgroup`` that honours ``xdist_group`` marks on this pytest (scripts/test.sh).

pytest-xdist tells its scheduler a test's group by appending ``@group`` to the test's node id,
and pytest 9.2 no longer lets a plugin change a node id (pytest-xdist issue 1386): the marks
are silently ignored and every test is sent anywhere. Here the workers write the groups they
collected into a folder of the run instead, and the scheduler reads them from there:

* :func:`record_groups` (worker, after collection): ``{node id: group}`` for every test with an
  ``xdist_group`` mark, written atomically into the folder the controller handed out.
* :class:`MarkedGroupScheduling` (controller): xdist's loadgroup scheduling with the scope
  taken from that record. Tests without a group stay units of their own; a group is one unit,
  its tests run on one worker in collection order. With ``--no-loadscope-reorder`` (as
  scripts/test.sh runs it) units go out in collection order: the integration tests, which
  mostly wait, first.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling


def group_of(item: pytest.Item) -> str | None:
    """The item's group name, as xdist spells it: its ``xdist_group`` names sorted and joined."""
    names = set()
    for mark in item.iter_markers("xdist_group"):
        names.add(str(mark.args[0] if mark.args else mark.kwargs.get("name", "default")))
    return "_".join(sorted(names)) if names else None


def new_group_dir() -> str:
    """A folder for one run's group records (the controller makes it; the workers write into it)."""
    return tempfile.mkdtemp(prefix="pytest-groups-")


def record_groups(group_dir: str, worker: str, items: list[pytest.Item]) -> None:
    """Write ``{node id: group}`` for the grouped items into ``group_dir`` (atomic rename)."""
    groups = {item.nodeid: group for item in items if (group := group_of(item)) is not None}
    target = Path(group_dir) / f"{worker}.json"
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(groups))
    tmp.replace(target)


class MarkedGroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
    """Load scheduling where a test's scope is its recorded group, or the test itself."""

    def __init__(self, config: pytest.Config, log: Any, group_dir: str) -> None:
        super().__init__(config, log)
        self._group_dir = Path(group_dir)
        self._groups: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        # Read once all workers have collected (the scheduler asks only after that); every
        # worker collected the same tests, so the records agree.
        groups: dict[str, str] = {}
        for record in sorted(self._group_dir.glob("*.json")):
            groups.update(json.loads(record.read_text()))
        return groups

    def _split_scope(self, nodeid: str) -> str:
        if self._groups is None:
            self._groups = self._load()
        group = self._groups.get(nodeid)
        return f"@group:{group}" if group is not None else nodeid
