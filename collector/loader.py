"""Reads a bundle (or a bare log) into the rules' inputs (`collector.inputs`).

It never raises on a damaged part: what is missing or unreadable is recorded with what it costs
the verdict. It raises `BundleError` only when there is nothing to read at all, or when the
bundle holds something other than regular files. A log's records are streamed later, by
`search.LogInput`.
"""

from __future__ import annotations

import bisect
import codecs
import hashlib
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from .errors import BundleError
from .inputs import Context, Coverage, MemoryInput, Provenance, slope
from .redaction import redact_line
from .search import CHUNK, LogInput
from .sources.bundle_meta import (
    HostInfo,
    Manifest,
    parse_host,
    parse_manifest,
)
from .sources.common import Problem, load_json, shown_name, strip_controls
from .sources.dmesg import KernelOom, parse_dmesg
from .sources.events import DockerEvent, parse_events
from .sources.inspect import Inspect, parse_inspect
from .sources.stats import StatsSample, parse_stats

T = TypeVar("T")
SMALL_FILE_LIMIT = 64 << 20  # events, stats, inspect, dmesg are read whole up to this size

COSTS = {
    "logs/ingester.log": "no runs, breadcrumbs, panics or errors from the log: the verdict "
    "rests on Docker events, inspect and the kernel log only",
    "events.jsonl": "exit codes only from inspect (last run); no oom or kill events, so a "
    "Docker API kill cannot be told from a kill outside Docker",
    "dmesg.txt": "OOM kills can be confirmed only by oom events or State.OOMKilled",
    "inspect.json": "no memory limit, no OOMKilled flag, no final exit code",
    "stats.jsonl": "no memory slope, peak or time to the limit",
    "host.json": "kernel times since boot cannot be placed on the wall clock",
    "window.json": "the window's length and end reason are unknown",
    "manifest.json": "file integrity (sha256, truncation, command exit codes) cannot be checked",
    "logs/tee.log": "the tee's loss cannot be measured",
    "logs/pre-swap.log": "no production history before the swap",
    "inspect-pre.json": "the production container's last exit is unknown",
}



def _read_text(
    path: Path, problems: list[Problem], rel: str, sha256: str | None = None
) -> str | None:
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            data = fh.read(SMALL_FILE_LIMIT + 1)
    except OSError as exc:
        problems.append(Problem(rel, f"unreadable: {exc.strerror or exc}"))
        return None
    if sha256 is not None and size <= SMALL_FILE_LIMIT and hashlib.sha256(data).hexdigest() != sha256:
        problems.append(Problem(rel, "sha256 differs from the manifest (changed or cut short)"))
    if size > SMALL_FILE_LIMIT:
        problems.append(Problem(rel, f"larger than {SMALL_FILE_LIMIT >> 20} MiB: read the start"))
        data = data[:SMALL_FILE_LIMIT]
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace")
    text = data.decode("utf-8", errors="replace")
    if "\ufffd" in text[:65536]:
        problems.append(Problem(rel, "not valid UTF-8: undecodable bytes replaced"))
    return text


@dataclass
class Bundle:
    """Everything small read from a bundle, plus the log inputs still to stream."""

    root: Path | None
    host: HostInfo
    context: Context
    pre_inspect: Inspect | None
    manifest: Manifest | None
    log: LogInput | None
    tee: LogInput | None
    pre_swap: LogInput | None
    memory: MemoryInput
    stats: list[StatsSample]
    present: list[str]
    missing: list[str]
    problems: list[Problem]
    provenance: Provenance = field(default_factory=Provenance)

    def coverage(self) -> Coverage:
        window = None
        if self.host.window_start is not None and self.host.window_end is not None:
            window = self.host.window_end - self.host.window_start
        insp = self.context.inspect
        return Coverage(
            log=self.log is not None,
            events=self.context.events_present,
            kernel=self.context.kernel_present,
            inspect=insp is not None,
            stats=bool(self.stats),
            window_seconds=window,
            restart_count_inspect=insp.restart_count if insp else None,
            missing=tuple(self.missing),
            damaged=tuple(sorted({p.source for p in self.problems})),
        )


