"""Fixtures for tests that run ansible-playbook: a real sshd on 127.0.0.1, a capture's folders.

The helpers these tests share (running a playbook, writing an inventory, starting an sshd) are
in tests/support/ and imported from there.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.sshd import Sshd, start_sshd


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


@pytest.fixture
def capture_paths(tmp_path: Path) -> tuple[Path, Path]:
    """(controller bundle dest, host state dir) for one test."""
    dest, state = tmp_path / "captures", tmp_path / "state"
    dest.mkdir()
    return dest, state
