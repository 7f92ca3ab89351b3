"""Every byte that leaves the host passes here (Python 3.8+, standard library only).

The same secret becomes the same placeholder everywhere (``[REDACTED-3]``), so a person reading
the bundle can still see that two values are equal. The secret -> placeholder mapping is kept on
the host only (``redaction-map.json`` in the state folder, docs/host-state.md).

Secrets are learned from structured sources first, so a value with spaces or quotes is caught
whole: ``docker compose --profile '*' config --format json`` (every service of every profile, its
environment and build args) and ``docker inspect``'s ``Config.Env``. Patterns catch the rest:
passwords in URLs, ``NAME=value`` lines with secret names, and the operator's own patterns.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from ansible_collections.rsky.ingester_capture.plugins.module_utils.docker_cli import DockerError, config_json, inspect
from ansible_collections.rsky.ingester_capture.plugins.module_utils.manifest import bundle_files, write_atomic

# Environment variable names whose values are secret. Matched anywhere in the name, so
# REDIS_PASSWORD, AWS_SECRET_ACCESS_KEY, GITHUB_TOKEN, DB_CREDENTIALS all count.
SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|PASS$|PWD$|SECRET|TOKEN|KEY|CREDENTIAL|AUTH|PRIVATE|COOKIE|SESSION|"
    r"SIGNATURE|SALT|DSN|CERT)",
    re.IGNORECASE,
)
# scheme://user:password@host -> the password group. The user part may be empty (redis://:pw@h).
URL_USERINFO = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]{1,20}://)(?P<user>[^\s:/@\"'<>]*):"
    r"(?P<password>[^\s@/\"'<>]+)@"
)
# KEY=value and KEY: value forms in compose files and env listings (values without spaces; the
# structured sources catch the others).
ENV_ASSIGNMENT = re.compile(
    r"""(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<sep>\s*[=:]\s*)(?P<q>["']?)(?P<value>[^"'\s#,}\]]+)(?P=q)"""
)
MIN_SECRET_LENGTH = 4
PLACEHOLDER = "[REDACTED-{n}]"
MAP_FILE = "redaction-map.json"
# Files whose JSON is redacted as JSON (Env values by name), not line by line.
JSON_FILES = {"inspect.json", "inspect-pre.json"}


class RedactError(ValueError):
    """A redaction pattern or mapping file cannot be used."""


class Redactor:
    """Replaces known secrets, URL passwords and user patterns, consistently."""

    def __init__(self, mapping: Optional[Dict[str, str]] = None, patterns: Iterable[Any] = ()) -> None:
        self.mapping = dict(mapping or {})  # type: Dict[str, str]
        self.patterns = list(patterns)
        self.counts = {}  # type: Dict[str, int]
        self._literal = None  # type: Optional[Any]

    # --- building --------------------------------------------------------------------------
    @classmethod
    def load(cls, map_path: Optional[Path], patterns: Iterable[str] = ()) -> Redactor:
        """A redactor from the host's mapping file (if any) and extra regex patterns."""
        mapping = {}  # type: Dict[str, str]
        if map_path is not None and map_path.exists():
            try:
                data = json.loads(map_path.read_text(encoding="utf-8"))
                mapping = {str(k): str(v) for k, v in data.get("mapping", {}).items()}
            except (OSError, ValueError, AttributeError) as exc:
                raise RedactError("cannot read redaction map %s: %s" % (map_path, exc)) from exc
        compiled = []
        for pattern in patterns:
            try:
                compiled.append(re.compile(pattern))
            except re.error as exc:
                raise RedactError("bad redaction pattern %r: %s" % (pattern, exc)) from exc
        return cls(mapping=mapping, patterns=compiled)

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
        profile, the containers' Env, and the compose file's text. Missing sources are skipped."""
        redactor = cls.load(state / MAP_FILE if state is not None else None, patterns)
        if compose is not None and compose.is_file():
            try:
                redactor.learn_compose_config(config_json(compose))
            except (DockerError, OSError):
                pass
            try:
                redactor.learn_assignments(compose.read_text(errors="replace"))
            except OSError:
                pass
        for name in containers:
            found, _error = inspect(name, attempts=1)
            if found is not None:
                redactor.learn_env(collect_inspect_env(found))
        for text in texts:
            redactor.learn_assignments(text)
        return redactor

    def save(self, map_path: Path) -> None:
        """Write the mapping atomically, readable by its owner only."""
        map_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = json.dumps({"mapping": self.mapping}, indent=1, sort_keys=True).encode()
        write_atomic(map_path, data, 0o600)

    # --- learning --------------------------------------------------------------------------
    def placeholder(self, secret: str) -> str:
        """The placeholder for a secret, allocating a new one the first time it is seen."""
        if secret.startswith("[REDACTED-"):
            return secret
        found = self.mapping.get(secret)
        if found is None:
            found = PLACEHOLDER.format(n=len(self.mapping) + 1)
            self.mapping[secret] = found
            self._literal = None
        return found

    def add_secret(self, value: str) -> None:
        """Remember a value to be replaced wherever it appears."""
        value = value.strip("\r\n")
        if len(value) >= MIN_SECRET_LENGTH and not value.startswith("[REDACTED-"):
            self.placeholder(value)
            # A quoted copy in YAML or JSON escapes quotes and backslashes: hide that form too.
            escaped = json.dumps(value)[1:-1]
            if escaped != value:
                self.placeholder(escaped)

    def learn_value(self, name: str, value: object) -> None:
        """One NAME=value pair: the whole value when the name is secret, URL passwords always."""
        if not isinstance(value, str):
            return
        if SECRET_NAME.search(name):
            self.add_secret(value)
        for match in URL_USERINFO.finditer(value):
            self.add_secret(match.group("password"))

    def learn_env(self, entries: Iterable[str]) -> None:
        """Learn secrets from ``NAME=value`` entries (docker inspect's Config.Env)."""
        for entry in entries:
            name, sep, value = entry.partition("=")
            if sep:
                self.learn_value(name, value)

    def learn_compose_config(self, data: object) -> None:
        """Learn from ``docker compose config --format json``: every environment and build-args
        mapping of every service, and URL passwords in any string."""
        if isinstance(data, dict):
            for key, value in data.items():
                if key in ("environment", "args") and isinstance(value, dict):
                    for name, item in value.items():
                        self.learn_value(str(name), item)
                elif key in ("environment", "args") and isinstance(value, list):
                    self.learn_env(str(v) for v in value)
                else:
                    self.learn_compose_config(value)
        elif isinstance(data, list):
            for item in data:
                self.learn_compose_config(item)
        elif isinstance(data, str):
            for match in URL_USERINFO.finditer(data):
                self.add_secret(match.group("password"))

    def learn_assignments(self, text: str) -> None:
        """Learn secrets from ``NAME: value`` / ``NAME=value`` lines (compose files)."""
        for match in ENV_ASSIGNMENT.finditer(text):
            if SECRET_NAME.search(match.group("name")):
                self.add_secret(match.group("value"))
        for match in URL_USERINFO.finditer(text):
            self.add_secret(match.group("password"))

    # --- redacting -------------------------------------------------------------------------
    def _bump(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def line(self, text: str) -> str:
        """Redact one line (or any text)."""

        def url_sub(match: Any) -> str:
            self._bump("url-password")
            return "%s%s:%s@" % (match.group("scheme"), match.group("user"), self.placeholder(match.group("password")))

        text = URL_USERINFO.sub(url_sub, text)
        for pattern in self.patterns:
            text = pattern.sub(self._pattern_sub, text)
        if self.mapping and any(s in text for s in self.mapping):
            if self._literal is None:
                secrets = sorted(self.mapping, key=len, reverse=True)
                self._literal = re.compile("|".join(re.escape(s) for s in secrets))
            text = self._literal.sub(self._literal_sub, text)
        return text

    def _literal_sub(self, match: Any) -> str:
        self._bump("known-secret")
        return self.mapping[match.group(0)]

    def _pattern_sub(self, match: Any) -> str:
        self._bump("user-pattern")
        if match.re.groups:
            start, end = match.span(1)
            whole = match.group(0)
            offset = match.start(0)
            secret = match.group(1) or ""
            return whole[: start - offset] + self.placeholder(secret) + whole[end - offset :]
        return self.placeholder(match.group(0))

    def env_list(self, entries: List[str]) -> List[str]:
        """Redact ``NAME=value`` entries: secret names lose their whole value."""
        out = []
        for entry in entries:
            name, sep, value = entry.partition("=")
            if sep and SECRET_NAME.search(name) and value:
                self._bump("env-value")
                out.append("%s=%s" % (name, self.placeholder(value)))
            else:
                out.append(self.line(entry))
        return out

    def value(self, data: Any) -> Any:
        """Redact any JSON-like value: env lists by name, every string by line."""
        if isinstance(data, list):
            return [self.value(item) for item in data]
        if isinstance(data, dict):
            out = {}
            for key, item in data.items():
                if key == "Env" and isinstance(item, list):
                    out[key] = self.env_list([str(v) for v in item])
                else:
                    out[key] = self.value(item)
            return out
        if isinstance(data, str):
            return self.line(data)
        return data


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


def redact_bundle(out: Path, redactor: Redactor) -> Dict[str, int]:
    """Redact every bundle file in place; returns replacements per file."""
    for name in JSON_FILES:
        path = out / name
        if path.exists():
            try:
                redactor.learn_env(collect_inspect_env(json.loads(path.read_text(errors="replace"))))
            except (ValueError, OSError):
                pass
    compose_copy = out / "compose.yml"
    if compose_copy.is_file():
        redactor.learn_assignments(compose_copy.read_text(errors="replace"))
    per_file = {}  # type: Dict[str, int]
    for path in bundle_files(out):
        rel = str(path.relative_to(out))
        before = sum(redactor.counts.values())
        if path.name in JSON_FILES:
            try:
                data = json.loads(path.read_text(errors="replace"))
            except ValueError:
                data = None
            if data is not None:
                write_atomic(path, (json.dumps(redactor.value(data), indent=2) + "\n").encode(), 0o600)
                per_file[rel] = sum(redactor.counts.values()) - before
                continue
        tmp = path.with_name(".%s.redact" % path.name)
        with path.open("r", encoding="utf-8", errors="surrogateescape", newline="") as src:
            with tmp.open("w", encoding="utf-8", errors="surrogateescape", newline="") as dst:
                for line in src:
                    dst.write(redactor.line(line))
        os.chmod(str(tmp), path.stat().st_mode & 0o777)
        tmp.replace(path)
        per_file[rel] = sum(redactor.counts.values()) - before
    return per_file
