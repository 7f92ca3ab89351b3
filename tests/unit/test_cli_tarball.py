"""`summarize <bundle>.tar.gz`: the tarball as the capture fetches it (members relative to the
bundle, `<bundle>.tar.gz.sha256` beside it, as fetch_bundle writes it) is checked and unpacked
safely, and diagnosed as its folder is; an attacker's tarball is refused before anything of it
lands on disk. Driven through `python -m collector` in a child process."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from collector.exitcodes import Exit
from tests.support.cli import one_line, run
from tests.support.fixtures import BUNDLES

BUNDLE = BUNDLES / "config-error"


def sealed(bundle: Path, tarball: Path, *, sha256: bool = True) -> Path:
    """The bundle's tarball as the seal module writes it (each file by its path in the bundle,
    owner 0) and, like fetch_bundle, `sha256sum`'s line beside it."""
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "w:gz", compresslevel=6) as tar:
        for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
            info = tar.gettarinfo(str(path), arcname=path.relative_to(bundle).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    if sha256:
        digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
        tarball.with_name(tarball.name + ".sha256").write_text(f"{digest}  {tarball.name}\n")
    return tarball


def verdict(folder: Path) -> dict[str, object]:
    doc = json.loads((folder / "report.json").read_text())
    return {k: doc["verdict"][k] for k in ("scenario", "task", "exit_path", "summary")}


def test_the_tarball_is_diagnosed_as_its_folder(tmp_path: Path) -> None:
    want = run("-m", "collector", "summarize", str(BUNDLE), "--out", str(tmp_path / "from-folder"), "--quiet")
    tarball = sealed(BUNDLE, tmp_path / "captures" / "20261201T100000Z-capture.tar.gz")

    got = run("-m", "collector", "summarize", str(tarball), "--quiet")
    # Unpacked beside the tarball, named after it, as `tar -x` would: the reports sit in the
    # bundle they cite.
    folder = tarball.with_name("20261201T100000Z-capture")
    assert got.returncode == want.returncode == Exit.CRASH_LOOP, got.stderr
    assert verdict(folder) == verdict(tmp_path / "from-folder")
    assert (folder / "manifest.json").read_bytes() == (BUNDLE / "manifest.json").read_bytes()

    # Once more: the folder is there now, and is neither overwritten nor mixed with a second copy.
    again = run("-m", "collector", "summarize", str(tarball), "--quiet")
    assert again.returncode == Exit.CANNOT_WRITE
    assert "exists and is not empty" in one_line(again)


def test_a_given_or_a_temporary_folder(tmp_path: Path) -> None:
    tarball = sealed(BUNDLE, tmp_path / "b.tar.gz", sha256=False)  # no .sha256 beside it: not checked
    into = tmp_path / "unpacked"
    got = run("-m", "collector", "summarize", str(tarball), "--unpack-to", str(into), "--quiet")
    assert got.returncode == Exit.CRASH_LOOP, got.stderr
    assert (into / "report.md").is_file() and (into / "logs").is_dir()

    # --out alone: unpacked into a temporary folder, removed afterwards; the reports go to --out.
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "out"
    got = run("-m", "collector", "summarize", str(tarball), "--out", str(out), "--quiet", env={"TMPDIR": str(tmp)})
    assert got.returncode == Exit.CRASH_LOOP, got.stderr
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]
    assert list(tmp.iterdir()) == []
    assert not (tmp_path / "b").exists()


def test_a_tarball_that_differs_from_its_sha256_is_refused(tmp_path: Path) -> None:
    tarball = sealed(BUNDLE, tmp_path / "b.tar.gz")
    data = bytearray(tarball.read_bytes())
    data[-30] ^= 0xFF  # one byte changed after the checksum was written
    tarball.write_bytes(bytes(data))
    got = run("-m", "collector", "summarize", str(tarball), "--quiet")
    assert got.returncode == Exit.REFUSED
    assert "differs from b.tar.gz.sha256" in one_line(got)
    assert not (tmp_path / "b").exists()


def _attacker(tarball: Path, member: tarfile.TarInfo, body: bytes = b"") -> Path:
    """A bundle's tarball with one hostile member after an honest file."""
    with tarfile.open(tarball, "w:gz") as tar:
        honest = BUNDLE / "manifest.json"
        tar.add(honest, arcname="manifest.json")
        member.size = len(body) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(body) if member.isfile() else None)
    return tarball


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


def _hardlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.LNKTYPE, target
    return info


def _device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    return info


@pytest.mark.parametrize(
    ("member", "body", "says"),
    [
        (tarfile.TarInfo("../escaped.txt"), b"outside", "would land outside the folder"),
        (tarfile.TarInfo("logs/../../escaped.txt"), b"outside", "would land outside the folder"),
        (tarfile.TarInfo("/tmp/escaped-absolute.txt"), b"outside", "would land outside the folder"),
        (_symlink("logs/ingester.log", "/etc/passwd"), b"", "is a symlink"),
        (_symlink("logs", ".."), b"", "is a symlink"),
        (_hardlink("logs/ingester.log", "/etc/passwd"), b"", "is a hard link"),
        (_device("dev-null"), b"", "is a character device"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink-file", "symlink-folder", "hardlink", "device"],
)
def test_an_attackers_tarball_is_refused_and_nothing_lands(
    tmp_path: Path, member: tarfile.TarInfo, body: bytes, says: str
) -> None:
    work = tmp_path / "captures" / "host"
    work.mkdir(parents=True)
    tarball = _attacker(work / "20261201T100000Z-capture.tar.gz", member, body)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    got = run("-m", "collector", "summarize", str(tarball), "--quiet")
    assert got.returncode == Exit.REFUSED, got.stderr
    assert says in one_line(got)
    # Nothing was unpacked: not the honest file before it, not the folder, nothing outside.
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    assert not Path("/tmp/escaped-absolute.txt").exists()


def test_a_tarball_over_the_cap_is_refused_before_unpacking(tmp_path: Path) -> None:
    tarball = sealed(BUNDLE, tmp_path / "b.tar.gz")
    got = run("-m", "collector", "summarize", str(tarball), "--max-bytes", "1000", "--quiet")
    assert got.returncode == Exit.REFUSED
    assert "more than 1000 bytes" in one_line(got)
    assert not (tmp_path / "b").exists()


def test_not_a_tarball_is_unreadable(tmp_path: Path) -> None:
    fake = tmp_path / "b.tar.gz"
    fake.write_bytes(os.urandom(64))
    got = run("-m", "collector", "summarize", str(fake), "--quiet")
    assert got.returncode == Exit.UNREADABLE, got.stderr
    assert "not a readable gzip'd tarball" in one_line(got)
    missing = run("-m", "collector", "summarize", str(tmp_path / "none.tar.gz"), "--quiet")
    assert missing.returncode == Exit.UNREADABLE
    assert one_line(missing).endswith("none.tar.gz: no such file")
