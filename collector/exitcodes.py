"""The one exit-code table of every command: `summarize`, `verify`, `verify-run` and `fleet`.

A number has one meaning whatever command returns it (README, "Exit codes"). The codes group by
what they say:

* 0: the outcome is good (stable, every criterion passed), or `--help` was asked for.
* 1-6: the command itself could not do its job (a bug, bad arguments, unreadable input, a part
  not installed, output it could not write, a tarball it refused). Python's own exit code for an
  uncaught exception is 1, so 1 means "a bug". None of them promises that a report was written.
* 10-11: a diagnosis (summarize, fleet).
* 20-21: a verification or a play that ran on hosts (verify, verify-run, fleet).
* 124: the scheduled run was stopped at its time limit (coreutils `timeout`'s code, which the
  systemd and cron jobs use; `verify-run --timeout` returns it too).
* 130: interrupted (128 + SIGINT, the shell's convention).

Within 10-21 a larger code means less is known or more is wrong: a fleet of hosts exits with the
largest code among its hosts (:func:`worst`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum


class Exit(IntEnum):
    """Every exit code a command of the collector returns."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    UNREADABLE = 3
    NOT_INSTALLED = 4
    CANNOT_WRITE = 5
    REFUSED = 6
    CRASH_LOOP = 10
    INCONCLUSIVE = 11
    VERIFY_FAILED = 20
    NO_VERDICT = 21
    TIMED_OUT = 124
    INTERRUPTED = 130
    TERMINATED = 143


@dataclass(frozen=True)
class Meaning:
    """One row of the table: what a code means and which commands return it."""

    code: Exit
    meaning: str
    commands: tuple[str, ...]


SUMMARIZE, VERIFY, VERIFY_RUN, FLEET = "summarize", "verify", "verify-run", "fleet"
ALL = (SUMMARIZE, VERIFY, VERIFY_RUN, FLEET)

TABLE: tuple[Meaning, ...] = (
    Meaning(Exit.OK, "stable (no exit, no restart in the window); every criterion passed; `--help`", ALL),
    Meaning(Exit.INTERNAL, "internal error: a bug in the collector (Python's own code for a traceback)", ALL),
    Meaning(Exit.USAGE, "usage error: bad arguments or options", ALL),
    Meaning(
        Exit.UNREADABLE,
        "the input cannot be read: bundle, log, facts, history, inventory or capture folder "
        "missing, empty or malformed (one line on stderr)",
        ALL,
    ),
    Meaning(
        Exit.NOT_INSTALLED,
        "a part is not installed: the rsky.ingester_capture collection (its playbooks), or ansible-runner "
        "(the package's extra `scheduled`)",
        (VERIFY_RUN,),
    ),
    Meaning(
        Exit.CANNOT_WRITE,
        "the output cannot be written (the reports, the fleet files, verify.json): nothing was written "
        "where it was asked for (one line on stderr)",
        (SUMMARIZE, VERIFY, FLEET),
    ),
    Meaning(
        Exit.REFUSED,
        "a bundle's tarball was refused, nothing of it read: it differs from its .sha256, or a member is "
        "a link, a device, an absolute or `..` path, or over the size cap (one line on stderr)",
        (SUMMARIZE,),
    ),
    Meaning(
        Exit.CRASH_LOOP,
        "a crash loop was diagnosed (any crash scenario: task-error, panic, task-returned-ok, oom-kill, "
        "external-kill, config-error, cannot-start, impossible-path)",
        (SUMMARIZE, FLEET),
    ),
    Meaning(
        Exit.INCONCLUSIVE,
        "inconclusive: not enough evidence; the report says what to capture next",
        (SUMMARIZE, FLEET),
    ),
    Meaning(Exit.VERIFY_FAILED, "a success criterion failed (named on stdout)", (VERIFY, VERIFY_RUN, FLEET)),
    Meaning(
        Exit.NO_VERDICT,
        "no verdict for a host: it was unreachable, or its play failed before a verdict",
        (VERIFY_RUN, FLEET),
    ),
    Meaning(
        Exit.TIMED_OUT,
        "the scheduled run was stopped at its time limit (`schedule_timeout_seconds` through coreutils "
        "`timeout`, or `--timeout`): no verdict",
        (VERIFY_RUN,),
    ),
    Meaning(Exit.INTERRUPTED, "interrupted (Ctrl-C): 128 + SIGINT, as a shell reports it", ALL),
    Meaning(
        Exit.TERMINATED,
        "stopped by SIGTERM (128 + SIGTERM) while the play ran: the play and every process it started "
        "were stopped; no verdict",
        (VERIFY_RUN,),
    ),
)


def codes_for(command: str) -> frozenset[Exit]:
    """The codes `command` can return."""
    return frozenset(m.code for m in TABLE if command in m.commands)


def worst(codes: Iterable[int]) -> Exit:
    """The code a set of hosts exits with: the largest of theirs (OK when there are none).

    Only outcome codes (0 and 10-21) are compared; a host never carries 1-6, 124, 130 or 143.
    """
    return Exit(max((int(c) for c in codes), default=Exit.OK))


def markdown_table() -> str:
    """The table as the README prints it (a unit test keeps the two equal)."""
    rows = ["| code | meaning | commands |", "|---|---|---|"]
    for m in TABLE:
        rows.append(f"| {int(m.code)} | {m.meaning} | {', '.join(f'`{c}`' for c in m.commands)} |")
    return "\n".join(rows) + "\n"
