"""Command line: `ingester-collector summarize BUNDLE_DIR` (or `BUNDLE.tar.gz`, or `--log FILE`,
`--log -` for standard input), `fleet DIR`, `verify ...` and `verify-run ...`.

`summarize` writes report.json, report.md and report.html into the bundle (or `--out DIR`; for
`--log`, the log's directory; for a log piped in, the current one) and prints a short summary.
Given the bundle's tarball, it checks it against the `.sha256` beside it and unpacks it safely
first (collector/archive.py). `fleet` summarises the per-host folders of one run
(collector/fleet.py). It only parses argv and calls the library (collector/api.py).

Exit codes: the one table in collector/exitcodes.py (`Exit`). summarize returns 0 stable,
2 usage, 3 unreadable input, 5 the reports cannot be written, 6 the tarball was refused, 10 a
crash loop was diagnosed, 11 inconclusive.
"""

from __future__ import annotations

import argparse
import json
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from .archive import MAX_BYTES, TarballRefused, check_sha256, folder_name, is_tarball, unpack
from .errors import BundleError, CannotWrite
from .exitcodes import Exit
from .search import read_ahead
from .sources.common import shown_name

if TYPE_CHECKING:
    from .api import Report

# The diagnosis, the reports and the fleet are imported by the commands that use them, after
# `summarize` has started reading its log (`search.read_ahead`): the search then runs on the
# second CPU while they load.

SOURCE_INDEX_LIMIT = 1 << 20
SNIPPET_LIMIT = 256 << 10

# `python -m ingester_capture` is the console script under another name: both print this in usage lines.
PROG = "ingester-collector"


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors by raising, so main() can return 2 instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise _UsageError(message)


class _UsageError(Exception):
    pass


Handler = Callable[[argparse.Namespace], int]


class _Version(argparse.Action):
    """`--version`: the installed distribution's version, looked up only when asked for."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from .version import version_line

        sys.stdout.write(version_line(PROG) + "\n")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; each subcommand sets `handler`. Add one with a new `add_parser`."""
    parser = _Parser(prog=PROG, description="Diagnose rsky-ingester restart loops.")
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    summ = sub.add_parser(
        "summarize",
        help="diagnose a capture bundle (or a bare log) and write report.json/.md/.html",
        description="Diagnose a capture bundle (its folder, or its tarball as fetched) or a bare log.",
    )
    summ.add_argument("bundle", nargs="?", type=Path, help="the bundle's folder, or its <bundle>.tar.gz")
    summ.add_argument(
        "--log",
        type=Path,
        help="a bare log captured by hand (any format); - reads standard input "
        "(docker logs --timestamps NAME 2>&1 | ingester-collector summarize --log -)",
    )
    summ.add_argument("--out", type=Path, help="where to write the reports")
    summ.add_argument(
        "--unpack-to",
        type=Path,
        metavar="DIR",
        help="a tarball is unpacked into DIR (new or empty; kept, the reports go there too). Default: "
        "beside the tarball, named after it; with --out, a temporary folder removed afterwards",
    )
    summ.add_argument(
        "--max-bytes",
        type=int,
        default=MAX_BYTES,
        help=f"refuse a tarball that would unpack to more than this (default {MAX_BYTES})",
    )
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
    from .verify import main as verify_main

    return verify_main(args.rest, prog=f"{PROG} verify")


