"""One exit-code table: every command driven into each of its outcomes returns the table's code."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import tarfile
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector import runner
from collector.cli import main as cli_main
from collector.exitcodes import ALL, TABLE, Exit, codes_for, markdown_table, worst
from collector.verify import main as verify_main
from tests.support.fixtures import BUNDLES
from tests.support.verify_facts import facts

README = Path(__file__).resolve().parent.parent.parent / "README.md"
SEEN: dict[str, set[Exit]] = {c: set() for c in ALL}
RAN: set[str] = set()


@pytest.fixture(autouse=True)
def _ran(request: pytest.FixtureRequest) -> None:
    RAN.add(request.function.__name__)


def _check(command: str, code: int, want: Exit) -> None:
    assert code == want, f"{command}: {code} where the table says {int(want)} ({want.name})"
    assert want in codes_for(command), f"{want.name} is not listed for {command} in the table"
    SEEN[command].add(want)


# ------------------------------------------------------------------------- the table ---


def test_one_meaning_per_number() -> None:
    assert len(Exit.__members__) == len(list(Exit)), "no aliases: one name per number"
    assert sorted(m.code for m in TABLE) == sorted(Exit), "every code has exactly one row"
    for m in TABLE:
        assert m.meaning and set(m.commands) <= set(ALL)


def test_readme_table_matches_the_enum() -> None:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- exit-codes:[^>]*-->\n(.*?)<!-- /exit-codes -->", text, re.S)
    assert found, "README has the exit-code table between its markers"
    assert found.group(1) == markdown_table()
    codes = [int(line.split("|")[1]) for line in found.group(1).splitlines()[2:]]
    assert codes == [int(c) for c in Exit]


def test_worst_is_the_largest_outcome() -> None:
    assert worst([]) is Exit.OK
    assert worst([Exit.OK, Exit.CRASH_LOOP, Exit.INCONCLUSIVE]) is Exit.INCONCLUSIVE
    assert worst([Exit.VERIFY_FAILED, Exit.NO_VERDICT, Exit.OK]) is Exit.NO_VERDICT


# ------------------------------------------------------------------------- summarize ---


@pytest.mark.parametrize(
    ("bundle", "want"),
    [
        ("stable", Exit.OK),
        ("config-error", Exit.CRASH_LOOP),
        ("oom-kill", Exit.CRASH_LOOP),
        ("hypothetical-prod-silent-exit", Exit.INCONCLUSIVE),
    ],
)
def test_summarize_verdicts(tmp_path: Path, bundle: str, want: Exit) -> None:
    # The answer key (expected.json, written from the reference) gives the code each bundle earns.
    expected = json.loads((BUNDLES / bundle / "expected.json").read_text())
    assert expected["exit_code"] == want
    _check("summarize", cli_main(["summarize", str(BUNDLES / bundle), "--out", str(tmp_path), "--quiet"]), want)


def test_summarize_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _check("summarize", cli_main(["summarize"]), Exit.USAGE)
    _check("summarize", cli_main(["summarize", "--no-such-option"]), Exit.USAGE)
    _check("summarize", cli_main(["summarize", str(tmp_path / "nowhere"), "--quiet"]), Exit.UNREADABLE)
    _check("summarize", cli_main(["summarize", "--help"]), Exit.OK)
    blocker = tmp_path / "a-file"  # a folder under a file cannot be made, even by root
    blocker.write_text("")
    out = ["--out", str(blocker / "reports"), "--quiet"]
    _check("summarize", cli_main(["summarize", str(BUNDLES / "config-error"), *out]), Exit.CANNOT_WRITE)
    tarball = tmp_path / "b.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(BUNDLES / "stable", arcname=".")
        link = tarfile.TarInfo("logs/ingester.log")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
        tar.addfile(link)
    _check("summarize", cli_main(["summarize", str(tarball), "--out", str(tmp_path / "o"), "--quiet"]), Exit.REFUSED)
    assert "Traceback" not in capsys.readouterr().err


# ---------------------------------------------------------------------------- verify ---


def test_verify_outcomes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "facts.json"
    good.write_text(json.dumps(facts()))
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    base = ["evaluate", "--facts", str(good), "--host", "h"]
    _check("verify", verify_main([*base, "--min-uptime-hours", "0.5"]), Exit.OK)
    _check("verify", verify_main(base), Exit.VERIFY_FAILED)  # the run is 1 h old: uptime fails
    _check("verify", verify_main(["evaluate", "--facts", str(bad)]), Exit.UNREADABLE)
    _check("verify", verify_main(["evaluate"]), Exit.USAGE)
    _check("verify", verify_main(["--help"]), Exit.OK)
    _check("verify", verify_main(["history", str(tmp_path / "no-history.jsonl")]), Exit.UNREADABLE)
    _check("verify", verify_main([*base, "--out-dir", str(bad / "out")]), Exit.CANNOT_WRITE)
    # The same through the CLI.
    _check("verify", cli_main(["verify", *base]), Exit.VERIFY_FAILED)
    capsys.readouterr()


# ------------------------------------------------------------------------ verify-run ---


def _stats(verdicts: dict[str, Any], failures: dict[str, int] | None = None, dark: dict[str, int] | None = None) -> Any:
    event = {
        "event": "playbook_on_stats",
        "event_data": {
            "artifact_data": {runner.STATS_KEY: verdicts},
            "failures": failures or {},
            "dark": dark or {},
        },
    }
    return types.SimpleNamespace(status="successful", rc=0, events=iter([event]))


@pytest.fixture
def fake_runner(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """ansible_runner.run returning the stats event of a verify.yml run; what it was given is kept."""
    calls: dict[str, Any] = {}
    module = types.ModuleType("ansible_runner")

    def run(**kwargs: Any) -> Any:
        calls.update(kwargs)
        if calls.get("signal"):  # a signal while the play runs: ansible-runner is asked to cancel
            os.kill(os.getpid(), calls.pop("signal"))
            assert kwargs["cancel_callback"]() is True
        return calls["result"]

    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ansible_runner", module)
    yield calls


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A checkout-shaped project: playbooks/verify.yml (never run: ansible_runner is faked)."""
    root = tmp_path / "project"
    (root / "playbooks").mkdir(parents=True)
    (root / "playbooks" / "verify.yml").write_text("---\n")
    return root


