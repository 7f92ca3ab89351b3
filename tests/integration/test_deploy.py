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
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from standin.stack import PROD_IMAGE, Stack, run, standin_image
from tests.support.playbooks import REPO, BackgroundPlay, run_playbook
from tests.support.stacks import StandinImages

pytestmark = pytest.mark.integration

SCHEMA = json.loads((REPO / "docs" / "schemas" / "deploy.schema.json").read_text())
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
    rollback = run_playbook("playbooks/rollback.yml", inv, timeout=1200)
    assert rollback.rc == 0, rollback.out[-4000:]
    assert stack.compose_path.read_bytes() == original
    assert image_of(stack) == prod


def test_a_fix_that_still_crashes_is_rolled_back_within_one_interval(
    stacks: list[Stack], images: Images, tmp_path: Path
) -> None:
    prod = images.build("prod", STANDIN_SCENARIO="all-panicked", STANDIN_EXIT_AFTER_MS="12000")
    fix = images.build("fix", STANDIN_SCENARIO="all-panicked", STANDIN_EXIT_AFTER_MS="3000")
    stack = new_stack(stacks, tmp_path / "stack", prod)
    stack.wait_restarts(2, timeout=180)
    original = stack.compose_path.read_bytes()
    dest, state = tmp_path / "captures", tmp_path / "state"
    inv = inventory(tmp_path / "inv.yml", {"prod-a": host_vars(stack, state)}, dest)

    result = run_playbook("playbooks/deploy.yml", inv, extra_vars={"deploy_image": fix}, timeout=900)

    assert result.rc == 2, result.out[-6000:]
    assert stack.compose_path.read_bytes() == original
    assert image_of(stack) == prod
    outcome = deploy_json(dest, "prod-a")
    assert outcome["outcome"] == "rolled_back", outcome
    gate = outcome["gate"]
    # The real code prints its panic banner just before the process exits: whichever of the two
    # the gate read first ends it, never a later exit.
    assert gate["ended_by"] in ("exit", "panic") and gate["exits"] <= 1, gate
    interval = outcome["baseline"]["interval_seconds"]
    assert outcome["baseline"]["source"] == "history" and interval > 10, outcome["baseline"]
    # By itself, within one failure interval of the fix's first failure: the gate decided at that
    # exit (or the banner just before it) and the restore began before the old fault's next exit was due.
    failed_at = gate["first_exit"]["epoch"] if gate["first_exit"] else gate["started_epoch"] + gate["elapsed"]
    assert gate["decided_epoch"] - failed_at < interval, gate
    assert 0 <= outcome["rollback"]["started_epoch"] - failed_at < interval, (outcome["rollback"], gate)
    assert outcome["rollback"]["restored"] is True
    # The gate's bundle was fetched and diagnosed: the report says why the fix failed.
    bundle = Path(outcome["bundle"])
    report = json.loads((bundle / "report.json").read_text())
    if gate["ended_by"] == "exit":
        assert report["verdict"]["scenario"] == "panic", report["verdict"]
        assert outcome["verdict"] == "panic" and Path(outcome["report"]).is_file()
    else:
        # Stopped at the banner: the process dies of it a moment later, while the rollback recreates
        # the service. If the bundle was sealed after that exit, the report's verdict is the panic;
        # sealed before it, the bundle holds a panic the process had not yet died of, which the
        # reference calls contained, and the report lists it. Either way the report names the panic.
        died_of_it = report["verdict"]["scenario"] == "panic"
        assert died_of_it or report["contained_panics"], report["verdict"]
        assert Path(outcome["report"]).is_file()
    assert "gate FAILED" in gate_lines(result.out)[-1]
    assert "deploy: 1 host(s): 1 rolled back" in result.out
    assert "Rolled back: " in result.out and "the report says why" in result.out
    assert not list(state.glob("*/lock")), "the lock was left behind"


