"""A production-shaped SSH target on 127.0.0.1 and a controller that is not root.

The deploy user is what a production host gives the on-call engineer: a login of its own with an
authorized key, ``ALL=(ALL) NOPASSWD:ALL`` through a sudoers drop-in, *not* in the ``docker``
group (so it cannot reach the Docker socket) and with no way into root's folders (so it cannot
write the host's state folder). Only ``become`` gets the play anywhere.

The controller user runs ``ansible-playbook``: an ordinary account with no sudo rights, so a
controller-side task that asked for ``become`` would fail, and whatever the controller writes is
owned by that user (a root controller could not tell root-via-sudo from itself: Ansible skips
sudo when the user already is the become user). The drop-in points sudo's log, per user, at
files of the test: what the deploy user ran through sudo, and every sudo the controller tried.

Everything is created for one test module and removed in a ``finally``: the sshd, both users,
their homes and the drop-in. The tests run as root (they create users and a sudoers file).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.playbooks import ANSIBLE_PLAYBOOK, REPO, PlayResult, ansible_env
from tests.support.sshd import Sshd, serve_sshd

# The GECOS field marks the users this module creates, so a run killed half-way is cleaned up
# by the next one and no other account is ever touched.
MARKER = "ingester-capture test user"
SUDOERS_DIR = Path("/etc/sudoers.d")


@dataclass(frozen=True)
class Controller:
    """The user ansible-playbook runs as, and the interpreter it can run."""

    user: str
    uid: int
    gid: int
    home: Path
    python: str
    env: dict[str, str]
    sudo_log: Path

    def workdir(self, name: str) -> Path:
        """A folder of the controller's own for one test's inventory and ``capture_dest``."""
        path = self.home / name
        path.mkdir(mode=0o700)
        os.chown(path, self.uid, self.gid)
        return path

    def argv(self, playbook: str, inventory: Path, *args: str) -> list[str]:
        return [self.python, ANSIBLE_PLAYBOOK, "-i", str(inventory), playbook, *args]

    def start(self, playbook: str, inventory: Path, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(playbook, inventory, *args),
            cwd=REPO,
            env=self.env,
            user=self.uid,
            group=self.gid,
            extra_groups=[],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def play(self, playbook: str, inventory: Path, *args: str, timeout: float = 600) -> PlayResult:
        proc = self.start(playbook, inventory, *args)
        try:
            out, _ = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return PlayResult(rc=proc.returncode, out=out)


@dataclass(frozen=True)
class DeployHost:
    """The deploy user, the sshd that lets it in, the controller user and sudo's logs."""

    sshd: Sshd
    uid: int
    home: Path
    sudo_log: Path
    controller: Controller

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
        """A command over SSH as the deploy user, from the controller user's login."""
        ctl = self.controller
        return subprocess.run(
            self.ssh_argv(*command),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={"HOME": str(ctl.home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            user=ctl.uid,
            group=ctl.gid,
            extra_groups=[],
        )


def _need(tool: str) -> None:
    if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
        pytest.fail(f"{tool} is not installed: run scripts/setup.sh test", pytrace=False)


def _user_exists(user: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(user)
    except KeyError:
        return None


def _processes_of(uid: int) -> list[int]:
    """Live processes of ``uid`` (a zombie is gone already, whoever is to reap it)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if proc.stat().st_uid == uid:
                    stat_line = (proc / "stat").read_text()
                    if stat_line[stat_line.rfind(")") + 2 :][:1] not in ("Z", "X"):
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


def _add_user(user: str) -> pwd.struct_passwd:
    # -p '*': no password, but not a locked account (sshd without PAM refuses locked ones).
    subprocess.run(
        ["useradd", "--create-home", "--shell", "/bin/sh", "--comment", MARKER, "--password", "*", user],
        check=True,
        capture_output=True,
    )
    entry = pwd.getpwnam(user)
    groups = subprocess.run(["id", "-nG", user], capture_output=True, text=True, check=True).stdout.split()
    assert "docker" not in groups, f"{user} must not be in the docker group: {groups}"
    return entry


def _as(entry: pwd.struct_passwd, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env,
        user=entry.pw_uid,
        group=entry.pw_gid,
        extra_groups=[],
        cwd=entry.pw_dir,
    )


def _controller_python(entry: pwd.struct_passwd) -> tuple[str, dict[str, str]]:
    """An interpreter the controller user may run that imports the project's packages: the
    environment's own, else the system's of the same version with the environment's packages
    (a virtual environment made from an interpreter under /root is not runnable by others).
    The probe runs from the user's home, where Ansible runs a controller-side command.

    The collector installs under its own import name (`ingester_capture`, source `collector/`):
    the environment's editable install maps one to the other with a .pth file, which only the
    environment's own interpreter reads. For the system's interpreter a folder in the user's
    home holds the same mapping as a link."""
    shim = Path(entry.pw_dir) / "packages"
    shim.mkdir(exist_ok=True)
    link = shim / "ingester_capture"
    if not link.is_symlink():
        link.symlink_to(REPO / "collector", target_is_directory=True)
    env = ansible_env(
        {
            "HOME": entry.pw_dir,
            "USER": entry.pw_name,
            "LOGNAME": entry.pw_name,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.pop("PYTHONPATH", None)
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    tried = []
    for python, extra in (
        (sys.executable, {}),
        # The checkout too: the environment's editable install of it is a .pth file, which only
        # the environment's own interpreter reads.
        (
            f"/usr/bin/python{version}",
            {"PYTHONPATH": os.pathsep.join([sysconfig.get_paths()["purelib"], str(REPO), str(shim)])},
        ),
    ):
        try:
            probe = _as(entry, [python, "-c", "import ansible, jinja2, yaml, ingester_capture"], {**env, **extra})
        except OSError as exc:  # not executable by the user at all
            tried.append(f"{python}: {exc}")
            continue
        if probe.returncode == 0:
            return python, {**env, **extra}
        tried.append(f"{python}: {(probe.stderr or probe.stdout).strip()[-200:]}")
    pytest.fail(f"no Python the controller user {entry.pw_name} may run imports ansible: {tried}", pytrace=False)


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
def deploy_host(root: Path, user: str = "icdeploy", controller: str = "icctl") -> Iterator[DeployHost]:
    """Create the deploy user, its sshd and the controller user; remove everything afterwards."""
    if os.geteuid() != 0:
        pytest.fail("the deploy-user tests create users and a sudoers drop-in: run them as root", pytrace=False)
    for tool in ("sudo", "visudo", "useradd", "sshd"):
        _need(tool)
    dropin = SUDOERS_DIR / f"ingester-capture-test-{user}"
    for name in (user, controller):
        _remove_user(name, dropin)  # a run killed half-way left them behind
    proc: subprocess.Popen[bytes] | None = None
    control_dir: Path | None = None
    try:
        entry, ctl = _add_user(user), _add_user(controller)
        home, ctl_home = Path(entry.pw_dir), Path(ctl.pw_dir)

        # The controller's key, the deploy user's authorized key.
        keys = ctl_home / ".ssh"
        keys.mkdir(mode=0o700)
        client_key = keys / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(client_key)], check=True)
        control_dir = ctl_home / ".ansible-cp"
        control_dir.mkdir(mode=0o700)
        for path in (keys, client_key, client_key.with_suffix(".pub"), control_dir):
            os.chown(path, ctl.pw_uid, ctl.pw_gid)
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        authorized = ssh_dir / "authorized_keys"
        shutil.copy(client_key.with_suffix(".pub"), authorized)
        authorized.chmod(0o600)
        for path in (ssh_dir, authorized):
            os.chown(path, entry.pw_uid, entry.pw_gid)

        logs = root / "sudo-logs"
        logs.mkdir(mode=0o700)
        sudo_log, ctl_sudo_log = logs / f"{user}.log", logs / f"{controller}.log"
        rules = root / "sudoers"
        rules.write_text(
            f'Defaults:{user} logfile="{sudo_log}"\n'
            f'Defaults:{controller} logfile="{ctl_sudo_log}"\n'
            f"{user} ALL=(ALL) NOPASSWD:ALL\n"
        )
        rules.chmod(0o440)
        checked = subprocess.run(["visudo", "-cf", str(rules)], capture_output=True, text=True, check=False)
        assert checked.returncode == 0, f"visudo refused the drop-in: {checked.stdout}{checked.stderr}"
        shutil.copy(rules, dropin)
        dropin.chmod(0o440)

        host_key = root / "host_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
        proc, port = serve_sshd(
            root,
            host_key,
            [
                "AuthorizedKeysFile .ssh/authorized_keys",
                f"AllowUsers {user}",
                "PermitRootLogin no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes yes",
                "Subsystem sftp internal-sftp",
            ],
        )

        python, env = _controller_python(ctl)
        # The test's own ssh control sockets, so its teardown can close them.
        env["ANSIBLE_SSH_CONTROL_PATH_DIR"] = str(control_dir)
        yield DeployHost(
            sshd=Sshd(port=port, key=client_key, user=user),
            uid=entry.pw_uid,
            home=home,
            sudo_log=sudo_log,
            controller=Controller(
                user=controller,
                uid=ctl.pw_uid,
                gid=ctl.pw_gid,
                home=ctl_home,
                python=python,
                env=env,
                sudo_log=ctl_sudo_log,
            ),
        )
    finally:
        if control_dir is not None:
            _stop_control_masters(control_dir)
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for name in (user, controller):
            _remove_user(name, dropin)
