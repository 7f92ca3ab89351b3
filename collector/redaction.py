"""No secret in what the collector writes or prints: its reports are redacted by the host's rules.

A bundle was redacted on its host, but a log captured by hand (`summarize --log`) never went
through one, and a person pastes the report into a ticket. So every string of report.json (from
which report.md, report.html and the printed summary are made) passes through the same redactor
the host uses (`secret_text`: one file, shared with the collection by a link), learning as it
goes, so a value found in a secret-shaped place (`NAME=value`, a URL's password, `Authorization:`,
a PEM key) is replaced wherever else it occurs. The same secret reads the same placeholder
(`[REDACTED-2]`); marks the host or the service already left (`[REDACTED-1]`, `<redacted>`) stay.

The parser's records keep URL passwords out from the start (`sources.logs._clip`, the hot path);
a line shown whole (the lines before an exit) is redacted before it is cut (`redact_line`), so a
cut cannot leave half a secret without the shape that marks it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .secret_text import ARGV_KEYS, ENV_KEYS, Redactor, secret_name

# For single lines redacted before they are cut: replaced in place ("[REDACTED]"), nothing
# learned (what the report's own pass learns is numbered there).
_IN_PLACE = Redactor()
_IN_PLACE.learning = False


# Joins the report's strings into one document, redacted in one pass; a separator no string holds
# (the reports hold no control characters but tab and newline).
_SEP = "\n\0\n"


def redact_report(doc: dict[str, Any], redactor: Redactor | None = None) -> dict[str, Any]:
    """`doc` (report.json) with every secret its strings hold replaced, by `redactor` (the one
    that redacted the lines shown whole, so a secret reads one placeholder) or a new one.

    The strings are redacted as one document, joined by `_SEP`: one search of each kind instead
    of one per string (a report holds thousands). Where that cannot be done exactly (a string
    holding the separator, a key that names a secret or an argument list, a replacement that
    took a separator with it), each string is redacted on its own (`Redactor.value`)."""
    red = redactor or Redactor()
    strings: list[str] = []
    if _collect(doc, strings) and not any(_SEP in s for s in strings):
        joined = _SEP.join(strings)
        red.learn_text(joined)
        parts = red.text(joined).split(_SEP)
        if len(parts) == len(strings):
            rebuilt = _rebuild(doc, iter(parts))
            assert isinstance(rebuilt, dict)
            return rebuilt
    redacted = red.value(doc)
    assert isinstance(redacted, dict)
    return redacted


def _collect(value: object, strings: list[str]) -> bool:
    """Every string of `value` in order into `strings`; False where a key names a secret or an
    environment or argument list (those are redacted field by field)."""
    if isinstance(value, str):
        strings.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if secret_name(str(key)) or ((key in ENV_KEYS or key in ARGV_KEYS) and isinstance(item, list)):
                return False
            if not _collect(item, strings):
                return False
    elif isinstance(value, list):
        return all(_collect(item, strings) for item in value)
    return True


def _rebuild(value: object, parts: Iterator[str]) -> object:
    """`value` with its strings, in `_collect`'s order, taken from `parts`."""
    if isinstance(value, str):
        return next(parts)
    if isinstance(value, dict):
        return {key: _rebuild(item, parts) for key, item in value.items()}
    if isinstance(value, list):
        return [_rebuild(item, parts) for item in value]
    return value


def redact_line(text: str) -> str:
    """One line's secrets replaced in place, before the line is cut to be shown."""
    return _IN_PLACE.text(text)


__all__ = ["Redactor", "redact_line", "redact_report"]
