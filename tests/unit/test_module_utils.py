"""The collection's module_utils on their own: the host-state contract, redaction, source snippets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.rsky.ingester_capture.plugins.module_utils import compose_text, host_state, source  # noqa: E402
from ansible_collections.rsky.ingester_capture.plugins.module_utils.redact import Redactor  # noqa: E402
from ansible_collections.rsky.ingester_capture.plugins.module_utils.timeparse import line_ns, parse_epoch  # noqa: E402


def test_state_key_is_the_documented_hash() -> None:
    import hashlib

    key = host_state.state_key("/srv/atproto", "docker-compose.yml", "ingester")
    assert key == hashlib.sha256(b"/srv/atproto/docker-compose.yml:ingester").hexdigest()[:12]


def test_lock_refuses_a_live_owner_and_takes_over_a_dead_window(tmp_path: Path) -> None:
    state = tmp_path / "key"
    host_state.lock_acquire(state, "capture-1", "capture", ttl=600)
    with pytest.raises(host_state.LockedError, match="another capture holds the lock"):
        host_state.lock_acquire(state, "rollback-1", "rollback", ttl=600)
    assert host_state.lock_check(state)["held"]
    # The window that names itself in the lock dies: the lock is stale, and taken over.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    host_state.lock_attach(state, "capture-1", dead.pid, until=9e12)
    dead.wait()
    check = host_state.lock_check(state)
    assert not check["held"] and "no longer running" in check["stale"]
    taken = host_state.lock_acquire(state, "rollback-1", "rollback", ttl=600)
    assert "capture-1" in taken["broke"]
    assert host_state.lock_release(state, "rollback-1")["released"]
    assert not (state / "lock").exists()


def test_a_live_window_keeps_the_lock(tmp_path: Path) -> None:
    state = tmp_path / "key"
    host_state.lock_acquire(state, "capture-1", "capture", ttl=1)
    host_state.lock_attach(state, "capture-1", os.getpid(), until=0)
    assert host_state.lock_check(state)["held"], "a live window holds even past its time to live"


def test_a_killed_build_frees_the_lock_and_a_finished_one_keeps_it(tmp_path: Path) -> None:
    state = tmp_path / "key"
    ended = tmp_path / "build.rc"
    host_state.lock_acquire(state, "capture-1", "capture", ttl=600)
    build = subprocess.Popen([sys.executable, "-c", "pass"])
    host_state.lock_attach(state, "capture-1", build.pid, role="debug build", ended_file=ended)
    build.wait()
    # Gone without writing its end: killed with its capture.
    check = host_state.lock_check(state)
    assert not check["held"] and "debug build" in check["stale"] and "no longer running" in check["stale"]
    # Ended by itself (it wrote its exit code): the capture goes on, the lock holds by its TTL.
    ended.write_text("0\n")
    assert host_state.lock_check(state)["held"]
    # The window names itself next: its own death frees the lock whatever the build left.
    window = subprocess.Popen([sys.executable, "-c", "pass"])
    host_state.lock_attach(state, "capture-1", window.pid, until=9e12)
    window.wait()
    assert "capture window" in host_state.lock_check(state)["stale"]


def test_swap_text_changes_one_line_only() -> None:
    text = 'services:\n  ingester:\n    image: "rsky-ingester:latest"  # prod\n    environment:\n      A: b\n'
    swapped, original = compose_text.swap_text(text, "ingester", "rsky-ingester:debug")
    assert original == "rsky-ingester:latest"
    assert swapped == text.replace("rsky-ingester:latest", "rsky-ingester:debug")


def test_restore_refuses_an_edited_file_and_a_corrupt_backup(tmp_path: Path) -> None:
    state, compose = tmp_path / "key", tmp_path / "compose.yml"
    state.mkdir()
    original, swapped = b"services:\n  x:\n    image: a\n", b"services:\n  x:\n    image: b\n"
    compose.write_bytes(swapped + b"# edit\n")
    (state / "compose.orig").write_bytes(original)
    record = {k: "" for k in host_state.SWAP_KEYS}
    record.update(compose_path=str(compose), service="x", original_image="a", debug_image="b")
    record.update(sha256_orig=host_state.sha256_bytes(original), sha256_swapped=host_state.sha256_bytes(swapped))
    (state / "swap.json").write_text(json.dumps(record))
    only = host_state.RestoreTargets((compose,), (compose.parent,))
    with pytest.raises(host_state.StateError, match=r"changed after capture\.yml swapped it"):
        host_state.plan_restore(state, compose, "x", force=False, allowed=only)
    assert host_state.plan_restore(state, compose, "x", force=True, allowed=only).file_state == "edited"
    (state / "compose.orig").write_bytes(b"other\n")
    with pytest.raises(host_state.StateError, match="cannot be trusted"):
        host_state.plan_restore(state, compose, "x", force=True, allowed=only)


def test_structured_secrets_with_spaces_and_quotes_are_caught() -> None:
    redactor = Redactor()
    redactor.learn_compose_config(
        {"services": {"db": {"profiles": ["ops"], "environment": {"DB_PASSWORD": '50 Leagues "Under" the Sea'}}}}
    )
    redactor.learn_env(["API_TOKEN=tok en!", "URL=redis://u:pw-9911@h:6379"])
    text = 'DB_PASSWORD: "50 Leagues \\"Under\\" the Sea"\nraw 50 Leagues "Under" the Sea tok en! redis://u:pw-9911@h\n'
    out = redactor.line(text)
    for secret in ("50 Leagues", "tok en!", "pw-9911"):
        assert secret not in out, out
    assert redactor.value({"diff": {"before": text}})["diff"]["before"] == out


def test_docker_timestamps_parse_on_any_python() -> None:
    assert parse_epoch("2026-01-02T03:04:05.5Z") == pytest.approx(1767323045.5)
    assert parse_epoch("0001-01-01T00:00:00Z") is None
    assert line_ns(b"2026-01-02T03:04:05.123456789Z hello\n") == 1767323045123456789


def test_source_index_cites_the_panic_and_the_run_fn(tmp_path: Path) -> None:
    src = tmp_path / "rsky" / "rsky-ingester" / "src"
    src.mkdir(parents=True)
    body = [f"// line {n}" for n in range(1, 60)]
    body[9] = "pub async fn run_labeler(config: Config) -> Result<()> {"
    body[10] = '    let s = "}";'
    body[11] = "    loop { work().await; }"
    body[12] = "}"
    (src / "labeler.rs").write_text("\n".join(body) + "\n")
    log = [
        "2026-01-01T00:00:00Z thread 'tokio-runtime-worker' panicked at rsky-ingester/src/labeler.rs:30:5:\n",
        "2026-01-01T00:00:00Z panicked at "
        "/usr/local/cargo/registry/src/index.crates.io-6f17/tokio-1.40.0/src/a.rs:4:5\n",
        "2026-01-01T00:00:00Z thread 'main' panicked at rsky-ingester/src/missing.rs:1:1:\n",
        "2026-01-01T00:00:01Z Error: CRITICAL: All labeler tasks exited. This should never happen.\n",
    ]
    index, files = source.build_index(tmp_path / "rsky", "abc123", log)
    assert index["schema_version"] == 1 and index["commit"] == "abc123"
    panic, dependency, run_fn = index["snippets"]
    assert panic == {
        "kind": "panic",
        "location": "rsky-ingester/src/labeler.rs:30:5",
        "path": "rsky-ingester/src/labeler.rs",
        "line": 30,
        "start": 10,
        "end": 50,
        "file": "source/rsky-ingester/src/labeler.rs#L10-L50.txt",
    }
    assert dependency["crate"] == "tokio" and dependency["version"] == "1.40.0" and dependency["file"] is None
    assert (run_fn["kind"], run_fn["start"], run_fn["end"]) == ("run_fn", 10, 13)
    assert files[run_fn["file"]].splitlines()[0].startswith("pub async fn run_labeler")
    assert index["missing"] == [{"location": "rsky-ingester/src/missing.rs:1:1", "why": "not in the build context"}]


def test_records_and_command_output_are_private_whatever_the_umask(tmp_path: Path) -> None:
    """The debug build's git pull records its command before the module makes the folder private:
    the record and the command's output are the owner's alone even under a login's umask 022."""
    from ansible_collections.rsky.ingester_capture.plugins.module_utils import manifest
    from ansible_collections.rsky.ingester_capture.plugins.module_utils.docker_cli import run_to_file

    old = os.umask(0o022)
    try:
        out = tmp_path / "work"
        manifest.record_note(out, "x.txt", "a note")
        assert run_to_file(out, "build/build.log", ["true"], append=True) == 0
        assert run_to_file(out, "logs/pre.log", ["true"]) == 0
    finally:
        os.umask(old)
    for rel in (manifest.COMMANDS_FILE, "build/build.log", "logs/pre.log"):
        assert (out / rel).stat().st_mode & 0o777 == 0o600, rel
    assert len(manifest.records(out)) == 3


def test_a_snapshot_that_cannot_be_written_stops_the_build_beside_it(tmp_path: Path) -> None:
    """debug_build's snapshot option: when production's logs cannot be saved (here the work folder
    is a file; on a host, a full disk), the build started beside it is stopped and the task fails
    in one line, without a traceback."""
    from ansible_collections.rsky.ingester_capture.plugins.modules import debug_build

    class Failed(Exception):
        pass

    class Module:
        def __init__(self) -> None:
            self.params = {"container": "ingester-capture-no-such-container"}

        def fail_json(self, **kw: object) -> None:
            raise Failed(kw["msg"])

    out = tmp_path / "work"
    out.write_text("not a folder")
    build = subprocess.Popen(["sleep", "60"], start_new_session=True)
    with pytest.raises(Failed) as failed:
        debug_build.snapshot(Module(), out, Redactor(), build)  # type: ignore[arg-type]
    assert build.poll() is not None, "the build was left running"
    assert "could not be saved" in str(failed.value) and "the build was stopped" in str(failed.value)
