"""Inventories for one stand-in stack, as a user would write them for capture.yml and its plays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from standin.stack import Stack
from tests.support.sshd import Sshd

# The window's knobs, short for tests: a few restarts within a minute, a sample a second.
WINDOW_VARS: dict[str, Any] = {
    "capture_window_seconds": 60,
    "capture_stop_after_restarts": 3,
    "capture_stats_interval_seconds": 1,
    "capture_stop_timeout_seconds": 2,
    "capture_poll_seconds": 3,
    "capture_heartbeat_timeout_seconds": 20,
    "capture_min_free_bytes": 1_000_000,
}


def stack_vars(stack: Stack, state: Path) -> dict[str, Any]:
    """What a host's inventory says about its stack: where the compose project is, which service
    and container, the debug image's tag, and the host's state folder."""
    return {
        "ingester_project_dir": str(stack.project_dir),
        "ingester_compose_file": stack.compose_file,
        "ingester_service": stack.service,
        "ingester_container": stack.container,
        "ingester_debug_image": stack.debug_image,
        "capture_state_dir": str(state),
    }


def _write(path: Path, hosts: dict[str, dict[str, Any]], group_vars: dict[str, Any]) -> Path:
    inventory = {"all": {"children": {"ingester_hosts": {"hosts": hosts, "vars": group_vars}}}}
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


def write_inventory(
    path: Path,
    stack: Stack,
    *,
    dest: Path,
    state: Path,
    sshd: Sshd | None = None,
    host: str = "testhost",
    **overrides: Any,
) -> Path:
    """An inventory for one stack: local connection, or real SSH when ``sshd`` is given."""
    host_vars: dict[str, Any] = {"ansible_python_interpreter": "/usr/bin/python3"}
    if sshd is None:
        host_vars["ansible_connection"] = "local"
    else:
        host_vars.update(
            {
                "ansible_connection": "ssh",
                "ansible_host": "127.0.0.1",
                "ansible_port": sshd.port,
                "ansible_user": sshd.user,
                "ansible_ssh_private_key_file": str(sshd.key),
                "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            }
        )
    group_vars = {**stack_vars(stack, state), "capture_dest": str(dest), "capture_mode": "capture", **WINDOW_VARS}
    group_vars.update(overrides)
    return _write(path, {host: host_vars}, group_vars)


def write_fleet_inventory(
    path: Path, hosts: dict[str, tuple[Stack, Path, str]], *, dest: Path, **overrides: Any
) -> Path:
    """An inventory for several stacks on this machine, one host each (local connection):
    ``hosts`` maps a host name to its stack, its state folder and its capture mode."""
    host_vars = {
        name: {
            "ansible_connection": "local",
            "ansible_python_interpreter": "/usr/bin/python3",
            **stack_vars(stack, state),
            "capture_mode": mode,
        }
        for name, (stack, state, mode) in hosts.items()
    }
    return _write(path, host_vars, {"capture_dest": str(dest), **WINDOW_VARS, **overrides})
