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

from typing import Any

from .secret_text import Redactor

# For single lines redacted before they are cut: replaced in place ("[REDACTED]"), nothing
# learned (what the report's own pass learns is numbered there).
_IN_PLACE = Redactor()
_IN_PLACE.learning = False


def redact_report(doc: dict[str, Any], redactor: Redactor | None = None) -> dict[str, Any]:
    """`doc` (report.json) with every secret its strings hold replaced, by `redactor` (the one
    that redacted the lines shown whole, so a secret reads one placeholder) or a new one."""
    redacted = (redactor or Redactor()).value(doc)
    assert isinstance(redacted, dict)
    return redacted


def redact_line(text: str) -> str:
    """One line's secrets replaced in place, before the line is cut to be shown."""
    return _IN_PLACE.text(text)


__all__ = ["Redactor", "redact_line", "redact_report"]
