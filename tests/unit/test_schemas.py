"""The JSON Schemas published in docs/schemas/ (draft 2020-12) hold for what the collector really
writes: report.json of every fixture bundle and of bare logs, fleet.json and fleet-verify.json of
a fleet of two, verify.json of passing and failing verifications; and they require at least
the keys the collector's own shape checks require (collector/report/schema.py, fleet_schema.py)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from collector.cli import main as cli_main
from collector.report.fleet_schema import SCHEMAS as FLEET_SHAPES
from collector.report.schema import SCHEMA as REPORT_SHAPE
from collector.report.schema import Nullable
from collector.verify import main as verify_main
from tests.support.fixtures import BUNDLES, LOGS
from tests.support.verify_facts import facts

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
ALL_BUNDLES = sorted(p for p in BUNDLES.iterdir() if (p / "expected.json").is_file())
SOME_LOGS = sorted(LOGS.glob("*.log"))


def schema(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    return doc


def errors(name: str, doc: Any) -> list[str]:
    """Every way `doc` breaks the published schema, one line each (empty when it holds)."""
    validator = Draft202012Validator(schema(name))
    return [f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message}" for e in validator.iter_errors(doc)]


def summarize(source: Path, out: Path, *, log: bool = False) -> dict[str, Any]:
    argv = ["summarize", "--log", str(source)] if log else ["summarize", str(source)]
    code = cli_main([*argv, "--out", str(out), "--quiet"])
    assert code in (0, 10, 11), code
    doc: dict[str, Any] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return doc


# ------------------------------------------------------------------------------ the schemas ---


@pytest.mark.parametrize("name", ["report", "fleet", "verify", "deploy"])
def test_each_schema_is_a_draft_2020_12_schema(name: str) -> None:
    doc = schema(name)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"].endswith(f"/{name}.schema.json")
    Draft202012Validator.check_schema(doc)


def _node(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """The object schema behind `node`: its $ref followed, the non-null branch of a oneOf."""
    while True:
        if "$ref" in node:
            node = root["$defs"][node["$ref"].rsplit("/", 1)[1]]
        elif "oneOf" in node:
            node = next(n for n in node["oneOf"] if n != {"type": "null"})
        else:
            return node


def _requires_the_shape(root: dict[str, Any], node: dict[str, Any], shape: Any, path: str) -> list[str]:
    if isinstance(shape, Nullable):
        shape = shape.spec
    node = _node(root, node)
    missing: list[str] = []
    if isinstance(shape, dict):
        required = set(node.get("required", ()))
        for key, sub in shape.items():
            if key not in required:
                missing.append(f"{path}.{key}")
            elif key in node.get("properties", {}):
                missing += _requires_the_shape(root, node["properties"][key], sub, f"{path}.{key}")
    elif isinstance(shape, list) and isinstance(shape[0], dict):
        missing += _requires_the_shape(root, node.get("items", {}), shape[0], f"{path}[]")
    return missing


def test_report_schema_requires_what_the_collector_checks() -> None:
    assert _requires_the_shape(schema("report"), schema("report"), REPORT_SHAPE, "$") == []


@pytest.mark.parametrize("kind", sorted(FLEET_SHAPES))
def test_fleet_schema_requires_what_the_collector_checks(kind: str) -> None:
    root = schema("fleet")
    shape = dict(FLEET_SHAPES[kind])
    hosts = shape.pop("hosts")[0]
    # What only one kind has (verify's criteria) is required in that kind's allOf branch.
    branch = next(b["then"] for b in root["allOf"] if b["if"]["properties"]["kind"]["const"] == kind)
    own = {k for k in shape if k in branch.get("required", ())}
    assert _requires_the_shape(root, root, {k: v for k, v in shape.items() if k not in own}, "$") == []
    assert all(_requires_the_shape(root, root["properties"][k], shape[k], f"$.{k}") == [] for k in own)
    # A host row: the common part, then the kind's own.
    kind_row = _node(root, branch["properties"]["hosts"]["items"])
    common = _node(root, root["$defs"]["host"])
    required = set(common["required"]) | set(kind_row["required"])
    assert set(hosts) <= required, sorted(set(hosts) - required)


# --------------------------------------------------------------------------- real outputs ---


@pytest.mark.parametrize("bundle", ALL_BUNDLES, ids=[p.name for p in ALL_BUNDLES])
def test_every_fixture_bundles_report_holds(tmp_path: Path, bundle: Path) -> None:
    assert errors("report", summarize(bundle, tmp_path)) == []


@pytest.mark.parametrize("log", SOME_LOGS, ids=[p.name for p in SOME_LOGS])
def test_a_bare_logs_report_holds(tmp_path: Path, log: Path) -> None:
    doc = summarize(log, tmp_path, log=True)
    assert doc["input"]["mode"] == "log"
    assert errors("report", doc) == []


def test_the_schema_is_not_vacuous(tmp_path: Path) -> None:
    doc = summarize(BUNDLES / "config-error", tmp_path)
    # Open to what later versions add (a section, a header fact, more context) ...
    grown = copy.deepcopy(doc)
    grown["deploy"] = {"outcome": "kept"}
    grown["header"]["region"] = "eu-west"
    grown["verdict"]["evidence"][0]["context"] = ["a line before the exit"]
    assert errors("report", grown) == []
    # ... but its core is required and typed.
    for broken, why in (
        (lambda d: d["verdict"].pop("exit_path"), "'exit_path' is a required property"),
        (lambda d: d.pop("root_causes"), "'root_causes' is a required property"),
        (lambda d: d["verdict"].update(scenario="crashed"), "is not one of"),
        (lambda d: d["runs"][0].update(ended="yes"), "is not of type 'boolean'"),
        (lambda d: d["header"].pop("host"), "'host' is a required property"),
        (lambda d: d["verdict"].update(severity="bad"), "is not one of"),
    ):
        bad = copy.deepcopy(doc)
        broken(bad)
        found = errors("report", bad)
        assert any(why in e for e in found), found


def _verify(tmp_path: Path, name: str, **over: Any) -> dict[str, Any]:
    src = tmp_path / f"{name}.facts.json"
    src.write_text(json.dumps(facts(**over)))
    out = tmp_path / name
    argv = ["evaluate", "--facts", str(src), "--host", name, "--out-dir", str(out), "--min-uptime-hours", "0.5"]
    code = verify_main(argv)
    assert code in (0, 20)
    doc: dict[str, Any] = json.loads((out / "verify.json").read_text(encoding="utf-8"))
    return doc


def test_verify_json_holds_passing_and_failing(tmp_path: Path) -> None:
    passed = _verify(tmp_path, "pass")
    assert passed["passed"] is True and passed["memory"] is not None
    lines = [{"ts": "2027-01-15T07:59:30Z", "kind": "exit-path", "text": "[EXIT-TRACE] EXIT PATH F"}]
    failed = _verify(tmp_path, "fail", logs={"exit_lines_total": 1, "exit_lines": lines}, container={"memory_limit": 0})
    assert failed["passed"] is False
    for doc in (passed, failed):
        assert errors("verify", doc) == []


def test_a_fleet_of_two_holds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "captures"
    for host, bundle in (("prod-a", "stable"), ("prod-b", "config-error")):
        summarize(BUNDLES / bundle, dest / host / "20261201T100000Z-capture")
    outcomes = tmp_path / "outcomes.json"
    said = {"prod-a": {"status": "ok"}, "prod-b": {"status": "ok"}, "prod-c": {"status": "unreachable"}}
    outcomes.write_text(json.dumps(said))
    assert cli_main(["fleet", str(dest), "--outcomes", str(outcomes), "--quiet"]) == 21
    fleet = json.loads((dest / "fleet.json").read_text(encoding="utf-8"))
    assert [h["status"] for h in fleet["hosts"]] == ["ok", "ok", "unreachable"]
    assert errors("fleet", fleet) == []

    for host in ("prod-a", "prod-b"):
        stamp = dest / host / "verify" / "20261201T110000Z"
        stamp.parent.mkdir(parents=True)
        src = tmp_path / f"{host}.facts.json"
        src.write_text(json.dumps(facts()))
        extra = ["--min-uptime-hours", "0.5"] if host == "prod-a" else []
        verify_main(["evaluate", "--facts", str(src), "--host", host, "--out-dir", str(stamp), *extra])
    assert cli_main(["fleet", "--verify", str(dest), "--quiet"]) == 20
    fleet_verify = json.loads((dest / "fleet-verify.json").read_text(encoding="utf-8"))
    assert fleet_verify["kind"] == "verify" and fleet_verify["criteria"]
    assert errors("fleet", fleet_verify) == []
    capsys.readouterr()
