"""report.html as a browser lays it out (issue 21): an OOM kill, a configuration error and a panic,
each summarized into its own bundle as the capture role does, loaded in headless Chromium and
checked from the DOM: the header's facts, one memory line per run (none for the configuration
error), no element wider than its column, and every link resolving to a file of the bundle.

Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: file
descriptors 3 and 4, JSON messages ended by a NUL byte), so no port is opened and no library is
needed. Each page's screenshot is saved under the test's tmp_path.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.cli import main
from collector.sources.common import parse_time
from collector.sources.stats import StatsSample, parse_stats
from tests.support.fixtures import BUNDLES

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# A guard against a browser that never answers, not a measurement: nothing asserts on time.
STUCK = 180.0
WIDTH = 1000

# What the DOM says about the page, read once it has loaded.
PROBE = r"""
(() => {
  const cells = (sel) => [...document.querySelectorAll(sel)];
  const header = Object.fromEntries(cells('#header tr').map(
    tr => [tr.querySelector('th').textContent.trim(), tr.querySelector('td').textContent.trim()]));
  const svg = document.querySelector('#memory');
  const exits = svg ? cells('#memory line.exit').map(l => l.x1.baseVal.value) : [];
  const lines = svg ? cells('#memory g.mem-run').map(g => {
    const pl = g.querySelector('polyline');
    const xs = [...Array(pl.points.numberOfItems).keys()].map(i => pl.points.getItem(i).x);
    return {points: xs.length, min: Math.min(...xs), max: Math.max(...xs)};
  }) : [];
  const wide = (el) => el.scrollWidth > el.clientWidth + 1;
  const boxed = cells('table, td, th, pre, #header, .verdict, details').filter(wide).map(
    el => `${el.tagName.toLowerCase()}#${el.id || ''}.${el.className || ''} ${el.scrollWidth}>${el.clientWidth}`);
  // anything inside a table cell that reaches past the cell's right edge
  const outside = cells('td *').filter(el => {
    const cell = el.closest('td').getBoundingClientRect();
    return el.getBoundingClientRect().right > cell.right + 1;
  }).map(el => el.tagName.toLowerCase() + ': ' + el.textContent.slice(0, 60));
  return {
    title: document.title,
    h1: document.querySelector('h1').textContent,
    header,
    memory_svg: !!svg,
    memory_text: (document.querySelector('#no-memory') || {}).textContent || null,
    polylines: document.querySelectorAll('#memory polyline').length,
    lines, exits,
    evidence_cells: cells('#evidence td').length,
    boxed, outside,
    page: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
    links: cells('a[href]').map(a => a.href),
    folded: cells('details#other-causes li').length,
    previous: cells('pre.lines').length,
  };
})()
"""


class DevTools:
    """A headless Chromium and one page, over the DevTools pipe."""

    def __init__(self, profile: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the browser reads commands on its fd 3 and writes answers on its fd 4 (put there by a
        # small exec stub: a shell's redirections stop at fd 9)
        stub = ("import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
                "os.execv(sys.argv[3], sys.argv[3:])")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", stub, str(to_browser_r), str(from_browser_w),
             CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            pass_fds=(to_browser_r, from_browser_w), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable", session=self.session)

    def _message(self) -> dict[str, Any]:
        while b"\0" not in self._buf:
            ready, _, _ = select.select([self._from_browser], [], [], STUCK)
            if not ready:
                raise RuntimeError("Chromium did not answer on its DevTools pipe")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium closed its DevTools pipe (exit {self.proc.wait()})")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._message()
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result
            self.events.append(answer)

    def wait_for(self, method: str) -> None:
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._message())
        self.events = [e for e in self.events if e.get("method") != method]

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": WIDTH, "height": 1200, "deviceScaleFactor": 1, "mobile": False}, self.session)
        self.call("Page.navigate", {"url": url}, self.session)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, self.session)
        if "exceptionDetails" in result:
            raise RuntimeError(str(result["exceptionDetails"]))
        return result["result"]["value"]

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, self.session)
        path.write_bytes(base64.b64decode(data["data"]))

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, OSError):
            self.call("Browser.close")
        try:
            self.proc.wait(timeout=STUCK)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevTools]:
    if not Path(CHROMIUM).exists():
        pytest.skip("headless Chromium is not installed")
    tools = DevTools(tmp_path_factory.mktemp("chromium-profile"))
    yield tools
    tools.close()


CASES = {"oom-kill": "oom-kill", "config-error": "config-error", "panic": "hypothetical-task-panic"}


def _bundle(case: str, tmp_path: Path) -> Path:
    """A copy of the fixture bundle with the facts the seal records (host, build) and the swap's
    compose.diff, as a real capture bundle has them."""
    bundle = tmp_path / "captures" / "ingester-3" / "20261129T100830Z-capture"
    shutil.copytree(BUNDLES / CASES[case], bundle)
    diff = ("--- docker-compose.yml (before)\n+++ docker-compose.yml (swapped)\n@@ -3,2 +3,2 @@\n"
            "   ingester:\n-    image: rsky-ingester:prod\n+    image: rsky-ingester:debug-811a7cd6\n")
    (bundle / "compose.diff").write_text(diff)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest.update(host="ingester-3", mode="capture", partial=False, build={"commit": "811a7cd6e0f1"})
    manifest["files"].append({"path": "compose.diff", "sha256": None, "size": len(diff), "exit_code": 0})
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


@pytest.mark.parametrize("case", list(CASES))
def test_report_html_in_chromium(case: str, tmp_path: Path, browser: DevTools) -> None:
    bundle = _bundle(case, tmp_path)
    assert main(["summarize", str(bundle), "--quiet"]) == 10  # into the bundle, as the capture role does
    report = json.loads((bundle / "report.json").read_text())
    browser.open((bundle / "report.html").as_uri())
    page = browser.evaluate(PROBE)
    browser.screenshot(tmp_path / f"{case}.png")
    (tmp_path / f"{case}.dom.json").write_text(json.dumps(page, indent=2))

    # the header's facts, and a title naming the host and the verdict
    scenario = report["verdict"]["scenario"]
    assert "ingester-3" in page["title"] and scenario in page["title"] and "critical" in page["title"]
    head = page["header"]
    assert head["Host"] == "ingester-3"
    window = report["header"]["window"]
    assert head["Window (UTC)"].startswith(f"{window['start']} – {window['end']}")
    assert head["Mode"] == "capture"
    assert head["Image"] == "rsky-ingester:debug-811a7cd6 (production: rsky-ingester:prod)"
    assert head["Commit"] == "811a7cd6e0f1"
    assert head["Bundle"] == str(bundle.resolve())
    assert head["Rollback pending"].startswith("yes: the capture left rsky-ingester:debug-811a7cd6 running")
    assert "playbooks/rollback.yml --limit ingester-3" in head["Rollback pending"]

    # one memory line per run that has samples (a sample belongs to the last run started before
    # it), none crossing an exit; no chart without data
    starts = [(parse_time(r["start"]), r["index"]) for r in report["runs"] if r["start"]]
    stats = [s for s in parse_stats((bundle / "stats.jsonl").read_text().splitlines()) if isinstance(s, StatsSample)]
    with_memory = {max((i for t, i in starts if t is not None and t <= s.epoch), default=0)
                   for s in stats if s.mem_bytes}
    if case == "config-error":
        assert not with_memory and not page["memory_svg"] and page["polylines"] == 0
        assert "none of the 2 samples caught the process running" in page["memory_text"]
    else:
        assert with_memory and page["memory_svg"]
        assert page["polylines"] == len(page["lines"]) == len(with_memory)
        for line in page["lines"]:
            assert not any(line["min"] < x < line["max"] for x in page["exits"]), (line, page["exits"])

    # nothing wider than its box: the evidence table, its cells, the pre blocks, the page
    assert page["evidence_cells"] > 0
    assert page["boxed"] == [] and page["outside"] == []
    assert page["page"][0] <= page["page"][1] == WIDTH

    # every link resolves to a file of the bundle
    assert page["links"]
    for link in page["links"]:
        url = urllib.parse.urlsplit(link)
        path = Path(urllib.request.url2pathname(url.path))
        assert url.scheme == "file" and path.is_file(), link
        assert path.resolve().is_relative_to(bundle.resolve()), link
    assert any(link.split("#")[0].endswith("/logs/ingester.log") for link in page["links"])
    assert page["previous"] == sum(1 for r in report["runs"] if r["previous_lines"]) > 0
    assert page["folded"] == sum(1 for c in report["root_causes"]
                                 if not c["evidence"] or c["likelihood"] == "ruled-out") > 0
