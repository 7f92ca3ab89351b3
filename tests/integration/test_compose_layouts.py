"""Compose files as people write them: swap, --check, capture and rollback on every layout (issue 13).

The corpus is tests/data/compose/swap/, its answer key tests/support/compose_layouts.py
(SWAP_CORPUS). Two runs cover it, each one ansible-playbook process with one local inventory host
per layout (forks = layouts), so the corpus costs two or three plays, not one per layout:

* the module run drives ``rsky.ingester_capture.compose_image`` itself: swap in check mode with
  --diff, swap, ``docker compose config`` of the swapped project, restore in check mode, restore;
* the capture run is ``capture.yml`` on a stand-in stack per layout (its own compose project,
  ``network_mode: none``), then ``playbooks/rollback.yml`` on the hosts that were swapped.

A swapped layout edits one line (the one the answer key names), compose resolves the ingester
to the debug image and every other service as before, and the file comes back byte for byte
(sha256) after the restore and after rollback.yml. A refused layout fails before anything
changes (file untouched, no backup, no debug image built, the service still on its image), with
one message that names the file, the line and why. No planted secret appears in any output.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from standin.stack import PROD_IMAGE, Stack, run
from tests.support.compose_layouts import SWAP_CORPUS, SwapLayout, fill
from tests.support.playbooks import ANSIBLE_PLAYBOOK, REPO, ansible_env
from tests.support.registry import pin_by_digest
from tests.support.secrets import walk

pytestmark = pytest.mark.integration

CAPTURED = [layout for layout in SWAP_CORPUS if layout.capture]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def digest_image(standin_images: Any) -> Iterator[str]:
    """The production stand-in image pinned by digest (``127.0.0.1:<port>/...@sha256:...``)."""
    reference, tag = pin_by_digest(standin_images.prod_image, f"ict-digest-{uuid.uuid4().hex[:8]}/rsky-ingester")
    yield reference
    run(["docker", "image", "rm", tag], check=False)


def leaks(layouts: list[SwapLayout], texts: dict[str, str]) -> list[str]:
    found = []
    for layout in layouts:
        for secret in layout.secrets:
            for needle in secret.needles():
                places = [where for where, text in texts.items() if needle in text]
                if places:
                    found.append(f"{layout.name}: {secret.what} ({needle!r}) in {', '.join(places)}")
    return found


def playbook(argv: list[str], timeout: float = 900, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, *argv],
        cwd=REPO,
        env=ansible_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def host_name(layout: SwapLayout) -> str:
    return layout.name.replace("-", "_")


def expected_original(layout: SwapLayout, stack: Stack, digest: str) -> str:
    return fill(layout.original, stack, digest) if layout.original else PROD_IMAGE


def other_services(config: dict[str, Any], without_image: bool) -> dict[str, Any]:
    services = json.loads(json.dumps(config.get("services") or {}))
    if without_image:
        services.get("ingester", {}).pop("image", None)
    return services


def check_one_edit(layout: SwapLayout, before: bytes, after: bytes, debug: str) -> None:
    """``after`` is ``before`` with exactly the edit the answer key names."""
    line = layout.line_of_target(before)
    old, new = before.decode().splitlines(True), after.decode().splitlines(True)
    if layout.edit == "replace":
        changed = [i + 1 for i, (b, a) in enumerate(zip(old, new, strict=True)) if b != a]
        assert len(old) == len(new) and changed == [line], (layout.name, changed, line)
        assert debug in new[line - 1] and debug not in old[line - 1], new[line - 1]
    else:
        assert new[:line] == old[:line] and new[line + 1 :] == old[line:], layout.name
        assert new[line].strip().startswith(f"image: {debug}"), new[line]


# ------------------------------------------------------------------ the module, every layout ---

MODULE = REPO / "plugins" / "modules" / "compose_image.py"


def run_module(args: dict[str, Any], path: Path, check: bool = False) -> dict[str, Any]:
    """One run of the module as ansible runs it on a host (its arguments in a file, check and
    diff mode as ansible's own flags); its JSON result."""
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check, "_ansible_diff": True}}))
    proc = subprocess.run(
        [sys.executable, str(MODULE), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO / "collections")},
        stdin=subprocess.DEVNULL,
    )
    try:
        result: dict[str, Any] = json.loads(proc.stdout)
    except ValueError:
        said = f"{proc.stdout[-500:]} {proc.stderr[-1500:]}"
        result = {"failed": True, "msg": f"no JSON (exit {proc.returncode}): {said}"}
    result["_output"] = proc.stdout + proc.stderr
    return result


