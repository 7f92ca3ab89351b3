"""Reading a log's records fast: the external search and the forked reader.

`LogInput.records` streams one log file's records. A long log is read in a forked copy of the
process (the machine's second CPU) that sends the records back in pickled batches. The lines the
parser needs are found by ripgrep or GNU grep (`GrepCandidates`: the file cut at line boundaries,
one search per part, later parts spooled to files), with a forked helper (a small `struct`
protocol over pipes) searching long stretches for the largest Pressure number; without them, or
on a file with a line over `LINE_MAX`, by `scan.CandidateScanner` in bounded chunks.
"""

from __future__ import annotations

import atexit
import codecs
import contextlib
import fcntl
import hashlib
import itertools
import mmap
import operator
import os
import pickle
import re
import shutil
import signal
import stat
import struct
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import BinaryIO, Literal

from .errors import BundleError
from .sources.common import Problem
from .sources.logs import RECORD_TYPES, LogParser, LogRecord, Pressure, repeated
from .sources.scan import (
    BULK,
    BULK_EXACT,
    NEEDLES,
    NUMBER_AT,
    OPENERS,
    PROBES,
    RARE_PROBES,
    RETRY,
    CandidateScanner,
    above,
    above_source,
    rg_probes,
)

CHUNK = 8 << 20

@dataclass
class LogInput:
    """One log file's records (a lazy iterator) and, once consumed, its line count and hash."""

    path: Path
    source: str
    lines: int = 0
    sha256: str | None = None
    problems: list[Problem] = field(default_factory=list)

    def records(self, *, hash_it: bool = False) -> Iterator[LogRecord]:
        """Stream the file once: candidate lines through the parser, the rest only counted.

        A long log is read in a forked copy of this process (`_forked`) while this one takes
        the records as they come (the runs, the rules): the machine's second CPU."""
        child = _AHEAD.take(self, hash_it)
        if child is None and _fork_reader(self.path):
            child = _start_reader(self, hash_it)
        if child is not None:
            yield from self._forked(*child)
        else:
            yield from self._records(hash_it)

    def _forked(self, pid: int, rd: int) -> Iterator[LogRecord]:
        """The records of `_records` run in the child `pid` (`_start_reader`), read from the
        pipe `rd`: pickled batches, then its line count, hash and problems; its `BundleError`
        or `OSError` raised here."""
        wire = _Wire()
        try:
            with os.fdopen(rd, "rb", buffering=1 << 16) as inp:
                while True:
                    try:
                        kind, payload = pickle.load(inp)  # noqa: S301 - our own child's records
                    except EOFError:
                        raise BundleError(f"{self.path}: the reading process ended early") from None
                    if kind == "records":
                        yield from wire.unpack(payload)
                    elif kind == "end":
                        self.lines, self.sha256, problems = payload
                        self.problems[:] = problems
                        return
                    elif kind == "bundle-error":
                        raise BundleError(payload)
                    else:
                        errno, strerror, filename = payload
                        raise OSError(errno, strerror, filename)
        finally:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)

    def _records(self, hash_it: bool) -> Iterator[LogRecord]:
        digest = hashlib.sha256() if hash_it else None
        try:
            fh = self.path.open("rb")
        except OSError as exc:
            raise BundleError(f"{self.path}: cannot open: {exc.strerror or exc}") from exc
        with fh:
            head = fh.read(4096)
            fh.seek(0)
            cut = _Cut()
            chunks: Iterator[bytes] = _chunks(fh, digest)
            transcoded = head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
            if transcoded:
                self.problems.append(Problem(self.source, "UTF-16 text: transcoded to UTF-8"))
                chunks = _transcode(chunks, "utf-16")
            elif head and head.count(b"\0") > len(head) // 8:
                self.problems.append(Problem(self.source, "binary data (NUL bytes): not a text log"))
            parser = LogParser(self.source)
            scanner: CandidateScanner | GrepCandidates
            repeats: dict[int, int] = {}
            if (
                GREP is not None
                and not transcoded
                and not os.environ.get("INGESTER_COLLECTOR_NO_GREP")
                and not has_long_line(fh.fileno(), LINE_MAX)
            ):
                # (an external search holds a whole line in memory: a file with a line over
                # LINE_MAX is read here, in bounded chunks, its long lines cut)
                scanner = GrepCandidates(self.path, digest)
                scanner.follow = parser.in_block
                scanner.summarisable = parser.summarisable
                scanner.repeats = repeats
            else:
                scanner = CandidateScanner(cap_lines(chunks, LINE_MAX, cut))
            undecodable = 0
            for number, raw in scanner:
                text = raw.decode("utf-8", errors="replace")
                if "\ufffd" in text:
                    undecodable += 1
                out = parser.feed(number, text)
                if out:
                    if repeats:  # a retried error's line standing for others that read the same
                        out = repeated(out, repeats.pop(number, 1))
                    yield from out
            self.lines = scanner.lines
            if isinstance(scanner, GrepCandidates):
                self.problems.extend(Problem(self.source, f) for f in scanner.failures)
            yield from parser.finish(scanner.lines)
            if undecodable:
                self.problems.append(
                    Problem(self.source, f"{undecodable} lines not valid UTF-8 (bytes replaced)")
                )
            if not head:
                self.problems.append(Problem(self.source, "empty: the container printed nothing"))
            if cut.lines:
                self.problems.append(Problem(
                    self.source,
                    f"{cut.lines} lines longer than {LINE_MAX >> 10} KiB: cut there ({cut.bytes} bytes not read)",
                ))
        if digest is not None:
            self.sha256 = digest.hexdigest()


# A log at least this long is read in a forked process (`LogInput._forked`), on 2+ CPUs.
FORK_MIN = 64 << 20
FORK_BATCH = 256  # records per pickled message


def _fork_reader(path: Path) -> bool:
    if not hasattr(os, "fork") or os.environ.get("INGESTER_COLLECTOR_NO_FORK"):
        return False
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    try:
        return cpus >= 2 and path.stat().st_size >= FORK_MIN
    except OSError:
        return False  # the reader says why


def _start_reader(log: LogInput, hash_it: bool) -> tuple[int, int] | None:
    """Fork the child that runs `log._records` and sends its records back (`_serve_records`):
    (its pid, the pipe to read them from), or None when there is no fork to be had."""
    rd, wr = os.pipe()
    with contextlib.suppress(OSError):  # a batch in flight while the reader is busy elsewhere
        fcntl.fcntl(wr, F_SETPIPE_SZ, 1 << 20)
    try:
        pid = os.fork()
    except OSError:
        os.close(rd)
        os.close(wr)
        return None
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        os.close(rd)
        code = 0
        try:
            with os.fdopen(wr, "wb", buffering=1 << 16) as out:
                _serve_records(log, hash_it, out)
        except BaseException:  # the parent sees the stream end early and says so
            code = 1
        os._exit(code)
    os.close(wr)
    return pid, rd


