"""The host side touches nothing outside its work folder, whatever the data or a planted file says.

Each test drives the module code as a capture does (the seal's source snippets from a log line,
the atomic write every module uses, bundle_command run as Ansible runs a module) against an
adversary: a path in a panic location, a symlink planted where a temporary file will be made.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / "collections"
sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.rsky.ingester_capture.plugins.module_utils import manifest  # noqa: E402
from ansible_collections.rsky.ingester_capture.plugins.modules import seal  # noqa: E402

MODULES = REPO / "plugins" / "modules"


def run_module(name: str, args: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Run a module of the collection the way Ansible runs it on a host: a process, its arguments in a file."""
    args_file = tmp_path / f"{name}-args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    proc = subprocess.run(
        [sys.executable, str(MODULES / f"{name}.py"), str(args_file)],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(COLLECTIONS)),
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


# --- no path from data -------------------------------------------------------------------------


def _context(tmp_path: Path) -> Path:
    context = tmp_path / "ctx"
    (context / "src").mkdir(parents=True)
    (context / "src" / "main.rs").write_text("fn main() {\n    panic!(\"boom\");\n}\n")
    return context


def _seal_source(out: Path, context: Path, location: str) -> dict[str, Any]:
    (out / "logs").mkdir(parents=True)
    (out / "logs" / "ingester.log").write_text(
        f"2026-01-01T00:00:00Z thread 'main' panicked at {location}:\n"
    )
    seal.write_source(out, {"context": str(context), "commit": "abc"})
    index: dict[str, Any] = json.loads((out / "source" / "index.json").read_text())
    return index


def test_a_panic_location_that_climbs_out_writes_nothing_outside_the_work_folder(tmp_path: Path) -> None:
    context = _context(tmp_path)
    out = tmp_path / "work" / "20260101T000000Z-capture"
    before = files_under(tmp_path)
    # Enough '..' to reach '/', then the context's own absolute path: inside the context once
    # resolved, but the bundle name built from the text would climb out of the work folder.
    climb = "x/" + "../" * (len(context.parts) + len(out.parts) + 4) + str(context.relative_to("/")) + "/src/main.rs"

    index = _seal_source(out, context, climb + ":2:5")

    written = files_under(tmp_path) - before
    outside = [p for p in written if out not in p.parents]
    assert not outside, f"the seal wrote outside the work folder: {outside}"
    assert not [s for s in index["snippets"] if s["kind"] == "panic"], index
    assert index["missing"] == [{"location": climb + ":2:5", "why": "a path with '..' is not followed"}]


def test_a_symlink_in_the_context_that_leaves_it_is_not_followed(tmp_path: Path) -> None:
    context = _context(tmp_path)
    secret = tmp_path / "elsewhere" / "key.rs"
    secret.parent.mkdir()
    secret.write_text("line one\nTHE-CONTROLLER-SECRET\n")
    (context / "src" / "leak.rs").symlink_to(secret)
    out = tmp_path / "work"

    index = _seal_source(out, context, "src/leak.rs:2:1")

    assert index["missing"] == [{"location": "src/leak.rs:2:1", "why": "not in the build context"}]
    assert not any("THE-CONTROLLER-SECRET" in p.read_text() for p in out.rglob("*") if p.is_file())


def test_a_path_built_elsewhere_is_named_by_its_file_in_the_context(tmp_path: Path) -> None:
    context = _context(tmp_path)
    out = tmp_path / "work"

    index = _seal_source(out, context, "/usr/src/app/src/main.rs:2:5")

    (panic,) = index["snippets"]
    assert panic["path"] == "src/main.rs" and panic["file"] == "source/src/main.rs#L1-L3.txt"
    assert (out / panic["file"]).read_text().splitlines()[1] == '    panic!("boom");'


def test_atomic_write_never_follows_a_planted_symlink(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    victim.chmod(0o644)
    target = folder / "swap.json"
    # Where the temporary file used to be made (a name anyone could predict), and the target.
    (folder / f".swap.json.{os.getpid()}.tmp").symlink_to(victim)
    other = folder / "lock"
    other.symlink_to(victim)

    manifest.write_atomic(target, b"new\n", 0o600)
    manifest.write_atomic(other, b"mine\n", 0o600)

    assert victim.read_text() == "untouched\n" and victim.stat().st_mode & 0o777 == 0o644
    assert target.read_bytes() == b"new\n" and not target.is_symlink()
    assert other.read_bytes() == b"mine\n" and not other.is_symlink()
    assert target.stat().st_mode & 0o777 == 0o600
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp") and not p.is_symlink()]


def test_the_command_record_refuses_a_planted_symlink(tmp_path: Path) -> None:
    out = tmp_path / "work"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    (out / manifest.COMMANDS_FILE).symlink_to(victim)

    with contextlib.suppress(OSError):
        manifest.record_note(out, "x.txt", "a note")

    assert victim.read_text() == "untouched\n"


def test_bundle_command_file_stays_in_the_work_folder(tmp_path: Path) -> None:
    work = tmp_path / "state" / "work" / "w"
    work.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (work / "out").symlink_to(outside)
    base = {
        "project_dir": str(tmp_path / "project"),
        "state_dir": str(tmp_path / "state"),
        "work_dir": str(work),
        "argv": ["echo", "ran"],
    }
    for name in ("../escape.log", str(tmp_path / "abs.log"), "out/build.log"):
        result = run_module("bundle_command", dict(base, file=name), tmp_path)
        assert result.get("failed") and "nothing was run" in result["msg"], (name, result)
    assert not list(outside.iterdir()) and not (tmp_path / "state" / "work" / "escape.log").exists()
    assert not (tmp_path / "abs.log").exists()
    # Inside, it runs as before.
    result = run_module("bundle_command", dict(base, file="build/build.log"), tmp_path)
    assert result["rc"] == 0 and "ran" in (work / "build" / "build.log").read_text()