def _verify_run(args: argparse.Namespace) -> int:
    from .runner import verify_run_main

    return verify_run_main(args.rest, prog=f"{PROG} verify-run")


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
    except _UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return Exit.USAGE
    except CannotWrite as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return Exit.CANNOT_WRITE
    except TarballRefused as exc:
        print(f"{PROG}: refused: {exc}", file=sys.stderr)
        return Exit.REFUSED
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
        print(f"{PROG}: error: give a bundle (its folder or its .tar.gz) or --log FILE (one of them)", file=sys.stderr)
        return Exit.USAGE
    failed: CannotWrite | None = None
    written: str | None = None
    if args.log is not None:
        with _log_file(args.log) as (path, name):
            read_ahead(path, name or shown_name(path))
            from .api import summarize

            report = summarize(path, bare_log=True, out_dir=args.out, log_name=name)
            default_out = Path.cwd() if name is not None else args.log.resolve().parent
            written, failed = _write_reports(report, args.out or default_out)
    elif is_tarball(args.bundle):
        # (unpacked into a temporary folder, the bundle's files are gone once the reports are
        # written: their links then lead nowhere, wherever they point)
        temporary = args.unpack_to is None and args.out is not None
        with _unpacked(args.bundle, args.unpack_to, temporary=temporary, max_bytes=args.max_bytes) as folder:
            folder = _bundle_in(folder)
            report = _summarize_bundle(folder, None if temporary else args.out)
            written, failed = _write_reports(report, args.out or folder)
    else:
        report = _summarize_bundle(args.bundle, args.out)
        written, failed = _write_reports(report, args.out or args.bundle)
    if not args.quiet:
        _print(report.doc, args.format, written, sys.stdout)
    if failed is not None:
        # The diagnosis was made and printed, but 10 or 11 would promise the reports exist.
        print(f"{PROG}: {failed}", file=sys.stderr)
        return Exit.CANNOT_WRITE
    return report.exit_code


# A log given as a stream: standard input (`-`), or a path that is one (`/dev/stdin`,
# `/dev/fd/N` from a shell's `<(docker logs ...)`, a FIFO).
_STREAM_DIRS = ("/dev/fd/", "/proc/self/fd/")


def _stream_name(given: Path) -> str | None:
    """What the report calls the log when `given` is a stream, None for a file."""
    text = str(given)
    if text in ("-", "/dev/stdin") or text in (d + "0" for d in _STREAM_DIRS):
        return "stdin"
    if text.startswith(_STREAM_DIRS):
        return "fd" + given.name
    try:
        mode = given.stat().st_mode
    except OSError:
        return None  # the loader says why it cannot be read
    return None if stat.S_ISREG(mode) or stat.S_ISDIR(mode) else given.name


@contextmanager
def _log_file(given: Path) -> Iterator[tuple[Path, str | None]]:
    """The log to read, and its name when it came as a stream (`_stream_name`). A stream is
    read to its end into a private temporary folder first (the search reads a file, and the
    reports read cited lines back), removed on leaving: the raw log is not kept."""
    name = _stream_name(given)
    if name is None:
        yield given, None
        return
    if str(given) == "-":
        if sys.stdin is None:
            raise _UsageError("--log -: there is no standard input")
        source: BinaryIO = sys.stdin.buffer
        close = False
    else:
        try:
            source = given.open("rb")
        except OSError as exc:
            raise BundleError(f"{given}: cannot read: {exc.strerror or exc}") from exc
        close = True
    if source.isatty():
        if close:
            source.close()
        raise _UsageError(
            f"--log {given}: a terminal, not a log: pipe one in "
            f"(docker logs --timestamps NAME 2>&1 | {PROG} summarize --log -)"
        )
    try:
        with _kept(source, name) as kept:
            yield kept, name
    finally:
        if close:
            source.close()


@contextmanager
def _kept(source: BinaryIO, name: str) -> Iterator[Path]:
    """`source` read to its end into a file of a new private temporary folder, removed on leaving."""
    try:
        tmp = tempfile.mkdtemp(prefix="ingester-collector-")
    except OSError as exc:
        raise BundleError(f"{name}: no temporary folder to keep the stream in: {exc.strerror or exc}") from exc
    try:
        kept = Path(tmp) / "log"
        try:
            with kept.open("xb") as out:
                while True:
                    try:
                        chunk = source.read(1 << 20)
                    except OSError as exc:
                        raise BundleError(f"{name}: cannot read: {exc.strerror or exc}") from exc
                    if not chunk:
                        break
                    out.write(chunk)
        except OSError as exc:  # writing (reading raised BundleError)
            raise BundleError(
                f"{name}: cannot keep the stream in {tmp} to read it: {exc.strerror or exc} "
                "(set TMPDIR to a folder with room)"
            ) from exc
        yield kept
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _bundle_in(folder: Path) -> Path:
    """The bundle an unpacked tarball holds: its files at the top, as the capture packs them, or
    in the one folder it holds, as a bundle packed again by hand is (`tar czf b.tar.gz
    20261129T100000Z-capture/`, to attach it to a ticket)."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return folder  # the loader says why it cannot be read
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return folder


def _summarize_bundle(folder: Path, out: Path | None) -> Report:
    # (the loader hashes the log when the bundle has a manifest: the reader started here must
    # do the same to be taken over)
    read_ahead(folder / "logs" / "ingester.log", "logs/ingester.log",
               hash_it=(folder / "manifest.json").is_file())
    from .api import summarize

    return summarize(folder, out_dir=out)


def _write_reports(report: Report, out_dir: Path) -> tuple[str | None, CannotWrite | None]:
    """report.md's path once the three reports are written, or why they could not be."""
    try:
        return str(report.write(out_dir)), None
    except OSError as exc:
        return None, CannotWrite(f"cannot write reports to {out_dir}: {exc.strerror or exc}")


