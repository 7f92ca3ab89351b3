"""Running the project's playbooks: a real ``ansible-playbook`` from the project's virtual
environment, with the repository's ansible.cfg, in the foreground or in the background."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.processes import alive, with_environ

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
ANSIBLE_PLAYBOOK = str(VENV_BIN / "ansible-playbook")
# Set in a background play's environment (and so inherited by all it starts), to find its processes.
MARKER = "INGESTER_CAPTURE_TEST_RUN"


@dataclass(frozen=True)
class PlayResult:
    """One ansible-playbook run: exit code and combined output."""

    rc: int
    out: str

    def bundle_dirs(self, dest: Path) -> list[Path]:
        return sorted(p for p in dest.glob("*/*") if p.is_dir())


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
    env: dict[str, str] | None = None,
) -> PlayResult:
    """Run ansible-playbook from the repository root (``env``: more environment for it); never
    raises on a failed play."""
    argv = [ANSIBLE_PLAYBOOK, "-i", str(inventory), playbook, *args]
    if extra_vars:
        argv += ["-e", json.dumps(dict(extra_vars))]
    proc = subprocess.run(
        argv,
        cwd=REPO,
        env=ansible_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return PlayResult(rc=proc.returncode, out=proc.stdout + proc.stderr)


def start_play(inventory: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [ANSIBLE_PLAYBOOK, "-i", str(inventory), "capture.yml", *args],
        cwd=REPO,
        env=ansible_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


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


class BackgroundPlay:
    """A playbook in the background, in a session of its own: its output read line by line as it
    comes; it and every process it starts on this machine findable (a marker in the environment
    they inherit); held and released as a whole, or killed as a whole."""

    def __init__(self, playbook: str, inventory: Path, *args: str) -> None:
        self.playbook = playbook
        self.marker = uuid.uuid4().hex
        self.proc = subprocess.Popen(
            [ANSIBLE_PLAYBOOK, "-i", str(inventory), playbook, *args],
            cwd=REPO,
            env=ansible_env({MARKER: self.marker}),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def seen(self, line: str) -> None:
        """Called with each line of output as it comes, before it is in ``lines``."""

    def ended(self) -> None:
        """Called once the output has ended."""

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.seen(line)
            self.lines.append(line)
        self.ended()

    @property
    def out(self) -> str:
        return "".join(self.lines)

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_for_line(self, pattern: re.Pattern[str], timeout: float = 400) -> str:
        """Wait until the play prints a line matching ``pattern``; return that line."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            lines = self.lines[:]
            for line in lines[seen:]:
                if pattern.search(line):
                    return line
            seen = len(lines)
            if not self.running() and not self.reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.playbook} never printed {pattern.pattern!r}:\n{self.out[-4000:]}")

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the play's process group (the play and its forks)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def hold(self) -> None:
        """Stop the play where it is (SIGSTOP), e.g. until another run has caught up."""
        self.signal(signal.SIGSTOP)

    def release(self) -> None:
        """Let a held play go on (SIGCONT)."""
        self.signal(signal.SIGCONT)

    def processes(self, state: Path | None = None) -> list[int]:
        """PIDs of this play and everything it started on this machine (the marker is inherited),
        and with ``state`` of every process whose argv names that folder."""
        return with_environ(f"{MARKER}={self.marker}".encode(), str(state).encode() if state else None)

    def kill_all(self, state: Path | None = None) -> list[int]:
        """SIGKILL the play first, then every process of its own, until none is left."""
        killed: list[int] = []
        for pid in [self.proc.pid, *self.processes(state)]:
            if pid not in killed:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
        for _ in range(50):
            left = [p for p in self.processes(state) if alive(p)]
            if not left:
                break
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.2)
        return killed

    def finish(self, timeout: float = 600) -> PlayResult:
        """Wait for the play to end (killed as a whole if it has not by ``timeout``)."""
        try:
            rc = self.proc.wait(timeout=timeout)
        finally:
            if self.running():
                self.kill_all()
        self.reader.join(30)
        return PlayResult(rc=rc, out=self.out)
