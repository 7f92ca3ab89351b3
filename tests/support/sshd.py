"""A throwaway sshd on 127.0.0.1 for tests that reach a host over real SSH."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import descendants


@dataclass(frozen=True)
class Sshd:
    """A throwaway sshd on 127.0.0.1: key auth only, its own host key and client key."""

    port: int
    key: Path
    user: str


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


def serve_sshd(root: Path, host_key: Path, settings: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    """Start sshd on a free loopback port with ``host_key`` and ``settings`` (its config lines
    after the port, address, host key and pid file); (process, port). The caller stops it.

    Parallel workers each start their own: the port is checked to be ours (its host key is the
    one given here, not another worker's sshd that took the port), and a port taken between the
    pick and sshd's bind is picked again.
    """
    if not Path("/usr/sbin/sshd").exists():
        pytest.fail("sshd is not installed: run scripts/setup.sh test", pytrace=False)
    Path("/run/sshd").mkdir(exist_ok=True)
    for _attempt in range(5):
        port = _free_port()
        config = root / "sshd_config"
        head = [f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"PidFile {root / 'sshd.pid'}"]
        config.write_text("\n".join([*head, *settings, ""]))
        proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
        deadline = time.time() + 60  # a loaded machine (parallel tests) starts sshd slowly
        ours: bool | None = None
        while time.time() < deadline and proc.poll() is None:
            ours = _host_key_served(port, host_key.with_suffix(".pub"))
            if ours is not None:
                break
            time.sleep(0.2)
        if ours and proc.poll() is None:
            return proc, port
        proc.kill()
        proc.wait()
    pytest.fail("the test sshd did not start listening (5 ports tried)", pytrace=False)


def start_sshd(root: Path) -> tuple[subprocess.Popen[bytes], Sshd]:
    """A throwaway sshd for root (key auth, keys under ``root``); the caller stops it."""
    host_key, client_key = root / "host_ed25519", root / "client_ed25519"
    for key in (host_key, client_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    authorized = root / "authorized_keys"
    shutil.copy(client_key.with_suffix(".pub"), authorized)
    authorized.chmod(0o600)
    settings = [
        f"AuthorizedKeysFile {authorized}",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "UsePAM no",
        "StrictModes no",
        "Subsystem sftp internal-sftp",
    ]
    proc, port = serve_sshd(root, host_key, settings)
    return proc, Sshd(port=port, key=client_key, user=os.environ.get("USER") or "root")


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
    sessions = [pid for pid in descendants(proc.pid) if _is_sshd(pid)]
    proc.kill()
    proc.wait()
    for pid in sessions:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
