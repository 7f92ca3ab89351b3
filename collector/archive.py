"""A bundle's tarball (`<bundle>.tar.gz`, as the capture fetches it) unpacked safely, so that
`summarize` can read it.

The tarball is checked against `<bundle>.tar.gz.sha256` when that file is beside it, then read
header by header before `tarfile` parses anything (`tar_scan`: the controller's fetch step's
own file, which this package holds by a link, since the collector never imports the collection):
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
from .tar_scan import UnsafeTarball
from .tar_scan import scan as scan_headers

SUFFIXES = (".tar.gz", ".tgz")
SHA256_SUFFIX = ".sha256"
MAX_BYTES = 1 << 30  # fetch_bundle's default cap on the controller: a gigabyte unpacked
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


def scan(tarball: Path, max_bytes: int = MAX_BYTES) -> tuple[int, int]:
    """Read the gzip'd tarball header by header, trusting only headers and declared sizes, and
    stop at the first member that is not a regular file or folder with a relative path without
    `..`, or that takes the total over `max_bytes`: (files, bytes) when every member passes
    (`tar_scan.scan`, the controller's own rules)."""
    try:
        return scan_headers(str(tarball), max_bytes)
    except UnsafeTarball as exc:
        raise TarballRefused(str(exc)) from None


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
