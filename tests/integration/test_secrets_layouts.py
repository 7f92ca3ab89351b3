"""No secret leaves the host, whatever the compose file looks like (issue 11, first Done-when).

Each layout (tests/data/compose/secrets/) puts secrets where real compose files have them:
``environment:`` straight under ``image:``, a spaced password in a profile-only service,
secret-named variables with quotes, passwords inside URLs. The product is driven only through
its public interface: ``ansible-playbook capture.yml`` (``-v``; ``--check --diff -v``),
``playbooks/verify.yml -v``, ``playbooks/rollback.yml`` (``--check --diff -v``; ``--diff -v``),
``ansible_runner.run`` with a private data dir (as an AWX-style job or cron would), and the
product's own ``python -m collector.runner``. None of the secret values, nor a telling fragment of
one, may appear in the play output, in anything ansible-runner leaves in its private data dir,
or in anything fetched to the controller (bundle files, the tarball's members, the manifest,
verify reports).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from standin.stack import PROD_IMAGE, Stack
from tests.support.compose_layouts import ALL, Layout
from tests.support.inventories import write_inventory
from tests.support.playbooks import REPO, run_playbook
from tests.support.secrets import VERIFY_QUICK, run_with_ansible_runner, walk

pytestmark = pytest.mark.integration

def leaks_in(layout: Layout, texts: dict[str, str]) -> list[str]:
    """One line per secret (or fragment) found: where, and the text around its first hit."""
    found = []
    for secret in layout.secrets:
        for needle in secret.needles():
            places = [where for where, text in texts.items() if needle in text]
            if not places:
                continue
            text = texts[places[0]]
            at = text.find(needle)
            around = text[max(at - 60, 0) : at + len(needle) + 20].replace("\n", "\\n")
            found.append(
                f"{secret.what}: {needle!r} in {len(places)} place(s): {', '.join(places)}\n    first: ...{around}..."
            )
    return found


@pytest.mark.parametrize("layout", ALL, ids=[layout.name for layout in ALL])
def test_no_secret_in_any_output(
    layout: Layout, stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]
) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory("task-error", exit_after_ms=1500)
    original = layout.install(stack)
    stack.up()
    stack.wait_running()
    inventory = write_inventory(tmp_path / "inv.yml", stack, dest=dest, state=state)

    # The secrets are really there to leak: in the compose files, and in the running container.
    text = "".join([original.decode(), *layout.files.values()])
    missing = [s.what for s in layout.secrets if not any(n in text for n in s.needles())]
    assert not missing, missing
    inspected = repr(stack.inspect()["Config"])
    assert any(s.value in inspected for s in layout.secrets), inspected[:2000]

    outputs: dict[str, str] = {}
    problems: list[str] = []

    def play(label: str, playbook: str, *args: str, expect_ok: bool = True, **extra: Any) -> None:
        result = run_playbook(playbook, inventory, *args, extra_vars=extra or None)
        outputs[f"output of {label}"] = result.out
        if expect_ok and result.rc != 0:
            problems.append(f"{label} exited {result.rc}: {result.out[-1500:]}")

    play("capture.yml --check --diff -v", "capture.yml", "--check", "--diff", "-v")
    play("capture.yml -v", "capture.yml", "-v")
    # A crash loop fails verification: only the output matters here, and that it judged.
    play("verify.yml -v", "playbooks/verify.yml", "-v", expect_ok=False, **VERIFY_QUICK)
    play("rollback.yml --check --diff -v", "playbooks/rollback.yml", "--check", "--diff", "-v")
    play("rollback.yml --diff -v", "playbooks/rollback.yml", "--diff", "-v")
    if stack.compose_path.read_bytes() != original:
        problems.append("rollback.yml did not restore the compose file byte for byte")

    # ansible-runner, as an AWX-style job would: a real capture with --diff, then a rollback.
    runs = tmp_path / "runner"
    runs.mkdir()
    for name, playbook in (("capture", "capture.yml"), ("rollback", "playbooks/rollback.yml")):
        status, rc = run_with_ansible_runner(runs / name, playbook, inventory, "--diff")
        if status != "successful":
            events = walk(runs / name / "artifacts", "runner")
            stdout = next((t for w, t in events.items() if w.endswith("/stdout")), "")
            problems.append(f"ansible-runner {playbook}: {status} rc {rc}: {stdout[-1500:]}")

    # The product's own scheduled entry point (ansible-runner inside).
    verify_runs = tmp_path / "verify-runs"
    argv = [sys.executable, "-m", "collector.runner", "-i", str(inventory), "--artifacts", str(verify_runs)]
    for key, value in VERIFY_QUICK.items():
        argv += ["-e", f"{key}={value}"]
    scheduled = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=600, check=False, stdin=subprocess.DEVNULL
    )
    outputs["output of python -m collector.runner"] = scheduled.stdout + scheduled.stderr
    if not scheduled.stdout.startswith("verify "):
        problems.append(f"collector.runner gave no verdict line: {scheduled.stdout} {scheduled.stderr[-800:]}")

    texts = {**outputs, **walk(dest, "controller"), **walk(runs, "ansible-runner"), **walk(verify_runs, "verify-runs")}

    leaks = leaks_in(layout, texts)
    assert not leaks, "\n".join([*leaks, "(other problems: " + ("; ".join(problems) or "none") + ")"])

    # Not vacuous: every surface was produced.
    assert not problems, "\n".join(problems)
    assert list(dest.glob("*/*/manifest.json")), "no bundle with a manifest was fetched"
    assert list(dest.glob("*/*.tar.gz")), "no bundle tarball was fetched"
    assert list(dest.glob("*/verify/*/verify.json")), "verify.yml wrote no report"
    assert any(w.endswith("job_events") or "/job_events/" in w for w in texts), "no ansible-runner job_events"
    assert stack.compose_path.read_bytes() == original
    assert stack.inspect()["Config"]["Image"] == PROD_IMAGE
