"""The collection and the package install anywhere, and without the package nothing is touched.

The collection is built (``ansible-galaxy collection build``) and installed into a collections
path outside the checkout; the package is installed from a copy of its sources into a fresh venv
(``pip --python VENV install --no-deps --no-build-isolation``). ansible-playbook runs with that
venv's Python (``python -m ansible playbook``), so ``capture_collector_command``'s default, that
Python's ``-m`` collector, is the installed package, from a folder outside the checkout, without
the checkout's ansible.cfg or PYTHONPATH, against a stand-in stack.

The venv gets its other dependencies (ansible-core, Jinja2, ...) from the test's own environment
through a ``.pth`` line; a path a ``.pth`` line adds is not searched for ``.pth`` hooks, so the
checkout's editable install stays out of it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml

from standin.stack import Stack
from tests.support.inventories import write_inventory
from tests.support.playbooks import REPO

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
VERSION = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]


def run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
    )


def controller(tmp: Path, *, with_package: bool) -> tuple[Path, dict[str, str]]:
    """A fresh venv (its Python) and an environment with the built collection installed for it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PYTHON"))}
    collections = tmp / "collections"
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": str(collections),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
            "HOME": str(tmp / "home"),
        }
    )
    built = run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp), str(REPO)], tmp, env)
    assert built.returncode == 0, built.stdout + built.stderr
    tarball = tmp / f"rsky-ingester_capture-{VERSION}.tar.gz"
    installed = run(
        [str(BIN / "ansible-galaxy"), "collection", "install", "-p", str(collections), str(tarball)], tmp, env
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr

    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp, env).stdout
    (Path(purelib.strip()) / "_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    if with_package:
        src = tmp / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            shutil.copy2(REPO / name, src / name)
        for package in sorted({p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests", "benchmarks"}):
            shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        pip = run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(python),
                "install",
                "--no-deps",
                "--no-build-isolation",
                "--quiet",
                str(src),
            ],
            tmp,
            env,
        )
        assert pip.returncode == 0, pip.stdout + pip.stderr
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    return python, env


def test_installed_collection_and_package_run_capture_by_fqcn(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]
) -> None:
    dest, state = capture_paths
    python, env = controller(tmp_path, with_package=True)
    root = tmp_path / "collections" / "ansible_collections" / "rsky" / "ingester_capture"
    assert (root / "playbooks" / "capture.yml").is_file() and (root / "plugins" / "action" / "follow.py").is_file()
    assert not (root / "tests" / "unit").exists() and not (root / "collector").exists()
    work = tmp_path / "elsewhere"
    work.mkdir()

    stack: Stack = stack_factory("hypothetical-task-error", exit_after_ms=1500)
    stack.up()
    inventory = write_inventory(work / "inv.yml", stack, dest=dest, state=state)
    play = run(
        [str(python), "-m", "ansible", "playbook", "-i", str(inventory), "rsky.ingester_capture.capture"], work, env
    )

    out = play.stdout + play.stderr
    assert play.returncode == 0, out[-4000:]
    # Nothing of the play comes from the checkout. The test venv lends its installed libraries
    # (ansible among them) through a .pth file, so a library's own warning may name that path.
    from_checkout = [line for line in out.splitlines() if str(REPO) in line and "site-packages" not in line]
    assert not from_checkout, from_checkout[:5]
    assert "Controller | Stop unless the collector is this collection's version" in out
    bundle = next(p for p in dest.glob("testhost/*") if p.is_dir())
    # The answer key: the stand-in's labeler task returns an error.
    assert json.loads((bundle / "report.json").read_text())["verdict"]["scenario"] == "task-error"
    assert stack.inspect()["Config"]["Image"] == stack.debug_image


def test_without_the_package_the_play_stops_in_its_first_play(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]
) -> None:
    dest, state = capture_paths
    python, env = controller(tmp_path, with_package=False)
    work = tmp_path / "elsewhere"
    work.mkdir()
    stack: Stack = stack_factory("hypothetical-task-error", exit_after_ms=1500)
    stack.up()
    compose = (stack.project_dir / stack.compose_file).read_bytes()
    before = stack.inspect()
    inventory = write_inventory(work / "inv.yml", stack, dest=dest, state=state)

    play = run(
        [str(python), "-m", "ansible", "playbook", "-i", str(inventory), "rsky.ingester_capture.capture"], work, env
    )

    out = play.stdout + play.stderr
    assert play.returncode != 0, out[-4000:]
    assert "The collector does not run on this controller" in out, out[-4000:]
    assert "No module named" in out
    # The first play (on the controller) stopped it: no play on the host began.
    assert "PLAY [Check that the inventory names a host to capture]" in out
    assert "PLAY [Capture and diagnose" not in out, out[-4000:]
    # The host untouched: the same container on the production image, its compose file as it
    # was, no state folder, no debug image.
    after = stack.inspect()
    assert after["Id"] == before["Id"] and after["Config"]["Image"] == before["Config"]["Image"]
    assert after["RestartCount"] >= before["RestartCount"]
    assert (stack.project_dir / stack.compose_file).read_bytes() == compose
    assert not state.exists()
    images = subprocess.run(["docker", "image", "inspect", stack.debug_image], capture_output=True, check=False)
    assert images.returncode != 0
    assert not any(dest.iterdir())
