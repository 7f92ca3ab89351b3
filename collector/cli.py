"""Command line: `ingester-collector summarize BUNDLE_DIR` (or `--log FILE`), `fleet DIR`,
`verify ...` and `verify-run ...`.

`summarize` writes report.json, report.md and report.html into the bundle (or `--out DIR`; for
`--log`, the log's directory) and prints a short summary. `fleet` summarises the per-host folders
of one run (collector/fleet.py). With the loader and the search, the only code that does I/O.

Exit codes: the one table in collector/exitcodes.py (`Exit`). summarize returns 0 stable,
2 usage, 3 unreadable input, 10 a crash loop was diagnosed, 11 inconclusive.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from collector.diagnose import CRASH_SCENARIOS, Diagnosis, diagnose
from collector.errors import BundleError
from collector.exitcodes import Exit
from collector.fleet import CAPTURE, VERIFY, FleetError, Found, Outcome, decide, fleet_json, parse_outcomes
from collector.fleet import OUTPUTS as FLEET_OUTPUTS
from collector.fleet import dumps as fleet_dumps
from collector.fleet import render_markdown as render_fleet_markdown
from collector.fleet import render_text as render_fleet_text
from collector.inputs import Context, Coverage, MemoryInput
from collector.loader import COSTS, Bundle, bundle_file, count_container_lines, load_bare_log, load_bundle
from collector.report.charts import memory_chart, timeline
from collector.report.model import CaptureFacts, build_report, history_json
from collector.report.render import render_html, render_markdown, render_summary
from collector.runs import Run, split_runs
from collector.sources.common import Problem, load_json, strip_controls
from collector.sources.source_index import INDEX, SourceIndex, parse_source_index

SOURCE_INDEX_LIMIT = 1 << 20
SNIPPET_LIMIT = 256 << 10

PROG = "ingester-collector"


def exit_code_for(scenario: str) -> Exit:
    """A verdict's scenario as an exit code: 0 stable, 10 a crash scenario, 11 anything else."""
    if scenario == "stable":
        return Exit.OK
    if scenario in CRASH_SCENARIOS:
        return Exit.CRASH_LOOP
    return Exit.INCONCLUSIVE


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors by raising, so main() can return 2 instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise _UsageError(message)


class _UsageError(Exception):
    pass


Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; each subcommand sets `handler`. Add one with a new `add_parser`."""
    parser = _Parser(prog=PROG, description="Diagnose rsky-ingester restart loops.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    summ = sub.add_parser(
        "summarize",
        help="diagnose a capture bundle (or a bare log) and write report.json/.md/.html",
        description="Diagnose a capture bundle or a bare log.",
    )
    summ.add_argument("bundle", nargs="?", type=Path, help="bundle directory")
    summ.add_argument("--log", type=Path, help="a bare log file captured by hand (any format)")
    summ.add_argument("--out", type=Path, help="where to write the reports")
    summ.add_argument("--format", choices=("text", "json"), default="text", help="stdout format")
    summ.add_argument("--quiet", action="store_true", help="print nothing; the exit code says it")
    summ.set_defaults(handler=_summarize)
    fleet = sub.add_parser(
        "fleet",
        help="one table for every host of a capture.yml (or --verify: verify.yml) run",
        description="Summarise the per-host folders under DIR (capture_dest): fleet.json and fleet.md "
        "(--verify: fleet-verify.json and fleet-verify.md) beside them. Schema: docs/fleet.md.",
    )
    fleet.add_argument("dest", type=Path, metavar="DIR", help="the capture destination: <DIR>/<host>/...")
    fleet.add_argument("--verify", action="store_true", help="summarise verify.yml's verify.json files")
    fleet.add_argument("--outcomes", type=Path, help="the play's per-host outcomes (JSON, docs/fleet.md)")
    fleet.add_argument("--out", type=Path, help="where to write the fleet files (default DIR)")
    fleet.add_argument("--format", choices=("text", "json"), default="text", help="stdout format")
    fleet.add_argument("--quiet", action="store_true", help="print nothing; the exit code says it")
    fleet.set_defaults(handler=_fleet)
    verify = sub.add_parser(
        "verify",
        help="judge the success criteria from a verify probe's facts (used by playbooks/verify.yml)",
        add_help=False,
    )
    verify.add_argument("rest", nargs=argparse.REMAINDER)
    verify.set_defaults(handler=_verify)
    run = sub.add_parser(
        "verify-run",
        help="run verify.yml through ansible-runner: one line, exit 0 pass / 20 fail / 21 no verdict",
        add_help=False,
    )
    run.add_argument("rest", nargs=argparse.REMAINDER)
    run.set_defaults(handler=_verify_run)
    return parser


def _verify(args: argparse.Namespace) -> int:
    from collector.verify import main as verify_main

    return verify_main(args.rest)


def _verify_run(args: argparse.Namespace) -> int:
    from collector.runner import verify_run_main

    return verify_run_main(args.rest)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (see the module docstring)."""
    parser = build_parser()
    args_list = list(sys.argv[1:] if argv is None else argv)
    # verify and verify-run own their options (argparse cannot pass "-x ..." through REMAINDER).
    if args_list[:1] == ["verify"]:
        return _verify(argparse.Namespace(rest=args_list[1:]))
    if args_list[:1] == ["verify-run"]:
        return _verify_run(argparse.Namespace(rest=args_list[1:]))
    try:
        args = parser.parse_args(args_list)
    except _UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return Exit.USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    handler: Handler = args.handler
    try:
        return handler(args)
    except BundleError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return Exit.UNREADABLE
    except OSError as exc:
        name = exc.filename or ""
        print(f"{PROG}: {name}: {exc.strerror or exc}", file=sys.stderr)
        return Exit.UNREADABLE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return Exit.INTERRUPTED