KNOWN = (
    "manifest.json",
    "logs/ingester.log",
    "logs/tee.log",
    "logs/pre-swap.log",
    "events.jsonl",
    "stats.jsonl",
    "inspect.json",
    "inspect-pre.json",
    "dmesg.txt",
    "dmesg-T.txt",
    "host.json",
    "window.json",
)
EXPECTED = (
    "manifest.json",
    "logs/ingester.log",
    "logs/tee.log",
    "events.jsonl",
    "stats.jsonl",
    "inspect.json",
    "dmesg.txt",
    "host.json",
)


def bundle_file(root: Path, rel: str) -> bool:
    """Whether the bundle holds `rel` (a relative path without `..`); raises BundleError when
    it or a folder on its way is a symbolic link or not a regular file: a bundle holds regular
    files only, so nothing outside it (a controller file a link points to) is ever read."""
    parts = Path(rel).parts
    path = root
    for i, part in enumerate(parts):
        path = path / part
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise BundleError(f"{root}: {rel}: cannot read: {exc.strerror or exc}") from exc
        if stat.S_ISLNK(mode):
            raise BundleError(f"{root}: {path.relative_to(root)} is a symbolic link: a bundle holds regular files only")
        if i < len(parts) - 1:
            if not stat.S_ISDIR(mode):
                return False
        elif not stat.S_ISREG(mode):
            raise BundleError(f"{root}: {rel} is not a regular file: a bundle holds regular files only")
    return True


@dataclass
class _Reader:
    """The small files of one bundle, read whole; what cannot be read becomes a problem."""

    root: Path
    present: list[str]
    problems: list[Problem] = field(default_factory=list)
    sums: dict[str, str] = field(default_factory=dict)  # the manifest's sha256 per file

    def text(self, rel: str) -> str | None:
        if rel not in self.present:
            return None
        return _read_text(self.root / rel, self.problems, rel, self.sums.get(rel))


def _present(root: Path) -> list[str]:
    if not root.exists():
        raise BundleError(f"{root}: no such bundle directory")
    if not root.is_dir():
        raise BundleError(f"{root}: not a directory (use --log FILE for a bare log)")
    try:
        next(iter(root.iterdir()), None)
    except OSError as exc:
        raise BundleError(f"{root}: cannot list: {exc.strerror or exc}") from exc
    present = [rel for rel in KNOWN if bundle_file(root, rel)]
    if not present:
        inside = bundles_under(root)
        if inside:
            raise BundleError(_holds_bundles(root, inside))
        raise BundleError(f"{root}: no bundle files (expected logs/ingester.log, events.jsonl, manifest.json...)")
    return present


def is_bundle(folder: Path) -> bool:
    """Whether `folder` is a bundle: it holds its manifest or its log (as regular files)."""
    try:
        return folder.is_dir() and (bundle_file(folder, "manifest.json") or bundle_file(folder, "logs/ingester.log"))
    except (BundleError, OSError):
        return False


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))
    except OSError:
        return []


def bundles_under(root: Path) -> list[Path]:
    """The bundles one or two folders down: `root` is then one host's folder (its captures,
    `<stamp>-<mode>/`) or a capture destination (`<host>/<stamp>-<mode>/`)."""
    found = []
    for child in _subfolders(root):
        if is_bundle(child):
            found.append(child)
        else:
            found.extend(grand for grand in _subfolders(child) if is_bundle(grand))
    return found


def _holds_bundles(root: Path, inside: list[Path]) -> str:
    """What to say of a folder given for a bundle that holds bundles: the newest, and the command
    for them all when they are several hosts'."""
    newest = max(inside, key=lambda p: p.name)
    others = f" (and {len(inside) - 1} more)" if len(inside) > 1 else ""
    hosts = {p.parent for p in inside}
    every = f"; every host at once: ingester-collector fleet {root}" if len(hosts) > 1 or root not in hosts else ""
    return f"{root}: not a bundle, but it holds bundles: the newest is {newest}{others}; summarize one{every}"


