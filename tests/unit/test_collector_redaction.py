"""A log captured by hand never went through a host's redaction: what the collector writes and
prints from it (report.json, report.md, report.html, the summary on stdout, as text and as JSON)
holds none of its secrets, in the shapes real teams have them and in an attacker's, and one
secret reads one placeholder everywhere. The rules are the host's own (`secret_text`)."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path
from urllib.parse import quote

from collector.secret_text import Redactor
from tests.support.cli import PYTHON, REPO, run
from tests.support.fixtures import LOGS

BASE = LOGS / "handmade-all-panicked-prod.docker-ts.log"
GITHUB = "ghp_Zq4Xv8Lr2Tn6Wm0Ys3Kb7Hd1Jf5Gc9Pa2Ue8"
AWS = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ8rT4Lp"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJpbmdlc3RlciJ9.Qm9vZnVsbHlTaWduZWQ"
REDIS = "Sw0rdf1sh-Redis-77"  # a REDIS_URL given without its scheme: ":password@host:port"
QUERY = "q9V2m7R4x1L8"
FLAG = "tk-8c1f0e5d9b7a"
SECRETS = (GITHUB, AWS, JWT, REDIS, QUERY, FLAG)


def _line(ts: str, text: str) -> str:
    return f"2026-11-29T10:02:{ts}Z {text}\n"


def log_with_secrets(tmp_path: Path) -> Path:
    """The fixture's crash loop, then one more run that prints secrets where the service and its
    libraries can: the Configuration line (Debug of the config), a panic message quoting an
    environment, an error quoting a request, a relay URL with a query, a command line echoed."""
    run_ = [
        _line("00.000000001", "Starting rsky-ingester"),
        _line("00.100000000", f'Configuration: IngesterConfig {{ redis_url: ":{REDIS}@redis:6379", '
                              f'relay_hosts: ["https://relay.example/xrpc?token={QUERY}"], auth_token: "{GITHUB}" }}'),
        _line("00.200000000", f"\x1b[33m WARN\x1b[0m ingester: retrying with --api-token {FLAG} against redis"),
        _line("00.300000000", f"\x1b[2mAWS_SECRET_ACCESS_KEY\x1b[0m={AWS} loaded"),
        _line("01.000000000", "thread 'main' panicked at rsky-ingester/src/main.rs:30:10:"),
        _line("01.000000001", f'called `Result::unwrap()` on an `Err` value: "Authorization: Bearer {JWT} '
                              f'rejected for auth_token {GITHUB}"'),
        _line("01.000000002", "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace"),
    ]
    log = tmp_path / "by-hand.log"
    log.write_text(BASE.read_text() + "".join(run_))
    return log


def forms(secret: str) -> list[str]:
    """The secret as a report could carry it: raw, JSON-escaped, percent-encoded, base64."""
    return [secret, json.dumps(secret)[1:-1], quote(secret, safe=""), base64.b64encode(secret.encode()).decode()]


def test_a_bare_logs_secrets_stay_out_of_every_report_and_the_summary(tmp_path: Path) -> None:
    log = log_with_secrets(tmp_path)
    assert all(s in log.read_text() for s in SECRETS)  # the log holds them, as real logs do
    out = tmp_path / "out"
    text = run("-m", "collector", "summarize", "--log", str(log), "--out", str(out))
    as_json = run("-m", "collector", "summarize", "--log", str(log), "--out", str(tmp_path / "o2"), "--format", "json")
    assert text.returncode == as_json.returncode == 10, text.stderr
    written = {name: (out / name).read_text() for name in ("report.json", "report.md", "report.html")}
    written["stdout"], written["stdout --format json"] = text.stdout, as_json.stdout
    for where, body in written.items():
        for secret in SECRETS:
            for form in forms(secret):
                assert form not in body, f"{where} holds {form!r}"
    doc = json.loads(written["report.json"])
    # the last run's panic is the report's, with its message redacted, not dropped
    panic = json.dumps(doc["panic"])
    assert "main.rs:30:10" in panic and "REDACTED" in panic
    # one secret, one placeholder: the credential in the panic message (the verdict's, the
    # panic's) and in the lines before the exit, which are redacted before they are cut
    marks = re.findall(r"Authorization: (\[REDACTED[^\]]*\])", written["report.json"])
    assert len(marks) >= 3 and len(set(marks)) == 1, marks
    before = [p["text"] for r in doc["runs"] for p in r["previous_lines"]]
    assert any(f"Authorization: {marks[0]}" in t for t in before), before


def test_marks_already_left_stay_as_they_are() -> None:
    """What the service (`:<redacted>@`) or the host (`[REDACTED-3]`) already hid is not a secret."""
    redactor = Redactor()
    for line in ('redis_url: "redis://:<redacted>@redis:6379"', "AUTH_TOKEN=[REDACTED-3]", "password: ********"):
        assert redactor.text(line) == line
    assert redactor.mapping == {}


def test_a_url_without_its_scheme_is_redacted_and_learned() -> None:
    """REDIS_URL=:password@redis:6379 (the configuration error's very shape) on the host too."""
    redactor = Redactor()
    assert redactor.text(f"REDIS_URL=:{REDIS}@redis:6379") == "REDIS_URL=:[REDACTED-1]@redis:6379"
    assert redactor.text(f"auth failed: {REDIS}") == "auth failed: [REDACTED-1]"
    for ordinary in ("git@github.com:org/repo.git", "registry:5000/img@sha256:abcd", "alice@example.com",
                     "at://did:plc:abc/app.bsky.feed.post/3k", "src/main.rs:30:10"):
        assert Redactor().text(ordinary) == ordinary


def test_standard_input_is_redacted_the_same(tmp_path: Path) -> None:
    """`summarize --log -` fed the log through a real pipe: nothing it writes or prints holds them."""
    log = log_with_secrets(tmp_path)
    out = tmp_path / "piped"
    proc = subprocess.run([PYTHON, "-m", "collector", "summarize", "--log", "-", "--out", str(out)],
                          input=log.read_bytes(), capture_output=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    assert proc.returncode == 10, proc.stderr
    reports = "".join((out / n).read_text() for n in ("report.json", "report.md", "report.html"))
    everything = proc.stdout.decode() + reports
    for secret in SECRETS:
        assert secret not in everything