def swap_check_restore(layout: SwapLayout, stack: Stack, state: Path, config: list[str]) -> dict[str, Any]:
    """Swap in check mode, swap, compose's config and a copy of the swapped file, restore in
    check mode, restore: what each step returned."""
    edited = stack.project_dir / layout.edited_file
    target = {
        "project_dir": str(stack.project_dir),
        "compose_file": layout.compose_file,
        "service": "ingester",
        "state_dir": str(state),
        "container": stack.container,
        # What preflight hands the module from the running container's labels.
        "project_working_dir": str(stack.project_dir),
        "project_config_files": [str(stack.project_dir / name) for name in layout.config_files()],
    }
    state.mkdir(parents=True)
    got: dict[str, Any] = {"before": json.loads(run(config).stdout)}
    swap = {**target, "image": stack.debug_image}
    got["check"] = run_module(swap, state.parent / f"{layout.name}-check.json", check=True)
    got["swap"] = run_module({**swap, "work_dir": str(state / "work")}, state.parent / f"{layout.name}-swap.json")
    if got["swap"].get("failed"):
        return got
    restore = {**target, "state": "restored", "recreate": False}
    got["restore_check"] = run_module(restore, state.parent / f"{layout.name}-restore-check.json", check=True)
    # The test's own look after the restore in check mode: the file (still swapped) and compose.
    got["swapped_bytes"] = edited.read_bytes()
    got["swapped"] = json.loads(run(config).stdout)
    got["restore"] = run_module(restore, state.parent / f"{layout.name}-restore.json")
    return got