def _manifest(reader: _Reader, mtext: str | None) -> Manifest | None:
    if mtext is None:
        return None
    parsed = parse_manifest(mtext)  # raises BundleError on a foreign schema version
    if isinstance(parsed, Problem):
        reader.problems.append(parsed)
        return None
    reader.sums = {e.path: e.sha256 for e in parsed.entries if e.sha256}
    for entry in parsed.entries:
        if entry.truncated:
            reader.problems.append(Problem(entry.path, "truncated by the capture agent"))
        if entry.timed_out:
            reader.problems.append(Problem(entry.path, "its command timed out"))
        if entry.exit_code not in (None, 0):
            reader.problems.append(Problem(entry.path, f"its command exited {entry.exit_code}"))
    return parsed


def _records(reader: _Reader, rel: str, parse: Callable[[list[str]], Iterable[T | Problem]]) -> list[T]:
    """The records of a JSON Lines file; its bad lines become problems."""
    out: list[T] = []
    text = reader.text(rel)
    for rec in parse(text.splitlines()) if text is not None else ():
        (reader.problems.append(rec) if isinstance(rec, Problem) else out.append(rec))
    return out


def _inspect(reader: _Reader, rel: str) -> Inspect | None:
    text = reader.text(rel)
    if text is None:
        return None
    parsed = parse_inspect(text, rel)
    if isinstance(parsed, Problem):
        reader.problems.append(parsed)
        return None
    return parsed


def _kernel(reader: _Reader) -> tuple[list[KernelOom], bool]:
    """The OOM-killer lines of dmesg.txt and dmesg-T.txt, each once; whether either was there."""
    kernel: list[KernelOom] = []
    present = False
    seen: set[tuple[str, int | None, str]] = set()
    for rel in ("dmesg.txt", "dmesg-T.txt"):
        ktext = reader.text(rel)
        if ktext is None:
            continue
        present = True
        for k in parse_dmesg(strip_controls(ktext, keep_newlines=True).splitlines(), rel):
            key = (k.kind, k.pid, k.text)
            if key not in seen:
                seen.add(key)
                kernel.append(k)
    return kernel, present


def _memory(stats: list[StatsSample], inspect: Inspect | None) -> MemoryInput:
    limit = inspect.memory_limit if inspect and inspect.memory_limit else None
    if limit is None:
        limits = [s.limit_bytes for s in stats if s.limit_bytes]
        # docker stats shows the host's memory when there is no limit; only trust inspect's 0
        limit = limits[-1] if limits and inspect is None else None
    points = [(s.epoch, float(s.mem_bytes)) for s in stats if s.mem_bytes is not None]
    return MemoryInput(
        limit_bytes=limit,
        peak_bytes=int(max(p[1] for p in points)) if points else None,
        samples=len(points),
        series_slope=slope(points),
        last_bytes=int(points[-1][1]) if points else None,
    )


def _object(text: str | None) -> dict[str, object]:
    """A small JSON document's top-level object, or {} when it is absent or unreadable (the
    reader that owns the file reports that)."""
    try:
        obj = load_json(text) if text is not None else None
    except ValueError:
        return {}
    return obj if isinstance(obj, dict) else {}


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


DIFF_LIMIT = 1 << 20
# The deploy role seals its gate's bundle in `<dest>/<host>/deploy/<stamp>/bundle` (docs/deploy.md),
# after it restored the original image; a capture's bundle is `<dest>/<host>/<stamp>-<mode>`.
DEPLOY_LAYOUT = ("deploy", "bundle")


