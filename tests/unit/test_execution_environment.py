"""The execution environment's build context is complete: every file it names exists.

The collection tarball and the collector's sdist are built the way execution-environment.yml's
header says, into context-files/ beside a copy of the file; `ansible-builder create` (which needs
no network) writes the build context, and every file the context names must be in it: the
Containerfile's COPY sources, and the /build/ paths its requirement files install from.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(argv: list[str], cwd: Path) -> str:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _stages(containerfile: str) -> dict[str, list[str]]:
    """The Containerfile's lines by build stage (FROM ... AS name)."""
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in containerfile.splitlines():
        m = re.match(r"^FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if m:
            current = stages.setdefault(m.group(1), [])
        current.append(line)
    return stages


def test_ansible_builder_create_finds_every_file(tmp_path: Path) -> None:
    work = tmp_path / "ee"
    files = work / "context-files"
    files.mkdir(parents=True)
    shutil.copy2(REPO / "execution-environment.yml", work / "execution-environment.yml")
    _run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(files), str(REPO)], tmp_path)
    # The sdist from a copy of the package, so that nothing is written into the checkout.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, src / name)
    for package in sorted({p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests", "benchmarks"}):
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(files), str(src)], tmp_path)

    context = work / "context"
    _run(
        [str(BIN / "ansible-builder"), "create", "-f", "execution-environment.yml", "-c", str(context), "-v", "1"],
        work,
    )
    # Dockerfile or Containerfile, as ansible-builder picks its runtime.
    containerfile = next(p for p in context.iterdir() if p.name in {"Containerfile", "Dockerfile"}).read_text()
    stages = _stages(containerfile)
    assert {"galaxy", "builder", "final"} <= set(stages), sorted(stages)

    ee = yaml.safe_load((work / "execution-environment.yml").read_text())
    python = [n for n in ee["dependencies"]["python"] if n.startswith("/")]
    collections = [c["name"] for c in ee["dependencies"]["galaxy"]["collections"] if c["name"].startswith("/")]
    assert python and collections
    requirements = (context / "_build" / "requirements.txt").read_text()
    assert all(path in requirements for path in python)
    # Every file a stage copies from the context exists, and each stage that installs from a path
    # has that path: galaxy installs the collections, builder and final the Python requirements.
    needs = {"galaxy": collections, "builder": python, "final": python}
    for stage, lines in stages.items():
        provided: set[str] = set()
        for line in lines:
            m = re.match(r"^(?:COPY|ADD)\s+(?!--from)(\S+)\s+(\S+)\s*$", line)
            if not m:
                continue
            src, dst = context / m.group(1), m.group(2)
            assert src.exists(), f"stage {stage} copies {m.group(1)}, which the build context does not have"
            if src.is_dir():
                provided |= {f"{dst.rstrip('/')}/{f.relative_to(src)}" for f in src.rglob("*") if f.is_file()}
            else:
                provided.add(dst)
        for path in needs.get(stage, []):
            assert path in provided, f"stage {stage} installs {path}, which no COPY puts there"

    # The one ansible-core range.
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())["requires_ansible"]
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'"ansible-core{runtime}"' in pyproject
    assert ee["dependencies"]["ansible_core"]["package_pip"] == f"ansible-core{runtime}"
