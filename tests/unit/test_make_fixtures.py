"""The fixtures make_fixtures.py recorded from real stand-in containers cannot be recorded again byte
for byte (times, ids, the kernel's log), so they are checked for what they must carry instead: each
bundle's provenance (its manifest names the recorder, and every file it lists has the bytes it
recorded), an answer-key entry for the bundle and for each bare form of its log, and, for what the
recorder derives from a recording without a container (the plain and CRLF bare logs, the
journalctl/cgroup v2 variant of oom-kill), the committed bytes are what it derives today."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.fixtures import make_fixtures
from tests.fixtures.make_fixtures import CASES, Case
from tests.support.answers import KEY
from tests.support.fixtures import BUNDLES, FIXTURES, LOGS

DERIVED = "derived-oom-journal-cgroup2"
RECORDED = [case.name for case in CASES] + [DERIVED]
ANSWERED = {entry["fixture"] for entry in KEY}
# The bare forms of a case's log: the bundle's own file (kept once), or one derived into logs/.
OWN = {"docker-ts": "logs/ingester.log", "tee": "logs/tee.log"}


def bare_fixture(case: Case, form: str) -> str:
    return f"bundles/{case.name}/{OWN[form]}" if form in OWN else f"logs/{case.name}.{form}.log"


@pytest.mark.parametrize("name", RECORDED)
def test_a_recorded_bundle_carries_its_provenance(name: str) -> None:
    bundle = BUNDLES / name
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["tool"] == "ingester-capture (tests/fixtures/make_fixtures.py)"
    listed = {entry["path"]: entry for entry in manifest["files"]}
    for rel, entry in listed.items():
        data = (bundle / rel).read_bytes()
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (entry["sha256"], entry["size"]), rel
    present = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert present - set(listed) == {"manifest.json", "expected.json"}, "a file the recorder did not record"


@pytest.mark.parametrize("name", RECORDED)
def test_a_recorded_bundle_is_answered(name: str) -> None:
    assert f"bundles/{name}" in ANSWERED


@pytest.mark.parametrize(
    ("case", "form"), [(c, f) for c in CASES for f in c.bare_logs], ids=lambda v: v if isinstance(v, str) else v.name
)
def test_each_bare_form_exists_and_is_answered(case: Case, form: str) -> None:
    fixture = bare_fixture(case, form)
    assert (FIXTURES / fixture).is_file(), fixture
    assert fixture in ANSWERED, f"{fixture} has no answer-key entry"


def test_no_bare_log_copies_a_bundle_file() -> None:
    bundle_files = {p.read_bytes() for p in BUNDLES.glob("*/logs/*.log")}
    copies = [p.name for p in LOGS.glob("*.log") if p.read_bytes() in bundle_files]
    assert not copies, f"kept twice (answer the bundle's own file instead): {copies}"


def test_the_derived_bare_logs_are_what_the_recorder_derives(tmp_path: Path) -> None:
    derived = 0
    for case in CASES:
        make_fixtures._bare(case, BUNDLES / case.name, tmp_path)
    for path in sorted(tmp_path.iterdir()):
        assert path.read_bytes() == (LOGS / path.name).read_bytes(), path.name
        derived += 1
    assert derived == sum(1 for c in CASES for f in c.bare_logs if f not in OWN)


def test_the_derived_bundle_is_what_the_recorder_derives(tmp_path: Path) -> None:
    make_fixtures.derive_variants(tmp_path)
    made, committed = tmp_path / DERIVED, BUNDLES / DERIVED
    files = sorted(p.relative_to(made).as_posix() for p in made.rglob("*") if p.is_file())
    assert files and files == sorted(
        p.relative_to(committed).as_posix() for p in committed.rglob("*") if p.is_file() and p.name != "expected.json"
    )
    assert [rel for rel in files if (made / rel).read_bytes() != (committed / rel).read_bytes()] == []