def swapped_images(diff: str) -> tuple[str | None, str | None]:
    """The `image:` a compose.diff takes away and the one it puts in (either None when it has none)."""
    before = after = None
    for line in diff.splitlines():
        if line.startswith(("---", "+++")):
            continue
        key, _, value = line[1:].strip().partition(":")
        if key != "image" or not value.strip():
            continue
        if line.startswith("-") and before is None:
            before = value.strip().strip("'\"")
        elif line.startswith("+") and after is None:
            after = value.strip().strip("'\"")
    return before, after


def _provenance(root: Path, manifest_text: str | None, host_text: str | None, mode: str | None,
                pre: Inspect | None) -> Provenance:
    """The header's facts from the bundle's own records: the seal's manifest, host.json, and the
    compose.diff of the swap (the image that ran; host.json names the container's image when it
    was collected, which after a deploy gate's restore is production's again)."""
    manifest = _object(manifest_text)
    host = _object(host_text)
    build = manifest.get("build") if isinstance(manifest.get("build"), dict) else {}
    assert isinstance(build, dict)
    before = after = None
    try:
        if bundle_file(root, "compose.diff"):
            with (root / "compose.diff").open("rb") as fh:
                before, after = swapped_images(fh.read(DIFF_LIMIT).decode("utf-8", errors="replace"))
    except (BundleError, OSError):
        pass  # the report reads what it can; the loader's own reading says what is wrong
    seal_mode = _text(manifest.get("mode")) or mode
    absolute = root.resolve()
    if (absolute.parent.parent.name, absolute.name) == DEPLOY_LAYOUT:
        seal_mode = "deploy-gate"
    return Provenance(
        bundle=str(absolute),
        host=_text(manifest.get("host")),
        hostname=_text(host.get("hostname")),
        mode=seal_mode,
        image=after or _text(host.get("image")) or _text(build.get("image")),
        original_image=before or (pre.image if pre is not None else None),
        commit=_text(build.get("commit")) or _text(build.get("revision")),
        partial=manifest.get("partial") is True,
        sealed_at=_text(manifest.get("created")),
    )


def _missing(present: list[str], manifest: Manifest | None) -> list[str]:
    missing = [rel for rel in EXPECTED if rel not in present]
    if "dmesg.txt" in missing and "dmesg-T.txt" in present:
        missing.remove("dmesg.txt")
    if manifest is not None:
        listed = {e.path for e in manifest.entries} | set(manifest.missing)
        missing.extend(rel for rel in sorted(listed) if rel in COSTS and rel not in present and rel not in missing)
    return missing


def load_bundle(root: Path) -> Bundle:
    """Read a bundle directory; raises BundleError only if it is not a readable bundle at all."""
    present = _present(root)
    reader = _Reader(root, present)
    manifest_text = reader.text("manifest.json")
    manifest = _manifest(reader, manifest_text)
    host_text = reader.text("host.json")
    host, host_problems = parse_host(host_text, reader.text("window.json"))
    reader.problems.extend(host_problems)
    events: list[DockerEvent] = _records(reader, "events.jsonl", parse_events)
    stats: list[StatsSample] = _records(reader, "stats.jsonl", parse_stats)
    inspect = _inspect(reader, "inspect.json")
    pre_inspect = _inspect(reader, "inspect-pre.json")
    kernel, kernel_present = _kernel(reader)
    memory = _memory(stats, inspect)
    context = Context(
        events=events,
        events_present="events.jsonl" in present,
        kernel=kernel,
        kernel_present=kernel_present,
        boot_epoch=host.boot_epoch,
        inspect=inspect,
        container_id=host.container_id or (inspect.container_id if inspect else None),
        stats=stats,
        memory_limit=memory.limit_bytes,
        window_end=host.window_end,
        daemon_stops=tuple(g.stopped_at for g in host.daemon_gaps if g.stopped_at is not None),
    )

    def log_input(rel: str) -> LogInput | None:
        return LogInput(root / rel, rel) if rel in present else None

    return Bundle(
        root=root,
        host=host,
        context=context,
        pre_inspect=pre_inspect,
        manifest=manifest,
        log=log_input("logs/ingester.log"),
        tee=log_input("logs/tee.log"),
        pre_swap=log_input("logs/pre-swap.log"),
        memory=memory,
        stats=stats,
        present=present,
        missing=_missing(present, manifest),
        problems=reader.problems,
        provenance=_provenance(root, manifest_text, host_text, host.mode, pre_inspect),
    )


