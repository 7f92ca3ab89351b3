"""`python -m ingester_capture.verify evaluate|history`: reads the facts and the history, writes the
verdict's files. The only part of verify that touches the filesystem."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import verify as verify_package
from ..errors import CannotWrite
from ..exitcodes import Exit
from ..sources.common import load_json
from ..verify.criteria import evaluate
from ..verify.facts import FAMILIES, Thresholds, VerifyError, parse_facts, parse_history
from ..verify.render import history_line, render_history, render_markdown, summary, verdict_json
from ..version import version_line

PROG = f"python -m {__package__}"


def _parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=verify_package.__doc__)
    parser.add_argument("--version", action="version", version=version_line(prog))
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate", help="judge a probe's facts; write verify.json and verify.md")
    ev.add_argument("--facts", required=True, help="the probe's JSON; - reads stdin")
    ev.add_argument("--host", default="")
    ev.add_argument("--out-dir", type=Path, help="where verify.json and verify.md go")
    ev.add_argument("--history", type=Path, help="verify-history.jsonl of earlier runs")
    ev.add_argument("--history-md", type=Path, help="also render the history (with this run)")
    ev.add_argument("--min-uptime-hours", type=float, default=Thresholds.min_uptime_hours)
    ev.add_argument("--activity-minutes", type=float, default=Thresholds.activity_minutes)
    ev.add_argument("--families", default=",".join(FAMILIES))
    ev.add_argument("--memory-noise-mib", type=float, default=Thresholds.memory_noise_mib)
    ev.add_argument("--memory-min-hours-to-limit", type=float, default=Thresholds.memory_min_hours_to_limit)
    ev.add_argument(
        "--memory-max-growth-mib-per-hour",
        type=float,
        default=Thresholds.memory_max_growth_mib_per_hour,
    )
    ev.add_argument("--memory-min-r2", type=float, default=Thresholds.memory_min_r2)
    ev.add_argument("--history-hours", type=float, default=Thresholds.history_hours)
    ev.add_argument("--allow-unknown", action="store_true")
    hist = sub.add_parser("history", help="print verify-history.jsonl as a Markdown table")
    hist.add_argument("file", type=Path)
    return parser


def _read_history(path: Path | None) -> list[str]:
    """The history's lines; none before the first run (evaluate's --history may not exist yet)."""
    if path is None or not path.exists():
        return []
    return path.read_text(encoding="utf-8").splitlines()


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise CannotWrite(f"cannot write {path}: {exc.strerror or exc}") from exc


def _evaluate_cmd(args: argparse.Namespace) -> int:
    thresholds = Thresholds(
        min_uptime_hours=args.min_uptime_hours,
        activity_minutes=args.activity_minutes,
        families=tuple(f.strip() for f in args.families.split(",") if f.strip()),
        memory_noise_mib=args.memory_noise_mib,
        memory_min_hours_to_limit=args.memory_min_hours_to_limit,
        memory_max_growth_mib_per_hour=args.memory_max_growth_mib_per_hour,
        memory_min_r2=args.memory_min_r2,
        history_hours=args.history_hours,
        allow_unknown=args.allow_unknown,
    )
    try:
        text = sys.stdin.read() if args.facts == "-" else Path(args.facts).read_text("utf-8")
        raw = load_json(text)
    except (OSError, ValueError) as exc:
        raise VerifyError(f"facts {args.facts}: {exc}") from exc
    facts = parse_facts(raw)
    old_lines = _read_history(args.history)
    history = parse_history(old_lines)
    verdict = evaluate(facts, thresholds, history, host=args.host)
    line = history_line(verdict)
    rows = [dict(h.raw) for h in history if not args.host or h.raw.get("host") in ("", args.host)]
    rows.append(line)
    if args.out_dir:
        _write(args.out_dir / "facts.json", json.dumps(raw, indent=2, sort_keys=True) + "\n")
        _write(args.out_dir / "verify.json", json.dumps(verdict_json(verdict), indent=2) + "\n")
        _write(args.out_dir / "verify.md", render_markdown(verdict, rows))
    if args.history_md:
        _write(args.history_md, render_history(rows))
    print(
        json.dumps(
            {
                "passed": verdict.passed,
                "failed": list(verdict.failed),
                "summary": summary(verdict),
                "history_line": line,
            },
            sort_keys=True,
        )
    )
    return Exit.OK if verdict.passed else Exit.VERIFY_FAILED


def _history_cmd(path: Path) -> int:
    # The page of runs asked for by name: a missing file is not an empty history.
    if not path.is_file():
        raise VerifyError(f"history {path}: no such file (verify.yml writes verify-history.jsonl on the host)")
    rows = [dict(h.raw) for h in parse_history(_read_history(path))]
    sys.stdout.write(render_history(rows))
    return Exit.OK


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """``python -m ingester_capture.verify`` (``prog``: what the user typed, for usage lines and
    ``--version``): see the module docstring."""
    try:
        args = _parser(prog).parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage, the help or the version
        return Exit.OK if exc.code == 0 else Exit.USAGE
    try:
        if args.command == "history":
            return _history_cmd(args.file)
        return _evaluate_cmd(args)
    except VerifyError as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return Exit.UNREADABLE
    except CannotWrite as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return Exit.CANNOT_WRITE
    except OSError as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return Exit.UNREADABLE
    except KeyboardInterrupt:
        print("verify: interrupted", file=sys.stderr)
        return Exit.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
