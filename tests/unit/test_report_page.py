"""The report as a page for the ticket and the 3 a.m. reader (issue 21): a header naming the host,
the window, the mode, the image, the commit, the bundle and a pending rollback; one memory line
per run and no chart without data; evidence that links into the bundle with the lines before each
exit; causes without evidence folded away; severity and the next steps' commands.

Each case reads a real fixture bundle (an OOM kill, a configuration error, a task panic); where a
fact is one the seal records and the recorded fixtures predate, the test writes it where the seal
writes it (manifest.json `host`/`build`, host.json `hostname`, the swap's compose.diff).
"""

from __future__ import annotations

import html as htmllib
import json
import re
import shutil
import urllib.parse
from pathlib import Path
from typing import Any

import markupsafe
import pytest

from collector import loader
from collector.api import summarize
from collector.cli import main
from collector.redaction import redact_line
from collector.report.charts import _ticks, memory_chart
from collector.search import LogInput
from collector.sources.common import parse_time, strip_controls
from tests.support.fixtures import BUNDLES, LOGS

OOM, CONFIG, PANIC = "oom-kill", "config-error", "hypothetical-task-panic"
DIFF = """--- docker-compose.yml (before)
+++ docker-compose.yml (swapped)
@@ -3,3 +3,3 @@
   ingester:
-    image: rsky-ingester:prod
+    image: rsky-ingester:debug-811a7cd6
     restart: unless-stopped
"""


