"""The host side touches nothing outside its work folder, whatever the data or a planted file says.

Each test drives the module code as a capture does (the seal's source snippets from a log line,
the atomic write every module uses, bundle_command run as Ansible runs a module) against an
adversary: a path in a panic location, a symlink planted where a temporary file will be made.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import struct
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path
from typing import Any

import pytest

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

    (out / "logs").mkdir(parents=True)
    (out / "logs" / "ingester.log").write_text(
        f"2026-01-01T00:00:00Z thread 'main' panicked at {secret}:2:1:\n"
        "2026-01-01T00:00:01Z thread 'main' panicked at src/leak.rs:2:1:\n"
    )
    seal.write_source(out, {"context": str(context), "commit": "abc"})
    index = json.loads((out / "source" / "index.json").read_text())

    # An absolute path outside the context, and a symlink in it that leads out: neither is read.
    assert index["snippets"] == []
    assert index["missing"] == [
        {"location": f"{secret}:2:1", "why": "not in the build context"},
        {"location": "src/leak.rs:2:1", "why": "not in the build context"},
    ]
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


# --- the controller's unpacking ------------------------------------------------------------------


def _member(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    return info.tobuf(tarfile.USTAR_FORMAT)


def _pad(size: int) -> bytes:
    return b"\0" * (-size % 512)


def _gzip_of_a_zero_member(path: Path, name: str, size: int) -> None:
    """A gzip'd tarball: a manifest, then ``name`` of ``size`` zero bytes. The zeros are deflated
    one MiB at a time with a full flush (the history reset), so every MiB deflates to the same
    bytes and is written as often as needed: a real tarball of ``size`` bytes, built in a second."""
    head = _member("manifest.json", 2) + b"{}" + _pad(2) + _member(name, size)
    tail = _pad(size) + b"\0" * 1024
    chunk = b"\0" * (1 << 20)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = deflate.compress(head) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(chunk) + deflate.flush(zlib.Z_FULL_FLUSH)
    assert size % len(chunk) == 0
    crc = zlib.crc32(head)
    for _ in range(size // len(chunk)):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(tail, crc)
    with path.open("wb") as handle:
        handle.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + first)
        for _ in range(size // len(chunk)):
            handle.write(block)
        handle.write(deflate.compress(tail) + deflate.flush())
        handle.write(struct.pack("<II", crc, (len(head) + size + len(tail)) & 0xFFFFFFFF))


@pytest.mark.parametrize(
    ("caps", "message"),
    [
        ({"max_bytes": 512 << 20}, "logs/ingester.log would unpack to 1073741824 bytes, more than the 536870912 bytes"),
        (
            {"max_bytes": 512 << 20, "max_member_bytes": 2 << 30},
            "the bundle would unpack to more than 536870912 bytes (the cap; logs/ingester.log alone is 1073741824 "
            "bytes): refused before anything was unpacked",
        ),
    ],
    ids=["member-cap", "total-cap"],
)
def test_a_small_tarball_that_would_unpack_to_a_gigabyte_is_refused_before_unpacking(
    tmp_path: Path, caps: dict[str, int], message: str
) -> None:
    from ansible_collections.rsky.ingester_capture.plugins.action.fetch_bundle import UnsafeBundle, unpack

    tarball = tmp_path / "bomb.tar.gz"
    _gzip_of_a_zero_member(tarball, "logs/ingester.log", 1 << 30)
    assert tarball.stat().st_size < 2 << 20
    dest = tmp_path / "bundle"

    with pytest.raises(UnsafeBundle) as refused:
        unpack(str(tarball), str(dest), **caps)

    assert message in str(refused.value)
    assert not dest.exists() or not any(dest.rglob("*")), "something was unpacked"


def test_a_large_pax_header_is_refused_before_tarfile_parses_it(tmp_path: Path) -> None:
    from ansible_collections.rsky.ingester_capture.plugins.action.fetch_bundle import UnsafeBundle, unpack

    # Digits without a record: the shape that makes tarfile's PAX parse quadratic (CVE-2024-6232).
    body = b"1" * 20000
    raw = _member("././@PaxHeader", len(body), tarfile.XHDTYPE) + body + _pad(len(body))
    raw += _member("manifest.json", 2) + b"{}" + _pad(2) + b"\0" * 1024
    tarball = tmp_path / "pax.tar.gz"
    tarball.write_bytes(gzip.compress(raw))

    with pytest.raises(UnsafeBundle, match=r"an extended header \(PAX\) of 20000 bytes, more than the 8192"):
        unpack(str(tarball), str(tmp_path / "bundle"))


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (lambda: _member("link", 0, tarfile.SYMTYPE), "link is a symlink"),
        (lambda: _member("hard", 0, tarfile.LNKTYPE), "hard is a hard link"),
        (lambda: _member("dev", 0, tarfile.CHRTYPE), "dev is a character device"),
        (lambda: _member("/etc/cron.d/x", 0), "/etc/cron.d/x would land outside"),
        (lambda: _member("a/../../x", 0), "a/../../x would land outside"),
        (
            lambda: _member("././@PaxHeader", 22, tarfile.XHDTYPE) + b"22 path=../../outside\n" + _pad(22)
            + _member("innocent", 0),
            "../../outside would land outside",
        ),
        (
            lambda: _member("././@LongLink", 12, tarfile.GNUTYPE_LONGNAME) + b"../x/../../y" + _pad(12)
            + _member("innocent", 0),
            "../x/../../y would land outside",
        ),
        (
            lambda: _member("././@PaxHeader", 9, tarfile.XHDTYPE) + b"99 a=b\n\0\0" + _pad(9) + _member("x", 0),
            "a malformed PAX extended header",
        ),
    ],
    ids=["symlink", "hardlink", "device", "absolute", "dotdot", "pax-path", "gnu-longname", "pax-malformed"],
)
def test_unsafe_members_are_refused_before_anything_is_unpacked(
    tmp_path: Path, member: Any, message: str
) -> None:
    from ansible_collections.rsky.ingester_capture.plugins.action.fetch_bundle import UnsafeBundle, unpack

    tarball = tmp_path / "b.tar.gz"
    tarball.write_bytes(gzip.compress(_member("first.txt", 2) + b"ok" + _pad(2) + member() + b"\0" * 1024))
    dest = tmp_path / "bundle"

    with pytest.raises(UnsafeBundle, match=re.escape(message)):
        unpack(str(tarball), str(dest))

    assert not (dest / "first.txt").exists(), "a member was unpacked before the refusal"


def test_a_sealed_bundle_unpacks_and_gets_its_sha256(tmp_path: Path) -> None:
    from ansible_collections.rsky.ingester_capture.plugins.action.fetch_bundle import unpack, write_sha256

    out = tmp_path / "work"
    (out / "logs").mkdir(parents=True)
    long_name = "source/" + "d" * 120 + "/main.rs#L1-L3.txt"
    (out / long_name).parent.mkdir(parents=True)
    (out / long_name).write_text("fn main() {}\n")
    (out / "logs" / "ingester.log").write_text("a line\n")
    tarball = tmp_path / "bundle.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(str(out), arcname=".")

    assert unpack(str(tarball), str(tmp_path / "bundle")) == 2
    digest = write_sha256(str(tarball))
    check = subprocess.run(["sha256sum", "-c", "bundle.tar.gz.sha256"], cwd=tmp_path, capture_output=True, check=False)
    assert check.returncode == 0 and len(digest) == 64
    assert (tmp_path / "bundle" / long_name).read_text() == "fn main() {}\n"


# --- the seal ships an allow-list ------------------------------------------------------------------

SECRET = "pl4nted-s3cret-77"  # noqa: S105 - a planted test secret


def _work_folder(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A capture's work folder as a window whose worker died leaves it: the merged files, and the
    raw follower copies in .follow/ that print the secret whole."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "docker-compose.yml").write_text(
        f"services:\n  ingester:\n    image: rsky-ingester:latest\n    environment:\n      REDIS_PASSWORD: {SECRET}\n"
    )
    out = tmp_path / "state" / "work" / "20260101T000000Z-capture"
    (out / "logs").mkdir(parents=True)
    (out / ".follow").mkdir()
    raw = f"2026-01-01T00:00:00.000000001Z Configuration: redis://:{SECRET}@redis:6379\n"
    (out / ".follow" / "run-001.stdout").write_text(raw)
    (out / ".follow" / "nested").mkdir()
    (out / ".follow" / "nested" / "copy.log").write_text(raw)
    (out / ".window-agent.log").write_text(raw)
    (out / "logs" / "ingester.log").write_text(raw)
    manifest.record_note(out, "logs/ingester.log", "merged")
    (out / "window.json").write_text(json.dumps({"phase": "done", "partial": "the worker (pid 7) died"}))
    args = {
        "project_dir": str(project),
        "compose_file": "docker-compose.yml",
        "state_dir": str(tmp_path / "state"),
        "work_dir": str(out),
        "tarball": str(out) + ".tar.gz",
        "container": "ingester-capture-test-no-such-container",
    }
    return out, args


def test_the_tarball_holds_exactly_the_files_the_manifest_names(tmp_path: Path) -> None:
    out, args = _work_folder(tmp_path)

    result = run_module("seal", args, tmp_path)

    assert result.get("changed"), result
    with tarfile.open(args["tarball"]) as tar:
        named = {os.path.normpath(m.name): m for m in tar.getmembers()}
        members = {name: tar.extractfile(m).read() for name, m in named.items() if m.isfile()}  # type: ignore[union-attr]
        kinds = {name for name, m in named.items() if not m.isfile()}
    document = json.loads(members["manifest.json"])
    assert set(members) == {f["path"] for f in document["files"]} | {"manifest.json"}
    assert not kinds, f"not a file: {kinds}"
    assert "logs/ingester.log" in members
    leaks = [name for name, data in members.items() if SECRET.encode() in data]
    assert not leaks, f"the raw secret is in {leaks}"
    # Hidden work files are never in the bundle, and are not kept once it is sealed.
    assert not [p for p in out.rglob("*") if p.name.startswith(".")], sorted(out.rglob(".*"))


def test_a_partial_bundle_says_so_and_why(tmp_path: Path) -> None:
    out, args = _work_folder(tmp_path)

    result = run_module("seal", dict(args, partial="Capture failed at 'Capture | Follow the window'"), tmp_path)

    document = json.loads((out / "manifest.json").read_text())
    assert document["partial"] is True and result["partial"] is True
    assert document["partial_reasons"] == [
        "Capture failed at 'Capture | Follow the window'",
        "the worker (pid 7) died",
    ]


def test_a_window_whose_merge_failed_makes_the_bundle_partial_on_the_normal_path(tmp_path: Path) -> None:
    out, args = _work_folder(tmp_path)
    (out / "window.json").write_text(
        json.dumps({"phase": "done", "ended_by": "deadline", "logs": {"error": "[Errno 28] No space left on device"}})
    )

    result = run_module("seal", args, tmp_path)

    assert result["partial"] is True
    assert result["partial_reasons"] == ["the merged log could not be written: [Errno 28] No space left on device"]
    with tarfile.open(args["tarball"]) as tar:
        assert not [n for n in tar.getnames() if os.path.normpath(n).startswith(".")]


def test_a_symlink_in_the_work_folder_is_neither_redacted_through_nor_shipped(tmp_path: Path) -> None:
    out, args = _work_folder(tmp_path)
    victim = tmp_path / "controller-secret.txt"
    victim.write_text(f"token {SECRET}\n")
    (out / "logs" / "linked.log").symlink_to(victim)

    run_module("seal", args, tmp_path)

    assert victim.read_text() == f"token {SECRET}\n", "redaction wrote through the symlink"
    with tarfile.open(args["tarball"]) as tar:
        assert "logs/linked.log" not in tar.getnames()


# --- a window whose worker died ------------------------------------------------------------------


def test_a_dead_worker_is_noticed_in_the_poll_and_its_followers_are_stopped(tmp_path: Path) -> None:
    """The worker and its follower as a window leaves them when the worker is SIGKILLed: the
    progress names both by pid and start time; the follower (a session of its own) lives on."""
    from ansible_collections.rsky.ingester_capture.plugins.module_utils import host_state, window

    out = tmp_path / "work"
    (out / window.FOLLOW_DIR).mkdir(parents=True)
    (out / window.FOLLOW_DIR / "run-001.stdout").write_text(
        f"2026-01-01T00:00:00.000000001Z Configuration: redis://:{SECRET}@redis:6379\n"
    )
    worker = subprocess.Popen(["sleep", "300"], start_new_session=True)
    follower = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        progress = {
            "phase": "capturing",
            "pid": worker.pid,
            "pid_start": host_state.process_start(worker.pid),
            "children": [[follower.pid, host_state.process_start(follower.pid)]],
            "started_epoch": 0,
        }
        (out / window.PROGRESS_FILE).write_text(json.dumps(progress))
        target = window.ComposeTarget(str(out / "compose.yml"), "ingester", "ingester-capture-test-no-such-container")
        window.write_config(out, window.WindowConfig(target=target))
        alive = window.status(out, 0.3)
        assert not alive["done"] and "worker_died" not in alive
        worker.kill()
        worker.wait()

        # A poll as long as a whole window ends as soon as it sees the death.
        polled = window.status(out, 3600)

        assert polled["worker_died"].startswith(f"the capture window's worker (pid {worker.pid}) died")
        assert follower.poll() is None, "status only reports; the stop ends the window"
        stopped = window.stop(out, 3600)
        assert follower.wait(timeout=30) == -9, "the follower the dead worker left was not stopped"
    finally:
        for proc in (worker, follower):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert stopped["done"] and stopped["ended_by"] == "worker died"
    record = json.loads((out / "window.json").read_text())
    assert record["partial"] == polled["worker_died"]
    # What the follower read is in the merged log; the raw copy is gone.
    assert SECRET in (out / "logs" / "ingester.log").read_text()
    assert not (out / window.FOLLOW_DIR).exists()
    assert manifest.records(out)["logs/ingester.log"]["logs"]["partial"] == polled["worker_died"]


def test_sealing_again_after_a_failed_fetch_ships_one_manifest(tmp_path: Path) -> None:
    out, args = _work_folder(tmp_path)
    run_module("seal", args, tmp_path)

    result = run_module("seal", dict(args, partial="Capture failed at 'Capture | Fetch the bundle'"), tmp_path)

    assert result["changed"], result
    with tarfile.open(args["tarball"]) as tar:
        names = [os.path.normpath(n) for n in tar.getnames()]
    assert names.count("manifest.json") == 1, names
    document = json.loads((out / "manifest.json").read_text())
    assert "manifest.json" not in {f["path"] for f in document["files"]}
    assert SECRET not in (out / "logs" / "ingester.log").read_text()


def test_the_next_window_stops_followers_a_dead_worker_left_when_no_play_ended_them(tmp_path: Path) -> None:
    from ansible_collections.rsky.ingester_capture.plugins.module_utils import host_state, window

    old = tmp_path / "work" / "20260101T000000Z-capture"
    old.mkdir(parents=True)
    worker = subprocess.Popen(["sleep", "300"], start_new_session=True)
    follower = subprocess.Popen(["sleep", "300"], start_new_session=True)
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        (old / window.PROGRESS_FILE).write_text(
            json.dumps(
                {
                    "phase": "capturing",
                    "pid": worker.pid,
                    "pid_start": host_state.process_start(worker.pid),
                    # The bystander's pid with another start time: a recycled pid is left alone.
                    "children": [[follower.pid, host_state.process_start(follower.pid)], [bystander.pid, "1"]],
                }
            )
        )
        worker.kill()
        worker.wait()

        assert window.stop_abandoned(tmp_path / "work") == 1

        assert follower.wait(timeout=30) == -9
        assert bystander.poll() is None
    finally:
        for proc in (worker, follower, bystander):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