@contextmanager
def _unpacked(tarball: Path, given: Path | None, *, temporary: bool, max_bytes: int) -> Iterator[Path]:
    """The tarball checked against its .sha256 and unpacked: into `given`, a temporary folder
    (removed on leaving), or by default a new folder beside it named after it."""
    if not tarball.is_file():
        raise BundleError(f"{tarball}: no such file")
    check_sha256(tarball)
    if temporary:
        with tempfile.TemporaryDirectory(prefix="ingester-bundle-") as tmp:
            try:
                unpack(tarball, Path(tmp), max_bytes)
            except OSError as exc:
                raise CannotWrite(f"cannot unpack {tarball.name} into {tmp}: {exc.strerror or exc}") from exc
            yield Path(tmp)
        return
    folder = given or tarball.with_name(folder_name(tarball))
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise CannotWrite(
            f"cannot unpack {tarball.name} into {folder}: it exists and is not empty "
            "(summarize that folder, or give --unpack-to DIR or --out DIR)"
        )
    created = not folder.exists()
    try:
        unpack(tarball, folder, max_bytes)
    except OSError as exc:
        raise CannotWrite(f"cannot unpack {tarball.name} into {folder}: {exc.strerror or exc}") from exc
    except (TarballRefused, BundleError):
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    yield folder


def _not_a_destination(dest: Path) -> str | None:
    """Why `dest` is not a capture destination (`<host>/<stamp>-<mode>/`), when it is one bundle or
    one host's folder; None otherwise. Said before anything is written into it."""
    from .loader import is_bundle

    if is_bundle(dest):
        return f"one bundle, not a capture destination: {PROG} summarize {dest}"
    try:
        children = [p for p in dest.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return None  # gather says why
    if any(is_bundle(p) for p in children):
        return (f"one host's folder (it holds bundles, not hosts): give the capture destination above it, "
                f"{PROG} fleet {dest.resolve().parent}")
    return None


def _fleet(args: argparse.Namespace) -> int:
    from .api import GENERATED_BY, gather, read_json
    from .fleet import CAPTURE, VERIFY, FleetError, Outcome, fleet_json, parse_outcomes, summarise
    from .fleet import OUTPUTS as FLEET_OUTPUTS
    from .fleet import dumps as fleet_dumps
    from .fleet import render_markdown as render_fleet_markdown
    from .fleet import render_text as render_fleet_text

    kind = VERIFY if args.verify else CAPTURE
    if not args.dest.is_dir():
        print(f"{PROG}: {args.dest}: not a folder (give the capture destination, capture_dest)", file=sys.stderr)
        return Exit.UNREADABLE
    wrong = _not_a_destination(args.dest)
    if wrong is not None:
        print(f"{PROG}: {args.dest}: {wrong}", file=sys.stderr)
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
    failed: str | None = None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in ((json_name, fleet_dumps(doc)), (md_name, render_fleet_markdown(doc))):
            (out_dir / name).write_text(text, encoding="utf-8")
            written.append(str(out_dir / name))
    except OSError as exc:
        failed = f"cannot write the fleet files to {out_dir}: {exc.strerror or exc}"
    if not args.quiet:
        sys.stdout.write(fleet_dumps(doc) if args.format == "json" else render_fleet_text(summary, doc, written))
    if failed is not None:
        print(f"{PROG}: {failed}", file=sys.stderr)
        return Exit.CANNOT_WRITE
    return summary.exit_code


def _print(report: dict[str, Any], fmt: str, written: str | None, out: TextIO) -> None:
    from .report.render import render_summary

    if fmt == "json":
        out.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(render_summary(report, written))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
