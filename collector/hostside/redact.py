"""Consistent redaction of secrets, stdlib only (runs on the production host before any fetch).

The same secret becomes the same placeholder everywhere (``[REDACTED-3]``), so a person reading
the bundle can still see that two values are equal. The secret -> placeholder mapping is kept on
the host only.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

# Environment variable names whose values are secret. Matched against the whole name, so
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
# KEY=value and KEY: value forms in compose files and env listings.
ENV_ASSIGNMENT = re.compile(
    r"""(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<sep>\s*[=:]\s*)(?P<q>["']?)(?P<value>[^"'\s#,}\]]+)(?P=q)"""
)
MIN_SECRET_LENGTH = 4
PLACEHOLDER = "[REDACTED-{n}]"


class RedactError(ValueError):
    """A redaction pattern or mapping file cannot be used."""


@dataclass
class Redactor:
    """Replaces known secrets, URL passwords and user patterns, consistently."""

    mapping: dict[str, str] = field(default_factory=dict)
    patterns: list[re.Pattern[str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    _literal: re.Pattern[str] | None = None

    @classmethod
    def load(cls, map_path: Path | None, patterns: Iterable[str] = ()) -> Redactor:
        """Build a redactor from the host's mapping file (if any) and extra regex patterns."""
        mapping: dict[str, str] = {}
        if map_path is not None and map_path.exists():
            try:
                data = json.loads(map_path.read_text(encoding="utf-8"))
                mapping = {str(k): str(v) for k, v in data.get("mapping", {}).items()}
            except (OSError, ValueError, AttributeError) as exc:
                raise RedactError(f"cannot read redaction map {map_path}: {exc}") from exc
        compiled = []
        for pattern in patterns:
            try:
                compiled.append(re.compile(pattern))
            except re.error as exc:
                raise RedactError(f"bad redaction pattern {pattern!r}: {exc}") from exc
        return cls(mapping=mapping, patterns=compiled)

    def save(self, map_path: Path) -> None:
        """Write the mapping atomically, readable by its owner only."""
        map_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = map_path.with_name(map_path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"mapping": self.mapping}, handle, indent=1, sort_keys=True)
        tmp.replace(map_path)

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
        if len(value) >= MIN_SECRET_LENGTH and not value.startswith("[REDACTED-"):
            self.placeholder(value)

    def learn_env(self, entries: Iterable[str]) -> None:
        """Learn secrets from ``NAME=value`` entries (docker inspect's Config.Env)."""
        for entry in entries:
            name, sep, value = entry.partition("=")
            if sep and SECRET_NAME.search(name):
                self.add_secret(value)
            for match in URL_USERINFO.finditer(value):
                self.add_secret(match.group("password"))

    def learn_assignments(self, text: str) -> None:
        """Learn secrets from ``NAME: value`` / ``NAME=value`` lines (compose files)."""
        for match in ENV_ASSIGNMENT.finditer(text):
            if SECRET_NAME.search(match.group("name")):
                self.add_secret(match.group("value"))

    def _bump(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def line(self, text: str) -> str:
        """Redact one line (or any text)."""

        def url_sub(match: re.Match[str]) -> str:
            self._bump("url-password")
            return f"{match.group('scheme')}{match.group('user')}:{self.placeholder(match.group('password'))}@"

        text = URL_USERINFO.sub(url_sub, text)
        for pattern in self.patterns:
            text = pattern.sub(self._pattern_sub, text)
        if self.mapping:
            if self._literal is None:
                secrets = sorted(self.mapping, key=len, reverse=True)
                self._literal = re.compile("|".join(re.escape(s) for s in secrets))
            if any(s in text for s in self.mapping):
                text = self._literal.sub(self._literal_sub, text)
        return text

    def _literal_sub(self, match: re.Match[str]) -> str:
        self._bump("known-secret")
        return self.mapping[match.group(0)]

    def _pattern_sub(self, match: re.Match[str]) -> str:
        self._bump("user-pattern")
        if match.re.groups:
            start, end = match.span(1)
            whole = match.group(0)
            offset = match.start(0)
            secret = match.group(1) or ""
            return whole[: start - offset] + self.placeholder(secret) + whole[end - offset :]
        return self.placeholder(match.group(0))

    def lines(self, lines: Iterable[str]) -> Iterator[str]:
        """Redact a stream of lines lazily."""
        for text in lines:
            yield self.line(text)

    def env_list(self, entries: list[str]) -> list[str]:
        """Redact ``NAME=value`` entries: secret names lose their whole value."""
        out = []
        for entry in entries:
            name, sep, value = entry.partition("=")
            if sep and SECRET_NAME.search(name) and value:
                self._bump("env-value")
                out.append(f"{name}={self.placeholder(value)}")
            else:
                out.append(self.line(entry))
        return out


def redact_inspect(redactor: Redactor, data: object) -> object:
    """Redact a ``docker inspect`` document: env values by name, then every string."""
    if isinstance(data, list):
        return [redact_inspect(redactor, item) for item in data]
    if isinstance(data, dict):
        out: dict[str, object] = {}
        for key, value in data.items():
            if key == "Env" and isinstance(value, list):
                out[key] = redactor.env_list([str(v) for v in value])
            else:
                out[key] = redact_inspect(redactor, value)
        return out
    if isinstance(data, str):
        return redactor.line(data)
    return data


def collect_inspect_env(data: object) -> list[str]:
    """Every ``Config.Env`` entry found anywhere in an inspect document."""
    found: list[str] = []
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