def _verify_run(tmp_path: Path, project: Path, *extra: str) -> int:
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all: {}\n")
    return cli_main(
        ["verify-run", "-i", str(inventory), "--artifacts", str(tmp_path / "runs"), "--project", str(project), *extra]
    )


def test_verify_run_outcomes(
    tmp_path: Path, project: Path, fake_runner: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    passed = {"passed": True, "failed": [], "summary": "a: PASS", "report": ""}
    failed = {"passed": False, "failed": ["activity"], "summary": "b: FAIL (activity)", "report": ""}

    fake_runner["result"] = _stats({"a": passed})
    _check("verify-run", _verify_run(tmp_path, project), Exit.OK)
    assert fake_runner["playbook"] == str(project.resolve() / "playbooks" / "verify.yml")
    assert fake_runner["project_dir"] == str(project.resolve())

    fake_runner["result"] = _stats({"a": passed, "b": failed})
    _check("verify-run", _verify_run(tmp_path, project), Exit.VERIFY_FAILED)

    fake_runner["result"] = _stats({"a": passed}, dark={"c": 1})
    _check("verify-run", _verify_run(tmp_path, project), Exit.NO_VERDICT)

    fake_runner["result"] = _stats({"a": passed})
    fake_runner["result"].status = "timeout"  # ansible-runner stopped the play at --timeout
    _check("verify-run", _verify_run(tmp_path, project, "--timeout", "30"), Exit.TIMED_OUT)
    assert fake_runner["timeout"] == 30
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["verify PASS", "verify FAIL", "verify ERROR", "verify-run"]
    assert lines[-1].startswith("verify-run: timed out after 30 s")

    # SIGTERM while the play runs (systemd, or the schedule's `timeout` on its own): the run is
    # cancelled and says so; SIGTERM is this process's own again afterwards
    fake_runner["result"] = _stats({"a": passed})
    fake_runner["result"].status = "canceled"
    fake_runner["signal"] = signal.SIGTERM
    handler = signal.getsignal(signal.SIGTERM)
    _check("verify-run", _verify_run(tmp_path, project), Exit.TERMINATED)
    assert "verify-run: stopped (SIGTERM)" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is handler


def test_verify_run_errors(tmp_path: Path, project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _check("verify-run", cli_main(["verify-run"]), Exit.USAGE)
    _check("verify-run", _verify_run(tmp_path, project, "--keep", "0"), Exit.USAGE)
    _check("verify-run", _verify_run(tmp_path, project, "-e", "novalue"), Exit.USAGE)
    _check("verify-run", cli_main(["verify-run", "-i", str(tmp_path / "missing.yml")]), Exit.UNREADABLE)
    _check("verify-run", cli_main(["verify-run", "--help"]), Exit.OK)
    capsys.readouterr()

    _check("verify-run", _verify_run(tmp_path, tmp_path / "empty"), Exit.NOT_INSTALLED)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ansible-galaxy collection install" in err


def test_verify_run_finds_the_installed_collection_not_its_own_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(runner.PROJECT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)  # not a checkout
    monkeypatch.setattr(runner, "collection_paths", lambda: [tmp_path / "nothing", tmp_path / "cols"])
    with pytest.raises(runner.NotInstalledError, match=r"rsky\.ingester_capture"):
        runner.locate()

    root = tmp_path / "cols" / "ansible_collections" / "rsky" / "ingester_capture"
    (root / "playbooks").mkdir(parents=True)
    (root / "playbooks" / "verify.yml").write_text("---\n")
    found = runner.locate()
    assert found.playbook == (root / "playbooks" / "verify.yml").resolve()
    assert found.collections_root == (tmp_path / "cols").resolve() and found.config is None

    monkeypatch.setenv(runner.PROJECT_ENV, str(root))  # an installed copy named explicitly
    assert runner.locate().collections_root == (tmp_path / "cols").resolve()


def test_verify_run_in_a_checkout_uses_its_ansible_cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(runner.PROJECT_ENV, raising=False)
    checkout = Path(__file__).resolve().parent.parent.parent
    found = runner.locate(cwd=checkout)
    assert found.root == checkout and found.config == checkout / "ansible.cfg"


# ----------------------------------------------------------------------------- fleet ---


def _host(dest: Path, host: str, bundle: str) -> None:
    out = dest / host / "20261201T100000Z-capture"
    cli_main(["summarize", str(BUNDLES / bundle), "--out", str(out), "--quiet"])


@pytest.mark.parametrize(
    ("bundles", "want"),
    [
        (["stable", "stable"], Exit.OK),
        (["stable", "config-error"], Exit.CRASH_LOOP),
        (["config-error", "hypothetical-prod-silent-exit"], Exit.INCONCLUSIVE),
    ],
)
def test_fleet_capture_outcomes(tmp_path: Path, bundles: list[str], want: Exit) -> None:
    for i, b in enumerate(bundles):
        _host(tmp_path, f"h{i}", b)
    _check("fleet", cli_main(["fleet", str(tmp_path), "--quiet"]), want)


def test_fleet_no_verdict_verify_failed_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _host(tmp_path, "h0", "config-error")
    outcomes = tmp_path / "o.json"
    outcomes.write_text(json.dumps({"h0": {"status": "ok"}, "h1": {"status": "unreachable"}}))
    _check("fleet", cli_main(["fleet", str(tmp_path), "--outcomes", str(outcomes), "--quiet"]), Exit.NO_VERDICT)

    v = tmp_path / "h0" / "verify" / "20261201T100000Z"
    v.mkdir(parents=True)
    (v / "verify.json").write_text(json.dumps({"passed": False, "failed": ["memory"], "criteria": []}))
    _check("fleet", cli_main(["fleet", "--verify", str(tmp_path), "--quiet"]), Exit.VERIFY_FAILED)

    _check("fleet", cli_main(["fleet"]), Exit.USAGE)
    _check("fleet", cli_main(["fleet", str(tmp_path / "nowhere")]), Exit.UNREADABLE)
    _check("fleet", cli_main(["fleet", str(tmp_path), "--out", str(outcomes / "x"), "--quiet"]), Exit.CANNOT_WRITE)
    capsys.readouterr()


def test_version_names_the_program_and_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    # Every play's first play compares this with the collection's version before touching a host.
    from importlib import metadata

    assert cli_main(["--version"]) == 0
    out = capsys.readouterr().out.strip()
    assert out == f"ingester-collector {metadata.version('ingester-capture')}"


def test_every_listed_code_was_seen() -> None:
    """Run last in this file: each command was driven into every code the table lists for it."""
    unreached = {Exit.INTERNAL, Exit.INTERRUPTED}  # a bug and Ctrl-C: not driven on purpose
    tests = {name for name in globals() if name.startswith("test_")}
    if tests - RAN:
        pytest.skip("only meaningful when the whole file ran")
    for command in ALL:
        assert codes_for(command) - unreached == SEEN[command], command
