"""Every module of the collection documents itself: ansible-doc renders it, with defaults."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.ansible_doc import ansible_doc

REPO = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py"))


def test_there_are_modules() -> None:
    assert {"preflight", "capture_lock", "compose_image", "capture_window", "collect", "seal", "verify_probe"} <= set(
        MODULES
    )


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_renders_the_module(name: str) -> None:
    doc = ansible_doc("module", name)[f"rsky.ingester_capture.{name}"]
    assert doc["doc"]["short_description"]
    assert doc["return"], "RETURN must be documented"
    for key, spec in doc["return"].items():
        assert "sample" in spec, f"{name} returns {key} without a sample"
    assert doc["examples"].strip()
    options = doc["doc"]["options"]
    for option, spec in options.items():
        assert spec.get("description"), f"{name}.{option} has no description"
        assert spec.get("required") or "default" in spec or spec.get("type") in {"str", "path", "list", "dict"}, option
    assert doc["doc"].get("requirements"), f"{name} lists no requirements"
    for attribute in doc["doc"]["attributes"].values():
        assert attribute["description"] and attribute["support"] in {"full", "partial", "none"}


def test_preflight_refuses_an_old_python_in_one_line() -> None:
    sys.path.insert(0, str(REPO / "collections"))
    from ansible_collections.rsky.ingester_capture.plugins.module_utils.python_floor import python_problem

    line = python_problem((3, 7, 3), "/usr/bin/python3")
    assert line == (
        "Python 3.7.3 at /usr/bin/python3 is too old for ingester-capture: the host needs Python 3.8 or newer"
    )
    assert python_problem((3, 8, 0), "/usr/bin/python3") is None


def test_every_filter_is_documented() -> None:
    sys.path.insert(0, str(REPO / "collections"))
    from ansible_collections.rsky.ingester_capture.plugins.filter.fleet import FilterModule

    names = sorted(FilterModule().filters())
    docs = ansible_doc("filter", *names)
    for name in names:
        doc = docs[f"rsky.ingester_capture.{name}"]
        assert doc["doc"]["short_description"] and doc["doc"]["description"], name
        assert doc["examples"].strip() and doc["return"], name