def _summarize(args: argparse.Namespace) -> int:
    if (args.bundle is None) == (args.log is None):
        print(f"{PROG}: error: give a BUNDLE_DIR or --log FILE (one of them)", file=sys.stderr)
        return Exit.USAGE
    if args.log is not None:
        bundle = load_bare_log(args.log)
        out_dir = args.out or args.log.resolve().parent
    else:
        bundle = load_bundle(args.bundle)
        out_dir = args.out or args.bundle
    report, runs_kept, diag = analyse(bundle)
    tl = timeline(report["runs"], [r.start for r in runs_kept], [r.end for r in runs_kept])
    exits = [r.end for r in runs_kept if r.ended and r.end is not None]
    mc = memory_chart(bundle.stats, report["memory"]["limit_bytes"], exits)
    texts = {
        "report.json": json.dumps(report, indent=2, ensure_ascii=False) + "\n",
        "report.md": render_markdown(report),
        "report.html": render_html(report, tl, mc),
    }
    written: str | None = None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            (out_dir / name).write_text(text, encoding="utf-8")
        written = str(out_dir / "report.md")
    except OSError as exc:
        print(f"{PROG}: cannot write reports to {out_dir}: {exc.strerror or exc}", file=sys.stderr)
    if not args.quiet:
        _print(report, args.format, written, sys.stdout)
    del diag
    return exit_code_for(report["verdict"]["scenario"])


FLEET_READ_LIMIT = 64 << 20


def _read_json(path: Path) -> tuple[Any, str | None]:
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
    data, error = _read_json(folder / name)
    if data is not None and not isinstance(data, dict):
        data, error = None, f"{folder / name}: not a JSON object"
    tarball = folder.with_name(folder.name + ".tar.gz")
    where = str(tarball if tarball.is_file() else folder) if bundle else None
    return Found(host, str(folder / md), where, data, error)


def _gather(dest: Path, kind: str, outcomes: dict[str, Outcome]) -> dict[str, Found]:
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


def _fleet(args: argparse.Namespace) -> int:
    kind = VERIFY if args.verify else CAPTURE
    if not args.dest.is_dir():
        print(f"{PROG}: {args.dest}: not a folder (give the capture destination, capture_dest)", file=sys.stderr)
        return Exit.UNREADABLE
    outcomes: dict[str, Outcome] = {}
    if args.outcomes is not None:
        raw, error = _read_json(args.outcomes)
        if error is not None:
            print(f"{PROG}: outcomes {error}", file=sys.stderr)
            return Exit.UNREADABLE
        try:
            outcomes = parse_outcomes(raw)
        except FleetError as exc:
            print(f"{PROG}: {args.outcomes}: {exc}", file=sys.stderr)
            return Exit.UNREADABLE
    found = _gather(args.dest, kind, outcomes)
    if not found and not outcomes:
        what = "<host>/<stamp>-<mode>/report.json" if kind == CAPTURE else "<host>/verify/<stamp>/verify.json"
        print(f"{PROG}: {args.dest}: no per-host folders ({what}) to summarise", file=sys.stderr)
        return Exit.UNREADABLE
    summary = decide(kind, found, outcomes or None)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc = fleet_json(summary, dest=str(args.dest), generated_by=f"{PROG} (collector 0.1.0)", generated_at=stamp)
    out_dir: Path = args.out or args.dest
    json_name, md_name = FLEET_OUTPUTS[kind]
    written: list[str] = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in ((json_name, fleet_dumps(doc)), (md_name, render_fleet_markdown(doc))):
            (out_dir / name).write_text(text, encoding="utf-8")
            written.append(str(out_dir / name))
    except OSError as exc:
        print(f"{PROG}: cannot write the fleet files to {out_dir}: {exc.strerror or exc}", file=sys.stderr)
    if not args.quiet:
        sys.stdout.write(fleet_dumps(doc) if args.format == "json" else render_fleet_text(summary, doc, written))
    return summary.exit_code


def _print(report: dict[str, Any], fmt: str, written: str | None, out: TextIO) -> None:
    if fmt == "json":
        out.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(render_summary(report, written))


def analyse(bundle: Bundle) -> tuple[dict[str, Any], list[Run], Diagnosis]:
    """Stream the logs through the pure pipeline; returns report.json and the runs kept."""
    facts = CaptureFacts(mode="bundle" if bundle.root is not None else "log")
    problems: list[Problem] = list(bundle.problems)
    hashes: dict[str, str] = {}
    ctx = bundle.context
    if bundle.log is not None:
        log = bundle.log
        runs = split_runs(log.records(hash_it=bundle.manifest is not None), ctx)
        diag = diagnose(runs, bundle.memory, bundle.coverage())
        facts.lines[log.source] = log.lines
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
            k: logs_account.get(k) for k in ("sources", "lost", "only_source", "docker_logs_error", "numbered_runs")
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
    facts.daemon_gaps = list(bundle.host.daemon_gaps)
    facts.restart_count_inspect = ctx.inspect.restart_count if ctx.inspect else None
    source = read_source(bundle.root) if bundle.root is not None else None
    if source is not None:
        problems.extend(Problem(INDEX, msg) for msg in source.problems)
    report = build_report(diag, facts, history, generated_by=f"{PROG} (collector 0.1.0)", source=source)
    return report, [r for r, _ in diag.acc.kept], diag


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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