def _sealed(case: str, root: Path, host: str = "ingester-7") -> Path:
    """A copy of a fixture bundle with what the seal and collect record about its provenance."""
    bundle = root / case
    shutil.copytree(BUNDLES / case, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest.update(host=host, mode="capture", created="2026-11-29T10:09:00.000000Z", partial=False,
                    build={"commit": "811a7cd6e0f1", "context": "rsky", "image": "rsky-ingester:debug-811a7cd6"})
    (bundle / "compose.diff").write_text(DIFF)
    manifest["files"].append({"path": "compose.diff", "sha256": None, "size": len(DIFF), "exit_code": 0})
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    hostinfo = json.loads((bundle / "host.json").read_text())
    hostinfo["hostname"] = "vm-7"
    (bundle / "host.json").write_text(json.dumps(hostinfo))
    return bundle


def _texts(path: Path, *, bare: bool = False) -> tuple[dict[str, Any], str, str]:
    report = summarize(path, bare_log=bare)
    return report.doc, report.texts["report.md"], report.texts["report.html"]


# 1. The header


def test_the_header_names_host_window_mode_image_commit_bundle_and_rollback(tmp_path: Path) -> None:
    bundle = _sealed(OOM, tmp_path)
    doc, md, html = _texts(bundle)
    hd = doc["header"]
    assert (hd["host"], hd["hostname"], hd["mode"]) == ("ingester-7", "vm-7", "capture")
    assert (hd["image"], hd["original_image"]) == ("rsky-ingester:debug-811a7cd6", "rsky-ingester:prod")
    assert hd["commit"] == "811a7cd6e0f1" and hd["bundle"] == str(bundle.resolve())
    assert hd["window"] == {"start": "2026-11-29T10:08:32.965Z", "end": "2026-11-29T10:08:38.719Z", "seconds": 5.8}
    assert hd["rollback"]["pending"] is True and "--limit ingester-7" in hd["rollback"]["command"]
    for text in (md, html):
        for fact in ("ingester-7", "vm-7", "2026-11-29T10:08:32.965Z", "2026-11-29T10:08:38.719Z",
                     "rsky-ingester:debug-811a7cd6", "rsky-ingester:prod", "811a7cd6e0f1", str(bundle.resolve()),
                     "playbooks/rollback.yml --limit ingester-7"):
            assert fact in text, fact
    title = re.search(r"<title>(.*)</title>", html)
    assert title and "ingester-7" in title[1] and "oom-kill" in title[1]
    assert md.splitlines()[0] == "# ingester-7: rsky-ingester oom-kill (critical)"


def test_every_host_has_its_own_title(tmp_path: Path) -> None:
    titles = {
        re.search(r"<title>(.*)</title>", _texts(_sealed(case, tmp_path / host, host))[2])[1]  # type: ignore[index]
        for case, host in ((OOM, "ingester-1"), (OOM, "ingester-2"), (CONFIG, "ingester-1"))
    }
    assert len(titles) == 3


def test_a_recorded_bundle_says_what_it_does_not_record(tmp_path: Path) -> None:
    doc, md, html = _texts(BUNDLES / CONFIG)
    hd = doc["header"]
    assert hd["host"] is None and hd["image"] is None and hd["commit"] is None and hd["mode"] == "capture"
    assert "| Host | unknown |" in md and "| Image | unknown |" in md and "Unknown: not recorded in this bundle." in md
    row = re.search(r"<tr><th>Host</th><td>(.*?)</td></tr>", html)
    assert row and "unknown" in row[1]
    assert "<td></td>" not in html.split("</table>")[0]


def test_a_bare_log_says_everything_in_the_header_is_unknown(tmp_path: Path) -> None:
    log = LOGS / "handmade-all-panicked-prod.docker-ts.log"
    doc, md, html = _texts(log, bare=True)
    hd = doc["header"]
    assert hd["bundle"] is None and hd["mode"] is None and hd["rollback"]["pending"] is None
    assert "a bare log" in hd["unknown"]
    for text in (md, html):
        assert "a bare log: no bundle records the host" in text
        assert "unknown host" in text
    assert "| Window (UTC) | unknown |" in md and "| Bundle | unknown |" in md


def test_observe_and_a_deploy_gate_have_no_rollback_pending(tmp_path: Path) -> None:
    doc, _md, _html = _texts(BUNDLES / "handmade-docker-stop")  # an observe pass
    assert doc["header"]["mode"] == "observe" and doc["header"]["rollback"]["pending"] is False
    gate = tmp_path / "captures" / "ingester-1" / "deploy" / "20261207T010000Z"
    gate.mkdir(parents=True)
    bundle = _sealed(PANIC, gate)
    bundle.rename(gate / "bundle")  # where the deploy role seals its gate's bundle
    doc, md, _html = _texts(gate / "bundle")
    assert doc["header"]["mode"] == "deploy-gate" and doc["header"]["rollback"]["pending"] is False
    assert "| Mode | deploy gate |" in md and "put the original image back" in doc["header"]["rollback"]["statement"]


# 2. The memory chart


def _bundle_chart(case: str) -> dict[str, Any] | None:
    b = loader.load_bundle(BUNDLES / case)
    doc = summarize(BUNDLES / case).doc
    exits = [parse_time(r["end"]) for r in doc["runs"] if r["ended"] and r["end"]]
    return memory_chart(b.stats, doc["memory"]["limit_bytes"], [e for e in exits if e is not None])


def test_the_oom_kill_has_one_memory_line_per_run_not_one_across_restarts() -> None:
    chart = _bundle_chart(OOM)
    assert chart is not None
    # two samples, 56.6 MiB in run 2 and 8.7 MiB in run 3: two lines, never one falling line
    assert len(chart["lines"]) == 2
    assert [len(line["points"].split()) for line in chart["lines"]] == [1, 1]
    assert all(line["dots"] for line in chart["lines"])  # a one-sample run is drawn as a dot
    html = summarize(BUNDLES / OOM).texts["report.html"]
    svg = html[html.index('<svg id="memory"') : html.index("</svg>", html.index('<svg id="memory"'))]
    assert svg.count('<g class="mem-run">') == 2 and svg.count("<polyline") == 2


def test_the_config_error_has_no_memory_chart_but_a_sentence() -> None:
    assert _bundle_chart(CONFIG) is None
    _doc, md, html = _texts(BUNDLES / CONFIG)
    assert '<svg id="memory"' not in html and "peak 0 B" not in html
    assert "none of the 2 samples caught the process running" in html
    assert "| Peak | 0 B |" not in md and "None of the 2 memory samples caught the process running" in md


@pytest.mark.parametrize("case", [OOM, CONFIG, PANIC])
def test_no_chart_repeats_a_tick_label(case: str) -> None:
    html = summarize(BUNDLES / case).texts["report.html"]
    for svg in re.findall(r"<svg.*?</svg>", html, re.S):
        labels = re.findall(r'text-anchor="middle">([^<]+)</text>', svg)
        assert labels and len(labels) == len(set(labels)), labels


@pytest.mark.parametrize("span", [0.3, 2.0, 5.8, 14.0, 61.0, 900.0, 5000.0, 86400.0, 4 * 86400.0])
def test_ticks_are_distinct_and_inside_the_span(span: float) -> None:
    t0 = 1795946912.964991
    ticks = _ticks(t0, t0 + span)
    labels = [t.label for t in ticks]
    assert 2 <= len(ticks) <= 11 and len(set(labels)) == len(labels), labels
    assert all(60 <= t.x <= 840 for t in ticks)


# 3. Evidence links and the lines before each exit


def _hrefs(html: str) -> list[str]:
    return [htmllib.unescape(h) for h in re.findall(r'href="([^"]*)"', html)]


@pytest.mark.parametrize("case", [OOM, CONFIG, PANIC])
def test_every_link_resolves_to_a_file_of_the_bundle(case: str, tmp_path: Path) -> None:
    bundle = tmp_path / case
    shutil.copytree(BUNDLES / case, bundle)
    assert main(["summarize", str(bundle), "--quiet"]) == 10  # written into the bundle, as the role does
    html = (bundle / "report.html").read_text()
    md = (bundle / "report.md").read_text()
    links = _hrefs(html) + re.findall(r"\]\(([^)]+)\)", md)
    assert any(h.startswith("logs/ingester.log#L") for h in links)
    for h in links:
        path = h.split("#", 1)[0]
        assert (bundle / path).is_file() and (bundle / path).resolve().is_relative_to(bundle.resolve()), h
    report = json.loads((bundle / "report.json").read_text())
    for e in report["verdict"]["evidence"]:
        anchor = f'href="{e["file"]}' + (f'#L{e["line"]}"' if e["line"] else '"')
        assert anchor in html


@pytest.mark.parametrize("where", ["beside", "nested", "log"])
def test_links_resolve_from_where_out_writes_the_reports(where: str, tmp_path: Path) -> None:
    """--out writes the reports elsewhere: their links still lead to the bundle's files (or the
    bare log), from there; the evidence link count does not change."""
    bundle = tmp_path / "bundles" / PANIC
    shutil.copytree(BUNDLES / PANIC, bundle)
    out = {"beside": tmp_path / "reports", "nested": bundle / "reports" / "today"}.get(where, tmp_path / "r")
    if where == "log":  # a log captured by hand, with --log
        log = tmp_path / "hand" / "my log.txt"
        log.parent.mkdir()
        shutil.copy(bundle / "logs" / "ingester.log", log)
        argv = ["summarize", "--log", str(log), "--out", str(out), "--quiet"]
        target = log
    else:
        argv = ["summarize", str(bundle), "--out", str(out), "--quiet"]
        target = bundle / "logs" / "ingester.log"
    assert main(argv) == 10
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    links = _hrefs(html) + re.findall(r"\]\(([^)]+)\)", md)
    assert len(links) >= 2
    for h in links:
        path = urllib.parse.unquote(h.split("#", 1)[0])
        assert (out / path).resolve() == target.resolve() or (out / path).resolve().is_relative_to(bundle.resolve()), h
        assert (out / path).is_file(), h


def marks(text: str) -> str:
    """`text` with the report's numbered placeholders as in-place ones."""
    return re.sub(r"\[REDACTED-[0-9]+\]", "[REDACTED]", text)


def test_each_exit_shows_the_lines_before_it_from_the_merged_log() -> None:
    doc, md, html = _texts(BUNDLES / CONFIG)
    lines = (BUNDLES / CONFIG / "logs" / "ingester.log").read_text().splitlines()
    runs = doc["runs"]
    assert [r["exit_code"] for r in runs] == [1, 1, 1, 1]
    for run, nxt in zip(runs, [*runs[1:], None], strict=True):
        prev = run["previous_lines"]
        assert len(prev) == 5 and {p["file"] for p in prev} == {"logs/ingester.log"}
        end = nxt["start_line"] - 1 if nxt else len(lines)
        assert [p["line"] for p in prev] == list(range(end - 4, end + 1))
        # as the bundle holds them, redacted as every line the collector shows (numbered by the
        # report's redactor: one secret, one number across the report)
        assert [marks(p["text"]) for p in prev] == [redact_line(strip_controls(lines[p["line"] - 1])) for p in prev]
    last = runs[-1]["previous_lines"][-1]
    assert str(markupsafe.escape(last["text"])) in html
    assert f"{last['line']} | " in md and "## Before each exit" in md


def test_a_run_still_going_has_no_previous_lines_and_panic_runs_do() -> None:
    doc, _md, html = _texts(BUNDLES / PANIC)
    assert [bool(r["previous_lines"]) for r in doc["runs"]] == [True, True, True, False]
    assert html.count('<pre class="mono lines">') == 3


def test_previous_lines_are_escaped_and_redacted(tmp_path: Path) -> None:
    log = tmp_path / "by-hand.log"
    text = (LOGS / "handmade-redis-url-prod.docker-ts.log").read_text()
    log.write_text(text.rstrip("\n") + "\n" + text.splitlines()[-1].split(" ", 1)[0]
                   + " <script>alert(1)</script> | `x` redis://:hunter2@redis:6379\n")
    doc, md, html = _texts(log, bare=True)
    shown = [p["text"] for r in doc["runs"] for p in r["previous_lines"]]
    assert any("<script>" in t for t in shown) and not any("hunter2" in t for t in shown)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "hunter2" not in md and "hunter2" not in html


def test_the_evidence_table_cannot_overflow_its_column() -> None:
    html = summarize(BUNDLES / OOM).texts["report.html"]
    assert '<table class="fixed" id="evidence">' in html
    css = html[html.index("<style>") : html.index("</style>")]
    assert "table.fixed { table-layout: fixed; }" in css
    assert re.search(r"th, td \{[^}]*overflow-wrap: anywhere", css)
    assert re.search(r"pre \{[^}]*white-space: pre-wrap[^}]*overflow-wrap: anywhere", css)


@pytest.mark.parametrize("chunk", [1, 7, 64, 4096])
def test_lines_at_reads_the_same_lines_across_block_edges(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    path = BUNDLES / PANIC / "logs" / "ingester.log"
    lines = path.read_bytes().decode().split("\n")
    monkeypatch.setattr(loader, "CHUNK", chunk)
    wanted = {1, 2, 60, 61, 64, len(lines) - 1}
    got = loader.lines_at(path, wanted)
    assert got == {n: loader._shown(lines[n - 1].encode()) for n in wanted}


@pytest.mark.parametrize("chunk", [1, 7, 64, 4096])
@pytest.mark.parametrize("case", [OOM, CONFIG, PANIC, "hypothetical-task-error-labeler"])
def test_lines_at_reads_the_same_lines_from_the_end(case: str, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # The second half of a file is read from its end, numbered back from the line count the
    # reading itself arrived at: the same lines as a forward pass over the whole file.
    path = BUNDLES / case / "logs" / "ingester.log"
    log = LogInput(path, "logs/ingester.log")
    list(log.records())
    monkeypatch.setattr(loader, "CHUNK", chunk)
    total = log.lines
    wanted = {1, 2, total // 2, total // 2 + 1, total - 5, total - 1, total}
    assert loader.lines_at(path, wanted, total=total) == loader.lines_at(path, wanted)
    assert len(loader.lines_at(path, wanted, total=total)) == len(wanted)


@pytest.mark.parametrize("shape", ["crlf", "no-final-newline", "blank-lines"])
def test_lines_from_the_end_hold_on_other_line_shapes(shape: str, tmp_path: Path) -> None:
    text = (BUNDLES / CONFIG / "logs" / "ingester.log").read_text()
    text = {
        "crlf": text.replace("\n", "\r\n"),
        "no-final-newline": text.rstrip("\n"),
        "blank-lines": text.replace("\n", "\n\n"),
    }[shape]
    path = tmp_path / "ingester.log"
    path.write_text(text, newline="")
    log = LogInput(path, "logs/ingester.log")
    list(log.records())
    wanted = set(range(max(1, log.lines - 8), log.lines + 1)) | {1, 2}
    assert loader.lines_at(path, wanted, total=log.lines) == loader.lines_at(path, wanted)


def test_the_first_exit_and_the_newest_show_their_lines() -> None:
    log = LogInput(BUNDLES / PANIC / "logs" / "ingester.log", "logs/ingester.log")
    list(log.records())
    ends = {run: 10 * run for run in range(1, 15)}
    shown = loader.lines_before(log, ends)
    assert sorted(shown) == [1, *range(5, 15)]
    assert [n for _f, n, _t in shown[14]] == [136, 137, 138, 139, 140]


# 4. Causes, severity, next steps


@pytest.mark.parametrize("case", [OOM, CONFIG, PANIC])
def test_causes_without_evidence_are_folded_away(case: str) -> None:
    doc, md, html = _texts(BUNDLES / case)
    bare = [c["title"] for c in doc["root_causes"] if not c["evidence"]]
    assert bare
    table = html[html.index('<table class="fixed" id="causes">') : html.index("</table>", html.index('id="causes"'))]
    folded = html[html.index('<details id="other-causes">') : html.index("</details>", html.index("other-causes"))]
    md_table = md[md.index("## Root causes, ranked") : md.index("Other causes considered:")]
    md_folded = md[md.index("Other causes considered:") :].split("\n", 1)[0]
    for title in bare:
        assert str(markupsafe.escape(title)) in folded and str(markupsafe.escape(title)) not in table
        assert title in md_folded and title not in md_table
    top = doc["root_causes"][0]
    assert str(markupsafe.escape(top["title"])) in table and f'class="likelihood {top["likelihood"]}"' in table


@pytest.mark.parametrize(("case", "severity"), [(OOM, "critical"), (CONFIG, "critical"), (PANIC, "critical"),
                                                 ("stable", "ok")])
def test_severity_is_shown(case: str, severity: str) -> None:
    doc, md, html = _texts(BUNDLES / case)
    assert doc["verdict"]["severity"] == doc["header"]["severity"] == severity
    assert f'<span class="severity {severity}">{severity}</span>' in html
    assert md.splitlines()[0].endswith(f"({severity})")


@pytest.mark.parametrize("case", [OOM, CONFIG, PANIC])
def test_the_next_steps_carry_their_commands(case: str) -> None:
    doc, md, html = _texts(BUNDLES / case)
    checks = [a["check"] for a in doc["verdict"]["advice"] if a["check"]]
    assert checks
    for check in checks:
        assert f"<code>{markupsafe.escape(check)}</code>" in html
    assert "check: `" in md
    # the next steps come before the charts: the reader sees what to do first
    assert html.index("<h2>Next steps</h2>") < html.index("<h2>Restart timeline</h2>")


def test_a_run_start_lost_to_rotation_is_said_in_every_report(tmp_path: Path) -> None:
    """The window's `beginnings_unread` (a run whose first lines rotation removed before its
    follower read them) reaches report.json, report.md and report.html."""
    bundle = _sealed("hypothetical-prod-task-error", tmp_path)
    manifest = json.loads((bundle / "manifest.json").read_text())
    statement = (
        "run 3 of the window (started 2026-11-29T10:09:30.000000Z): when its follower opened Docker's log at "
        "2026-11-29T10:09:30.050000Z, the previous run's last line (2026-11-29T10:09:29.100000000Z) was gone and "
        "the oldest line left was from 2026-11-29T10:09:30.020000000Z; log rotation had removed what was written "
        "between them, the start of run 3, before it could be read (only lines the tee caught are kept)"
    )
    unread = {"run": 3, "started": "2026-11-29T10:09:30.000000Z", "follower_started": "2026-11-29T10:09:30.050000Z",
              "last_line_before": "2026-11-29T10:09:29.100000000Z", "oldest_read": "2026-11-29T10:09:30.020000000Z",
              "statement": statement}
    manifest["logs"] = {"sources": {"follow": 10, "end_read": 5, "tee_only": 0}, "only_source": None,
                        "docker_logs_error": None, "beginnings_unread": [unread]}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    doc, md, page = _texts(bundle)
    assert doc["capture"]["log_sources"]["beginnings_unread"] == [unread]
    assert f"- Lost to rotation: {statement}." in md
    assert f"<li>Lost to rotation: {markupsafe.escape(statement)}.</li>" in page
    # A bundle without it says nothing of the kind.
    _doc, plain_md, plain_page = _texts(_sealed("hypothetical-prod-task-error", tmp_path / "plain"))
    assert "Lost to rotation" not in plain_md and "Lost to rotation" not in plain_page
