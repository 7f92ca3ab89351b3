"""deploy.yml against real stand-in stacks: the gate keeps a fix that holds and rolls back one that does not.

A fix changes code, not configuration: in these stacks the scenario is the image's own (its
``ENV STANDIN_SCENARIO``), not the compose file's, so swapping the image tag changes what the
service does, as a real fix would. Production crash-loops (every host task of the firehose
family panics, the real code's all-panicked path) often enough that its history gives the gate a
baseline; the gate's windows stay short through the documented variables (a lower
``deploy_gate_confidence``, a small ``deploy_gate_min_seconds``).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import StandinImages
from tests.integration.conftest import REPO, run_playbook
from tests.standin.stack import PROD_IMAGE, Stack, run, standin_image

pytestmark = pytest.mark.integration

SCHEMA = json.loads((REPO / "docs" / "schemas" / "deploy.schema.json").read_text())
MARKER = "INGESTER_CAPTURE_TEST_RUN"
# Short gates: 0.99 over the production interval, with a 10 s floor; one progress line every 2 s.
GATE = {
    "deploy_gate_confidence": 0.99,
    "deploy_gate_min_seconds": 10,
    "deploy_gate_seconds": 20,
    "deploy_poll_seconds": 2,
    "deploy_memory_warmup_seconds": 0,
    "deploy_memory_min_samples": 5,
    "deploy_rollback_wait_seconds": 90,
}


class ImageScenarioStack(Stack):
    """A stack whose ingester runs ``prod_image`` and takes its scenario from the image's ENV."""

    def __init__(self, root: Path, *, prod_image: str, **kw: Any) -> None:
        self.prod_image = prod_image
        super().__init__(root, "healthy", **kw)

    def ingester_env(self) -> dict[str, str]:
        env = super().ingester_env()
        env.pop("STANDIN_SCENARIO", None)
        return env

    def compose_text(self) -> str:
        ours = f"image: {PROD_IMAGE}\n    container_name: {self.container}"
        return super().compose_text().replace(ours, f"image: {self.prod_image}\n    container_name: {self.container}")


class Images:
    """Per-test image tags built FROM the stand-in's production image, each with its own ENV."""

    def __init__(self) -> None:
        self.prefix = f"ict-{uuid.uuid4().hex[:8]}"
        self.made: list[str] = []

    def build(self, name: str, **env: str) -> str:
        tag = f"rsky-ingester:{name}-{self.prefix}"
        lines = [f"FROM {standin_image()}"] + [f"ENV {k}={json.dumps(v)}" for k, v in env.items()]
        subprocess.run(
            ["docker", "build", "-q", "-t", tag, "-"],
            input="\n".join(lines) + "\n",
            text=True,
            check=True,
            capture_output=True,
            timeout=300,
        )
        self.made.append(tag)
        return tag


@pytest.fixture
def images(standin_images: StandinImages) -> Iterator[Images]:
    made = Images()
    yield made
    for tag in made.made:
        run(["docker", "image", "rm", "-f", tag], check=False)


@pytest.fixture
def stacks(standin_images: StandinImages, tmp_path: Path) -> Iterator[list[Stack]]:
    made: list[Stack] = []
    yield made
    for stack in made:
        stack.down()


def new_stack(made: list[Stack], root: Path, prod_image: str, **kw: Any) -> Stack:
    stack = ImageScenarioStack(root, prod_image=prod_image, name_prefix=f"ict-{uuid.uuid4().hex[:8]}", **kw)
    made.append(stack)
    stack.compose("up", "-d")
    return stack


def host_vars(stack: Stack, state: Path) -> dict[str, Any]:
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": "/usr/bin/python3",
        "ingester_project_dir": str(stack.project_dir),
        "ingester_compose_file": stack.compose_file,
        "ingester_service": stack.service,
        "ingester_container": stack.container,
        "capture_state_dir": str(state),
    }


def inventory(path: Path, hosts: dict[str, dict[str, Any]], dest: Path, **overrides: Any) -> Path:
    group = {
        "capture_dest": str(dest),
        "capture_stats_interval_seconds": 1,
        "capture_stop_timeout_seconds": 2,
        "capture_heartbeat_timeout_seconds": 20,
        "capture_min_free_bytes": 1_000_000,
        **GATE,
        **overrides,
    }
    body = {"all": {"children": {"ingester_hosts": {"hosts": hosts, "vars": group}}}}
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def image_of(stack: Stack) -> str:
    return str(stack.inspect()["Config"]["Image"])


def deploy_json(dest: Path, host: str) -> dict[str, Any]:
    (found,) = sorted(dest.glob(f"{host}/deploy/*/deploy.json"))
    document = json.loads(found.read_text())
    jsonschema.validate(document, SCHEMA)
    return dict(document)


def gate_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("[") and "] gate " in line]


def test_a_fix_that_holds_is_kept(stacks: list[Stack], images: Images, tmp_path: Path) -> None:
    prod = images.build("prod", STANDIN_SCENARIO="all-panicked", STANDIN_EXIT_AFTER_MS="6000")
    fix = images.build("fix", STANDIN_SCENARIO="healthy")
    stack = new_stack(stacks, tmp_path / "stack", prod)
    stack.wait_restarts(2, timeout=120)  # production has crash-looped: its history is the baseline
    original = stack.compose_path.read_bytes()
    dest, state = tmp_path / "captures", tmp_path / "state"
    inv = inventory(tmp_path / "inv.yml", {"prod-a": host_vars(stack, state)}, dest)

    result = run_playbook("playbooks/deploy.yml", inv, extra_vars={"deploy_image": fix}, timeout=900)

    assert result.rc == 0, result.out[-6000:]
    assert image_of(stack) == fix
    swapped = stack.compose_path.read_bytes()
    assert swapped != original and f"image: {fix}".encode() in swapped
    outcome = deploy_json(dest, "prod-a")
    assert outcome["outcome"] == "kept", outcome
    assert outcome["baseline"]["source"] == "history", outcome["baseline"]
    interval = outcome["baseline"]["interval_seconds"]
    assert 5 < interval < 60, outcome["baseline"]
    assert outcome["gate"]["ended_by"] == "passed" and outcome["gate"]["exits"] == 0, outcome["gate"]
    assert outcome["gate"]["confidence_reached"] >= 0.99, outcome["gate"]
    assert outcome["gate"]["elapsed"] >= outcome["gate"]["seconds"] >= 10, outcome["gate"]
    assert outcome["original_image"] == prod and outcome["image"] == fix
    assert "Baseline from history" in result.out
    lines = gate_lines(result.out)
    assert len(lines) >= 3 and "odds the old fault is still there 1 in" in lines[0], lines
    assert "gate passed" in lines[-1], lines
    assert "deploy: 1 host(s): 1 kept" in result.out
    fleet = json.loads((dest / "deploy-fleet.json").read_text())
    assert [(h["host"], h["status"]) for h in fleet["hosts"]] == [("prod-a", "kept")]
    # verify.yml's baseline is recorded on the fix's container.
    (baseline,) = state.glob("*/baseline.json")
    assert json.loads(baseline.read_text())["container_id"] == stack.container_id()
    # The backup restores the original byte for byte.
    rollback = run_playbook("playbooks/rollback.yml", inv)
    assert rollback.rc == 0, rollback.out[-4000:]
    assert stack.compose_path.read_bytes() == original
    assert image_of(stack) == prod
