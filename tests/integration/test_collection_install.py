"""The collection installs anywhere: built, installed into a temporary collections path, run by FQCN.

``ansible-galaxy collection build`` and ``install -p``, then ``ansible-playbook
rsky.ingester_capture.capture`` from a folder outside the checkout, without the checkout's
ansible.cfg, against a stand-in stack.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from standin.stack import Stack
from tests.integration.conftest import REPO, write_inventory

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def clean_env(collections: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": str(collections),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    return env


def run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
    )


def test_built_and_installed_collection_runs_capture_by_fqcn(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]
) -> None:
    dest, state = capture_paths
    work = tmp_path / "elsewhere"
    work.mkdir()
    collections = tmp_path / "collections"
    env = clean_env(collections)

    built = run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path)], REPO, env)
    assert built.returncode == 0, built.stdout + built.stderr
    tarball = tmp_path / "rsky-ingester_capture-0.1.0.tar.gz"
    installed = run(
        [str(BIN / "ansible-galaxy"), "collection", "install", "-p", str(collections), str(tarball)], work, env
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    root = collections / "ansible_collections" / "rsky" / "ingester_capture"
    assert (root / "playbooks" / "capture.yml").is_file() and (root / "plugins" / "action" / "follow.py").is_file()
    assert not (root / "tests").exists() and not (root / "collector").exists()

    stack: Stack = stack_factory("hypothetical-task-error", exit_after_ms=1500)
    stack.up()
    inventory = write_inventory(work / "inv.yml", stack, dest=dest, state=state)
    play = run([str(BIN / "ansible-playbook"), "-i", str(inventory), "rsky.ingester_capture.capture"], work, env)

    out = play.stdout + play.stderr
    assert play.returncode == 0, out[-4000:]
    assert "Using " not in out or str(REPO / "ansible.cfg") not in out
    bundle = next(p for p in dest.glob("testhost/*") if p.is_dir())
    # The answer key: the stand-in's labeler task returns an error.
    assert json.loads((bundle / "report.json").read_text())["verdict"]["scenario"] == "task-error"
    assert stack.inspect()["Config"]["Image"] == stack.debug_image
