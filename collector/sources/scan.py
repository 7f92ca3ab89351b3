"""The log reader's fast path: pick out the few lines that can produce records, from raw bytes.

Most of a real log is ordinary INFO lines that `LogParser` ignores. `CandidateScanner` finds the
lines holding one of `NEEDLES` with `bytes.find` (C speed) and hands the parser only those, plus
the lines a block may need after them (`FOLLOW`), the line before each banner (the previous run's
last timestamp) and the file's last line. Feeding the parser these lines gives the same records as
feeding it every line; the test suite checks that on every fixture.

With ripgrep or grep (`search.GrepCandidates`) the high-frequency `BULK` lines are read one by
one only up to `BULK_EXACT` of them; past that, each stretch between two other candidate lines
hands out only its first and last BULK line and the one with the largest number (`above` finds
it at C speed). Every other record is the same, and so are the runs built from them; the tests
check that too.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator

from ..sources.logs import BLOCK_SPAN
from ..sources.logs import NEEDLES as LOG_NEEDLES

BANNER = b"Starting rsky-ingester"
NEEDLES: tuple[bytes, ...] = tuple(n.encode() for n in LOG_NEEDLES)
# What grep searches for. Its multi-string search (Aho-Corasick) stops at every byte that can
# start a probe, so each probe starts with a byte that is rare in ordinary lines (no space, no
# common lowercase letter): ~0.6 s of CPU per GB instead of ~1 s. Every needle holds one of
# them (a test checks), so grep's lines are a superset of the needle lines.
PROBES: tuple[bytes, ...] = tuple(
    {b" exited with code ": b"xited with code ", b" ingester exited: ": b"xited: "}.get(n, n)
    for n in NEEDLES
)
# High-frequency kinds: under Redis backpressure the write task logs a `Backpressure active` warning
# after nearly every `received batch` line. Their lines produce only `Pressure` records, which the
# rules read per run as first and last time and largest `events_in_memory`; so past the first
# `BULK_EXACT` of them (read line by line like any needle) the external-search reader keeps, in
# each stretch between two other candidate lines, only the first, the last and the one with the
# largest number (`search.GrepCandidates`). Nothing else may be derived from these lines (no
# per-line count) without also changing that reader.
BULK: tuple[bytes, ...] = (b"Backpressure active", b"Memory metrics:")
# A host task's retried connection error: between two of them no Pressure line need be read
# (`search._transparent`).
RETRY = b"Ingester connection error for"
BULK_EXACT = 2000
RARE_PROBES: tuple[bytes, ...] = tuple(p for p, n in zip(PROBES, NEEDLES, strict=True) if n not in BULK)
# What ripgrep searches for instead. Its multi-literal search (Teddy) slows down about sevenfold
# with the probes above (~1.9 s of CPU per GiB of an ordinary log instead of ~0.3 s), and merging
# needles that share a tail into one shorter probe keeps it fast: fewer probes, none of them
# starting with a common fingerprint. Still a superset of the needle lines (a test checks); the
# few extra lines it finds are read by the parser like any other and give no record.
RG_PROBE: dict[bytes, bytes] = {
    b"' panicked at": b"panicked at",
    b") panicked at": b"panicked at",
    b"xited with code ": b"xited",
    b"xited: ": b"xited",
    b"Starting firehose ingesters for 0 hosts": b"0 hosts",
    b"Starting backfill ingesters for 0 hosts": b"0 hosts",
    b"Gracefully stopping": b"Gracefully ",
    b"Gracefully Stopping": b"Gracefully ",
    # whole, these two made ripgrep ten times slower on an ordinary log (measured: 2.2 s of CPU
    # per GiB instead of 0.2 s); their tails keep it fast
    b"Failed to send batch to write task": b"to write task",
    b"No labeler hosts configured, sleeping": b"hosts configured, sleeping",
}


def rg_probes(probes: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """`probes` as ripgrep searches them (`RG_PROBE`), each once, in order."""
    return tuple(dict.fromkeys(RG_PROBE.get(p, p) for p in probes))


# Where the number of a Pressure line is (`logs._EVENTS_IN_MEMORY`); `above` searches for both.
NUMBER_AT = (b"events_in_memory=", b"Memory metrics: ")


def above(value: int) -> re.Pattern[bytes]:
    """A search that finds every Pressure number greater than `value` (-1: any number) as
    group 1, and some other numbers (up to 1% under `value`; leading zeros; `y=` in other
    words): the caller compares each hit, then lets the parser read the line. Only three leading
    digits are exact, so a few patterns (compiled once) serve a whole log."""
    return _above(_bar_digits(value))


SIGNIFICANT = 3


def _bar_digits(value: int) -> bytes:
    digits = str(value).encode() if value >= 0 else b""
    if len(digits) > SIGNIFICANT:
        head = int(digits[:SIGNIFICANT]) - 1  # >= 99: the first digit is not 0
        digits = str(head).encode() + b"9" * (len(digits) - SIGNIFICANT)
    return digits


def _alternatives(digits: bytes, digit: bytes) -> list[bytes]:
    n = len(digits)
    alts = [digit + b"{%d,}" % (n + 1)]
    for i in range(n):
        d = digits[i] - 48
        if d < 9:
            rest = digit + b"{%d}" % (n - i - 1) if n - i - 1 else b""
            alts.append(digits[:i] + b"[%d-9]" % (d + 1) + rest)
    return alts


@functools.lru_cache(maxsize=1024)
def _above(digits: bytes) -> re.Pattern[bytes]:
    alts = _alternatives(digits, rb"\d")
    # "y" (of "memory=", "Memory metrics: ") is a rarer first byte than "e": a faster search
    return re.compile(rb"y(?:=| metrics: )(" + b"|".join(alts) + rb")(?!\d)")


def above_source(value: int, *, ere: bool) -> str:
    """`above(value)` as a pattern for the external search, which picks whole lines: ripgrep's
    syntax, or with `ere` GNU grep's -E (no `(?:`, no `\\d`, no look-ahead). The lines it picks
    hold every Pressure number greater than `value` (and some other numbers, as `above`)."""
    # The whole literals the parser reads the number after (`NUMBER_AT`), not the "y" that
    # suits Python's search: an external search's literal prefilter then offers only the lines
    # that hold one, where "y=" also offers every other "...y=" (half the time of the search).
    lead = b"|".join(NUMBER_AT)  # (letters, "_", "=", ":" and spaces: the same in both syntaxes)
    if ere:
        alts = _alternatives(_bar_digits(value), b"[0-9]")
        return (b"(" + lead + b")(" + b"|".join(alts) + b")([^0-9]|$)").decode()
    alts = _alternatives(_bar_digits(value), rb"\d")
    return (rb"(?:" + lead + rb")(?:" + b"|".join(alts) + rb")(?:[^0-9]|$)").decode()


# Hits that may open a run: the line before them carries the previous run's last timestamp.
OPENERS = (BANNER, b"EXIT-TRACE")
# Lines after a hit that may belong to the block it starts.
FOLLOW: dict[bytes, int] = {
    b"PANIC OCCURRED": BLOCK_SPAN["hook"],
    b"' panicked at": BLOCK_SPAN["default"],
    b") panicked at": BLOCK_SPAN["default"],
    b"Error: ": BLOCK_SPAN["error"],
    b" exited with code ": 3,
}


class CandidateScanner:
    """Iterate `(line_number, line_bytes)` for candidate lines; `lines` holds the total after."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self.lines = 0

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        carry = b""
        base = 0  # lines before the current work buffer
        pending = 0  # follow-up lines still owed from the previous buffer
        last: tuple[int, bytes] | None = None  # last line of the previous buffer
        last_sent = 0
        for chunk in self._chunks:
            if not chunk:
                continue
            buf = carry + chunk if carry else chunk
            cut = buf.rfind(b"\n") + 1
            if cut == 0:
                carry = buf
                continue
            work, carry = buf[:cut], buf[cut:]
            wanted: dict[int, int] = {}  # line start -> extra lines to include after it
            if pending:
                wanted[0] = pending - 1
                pending = 0
            for needle in NEEDLES:
                extra = FOLLOW.get(needle, 0)
                pos = work.find(needle)
                while pos != -1:
                    start = work.rfind(b"\n", 0, pos) + 1
                    if wanted.get(start, -1) < extra:
                        wanted[start] = extra
                    if needle in OPENERS:
                        if start == 0:
                            if last is not None and last[0] > last_sent:
                                yield last
                                last_sent = last[0]
                        else:
                            prev = work.rfind(b"\n", 0, start - 1) + 1
                            wanted.setdefault(prev, 0)
                    end = work.find(b"\n", pos)
                    pos = work.find(needle, end + 1)
            # expand follow-ups into explicit line starts; what runs past the end is owed
            starts: set[int] = set()
            size = len(work)
            for start, extra in wanted.items():
                starts.add(start)
                s, left = start, extra
                while left:
                    nxt = work.find(b"\n", s) + 1
                    if nxt >= size:
                        break
                    starts.add(nxt)
                    s, left = nxt, left - 1
                pending = max(pending, left)
            counted_to = 0
            number = base
            for start in sorted(starts):
                number += work.count(b"\n", counted_to, start)
                counted_to = start
                if number + 1 > last_sent:
                    yield number + 1, work[start : work.find(b"\n", start) + 1]
                    last_sent = number + 1
            total = number + work.count(b"\n", counted_to)
            last = (total, work[work.rfind(b"\n", 0, size - 1) + 1 :])
            base = total
        if carry:  # a last line without a newline
            if last is not None and last[0] > last_sent and any(o in carry for o in OPENERS):
                yield last
            base += 1
            yield base, carry
        elif last is not None and last[0] > last_sent:
            yield last
        self.lines = base
