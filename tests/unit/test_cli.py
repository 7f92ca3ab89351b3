"""The command line as a user runs it: `python -m collector ...` in a child process, its exit code
from the one table (collector/exitcodes.py), one line on stderr for what went wrong, the program
name the user typed in usage lines, and `--version` on every entry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from collector.exitcodes import Exit
from tests.support.cli import PYTHON, REPO, one_line, run
from tests.support.fixtures import BUNDLES
from tests.support.processes import agent_processes
from tests.support.verify_facts import facts


def unwritable(tmp_path: Path) -> Path:
    """A folder that cannot be made, for any user (root too): its parent is a regular file."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    return blocker / "reports"


# --------------------------------------------------------------- output that cannot be written ---


def test_summarize_to_an_unwritable_folder_says_so_and_promises_no_report(tmp_path: Path) -> None:
    out = unwritable(tmp_path)
    proc = run("-m", "collector", "summarize", str(BUNDLES / "oom-kill"), "--out", str(out))
    # The bundle is a crash loop (10), but 10 promises the reports exist: they do not. The
    # diagnosis is still printed, without a report path.
    assert proc.returncode == Exit.CANNOT_WRITE, proc.stderr
    assert one_line(proc) == f"ingester-collector: cannot write reports to {out}: Not a directory"
    assert "verdict: oom-kill" in proc.stdout and "report:" not in proc.stdout


def test_fleet_to_an_unwritable_folder_says_so(tmp_path: Path) -> None:
    dest = tmp_path / "captures"
    host = dest / "h0" / "20261201T100000Z-capture"
    made = run("-m", "collector", "summarize", str(BUNDLES / "stable"), "--out", str(host))
    assert made.returncode == Exit.OK, made.stderr
    proc = run("-m", "collector", "fleet", str(dest), "--out", str(unwritable(tmp_path)), "--quiet")
    assert proc.returncode == Exit.CANNOT_WRITE
    assert one_line(proc).startswith("ingester-collector: cannot write the fleet files to ")


def test_verify_evaluate_to_an_unwritable_folder_says_so(tmp_path: Path) -> None:
    good = tmp_path / "facts.json"
    good.write_text(json.dumps(facts()))
    out = unwritable(tmp_path)
    proc = run("-m", "collector", "verify", "evaluate", "--facts", str(good), "--host", "h", "--out-dir", str(out))
    assert proc.returncode == Exit.CANNOT_WRITE
    assert one_line(proc).startswith(f"verify: cannot write {out}/")


# ------------------------------------------------------------------------- input that is missing ---


def test_verify_history_of_a_missing_file_is_unreadable_not_an_empty_table(tmp_path: Path) -> None:
    missing = tmp_path / "verify-history.jsonl"
    proc = run("-m", "collector", "verify", "history", str(missing))
    assert proc.returncode == Exit.UNREADABLE
    assert one_line(proc).startswith(f"verify: history {missing}: no such file")
    assert proc.stdout == ""

    missing.write_text("")  # an empty history that exists is a table with no rows
    assert run("-m", "collector", "verify", "history", str(missing)).returncode == Exit.OK


# --------------------------------------------------------------------- the scheduled run's 124 ---


def _play_project(tmp_path: Path, seconds: int) -> tuple[Path, Path]:
    """A project whose verify.yml pauses `seconds` on localhost, and its inventory."""
    project = tmp_path / "project"
    (project / "playbooks").mkdir(parents=True)
    (project / "playbooks" / "verify.yml").write_text(
        "---\n- name: Verify | A play longer than its limit\n  hosts: all\n  gather_facts: false\n"
        f"  tasks:\n    - name: Verify | Wait\n      ansible.builtin.pause:\n        seconds: {seconds}\n"
    )
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n")
    return project, inventory


def test_verify_run_stopped_at_its_timeout_exits_124_and_leaves_nothing_running(tmp_path: Path) -> None:
    # A real verify.yml run through ansible-runner that cannot end before its time limit. At the
    # limit ansible-runner kills ansible-playbook's process group; the task worker runs in a
    # session of its own (ansible-core detaches it) and, left alone, stays blocked for good.
    project, inventory = _play_project(tmp_path, 30)
    runs = tmp_path / "runs"
    proc = run(
        "-m", "collector", "verify-run", "-i", str(inventory), "--project", str(project),
        "--artifacts", str(runs), "--timeout", "1",
    )  # fmt: skip
    assert proc.returncode == Exit.TIMED_OUT, proc.stdout + proc.stderr
    (artifacts,) = runs.iterdir()
    assert proc.stdout == f"verify-run: timed out after 1 s — artifacts {artifacts}\n"
    assert (artifacts / "artifacts").is_dir()
    assert agent_processes(str(tmp_path)) == []


@pytest.mark.parametrize("entry", [["-m", "collector", "verify"], ["-m", "collector.verify"]])
def test_verify_interrupted_says_so_in_one_line(tmp_path: Path, entry: list[str]) -> None:
    """Ctrl-C while verify waits for its facts: one line and 130, not a traceback."""
    fifo = tmp_path / "facts.fifo"
    os.mkfifo(fifo)
    argv = [PYTHON, *entry, "evaluate", "--facts", str(fifo), "--host", "h", "--out-dir", str(tmp_path / "out")]
    child = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child, cwd=REPO) as proc:
        writer = -1
        try:
            deadline = time.monotonic() + 60
            while writer < 0:  # a FIFO opens for writing (without blocking) once its reader is there
                try:
                    writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                    time.sleep(0.05)
            proc.send_signal(signal.SIGINT)  # verify now waits in read()
            out, err = proc.communicate(timeout=60)
        finally:
            if writer >= 0:
                os.close(writer)
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == Exit.INTERRUPTED, out + err
    assert "Traceback" not in err
    assert one_line(subprocess.CompletedProcess(argv, proc.returncode, out, err)) == "verify: interrupted"