def test_a_fix_that_leaks_is_rolled_back_on_the_slope_before_the_kill(
    stacks: list[Stack], images: Images, tmp_path: Path
) -> None:
    prod = images.build("prod", STANDIN_SCENARIO="healthy")
    # The stand-in's leak scenario: healthy, plus 1 MiB a second touched and kept, towards the 64 MiB limit.
    fix = images.build("fix", STANDIN_SCENARIO="leak", STANDIN_LEAK_KB_PER_S="1024")
    stack = new_stack(stacks, tmp_path / "stack", prod)
    stack.wait_running()
    original = stack.compose_path.read_bytes()
    dest, state = tmp_path / "captures", tmp_path / "state"
    # The last capture of this host: a recorded bundle the collector diagnoses into its report.json,
    # whose production history (restarts every 2 s) is the baseline. A 120 s floor: the slope decides.
    capture = dest / "prod-a" / "20260101T000000Z-capture"
    shutil.copytree(REPO / "tests" / "fixtures" / "bundles" / "hypothetical-swap-with-history", capture)
    summarize = subprocess.run(
        [sys.executable, "-m", "collector", "summarize", str(capture)], capture_output=True, text=True, cwd=REPO
    )
    assert summarize.returncode == 10, summarize.stderr
    inv = inventory(tmp_path / "inv.yml", {"prod-a": host_vars(stack, state)}, dest, deploy_gate_min_seconds=120)

    result = run_playbook("playbooks/deploy.yml", inv, extra_vars={"deploy_image": fix}, timeout=900)

    assert result.rc == 2, result.out[-6000:]
    assert stack.compose_path.read_bytes() == original
    assert image_of(stack) == prod
    outcome = deploy_json(dest, "prod-a")
    assert outcome["outcome"] == "rolled_back", outcome
    gate = outcome["gate"]
    assert outcome["baseline"]["source"] == "report", outcome["baseline"]
    assert str(capture / "report.json") in outcome["baseline"]["detail"], outcome["baseline"]
    assert outcome["baseline"]["interval_seconds"] == pytest.approx(1.96, abs=0.01), outcome["baseline"]
    assert gate["ended_by"] == "memory" and gate["exits"] == 0, gate
    memory = gate["memory"]
    assert memory["verdict"] == "leak" and memory["limit_bytes"] == 64 * 1024 * 1024, memory
    assert memory["last_bytes"] < memory["limit_bytes"] and memory["seconds_to_limit"] > 0, memory
    # Before the kill: no OOM and no exit of the fix in the gate's own events.
    events = [json.loads(line) for line in (Path(outcome["bundle"]) / "events.jsonl").read_text().splitlines() if line]
    assert events and not [e for e in events if e.get("Action") in ("oom", "die")], events


def test_a_fix_that_panics_without_exiting_is_rolled_back_at_the_banner(
    stacks: list[Stack], images: Images, tmp_path: Path
) -> None:
    prod = images.build("prod", STANDIN_SCENARIO="healthy")
    # The real code's contained panic: one firehose host task panics, the process runs on.
    fix = images.build("fix", STANDIN_SCENARIO="contained-panic", STANDIN_EXIT_AFTER_MS="2000")
    stack = new_stack(stacks, tmp_path / "stack", prod)
    stack.wait_running()
    original = stack.compose_path.read_bytes()
    dest, state = tmp_path / "captures", tmp_path / "state"
    inv = inventory(tmp_path / "inv.yml", {"prod-a": host_vars(stack, state)}, dest, deploy_gate_seconds=120)

    result = run_playbook("playbooks/deploy.yml", inv, extra_vars={"deploy_image": fix}, timeout=900)

    assert result.rc == 2, result.out[-6000:]
    assert stack.compose_path.read_bytes() == original
    assert image_of(stack) == prod
    outcome = deploy_json(dest, "prod-a")
    gate = outcome["gate"]
    assert outcome["outcome"] == "rolled_back" and gate["ended_by"] == "panic" and gate["exits"] == 0, gate
    assert "FATAL PANIC OCCURRED" in gate["why"], gate


