"""Names a stranger's files really have: a log or a bundle folder whose name is not valid UTF-8
(a Latin-1 name copied from another machine), and a bundle packed again by hand with its folder
(`tar czf b.tar.gz 2026...-capture/`). Each is diagnosed through the real command line, with its
exit code from the answer key, and nothing ends in a traceback."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import urllib.parse
from pathlib import Path
from typing import Any

from tests.support.cli import PYTHON, REPO
from tests.support.fixtures import BUNDLES, LOGS

LOG = LOGS / "handmade-all-panicked-prod.docker-ts.log"
BUNDLE = BUNDLES / "oom-kill"


def summarize(*argv: bytes | str) -> subprocess.CompletedProcess[bytes]:
    """The command line with byte arguments, as a shell passes a name that is not UTF-8."""
    return subprocess.run([PYTHON, "-m", "collector", "summarize", *argv], capture_output=True, timeout=300,
                          check=False, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)


def expected(case: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(case.with_name(case.name.replace(".log", ".expected.json")).read_text())
    return doc


def no_traceback(proc: subprocess.CompletedProcess[bytes]) -> None:
    assert b"Traceback" not in proc.stderr, proc.stderr.decode(errors="replace")


def test_a_log_whose_name_is_not_utf8(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/ingester-\xe9t\xe9.log"  # Latin-1 "été"
    shutil.copyfile(LOG, raw)
    out = tmp_path / "out"
    proc = summarize("--log", raw, "--out", str(out))
    no_traceback(proc)
    assert proc.returncode == expected(LOG)["exit_code"]
    doc = json.loads((out / "report.json").read_text(encoding="utf-8"))
    cited = {e["file"] for e in doc["verdict"]["evidence"] if e.get("file")}
    assert cited == {"ingester-\ufffdt\ufffd.log"}, cited
    assert doc["input"]["files"] == []  # the shown name no longer names the file: not linked
    assert "ingester-\ufffdt\ufffd.log:" in proc.stdout.decode()


def test_a_bundle_folder_whose_name_is_not_utf8_is_linked_by_its_bytes(tmp_path: Path) -> None:
    folder = os.fsencode(tmp_path) + b"/bundle-\xfd"
    shutil.copytree(BUNDLE, os.fsdecode(folder))
    out = tmp_path / "reports"
    proc = summarize(folder, "--out", str(out), "--quiet")
    no_traceback(proc)
    assert proc.returncode == 10  # oom-kill: a crash loop (tests/fixtures/bundles/oom-kill)
    html = (out / "report.html").read_text(encoding="utf-8")
    links = {h.split("#", 1)[0] for h in re.findall(r'href="(\.\./[^"]+)"', html)}
    assert links, "no link to the bundle"
    for link in links:
        target = out / os.fsdecode(urllib.parse.unquote_to_bytes(link))
        assert target.is_file(), link


def test_a_bundle_packed_again_with_its_folder(tmp_path: Path) -> None:
    tarball = tmp_path / "ticket-4711.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(BUNDLE, arcname="20261129T100000Z-capture")
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    (tmp_path / "ticket-4711.tar.gz.sha256").write_text(f"{digest}  ticket-4711.tar.gz\n")
    proc = summarize(str(tarball), "--out", str(tmp_path / "out"), "--format", "json")
    no_traceback(proc)
    assert proc.returncode == 10, proc.stderr
    assert json.loads(proc.stdout)["verdict"]["scenario"] == "oom-kill"
    # by default beside the tarball, the reports in the bundle's own folder
    proc = summarize(str(tarball), "--quiet")
    assert proc.returncode == 10, proc.stderr
    assert (tmp_path / "ticket-4711" / "20261129T100000Z-capture" / "report.md").is_file()
