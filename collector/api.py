"""The collector as a library: `summarize(path) -> Report`, and the fleet's gathering of the
per-host reports. `cli.py` only parses argv and calls these.

The pipeline: the loader reads a bundle into the rules' inputs, the log streams through
`runs.split_runs` and `diagnose`, `report.model` builds report.json and `report.render` the
texts. Reading the bundle and writing the reports are the only I/O.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .diagnose import CRASH_SCENARIOS, diagnose
from .exitcodes import Exit
from .fleet import CAPTURE, Found, Outcome
from .inputs import Context, Coverage, MemoryInput
from .loader import (
    COSTS,
    Bundle,
    bundle_file,
    count_container_lines,
    lines_before,
    load_bare_log,
    load_bundle,
)
from .redaction import Redactor, redact_report
from .report.charts import memory_chart, timeline
from .report.model import CaptureFacts, build_report, history_json, run_ends
from .report.render import links_base, render_html, render_markdown
from .runs import Run, split_runs
from .sources.common import Problem, load_json, strip_controls, valid_text
from .sources.source_index import INDEX, SourceIndex, parse_source_index

GENERATED_BY = "ingester-collector (collector 0.1.0)"
SOURCE_INDEX_LIMIT = 1 << 20
SNIPPET_LIMIT = 256 << 10
REPORTS = ("report.json", "report.md", "report.html")


@dataclass(frozen=True)
class Report:
    """One diagnosis: report.json's document, the texts rendered from it, the exit code."""

    doc: dict[str, Any]
    texts: dict[str, str]  # report.json, report.md, report.html
    exit_code: Exit

    def write(self, out_dir: Path) -> Path:
        """Write the three reports into `out_dir` (created); returns report.md's path."""
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in REPORTS:
            (out_dir / name).write_text(self.texts[name], encoding="utf-8")
        return out_dir / "report.md"


def summarize(
    path: Path, *, bare_log: bool = False, out_dir: Path | None = None, log_name: str | None = None
) -> Report:
    """Diagnose a bundle directory (or, with `bare_log`, a log captured by hand; `log_name`: the
    name a log kept in a temporary file goes by, its reports then not linking to it). The
    reports' links to the bundle's files hold from `out_dir` when they are written there (by
    default they are written into the bundle, or beside the log). Raises BundleError when there
    is nothing to read, OSError when reading fails half-way."""
    base = links_base(path.parent if bare_log else path, out_dir)
    bundle = load_bare_log(path, log_name) if bare_log else load_bundle(path)
    redactor = Redactor()
    doc, runs_kept = analyse(bundle, redactor)
    doc = redact_report(doc, redactor)
    valid = valid_text(doc)
    assert isinstance(valid, dict)
    doc = valid
    tl = timeline(doc["runs"], [r.start for r in runs_kept], [r.end for r in runs_kept])
    exits = [r.end for r in runs_kept if r.ended and r.end is not None]
    mc = memory_chart(bundle.stats, doc["memory"]["limit_bytes"], exits)
    texts = {
        "report.json": json.dumps(doc, indent=2, ensure_ascii=False) + "\n",
        "report.md": render_markdown(doc, base),
        "report.html": render_html(doc, tl, mc, base),
    }
    return Report(doc, texts, exit_code_for(doc["verdict"]["scenario"]))


def exit_code_for(scenario: str) -> Exit:
    """A verdict's scenario as an exit code: 0 stable, 10 a crash scenario, 11 anything else."""
    if scenario == "stable":
        return Exit.OK
    if scenario in CRASH_SCENARIOS:
        return Exit.CRASH_LOOP
    return Exit.INCONCLUSIVE


def analyse(bundle: Bundle, redactor: Redactor | None = None) -> tuple[dict[str, Any], list[Run]]:
    """Stream the logs through the pure pipeline; returns report.json and the runs kept. The
    lines it shows whole are redacted by `redactor` as they are read (`redact_report` then does
    the rest of the report with it)."""
    facts = CaptureFacts(mode="bundle" if bundle.root is not None else "log")
    problems: list[Problem] = list(bundle.problems)
    hashes: dict[str, str] = {}
    ctx = bundle.context
    if bundle.log is not None:
        log = bundle.log
        runs = split_runs(log.records(hash_it=bundle.manifest is not None), ctx)
        diag = diagnose(runs, bundle.memory, bundle.coverage())
        facts.lines[log.source] = log.lines
        ends = run_ends(diag.acc.kept, log.source, log.lines)
        facts.previous = lines_before(log, ends, redact=(redactor or Redactor()).text)
        problems.extend(log.problems)
        if log.sha256:
            hashes[log.source] = log.sha256
    else:
        diag = diagnose(split_runs([], ctx), bundle.memory, bundle.coverage())
    history: dict[str, Any] = {"present": False, "runs": 0}
    if bundle.pre_swap is not None:
        pre = bundle.pre_swap
        pre_ctx = Context(inspect=bundle.pre_inspect)
        pre_diag = diagnose(split_runs(pre.records(), pre_ctx), MemoryInput(), Coverage())
        facts.lines[pre.source] = pre.lines
        problems.extend(pre.problems)
        history = history_json(pre_diag, bundle.pre_inspect, True)
    if bundle.tee is not None and bundle.root is not None:
        try:
            tee_lines = count_container_lines(bundle.tee.path)
        except OSError as exc:
            problems.append(Problem(bundle.tee.source, f"unreadable: {exc.strerror or exc}"))
        else:
            facts.tee_container_lines = tee_lines
            facts.lines[bundle.tee.source] = tee_lines
            if bundle.log is not None:
                facts.tee_missed_lines = max(0, bundle.log.lines - tee_lines)
    logs_account = bundle.manifest.logs if bundle.manifest is not None else None
    if logs_account is not None:
        # The window matched the tee line by line (Compose repeats lines when it re-attaches).
        sources = logs_account.get("sources")
        missed = sources.get("tee_missed_lines") if isinstance(sources, dict) else None
        if isinstance(missed, int) and not isinstance(missed, bool):
            facts.tee_missed_lines = missed
        facts.log_account = {
            k: logs_account.get(k) for k in ("sources", "only_source", "docker_logs_error", "beginnings_unread")
        }
    if bundle.manifest is not None:
        for entry in bundle.manifest.entries:
            got = hashes.get(entry.path)
            if got and entry.sha256 and got != entry.sha256:
                problems.append(Problem(entry.path, "sha256 differs from the manifest"))
    facts.problems = problems
    facts.present = list(bundle.present)
    facts.missing = [(m, COSTS.get(m, "")) for m in bundle.missing]
    facts.costs = dict(COSTS)
    facts.window_start = bundle.host.window_start
    facts.window_end = bundle.host.window_end
    facts.ended_by = bundle.host.ended_by
    facts.container = bundle.host.container or (ctx.inspect.name if ctx.inspect is not None else None)
    facts.container_id = ctx.container_id
    facts.host_mode = bundle.host.mode
    facts.provenance = bundle.provenance if bundle.root is not None else None
    facts.daemon_gaps = list(bundle.host.daemon_gaps)
    facts.restart_count_inspect = ctx.inspect.restart_count if ctx.inspect else None
    source = read_source(bundle.root) if bundle.root is not None else None
    if source is not None:
        problems.extend(Problem(INDEX, msg) for msg in source.problems)
    report = build_report(diag, facts, history, generated_by=GENERATED_BY, source=source)
    return report, [r for r, _ in diag.acc.kept]


