"""A bundle's tarball (`<bundle>.tar.gz`, as the capture fetches it) unpacked safely, so that
`summarize` can read it.

The tarball is checked against `<bundle>.tar.gz.sha256` when that file is beside it, then read
header by header before `tarfile` parses anything (the same rules as the controller's
fetch_bundle step, written once here because the collector never imports the collection):
regular files and folders only, relative paths without `..`, small well-formed extended headers,
each file and all of them under a size cap. Only then is it unpacked, member by member, with
tarfile's `data` filter as a second guard, into a folder that is new or empty.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import tarfile
import zlib
from pathlib import Path

from .errors import BundleError

SUFFIXES = (".tar.gz", ".tgz")
SHA256_SUFFIX = ".sha256"
MAX_BYTES = 1 << 30  # fetch_bundle's default cap on the controller: a gigabyte unpacked
BLOCK = 512
# A PAX extended header or a GNU long name holds a path and a few numbers: a few hundred bytes.
# Anything larger is refused before tarfile parses it (its PAX parser is quadratic on some input
# before Python 3.12.6, CVE-2024-6232).
MAX_EXTENDED_HEADER = 8192
MAX_MEMBERS = 100000
REGULAR = (b"0", b"\0", b"7")
FOLDER = b"5"
KINDS = {
    b"1": "a hard link",
    b"2": "a symlink",
    b"3": "a character device",
    b"4": "a block device",
    b"6": "a FIFO",
    b"g": "a global PAX header",
    b"K": "a GNU long link name",
    b"S": "a GNU sparse file",
}
HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class TarballRefused(ValueError):
    """The tarball is not unpacked: it differs from its `.sha256`, or a member is not a plain file
    or folder inside the destination, or it is over the size cap. The message names the member."""


def is_tarball(path: Path) -> bool:
    """A bundle's tarball, by its name (a folder never is)."""
    return path.name.endswith(SUFFIXES) and not path.is_dir()


def folder_name(tarball: Path) -> str:
    """The bundle folder's name: the tarball's without `.tar.gz` (or `.tgz`)."""
    for suffix in SUFFIXES:
        if tarball.name.endswith(suffix):
            return tarball.name[: -len(suffix)]
    return tarball.name


