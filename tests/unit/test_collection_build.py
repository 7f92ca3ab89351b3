"""The built collection holds exactly what it ships, however used the checkout it is built from.

galaxy.yml names what the collection ships (manifest directives, an allow-list). The build runs on a
copy of the checkout that also holds what a used checkout has: ansible-lint's .ansible/ cache,
bytecode, captures, a venv, ansible-test's output. The tarball's members must be the allowed files
of the checkout, MANIFEST.json and FILES.json, nothing else.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# What the collection ships, written here independently of galaxy.yml (fnmatch patterns on the
# checkout's files; * crosses folders).
SHIPPED = (
    "README.md",
    "CHANGELOG.md",
    "LICENSE",
    "capture.yml",
    "meta/runtime.yml",
    "inventory/production.yml",
    "docs/*.md",
    "playbooks/*.yml",
    "roles/*.yml",
    "roles/*.j2",
    "plugins/*.py",
    "plugins/filter/*.yml",
    "tests/sanity/ignore-*.txt",
)
# What a used checkout holds beside its files.
LITTER = (
    ".ansible/collections/ansible_collections/ansible/posix/plugins/modules/acl.py",
    ".ansible/roles/geerlingguy.docker/tasks/main.yml",
    ".ansible/.lock",
    "plugins/modules/__pycache__/seal.cpython-311.pyc",
    "roles/capture/tasks/main.yml.orig",
    "captures/prod-1/20260101T000000Z-capture/report.md",
    ".venv/lib/python3.11/site-packages/x.py",
    "tests/output/bot/ansible-test-sanity-pylint.json",
    ".pytest_cache/v/cache/nodeids",
    "context-files/ingester_capture-0.1.0.tar.gz",
)


def _checkout_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted(p for p in listed.split("\0") if p and os.path.lexists(REPO / p))


def test_the_build_ships_exactly_the_allow_list(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    files = _checkout_files()
    for rel in files:
        dest = checkout / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest, follow_symlinks=False)
    for rel in LITTER:
        (checkout / rel).parent.mkdir(parents=True, exist_ok=True)
        (checkout / rel).write_text("litter\n")

    out = tmp_path / "out"
    built = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(checkout)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    with tarfile.open(out / f"rsky-ingester_capture-{version}.tar.gz") as tar:
        members = {m.name for m in tar.getmembers() if not m.isdir()}

    wanted = {rel for rel in files if any(fnmatch.fnmatch(rel, pattern) for pattern in SHIPPED)}
    assert {"plugins/modules/seal.py", "roles/capture/tasks/main.yml", "playbooks/capture.yml"} <= wanted
    assert members - {"MANIFEST.json", "FILES.json"} == wanted
    assert not any(m.startswith((".ansible/", "collector/", "tests/unit/")) for m in members)
