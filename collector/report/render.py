"""Render report.md, report.html and the terminal summary from report.json and chart geometry."""

from __future__ import annotations

import os
import re
import stat
import urllib.parse
from pathlib import Path
from typing import Any

import jinja2

from ..report.charts import COLOURS
from ..sources.common import strip_controls


class Markdown(str):
    """Text a filter already made Markdown (`code`, `codeblock`): not escaped again. Not
    markupsafe's Markup, so it can never pass for safe HTML."""

    __slots__ = ()


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")
_MD_LINE_START = "#>+-="


def md_text(value: object) -> str:
    """`value` as one line of Markdown that shows it literally: no markup, raw HTML, link or
    table cell break can come from it. None is "—". Every `{{ }}` of a .md template passes
    here (`_finalize`); what a filter already made Markdown (`code`, `codeblock`) does not."""
    if value is None:
        return "—"
    text = _MD_SPECIAL.sub(r"\\\1", _one_line(value))
    return "\\" + text if text[:1] in _MD_LINE_START and text else text


def _one_line(value: object) -> str:
    return strip_controls(str(value).replace("\r\n", " ").replace("\n", " ").replace("\r", " "))


def md_code(value: object) -> Markdown:
    """`value` as a Markdown code span (a fence longer than any run of backticks in it), its
    `|` escaped for a table cell. None is "—"."""
    if value is None:
        return Markdown("—")
    text = _one_line(value).replace("|", "\\|")
    fence = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text[:1] == "`" or text[-1:] == "`" else ""
    return Markdown(f"{fence}{pad}{text}{pad}{fence}")


def md_block(text: str, lang: str = "", indent: int = 0) -> Markdown:
    """`text` as a fenced Markdown code block (a fence no line of it can close), indented."""
    body = strip_controls(text, keep_newlines=True).rstrip("\n").split("\n")
    fence = "`" * max(3, max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    return Markdown("\n".join(" " * indent + line for line in (fence + lang, *body, fence)))


@jinja2.pass_context
def _finalize(context: jinja2.runtime.Context, value: object) -> object:
    """Every expression's value: escaped for Markdown in a .md template, without control
    characters in a .txt one (a terminal reads it); HTML escaping is autoescape's."""
    name = context.name or ""
    if name.endswith(".md.j2"):
        return value if isinstance(value, Markdown) else md_text(value)
    if name.endswith(".txt.j2"):
        return strip_controls(str(value))
    return value


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates cached in a folder of this user's own (compiling costs more than a
    100 MB log takes to read), never in a shared temp folder another user can plant; none when
    no such folder can be had."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    folder = Path(base) / "ingester-collector" / "templates"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = folder.lstat()
    except (OSError, RuntimeError):
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return jinja2.FileSystemBytecodeCache(str(folder))


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader(__package__ or "ingester_capture.report", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
    trim_blocks=False,
    lstrip_blocks=False,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
    finalize=_finalize,
    bytecode_cache=_bytecode_cache(),
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


def _lines(lines: list[dict[str, Any]]) -> str:
    """Log lines with their numbers, one a line."""
    width = max((len(str(x.get("line"))) for x in lines), default=1)
    return "\n".join(f"{x.get('line')!s:>{width}} | {x.get('text', '')}" for x in lines)


def _cites(report: dict[str, Any], ref: str) -> list[dict[str, Any]]:
    """The source snippets that the evidence `ref` (e.g. `verdict.evidence[2]`) cites."""
    src = report.get("source") or {}
    return [s for s in src.get("snippets", []) if ref in s.get("cited_by", [])]


def dash(value: object) -> str:
    """A value for a table: "—" when there is none, on one line."""
    return "—" if value is None or value == "" else _one_line(value)


def href(file: str, line: int | None = None, base: str = "") -> str:
    """A link from the report to a file of the bundle, at its line: relative. `base` is the way
    from the folder the report is written to back to the bundle (or the bare log's folder): ""
    when the report is written there, as by default. A path that is not valid UTF-8 (Python
    holds its bytes as surrogates) is linked by those bytes."""
    return urllib.parse.quote(os.fsencode(base + file)) + (f"#L{line}" if line else "")


def md_link(text: object, file: str, line: int | None = None, base: str = "") -> Markdown:
    """A Markdown link to a file of the bundle at its line: `[text](base/file#Lline)`."""
    return Markdown(f"[{md_text(text)}]({href(file, line, base)})")


def links_base(source: Path, out_dir: Path | None) -> str:
    """`href`'s base for a report written to `out_dir` about the files in `source` (the bundle,
    or the bare log's folder): the relative way from one to the other, "" when they are one."""
    if out_dir is None:
        return ""
    way = os.path.relpath(source.resolve(), out_dir.resolve())
    return "" if way == "." else way.replace(os.sep, "/") + "/"


def _linked(report: dict[str, Any], file: object) -> bool:
    """Whether `file` is one the collector read from beside the report (a link to it resolves)."""
    return isinstance(file, str) and file in (report.get("input") or {}).get("files", [])


def _causes(report: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The root causes the evidence speaks for, and the rest (no evidence, or ruled out)."""
    causes = report.get("root_causes") or []
    shown = [c for c in causes if c.get("evidence") and c.get("likelihood") != "ruled-out"]
    return shown, [c for c in causes if c not in shown]


def _exits(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs whose last lines before their exit the report holds."""
    return [run for run in report.get("runs") or [] if run.get("previous_lines")]


_ENV.filters.update(
    bytes=_bytes, rate=_rate, dist=_dist, numbered=_numbered, code=md_code, codeblock=md_block, dash=dash,
    href=href, link=md_link, lines=_lines,
)


def _beside(snippet: dict[str, Any]) -> bool:
    """Whether a snippet is already shown next to a verdict evidence line."""
    return any(str(c).startswith("verdict.evidence[") for c in snippet.get("cited_by", []))


_ENV.globals.update(cites=_cites, beside=_beside, linked=_linked, causes=_causes, exits=_exits)


# The fleet and verify templates are written with trim_blocks and lstrip_blocks: the same
# environment (loader, filters, escaping, cache) with those two set.
_TRIMMED = _ENV.overlay(trim_blocks=True, lstrip_blocks=True)
TRIMMED = ("fleet.md.j2", "fleet-verify.md.j2", "fleet.txt.j2", "verify.md.j2", "verify-history.md.j2")


def render_template(name: str, **context: Any) -> str:
    """Any template of the collector's, in its one environment."""
    return (_TRIMMED if name in TRIMMED else _ENV).get_template(name).render(**context)


def render_markdown(report: dict[str, Any], base: str = "") -> str:
    """report.md; `base` as `href`'s (the links to the bundle's files)."""
    return _ENV.get_template("report.md.j2").render(r=report, base=base)


def render_html(
    report: dict[str, Any], timeline: dict[str, Any] | None, memchart: dict[str, Any] | None, base: str = ""
) -> str:
    """report.html; `base` as `href`'s (the links to the bundle's files)."""
    colour = COLOURS.get(report["verdict"]["scenario"], "#0f9960")
    return _ENV.get_template("report.html.j2").render(
        r=report, timeline=timeline, memchart=memchart, colour=colour, base=base
    )


def render_summary(report: dict[str, Any], written: str | None = None) -> str:
    return _ENV.get_template("summary.txt.j2").render(r=report, written=written)