class _ReadAhead:
    """Readers started before anyone asked for their records (`read_ahead`), by file.

    The command line starts the reader of the log it is given before it imports the diagnosis
    and the reports, so the search runs meanwhile; `LogInput.records` of the same file (same
    source name, same hashing, the file unchanged) takes the running reader over. One never
    taken over is killed and reaped at exit."""

    def __init__(self) -> None:
        # the file (device, inode) -> (what it was started for: source, hashing, size, mtime;
        # the reader's pid and pipe)
        self.started: dict[tuple[int, int], tuple[tuple[str, bool, int, int], int, int]] = {}
        self.hooked = False

    @staticmethod
    def _identity(path: Path) -> tuple[int, int, int, int] | None:
        """A regular file's device, inode, size and mtime; None for anything else (a link, a
        FIFO, a file that cannot be read: those are the loader's to refuse or report)."""
        try:
            st = os.lstat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns

    def start(self, log: LogInput, hash_it: bool) -> None:
        ident = self._identity(log.path)
        if ident is None or ident[:2] in self.started or not _fork_reader(log.path):
            return
        child = _start_reader(log, hash_it)
        if child is None:
            return
        self.started[ident[:2]] = ((log.source, hash_it, *ident[2:]), *child)
        if not self.hooked:
            atexit.register(self.stop_all)
            self.hooked = True

    def take(self, log: LogInput, hash_it: bool) -> tuple[int, int] | None:
        """The running reader of this very file, or None (one started for another reading, or
        for a file that has changed since, is stopped)."""
        if not self.started:
            return None
        ident = self._identity(log.path)
        if ident is None:
            return None
        entry = self.started.pop(ident[:2], None)
        if entry is None:
            return None
        started_for, pid, rd = entry
        if started_for != (log.source, hash_it, *ident[2:]):
            self._stop(pid, rd)
            return None
        return pid, rd

    @staticmethod
    def _stop(pid: int, rd: int) -> None:
        os.close(rd)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)

    def stop_all(self) -> None:
        while self.started:
            _, (_, pid, rd) = self.started.popitem()
            self._stop(pid, rd)


_AHEAD = _ReadAhead()


def read_ahead(path: Path, source: str, *, hash_it: bool = False) -> None:
    """Start reading a long log now, in the forked reader (`LogInput.records` takes it over), so
    its search runs while the caller loads the rest; nothing happens for a short log, one that
    cannot be read (its reader will say why), or where there is no second CPU."""
    _AHEAD.start(LogInput(path, source), hash_it)


class _Wire:
    """Records as the forked reader sends them: (class number, field values) pairs, a third of
    the pickling that the dataclasses themselves cost the reader (its CPU is the one the whole
    reading waits for). Rebuilt here by calling each class with its values in field order."""

    CLASSES: tuple[type, ...] = RECORD_TYPES

    def __init__(self) -> None:
        self.number = {cls: i for i, cls in enumerate(self.CLASSES)}
        self.names = [tuple(f.name for f in fields(cls)) for cls in self.CLASSES]
        # (each record class has two fields or more: attrgetter then returns a tuple)
        self.values = [operator.attrgetter(*names) for names in self.names]

    def pack(self, batch: list[LogRecord]) -> list[tuple[int, tuple[object, ...]]]:
        number, values = self.number, self.values
        out = []
        for rec in batch:
            k = number[type(rec)]
            out.append((k, values[k](rec)))
        return out

    def unpack(self, packed: list[tuple[int, tuple[object, ...]]]) -> Iterator[LogRecord]:
        classes = self.CLASSES
        for k, vals in packed:
            yield classes[k](*vals)


def _serve_records(log: LogInput, hash_it: bool, out: BinaryIO) -> None:  # pragma: no cover - child
    dump = pickle.dump
    wire = _Wire()
    batch: list[LogRecord] = []
    try:
        for rec in log._records(hash_it):
            batch.append(rec)
            if len(batch) >= FORK_BATCH:
                dump(("records", wire.pack(batch)), out, pickle.HIGHEST_PROTOCOL)
                batch = []
        dump(("records", wire.pack(batch)), out, pickle.HIGHEST_PROTOCOL)
        dump(("end", (log.lines, log.sha256, log.problems)), out, pickle.HIGHEST_PROTOCOL)
    except BundleError as exc:
        dump(("bundle-error", str(exc)), out, pickle.HIGHEST_PROTOCOL)
    except OSError as exc:
        dump(("os-error", (exc.errno, exc.strerror, exc.filename)), out, pickle.HIGHEST_PROTOCOL)


GREP = shutil.which("grep")
# ripgrep, where installed, searches many literals at once several times faster than GNU grep
# (SIMD multi-literal search): one process is then enough. Same argv and output format.
RIPGREP = shutil.which("rg")
# A part smaller than this is not worth a process of its own.
PART_MIN = 32 << 20
PARTS_MAX = 4


