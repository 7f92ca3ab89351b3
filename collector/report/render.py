"""Render report.md, report.html and the terminal summary from report.json and chart geometry."""

from __future__ import annotations

from typing import Any

import jinja2

from collector.report.charts import COLOURS

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("collector.report", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
    trim_blocks=False,
    lstrip_blocks=False,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
    # compiled templates are cached per user in the temp dir: compiling costs more than a
    # 100 MB log takes to read
    bytecode_cache=jinja2.FileSystemBytecodeCache(),
)


def _bytes(n: object) -> str:
    if not isinstance(n, int | float) or isinstance(n, bool):
        return "—"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _rate(n: object) -> str:
    if not isinstance(n, int | float) or isinstance(n, bool):
        return "—"
    return _bytes(n) + "/s"


def _dist(d: dict[str, Any]) -> str:
    if not d or d.get("median") is None:
        return "—"
    return f"median {d['median']:.1f} s (min {d['min']:.1f}, max {d['max']:.1f}, n={d['count']})"


def _mdcell(text: object) -> str:
    s = str(text if text is not None else "")
    return s.replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def _numbered(snippet: dict[str, Any]) -> str:
    """A snippet's lines with their numbers; the cited line marked with `>`."""
    text = snippet.get("text") or ""
    first = snippet.get("start") or 1
    mark = snippet.get("line")
    width = len(str(first + text.count("\n")))
    out = []
    for i, line in enumerate(text.rstrip("\n").split("\n")):
        n = first + i
        out.append(f"{'>' if n == mark else ' '} {n:>{width}} | {line}")
    return "\n".join(out)


def _cites(report: dict[str, Any], ref: str) -> list[dict[str, Any]]:
    """The source snippets that the evidence `ref` (e.g. `verdict.evidence[2]`) cites."""
    src = report.get("source") or {}
    return [s for s in src.get("snippets", []) if ref in s.get("cited_by", [])]


_ENV.filters.update(bytes=_bytes, rate=_rate, dist=_dist, mdcell=_mdcell, numbered=_numbered)
def _beside(snippet: dict[str, Any]) -> bool:
    """Whether a snippet is already shown next to a verdict evidence line."""
    return any(str(c).startswith("verdict.evidence[") for c in snippet.get("cited_by", []))


_ENV.globals.update(cites=_cites, beside=_beside)


def render_markdown(report: dict[str, Any]) -> str:
    return _ENV.get_template("report.md.j2").render(r=report)


def render_html(report: dict[str, Any], timeline: dict[str, Any] | None, memchart: dict[str, Any] | None) -> str:
    colour = COLOURS.get(report["verdict"]["scenario"], "#0f9960")
    return _ENV.get_template("report.html.j2").render(r=report, timeline=timeline, memchart=memchart, colour=colour)


def render_summary(report: dict[str, Any], written: str | None = None) -> str:
    return _ENV.get_template("summary.txt.j2").render(r=report, written=written)
