"""A damaged-bundle corpus: every case ends in one stderr line and exit 3, or in a report that
names the damage. Never a traceback.

The corpus is made from a recorded bundle at test time (one function per kind of damage), so it
follows the fixtures when they are re-recorded.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from collector.cli import main
from collector.exitcodes import Exit
from tests.support.fixtures import BUNDLES

SOURCE = BUNDLES / "hypothetical-task-panic"


def _truncate(rel: str, keep: float) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        data = (root / rel).read_bytes()
        (root / rel).write_bytes(data[: int(len(data) * keep)])

    return damage


def _replace(rel: str, data: bytes) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        (root / rel).write_bytes(data)

    return damage


def _remove(*rels: str) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        for rel in rels:
            (root / rel).unlink()

    return damage


def _schema(version: object) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        doc = json.loads((root / "manifest.json").read_text())
        doc["schema_version"] = version
        (root / "manifest.json").write_text(json.dumps(doc))

    return damage


def _utf16(rel: str) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        text = (root / rel).read_text()
        (root / rel).write_bytes(text.encode("utf-16"))

    return damage


def _huge_line(root: Path) -> None:
    with (root / "logs/ingester.log").open("ab") as fh:
        fh.write(b"2026-11-29T10:00:00Z " + b"CRITICAL " * 400_000 + b"\n")
        fh.write(b"x" * 5_000_000)


GARBAGE = bytes(range(256)) * 64
# name -> (damage, expected: "unreadable" or "reported")
CORPUS: dict[str, tuple[Callable[[Path], None], str]] = {
    "log-truncated-mid-line": (_truncate("logs/ingester.log", 0.53), "reported"),
    "log-binary-garbage": (_replace("logs/ingester.log", GARBAGE), "reported"),
    "log-latin1": (_replace("logs/ingester.log", "Starting rsky-ingester caf\xe9\n".encode(
        "latin-1")), "reported"),
    "log-utf16": (_utf16("logs/ingester.log"), "reported"),
    "log-huge-line": (_huge_line, "reported"),
    "log-empty": (_replace("logs/ingester.log", b""), "reported"),
    "events-invalid-json": (_replace("events.jsonl", b'{"Action": "die"\n[1,2\n\xff\xfe\n'),
                            "reported"),
    "events-truncated": (_truncate("events.jsonl", 0.5), "reported"),
    "stats-garbage": (_replace("stats.jsonl", GARBAGE), "reported"),
    "inspect-invalid": (_replace("inspect.json", b"[{\"Id\": "), "reported"),
    "inspect-not-a-list": (_replace("inspect.json", b'"hello"'), "reported"),
    "dmesg-binary": (_replace("dmesg.txt", GARBAGE), "reported"),
    "host-invalid": (_replace("host.json", b"\x00\x01"), "reported"),
    "window-wrong-types": (_replace("window.json", b'{"window_start_epoch": "soon",'
                                                  b' "restarts": "many"}'), "reported"),
    "manifest-invalid": (_replace("manifest.json", b"{"), "reported"),
    "manifest-files-wrong-type": (_replace("manifest.json", b'{"schema_version": 1, '
                                                            b'"files": 7}'), "reported"),
    "manifest-schema-2": (_schema(2), "unreadable"),
    "manifest-schema-string": (_schema("one"), "unreadable"),
    "log-missing": (_remove("logs/ingester.log"), "reported"),
    "everything-but-events-missing": (
        _remove("logs/ingester.log", "logs/tee.log", "inspect.json", "dmesg.txt", "dmesg-T.txt",
                "stats.jsonl", "host.json", "window.json", "manifest.json"),
        "reported",
    ),
}


def _bundle(tmp_path: Path, damage: Callable[[Path], None]) -> Path:
    root = tmp_path / "bundle"
    shutil.copytree(SOURCE, root, ignore=shutil.ignore_patterns("expected.json", "report.*"))
    damage(root)
    return root


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_damaged_bundle(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    damage, expected = CORPUS[name]
    root = _bundle(tmp_path, damage)
    code = main(["summarize", str(root), "--quiet"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if expected == "unreadable":
        assert code == Exit.UNREADABLE
        assert len(err.strip().splitlines()) == 1 and "schema_version" in err
        return
    assert code in (Exit.OK, Exit.CRASH_LOOP, Exit.INCONCLUSIVE), err
    report = json.loads((root / "report.json").read_text())
    cap = report["capture"]
    assert cap["missing"] or cap["damaged"] or name == "log-huge-line"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["summarize", "{tmp}/nope"], "no such bundle directory"),
        (["summarize", "{tmp}/empty"], "no bundle files"),
        (["summarize", "{tmp}/file.txt"], "not a directory"),
        (["summarize", "--log", "{tmp}/nope.log"], "no such log file"),
        (["summarize", "--log", "{tmp}/empty.log"], "the log is empty"),
        (["summarize", "--log", "{tmp}"], "is a directory"),
    ],
)
def test_unreadable_inputs(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "empty.log").write_bytes(b"")
    code = main([a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err
    assert code == Exit.UNREADABLE
    assert len(err.strip().splitlines()) == 1
    assert message in err


@pytest.mark.parametrize(
    "argv",
    [[], ["summarize"], ["nonsense"], ["summarize", "a", "--log", "b"], ["summarize", "--format",
                                                                          "xml", "a"]],
)
def test_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == Exit.USAGE
    assert "Traceback" not in capsys.readouterr().err


def test_unwritable_output_still_prints_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("a file where the directory should be")
    code = main(["summarize", str(SOURCE), "--out", str(blocker / "sub")])
    out, err = capsys.readouterr()
    assert code == Exit.CANNOT_WRITE  # not CRASH_LOOP: that code promises the reports exist
    assert "verdict: panic" in out
    assert "cannot write reports" in err


def _deep(rel: str) -> Callable[[Path], None]:
    return _replace(rel, b"[" * 100_000 + b"]" * 100_000 + b"\n")


def _huge_number(rel: str, key: str) -> Callable[[Path], None]:
    """A 400-digit integer where the file holds a number (no float can hold it)."""

    def damage(root: Path) -> None:
        text = (root / rel).read_text()
        at = text.index(f'"{key}": ') + len(key) + 4
        end = at
        while text[end] in "-.0123456789":
            end += 1
        (root / rel).write_text(text[:at] + "9" * 400 + text[end:])

    return damage


# Deep or huge JSON in any file is damage the report names, never RecursionError or OverflowError.
JSON_CORPUS: dict[str, Callable[[Path], None]] = {
    **{f"deep-{rel}": _deep(rel) for rel in ("manifest.json", "events.jsonl", "stats.jsonl", "inspect.json",
                                             "host.json", "window.json")},
    "huge-stats-epoch": _huge_number("stats.jsonl", "epoch"),
    "huge-inspect-memory": _huge_number("inspect.json", "Memory"),
    "huge-host-boot": _huge_number("host.json", "boot_epoch"),
    "huge-window-start": _huge_number("window.json", "window_start_epoch"),
    "huge-window-end": _huge_number("window.json", "window_end_epoch"),
    "huge-manifest-version": _huge_number("manifest.json", "schema_version"),
}


@pytest.mark.parametrize("name", sorted(JSON_CORPUS))
def test_deep_or_huge_json_is_damage(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _bundle(tmp_path, JSON_CORPUS[name])
    code = main(["summarize", str(root), "--quiet"])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Error" not in err
    assert code in (Exit.OK, Exit.CRASH_LOOP, Exit.INCONCLUSIVE), err
    damaged = json.loads((root / "report.json").read_text())["capture"]["damaged"]
    assert damaged, name


def test_deep_or_huge_source_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _bundle(tmp_path, lambda r: None)
    (root / "source").mkdir()
    for text in ("[" * 100_000 + "]" * 100_000, '{"schema_version": 1, "snippets": [], "commit": ' + "9" * 400 + "}"):
        (root / "source" / "index.json").write_text(text)
        code = main(["summarize", str(root), "--quiet"])
        assert "Traceback" not in capsys.readouterr().err
        assert code == Exit.CRASH_LOOP


def _link(rel: str, target: Path) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        (root / rel).unlink(missing_ok=True)
        (root / rel).symlink_to(target)

    return damage


def _linked_folder(root: Path) -> None:
    """`logs/` a link to a folder outside the bundle holding a log of its own."""
    outside = root.parent / "outside"
    shutil.move(root / "logs", outside)
    (root / "logs").symlink_to(outside)


def _fifo(root: Path) -> None:
    (root / "events.jsonl").unlink()
    os.mkfifo(root / "events.jsonl")


SECRET = "controller-file-7f3a"  # noqa: S105 - what a link would leak, not a password


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda r: _link("host.json", r.parent / "secret.json")(r), id="file-link"),
        pytest.param(lambda r: _link("logs/ingester.log", r.parent / "secret.json")(r), id="log-link"),
        pytest.param(lambda r: _link("dmesg-T.txt", r.parent / "secret.json")(r), id="new-file-link"),
        pytest.param(_linked_folder, id="folder-link"),
        pytest.param(_fifo, id="fifo"),
        pytest.param(lambda r: _link("source", r.parent)(r), id="source-link"),
    ],
)
def test_links_and_special_files_are_refused(
    damage: Callable[[Path], None], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bundle holds regular files: a link (or a FIFO) is refused in one line with exit 3, and
    nothing it points to reaches a report."""
    (tmp_path / "secret.json").write_text(json.dumps({"boot_epoch": 1, "kernel": SECRET}) + "\n")
    (tmp_path / "index.json").write_text(json.dumps({"schema_version": 1, "snippets": []}))
    root = _bundle(tmp_path, damage)
    code = main(["summarize", str(root), "--quiet", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == Exit.UNREADABLE, err
    assert len(err.strip().splitlines()) == 1 and "regular file" in err
    assert not (tmp_path / "out").exists()
