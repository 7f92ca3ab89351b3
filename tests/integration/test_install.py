"""The collector installs anywhere: a non-editable install into a fresh venv, run from outside the checkout.

The package is copied out of the checkout (pyproject.toml, README, collector/) and installed with
`pip --python NEWVENV install --no-deps`, so nothing is built in the checkout and nothing of it is
on the new venv's path. pip builds it the ordinary way, in an isolated build environment (the
build backend, setuptools, comes from the package index or pip's cache). Its dependencies come
from the test's own environment through a `.pth` line; a `.pth` line adds a path, never that
path's own `.pth` hooks, so the checkout's editable install stays out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from collector.exitcodes import Exit

REPO = Path(__file__).resolve().parents[2]
LOG = REPO / "tests" / "fixtures" / "logs" / "handmade-redis-url-debug.docker-ts.log"

pytestmark = pytest.mark.integration


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "collector", src / "collector", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp, {}).stdout
    (Path(purelib.strip()) / "_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {"PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin", "HOME": str(tmp / "home"), "LANG": "C.UTF-8"}
    pip = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--quiet",
            str(src),
        ],
        tmp,
        {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    return venv, env


def test_the_package_is_the_installed_copy_with_its_templates(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    venv, env = installed
    # Its import name is its own: ingester_capture, not the checkout folder's name.
    where = _run(
        [str(venv / "bin" / "python"), "-c", "import ingester_capture; print(ingester_capture.__file__)"], tmp_path, env
    )
    assert where.returncode == 0, where.stderr
    other = _run([str(venv / "bin" / "python"), "-c", "import collector"], tmp_path, env)
    assert "No module named 'collector'" in other.stderr, other.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout
    templates = Path(where.stdout.strip()).parent / "report" / "templates"
    assert {"report.md.j2", "report.html.j2", "fleet.md.j2", "verify.md.j2"} <= {p.name for p in templates.iterdir()}


def test_summarize_from_outside_the_checkout(installed: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    venv, env = installed
    log = tmp_path / "ingester.log"
    shutil.copy2(LOG, log)
    expected = json.loads(LOG.with_name(LOG.name.removesuffix(".log") + ".expected.json").read_text())

    run = _run([str(venv / "bin" / "ingester-collector"), "summarize", "--log", str(log)], tmp_path, env)

    assert run.returncode == Exit.CRASH_LOOP, run.stderr
    assert "Traceback" not in run.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["verdict"]["scenario"] == expected["scenario"] == "config-error"
    assert (tmp_path / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert "REDIS_URL" in run.stdout


def test_verify_run_help_and_what_to_install(installed: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    venv, env = installed
    script = str(venv / "bin" / "ingester-verify-run")

    helped = _run([script, "--help"], tmp_path, env)
    assert helped.returncode == Exit.OK, helped.stderr
    assert "--inventory" in helped.stdout and "--project" in helped.stdout

    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  hosts:\n    nowhere:\n")
    nothing = {**env, "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "no-collections")}
    missing = _run([script, "-i", str(inventory), "--artifacts", str(tmp_path / "runs")], tmp_path, nothing)
    assert missing.returncode == Exit.NOT_INSTALLED, missing.stdout + missing.stderr
    assert missing.stderr.count("\n") == 1, missing.stderr
    assert "rsky.ingester_capture" in missing.stderr and "ansible-galaxy collection install" in missing.stderr


def test_verify_run_runs_the_installed_collections_playbook(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """Built and installed with ansible-galaxy, verify.yml is found there and run (here: no verdict)."""
    venv, env = installed
    galaxy = str(Path(sys.executable).parent / "ansible-galaxy")
    shared_bin = str(Path(sys.executable).parent)
    work = tmp_path / "build"
    work.mkdir()
    build = _run([galaxy, "collection", "build", str(REPO), "--output-path", str(work)], tmp_path, dict(os.environ))
    assert build.returncode == 0, build.stdout + build.stderr
    tarball = next(work.glob("rsky-ingester_capture-*.tar.gz"))
    cols = tmp_path / "collections"
    inst = _run([galaxy, "collection", "install", str(tarball), "-p", str(cols)], tmp_path, dict(os.environ))
    assert inst.returncode == 0, inst.stdout + inst.stderr

    inventory = tmp_path / "inv.yml"
    inventory.write_text(
        "all:\n  children:\n    ingester_hosts:\n      hosts:\n        unreachable:\n"
        "          ansible_host: 127.0.0.1\n          ansible_port: 9\n"
        "          ansible_ssh_common_args: -o ConnectTimeout=3 -o StrictHostKeyChecking=no\n"
    )
    run_env = {**env, "PATH": f"{env['PATH']}{os.pathsep}{shared_bin}", "ANSIBLE_COLLECTIONS_PATH": str(cols)}
    script = str(venv / "bin" / "ingester-verify-run")
    run = _run([script, "-i", str(inventory), "--artifacts", str(tmp_path / "runs")], tmp_path, run_env)

    assert run.returncode == Exit.NO_VERDICT, run.stdout + run.stderr
    assert run.stdout.startswith("verify ERROR: unreachable no verdict"), run.stdout
    events = list((tmp_path / "runs").glob("*/artifacts/*/job_events/*.json"))
    played = [json.loads(p.read_text()).get("event_data", {}).get("playbook", "") for p in events]
    assert any(str(cols) in p or "ingester_capture/playbooks/verify.yml" in p for p in played), played[:3]