class GrepCandidates:
    """The scanner's contract (needle lines with their numbers, enough lines around them, the
    total line count) with GNU grep doing the search, one grep per CPU.

    The file is cut at line boundaries into one part per CPU (at most `PARTS_MAX`, none smaller
    than `PART_MIN`) and one `grep -F` per part searches all the needles at once. The first part's
    hits are read as grep prints them; later parts' hits wait in temporary files (so memory does
    not grow with the log) and get their line numbers once the parts before them are counted: the
    line of a part's last hit plus the newlines after it, usually a short tail.

    Lines after a hit are read back by offset only while `follow()` (the parser's
    `LogParser.in_block`) says a panic or `Error:` block is still open, so the parser sees every
    line it would use; the line before an opener and the file's last line are read back likewise.

    The high-frequency `scan.BULK` lines come from a search of their own that stops after
    `bulk_exact` lines; those are read one by one. Past them, in each stretch between two lines
    handed out, the file itself is searched at C speed for the first and last BULK line and the
    largest Pressure number (`scan.above`, each hit checked by the parser), and only those lines
    are handed out, while `summarisable()` (the parser's `LogParser.summarisable`) holds; else
    every BULK line of the stretch is. So the cost no longer grows with how many lines are
    Pressure lines, and every run keeps its first and last time and its largest number.

    Retried connection errors (`scan.RETRY`, one line in a hundred on some logs) are hits of the
    same search. Past the BULK lines read one by one, and while `summarisable()` holds, those of
    a stretch are counted instead of handed out (`_Retries`): the first line of each kind is
    handed out standing for the others (`repeats`, read by `logs.repeated`), and the last for
    its time. So their cost, too, no longer grows with how many there are.
    """

    # the log's largest Pressure number searched for once in the whole file (`_TopSearch`)
    top_search = True

    def __init__(
        self,
        path: Path,
        digest: hashlib._Hash | None = None,
        parts: int | None = None,
        bulk_exact: int = BULK_EXACT,
    ) -> None:
        self.path = path
        self.lines = 0
        self.failures: list[str] = []
        self.follow: Callable[[], bool] = lambda: True
        self.summarisable: Callable[[], bool] = lambda: False
        # None: every retried connection error is handed out; a dict (the caller's, read with
        # `logs.repeated`): such lines may be counted instead, and a line handed out for them
        # gets its line number -> how many lines it stands for (itself included)
        self.repeats: dict[int, int] | None = None
        self.summarised = 0  # stretches read by the summarising search
        # a stretch at least this long is searched half here, half in a forked helper process
        self.helper_min = HELPER_MIN
        self._helper: _Helper | None = None
        self._no_helper = False  # none to be had (no fork, one CPU, or it went away)
        self._digest = digest
        self._parts = parts
        self._bulk_exact = bulk_exact
        # the search for the log's largest number; False: not to be had (or `top_search` off),
        # each stretch is then searched for its own
        self._top: _TopSearch | Literal[False] | None = None

    # -- reading back by offset -----------------------------------------------------------------
    @staticmethod
    def _line_at(fd: int, offset: int) -> bytes:
        size = 512
        while True:
            data = os.pread(fd, size, offset)
            cut = data.find(b"\n")
            if cut >= 0:
                return data[: cut + 1]
            if len(data) < size:
                return data
            size *= 8

    @staticmethod
    def _line_before(fd: int, offset: int) -> bytes:
        window = 1024
        while True:
            start = max(0, offset - window)
            data = os.pread(fd, offset - start, start)
            cut = data.rfind(b"\n", 0, len(data) - 1)
            if cut >= 0 or start == 0:
                return data[cut + 1 :]
            window *= 8

    @staticmethod
    def _newlines(fd: int, start: int, end: int) -> tuple[int, bool]:
        """Newlines in [start, end), and whether the range ends inside a line."""
        count, pos, last = 0, start, b"\n"
        while pos < end:
            block = os.pread(fd, min(CHUNK, end - pos), pos)
            if not block:
                break
            count += block.count(b"\n")
            last = block[-1:]
            pos += len(block)
        return count, last != b"\n"

    # -- cutting and searching ------------------------------------------------------------------
    @staticmethod
    def _tool() -> str | None:
        if RIPGREP is not None and not os.environ.get("INGESTER_COLLECTOR_NO_RG"):
            return RIPGREP
        return GREP

    def _bounds(self, fd: int, size: int) -> list[tuple[int, int]]:
        parts = self._parts
        if parts is None and self._tool() != GREP:
            parts = 1
        if parts is None:
            try:
                cpus = len(os.sched_getaffinity(0))
            except AttributeError:  # not Linux
                cpus = os.cpu_count() or 1
            parts = min(cpus, PARTS_MAX, max(1, size // PART_MIN))
        if not hasattr(os, "splice"):  # bounded parts are fed through a pipe by os.splice
            parts = 1
        cuts = [0]
        for k in range(1, parts):
            nl = _find_newline(fd, size * k // parts, size)
            if nl < 0:
                break
            if cuts[-1] < nl + 1 < size:
                cuts.append(nl + 1)
        cuts.append(size)
        return list(itertools.pairwise(cuts))

    def _argv(self, probes: tuple[bytes, ...]) -> list[str]:
        tool = self._tool()
        argv = [str(tool), "-a", "-n", "-b", "-F"]
        if tool != GREP:
            # Raw bytes like grep (no BOM transcoding), no user config, no colours; read() rather
            # than mmap so its memory stays bounded like grep's.
            argv += ["--no-config", "--no-mmap", "--encoding", "none", "--color", "never", "--no-filename"]
            probes = rg_probes(probes)
        for probe in probes:
            argv += ["-e", probe.decode()]
        return argv

    def _spawn_bulk(self) -> subprocess.Popen[bytes] | None:
        if self._bulk_exact <= 0:
            return None
        argv = [*self._argv(BULK), "-m", str(self._bulk_exact), "--", str(self.path)]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                env={**os.environ, "LC_ALL": "C"})

    def _spawn(
        self,
        fd: int,
        start: int,
        end: int,
        size: int,
        stdout: int | BinaryIO,
        probes: tuple[bytes, ...] = RARE_PROBES,
    ) -> tuple[subprocess.Popen[bytes], threading.Thread | None]:
        argv = self._argv(probes)
        env = {**os.environ, "LC_ALL": "C"}
        if start == 0 and end == size:
            proc = subprocess.Popen([*argv, "--", str(self.path)], stdout=stdout,
                                    stderr=subprocess.DEVNULL, env=env)
            return proc, None
        if end == size:  # the last part: grep reads the file from `start` on its own
            src = os.open(self.path, os.O_RDONLY)
            try:
                os.lseek(src, start, os.SEEK_SET)
                proc = subprocess.Popen(argv, stdin=src, stdout=stdout,
                                        stderr=subprocess.DEVNULL, env=env)
            finally:
                os.close(src)
            return proc, None
        rd, wr = os.pipe()
        with contextlib.suppress(OSError):
            fcntl.fcntl(wr, F_SETPIPE_SZ, 1 << 20)
        try:
            proc = subprocess.Popen(argv, stdin=rd, stdout=stdout,
                                    stderr=subprocess.DEVNULL, env=env)
        finally:
            os.close(rd)
        feeder = threading.Thread(target=_splice_range, args=(fd, wr, start, end), daemon=True)
        feeder.start()
        return proc, feeder

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        hasher = None
        if self._digest is not None:
            hasher = threading.Thread(target=_hash_file, args=(self.path, self._digest), daemon=True)
            hasher.start()
        with contextlib.ExitStack() as stack:
            fd = stack.enter_context(self.path.open("rb")).fileno()
            size = os.fstat(fd).st_size
            bounds = self._bounds(fd, size)
            procs: list[tuple[subprocess.Popen[bytes], threading.Thread | None]] = []
            # the first part's hits are read as they come; the others' wait in files
            spools: list[BinaryIO | None] = [None]
            spools += [stack.enter_context(tempfile.TemporaryFile()) for _ in bounds[1:]]
            bulk: subprocess.Popen[bytes] | None = None
            try:
                if len(bounds) == 1 and self._bulk_exact > 0:
                    # one search for every needle; it gives way to one without BULK once
                    # `bulk_exact` BULK lines have come (`_walk`)
                    procs.append(self._spawn(fd, 0, size, size, subprocess.PIPE, PROBES))
                else:
                    for (start, end), spool in zip(bounds, spools, strict=True):
                        procs.append(self._spawn(fd, start, end, size, spool or subprocess.PIPE))
                    bulk = self._spawn_bulk()
                yield from _Walk(self, fd, size, bounds, bulk).lines(bounds, procs, spools)
            finally:
                if self._helper is not None:
                    self._helper.close()
                self._helper = None
                if self._top:
                    self._top.close()
                self._top = None
                if bulk is not None:
                    if bulk.stdout is not None:
                        bulk.stdout.close()
                    if bulk.poll() is None:
                        bulk.kill()
                    bulk.wait()
                for proc, feeder in procs:
                    if proc.stdout is not None:
                        proc.stdout.close()
                    if proc.poll() is None:
                        proc.kill()
                    proc.wait()
                    if feeder is not None:
                        feeder.join()
                if hasher is not None:
                    hasher.join()

    def _stretch(self, fd: int, a: int, na: int, b: int, nb: int) -> list[tuple[int, int, bytes]]:
        """The BULK lines to hand out from [a, b): line `na` starts at `a`, line `nb` at `b`.

        While the parser says such lines change nothing but their own record, only the first,
        the last and those that raise the largest number read so far in the log (`_TopSearch`:
        the log's largest is among them) are kept; else all of them. Without the search for the
        log's largest, each stretch keeps one with its own largest number.
        Sorted (line number, offset, line)."""
        keep: dict[int, bytes] = {}  # offset -> line
        top = self._top_for(fd) if self.summarisable() else None
        if top:
            return self._stretch_top(fd, a, na, b, nb, top)
        if not self.summarisable():
            for pos, buf, lim in _pieces(fd, a, b):
                for needle in BULK:
                    p = buf.find(needle, 0, lim)
                    while p >= 0:
                        ls = buf.rfind(b"\n", 0, p) + 1
                        le = buf.find(b"\n", p, lim) + 1 or lim
                        keep[pos + ls] = buf[ls:le]
                        p = buf.find(needle, le, lim)
        elif b - a <= SHORT and b - a < self.helper_min:  # (no half for the helper)
            return self._stretch_short(fd, a, na, b, nb)
        else:
            keep = self._stretch_searched(fd, a, b)
        out: list[tuple[int, int, bytes]] = []
        for o in sorted(keep):
            near_a = o - a <= b - o
            n = na + self._newlines(fd, a, o)[0] if near_a else nb - self._newlines(fd, o, b)[0]
            out.append((n, o, keep[o]))
        return out

    def _stretch_searched(self, fd: int, a: int, b: int) -> dict[int, bytes]:
        """`_stretch`'s summary of [a, b) searched in the file: its first and last BULK line and
        one with its largest number (half of it searched by the helper process, `_Helper`, when
        long enough). Offset -> line; empty when the stretch holds no BULK line."""
        keep: dict[int, bytes] = {}  # offset -> line
        last = _line_of(fd, _search_back(fd, BULK, a, b), b)
        if last is None:
            return keep
        self.summarised += 1
        keep[last[0]] = last[1]
        first = _line_of(fd, _search_forward(fd, BULK, a, b), b)
        if first is not None:
            keep[first[0]] = first[1]
        # Start from the stretch's last number: a climbing series then needs one search
        # with one pattern; each larger number found raises the bar.
        best, best_at = -1, None
        tail = _line_of(fd, _search_back(fd, NUMBER_AT, a, b), b)
        if tail is not None:
            value = _pressure(tail[1])
            if value is not None:
                best, best_at = value, tail
        start = first[0] if first is not None else a
        end = tail[0] if tail is not None else b
        # the second half searched by the helper process meanwhile, when it is worth it
        mid = start
        helper = self._helper
        if end - start >= self.helper_min and not self._no_helper:
            if helper is None:
                helper = self._helper = _Helper.start(fd)
                self._no_helper = helper is None
            if helper is not None:
                mid = _line_start_after(fd, (start + end) // 2, end)
                if not helper.ask(mid, end, best):
                    mid = start
        found = _largest_above(fd, start, mid if mid > start else end, best)
        if found is not None:
            best, best_at = found[0], (found[1], found[2])
        if mid > start and helper is not None:
            theirs = helper.answer()
            if theirs is None:  # the helper went away: search its half here
                self._no_helper = True
                theirs = _largest_above(fd, mid, end, best)
            if theirs is not None and theirs[0] > best:
                best, best_at = theirs[0], (theirs[1], theirs[2])
        if best_at is not None:
            keep[best_at[0]] = best_at[1]
        return keep

    def _top_for(self, fd: int) -> _TopSearch | None:
        if self._top is None:
            self._top = _TopSearch.start(self, fd) if self.top_search else False
        if self._top and self._top.failed:
            self._top.close()
            self._top = False
        return self._top or None

    def _stretch_top(
        self, fd: int, a: int, na: int, b: int, nb: int, top: _TopSearch
    ) -> list[tuple[int, int, bytes]]:
        """`_stretch` with the log's largest number searched for in the whole file."""
        out: dict[int, tuple[int, bytes]] = {}  # offset -> (line number, line)
        records = top.take(a, b)
        if top.failed:  # this stretch's own largest, searched for as without the search
            return self._stretch(fd, a, na, b, nb)
        self.summarised += 1
        for num, off, line in records:
            out[off] = (num, line)
        last = _line_of(fd, _search_back(fd, BULK, a, b), b)
        if last is not None:  # (else none in the stretch)
            ends = [last]
            first = _line_of(fd, _search_forward(fd, BULK, a, last[0] + len(last[1])), b)
            if first is not None:
                ends.append(first)
            for o, line in ends:
                if o not in out:  # its number, counted from the nearer end
                    near_a = o - a <= b - o
                    n = na + self._newlines(fd, a, o)[0] if near_a else nb - self._newlines(fd, o, b)[0]
                    out[o] = (n, line)
        return [(n, o, line) for o, (n, line) in sorted(out.items())]

    def _stretch_short(self, fd: int, a: int, na: int, b: int, nb: int) -> list[tuple[int, int, bytes]]:
        """`_stretch` summarising a short stretch from one read of it (the same lines)."""
        buf = os.pread(fd, b - a, a)
        size = len(buf)

        def line_of(p: int) -> tuple[int, bytes] | None:
            if p < 0:
                return None
            ls = buf.rfind(b"\n", 0, p) + 1
            return ls, buf[ls : buf.find(b"\n", p) + 1 or size]

        last = line_of(max(buf.rfind(n) for n in BULK))
        if last is None:
            return []
        self.summarised += 1
        keep: dict[int, bytes] = {last[0]: last[1]}
        first = line_of(min((p for p in (buf.find(n) for n in BULK) if p >= 0), default=-1))
        if first is not None:
            keep[first[0]] = first[1]
        best, best_at = -1, None
        tail = line_of(max(buf.rfind(n) for n in NUMBER_AT))
        if tail is not None:
            value = _pressure(tail[1])
            if value is not None:
                best, best_at = value, tail
        start = first[0] if first is not None else 0
        end = tail[0] if tail is not None else size
        found = _largest_in_buf(buf, start, end, best) if end > start else None
        if found is False:
            far = _largest_above(fd, a + start, a + end, best)
            found = None if far is None else (far[0], far[1] - a, far[2])
        if found is not None:
            best_at = (found[1], found[2])
        if best_at is not None:
            keep[best_at[0]] = best_at[1]
        out: list[tuple[int, int, bytes]] = []
        for o in sorted(keep):
            n = na + buf.count(b"\n", 0, o) if o <= size - o else nb - buf.count(b"\n", o)
            out.append((n, a + o, keep[o]))
        return out

    @staticmethod
    def _last_line(fd: int, size: int) -> bytes:
        start = max(0, size - 65536)
        data = os.pread(fd, size - start, start)
        if data.endswith(b"\n"):
            return data[data.rfind(b"\n", 0, len(data) - 1) + 1 :]
        return data[data.rfind(b"\n") + 1 :]


class _Walk:
    """One pass over a file's search hits (`GrepCandidates.__iter__`), handing out in order the
    lines the parser needs: each hit, the line before an opener, the lines an open block still
    needs, the BULK lines (one by one, then per stretch, `GrepCandidates._stretch`), the
    retried connection errors counted per stretch (`_Retries`) and the file's last line.

    `sent` is the last line number handed out; `nxt`, `nxt_off` the line after it and its offset.
    """

    def __init__(self, owner: GrepCandidates, fd: int, size: int, bounds: list[tuple[int, int]],
                 bulk: subprocess.Popen[bytes] | None) -> None:
        self.owner, self.fd, self.size = owner, fd, size
        self.sent, self.nxt, self.nxt_off = 0, 1, 0
        self.window = _ReadBack(fd)
        # the BULK lines from their own search, read one by one up to `bulk_exact` of them
        self.bulk = bulk
        self.bulk_hits: Iterator[bytes] = iter(bulk.stdout) if bulk is not None and bulk.stdout else iter(())
        self.bulk_seen = 0
        self.pending = self._next_bulk()
        # one search for every needle (one part): its BULK lines are counted, and past
        # `bulk_exact` of them it gives way to one for the other needles (`lines`)
        self.switch = bulk is None and len(bounds) == 1 and owner._bulk_exact > 0
        # past the BULK lines read one by one: the stretches between hits searched in the file
        self.dense = (bulk is None and not self.switch) or (
            bulk is not None and self.pending is None and self.bulk_seen >= owner._bulk_exact)
        self.retries = _Retries() if owner.repeats is not None else None

    def lines(
        self,
        bounds: list[tuple[int, int]],
        procs: list[tuple[subprocess.Popen[bytes], threading.Thread | None]],
        spools: list[BinaryIO | None],
    ) -> Iterator[tuple[int, bytes]]:
        """Every part's hits in order (the first as its search prints them, the others from
        their spool files), then what the end of the file needs; sets `owner.lines`."""
        owner, fd = self.owner, self.fd
        base = 0  # lines in the parts before this one
        for k, ((start, end), spool) in enumerate(zip(bounds, spools, strict=True)):
            proc = procs[k][0]
            if spool is None:
                assert proc.stdout is not None
                hits: Iterator[bytes] = iter(proc.stdout)
            else:
                proc.wait()
                spool.seek(0)
                hits = iter(spool)
            last_num, last_end, switched = yield from self._part(hits, base, start)
            if switched:
                if proc.stdout is not None:
                    proc.stdout.close()
                proc.kill()  # from the next line on: the other needles only, the rest summarised
                proc.wait()
                if last_end < end:
                    procs[k] = owner._spawn(fd, last_end, end, self.size, subprocess.PIPE)
                    proc = procs[k][0]
                    assert proc.stdout is not None
                    last_num, last_end, _ = yield from self._part(iter(proc.stdout), last_num, last_end)
            if spool is None and proc.stdout is not None:
                proc.stdout.close()
            if proc.wait() > 1:
                owner.failures.append(f"grep exited {proc.returncode}: lines may be missing")
            tail, open_end = owner._newlines(fd, min(last_end, end), end)
            base = last_num + tail + (1 if open_end else 0)
        # BULK lines after the last other hit, and what an open block needs at the very end
        ends_nl = self.size == 0 or os.pread(fd, 1, self.size - 1) == b"\n"
        yield from self._hand(base + 1 if ends_nl else base, self.size, b"", final=True)
        owner.lines = base
        if base > self.sent:
            yield base, owner._last_line(fd, self.size)

    def _part(
        self, hits: Iterator[bytes], s_num: int, s_off: int
    ) -> Generator[tuple[int, bytes], None, tuple[int, int, bool]]:
        """Hand out one search's hits (`num:offset:line`, counted from line `s_num` at offset
        `s_off`). Returns the last hit's line number and end, and whether the search is to give
        way to one for the other needles (`switch`: `bulk_exact` BULK lines seen)."""
        follow, window = self.owner.follow, self.window
        opener_a, opener_b = OPENERS  # tested one by one: this loop runs once per hit
        bulk_a, bulk_b = BULK
        last_num, last_end = s_num, s_off
        for out in hits:
            num_b, off_b, content = out.split(b":", 2)
            num, off = s_num + int(num_b), s_off + int(off_b)
            last_num, last_end = num, off + len(content)
            if self.dense or self.pending is not None:
                if not self._defer(num, off, content):
                    yield from self._hand(num, off, content)
            else:  # `_hand` inlined: this loop runs once per hit
                while self.sent < self.nxt < num and follow():
                    line = window.line_at(self.nxt_off)
                    if not line:
                        break
                    self.sent = self.nxt
                    yield self.sent, line
                    self.nxt, self.nxt_off = self.sent + 1, self.nxt_off + len(line)
                if num - 1 > self.sent and (opener_a in content or opener_b in content):
                    self.sent = num - 1
                    yield self.sent, window.line_before(off)
                if num > self.sent:
                    self.sent = num
                    yield num, content
                    self.nxt, self.nxt_off = num + 1, last_end
            if self.switch and (bulk_a in content or bulk_b in content):
                self.bulk_seen += 1
                if self.bulk_seen >= self.owner._bulk_exact:
                    self.switch, self.dense = False, True
                    return last_num, last_end, True
        return last_num, last_end, False

    def _defer(self, num: int, off: int, content: bytes) -> bool:
        """Whether the hit is a retried connection error counted in the stretch (`_Retries`)
        instead of handed out: only where the parser says such a line changes nothing else."""
        retries = self.retries
        return (retries is not None and self.dense and RETRY in content and self.owner.summarisable()
                and retries.add(num, off, content))

    def _next_bulk(self) -> tuple[int, int, bytes] | None:
        out = next(self.bulk_hits, None)
        if out is None:
            if self.bulk is not None and self.bulk.wait() > 1:
                self.owner.failures.append(f"grep exited {self.bulk.returncode}: lines may be missing")
            return None
        num_b, off_b, content = out.split(b":", 2)
        self.bulk_seen += 1
        return int(num_b), int(off_b), content

    def _hand(self, num: int, off: int, content: bytes, final: bool = False) -> Iterator[tuple[int, bytes]]:
        """Everything up to line `num` (at offset `off`), then that line (unless `final`)."""
        while self.pending is not None and self.pending[0] < num:
            b_num, b_off, b_content = self.pending
            self.pending = self._next_bulk()
            yield from self._hand(b_num, b_off, b_content)
            if self.pending is None and self.bulk_seen >= self.owner._bulk_exact:
                self.dense = True  # more BULK lines may follow: search the file from here on
        yield from self._block_lines(num)
        if self.dense and self.sent < self.nxt < num and self.nxt_off < off:
            yield from self._stretch_lines(num, off)
        if final:
            return
        if num - 1 > self.sent and (OPENERS[0] in content or OPENERS[1] in content):
            self.sent = num - 1
            yield self.sent, self.window.line_before(off)
        if num > self.sent:
            self.sent = num
            yield num, content
            self.nxt, self.nxt_off = num + 1, off + len(content)

    def _block_lines(self, num: int) -> Iterator[tuple[int, bytes]]:
        """The lines before line `num` that an open panic or `Error:` block still needs."""
        follow = self.owner.follow
        while self.sent < self.nxt < num and follow():
            line = self.window.line_at(self.nxt_off)
            if not line:
                break
            self.sent = self.nxt
            yield self.sent, line
            self.nxt, self.nxt_off = self.sent + 1, self.nxt_off + len(line)

    def _stretch_lines(self, num: int, off: int) -> Iterator[tuple[int, bytes]]:
        """The lines kept of the stretch before line `num` (at `off`): its BULK lines
        (`GrepCandidates._stretch`) and its retried connection errors (`_Retries.take`)."""
        owner = self.owner
        kept = owner._stretch(self.fd, self.nxt_off, self.nxt, off, num)
        if self.retries is not None and self.retries.first and owner.repeats is not None:
            kept = sorted([*kept, *self.retries.take(owner.repeats)])
        for k_num, k_off, k_line in kept:
            if k_num > self.sent:
                self.sent = k_num
                yield k_num, k_line
                self.nxt, self.nxt_off = k_num + 1, k_off + len(k_line)


_OTHER_NEEDLES = re.compile(b"|".join(re.escape(n) for n in NEEDLES if n != RETRY))


def _transparent(content: bytes) -> bool:
    """A retried connection error and nothing else: its record (a `retry` fact) is evidence
    that the process runs, like a Pressure line, and nothing else about the run depends on
    where it falls among them (`runs._Builder`)."""
    return RETRY in content and _OTHER_NEEDLES.search(content) is None


# `logs.split_line`'s Docker and tracing time stamps: past them, lines read the same when their
# bytes are the same (the stamps' lengths kept in the key: they move the rest). One match for
# both, tracing's optional.
_STAMPS = re.compile(
    rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z )(\x1b\[2m\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z\x1b\[0m )?"
)
RETRY_KINDS = 64  # distinct retried-error lines counted per stretch; past them, one is handed out


def _body(line: bytes) -> tuple[int, int, bytes]:
    """What the parser reads of a line past its time stamps (with their lengths): two lines with
    the same body give the same record but for the time and line number."""
    m = _STAMPS.match(line)
    if m is None:
        return 0, 0, line
    cut, end = m.end(1), m.end()
    return cut, end - cut, line[end:]


class _Retries:
    """The retried connection errors of one stretch (`_transparent` lines), counted instead of
    handed out one by one: on a log where one line in a hundred is one, each would otherwise
    cost a trip through the parser and end a stretch of its own.

    What the run needs of them (`runs._Builder`) is how many, each host's first, the first one
    (its citation) and the times they span. So the first line of each body (`_body`: the same
    task, host and kind, `retry` or `maxmemory`) is handed out standing for every line of the
    stretch that reads the same, and the stretch's last one for its time.
    """

    def __init__(self) -> None:
        self.first: dict[tuple[int, int, bytes], tuple[int, int, bytes]] = {}  # body -> its first line
        self.count: dict[tuple[int, int, bytes], int] = {}  # body -> lines that read so
        self.last: tuple[int, int, bytes] | None = None  # (line number, offset, line)
        self.last_body: tuple[int, int, bytes] | None = None

    def add(self, num: int, off: int, line: bytes) -> bool:
        """Count line `num`; False (and nothing counted) when it is to be handed out instead:
        not a `_transparent` line, or one body too many."""
        body = _body(line)
        n = self.count.get(body)
        if n is None:
            if len(self.first) >= RETRY_KINDS or not _transparent(line):
                return False
            self.first[body], n = (num, off, line), 0
        self.count[body] = n + 1
        self.last, self.last_body = (num, off, line), body
        return True

    def take(self, repeats: dict[int, int]) -> list[tuple[int, int, bytes]]:
        """The lines to hand out, each standing for its count of lines in `repeats`; then empty."""
        out: list[tuple[int, int, bytes]] = []
        for body, first in self.first.items():
            n = self.count[body]
            if body == self.last_body and self.last is not None and self.last != first:
                n -= 1  # the last line is handed out on its own
                out.append(self.last)
            if n > 1:
                repeats[first[0]] = n
            out.append(first)
        self.first, self.count, self.last, self.last_body = {}, {}, None, None
        return out


TOP_SAMPLES = 256  # Pressure lines read across the log for the first bar
TOP_CAP = 2000  # lines read from one search before it restarts with a higher bar
TOP_RESTARTS = 64  # (each costs a process: a few ms)


class _TopSearch:
    """The lines that raise the largest Pressure number read so far in the log, in order, from
    the external search (C speed) instead of a search of each stretch in Python.

    The bar starts at the largest number of `TOP_SAMPLES` Pressure lines read across the log,
    so the search (`scan.above_source`) picks only lines at or above it: a few, and among them
    the log's largest. Each picked line's number is read as the parser reads it. When a search
    picks more than `TOP_CAP` lines it restarts after the last one with the largest number so
    far as the bar; past `TOP_RESTARTS`, or when the search fails, `failed` is set and the
    stretches from then on are each searched for their own largest (`GrepCandidates._stretch`).
    """

    def __init__(self, owner: GrepCandidates, fd: int, size: int) -> None:
        self.owner, self.fd, self.size = owner, fd, size
        self.best = -1
        self.queue: deque[tuple[int, int, bytes]] = deque()  # (line number, offset, line)
        self.read_to = 0  # every picked line that starts before this offset has been read
        self.failed = False
        self.restarts = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.hits: Iterator[bytes] = iter(())
        self.s_num = self.s_off = self.count = 0

    @classmethod
    def start(cls, owner: GrepCandidates, fd: int) -> _TopSearch:
        size = os.fstat(fd).st_size
        top = cls(owner, fd, size)
        top._spawn(0, 0, top._sample())
        return top

    def _sample(self) -> int:
        bar = -1
        for k in range(1, TOP_SAMPLES + 1):
            p = self.size * k // TOP_SAMPLES
            lo = max(0, p - _NEAR)
            buf = os.pread(self.fd, p - lo, lo)
            found = max(buf.rfind(n) for n in NUMBER_AT)
            if found < 0:
                continue
            ls = buf.rfind(b"\n", 0, found) + 1
            le = buf.find(b"\n", found)
            if (ls == 0 and lo > 0) or le < 0:
                continue  # a line cut by the window
            value = _pressure(buf[ls : le + 1])
            if value is not None and value > bar:
                bar = value
        return bar - 1 if bar > 0 else -1  # the sampled line itself is picked too

    def _spawn(self, start: int, base: int, bar: int) -> None:
        tool = GrepCandidates._tool()
        argv = [str(tool), "-a", "-n", "-b"]
        if tool == GREP:
            argv += ["-E", "-e", above_source(bar, ere=True)]
        else:
            argv += ["--no-config", "--no-mmap", "--encoding", "none", "--color", "never",
                     "--no-filename", "-e", above_source(bar, ere=False)]
        env = {**os.environ, "LC_ALL": "C"}
        src = os.open(self.owner.path, os.O_RDONLY)
        try:
            os.lseek(src, start, os.SEEK_SET)
            self.proc = subprocess.Popen(argv, stdin=src, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, env=env)
        finally:
            os.close(src)
        assert self.proc.stdout is not None
        self.hits = iter(self.proc.stdout)
        self.s_num, self.s_off, self.count = base, start, 0

    def _stop(self) -> int:
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.poll() is None:
            proc.kill()
        return proc.wait()

    def close(self) -> None:
        self._stop()

    def take(self, a: int, b: int) -> list[tuple[int, int, bytes]]:
        """The lines in [a, b) that raise the largest number so far; those before `a` (handed
        out already, one by one) are dropped."""
        while self.read_to < b and self.proc is not None:
            out = next(self.hits, None)
            if out is None:
                if self._stop() > 1:
                    self.failed = True
                    return []
                self.read_to = self.size + 1
                break
            num_b, off_b, content = out.split(b":", 2)
            num, off = self.s_num + int(num_b), self.s_off + int(off_b)
            self.read_to = off + 1
            self.count += 1
            hits = _ANY_NUMBER.findall(content)
            if hits and max(map(_number, hits)) > self.best:
                value = _pressure(content)
                if value is not None and value > self.best:
                    self.best = value
                    self.queue.append((num, off, content))
            if self.count >= TOP_CAP:
                self._stop()
                self.restarts += 1
                if self.restarts > TOP_RESTARTS:
                    self.failed = True
                    return []
                if off + len(content) < self.size:
                    self._spawn(off + len(content), num, self.best)
                else:
                    self.read_to = self.size + 1
        out_: list[tuple[int, int, bytes]] = []
        queue = self.queue
        while queue and queue[0][1] < b:
            rec = queue.popleft()
            if rec[1] >= a:
                out_.append(rec)
        return out_


class _ReadBack:
    """Lines read back by offset through one buffer: follow-up lines come in runs."""

    SIZE = 8192  # a panic block's lines; a bigger copy costs more than it saves

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.start = 0
        self.data = b""

    def line_at(self, offset: int) -> bytes:
        i = offset - self.start
        if 0 <= i < len(self.data):
            cut = self.data.find(b"\n", i)
            if cut >= 0:
                return self.data[i : cut + 1]
        self.start, self.data = offset, os.pread(self.fd, self.SIZE, offset)
        cut = self.data.find(b"\n")
        if cut >= 0 or len(self.data) < self.SIZE:
            return self.data[: cut + 1] if cut >= 0 else self.data
        return GrepCandidates._line_at(self.fd, offset)  # a line longer than the buffer

    def line_before(self, offset: int) -> bytes:
        """The line that ends just before `offset` (a line start)."""
        i = offset - self.start
        if 0 < i <= len(self.data):
            cut = self.data.rfind(b"\n", 0, i - 1)
            if cut >= 0:
                return self.data[cut + 1 : i]
        return GrepCandidates._line_before(self.fd, offset)


F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_NEAR = 1 << 16  # the first window a search from one end of a range looks in


def _pieces(fd: int, a: int, b: int) -> Iterator[tuple[int, bytes, int]]:
    """[a, b) in buffers of about CHUNK cut after a newline: (offset, buffer, usable length)."""
    pos = a
    while pos < b:
        buf = os.pread(fd, min(CHUNK, b - pos), pos)
        if not buf:
            return
        lim = len(buf)
        if pos + lim < b:
            cut = buf.rfind(b"\n") + 1
            while cut == 0 and pos + len(buf) < b:  # one line longer than CHUNK
                more = os.pread(fd, min(CHUNK, b - pos - len(buf)), pos + len(buf))
                if not more:
                    break
                buf += more
                cut = buf.rfind(b"\n") + 1
            lim = cut or len(buf)
        yield pos, buf, lim
        pos += lim


def _search_back(fd: int, needles: tuple[bytes, ...], a: int, b: int) -> int:
    """Offset of the last of `needles` in [a, b), or -1: windows growing from b, so a needle
    absent from the range costs one pass at most, not one per needle."""
    width, hi = _NEAR, b
    longest = max(len(n) for n in needles)
    while hi > a:
        lo = max(a, hi - width)
        top = min(b, hi + longest - 1)
        buf = os.pread(fd, top - lo, lo)
        found = max(buf.rfind(n) for n in needles)
        if found >= 0:
            return lo + found
        hi, width = lo, min(width * 8, CHUNK)
    return -1


def _search_forward(fd: int, needles: tuple[bytes, ...], a: int, b: int) -> int:
    """Offset of the first of `needles` in [a, b), or -1 (windows growing from a)."""
    width, lo = _NEAR, a
    longest = max(len(n) for n in needles)
    while lo < b:
        hi = min(b, lo + width)
        base = max(a, lo - longest + 1)
        buf = os.pread(fd, hi - base, base)
        found = [p for p in (buf.find(n) for n in needles) if p >= 0]
        if found:
            return base + min(found)
        lo, width = hi, min(width * 8, CHUNK)
    return -1


def _line_of(fd: int, offset: int, b: int) -> tuple[int, bytes] | None:
    """(start, line) of the line holding `offset` (lines end by b), or None for -1."""
    if offset < 0:
        return None
    start = offset - len(GrepCandidates._line_before(fd, offset + 1)) + 1
    line = GrepCandidates._line_at(fd, start)
    return start, line[: b - start]


HELPER_MIN = 512 << 10


def _largest_above(fd: int, start: int, end: int, best: int) -> tuple[int, int, bytes] | None:
    """(number, line offset, line) of the first line in [start, end) whose Pressure number (as
    the parser reads it) is the largest there and above `best`; None if none is above.

    The file is searched through read-only mappings of at most WINDOW bytes, each unmapped
    after it (its pages stay in the page cache): no copy, and memory stays bounded."""
    if end <= start:
        return None
    if end - start <= SHORT:
        found = _largest_short(fd, start, end, best)
        if found is not False:
            return found
    best_at: tuple[int, int, bytes] | None = None
    pos = start
    span = WINDOW
    while pos < end:
        base = pos // mmap.ALLOCATIONGRANULARITY * mmap.ALLOCATIONGRANULARITY
        stop = min(end, base + span)
        try:
            if hasattr(mmap, "MAP_POPULATE"):  # page tables filled at once, not page by page
                view = mmap.mmap(fd, stop - base, offset=base, prot=mmap.PROT_READ,
                                 flags=mmap.MAP_SHARED | mmap.MAP_POPULATE)
            else:  # pragma: no cover - not Linux
                view = mmap.mmap(fd, stop - base, offset=base, access=mmap.ACCESS_READ)
        except (OSError, ValueError, OverflowError):
            found = _largest_above_read(fd, pos, end, best)
            return found if found is not None else best_at
        try:
            lim = stop - base
            if stop < end:  # up to the window's last newline; the rest in the next window
                cut = view.rfind(b"\n", pos - base, lim) + 1
                if cut == 0:  # no line ends in the window after pos: map a longer one
                    span *= 2
                    continue
                lim = cut
            span = WINDOW
            found = _largest_in(view, pos - base, lim, best)
        finally:
            view.close()
        if found is not None:
            best, best_at = found[0], (found[0], found[1] + base, found[2])
        pos = base + lim
    return best_at


WINDOW = 32 << 20  # the most of the file mapped at a time
SHORT = 256 << 10  # a range up to this long is read whole and all its numbers compared at once
_ANY_NUMBER = re.compile(rb"y(?:=| metrics: )(\d+)")  # every number `scan.above` may find


def _largest_short(fd: int, start: int, end: int, best: int) -> tuple[int, int, bytes] | Literal[False] | None:
    """`_largest_above` on a short range without a pattern per bar (each costs a compile): every
    number the search may find, compared in C, and the first line holding the largest read by
    the parser. False when that line reads otherwise (two numbers on a line, `y=` in another
    word): the caller then searches as usual."""
    found = _largest_in_buf(os.pread(fd, end - start, start), 0, end - start, best)
    if not found:
        return found
    return found[0], start + found[1], found[2]


def _largest_in_buf(buf: bytes, lo: int, hi: int, best: int) -> tuple[int, int, bytes] | Literal[False] | None:
    """`_largest_short` on buf[lo:hi] (offsets in buf)."""
    hits = _ANY_NUMBER.findall(buf, lo, hi)
    if not hits:
        return None
    try:
        values = list(map(int, hits))
    except ValueError:  # a number too long for int()
        values = [_number(h) for h in hits]
    top = max(values)
    if top <= best:
        return None
    m = next(itertools.islice(_ANY_NUMBER.finditer(buf, lo, hi), values.index(top), None))
    ls = buf.rfind(b"\n", lo, m.start()) + 1 or lo
    line = buf[ls : buf.find(b"\n", m.end(), hi) + 1 or hi]
    if _pressure(line) != top:
        return False
    return top, ls, line


def _largest_in(view: mmap.mmap, start: int, end: int, best: int) -> tuple[int, int, bytes] | None:
    best_at: tuple[int, int, bytes] | None = None
    pos = start
    while pos < end:
        lim = end if end - pos <= CHUNK else view.rfind(b"\n", pos, pos + CHUNK) + 1 or end
        p = pos
        while p < lim:
            for m in above(best).finditer(view, p, lim):
                if _number(m.group(1)) <= best:
                    continue  # just under the bar: the search's own pattern rounds it down
                ls = view.rfind(b"\n", pos, m.start()) + 1 or pos
                le = view.find(b"\n", m.end(), lim)
                line = view[ls : le + 1 if le >= 0 else lim]
                value = _pressure(line)  # as the parser reads the line (its first number)
                if value is not None and value > best:
                    best, best_at = value, (value, ls, line)
                    p = m.end()
                    break  # a higher bar: a new search from here
            else:
                p = lim
        pos = lim
    return best_at


def _largest_above_read(fd: int, start: int, end: int, best: int) -> tuple[int, int, bytes] | None:
    """`_largest_above` where the file cannot be mapped: read a piece at a time."""
    best_at: tuple[int, int, bytes] | None = None
    for pos, buf, lim in _pieces(fd, start, end):
        p = 0
        while p < lim:
            for m in above(best).finditer(buf, p, lim):
                if _number(m.group(1)) <= best:
                    continue
                ls = buf.rfind(b"\n", 0, m.start()) + 1
                line = buf[ls : buf.find(b"\n", m.end(), lim) + 1 or lim]
                value = _pressure(line)
                if value is not None and value > best:
                    best, best_at = value, (value, pos + ls, line)
                    p = m.end()
                    break
            else:
                p = lim
    return best_at


def _line_start_after(fd: int, pos: int, end: int) -> int:
    nl = _find_newline(fd, pos, end)
    return end if nl < 0 or nl + 1 > end else nl + 1


_REQ = struct.Struct("<qqq")
_ANS = struct.Struct("<qqq")


class _Helper:
    """A forked copy of this process that runs `_largest_above` on the ranges it is sent (the
    machine's second CPU), answering in order. Started once per log, when a long stretch comes."""

    def __init__(self, pid: int, req: int, ans: int) -> None:
        self.pid, self.req, self.ans = pid, req, ans

    @classmethod
    def start(cls, fd: int) -> _Helper | None:
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cpus = os.cpu_count() or 1
        if not hasattr(os, "fork") or cpus < 2:
            return None
        req_r, req_w = os.pipe()
        ans_r, ans_w = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            for x in (req_r, req_w, ans_r, ans_w):
                os.close(x)
            return None
        if pid == 0:  # pragma: no cover - the child's coverage is not collected
            code = 0
            try:
                # only what it needs: a pipe end held here would keep a search waiting for EOF
                lo = 3
                for keep in sorted({fd, req_r, ans_w}):
                    os.closerange(lo, keep)
                    lo = keep + 1
                os.closerange(lo, max(lo, min(os.sysconf("SC_OPEN_MAX"), 1 << 16)))
                _serve(fd, req_r, ans_w)
            except BaseException:  # the parent sees EOF and searches itself
                code = 1
            os._exit(code)
        os.close(req_r)
        os.close(ans_w)
        return cls(pid, req_w, ans_r)

    def ask(self, start: int, end: int, best: int) -> bool:
        try:
            os.write(self.req, _REQ.pack(start, end, best))
        except OSError:
            return False
        return True

    def answer(self) -> tuple[int, int, bytes] | None:
        head = _read_exact(self.ans, _ANS.size)
        if head is None:
            return None
        value, offset, size = _ANS.unpack(head)
        line = _read_exact(self.ans, size) if size else b""
        if line is None:
            return None
        return (value, offset, line) if value >= 0 else (-1, -1, b"")

    def close(self) -> None:
        for x in (self.req, self.ans):
            with contextlib.suppress(OSError):
                os.close(x)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _serve(fd: int, req: int, ans: int) -> None:  # pragma: no cover - runs in the helper
    while (head := _read_exact(req, _REQ.size)) is not None:
        start, end, best = _REQ.unpack(head)
        found = _largest_above(fd, start, end, best)
        if found is None:
            os.write(ans, _ANS.pack(-1, -1, 0))
        else:
            value, offset, line = found
            _write_all(ans, _ANS.pack(value, offset, len(line)) + line)


def _read_exact(fd: int, n: int) -> bytes | None:
    parts: list[bytes] = []
    while n:
        block = os.read(fd, n)
        if not block:
            return None
        parts.append(block)
        n -= len(block)
    return b"".join(parts)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _number(digits: bytes) -> int:
    """int() of a digit string; one too long for int() (a hostile log) counts as larger than any."""
    return int(digits) if len(digits) < 4000 else 1 << 64


def _pressure(line: bytes) -> int | None:
    """The number the parser reads from a line's Pressure record (None: none, or no record)."""
    try:
        recs = LogParser("-").feed(1, line.decode("utf-8", errors="replace"))
    except ValueError:  # a number too long for int(): the parser reading the line says so
        return None
    for rec in recs:
        if isinstance(rec, Pressure):
            return rec.events_in_memory
    return None


def _find_newline(fd: int, pos: int, size: int) -> int:
    while pos < size:
        block = os.pread(fd, 65536, pos)
        cut = block.find(b"\n")
        if cut >= 0:
            return pos + cut
        pos += len(block)
    return -1


def _splice_range(fd: int, pipe: int, start: int, end: int) -> None:
    """Copy [start, end) of a file into a pipe inside the kernel, then close the pipe."""
    try:
        pos = start
        while pos < end:
            n = os.splice(fd, pipe, min(1 << 20, end - pos), offset_src=pos)
            if n == 0:
                break
            pos += n
    except OSError:
        pass  # grep went away; the walk reports it
    finally:
        os.close(pipe)


def _hash_file(path: Path, digest: hashlib._Hash) -> None:
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)


def _chunks(fh: object, digest: hashlib._Hash | None) -> Iterator[bytes]:
    read = fh.read  # type: ignore[attr-defined]
    while True:
        block = read(CHUNK)
        if not block:
            return
        if digest is not None:
            digest.update(block)
        yield block


def _transcode(chunks: Iterator[bytes], encoding: str) -> Iterator[bytes]:
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    for block in chunks:
        yield decoder.decode(block).encode("utf-8")
    yield decoder.decode(b"", final=True).encode("utf-8")


# The longest line read whole; the rest of a longer one is counted, not read (memory stays
# bounded on a file with no newline at all).
LINE_MAX = 1 << 20


@dataclass
class _Cut:
    """What `cap_lines` left out: lines cut and bytes dropped."""

    lines: int = 0
    bytes: int = 0


def cap_lines(chunks: Iterator[bytes], limit: int, cut: _Cut) -> Iterator[bytes]:
    """The same stream with every line cut to its first `limit` bytes (its newline kept)."""
    run = 0  # length so far of the line the previous chunk ended in
    for chunk in chunks:
        pieces = chunk.split(b"\n")
        if run + len(pieces[0]) <= limit and (len(pieces) == 1 or max(map(len, pieces)) <= limit):
            run = run + len(pieces[0]) if len(pieces) == 1 else len(pieces[-1])
            yield chunk
            continue
        last = len(pieces) - 1
        for i, piece in enumerate(pieces):
            start = run if i == 0 else 0
            end = start + len(piece)
            if end > limit:
                keep = max(0, limit - start)
                if start <= limit:
                    cut.lines += 1
                cut.bytes += len(piece) - keep
                pieces[i] = piece[:keep]
            if i == last:
                run = end
        yield b"\n".join(pieces)


def has_long_line(fd: int, limit: int) -> bool:
    """Whether the file may hold a line of `limit` bytes or more: some aligned stretch of half
    that length has no newline. Reads a few KiB per stretch on an ordinary log."""
    size = os.fstat(fd).st_size
    step = max(1, limit // 2)
    for start in range(0, size - step + 1, step):
        pos = start
        while pos < start + step:
            block = os.pread(fd, min(4096 if pos == start else CHUNK, start + step - pos), pos)
            if not block:
                return False
            if b"\n" in block:
                break
            pos += len(block)
        else:
            return True
    return False
