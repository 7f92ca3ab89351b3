"""The folder one level off, as a stranger gives it: `summarize` on the capture destination or on
one host's folder, `fleet` on one host's folder or on one bundle. Each says, in one line and with
exit 3, what the folder is and the command that would work, and writes nothing into it."""

from __future__ import annotations

import shutil
from pathlib import Path

from collector.exitcodes import Exit
from tests.support.cli import one_line, run
from tests.support.fixtures import BUNDLES

OLDER, NEWER = "20261201T100000Z-capture", "20261201T110000Z-capture"


def destination(tmp_path: Path) -> Path:
    """capture_dest as capture.yml leaves it: <host>/<stamp>-<mode>/, two hosts, web-1 twice."""
    dest = tmp_path / "captures"
    for host, stamp in (("web-1", OLDER), ("web-1", NEWER), ("web-2", OLDER)):
        shutil.copytree(BUNDLES / "oom-kill", dest / host / stamp)
    return dest


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_summarize_on_the_capture_destination_names_the_newest_bundle_and_fleet(tmp_path: Path) -> None:
    dest = destination(tmp_path)
    before = files(dest)
    proc = run("-m", "collector", "summarize", str(dest))
    assert proc.returncode == Exit.UNREADABLE
    assert one_line(proc) == (
        f"ingester-collector: {dest}: not a bundle, but it holds bundles: the newest is {dest}/web-1/{NEWER} "
        f"(and 2 more); summarize one; every host at once: ingester-collector fleet {dest}")
    assert files(dest) == before


def test_summarize_on_one_hosts_folder_names_its_newest_bundle(tmp_path: Path) -> None:
    host = destination(tmp_path) / "web-1"
    proc = run("-m", "collector", "summarize", str(host))
    assert proc.returncode == Exit.UNREADABLE
    assert one_line(proc) == (
        f"ingester-collector: {host}: not a bundle, but it holds bundles: the newest is {host}/{NEWER} "
        "(and 1 more); summarize one")


def test_fleet_on_one_hosts_folder_or_one_bundle_writes_nothing(tmp_path: Path) -> None:
    dest = destination(tmp_path)
    before = files(dest)
    host = run("-m", "collector", "fleet", str(dest / "web-1"))
    assert host.returncode == Exit.UNREADABLE
    assert one_line(host) == (
        f"ingester-collector: {dest / 'web-1'}: one host's folder (it holds bundles, not hosts): give the "
        f"capture destination above it, ingester-collector fleet {dest.resolve()}")
    bundle = dest / "web-2" / OLDER
    one = run("-m", "collector", "fleet", str(bundle))
    assert one.returncode == Exit.UNREADABLE
    assert one_line(one) == (
        f"ingester-collector: {bundle}: one bundle, not a capture destination: ingester-collector summarize {bundle}")
    assert files(dest) == before  # no fleet.json written into the wrong folder
    # and the commands they name work
    assert run("-m", "collector", "summarize", str(dest / "web-1" / NEWER), "--quiet").returncode == 10
    assert run("-m", "collector", "fleet", str(dest), "--quiet").returncode != Exit.UNREADABLE
