"""Source beside the verdict: the bundle's source/index.json shown next to the evidence it cites."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from collector.cli import main
from collector.report.schema import validate
from collector.sources.source_index import dependency_of, parse_source_index, path_line
from tests.support.fixtures import BUNDLES

CASE = BUNDLES / "handmade-source-beside"


def _summarize(bundle: Path, out: Path) -> tuple[dict[str, Any], str, str]:
    code = main(["summarize", str(bundle), "--out", str(out), "--quiet"])
    assert code == 10
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    return report, (out / "report.md").read_text(), (out / "report.html").read_text()


def test_each_snippet_is_listed_with_what_cites_it(tmp_path: Path) -> None:
    report, _md, _html = _summarize(CASE, tmp_path)
    assert validate(report) == []
    src = report["source"]
    assert src["commit"] == "13f9a6b7e0c4d2a1b5f6e7d8c9b0a1f2e3d4c5b6"
    by_kind = {s["kind"]: s for s in src["snippets"]}
    panic = by_kind["panic"]
    assert "panic" in panic["cited_by"]
    ev = report["verdict"]["evidence"]
    cited = [int(c.split("[")[1].rstrip("]")) for c in panic["cited_by"] if c.startswith("verdict.evidence")]
    assert cited and all(ev[i]["line"] == report["panic"]["line"] for i in cited)
    run_fn = by_kind["run_fn"]
    assert "pub async fn run_labeler" in run_fn["text"]
    (i,) = [int(c.split("[")[1].rstrip("]")) for c in run_fn["cited_by"]]
    assert "labeler" in ev[i]["text"].lower()
    dep = by_kind["dependency"]
    assert (dep["crate"], dep["version"]) == ("tokio", "1.47.1")
    assert any(c.startswith("error.backtrace[") for c in dep["cited_by"])
    missing = {"location": "./rsky-ingester/src/bin/ingester.rs:13:1", "why": "not in the build context"}
    assert src["missing"] == [missing]


def test_the_code_sits_next_to_the_evidence_line(tmp_path: Path) -> None:
    _report, md, html = _summarize(CASE, tmp_path)
    evidence = md[md.index("## Evidence") : md.index("## Source beside the verdict")]
    items = evidence.split("\n- `")
    panic_item = next(i for i in items if "FATAL PANIC OCCURRED" in i.splitlines()[0])
    assert "> 123 |         let seq = header.seq.unwrap();" in panic_item
    exit_item = next(i for i in items if "All labeler tasks exited" in i.splitlines()[0])
    assert "pub async fn run_labeler" in exit_item
    assert "crate `tokio` 1.47.1" in md
    assert html.count('<pre class="mono">') == 2 and "run_labeler" in html
    assert "&gt; 123 |" in html  # escaped, not raw


def test_no_source_folder_gives_null(tmp_path: Path) -> None:
    report, md, _html = _summarize(BUNDLES / "hypothetical-task-panic", tmp_path)
    assert report["source"] is None and validate(report) == []
    assert "Source beside the verdict" not in md


def test_a_damaged_index_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(CASE, bundle)
    (bundle / "source" / "index.json").write_text("{not json")
    report, _md, _html = _summarize(bundle, tmp_path / "out")
    assert report["source"]["snippets"] == [] and report["source"]["problems"]
    assert any(d["file"] == "source/index.json" for d in report["capture"]["damaged"])


def test_a_snippet_outside_source_is_not_read(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(CASE, bundle)
    index = json.loads((bundle / "source" / "index.json").read_text())
    index["snippets"][0]["file"] = "../host.json"
    (bundle / "source" / "index.json").write_text(json.dumps(index))
    report, _md, _html = _summarize(bundle, tmp_path / "out")
    first = report["source"]["snippets"][0]
    assert first["text"] is None and any("not in the bundle" in p for p in report["source"]["problems"])


def test_dependency_locations_name_crate_and_version() -> None:
    loc = "/usr/local/cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.40.0/src/x.rs:4:5"
    assert dependency_of(loc) == ("tokio", "1.40.0")
    assert dependency_of("/root/.cargo/registry/src/github.com-1ecc6299db9ec823/serde_json-1.0.128/src/de.rs:1:1") == (
        "serde_json",
        "1.0.128",
    )
    assert dependency_of("rsky-ingester/src/labeler.rs:123:45") is None
    assert path_line("./rsky-ingester/src/bin/ingester.rs:13:1") == ("rsky-ingester/src/bin/ingester.rs", 13)
    idx = parse_source_index(json.dumps({"schema_version": 1, "snippets": [{"kind": "panic", "location": loc}]}), {})
    assert idx.snippets[0].kind == "dependency" and idx.snippets[0].crate == "tokio"


@given(st.text(max_size=200))
def test_the_index_reader_never_raises(text: str) -> None:
    parse_source_index(text, {})
    parse_source_index(json.dumps({"snippets": [text, {"location": text, "file": text}], "missing": [text]}), {})


def test_a_panic_inside_a_dependency_names_the_crate(tmp_path: Path) -> None:
    log = tmp_path / "dep.log"
    loc = "/usr/local/cargo/registry/src/index.crates.io-6f17d22bba15001f/tokio-1.47.1/src/runtime/time/entry.rs:602:9"
    log.write_text(
        "2026-11-29T10:00:00.000000000Z Starting rsky-ingester\n"
        + "".join(
            f"2026-11-29T10:00:05.00000000{i}Z thread 'tokio-runtime-worker' panicked at {loc}:\n"
            f"2026-11-29T10:00:05.00000000{i}Z A Tokio 1.x context was found, but it is being shutdown.\n"
            for i in range(3)
        )
        + "2026-11-29T10:00:05.100000000Z Error: CRITICAL: All firehose tasks exited. This should never happen.\n"
    )
    main(["summarize", "--log", str(log), "--out", str(tmp_path), "--quiet"])
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["panic"]["dependency"] == {"crate": "tokio", "version": "1.47.1"}
    assert "in dependency `tokio` 1.47.1" in (tmp_path / "report.md").read_text()