def test_verify_run_sent_sigterm_stops_the_play_and_its_workers(tmp_path: Path) -> None:
    # The schedule's own `timeout` (or systemd) sends SIGTERM to verify-run alone: ansible-playbook
    # runs in a session of its own (pexpect's pty) and its workers in theirs.
    project, inventory = _play_project(tmp_path, 120)
    child = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [PYTHON, "-m", "collector", "verify-run", "-i", str(inventory), "--project", str(project),
            "--artifacts", str(tmp_path / "runs")]  # fmt: skip
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child, cwd=REPO) as proc:
        try:
            deadline = time.monotonic() + 120
            # the worker is up once two ansible-playbook processes name the inventory
            while len([c for c in agent_processes(str(inventory)) if "ansible-playbook" in c]) < 2:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == Exit.TERMINATED, out + err
    assert "verify-run: stopped (SIGTERM)" in one_line(subprocess.CompletedProcess(argv, 0, out, err))
    assert agent_processes(str(tmp_path)) == []


def test_verify_run_without_ansible_runner_names_the_extra(tmp_path: Path) -> None:
    # The package installed without its extra: ansible_runner cannot be imported.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    # Python's own way to say a module is not there: None in sys.modules stops its import.
    (shadow / "sitecustomize.py").write_text("import sys\nsys.modules['ansible_runner'] = None\n")
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all: {}\n")
    proc = run(
        "-m", "collector", "verify-run", "-i", str(inventory), "--artifacts", str(tmp_path / "runs"),
        env={"PYTHONPATH": f"{shadow}{os.pathsep}{REPO}"},
    )  # fmt: skip
    assert proc.returncode == Exit.NOT_INSTALLED
    assert "pip install 'ingester-capture[scheduled]'" in one_line(proc)
    assert not (tmp_path / "runs").exists()


# ----------------------------------------------------------------------- program names, --version ---


@pytest.mark.parametrize(
    ("argv", "prog"),
    [
        (["-m", "collector", "verify", "--help"], "ingester-collector verify"),
        (["-m", "collector", "verify-run", "--help"], "ingester-collector verify-run"),
        (["-m", "collector", "summarize", "--help"], "ingester-collector summarize"),
        (["-m", "collector", "--help"], "ingester-collector"),
        (["-m", "collector.verify", "--help"], "python -m collector.verify"),
        (["-m", "collector.runner", "--help"], "python -m collector.runner"),
        # The installed import name (the checkout installs the package into its environment).
        (["-m", "ingester_capture.verify", "--help"], "python -m ingester_capture.verify"),
        (["-m", "ingester_capture.runner", "--help"], "python -m ingester_capture.runner"),
        (["-m", "ingester_capture", "summarize", "--help"], "ingester-collector summarize"),
    ],
)
def test_usage_names_the_program_the_user_typed(argv: list[str], prog: str) -> None:
    proc = run(*argv)
    assert proc.returncode == Exit.OK, proc.stderr
    assert proc.stdout.startswith(f"usage: {prog} ["), proc.stdout[:200]


@pytest.mark.parametrize(
    ("argv", "prog"),
    [
        (["-m", "collector"], "ingester-collector"),
        (["-m", "collector", "verify"], "ingester-collector verify"),
        (["-m", "collector", "verify-run"], "ingester-collector verify-run"),
        (["-m", "collector.verify"], "python -m collector.verify"),
        (["-m", "collector.runner"], "python -m collector.runner"),
        (["-c", "import sys; from collector.runner import main; sys.exit(main())"], "ingester-verify-run"),
        (["-c", "import sys; from collector.cli import main; sys.exit(main())"], "ingester-collector"),
    ],
)
def test_every_entry_answers_version(argv: list[str], prog: str) -> None:
    from importlib import metadata

    proc = run(*argv, "--version")
    assert proc.returncode == Exit.OK, proc.stderr
    # The controller's first play reads the version from this line (roles/capture/tasks/controller.yml).
    assert proc.stdout == f"{prog} {metadata.version('ingester-capture')}\n"


# -------------------------------------------------------------------------------- the package ---


def test_summarize_runs_without_ansible(tmp_path: Path) -> None:
    # The package installed without its extra: neither ansible nor ansible_runner can be imported.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "sitecustomize.py").write_text(
        "import sys\nfor name in ('ansible', 'ansible_runner'):\n    sys.modules[name] = None\n"
    )
    env = {"PYTHONPATH": f"{shadow}{os.pathsep}{REPO}"}
    proc = run("-m", "collector", "summarize", str(BUNDLES / "oom-kill"), "--out", str(tmp_path / "r"), env=env)
    assert proc.returncode == Exit.CRASH_LOOP, proc.stderr
    assert (tmp_path / "r" / "report.html").is_file()


def test_ansible_is_the_scheduled_runs_extra_only() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {d.split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in project["dependencies"]}
    assert names == {"jinja2", "pyyaml"}
    # The one ansible-core range, as meta/runtime.yml declares it.
    assert project["optional-dependencies"]["scheduled"] == ["ansible-core>=2.19.0,<2.20.0", "ansible-runner>=2.3,<3"]
