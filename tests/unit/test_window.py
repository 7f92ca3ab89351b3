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