def test_module_swaps_checks_and_restores_every_layout(tmp_path: Path, digest_image: str) -> None:
    jobs = []
    for layout in SWAP_CORPUS:
        stack = Stack(tmp_path / layout.name, "healthy", name_prefix=f"icl-{uuid.uuid4().hex[:6]}", write=False)
        stack.project_dir.mkdir(parents=True)
        stack.rsky_dir.mkdir()
        files = layout.install(stack, digest_image)
        config = [*layout.compose_argv(stack), "--profile", "*", "config", "--format", "json"]
        jobs.append((layout, stack, files, tmp_path / "state" / layout.name, config))
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(lambda job: swap_check_restore(job[0], job[1], job[3], job[4]), jobs))

    problems: list[str] = []
    outputs: dict[str, str] = {}
    for (layout, stack, files, _, _), got in zip(jobs, runs, strict=True):
        edited = stack.project_dir / layout.edited_file
        original = files[layout.edited_file]
        for step in ("check", "swap", "restore_check", "restore"):
            if step in got:
                outputs[f"{layout.name} {step}"] = got[step].pop("_output")
        if layout.outcome == "refused":
            line = layout.line_of_target(original)
            for step in ("check", "swap"):
                msg = got[step].get("msg", "")
                if not got[step].get("failed") or f"{edited} line {line}: " not in msg:
                    problems.append(f"{layout.name}: {step} did not refuse naming line {line}: {msg}")
                elif not all(word in msg for word in layout.reason):
                    problems.append(f"{layout.name}: {step} refusal lacks {layout.reason}: {msg}")
            if edited.read_bytes() != original or list((tmp_path / "state" / layout.name).glob("*/compose.orig")):
                problems.append(f"{layout.name}: a refused swap changed something")
            continue
        check, swap = got["check"], got["swap"]
        failed = [step for step, result in (("check", check), ("swap", swap)) if result.get("failed")]
        if failed or not (check.get("changed") and swap.get("changed")):
            problems.append(f"{layout.name}: did not swap: {check.get('msg')} / {swap.get('msg')}")
            continue
        if not check["msg"].startswith("Would swap") or check.get("line") != swap.get("line"):
            problems.append(f"{layout.name}: check mode said {check['msg']}")
        if swap["original_image"] != expected_original(layout, stack, digest_image):
            problems.append(f"{layout.name}: original image {swap['original_image']}")
        try:
            check_one_edit(layout, original, got["swapped_bytes"], stack.debug_image)
        except AssertionError as exc:
            problems.append(f"{layout.name}: the swap is not the one edit the answer key names: {exc}")
        # The diff the operator sees (--check --diff; redacted) shows the edit on its line.
        for step, result in (("check", check), ("swap", swap)):
            shown = result["diff"]["after"].splitlines()
            at = swap["line"] - 1
            if len(shown) <= at or not (shown[at].strip().startswith("image:") and stack.debug_image in shown[at]):
                problems.append(f"{layout.name}: the {step} diff does not show the swapped line {swap['line']}")
        swapped = got["swapped"]
        if (swapped["services"]["ingester"].get("image")) != stack.debug_image:
            problems.append(f"{layout.name}: compose resolves {swapped['services']['ingester'].get('image')}")
        if other_services(swapped, True) != other_services(got["before"], True):
            problems.append(f"{layout.name}: the swap changed more than the ingester's image")
        # (The file read after the restore in check mode is still the swapped one: above.)
        restore_check, restore = got["restore_check"], got["restore"]
        if not restore_check.get("changed") or not restore_check.get("msg", "").startswith("Would restore"):
            problems.append(f"{layout.name}: restore --check said {restore_check.get('msg')}")
        if restore.get("failed") or restore.get("status") != "restored":
            problems.append(f"{layout.name}: restore failed: {restore.get('msg')}")
        if sha(edited.read_bytes()) != sha(original):
            problems.append(f"{layout.name}: the file is not back byte for byte after the restore")
    # What the module returns (ansible shows it with -v; the diff with --diff) and the swap's work
    # files (compose.diff) carry no secret; the backup and the redaction map in the state folder
    # hold them by design (they never leave the host).
    texts = {**outputs, **walk(tmp_path / "state", "state")}
    texts = {k: v for k, v in texts.items() if not k.endswith(("compose.orig", "redaction-map.json"))}
    problems += leaks(list(SWAP_CORPUS), texts)
    assert not problems, "\n".join(problems)


# --------------------------------------------------------- capture.yml and rollback.yml, every layout ---