def test_three_hosts_one_canary_whose_fix_fails_the_others_never_touched(
    stacks: list[Stack], images: Images, tmp_path: Path
) -> None:
    prod = images.build("prod", STANDIN_SCENARIO="healthy")
    fix = images.build("fix", STANDIN_SCENARIO="all-panicked", STANDIN_EXIT_AFTER_MS="3000")
    dest = tmp_path / "captures"
    hosts, before = {}, {}
    for name in ("prod-a", "prod-b", "prod-c"):
        stack = new_stack(stacks, tmp_path / name, prod)
        hosts[name] = host_vars(stack, tmp_path / f"state-{name}")
        before[name] = (stack, stack.compose_path.read_bytes())
    for stack, _ in before.values():
        stack.wait_running()
    ids = {name: stack.container_id() for name, (stack, _) in before.items()}
    inv = inventory(tmp_path / "inv.yml", hosts, dest)

    result = run_playbook("playbooks/deploy.yml", inv, "--forks", "3", extra_vars={"deploy_image": fix}, timeout=900)

    assert result.rc == 2, result.out[-6000:]
    canary = deploy_json(dest, "prod-a")
    assert canary["outcome"] == "rolled_back" and canary["gate"]["ended_by"] in ("exit", "panic"), canary
    for name, (stack, original) in before.items():
        assert stack.compose_path.read_bytes() == original, name
        assert image_of(stack) == prod, name
    # The other two: never touched - the same containers, no state folder, no outcome, no task run on them.
    for name in ("prod-b", "prod-c"):
        stack, _ = before[name]
        assert stack.container_id() == ids[name], name
        assert not (tmp_path / f"state-{name}").exists(), name
        assert not (dest / name).exists(), name
        assert f"[{name}]" not in result.out, name
    fleet = json.loads((dest / "deploy-fleet.json").read_text())
    statuses = {h["host"]: h["status"] for h in fleet["hosts"]}
    assert statuses == {"prod-a": "rolled_back", "prod-b": "never_touched", "prod-c": "never_touched"}, fleet
    assert "prod-b: never touched (the rollout stopped before it)" in result.out


def _status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return ""


def test_a_deploy_killed_mid_gate_leaves_a_stale_lock_the_next_run_recognises(
    stacks: list[Stack], images: Images, tmp_path: Path
) -> None:
    prod = images.build("prod", STANDIN_SCENARIO="healthy")
    fix = images.build("fix", STANDIN_SCENARIO="healthy")
    stack = new_stack(stacks, tmp_path / "stack", prod)
    stack.wait_running()
    original = stack.compose_path.read_bytes()
    dest, state = tmp_path / "captures", tmp_path / "state"
    # A fixed watch far longer than the test: the deploy is mid-gate when it is killed.
    inv = inventory(tmp_path / "inv.yml", {"prod-a": host_vars(stack, state)}, dest, deploy_gate_seconds=600)
    deploy = BackgroundPlay("playbooks/deploy.yml", inv, "-e", json.dumps({"deploy_image": fix}))
    try:
        deploy.wait_for_line(re.compile(r"^\[prod-a\] gate \d+:\d\d of 10:00"), timeout=600)
    finally:
        deploy.kill_all()
        deploy.finish(timeout=60)
    assert deploy.proc.returncode == -signal.SIGKILL
    assert image_of(stack) == fix and stack.compose_path.read_bytes() != original
    (lock,) = state.glob("*/lock")  # beside it lock.guard, the flock every lock step holds
    held = json.loads(lock.read_text())
    assert held["owner"].startswith("deploy.yml@prod-a@"), held
    assert "State:\tZ" in _status(held["pid"]) or not _status(held["pid"]), f"the window {held['pid']} still runs"

    again = run_playbook("playbooks/deploy.yml", inv, extra_vars={"deploy_image": fix}, timeout=1200)

    assert again.rc == 2, again.out[-4000:]
    # It recognised the lock as stale (its window is gone) and the swap as the killed deploy's.
    assert re.search(
        r"took over the lock of deploy\.yml@prod-a@\S+ \(its capture window \(pid \d+\) is no longer running\)",
        again.out,
    ), again.out[-4000:]
    assert "A swap is pending" in again.out and "playbooks/rollback.yml" in again.out, again.out[-4000:]
    assert image_of(stack) == fix, "the refusing run changed the service"
    refused = deploy_json(dest, "prod-a")
    assert refused["outcome"] == "failed" and refused["original_image"] is None, refused

    rollback = run_playbook("playbooks/rollback.yml", inv, timeout=1200)

    assert rollback.rc == 0, rollback.out[-4000:]
    assert stack.compose_path.read_bytes() == original
    assert image_of(stack) == prod


