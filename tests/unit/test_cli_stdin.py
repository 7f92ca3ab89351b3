"""A log piped in: `summarize --log -` (standard input), `--log /dev/fd/N` (a shell's
`<(docker logs ...)`) and a FIFO read the stream to its end, diagnose it as the same log given
as a file, call it by the stream's name and keep nothing of it afterwards. Each runs the real
command line in a child process fed through a real pipe."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from collector.exitcodes import Exit
from tests.support.cli import PYTHON, REPO, one_line, run
from tests.support.fixtures import LOGS

LOG = LOGS / "handmade-all-panicked-prod.docker-ts.log"


def expected() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(LOG.with_name(LOG.name.replace(".log", ".expected.json")).read_text())
    return doc


def env(tmp: Path) -> dict[str, str]:
    """The child's environment: this checkout on its path, its temporary files in `tmp`."""
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp)}


def summarize(argv: list[str], tmp: Path, **kw: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([PYTHON, "-m", "collector", "summarize", *argv], capture_output=True,
                          timeout=300, check=False, env=env(tmp), cwd=REPO, **kw)


def report(out: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((out / "report.json").read_text())
    return doc


def same_as_the_file(doc: dict[str, Any], out_file: Path, name: str) -> None:
    """`doc` is the report of LOG given as a file, but for what the log is called and linked as."""
    want = report(out_file)
    assert want["input"]["files"] == [LOG.name]
    assert doc["input"]["files"] == []  # the kept stream is gone: nothing to link to
    got = json.dumps(doc["verdict"]).replace(f'"{name}', f'"{LOG.name}')
    assert json.loads(got) == want["verdict"]
    assert doc["runs"] and len(doc["runs"]) == len(want["runs"])


def test_standard_input_reads_as_the_file_does(tmp_path: Path) -> None:
    key = expected()
    by_file = run("-m", "collector", "summarize", "--log", str(LOG), "--out", str(tmp_path / "file"), "--quiet")
    assert by_file.returncode == key["exit_code"], by_file.stderr
    out = tmp_path / "piped"
    proc = summarize(["--log", "-", "--out", str(out), "--format", "json"], tmp_path / "tmp", input=LOG.read_bytes())
    assert proc.returncode == key["exit_code"], proc.stderr
    doc = report(out)
    assert doc["verdict"]["scenario"] == key["scenario"] and doc["verdict"]["task"] == key["task"]
    assert doc["panic"]["location"] == key["panic"]["location"]
    same_as_the_file(doc, tmp_path / "file", "stdin")
    cited = [e["file"] for e in doc["verdict"]["evidence"] if e.get("file")]
    assert cited and set(cited) == {"stdin"}, cited
    assert json.loads(proc.stdout)["verdict"]["scenario"] == key["scenario"]
    assert not list((tmp_path / "tmp").iterdir()), "the kept stream was left behind"
    for name in ("report.md", "report.html", "report.json"):
        assert str(tmp_path / "tmp") not in (out / name).read_text()


def test_standard_input_without_out_writes_into_the_current_folder(tmp_path: Path) -> None:
    here = tmp_path / "here"
    here.mkdir()
    proc = subprocess.run([PYTHON, "-m", "collector", "summarize", "--log", "-", "--quiet"], input=LOG.read_bytes(),
                          capture_output=True, timeout=300, check=False, env=env(tmp_path / "tmp"), cwd=here)
    assert proc.returncode == expected()["exit_code"], proc.stderr
    assert sorted(p.name for p in here.iterdir()) == ["report.html", "report.json", "report.md"]


def test_a_shell_pipe_by_its_fd_path_and_a_fifo(tmp_path: Path) -> None:
    """`--log <(docker logs ...)` gives /dev/fd/N; a FIFO is a path to a stream."""
    data = LOG.read_bytes()
    rd, wr = os.pipe()
    feeder = threading.Thread(target=lambda: (os.write(wr, data), os.close(wr)), daemon=True)
    feeder.start()
    try:
        proc = summarize(["--log", f"/dev/fd/{rd}", "--out", str(tmp_path / "fd"), "--quiet"], tmp_path / "tmp",
                         pass_fds=(rd,))
    finally:
        os.close(rd)
        feeder.join(10)
    assert proc.returncode == expected()["exit_code"], proc.stderr
    run("-m", "collector", "summarize", "--log", str(LOG), "--out", str(tmp_path / "file"), "--quiet")
    same_as_the_file(report(tmp_path / "fd"), tmp_path / "file", f"fd{rd}")

    fifo = tmp_path / "ingester.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("wb") as fh:  # opens once the collector opens it for reading
            fh.write(data)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    proc = summarize(["--log", str(fifo), "--out", str(tmp_path / "fifo"), "--quiet"], tmp_path / "tmp")
    writer.join(10)
    assert proc.returncode == expected()["exit_code"], proc.stderr
    same_as_the_file(report(tmp_path / "fifo"), tmp_path / "file", fifo.name)
    assert not list((tmp_path / "tmp").iterdir())


def test_empty_standard_input_is_one_line(tmp_path: Path) -> None:
    proc = summarize(["--log", "-", "--out", str(tmp_path / "out")], tmp_path / "tmp", input=b"")
    assert proc.returncode == Exit.UNREADABLE
    assert one_line(subprocess.CompletedProcess(proc.args, proc.returncode, "", proc.stderr.decode())) == (
        "ingester-collector: stdin: the log is empty")
    assert not (tmp_path / "out").exists()
    assert not list((tmp_path / "tmp").iterdir())


def test_a_terminal_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """Nothing would come from a terminal but what a person types: the usage, not a wait."""
    primary, secondary = pty.openpty()
    try:
        proc = summarize(["--log", "-"], tmp_path / "tmp", stdin=secondary)
    finally:
        os.close(primary)
        os.close(secondary)
    assert proc.returncode == Exit.USAGE
    line = one_line(subprocess.CompletedProcess(proc.args, proc.returncode, "", proc.stderr.decode()))
    assert line.startswith("ingester-collector: error: --log -: a terminal, not a log: pipe one in (docker logs")


def test_interrupted_while_reading_the_stream_leaves_nothing(tmp_path: Path) -> None:
    """Ctrl-C while the stream still flows: one line, exit 130, the part kept so far removed."""
    tmp = tmp_path / "tmp"
    child = subprocess.Popen([PYTHON, "-m", "collector", "summarize", "--log", "-", "--out", str(tmp_path / "out")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(tmp),
                             cwd=REPO)
    assert child.stdin is not None
    child.stdin.write(LOG.read_bytes()[:4096])
    child.stdin.flush()
    deadline = time.monotonic() + 60
    while not any(p.is_dir() and any(p.iterdir()) for p in tmp.iterdir()):  # the stream is being kept
        assert time.monotonic() < deadline, "the collector never started keeping the stream"
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == Exit.INTERRUPTED, err
    assert err.decode() == "ingester-collector: interrupted\n"
    assert not list(tmp.iterdir()), "the part of the stream kept so far was left behind"
    assert not (tmp_path / "out").exists()
