# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
"""A gzip'd bundle tarball read header by header before ``tarfile`` parses anything.

Shared by the two places that unpack a bundle: the controller's fetch step
(``plugins/action/fetch_bundle.py``) and the collector's ``summarize BUNDLE.tar.gz``, whose
package holds this file by a link (``collector/tar_scan.py``): the collector never imports the
collection, and the rules must not drift. Standard library only.
"""

from __future__ import annotations

import gzip
from typing import Dict, Optional, Tuple

BLOCK = 512
# A PAX extended header or a GNU long name holds a path and a few numbers: a few hundred bytes.
# Anything larger is refused before tarfile parses it (its PAX parser is quadratic on some
# input before Python 3.12.6, CVE-2024-6232).
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


class UnsafeTarball(ValueError):
    """A tarball member that is not a plain file or folder inside the destination, or a tarball
    too large to unpack; the message names the member."""


def _text(raw: bytes) -> str:
    return str(raw, "utf-8", "replace")


def _number(field: bytes, what: str, name: str) -> int:
    if field[:1] and field[0] & 0x80:
        raise UnsafeTarball("%s: its %s is in base-256 (larger than a bundle file can be)" % (name or "a member", what))
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text or b"0", 8)
    except ValueError:
        raise UnsafeTarball("%s: its %s field is not a number" % (name or "a member", what)) from None


def _pax_records(body: bytes) -> Dict[str, bytes]:
    """The records of a PAX extended header, parsed strictly ("%d %s=%s\\n", the length counting
    the whole record): anything else refuses the bundle."""
    records: Dict[str, bytes] = {}
    pos = 0
    body = body.rstrip(b"\0")
    while pos < len(body):
        space = body.find(b" ", pos, pos + 12)
        digits = body[pos:space] if space > pos else b""
        if not digits.isdigit():
            raise UnsafeTarball("a malformed PAX extended header (a record without its length)")
        length = int(digits)
        record = body[pos : pos + length]
        if length <= len(digits) + 1 or len(record) != length or not record.endswith(b"\n") or b"=" not in record:
            raise UnsafeTarball("a malformed PAX extended header (a record's length does not match)")
        keyword, _equals, value = record[len(digits) + 1 : -1].partition(b"=")
        records[_text(keyword)] = value
        pos += length
    return records


def _safe_name(name: str) -> None:
    parts = name.split("/")
    if name.startswith("/") or ".." in parts:
        raise UnsafeTarball("%s would land outside the folder (an absolute path or '..')" % name)


def scan(tarball: str, max_bytes: int, max_member_bytes: int = 0) -> Tuple[int, int]:
    """Check a gzip'd tarball header by header, before ``tarfile`` parses anything: regular files
    and folders only, relative paths without ``..``, each file at most ``max_member_bytes``, all
    of them at most ``max_bytes`` (``max_member_bytes`` 0: no cap of its own), extended headers
    (PAX, GNU long names) small and well formed.
    (files, bytes) when it passes; :class:`UnsafeTarball` at the first member that does not.

    Only the headers and the declared sizes are trusted for the count, and reading stops at the
    first refusal: a small tarball that would unpack to gigabytes is refused after its first
    header, not after it was unpacked."""
    files = total = members = 0
    pending: Dict[str, bytes] = {}
    long_name: Optional[str] = None
    with gzip.open(tarball, "rb") as stream:

        def read(count: int) -> bytes:
            data = stream.read(count)
            if len(data) != count:
                raise UnsafeTarball("the tarball ends in the middle of a member")
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
                raise UnsafeTarball("more than %d members" % MAX_MEMBERS)
            kind = header[156:157]
            prefix = header[345:500].split(b"\0", 1)[0] + b"/" if header[257:262] == b"ustar" and header[345] else b""
            name = _text(prefix + header[:100].split(b"\0", 1)[0])
            stored = bytearray(header)
            stored[148:156] = b" " * 8
            if _number(header[148:156], "checksum", name) != sum(stored):
                raise UnsafeTarball("%s: a header with a wrong checksum (not a tarball, or a damaged one)" % name)
            size = _number(header[124:136], "size", name)
            if kind in (b"x", b"L"):
                if size > MAX_EXTENDED_HEADER:
                    raise UnsafeTarball(
                        "an extended header (%s) of %d bytes, more than the %d a bundle's need"
                        % ("PAX" if kind == b"x" else "GNU long name", size, MAX_EXTENDED_HEADER)
                    )
                body = read(size + (-size % BLOCK))[:size]
                if kind == b"x":
                    pending = _pax_records(body)
                else:
                    long_name = _text(body.split(b"\0", 1)[0])
                continue
            if kind not in REGULAR + (FOLDER,):
                raise UnsafeTarball("%s is %s, not a regular file or folder" % (name, KINDS.get(kind, "of tar type %r" % kind)))
            if "path" in pending:
                name = _text(pending["path"])
            elif long_name is not None:
                name = long_name
            if "size" in pending:
                text = pending["size"]
                if not text.isdigit():
                    raise UnsafeTarball("%s: its PAX size is not a number" % name)
                size = int(text)
            pending, long_name = {}, None
            _safe_name(name)
            if kind == FOLDER:
                continue
            if max_member_bytes and size > max_member_bytes:
                raise UnsafeTarball(
                    "%s would unpack to %d bytes, more than the %d bytes one bundle file may have" % (name, size, max_member_bytes)
                )
            total += size
            files += 1
            if total > max_bytes:
                raise UnsafeTarball(
                    "the bundle would unpack to more than %d bytes (the cap; %s alone is %d bytes): refused before "
                    "anything was unpacked" % (max_bytes, name, size)
                )
            skip(size)
    return files, total


__all__ = ["BLOCK", "FOLDER", "KINDS", "MAX_EXTENDED_HEADER", "MAX_MEMBERS", "REGULAR", "UnsafeTarball", "scan"]
