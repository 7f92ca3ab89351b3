"""report.html renders in headless Chromium: the screenshot is not blank, and the page needs no
network (the charts are inline SVG)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from collector.cli import main
from tests.support.fixtures import BUNDLES

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and unfiltered RGB(A) rows of a non-interlaced 8-bit PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, colour = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    bpp = {2: 3, 6: 4}[colour]
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[x] = (line[x] + pred) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, rows


@pytest.mark.browser
@pytest.mark.parametrize("case", ["oom-kill", "hypothetical-task-panic"])
def test_report_html_screenshot(case: str, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("headless Chromium is not installed")
    out = tmp_path / "report"
    main(["summarize", str(BUNDLES / case), "--out", str(out), "--quiet"])
    html = (out / "report.html").read_text()
    assert "<svg" in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,1400",
         f"--screenshot={shot}", (out / "report.html").as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    width, height, rows = png_pixels(shot.read_bytes())
    assert (width, height) == (1000, 1400)
    bpp = len(rows[0]) // width
    colours = {row[x : x + 3] for row in rows[::7] for x in range(0, len(row), bpp * 5)}
    assert len(colours) > 40, "the screenshot looks blank"
    nonwhite = sum(1 for row in rows[::7] for x in range(0, len(row), bpp * 5)
                   if row[x : x + 3] != b"\xff\xff\xff")
    assert nonwhite > 2000
    # keep one for people to look at
    if case == "oom-kill":
        shutil.copy2(shot, Path("/tmp") / "collector-report-oom-kill.png")
