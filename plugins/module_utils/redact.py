"""Every byte that leaves the host passes here (Python 3.8+, standard library only).

The same secret becomes the same placeholder everywhere (``[REDACTED-3]``), so a person reading
the bundle can still see that two values are equal. The secret -> placeholder mapping is kept on
the host only (``redaction-map.json`` in the state folder, docs/host-state.md).

Redaction is one pass over a whole document, never a line at a time (docs/security.md):

* secret-shaped places are found by parsing, not by one pattern per line: URL userinfo (any
  scheme, the password up to the last ``@`` before the host), secret query keys, ``NAME=value``
  and ``NAME: value`` with a secret name (quoted, spaced and YAML block values), ``--flag value``
  arguments, ``Authorization``/``Bearer``/``Basic`` credentials and PEM private keys;
* JSON documents (inspect.json, events, compose ps, module results) are walked field by field:
  a value under a secret name is replaced whatever it looks like (``Env``, ``Labels``,
  ``Args``/``Cmd``/``Entrypoint``, ``HostConfig.LogConfig.Config``, ``Actor.Attributes``);
* every value learned is replaced wherever it occurs, across line breaks (a PEM key in a YAML
  ``|`` block) and in its encoded forms: JSON/Go-escaped, percent-encoded and -decoded, base64
  (also of ``user:password``, the Basic auth form).

A value is learned (kept in the saved map and replaced everywhere) only when it comes from a
secret-shaped place and is long and unusual enough; a short or ordinary value found there is
replaced in its place only, so a log line such as ``at://:e@did:plc:x`` cannot poison the map.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional

from ansible_collections.rsky.ingester_capture.plugins.module_utils.docker_cli import DockerError, config_json, inspect
from ansible_collections.rsky.ingester_capture.plugins.module_utils.manifest import (
    COMMANDS_FILE,
    bundle_files,
    write_atomic,
)
from ansible_collections.rsky.ingester_capture.plugins.module_utils.secret_text import (
    OVERLAP,
    RedactError,
    encoded_forms,
    ordinary,
    secret_name,
)
from ansible_collections.rsky.ingester_capture.plugins.module_utils.secret_text import Redactor as TextRedactor

MAP_FILE = "redaction-map.json"
# Files whose JSON is redacted field by field (a whole JSON document, or one per line).
JSON_FILES = {"inspect.json", "inspect-pre.json", "compose-ps.json"}
JSONL_FILES = {"events.jsonl", "events-setup.jsonl", COMMANDS_FILE}
# Text documents are redacted whole; a larger one in blocks of this size that overlap by OVERLAP,
# so a multi-line secret that crosses a block's end is still seen whole.
BLOCK = 8 << 20


class Redactor(TextRedactor):
    """The text redactor (``secret_text``) with what only the host has: its saved map, the
    compose project and the containers to learn from, and the bundle's files."""

    @classmethod
    def for_target(
        cls,
        state: Optional[Path],
        compose: Optional[Path] = None,
        containers: Iterable[str] = (),
        patterns: Iterable[str] = (),
        texts: Iterable[str] = (),
    ) -> Redactor:
        """The redactor for one capture target: the host's map, the compose config of every
        profile, the containers' inspect documents, and the compose file's text. A source that
        cannot be read is said in :attr:`notes`."""
        redactor = cls.load(state / MAP_FILE if state is not None else None, patterns)
        if compose is not None and compose.is_file():
            try:
                redactor.learn_compose_config(config_json(compose))
            except (DockerError, OSError) as exc:
                redactor.notes.append(
                    "docker compose config could not be read (%s): secrets were learned from the compose "
                    "file's text and the .env beside it only" % redactor.text(str(exc))
                )
            for path in (compose, compose.parent / ".env"):
                try:
                    redactor.learn_text(path.read_text(errors="surrogateescape"))
                except OSError:
                    pass
        for name in containers:
            found, _error = inspect(name, attempts=1)
            if found is not None:
                redactor.learn_structure(found)
        for text in texts:
            redactor.learn_text(text)
        return redactor

    def save(self, map_path: Path) -> None:
        """Write the mapping atomically, readable by its owner only."""
        map_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = json.dumps({"mapping": self.mapping}, indent=1, sort_keys=True)
        write_atomic(map_path, data.encode("ascii"), 0o600)

    def learn_file(self, path: Path) -> None:
        """Learn from one bundle file: JSON field by field, text as a whole."""
        if path.name in JSON_FILES or path.name in JSONL_FILES:
            for data in _json_documents(path):
                if isinstance(data, str):
                    self.learn_text(data)
                else:
                    self.learn_structure(data)
            return
        blocks = 0
        for block in _blocks(path):
            hits = self.learn_text(block)
            blocks += 1
        if blocks == 1:
            # A file read whole: the redacting pass reuses what this pass found in it.
            self._detected[str(path)] = hits


def collect_inspect_env(data: object) -> List[str]:
    """Every ``Config.Env`` entry found anywhere in an inspect document."""
    found = []  # type: List[str]
    if isinstance(data, list):
        for item in data:
            found.extend(collect_inspect_env(item))
    elif isinstance(data, dict):
        for key, value in data.items():
            if key == "Env" and isinstance(value, list):
                found.extend(str(v) for v in value)
            else:
                found.extend(collect_inspect_env(value))
    return found


