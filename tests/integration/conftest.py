"""Fixtures for tests that run ansible-playbook: inventories, a real sshd on 127.0.0.1, a runner.

Every playbook run is a real ``ansible-playbook`` process from the project's virtual
environment, with the repository's ansible.cfg, against real containers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from standin.stack import Stack

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
ANSIBLE_PLAYBOOK = str(VENV_BIN / "ansible-playbook")


@dataclass(frozen=True)
class Sshd:
    """A throwaway sshd on 127.0.0.1: key auth only, its own host key and client key."""

    port: int
    key: Path
    user: str


@dataclass(frozen=True)
class PlayResult:
    """One ansible-playbook run: exit code and combined output."""

    rc: int
    out: str

    def bundle_dirs(self, dest: Path) -> list[Path]:
        return sorted(p for p in dest.glob("*/*") if p.is_dir())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _host_key_served(port: int, host_pub: Path) -> bool | None:
    """Whether the sshd on ``port`` serves ``host_pub`` (None: nothing answers there yet)."""
    scan = subprocess.run(
        ["ssh-keyscan", "-T", "5", "-t", "ed25519", "-p", str(port), "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    served = [line.split()[1:3] for line in scan.stdout.splitlines() if line and not line.startswith("#")]
    if not served:
        return None
    return host_pub.read_text().split()[:2] in served


def start_sshd(root: Path) -> tuple[subprocess.Popen[bytes], Sshd]:
    """Start sshd on a free loopback port with keys under ``root``; the caller stops it.

    Parallel workers each start their own: the port is checked to be ours (its host key is
    the one generated here), and a port taken between the pick and sshd's bind is picked again.
    """
    if not Path("/usr/sbin/sshd").exists():
        pytest.fail("sshd is not installed: run scripts/setup.sh test", pytrace=False)
    host_key, client_key = root / "host_ed25519", root / "client_ed25519"
    for key in (host_key, client_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    authorized = root / "authorized_keys"
    shutil.copy(client_key.with_suffix(".pub"), authorized)
    authorized.chmod(0o600)
    Path("/run/sshd").mkdir(exist_ok=True)
    for _attempt in range(5):
        port = _free_port()
        config = root / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {host_key}",
                    f"PidFile {root / 'sshd.pid'}",
                    f"AuthorizedKeysFile {authorized}",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    "StrictModes no",
                    "Subsystem sftp internal-sftp",
                    "",
                ]
            )
        )
        proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
        deadline = time.time() + 60  # a loaded machine (parallel tests) starts sshd slowly
        ours: bool | None = None
        while time.time() < deadline and proc.poll() is None:
            ours = _host_key_served(port, host_key.with_suffix(".pub"))
            if ours is not None:
                break
            time.sleep(0.2)
        if ours and proc.poll() is None:
            return proc, Sshd(port=port, key=client_key, user=os.environ.get("USER") or "root")
        proc.kill()
        proc.wait()
    pytest.fail("the test sshd did not start listening (5 ports tried)", pytrace=False)


def _descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid``, read from /proc (children before grandchildren)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop(0)
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(x) for x in (task / "children").read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def _is_sshd(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() in {"sshd", "sshd-session", "sshd-auth"}
    except OSError:
        return False


def kill_sshd(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a test sshd and its open sessions, as a host going away would end them.

    Only this listener's own session processes (sshd itself, not what the sessions run): other
    tests' sshds (parallel workers) and their sessions are left alone.
    """
    sessions = [pid for pid in _descendants(proc.pid) if _is_sshd(pid)]
    proc.kill()
    proc.wait()
    for pid in sessions:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A throwaway sshd for the session; stopped at the end, pass or fail."""
    proc, server = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


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
    group_vars: dict[str, Any] = {
        "ingester_project_dir": str(stack.project_dir),
        "ingester_compose_file": stack.compose_file,
        "ingester_service": stack.service,
        "ingester_container": stack.container,
        "ingester_debug_image": stack.debug_image,
        "capture_state_dir": str(state),
        "capture_dest": str(dest),
        "capture_mode": "capture",
        "capture_window_seconds": 60,
        "capture_stop_after_restarts": 3,
        "capture_stats_interval_seconds": 1,
        "capture_stop_timeout_seconds": 2,
        "capture_poll_seconds": 3,
        "capture_heartbeat_timeout_seconds": 20,
        "capture_min_free_bytes": 1_000_000,
    }
    group_vars.update(overrides)
    inventory = {"all": {"children": {"ingester_hosts": {"hosts": {host: host_vars}, "vars": group_vars}}}}
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


def ansible_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            # Tests read results as JSON, one string a line: the YAML format the checkout prints
            # folds long strings and doubles quotes, which would split a phrase (or a leaked
            # secret) across lines. test_plays_honest checks the checkout's own YAML output.
            "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    env.update(extra or {})
    return env


def run_playbook(
    playbook: str,
    inventory: Path,
    *args: str,
    extra_vars: Mapping[str, Any] | None = None,
    timeout: float = 600,
) -> PlayResult:
    """Run ansible-playbook from the repository root; never raises on a failed play."""
    argv = [ANSIBLE_PLAYBOOK, "-i", str(inventory), playbook, *args]
    if extra_vars:
        argv += ["-e", json.dumps(dict(extra_vars))]
    proc = subprocess.run(
        argv,
        cwd=REPO,
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return PlayResult(rc=proc.returncode, out=proc.stdout + proc.stderr)


@pytest.fixture
def capture_paths(tmp_path: Path) -> tuple[Path, Path]:
    """(controller bundle dest, host state dir) for one test."""
    dest, state = tmp_path / "captures", tmp_path / "state"
    dest.mkdir()
    return dest, state


def agent_processes(marker: str) -> list[str]:
    """Command lines of live processes whose argv mentions ``marker`` (our followers)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and int(proc.name) != os.getpid():
            found.append(cmdline.strip())
    return found


def wait_for_window(state: Path, timeout: float = 600) -> Path:
    """The progress file of a running capture window, once it is capturing.

    The deadline only bounds a hang: on a loaded machine (four workers on two cores) the steps
    before the window (pre-flight, snapshot, build, swap) took over two minutes.
    """
    deadline = time.time() + timeout
    while time.time() < deadline:
        for progress in state.glob("*/work/*/.window.json"):
            try:
                if json.loads(progress.read_text()).get("phase") == "capturing":
                    return progress
            except ValueError:
                pass
        time.sleep(0.3)
    raise AssertionError("the capture window never started")


def start_play(inventory: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [ANSIBLE_PLAYBOOK, "-i", str(inventory), "capture.yml", *args],
        cwd=REPO,
        env=ansible_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
