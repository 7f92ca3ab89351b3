"""A production-shaped SSH target on 127.0.0.1: a non-root deploy user with passwordless sudo.

The user is what a production host gives the on-call engineer: a login of its own with an
authorized key, ``ALL=(ALL) NOPASSWD:ALL`` through a sudoers drop-in, *not* in the ``docker``
group (so it cannot reach the Docker socket) and with no way into root's folders (so it cannot
write the host's state folder). Only ``become`` gets the play anywhere.

The drop-in also points sudo's log at two files of the test: what the deploy user ran through
sudo (the host side's ``become``) and what root ran through sudo. The controller is root on the
same machine, so a controller task that used ``become`` shows up in the second file and nowhere
else: ownership cannot tell root-via-sudo from root.

Everything is created for one test module and removed in a ``finally``: the sshd, the user, its
home and the drop-in. The tests run as root (they create a user and a sudoers file).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import Sshd

# The GECOS field marks the users this module creates, so a run killed half-way is cleaned up
# by the next one and no other account is ever touched.
MARKER = "ingester-capture test deploy user"
SUDOERS_DIR = Path("/etc/sudoers.d")


@dataclass(frozen=True)
class DeployHost:
    """The deploy user, the sshd that lets it in, and sudo's logs."""

    sshd: Sshd
    uid: int
    home: Path
    control_dir: Path
    sudo_log_deploy: Path
    sudo_log_root: Path

    @property
    def user(self) -> str:
        return self.sshd.user

    def ssh_argv(self, *command: str) -> list[str]:
        """``ssh`` as the deploy user, the way ansible logs in (key only, no agent, no tty)."""
        return [
            "ssh",
            "-i",
            str(self.sshd.key),
            "-p",
            str(self.sshd.port),
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            f"{self.user}@127.0.0.1",
            *command,
        ]

    def ssh(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.ssh_argv(*command), capture_output=True, text=True, timeout=60, check=False)


def _need(tool: str) -> None:
    if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
        pytest.fail(f"{tool} is not installed: run scripts/setup.sh test", pytrace=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _user_exists(user: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(user)
    except KeyError:
        return None


def _processes_of(uid: int) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if proc.stat().st_uid == uid:
                    pids.append(int(proc.name))
    return pids


def _remove_user(user: str, dropin: Path) -> None:
    """Remove the test user (only if this module made it), its home and the drop-in."""
    dropin.unlink(missing_ok=True)
    found = _user_exists(user)
    if found is None:
        return
    if found.pw_gecos != MARKER:
        pytest.fail(f"user {user} exists and is not this test's: not touching it", pytrace=False)
    # The login sessions of this test (ssh's session processes run as the user): end them by pid.
    for pid in _processes_of(found.pw_uid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 10
    while _processes_of(found.pw_uid) and time.time() < deadline:
        time.sleep(0.2)
    for pid in _processes_of(found.pw_uid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    subprocess.run(["userdel", "--remove", "--force", user], capture_output=True, check=False)
    shutil.rmtree(found.pw_dir, ignore_errors=True)


def _stop_control_masters(control_dir: Path) -> None:
    """ansible's ssh keeps a master connection open for a minute: close ours now."""
    for sock in control_dir.glob("*"):
        subprocess.run(
            ["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "placeholder"],
            capture_output=True,
            check=False,
            timeout=20,
        )


@contextlib.contextmanager
def deploy_host(root: Path, user: str = "icdeploy") -> Iterator[DeployHost]:
    """Create the deploy user and its sshd under ``root``; remove everything afterwards."""
    if os.geteuid() != 0:
        pytest.fail("the deploy-user tests create a user and a sudoers drop-in: run them as root", pytrace=False)
    for tool in ("sudo", "visudo", "useradd", "sshd"):
        _need(tool)
    dropin = SUDOERS_DIR / f"ingester-capture-test-{user}"
    _remove_user(user, dropin)  # a run killed half-way left them behind
    proc: subprocess.Popen[bytes] | None = None
    control_dir = root / "cp"
    control_dir.mkdir(mode=0o700)
    try:
        # -p '*': no password, but not a locked account (sshd without PAM refuses locked ones).
        subprocess.run(
            ["useradd", "--create-home", "--shell", "/bin/sh", "--comment", MARKER, "--password", "*", user],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(user)
        home = Path(entry.pw_dir)
        groups = subprocess.run(["id", "-nG", user], capture_output=True, text=True, check=True).stdout.split()
        assert "docker" not in groups, f"{user} must not be in the docker group: {groups}"

        host_key, client_key = root / "host_ed25519", root / "client_ed25519"
        for key in (host_key, client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        authorized = ssh_dir / "authorized_keys"
        shutil.copy(client_key.with_suffix(".pub"), authorized)
        authorized.chmod(0o600)
        for path in (ssh_dir, authorized):
            os.chown(path, entry.pw_uid, entry.pw_gid)

        logs = root / "sudo-logs"
        logs.mkdir(mode=0o700)
        sudo_log_deploy, sudo_log_root = logs / "deploy.log", logs / "root.log"
        rules = root / "sudoers"
        rules.write_text(
            f'Defaults:{user} logfile="{sudo_log_deploy}"\n'
            f'Defaults:root logfile="{sudo_log_root}"\n'
            f"{user} ALL=(ALL) NOPASSWD:ALL\n"
        )
        rules.chmod(0o440)
        checked = subprocess.run(["visudo", "-cf", str(rules)], capture_output=True, text=True, check=False)
        assert checked.returncode == 0, f"visudo refused the drop-in: {checked.stdout}{checked.stderr}"
        shutil.copy(rules, dropin)
        dropin.chmod(0o440)

        port = _free_port()
        config = root / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {host_key}",
                    f"PidFile {root / 'sshd.pid'}",
                    "AuthorizedKeysFile .ssh/authorized_keys",
                    f"AllowUsers {user}",
                    "PermitRootLogin no",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes yes",
                    "Subsystem sftp internal-sftp",
                    "",
                ]
            )
        )
        Path("/run/sshd").mkdir(exist_ok=True)
        proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the deploy user's sshd did not start listening", pytrace=False)
        yield DeployHost(
            sshd=Sshd(port=port, key=client_key, user=user),
            uid=entry.pw_uid,
            home=home,
            control_dir=control_dir,
            sudo_log_deploy=sudo_log_deploy,
            sudo_log_root=sudo_log_root,
        )
    finally:
        _stop_control_masters(control_dir)
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        _remove_user(user, dropin)