def read_source(root: Path) -> SourceIndex | None:
    """The bundle's `source/index.json` and the snippet files it lists (inside `source/` only),
    or None when the bundle has none. Unreadable parts become problems, never exceptions; a
    symbolic link raises BundleError (`loader.bundle_file`)."""
    if not bundle_file(root, INDEX):
        return None
    index = root / INDEX
    try:
        with index.open("rb") as fh:
            text = fh.read(SOURCE_INDEX_LIMIT).decode("utf-8", errors="replace")
    except OSError as exc:
        return SourceIndex(None, (), (), (f"{INDEX}: unreadable: {exc.strerror or exc}",))
    files: dict[str, str] = {}
    try:
        listed = load_json(text).get("snippets") or []
    except (ValueError, AttributeError):
        listed = []
    for s in listed if isinstance(listed, list) else []:
        name = s.get("file") if isinstance(s, dict) else None
        if not isinstance(name, str) or not name:
            continue
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts or rel.parts[:1] != ("source",) or len(rel.parts) < 2:
            continue  # a snippet outside source/ is not read
        if not bundle_file(root, name):
            continue
        try:
            with (root / name).open("rb") as fh:
                text_read = fh.read(SNIPPET_LIMIT).decode("utf-8", errors="replace")
            files[name] = strip_controls(text_read, keep_newlines=True)
        except OSError:
            continue
    return parse_source_index(text, files)


FLEET_READ_LIMIT = 64 << 20


def read_json(path: Path) -> tuple[Any, str | None]:
    """A JSON file's value, or None and why it cannot be read (never an exception)."""
    try:
        with path.open("rb") as fh:
            return load_json(fh.read(FLEET_READ_LIMIT).decode("utf-8", errors="replace")), None
    except OSError as exc:
        return None, f"{path}: {exc.strerror or exc}"
    except ValueError as exc:
        return None, f"{path}: not JSON ({exc})"


def _newest(folders: Sequence[Path], name: str) -> Path | None:
    """The newest of the folders (UTC stamps sort by name) that holds `name`."""
    have = [p for p in folders if (p / name).is_file()]
    return max(have, key=lambda p: p.name) if have else None


def _found_at(host: str, folder: Path | None, name: str, md: str, *, bundle: bool) -> Found:
    if folder is None:
        return Found(host)
    data, error = read_json(folder / name)
    if data is not None and not isinstance(data, dict):
        data, error = None, f"{folder / name}: not a JSON object"
    tarball = folder.with_name(folder.name + ".tar.gz")
    where = str(tarball if tarball.is_file() else folder) if bundle else None
    return Found(host, str(folder / md), where, data, error)


def gather(dest: Path, kind: str, outcomes: dict[str, Outcome]) -> dict[str, Found]:
    """Each host's newest report under DEST (or the one its outcome names)."""
    name, md = ("report.json", "report.md") if kind == CAPTURE else ("verify.json", "verify.md")
    hosts = sorted(p for p in dest.iterdir() if p.is_dir() and not p.name.startswith("."))
    found: dict[str, Found] = {}
    for host_dir in hosts:
        if kind == CAPTURE:
            folders = [p for p in host_dir.iterdir() if p.is_dir() and p.name not in ("verify", "latest")]
        else:
            vdir = host_dir / "verify"
            folders = [p for p in vdir.iterdir() if p.is_dir() and p.name != "latest"] if vdir.is_dir() else []
        if folders:
            found[host_dir.name] = _found_at(host_dir.name, _newest(folders, name), name, md, bundle=kind == CAPTURE)
    for host, outcome in outcomes.items():
        if outcome.status != "unreachable" and outcome.report:
            given = Path(outcome.report)
            folder = given if given.is_dir() else given.parent
            found[host] = _found_at(host, folder, name, md, bundle=kind == CAPTURE)
    return found
