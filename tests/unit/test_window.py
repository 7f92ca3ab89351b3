"""The capture window's config: a frozen WindowConfig written by the module and read back,
validated, by the worker; the compose project travels in it, never in the environment."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.rsky.ingester_capture.plugins.module_utils import docker_cli, host_state, window  # noqa: E402


@pytest.fixture(autouse=True)
def no_project() -> Iterator[None]:
    docker_cli.forget_project()
    yield
    docker_cli.forget_project()


def config(tmp_path: Path, **changes: object) -> window.WindowConfig:
    target = window.ComposeTarget(str(tmp_path / "compose.yml"), "ingester", "rust-ingester", "atproto", str(tmp_path))
    return window.WindowConfig(target=target, recreate=True, seconds=90.0, logs_since="2026-01-01T00:00:00Z", **changes)  # type: ignore[arg-type]


def test_the_config_file_gives_back_the_config(tmp_path: Path) -> None:
    written = config(tmp_path, attach=True, lock_owner="me", lock_state=str(tmp_path))
    window.write_config(tmp_path, written)
    assert window.read_config(tmp_path) == written
    body = json.loads((tmp_path / window.CONFIG_FILE).read_text())
    # One level, the keys the worker always read, and no daemon_wait nobody set.
    assert body["compose_path"] == str(tmp_path / "compose.yml") and body["container"] == "rust-ingester"
    assert "daemon_wait" not in body and "target" not in body


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("seconds", "300", "seconds"),
        ("stop_after", True, "stop_after"),
        ("recreate", 1, "recreate"),
        ("files", ["a.yml", 3], "files"),
        ("container", None, "container"),
    ],
)
def test_a_bad_key_is_one_error_naming_it(tmp_path: Path, key: str, value: object, words: str) -> None:
    body = config(tmp_path).to_json()
    body[key] = value
    (tmp_path / window.CONFIG_FILE).write_text(json.dumps(body))
    with pytest.raises(window.WindowError) as bad:
        window.read_config(tmp_path)
    assert words in str(bad.value) and "\n" not in str(bad.value)


def test_a_missing_key_or_file_is_said(tmp_path: Path) -> None:
    with pytest.raises(window.WindowError, match="cannot be read"):
        window.read_config(tmp_path)
    (tmp_path / window.CONFIG_FILE).write_text(json.dumps({"service": "ingester"}))
    with pytest.raises(window.WindowError, match="lacks compose_path, container"):
        window.read_config(tmp_path)


def test_the_compose_project_travels_in_the_config_not_the_environment(tmp_path: Path) -> None:
    project = tmp_path / "atproto"
    project.mkdir()
    compose = project / "docker-compose.yml"
    compose.write_text("services:\n  ingester:\n    image: rsky-ingester:latest\n")
    params = {
        "project_dir": str(project),
        "compose_file": compose.name,
        "service": "ingester",
        "state_dir": str(tmp_path / "state"),
        "project_name": "othername",
    }
    before = dict(os.environ)
    _, found = host_state.target_paths(params)
    assert dict(os.environ) == before, "the compose project went into the environment"
    target = window.ComposeTarget.current(found, "ingester", "rust-ingester")
    assert target.project_name == "othername" and target.files == (str(compose),)
    # The worker, a process of its own, runs its compose calls under the config's project.
    docker_cli.forget_project()
    assert docker_cli.compose_argv(found, "ps")[:3] == ["docker", "compose", "--project-directory"]
    target.use()
    assert docker_cli.compose_argv(found, "ps")[:4] == ["docker", "compose", "-p", "othername"]


def _follower(tmp_path: Path, index: int, since: float, run_start: float, lines: list[float]) -> dict[str, object]:
    """A follower's reads as `docker logs --timestamps` wrote them, one line per epoch."""
    out, err = tmp_path / f"run-{index:03d}.stdout", tmp_path / f"run-{index:03d}.stderr"
    stamps = [window.iso_ns(int(t * 1e9)).encode() + b"Z" for t in lines]
    out.write_bytes(b"".join(b"%s line %d\n" % (stamp, n) for n, stamp in enumerate(stamps)))
    err.write_bytes(b"")
    return {"index": index, "since": window.iso(since), "started": window.iso(run_start + 0.05), "stdout": out,
            "stderr": err, "run_start": run_start}


ROTATING = {"driver": "json-file", "options": {"max-size": "20k", "max-file": "2"}}


@pytest.mark.parametrize(
    ("second_run_reads", "rotation", "said"),
    [
        # Docker still held the first run's last lines: the second run's follower read them, and
        # with them everything after, the second run's first lines too.
        ([1004.0, 1004.5, 1005.01, 1005.02], ROTATING, False),
        # The oldest line left is later than the run's start, and the first run's last line
        # (which Docker held then) is gone too: rotation took the run's beginning.
        ([1005.30, 1005.31], ROTATING, True),
        # The run printed before Docker stamped its start, and its very first line went with the
        # rotated file: the oldest line left is earlier than the start event, still later than
        # the first run's last line.
        ([1004.99, 1005.31], ROTATING, True),
        # No rotation: Docker keeps every line; a late first line is the run being quiet.
        ([1005.30, 1005.31], {"driver": "json-file", "options": {}}, False),
        # local rotates by default.
        ([1005.30, 1005.31], {"driver": "local", "options": {}}, True),
    ],
)
def test_a_run_whose_start_rotation_took_is_named(
    tmp_path: Path, second_run_reads: list[float], rotation: dict[str, object], said: bool
) -> None:
    win = window.Window(tmp_path, config(tmp_path))
    # Run 1 started at 1000 and printed until 1004.5; it died at 1004.9, run 2 started at 1005.
    win.followers = [
        _follower(tmp_path, 1, 998.0, 1000.0, [1000.0, 1002.0, 1004.5]),
        _follower(tmp_path, 2, 1002.9, 1005.0, second_run_reads),
    ]
    found = win.beginnings_unread(rotation)
    if not said:
        assert found == []
        return
    assert [entry["run"] for entry in found] == [2]
    assert found[0]["oldest_read"] == window.iso_ns(int(second_run_reads[0] * 1e9)) + "Z"
    assert found[0]["last_line_before"].startswith("1970-01-01T00:16:44.5")
    assert "log rotation" in found[0]["statement"]


def test_the_windows_first_run_and_quiet_runs_are_not_called_lost(tmp_path: Path) -> None:
    win = window.Window(tmp_path, config(tmp_path))
    win.followers = [
        # The window's first run: nothing before it shows what Docker held.
        _follower(tmp_path, 1, 998.0, 1000.0, [1000.5, 1004.5]),
        # The run before printed nothing in the follower's span (its last line is older than
        # since): a late first line here says nothing about rotation.
        _follower(tmp_path, 2, 1010.0, 1012.0, [1013.0]),
    ]
    assert win.beginnings_unread(ROTATING) == []