def _blocks(path: Path) -> Iterator[str]:
    """A text file whole when small, else in blocks that overlap by OVERLAP characters."""
    with path.open("r", encoding="utf-8", errors="surrogateescape", newline="") as handle:
        tail = ""
        while True:
            chunk = handle.read(BLOCK)
            if not chunk:
                return
            yield tail + chunk
            tail = chunk[-OVERLAP:]


def _is_jsonl(path: Path) -> bool:
    return path.name in JSONL_FILES or path.suffix == ".jsonl"


def _json_documents(path: Path) -> Iterator[Any]:
    """A JSON file's document, or a JSON-lines file's documents (a line that is not JSON is
    given as its text)."""
    raw = path.read_text(encoding="utf-8", errors="surrogateescape")
    if not _is_jsonl(path):
        try:
            yield json.loads(raw)
            return
        except ValueError:
            pass
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except ValueError:
            yield line


def _redact_text_file(path: Path, redactor: Redactor) -> None:
    """Redact a text file as one document (in overlapping blocks when it is large)."""
    tmp = path.with_name(".%s.redact" % path.name)
    with path.open("r", encoding="utf-8", errors="surrogateescape", newline="") as src:
        fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape", newline="") as dst:
            carry = src.read(BLOCK)
            if len(carry) < BLOCK:
                dst.write(redactor.text(carry, redactor._detected.pop(str(path), None)))
                carry = ""
            while carry:
                chunk = src.read(BLOCK)
                text = carry + chunk
                if not chunk:
                    dst.write(redactor.text(text))
                    break
                spans = redactor._spans(text)
                # Write up to a line break OVERLAP before the end that no replacement crosses;
                # the rest is seen again with the next block.
                cut = text.rfind("\n", 0, max(len(text) - OVERLAP, 0)) + 1
                for start, end, _kind, _value in reversed(spans):
                    if start < cut < end:
                        cut = text.rfind("\n", 0, start) + 1
                if cut <= 0:
                    carry = text
                    continue
                dst.write(redactor._apply(text[:cut], [s for s in spans if s[1] <= cut]))
                carry = text[cut:]
    os.chmod(str(tmp), path.stat().st_mode & 0o777)
    tmp.replace(path)


def _redact_json_file(path: Path, redactor: Redactor) -> None:
    """Redact a JSON or JSON-lines file field by field (a line that is no JSON as text)."""
    raw = path.read_text(encoding="utf-8", errors="surrogateescape")
    try:
        data = None if _is_jsonl(path) else json.loads(raw)
    except ValueError:
        data = None
    if data is not None:
        redacted = redactor.value(data, True)
        if redacted != data:
            body = json.dumps(redacted, indent=2, ensure_ascii=False) + "\n"
            write_atomic(path, body.encode("utf-8", "surrogateescape"), 0o600)
        return
    # JSON lines (or a file whose lines are documents, as `compose ps --format json` prints).
    out = []
    for line in raw.splitlines(True):
        body = line.rstrip("\r\n")
        try:
            doc = json.loads(body) if body.strip() else None
        except ValueError:
            out.append(redactor.text(line))
            continue
        if doc is None:
            out.append(line)
            continue
        redacted = redactor.value(doc, True)
        if redacted == doc:
            out.append(redactor.text(line))  # a learned value that only a later file named
        else:
            out.append(json.dumps(redacted, separators=(",", ":"), ensure_ascii=False) + line[len(body) :])
    write_atomic(path, "".join(out).encode("utf-8", "surrogateescape"), 0o600)


def _under_source(out: Path, path: Path) -> bool:
    try:
        return path.relative_to(out).parts[0] == "source" and path.name != "index.json"
    except (ValueError, IndexError):
        return False


def redact_bundle(out: Path, redactor: Redactor, files: Optional[Iterable[Path]] = None) -> Dict[str, int]:
    """Redact every bundle file in place (or ``files``) and the commands record the manifest is
    made from; returns replacements per file. Everything is learned first, so a value learned
    from the last file is replaced in the first."""
    paths = list(files) if files is not None else bundle_files(out)
    commands = out / COMMANDS_FILE
    every = paths + ([commands] if commands.is_file() and commands not in paths else [])
    # Source snippets are code: `let token = parse(` is no secret to replace everywhere.
    code = {p for p in every if _under_source(out, p)}
    for path in every:
        if path in code:
            continue
        try:
            redactor.learn_file(path)
        except (OSError, UnicodeError):
            pass
    per_file = {}  # type: Dict[str, int]
    for path in every:
        before = sum(redactor.counts.values())
        redactor.learning = path not in code
        structured = path.suffix in (".json", ".jsonl") or path.name in JSON_FILES or path.name in JSONL_FILES
        if structured:
            _redact_json_file(path, redactor)
        else:
            _redact_text_file(path, redactor)
        if path != commands:
            per_file[str(path.relative_to(out))] = sum(redactor.counts.values()) - before
    redactor.learning = True
    return per_file


__all__ = [
    "MAP_FILE",
    "RedactError",
    "Redactor",
    "collect_inspect_env",
    "encoded_forms",
    "ordinary",
    "redact_bundle",
    "secret_name",
]