def git(cwd: Path, *args: str) -> str:
    ident = ["-c", "user.name=Stand-in", "-c", "user.email=standin@example.invalid"]
    return run(["git", *ident, *args], cwd=cwd).stdout.strip()


def test_a_fix_built_from_deploy_ref_and_check_mode_changes_nothing(
    stacks: list[Stack], images: Images, tmp_path: Path
) -> None:
    prod = images.build("prod", STANDIN_SCENARIO="healthy")
    stack = new_stack(stacks, tmp_path / "stack", prod)
    # The build context becomes a checkout: its main still crashes, the branch fix/firehose does not.
    rsky = stack.rsky_dir
    dockerfile = rsky / "rsky-ingester" / "Dockerfile"
    healthy = dockerfile.read_text()
    git(rsky, "init", "-q", "-b", "main")
    dockerfile.write_text(healthy + "ENV STANDIN_SCENARIO=all-panicked STANDIN_EXIT_AFTER_MS=2000\n")
    git(rsky, "add", ".")
    git(rsky, "commit", "-q", "-m", "The crash")
    git(rsky, "checkout", "-q", "-b", "fix/firehose")
    dockerfile.write_text(healthy)
    git(rsky, "commit", "-q", "-am", "The fix")
    fix_commit = git(rsky, "rev-parse", "HEAD")
    git(rsky, "checkout", "-q", "main")
    main_commit = git(rsky, "rev-parse", "HEAD")
    stack.wait_running()
    original, old_id = stack.compose_path.read_bytes(), stack.container_id()
    tag = f"rsky-ingester:fix-{images.prefix}"
    images.made.append(tag)
    dest, state = tmp_path / "captures", tmp_path / "state"
    inv = inventory(tmp_path / "inv.yml", {"prod-a": host_vars(stack, state)}, dest, deploy_gate_seconds=15)
    ref = {"deploy_ref": "fix/firehose", "deploy_build_image": tag}

    check = run_playbook("playbooks/deploy.yml", inv, "--check", "--diff", extra_vars=ref, timeout=1200)

    assert check.rc == 0, check.out[-6000:]
    assert f"Would build fix/firehose (commit {fix_commit}) as {tag}" in check.out, check.out[-4000:]
    assert f"-    image: {prod}" in check.out and f"+    image: {tag}" in check.out, check.out[-4000:]
    assert "Would recreate ingester and watch it for 15.0 s (baseline: fixed)" in check.out, check.out[-4000:]
    assert stack.compose_path.read_bytes() == original and stack.container_id() == old_id
    assert run(["docker", "image", "inspect", tag], check=False).returncode != 0, "check mode built the image"
    assert not list(state.glob("*/lock")) and not dest.exists()

    # Every host kept the fix: the scheduled verification is installed (cron, into this test's own folder).
    cron = tmp_path / "cron.d"
    cron.mkdir()
    scheduled = {
        "deploy_schedule_verify": True,
        "schedule_backend": "cron",
        "schedule_cron_dir": str(cron),
        "schedule_name": f"ict-verify-{images.prefix}",
        "schedule_artifacts_dir": str(tmp_path / "runs"),
        "schedule_log_file": str(tmp_path / "verify.log"),
    }

    result = run_playbook("playbooks/deploy.yml", inv, extra_vars={**ref, **scheduled}, timeout=900)

    assert result.rc == 0, result.out[-6000:]
    outcome = deploy_json(dest, "prod-a")
    assert outcome["outcome"] == "kept" and outcome["commit"] == fix_commit and outcome["ref"] == "fix/firehose"
    entry = (cron / scheduled["schedule_name"]).read_text()
    assert f"-i {inv}" in entry and "-m ingester_capture.runner" in entry, entry
    assert image_of(stack) == tag
    label = json.loads(run(["docker", "image", "inspect", tag]).stdout)[0]["Config"]["Labels"]
    assert label["org.opencontainers.image.revision"] == fix_commit
    # Built from the ref, not from the checkout: the checkout is still on main, its worktree gone.
    assert git(rsky, "rev-parse", "HEAD") == main_commit
    assert git(rsky, "worktree", "list").count("\n") == 0, git(rsky, "worktree", "list")
    assert [line for line in result.out.splitlines() if "] build " in line], result.out[-4000:]