def sha256_of(path: Path) -> str:
    """The file's sha256, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(tarball: Path) -> str | None:
    """Compare the tarball with `<tarball>.sha256` (`sha256sum`'s line) when that file is beside
    it; the digest checked, or None when there is no such file. TarballRefused on a mismatch."""
    beside = tarball.with_name(tarball.name + SHA256_SUFFIX)
    if not beside.is_file():
        return None
    with beside.open("rb") as handle:
        words = handle.read(4096).decode("utf-8", errors="replace").split()
    if not words or not HEX64.fullmatch(words[0]):
        raise TarballRefused(f"{beside}: not a sha256sum line (64 hex digits, then the file name)")
    want = words[0].lower()
    got = sha256_of(tarball)
    if got != want:
        raise TarballRefused(f"{tarball}: sha256 {got} differs from {beside.name} ({want}): a damaged or altered copy")
    return got


def _text(raw: bytes) -> str:
    return str(raw, "utf-8", "replace")


def _number(field: bytes, what: str, name: str) -> int:
    if field[:1] and field[0] & 0x80:
        raise TarballRefused(f"{name or 'a member'}: its {what} is in base-256 (larger than a bundle file can be)")
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text or b"0", 8)
    except ValueError:
        raise TarballRefused(f"{name or 'a member'}: its {what} field is not a number") from None


def _pax_records(body: bytes) -> dict[str, bytes]:
    """A PAX extended header's records, parsed strictly ("%d %s=%s\\n", the length counting the
    whole record): anything else refuses the tarball."""
    records: dict[str, bytes] = {}
    pos = 0
    body = body.rstrip(b"\0")
    while pos < len(body):
        space = body.find(b" ", pos, pos + 12)
        digits = body[pos:space] if space > pos else b""
        if not digits.isdigit():
            raise TarballRefused("a malformed PAX extended header (a record without its length)")
        length = int(digits)
        record = body[pos : pos + length]
        if length <= len(digits) + 1 or len(record) != length or not record.endswith(b"\n") or b"=" not in record:
            raise TarballRefused("a malformed PAX extended header (a record's length does not match)")
        keyword, _equals, value = record[len(digits) + 1 : -1].partition(b"=")
        records[_text(keyword)] = value
        pos += length
    return records


def _safe_name(name: str) -> None:
    parts = name.split("/")
    if name.startswith("/") or ".." in parts:
        raise TarballRefused(f"{name} would land outside the folder (an absolute path or '..')")


def scan(tarball: Path, max_bytes: int = MAX_BYTES) -> tuple[int, int]:
    """Read the gzip'd tarball header by header, trusting only headers and declared sizes, and
    stop at the first member that is not a regular file or folder with a relative path without
    `..`, or that takes the total over `max_bytes`: (files, bytes) when every member passes."""
    files = total = members = 0
    pending: dict[str, bytes] = {}
    long_name: str | None = None
    with gzip.open(tarball, "rb") as stream:

        def read(count: int) -> bytes:
            data = stream.read(count)
            if len(data) != count:
                raise TarballRefused("the tarball ends in the middle of a member")
            return data

        def skip(count: int) -> None:
            count += -count % BLOCK
            while count:
                count -= len(read(min(count, 1 << 20)))

        while True:
            header = stream.read(BLOCK)
            if len(header) < BLOCK or header == b"\0" * BLOCK:
                break  # the end-of-archive blocks (or the end of the stream)
            members += 1
            if members > MAX_MEMBERS:
                raise TarballRefused(f"more than {MAX_MEMBERS} members")
            kind = header[156:157]
            ustar = header[257:262] == b"ustar" and header[345]
            prefix = header[345:500].split(b"\0", 1)[0] + b"/" if ustar else b""
            name = _text(prefix + header[:100].split(b"\0", 1)[0])
            stored = bytearray(header)
            stored[148:156] = b" " * 8
            if _number(header[148:156], "checksum", name) != sum(stored):
                raise TarballRefused(f"{name}: a header with a wrong checksum (not a tarball, or a damaged one)")
            size = _number(header[124:136], "size", name)
            if kind in (b"x", b"L"):
                if size > MAX_EXTENDED_HEADER:
                    what = "PAX" if kind == b"x" else "GNU long name"
                    raise TarballRefused(
                        f"an extended header ({what}) of {size} bytes, "
                        f"more than the {MAX_EXTENDED_HEADER} a bundle's need"
                    )
                body = read(size + (-size % BLOCK))[:size]
                if kind == b"x":
                    pending = _pax_records(body)
                else:
                    long_name = _text(body.split(b"\0", 1)[0])
                continue
            if kind not in (*REGULAR, FOLDER):
                raise TarballRefused(
                    f"{name} is {KINDS.get(kind, f'of tar type {kind!r}')}, not a regular file or folder"
                )
            if "path" in pending:
                name = _text(pending["path"])
            elif long_name is not None:
                name = long_name
            if "size" in pending:
                if not pending["size"].isdigit():
                    raise TarballRefused(f"{name}: its PAX size is not a number")
                size = int(pending["size"])
            pending, long_name = {}, None
            _safe_name(name)
            if kind == FOLDER:
                continue
            total += size
            files += 1
            if total > max_bytes:
                raise TarballRefused(
                    f"the bundle would unpack to more than {max_bytes} bytes (the cap; {name} alone is {size} "
                    "bytes): refused before anything was unpacked"
                )
            skip(size)
    return files, total


def unpack(tarball: Path, dest: Path, max_bytes: int = MAX_BYTES) -> int:
    """Unpack the tarball into `dest` (a new or empty folder, made 0700) once :func:`scan` passed
    it; the number of files. TarballRefused for an unsafe tarball, BundleError for one that
    cannot be read, OSError when `dest` cannot be written."""
    try:
        scan(tarball, max_bytes)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BundleError(f"{tarball}: not a readable gzip'd tarball ({exc})") from exc
    if dest.exists() and (not dest.is_dir() or dest.is_symlink() or any(dest.iterdir())):
        raise FileExistsError(17, "exists and is not an empty folder", str(dest))
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    root = dest.resolve()
    files = 0
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar:
                # Checked above header by header; checked again as tarfile read it.
                if not (member.isfile() or member.isdir()) or member.issparse():
                    raise TarballRefused(f"{member.name} is not a regular file or folder")
                path = (root / member.name).resolve()
                if path != root and root not in path.parents:
                    raise TarballRefused(f"{member.name} would land outside {dest}")
                if os.path.normpath(member.name) == ".":
                    continue  # the folder itself keeps its 0700
                tar.extract(member, root, set_attrs=True, filter="data")
                files += member.isfile()
    except tarfile.FilterError as exc:
        raise TarballRefused(str(exc)) from exc
    except (tarfile.ReadError, EOFError, zlib.error) as exc:
        raise BundleError(f"{tarball}: not a readable gzip'd tarball ({exc})") from exc
    return files