def test_capture_and_rollback_every_layout(stack_factory: Any, tmp_path: Path, digest_image: str) -> None:
    dest = tmp_path / "captures"
    dest.mkdir()
    made: list[tuple[SwapLayout, Stack, dict[str, bytes]]] = []
    hosts: dict[str, Any] = {}
    try:
        for layout in CAPTURED:
            stack: Stack = stack_factory("task-error", exit_after_ms=1500)
            files = layout.install(stack, digest_image)
            made.append((layout, stack, files))
            layout.up(stack)
            hosts[host_name(layout)] = {
                "ansible_connection": "local",
                "ansible_python_interpreter": "/usr/bin/python3",
                "ingester_project_dir": str(stack.project_dir),
                "ingester_compose_file": layout.compose_file,
                "ingester_container": stack.container,
                "ingester_debug_image": stack.debug_image,
                "capture_state_dir": str(tmp_path / "state" / layout.name),
            }
        group = {
            "ingester_service": "ingester",
            # Not what this test is about: every stack's checkout is one commit behind, as production.
            "ingester_git_pull": False,
            "capture_dest": str(dest),
            "capture_mode": "capture",
            "capture_window_seconds": 20,
            "capture_stop_after_restarts": 1,
            # Few polls: each is a module run per host (a poll returns as soon as the window ends).
            "capture_stats_interval_seconds": 5,
            "capture_stop_timeout_seconds": 2,
            "capture_poll_seconds": 10,
            "capture_heartbeat_timeout_seconds": 30,
            "capture_min_free_bytes": 1_000_000,
            "rollback_wait_delay": 1,
        }
        inventory = tmp_path / "inv.yml"
        inventory.write_text(
            yaml.safe_dump({"all": {"children": {"ingester_hosts": {"hosts": hosts, "vars": group}}}}, sort_keys=False)
        )
        forks = ["--forks", str(len(hosts))]
        started = time.monotonic()
        capture = playbook(["-i", str(inventory), "capture.yml", *forks])
        print(f"capture.yml on {len(hosts)} hosts: {time.monotonic() - started:.0f} s")
        outputs = {"capture.yml output": capture.stdout + capture.stderr}
        refused = {host_name(lay) for lay in CAPTURED if lay.outcome == "refused"}
        assert capture.returncode == (2 if refused else 0), outputs["capture.yml output"][-6000:]

        fleet = {row["host"]: row for row in json.loads((dest / "fleet.json").read_text())["hosts"]}
        played = " ".join(outputs["capture.yml output"].split())
        problems: list[str] = []
        swapped_hosts = []
        for layout, stack, files in made:
            host = host_name(layout)
            row = fleet.get(host, {})
            edited = stack.project_dir / layout.edited_file
            original = files[layout.edited_file]
            image = (stack.inspect().get("Config") or {}).get("Image")
            if layout.outcome == "refused":
                line = layout.line_of_target(original)
                # The fleet row keeps a long message's start and end; the play's output has it whole.
                msg = " ".join(str(row.get("msg", "")).split())
                said = f"{edited} line {line}: "
                if row.get("status") != "failed" or row.get("failed_step") != "preflight" or (
                    said not in msg and said not in played
                ):
                    problems.append(f"{layout.name}: not refused at line {line}: {row}")
                elif "Pre-flight failed; nothing was changed" not in msg:
                    problems.append(f"{layout.name}: refused after preflight: {msg}")
                if sha(edited.read_bytes()) != sha(original) or image != expected_original(layout, stack, digest_image):
                    problems.append(f"{layout.name}: a refused capture changed the file or the service ({image})")
                debug = run(["docker", "image", "inspect", stack.debug_image], check=False)
                if debug.returncode == 0:
                    problems.append(f"{layout.name}: a refused capture built the debug image")
                left = [p.name for p in (tmp_path / "state" / layout.name).glob("*/*") if p.name != "work"]
                if set(left) - {"redaction-map.json"}:
                    problems.append(f"{layout.name}: a refused capture left {left} in the state folder")
                continue
            swapped_hosts.append(host)
            if row.get("status") != "ok":
                problems.append(f"{layout.name}: capture did not succeed: {row}")
                continue
            if image != stack.debug_image:
                problems.append(f"{layout.name}: the service runs {image}, not the debug image")
            try:
                check_one_edit(layout, original, edited.read_bytes(), stack.debug_image)
            except AssertionError as exc:
                problems.append(f"{layout.name}: the capture's swap is not the answer key's edit: {exc}")
        assert not problems, "\n".join(problems)

        limit = ["--limit", ",".join(swapped_hosts)]
        started = time.monotonic()
        rollback = playbook(["-i", str(inventory), "playbooks/rollback.yml", *forks, *limit])
        print(f"rollback.yml on {len(swapped_hosts)} hosts: {time.monotonic() - started:.0f} s")
        outputs["rollback.yml output"] = rollback.stdout + rollback.stderr
        assert rollback.returncode == 0, outputs["rollback.yml output"][-6000:]
        for layout, stack, files in made:
            if layout.outcome == "refused":
                continue
            edited = stack.project_dir / layout.edited_file
            if sha(edited.read_bytes()) != sha(files[layout.edited_file]):
                problems.append(f"{layout.name}: rollback.yml did not restore the file byte for byte")
            image = (stack.inspect().get("Config") or {}).get("Image")
            if image != expected_original(layout, stack, digest_image):
                problems.append(f"{layout.name}: after rollback the service runs {image}")
        problems += leaks(CAPTURED, {**outputs, **walk(dest, "controller")})
        assert not problems, "\n".join(problems)
    finally:
        for layout, stack, _ in made:
            layout.down(stack)