def load_bare_log(path: Path, name: str | None = None) -> Bundle:
    """A log captured by hand, with no bundle around it. `name` is what the report calls it
    (the file's name by default); a log given under another name (a stream kept in a
    temporary file, `cli`) is not a file beside the reports: they do not link to it."""
    label = name or shown_name(path)
    if not path.exists():
        raise BundleError(f"{path}: no such log file")
    if path.is_dir():
        raise BundleError(f"{path}: is a directory (summarize a bundle directory without --log)")
    try:
        with path.open("rb") as fh:
            first = fh.read(1)
    except OSError as exc:
        raise BundleError(f"{label}: cannot read: {exc.strerror or exc}") from exc
    if not first:
        raise BundleError(f"{label}: the log is empty")
    host, _ = parse_host(None, None)
    return Bundle(
        root=None,
        host=host,
        context=Context(),
        pre_inspect=None,
        manifest=None,
        log=LogInput(path, name or shown_name(path)),
        tee=None,
        pre_swap=None,
        memory=MemoryInput(),
        stats=[],
        present=[path.name] if name is None and shown_name(path) == path.name else [],
        missing=[],
        problems=[],
    )


def count_container_lines(path: Path) -> int:
    """Lines of container output in a tee'd Compose stream (`name  | ...` lines), read in
    bounded chunks (only a line's first 80 bytes are looked at)."""
    n = 0
    head = b""  # the first bytes of the line the previous chunk ended in
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            lines = block.split(b"\n")
            lines[0] = (head + lines[0])[:80]
            head = lines.pop()[:80]
            n += sum(1 for line in lines if _attached(line[:80]))
    return n + (1 if head and _attached(head) else 0)


def _attached(head: bytes) -> bool:
    return b" | " in head or head.rstrip().endswith(b"|")


PREVIOUS_LINES = 5  # the lines shown before each exit (Robusta's "previous logs")
PREVIOUS_EXITS = 10  # the exits shown so, the newest (and the first)
LINE_CHARS = 400
_CAP = LINE_CHARS * 4 + 4  # bytes kept of a line: LINE_CHARS characters of UTF-8, and its \r


def lines_before(
    log: LogInput, ends: dict[int, int], count: int = PREVIOUS_LINES, redact: Callable[[str], str] = redact_line
) -> dict[int, list[tuple[str, int, str]]]:
    """For the first run that ended and the newest `PREVIOUS_EXITS` (`ends`: run index to its
    last line in the log), that line and the `count - 1` before it, as `(file, number, text)`: the
    text as the bundle holds it (redacted on the host), redacted again by `redact` (the report's
    redactor; a bare log was never redacted) before it is cut at `LINE_CHARS` (`_shown`). Empty
    when the log cannot be read again; the first reading said why."""
    order = sorted(ends)
    shown = {run: ends[run] for run in order[:1] + order[-PREVIOUS_EXITS:]}
    wanted = {n for end in shown.values() for n in range(max(1, end - count + 1), end + 1)}
    try:
        got = lines_at(log.path, wanted, total=log.lines, redact=redact)
    except OSError:
        return {}
    return {
        run: [(log.source, n, got[n]) for n in range(max(1, end - count + 1), end + 1) if n in got]
        for run, end in shown.items()
    }


