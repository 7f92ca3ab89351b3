"""The closing play's fleet_outcomes filter and the compose project of the host side."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.rsky.ingester_capture.plugins.filter.fleet import (  # noqa: E402
    fleet_outcomes,
    fleet_targets,
)
from ansible_collections.rsky.ingester_capture.plugins.module_utils import docker_cli, host_state  # noqa: E402

OK: dict[str, Any] = {
    "__capture_owner": "a@1",
    "__capture_local_dir": "/c/a/20261201T100000Z-capture",
    "__capture_report": {"verdict": {"scenario": "panic"}},
}


def test_outcomes_ok_failed_unreachable_refused() -> None:
    hostvars = {
        "a": OK,
        "b": {
            "__capture_owner": "b@1",
            "ansible_failed_task": {"name": "Capture | Stop if the build failed", "action": "ansible.builtin.fail"},
            "ansible_failed_result": {"msg": "docker build of x failed;\n production is untouched."},
        },
        "c": {"__capture_owner": "c@1", "__capture_preflight": {"unreachable": True, "msg": "ssh: refused"}},
        "d": {},
        "e": {"__capture_owner": "e@1", "__capture_preflight": {"failed": False}},
    }
    got = fleet_outcomes(hostvars, ["a", "b", "c", "d", "e"])
    assert got["a"] == {
        "status": "ok",
        "bundle": "/c/a/20261201T100000Z-capture.tar.gz",
        "report": "/c/a/20261201T100000Z-capture/report.md",
    }
    assert got["b"]["status"] == "failed" and got["b"]["failed_step"] == "debug_image"
    assert got["b"]["msg"] == "Capture | Stop if the build failed: docker build of x failed; production is untouched."
    assert got["c"] == {"status": "unreachable", "msg": "ssh: refused"}
    failing = {"ansible_failed_task": {"action": "ansible.builtin.fail"}, "ansible_failed_result": {"msg": "a" * 700}}
    failing["ansible_failed_result"]["msg"] += "END"
    long = fleet_outcomes({"x": failing}, ["x"])["x"]["msg"]
    assert len(long) <= 600 and long.startswith("aaa") and long.endswith("END")
    assert got["d"]["status"] == "failed" and got["d"]["failed_step"] == "validate"
    assert got["e"]["status"] == "unreachable"


def test_verify_outcomes() -> None:
    hostvars = {
        "a": {"__verify_probe_run": {"failed": False}, "__verify_run_dir": "/c/a/verify/T", "__verify_result": {}},
        "b": {"__verify_probe_run": {"failed": True, "msg": "no such container"}},
    }
    got = fleet_outcomes(hostvars, ["a", "b"], "verify")
    assert got["a"] == {"status": "ok", "report": "/c/a/verify/T/verify.md"}
    assert got["b"] == {"status": "failed", "failed_step": "probe", "msg": "no such container"}
    with pytest.raises(ValueError):
        fleet_outcomes(hostvars, ["a"], "other")


def test_targets_follow_the_limit() -> None:
    assert fleet_targets(["b", "a", "c"]) == ["a", "b", "c"]
    assert fleet_targets(["b", "a", "c"], ["c", "a", "x"]) == ["a", "c"]


def test_compose_argv_runs_as_the_recorded_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # target_paths chooses the project for the rest of the process: undone after the test.
    monkeypatch.setattr(docker_cli, "_PROJECT", {})
    project = tmp_path / "atproto"
    project.mkdir()
    compose = project / "docker-compose.prod-rust.yml"
    compose.write_text("services:\n  ingester:\n    image: rsky-ingester:latest\n")
    params = {"project_dir": str(project), "compose_file": compose.name, "service": "ingester"}
    params["state_dir"] = str(tmp_path)
    state, found = host_state.target_paths(params)
    assert found == compose
    assert docker_cli.compose_argv(found, "ps") == [
        "docker", "compose", "--project-directory", str(project), "-f", str(compose), "ps",
    ]  # fmt: skip
    # A swap ran under another project name: a rollback without project options adopts it.
    state.mkdir(parents=True)
    (state / host_state.SWAP_FILE).write_text(
        json.dumps({"project": {"name": "othername", "working_dir": str(project), "config_files": [str(compose)],
                                "compose_path": str(compose)}})
    )  # fmt: skip
    _, found = host_state.target_paths(params)
    argv = docker_cli.compose_argv(found, "up", "-d")
    assert argv[:4] == ["docker", "compose", "-p", "othername"] and argv[-2:] == ["up", "-d"]
    # A candidate beside the compose file is validated in its place.
    candidate = project / ".candidate"
    assert str(candidate) in docker_cli.compose_argv(candidate, "config")
    assert str(compose) not in docker_cli.compose_argv(candidate, "config")
