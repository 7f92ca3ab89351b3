"""Command line: `ingester-collector summarize BUNDLE_DIR` (or `--log FILE`), `fleet DIR`,
`verify ...` and `verify-run ...`.

`summarize` writes report.json, report.md and report.html into the bundle (or `--out DIR`; for
`--log`, the log's directory) and prints a short summary. `fleet` summarises the per-host folders
of one run (collector/fleet.py). It only parses argv and calls the library (collector/api.py).

Exit codes: the one table in collector/exitcodes.py (`Exit`). summarize returns 0 stable,
2 usage, 3 unreadable input, 10 a crash loop was diagnosed, 11 inconclusive.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

from collector.api import GENERATED_BY, gather, read_json, summarize
from collector.errors import BundleError
from collector.exitcodes import Exit
from collector.fleet import CAPTURE, VERIFY, FleetError, Outcome, fleet_json, parse_outcomes, summarise
from collector.fleet import OUTPUTS as FLEET_OUTPUTS
from collector.fleet import dumps as fleet_dumps
from collector.fleet import render_markdown as render_fleet_markdown
from collector.fleet import render_text as render_fleet_text
from collector.report.render import render_summary

SOURCE_INDEX_LIMIT = 1 << 20
DISTRIBUTION = "ingester-capture"
SNIPPET_LIMIT = 256 << 10

PROG = "ingester-collector"


def package_version() -> str:
    """The installed distribution's version (the collection's own, checked by every play's first
    play), or "unknown" when the package runs from a checkout that was never installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


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
    parser.add_argument("--version", action="version", version=f"{PROG} {package_version()}")
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
        report = summarize(args.log, bare_log=True)
        out_dir = args.out or args.log.resolve().parent
    else:
        report = summarize(args.bundle)
        out_dir = args.out or args.bundle
    written: str | None = None
    try:
        written = str(report.write(out_dir))
    except OSError as exc:
        print(f"{PROG}: cannot write reports to {out_dir}: {exc.strerror or exc}", file=sys.stderr)
    if not args.quiet:
        _print(report.doc, args.format, written, sys.stdout)
    return report.exit_code


def _fleet(args: argparse.Namespace) -> int:
    kind = VERIFY if args.verify else CAPTURE
    if not args.dest.is_dir():
        print(f"{PROG}: {args.dest}: not a folder (give the capture destination, capture_dest)", file=sys.stderr)
        return Exit.UNREADABLE
    outcomes: dict[str, Outcome] = {}
    if args.outcomes is not None:
        raw, error = read_json(args.outcomes)
        if error is not None:
            print(f"{PROG}: outcomes {error}", file=sys.stderr)
            return Exit.UNREADABLE
        try:
            outcomes = parse_outcomes(raw)
        except FleetError as exc:
            print(f"{PROG}: {args.outcomes}: {exc}", file=sys.stderr)
            return Exit.UNREADABLE
    found = gather(args.dest, kind, outcomes)
    if not found and not outcomes:
        what = "<host>/<stamp>-<mode>/report.json" if kind == CAPTURE else "<host>/verify/<stamp>/verify.json"
        print(f"{PROG}: {args.dest}: no per-host folders ({what}) to summarise", file=sys.stderr)
        return Exit.UNREADABLE
    summary = summarise(kind, found, outcomes or None)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc = fleet_json(summary, dest=str(args.dest), generated_by=GENERATED_BY, generated_at=stamp)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