def lines_at(
    path: Path, wanted: set[int], total: int | None = None, redact: Callable[[str], str] = redact_line
) -> dict[int, str]:
    """The given 1-based lines of a file. With `total` (the file's line count, as the reading
    counted it), the lines in its second half are read from the end backwards, so the lines
    before the last exits of a long log cost a few blocks, not the whole file."""
    front = {n for n in wanted if total is None or n <= total // 2}
    raw = _from_start(path, front) if front else {}
    if total is not None and wanted - front:
        raw.update(_from_end(path, wanted - front, total))
    return {n: _shown(b, redact) for n, b in raw.items()}


def _from_start(path: Path, wanted: set[int]) -> dict[int, bytes]:
    """The wanted lines in one forward pass that stops after the last of them; blocks without a
    wanted line are only counted."""
    order = sorted(wanted)
    raw: dict[int, bytes] = {}
    line = 1  # the line the next byte belongs to
    size = min(CHUNK, 1 << 16)  # doubling up to CHUNK: the first exit is often a few hundred lines in
    with path.open("rb") as fh:
        while order and line <= order[-1] and (block := fh.read(size)):
            size = min(CHUNK, size * 2)
            newlines = block.count(b"\n")
            i = bisect.bisect_left(order, line)
            if i == len(order) or order[i] > line + newlines:
                line += newlines
                continue
            # (split no further than the last wanted line: a first exit near the top of a long
            # log would otherwise cut a whole 8 MiB block into lines)
            for k, piece in enumerate(block.split(b"\n", order[-1] - line + 1)):
                if line + k in wanted:
                    raw[line + k] = (raw.get(line + k, b"") + piece)[:_CAP]
            line += newlines
    return {n: b for n, b in raw.items() if n < line or b}


def _from_end(path: Path, wanted: set[int], total: int) -> dict[int, bytes]:
    """The wanted lines in one backward pass from the end of the file (line `total` is its last,
    a final newline ending it) that stops at the first of them. A block is cut only at the
    newlines of wanted lines; the others in it are counted."""
    lowest = min(wanted)
    chunk = min(CHUNK, 1 << 20)
    raw: dict[int, bytes] = {}
    with path.open("rb") as fh:
        pos = fh.seek(0, os.SEEK_END)
        line, carry, first = total, b"", True  # carry: the later part of line `line`, capped
        while pos > 0 and line >= lowest:
            start = max(0, pos - chunk)
            fh.seek(start)
            block = fh.read(pos - start)
            pos = start
            if first and block.endswith(b"\n"):
                block = block[:-1]
            first = False
            newlines = block.count(b"\n")
            here = [n for n in wanted if line - newlines <= n <= line]
            if not here:
                line, carry = line - newlines, (carry if newlines == 0 else b"")
                continue
            line, carry = _block_from_end(block, line, carry, min(here), wanted, raw)
        if pos == 0 and line in wanted:
            raw[line] = carry
    return raw


def _block_from_end(
    block: bytes, line: int, carry: bytes, lowest: int, wanted: set[int], raw: dict[int, bytes]
) -> tuple[int, bytes]:
    """One block read backwards, its last line being `line` (with `carry` after it): the wanted
    lines down to `lowest` into `raw`. Returns the line the block's first byte belongs to and
    that line's part in the block (empty when it is not wanted)."""
    end = len(block)
    while line >= lowest:
        cut = block.rfind(b"\n", 0, end)
        if cut < 0:
            return line, (block[:end] + carry)[:_CAP]
        if line in wanted:
            raw[line] = (block[cut + 1 : end] + carry)[:_CAP]
        line, end, carry = line - 1, cut, b""
    return line - block.count(b"\n", 0, end), b""


def _shown(data: bytes, redact: Callable[[str], str] = redact_line) -> str:
    """A line as the report shows it: without colours or control characters, redacted (a bare log
    was never redacted on a host) before it is capped, so a cut cannot halve a secret."""
    text = redact(strip_controls(data.decode("utf-8", errors="replace").rstrip("\r")))
    return text if len(text) <= LINE_CHARS else text[: LINE_CHARS - 1] + "…"
