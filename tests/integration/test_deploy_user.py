"""capture.yml, rollback.yml and verify.yml over real SSH as a deploy user that needs become.

The production shape (inventory/production.yml): ``ansible_user: deploy``, ``ansible_become:
true``. The user has passwordless sudo but is not in the docker group and cannot reach the host's
state folder, so every host-side step must go through become. The controller is an ordinary user
of its own with no sudo rights: every controller-side step (the controller folder, the fetched
tarball, the unpacked bundle, the collector's report, the fleet summary) must be written by it,
never through sudo (tests/support/deploy_host.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from standin.stack import PROD_IMAGE, Stack
from tests.support.deploy_host import DeployHost, deploy_host
from tests.support.inventories import write_inventory
from tests.support.playbooks import wait_for_window

pytestmark = [pytest.mark.integration, pytest.mark.ssh]

SOCKET_MESSAGE = (
    "user {user} cannot reach the Docker socket /var/run/docker.sock: run with become (ansible_become=true) "
    "or add the user to the docker group"
)


@pytest.fixture(scope="module")
def deploy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployHost]:
    with deploy_host(tmp_path_factory.mktemp("deploy-host")) as host:
        yield host


def inventory_for(
    tmp_path: Path, stack: Stack, host: DeployHost, *, become: bool, **overrides: Any
) -> tuple[Path, Path, Path]:
    """(inventory, controller dest, host state): the inventory and dest in the controller's own
    folder, the state folder where only root may write."""
    own = host.controller.workdir(tmp_path.name)
    dest, state = own / "captures", tmp_path / "state"
    inventory = write_inventory(
        own / "inventory.yml",
        stack,
        dest=dest,
        state=state,
        sshd=host.sshd,
        ansible_become=become,
        **overrides,
    )
    os.chown(inventory, host.controller.uid, host.controller.gid)
    return inventory, dest, state


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def assert_root_only(top: Path) -> None:
    """Every folder 0700 and every file 0600, all owned by root: secrets live here unredacted."""
    wrong = []
    for path in [top, *top.rglob("*")]:
        info = path.lstat()
        want = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
        if (info.st_uid, info.st_gid) != (0, 0) or mode(path) != want:
            wrong.append(
                f"{path.relative_to(top.parent)} {info.st_uid}:{info.st_gid} {mode(path):o}, want 0:0 {want:o}"
            )
    assert not wrong, "\n".join(wrong)


def assert_controllers(host: DeployHost, top: Path) -> None:
    """Everything under the controller's folder is the controller user's, nothing in it is writable
    by the group or others, and the folders above the bundles are closed to other users."""
    ctl = host.controller
    wrong = []
    for path in [top, *top.rglob("*")]:
        info = path.lstat()
        if (info.st_uid, info.st_gid) != (ctl.uid, ctl.gid) or (not stat.S_ISLNK(info.st_mode) and mode(path) & 0o022):
            wrong.append(f"{path.relative_to(top.parent)} {info.st_uid}:{info.st_gid} {mode(path):o}")
    for folder in (top, top / "testhost"):
        if mode(folder) & 0o007:
            wrong.append(f"{folder.relative_to(top.parent)} is open to other users ({mode(folder):o})")
    assert not wrong, "\n".join(wrong)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sudo_log(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def assert_controller_never_sudo(host: DeployHost) -> None:
    # Any sudo the controller user tried (a controller-side task asking for become) is in its log.
    assert not sudo_log(host.controller.sudo_log), sudo_log(host.controller.sudo_log)


def window_of(play: subprocess.Popen[str], state: Path) -> Path:
    """The running capture window's progress file, however long the play takes to get there
    (a loaded machine), or the play's output if it ended first."""
    while play.poll() is None:
        try:
            return wait_for_window(state, timeout=10)
        except AssertionError:
            continue
    out, _ = play.communicate()
    raise AssertionError(f"the play ended (exit {play.returncode}) before its capture window ran: {out[-4000:]}")


def test_the_deploy_user_needs_become(deploy: DeployHost, tmp_path: Path) -> None:
    # The premise: over SSH the user cannot talk to Docker or reach the state folder by itself.
    denied = deploy.ssh("docker", "ps")
    assert denied.returncode != 0
    assert "permission denied" in denied.stderr.lower() and "docker.sock" in denied.stderr, denied.stderr
    state = tmp_path / "state"
    assert deploy.ssh("mkdir", "-p", str(state)).returncode != 0
    assert not state.exists()
    # With sudo it can: the same login, the drop-in's rule; the controller user has no sudo.
    assert deploy.ssh("sudo", "-n", "docker", "ps", "-q").returncode == 0
    assert "docker ps -q" in sudo_log(deploy.sudo_log)


