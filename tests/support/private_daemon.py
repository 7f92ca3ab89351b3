"""A dockerd of the test's own (its own data root, exec root, socket and pidfile), for the tests
that take a daemon away: never the shared engine (tests/README.md)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from standin.stack import PROD_IMAGE, standin_image
from tests.support.playbooks import REPO
from tests.support.processes import pids_mentioning

# Run inside a private mount namespace: a systemd-journald of our own (its sockets and journal on
# tmpfs that only this namespace sees; the machine's /var/log/journal is masked too), then dockerd.
JOURNALD_BOOT = """set -e
mkdir -p /run/log
mount -t tmpfs tmpfs /run/systemd
mount -t tmpfs tmpfs /run/log
if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi
mkdir -p /run/systemd/journal
/lib/systemd/systemd-journald >"$1/journald.log" 2>&1 </dev/null &
echo $! >"$1/journald.pid"
for i in $(seq 1 50); do [ -S /run/systemd/journal/socket ] && break; sleep 0.1; done
shift
exec "$@"
"""
JOURNALD = Path("/lib/systemd/systemd-journald")


class PrivateDaemon:
    """A dockerd of the test's own; started and stopped by its pid, never by name. With
    ``journald`` it runs in a mount namespace of its own beside a systemd-journald of its own:
    run a command there with :meth:`inside`."""

    def __init__(self, root: Path, journald: bool = False) -> None:
        self.root = root
        self.journald = journald
        self.sock = root / "docker.sock"
        self.host = f"unix://{self.sock}"
        self.pidfile = root / "dockerd.pid"
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {**os.environ, "DOCKER_HOST": self.host}

    def argv(self, live_restore: bool) -> list[str]:
        return [
            "dockerd",
            "--data-root",
            str(self.root / "data"),
            "--exec-root",
            str(self.root / "exec"),
            "--pidfile",
            str(self.pidfile),
            "-H",
            self.host,
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            *(["--live-restore"] if live_restore else []),
        ]

    def docker(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", *args], env=self.env, capture_output=True, text=True, check=check, timeout=timeout
        )

    def answers(self) -> bool:
        return self.docker("version", "--format", "{{.Server.Version}}", check=False, timeout=10).returncode == 0

    def start(self, live_restore: bool = False) -> float:
        """Start it; the time it first answered."""
        # A network namespace of its own: a dockerd started with --bridge=none deletes the host's
        # docker0 (the shared engine's default bridge, which every other test's build needs).
        argv = ["unshare", "--net", *self.argv(live_restore)]
        if self.journald:
            # unshare and the shell exec: the pid is dockerd's.
            argv = ["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", JOURNALD_BOOT, "sh"]
            argv += [str(self.root), *self.argv(live_restore)]
        with (self.root / "dockerd.log").open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.answers():
                return time.time()
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        log_tail = (self.root / "dockerd.log").read_text(errors="replace")[-2000:]
        raise AssertionError(f"the private dockerd did not start: {log_tail}")

    def inside(self) -> list[str]:
        """argv prefix that runs a command in the daemon's mount namespace (where its journald is)."""
        assert self.proc is not None
        return ["nsenter", f"--mount=/proc/{self.proc.pid}/ns/mnt", f"--wd={REPO}", "--"]

    def stop(self, timeout: float = 90) -> float:
        """SIGTERM and wait until it is gone; the time it was gone."""
        if self.proc is None or self.proc.poll() is not None:
            return time.time()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        return time.time()

    def cleanup(self) -> None:
        """Every container removed, the daemon stopped, its mounts undone, its folders removed."""
        if self.proc is not None and self.proc.poll() is None:
            ids = self.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                self.docker("rm", "-f", "-v", *ids, check=False)
        self.stop()
        journald = self.root / "journald.pid"
        if journald.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(journald.read_text().strip()), signal.SIGTERM)
        # Its containerd and shims end with it; anything left under our root is ours to end.
        for pid in pids_mentioning(str(self.root)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        mounts = [
            line.split()[1]
            for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(str(self.root))
        ]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def private_daemon_for(journald: bool) -> Iterator[PrivateDaemon]:
    """A private dockerd with the stand-in's production image loaded; removed afterwards."""
    if shutil.which("dockerd") is None:
        pytest.fail("dockerd is not installed: run scripts/setup.sh test", pytrace=False)
    if journald and not JOURNALD.exists():
        pytest.fail(f"{JOURNALD} is missing: run scripts/setup.sh test (systemd)", pytrace=False)
    # A short path: the daemon's and containerd's unix sockets live under it (108 bytes at most).
    daemon = PrivateDaemon(Path(tempfile.mkdtemp(prefix="icd-", dir="/tmp")), journald=journald)
    try:
        daemon.start()
        tag = standin_image()  # on the main engine: a tag no other checkout re-points
        with subprocess.Popen(["docker", "save", tag], stdout=subprocess.PIPE) as save:
            load = subprocess.run(
                ["docker", "load"], stdin=save.stdout, env=daemon.env, capture_output=True, check=False, timeout=120
            )
        assert load.returncode == 0 and save.returncode == 0, load.stderr
        daemon.docker("tag", tag, PROD_IMAGE)
        yield daemon
    finally:
        daemon.cleanup()