def test_without_become_preflight_says_so(deploy: DeployHost, stack_factory: Any, tmp_path: Path) -> None:
    stack: Stack = stack_factory("hypothetical-task-error", exit_after_ms=1500)
    stack.up()
    before_sha, before_id = sha(stack.compose_path), stack.container_id()
    inventory, dest, state = inventory_for(tmp_path, stack, deploy, become=False)

    result = deploy.controller.play("capture.yml", inventory)

    assert result.rc != 0
    assert SOCKET_MESSAGE.format(user=deploy.user) in result.out, result.out[-3000:]
    assert "Traceback" not in result.out
    assert "Pre-flight failed; nothing was changed" in result.out
    # Nothing changed: no state folder, no bundle, the same container on the same compose file.
    assert not state.exists()
    assert not list(dest.glob("*/*"))
    assert sha(stack.compose_path) == before_sha
    assert stack.container_id() == before_id


def test_capture_rollback_and_verify_as_deploy_with_become(
    deploy: DeployHost, stack_factory: Any, tmp_path: Path
) -> None:
    stack: Stack = stack_factory("hypothetical-task-error", exit_after_ms=1500)
    stack.up()
    original = stack.compose_path.read_bytes()
    inventory, dest, state = inventory_for(
        tmp_path,
        stack,
        deploy,
        become=True,
        capture_window_seconds=30,
        capture_stop_after_restarts=2,
        verify_window_seconds=4,
        verify_sample_interval_seconds=1,
        verify_min_uptime_hours=0,
    )
    deploy_sudo_before = sudo_log(deploy.sudo_log)

    # --become as well as the inventory's ansible_become: the controller's plays and tasks must not
    # become even then (the controller user has no sudo; a try would fail and be logged).
    play = deploy.controller.start("capture.yml", inventory, "--become")
    try:
        progress = window_of(play, state)
        # While the window runs, the bundle is built on the host, unredacted, as root only.
        work = progress.parent
        assert work.parent.name == "work"
        assert_root_only(state)
        out, _ = play.communicate(timeout=300)
    finally:
        if play.poll() is None:
            play.kill()
            play.wait()

    assert play.returncode == 0, out[-4000:]
    assert "Traceback" not in out
    bundles = sorted(p for p in dest.glob("testhost/*") if p.is_dir())
    assert len(bundles) == 1, bundles
    bundle = bundles[0]
    report = json.loads((bundle / "report.json").read_text())
    assert (report["verdict"]["scenario"], report["verdict"]["exit_path"]) == ("task-error", "F"), report["verdict"]
    assert (bundle / "logs" / "ingester.log").stat().st_size > 0
    assert Path(f"{bundle}.tar.gz").is_file()
    assert (dest / "fleet.json").is_file()
    # Fetched and unpacked by the controller, as the controller's user.
    assert_controllers(deploy, dest)
    assert_controller_never_sudo(deploy)
    # The host: the work files are gone, what stays is root's alone, and become did the work.
    assert not work.exists() and not Path(f"{work}.tar.gz").exists()
    assert_root_only(state)
    assert sudo_log(deploy.sudo_log) != deploy_sudo_before, "the play never used sudo on the host"
    assert stack.inspect()["Config"]["Image"] == stack.debug_image

    rollback = deploy.controller.play("playbooks/rollback.yml", inventory)

    assert rollback.rc == 0, rollback.out[-4000:]
    assert stack.compose_path.read_bytes() == original
    assert stack.inspect()["Config"]["Image"] == PROD_IMAGE
    assert_root_only(state)

    verify = deploy.controller.play("playbooks/verify.yml", inventory, "--become")

    # The service still crash-loops on production: a verdict (a failed criterion), not an error.
    verdict = dest / "testhost" / "verify" / "latest" / "verify.json"
    assert verdict.is_file(), verify.out[-4000:]
    assert "Traceback" not in verify.out
    assert json.loads(verdict.read_text())["passed"] is False
    history = next(state.glob("*/verify-history.jsonl"))
    assert history.stat().st_size > 0
    assert_root_only(state)
    assert_controllers(deploy, dest)
    assert_controller_never_sudo(deploy)
