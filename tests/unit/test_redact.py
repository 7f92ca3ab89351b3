"""Redaction (plugins/module_utils/redact.py): every shape issue 18 found leaking, the encoded
forms of a learned secret, map poisoning, redaction before a cut, and a property test with
random secrets at random places. Documents go through the product's own entry points:
``Redactor.for_target`` / ``redact_bundle`` over a work folder laid out like a capture's, the
modules' own functions for the cuts."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.rsky.ingester_capture.plugins.module_utils import manifest as bundle_manifest  # noqa: E402
from ansible_collections.rsky.ingester_capture.plugins.module_utils.redact import (  # noqa: E402
    MAP_FILE,
    RedactError,
    Redactor,
    ordinary,
    redact_bundle,
    secret_name,
)

PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA1Ztq0GB9h3xY2mPq8wQmX7uWJ2cC4bWmQfV2u1Wk9fXo6Vh\n"
    "k3dQm9tVJmXl8pTq6vW1nS0mBr2Y8oPqZxL4eHk7sT5uVw0yR1zA2bC3dE4fG5h\n"
    "Zg==\n"
    "-----END RSA PRIVATE KEY-----\n"
)


def go_escaped(text: str) -> str:
    """As Go's encoding/json writes a string: <, > and & escaped."""
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def forms(secret: str) -> dict[str, str]:
    """The forms a secret may be written in, computed here independently of the redactor."""
    raw = secret.encode()
    found = {
        "raw": secret,
        "json-escaped": json.dumps(secret)[1:-1],
        "go-escaped": go_escaped(json.dumps(secret)[1:-1]),
        "percent-encoded": quote(secret, safe=""),
        "base64": base64.b64encode(raw).decode()[: len(raw) * 8 // 6],
    }
    if unquote(secret) != secret:
        found["percent-decoded"] = unquote(secret)
    return {k: v for k, v in found.items() if len(v) >= 6}


def leaks(secret: str, text: str) -> list[str]:
    return [f"{name} form {value!r}" for name, value in forms(secret).items() if value in text]


def bundle(tmp_path: Path, files: dict[str, str]) -> Path:
    out = tmp_path / "work"
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return out


def read_all(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): p.read_text() for p in sorted(out.rglob("*")) if p.is_file()}


# --- whole documents, across line breaks ----------------------------------------------------


def test_a_pem_key_in_a_yaml_block_ships_no_line_in_the_compose_copy_or_the_diff(tmp_path: Path) -> None:
    """The key is learned whole from the compose config; compose.yml, compose.diff and a log that
    printed it line by line (with docker's timestamps) keep none of its lines."""
    block = "".join(f"        {line}\n" for line in PEM.splitlines())
    compose = "services:\n  ingester:\n    image: x\n    environment:\n      TLS_KEY: |\n" + block + "      A: b\n"
    swapped = compose.replace("image: x", "image: y")
    diff = "".join("-" + ln + "\n" if "image" in ln else " " + ln + "\n" for ln in compose.splitlines())
    log = "".join(f"2026-01-01T00:00:0{i}Z {line}\n" for i, line in enumerate(PEM.splitlines()))
    out = bundle(tmp_path, {"compose.yml": swapped, "compose.diff": diff, "logs/ingester.log": log})
    redactor = Redactor()
    redactor.learn_compose_config({"services": {"ingester": {"environment": {"TLS_KEY": PEM}}}})
    redact_bundle(out, redactor)
    for rel, text in read_all(out).items():
        for line in PEM.splitlines()[1:-1]:
            assert line not in text, f"{line!r} of the key in {rel}:\n{text}"
    assert "A: b" in read_all(out)["compose.yml"] and "image: y" in read_all(out)["compose.yml"]


def test_a_block_value_under_a_secret_name_is_redacted_without_the_structured_source() -> None:
    """The fallback (compose config failed): a `|` or `>` block, quoted and spaced values."""
    text = (
        "services:\n  x:\n    environment:\n"
        "      SIGNING_KEY: >-\n        first half of it\n        second-half-9f2\n"
        '      DB_PASSWORD: "50 Leagues \\"Under\\" the Sea"\n'
        "      SMTP_PW: 'it''s spaced pw'\n"
        "      OTHER: plain\n"
    )
    out = Redactor().text(text)
    for fragment in ("first half", "second-half-9f2", "50 Leagues", "Under", "it''s spaced", "spaced pw"):
        assert fragment not in out, out
    assert "OTHER: plain" in out and "SIGNING_KEY: >-" in out


# --- URLs -------------------------------------------------------------------------------------

URLS = [
    ("postgres://app:pa/ss w0rd@db:5432/app", "pa/ss w0rd"),
    ('redis://:quo"te-pw9@redis:6379/0', 'quo"te-pw9'),
    ("amqp://user:p@ss@w0rd-7@mq.internal:5672/vh", "p@ss@w0rd-7"),
    ("com.example.very-long-scheme-name+tls://u:longscheme-pw1@h.example/x", "longscheme-pw1"),
    ("https://ghp_AbC123tokenXyZ@github.com/org/repo.git", "ghp_AbC123tokenXyZ"),
    ("mongodb+srv://admin:sp ace and/slash#9@cluster0.example.net/db", "sp ace and/slash#9"),
]


@pytest.mark.parametrize(("url", "secret"), URLS, ids=[u.split(":")[0] for u, _ in URLS])
def test_url_userinfo_is_parsed_not_pattern_matched(url: str, secret: str) -> None:
    line = f"2026-01-01T00:00:00Z connecting to {url} now\n"
    redactor = Redactor()
    out = redactor.text(line)
    assert not leaks(secret, out), out
    assert "now" in out, "the text after the URL is kept"
    # Learned: the same password elsewhere (a later line, another file) is replaced too.
    assert secret not in redactor.text(f"echo {secret} done")


def test_a_quoted_url_ends_at_its_closing_quote() -> None:
    line = (
        'Configuration: IngesterConfig { redis_url: "redis://:s3cretpass@redis:6379", '
        'hosts: ["https://relay1.example"] }'
    )
    redactor = Redactor()
    out = redactor.text(line)
    assert 'redis_url: "redis://:[REDACTED-1]@redis:6379", hosts: ["https://relay1.example"]' in out, out
    assert redactor.mapping == {"s3cretpass": "[REDACTED-1]"}


QUERIES = [
    "postgres://app@db/app?sslmode=require&password=qpw-55aa",
    "https://hooks.example/run?token=tok-77bb&x=1",
    "https://blob.example/c/f?sv=2020&sig=sig%2B88cc%3D&se=2030",
    "https://s3.example/b/k?X-Amz-Credential=AKIAXX&X-Amz-Signature=abcdef0123456789",
    "https://api.example/v1?api_key=key-99dd",
    "https://api.example/v1?access_token=at-00ee&secret=sec-11ff",
]


@pytest.mark.parametrize("url", QUERIES)
def test_secret_query_keys_are_redacted_in_logs_and_inspect(url: str) -> None:
    secrets = [part.split("=", 1)[1] for part in url.split("?", 1)[1].split("&")]
    secrets = [s for s in secrets if s not in ("require", "1", "2020", "2030", "AKIAXX")]
    redactor = Redactor()
    log = redactor.text(f"GET {url} 200\n")
    inspected = redactor.value({"Config": {"Env": [f"DATABASE_URL={url}"], "Cmd": ["--upstream", url]}})
    for secret in secrets:
        assert not leaks(secret, log), log
        assert not leaks(secret, json.dumps(inspected)), inspected


# --- names --------------------------------------------------------------------------------------

NAMES = [
    "SMTP_PW",
    "GPG_PASSPHRASE",
    "JWT",
    "SLACK_WEBHOOK",
    "MAILER_PW",
    "PASSPHRASE",
    "WEBHOOK",
    "APIKEY",
    "BEARER",
    "apiKey",
    "DB_PASS",
    "SESSION_COOKIE",
    "X-Api-Key",
    "splunk-token",
    "OAUTH_CLIENT_SECRET",
    "DBPASSWORD",
]


@pytest.mark.parametrize("name", NAMES)
def test_common_secret_spellings_count_and_apply_to_log_lines(name: str) -> None:
    assert secret_name(name)
    secret = f"v4lue-of-{name.lower()}-x"
    out = Redactor().text(f"2026-01-01T00:00:00Z INFO loaded {name}={secret} from env\n")
    assert secret not in out and f"{name}=[REDACTED-" in out and "from env" in out, out


@pytest.mark.parametrize(
    "name", ["INGESTER_MODE", "RUST_LOG", "STOP_SIGNAL", "SandboxKey", "AUTHOR", "KEYBOARD_LAYOUT"]
)
def test_ordinary_names_are_not_secret(name: str) -> None:
    assert not secret_name(name)


# --- encoded forms --------------------------------------------------------------------------


def test_every_encoded_form_of_a_learned_secret_is_replaced() -> None:
    secret = "p@ss/w&rd<9>"  # noqa: S105 - a planted test secret
    redactor = Redactor()
    redactor.learn_env([f"DB_PASSWORD={secret}"])
    basic = base64.b64encode(f"app:{secret}".encode()).decode()
    document = "\n".join(
        [
            f"raw {secret}",
            f"percent-encoded {quote(secret, safe='')} and {quote(secret)}",
            f"json {json.dumps(secret)} go {go_escaped(json.dumps(secret))}",
            "slash-escaped " + json.dumps(secret).replace("/", "\\/"),
            f"base64 {base64.b64encode(secret.encode()).decode()}",
            f"base64 inside x{base64.b64encode(b'ab' + secret.encode()).decode()}",
            f"hex {secret.encode().hex()}",
            "",
        ]
    )
    out = redactor.text(document)
    assert not leaks(secret, out), out
    assert "&rd<9>" not in out and "u0026rd" not in out, out
    # Basic auth: the pair's base64 is learned with the URL's password.
    redactor2 = Redactor()
    redactor2.learn_text(f"DATABASE_URL=postgres://app:{quote(secret, safe='')}@db/app")
    out2 = redactor2.text(f"Authorization: Basic {basic}\nraw {secret}\n")
    assert basic not in out2 and secret not in out2, out2


def test_a_percent_encoded_password_is_replaced_decoded_too() -> None:
    redactor = Redactor()
    out = redactor.text("REDIS_URL=redis://:p%40ss%2Fw0rd@redis:6379\nlater the app printed p@ss/w0rd\n")
    assert "p@ss/w0rd" not in out and "p%40ss%2Fw0rd" not in out, out


# --- JSON documents, field by field ---------------------------------------------------------


def test_inspect_and_events_are_redacted_field_by_field(tmp_path: Path) -> None:
    inspect = [
        {
            "Args": ["--db-password", "argpw-1234", "--token=tokarg-5678"],
            "Config": {
                "Env": ["API_KEY=envkey-9012", "RUST_LOG=info"],
                "Cmd": ["serve", "--api-key", "cmdkey-3456"],
                "Entrypoint": ["/bin/ingester", "--secret=entry-7890"],
                "Labels": {"com.example.deploy-token": "labeltok-1122", "com.docker.compose.service": "ingester"},
            },
            "HostConfig": {"LogConfig": {"Type": "splunk", "Config": {"splunk-token": "splunk-3344-aa", "tag": "x"}}},
            "NetworkSettings": {"SandboxKey": "/var/run/docker/netns/abc123"},
        }
    ]
    event = {
        "Type": "container",
        "Action": "start",
        "Actor": {"ID": "c1", "Attributes": {"com.example.deploy-token": "labeltok-1122", "name": "ingester"}},
    }
    other = dict(
        event, Actor={"ID": "c1", "Attributes": {"SLACK_WEBHOOK": "https://hooks.slack.com/services/T0/B1/evsec55"}}
    )
    out = bundle(
        tmp_path,
        {
            "inspect.json": json.dumps(inspect),
            "inspect-pre.json": json.dumps(inspect),
            "events.jsonl": json.dumps(event) + "\n" + json.dumps(other) + "\n",
            "events-setup.jsonl": json.dumps(event) + "\n",
            "compose-ps.json": json.dumps([{"Name": "x", "Labels": "a=1,com.example.deploy-token=labeltok-1122"}]),
        },
    )
    redact_bundle(out, Redactor())
    texts = read_all(out)
    secrets = [
        "argpw-1234",
        "tokarg-5678",
        "envkey-9012",
        "cmdkey-3456",
        "entry-7890",
        "labeltok-1122",
        "splunk-3344-aa",
    ]
    for rel, text in texts.items():
        for secret in [*secrets, "evsec55"]:
            assert secret not in text, f"{secret} in {rel}: {text}"
    data = json.loads(texts["inspect.json"])
    assert data[0]["Config"]["Env"][1] == "RUST_LOG=info"
    assert data[0]["NetworkSettings"]["SandboxKey"] == "/var/run/docker/netns/abc123"
    assert data[0]["HostConfig"]["LogConfig"]["Config"]["tag"] == "x"
    assert json.loads(texts["events.jsonl"].splitlines()[0])["Actor"]["Attributes"]["name"] == "ingester"


def test_the_manifest_log_account_is_redacted(tmp_path: Path) -> None:
    """docker_logs_error (and any record) reaches manifest.json redacted: the records the
    manifest is made from are redacted with the bundle."""
    out = bundle(tmp_path, {"logs/ingester.log": "hello\n"})
    error = (
        "Error response from daemon: configured logging driver does not support reading "
        "(labels=DB_PASSWORD=logpw-4455 url=redis://:logurl-6677@r)"
    )
    bundle_manifest.record(
        out, {"file": "logs/ingester.log", "argv": ["docker", "logs"], "logs": {"docker_logs_error": error}}
    )
    redact_bundle(out, Redactor())
    document = bundle_manifest.manifest(
        out, host="h", mode="capture", truncated={}, redactions={}, redaction={}, max_bytes=0, build={}
    )
    text = json.dumps(document)
    assert "logpw-4455" not in text and "logurl-6677" not in text, document["logs"]
    assert "does not support reading" in document["logs"]["docker_logs_error"]


# --- a structured source that cannot be read -------------------------------------------------


def test_a_failing_compose_config_is_said_and_the_text_fallback_still_redacts(tmp_path: Path) -> None:
    """A compose file `docker compose config` refuses (an unknown top-level key) is read as text:
    the note says so; quoted, spaced and block values are learned from the text."""
    project = tmp_path / "project"
    project.mkdir()
    compose = project / "docker-compose.yml"
    compose.write_text(
        "services:\n  ingester:\n    image: x\n    environment:\n"
        '      DB_PASSWORD: "spaced pass 42"\n'
        "      TLS_KEY: |\n        line-one-of-key-1\n        line-two-of-key-2\n"
        "not_a_compose_key: [\n"
    )
    (project / ".env").write_text("SMTP_PW=dotenv pw 77\n")
    redactor = Redactor.for_target(None, compose)
    assert any("docker compose config could not be read" in note for note in redactor.notes), redactor.notes
    out = redactor.text("spaced pass 42 | line-one-of-key-1 | line-two-of-key-2 | dotenv pw 77")
    assert out.count("[REDACTED-") == 4, out


# --- nothing learned from noise -----------------------------------------------------------------


def test_a_log_line_cannot_poison_the_map(tmp_path: Path) -> None:
    lines = [
        "2026-01-01T00:00:00Z INFO rsky_ingester: record at://:e@did:plc:x/app.bsky.feed.post/3k",
        "2026-01-01T00:00:01Z INFO rsky_ingester: token: received session: true AUTH_MODE=firehose TOKEN_TTL=3600",
        "thread 'tokio-runtime-worker' panicked at rsky-ingester/src/firehose.rs:123:45:",
        "called `Option::unwrap()` on a `None` value",
    ]
    out = bundle(tmp_path, {"logs/ingester.log": "\n".join(lines) + "\n"})
    redactor = Redactor()
    redact_bundle(out, redactor)
    assert redactor.mapping == {}, redactor.mapping
    text = read_all(out)["logs/ingester.log"].splitlines()
    assert text[2:] == lines[2:], "the panic message is intact"
    assert "did:plc:x/app.bsky.feed.post/3k" in text[0]
    # Saved and loaded again: the next capture is not poisoned either.
    state = tmp_path / "state"
    redactor.save(state / MAP_FILE)
    assert Redactor.load(state / MAP_FILE).text("every e stays") == "every e stays"


def test_a_poisoned_map_is_cleaned_on_load_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / MAP_FILE
    poisoned = {"e": "[REDACTED-1]", "true": "[REDACTED-2]", "info": "[REDACTED-3]", "s3cretpass": "[REDACTED-4]"}
    path.write_text(json.dumps({"mapping": poisoned}))
    redactor = Redactor.load(path)
    assert redactor.mapping == {"s3cretpass": "[REDACTED-4]"}
    assert redactor.notes and "3 entries ignored" in redactor.notes[0], redactor.notes
    assert redactor.text("info: true e s3cretpass") == "info: true e [REDACTED-4]"
    # New placeholders never reuse a kept number.
    redactor.add_secret("another-secret-1")
    assert redactor.mapping["another-secret-1"] == "[REDACTED-5]"


def test_a_map_whose_values_are_not_placeholders_is_refused(tmp_path: Path) -> None:
    # A map that "replaces" a secret by itself would ship it: a value must be one of our placeholders.
    path = tmp_path / MAP_FILE
    path.write_text(json.dumps({"mapping": {"s3cretpass": "s3cretpass"}}))
    with pytest.raises(RedactError, match="not placeholders"):
        Redactor.load(path)


def test_a_map_others_can_write_or_a_link_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.json"
    real.write_text(json.dumps({"mapping": {"s3cretpass": "[REDACTED-1]"}}))
    link = tmp_path / MAP_FILE
    link.symlink_to(real)
    with pytest.raises(RedactError, match="not a regular file"):
        Redactor.load(link)
    link.unlink()
    link.write_text(real.read_text())
    link.chmod(0o666)
    with pytest.raises(RedactError, match="others can write"):
        Redactor.load(link)
    link.chmod(0o600)
    assert Redactor.load(link).mapping == {"s3cretpass": "[REDACTED-1]"}


@pytest.mark.parametrize("value", ["e", "true", "info", "6379", "firehose", "localhost", "Secret"])
def test_ordinary_values_are_never_learned(value: str) -> None:
    assert ordinary(value)
    redactor = Redactor()
    redactor.learn_env([f"API_TOKEN={value}"])
    assert redactor.mapping == {}
    assert redactor.env_list([f"API_TOKEN={value}"]) == ["API_TOKEN=[REDACTED]"], "still hidden in its place"


# --- redact first, then cut -------------------------------------------------------------------


def test_redact_first_then_cut() -> None:
    """A secret that the cut to the last 2000 characters would halve is replaced whole."""
    data = ("x" * 5000 + " password=cut-secret-123456789 " + "y" * 1990 + "\n").encode()
    tail = Redactor().tail(data, 2000)
    assert len(tail) == 2000
    for n in range(6, len("cut-secret-123456789") + 1):
        assert "cut-secret-123456789"[-n:] not in tail, tail[:60]


def test_debug_build_status_cuts_its_tail_after_redacting(tmp_path: Path) -> None:
    from ansible_collections.rsky.ingester_capture.plugins.modules import debug_build

    class Module:
        def __init__(self) -> None:
            self.params = {"poll": 0}

    out = tmp_path / "work"
    out.mkdir()
    secret = "buildtoken-abcdefghijklmnop"  # noqa: S105 - a planted test secret
    (out / "build.log").write_text("Step 1/2 : ARG GITHUB_TOKEN=" + secret + " " + "z" * 1980 + "\n")
    (out / ".build.rc").write_text("0\n")
    (out / ".build.json").write_text(
        json.dumps({"started": 0, "argv": ["docker", "build"], "revision": "r", "image": "i"})
    )
    result = debug_build.status(Module(), out, Redactor())  # type: ignore[arg-type]
    for n in range(6, len(secret) + 1):
        assert secret[-n:] not in result["tail"], result["tail"][:80]
    assert secret not in result["step"]


def test_verify_probe_redacts_a_kept_line_before_cutting_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from ansible_collections.rsky.ingester_capture.plugins.modules import verify_probe

    secret = "verifysecret-" + "q" * 30
    line = "2026-01-01T00:00:00.000000000Z CRITICAL: " + "w" * 470 + " api_token=" + secret + "\n"

    class Logs:
        def __init__(self, *args: Any, **kw: Any) -> None:
            self.stdout = iter([line.encode()])

        def wait(self) -> int:
            return 0

    # The module streams docker logs through docker_cli.stream_lines (a Popen it reads as it comes).
    monkeypatch.setattr(verify_probe, "stream_lines", Logs)
    found = verify_probe.scan_logs("c", None, Redactor().text)
    (kept,) = found["exit_lines"]
    for n in range(6, len(secret) + 1):
        assert secret[:n] not in kept["text"], kept["text"][-60:]


def test_bundle_command_returns_a_tail_redacted_before_the_cut(tmp_path: Path) -> None:
    """The module itself (run as Ansible runs it): the last 2000 characters of its file."""
    secret = "bundlesecret-0123456789"  # noqa: S105 - a planted test secret
    work = tmp_path / "work"
    args = {
        "ANSIBLE_MODULE_ARGS": {
            "project_dir": str(tmp_path),
            "state_dir": str(tmp_path / "state"),
            "work_dir": str(work),
            "file": "out.log",
            "argv": ["printf", "%s", "client_secret=" + secret + " " + "k" * 1990],
            "container": "ingester-capture-no-such-container",
        }
    }
    (tmp_path / "args.json").write_text(json.dumps(args))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ansible_collections.rsky.ingester_capture.plugins.modules.bundle_command",
            str(tmp_path / "args.json"),
        ],
        cwd=REPO / "collections",
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(REPO / "collections"), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert proc.stdout.strip().startswith("{"), proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["rc"] == 0, result
    for n in range(6, len(secret) + 1):
        assert secret[-n:] not in result["tail"], result["tail"][:60]


# --- random secrets at random places ------------------------------------------------------

SECRET_ALPHABET = st.characters(min_codepoint=32, max_codepoint=126) | st.sampled_from(list("@/:\" %+=&\\'#"))


def _planted(secret: str, place: str) -> dict[str, str]:
    """A work folder where ``secret`` sits in one secret-shaped place, and is echoed elsewhere."""
    echo = "2026-01-01T00:00:02Z INFO echo " + secret + " and " + base64.b64encode(secret.encode()).decode() + "\n"
    echo += "percent " + quote(secret, safe="") + " json " + json.dumps(secret) + "\n"
    files = {"logs/ingester.log": "2026-01-01T00:00:00Z INFO start\n" + echo}
    if place == "env":
        files["inspect.json"] = json.dumps([{"Config": {"Env": ["APP_PASSWORD=" + secret]}}])
        files["compose.yml"] = "services:\n  x:\n    env_file: .env\n"
        files["env.txt"] = "APP_PASSWORD=" + secret + "\n"
    elif place == "url":
        files["logs/ingester.log"] += (
            "2026-01-01T00:00:03Z connecting to postgres://app:" + secret + "@db.internal:5432/app\n"
        )
    elif place == "query":
        files["logs/ingester.log"] += "GET https://api.example/v1?x=1&token=" + quote(secret, safe="") + "&y=2 200\n"
    elif place == "yaml-block":
        files["compose.yml"] = (
            "services:\n  x:\n    environment:\n      TLS_KEY: |\n        " + secret + "\n      A: b\n"
        )
    elif place == "json":
        files["inspect.json"] = json.dumps([{"Config": {"Labels": {"com.example.api_token": secret}}}])
        files["logs/ingester.log"] += '{"level":"info","api_token":' + json.dumps(secret) + "}\n"
    return files


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    secret=st.text(SECRET_ALPHABET, min_size=8, max_size=40).filter(
        lambda s: s == s.strip() and not ordinary(s) and "://" not in s and "[REDACTED" not in s
    ),
    place=st.sampled_from(["env", "url", "query", "yaml-block", "json"]),
)
def test_no_form_of_a_random_secret_survives(tmp_path_factory: pytest.TempPathFactory, secret: str, place: str) -> None:
    out = bundle(tmp_path_factory.mktemp("h"), _planted(secret, place))
    redact_bundle(out, Redactor())
    for rel, text in read_all(out).items():
        assert not leaks(secret, text), f"{place}: {leaks(secret, text)} in {rel}:\n{text}"


def test_a_large_file_is_redacted_in_overlapping_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file larger than a block: a key that crosses a block's edge is still replaced whole."""
    from ansible_collections.rsky.ingester_capture.plugins.module_utils import redact

    monkeypatch.setattr(redact, "BLOCK", 4096)
    monkeypatch.setattr(redact, "OVERLAP", 1024)
    filler = "".join(f"2026-01-01T00:00:00Z INFO line {n}\n" for n in range(115))  # the key crosses 4096
    text = filler + "TLS_KEY: |\n" + "".join(f"  {line}\n" for line in PEM.splitlines()) + filler * 3
    text += "late echo api_token=late-token-77aa and again late-token-77aa\n"
    out = bundle(tmp_path, {"logs/ingester.log": text})
    redact_bundle(out, Redactor())
    result = read_all(out)["logs/ingester.log"]
    for line in PEM.splitlines()[1:-1]:
        assert line not in result
    assert "late-token-77aa" not in result
    assert result.count("INFO line 114") == 4, "every line kept once"


def test_every_secret_word_is_found_by_the_name_scan() -> None:
    """The assignment scan starts from _NAME_HINTS: each secret word must contain one."""
    from ansible_collections.rsky.ingester_capture.plugins.module_utils import secret_text

    words = [*secret_text.SECRET_WORDS, *secret_text.SECRET_PARTS]
    missing = [w for w in words if not any(h in w.lower() for h in secret_text._NAME_HINTS)]
    assert not missing, missing


def test_source_snippets_are_redacted_in_place_never_learned_from(tmp_path: Path) -> None:
    """Code is no secret-shaped source: `let token = parse(` must not replace every `parse(`."""
    snippet = 'let token = parse(&cfg)?;\nlet api_key = "hard-coded-key-99";\n'
    out = bundle(
        tmp_path,
        {"source/rsky-ingester/src/main.rs#L1-L2.txt": snippet, "logs/ingester.log": "calling parse(&cfg) now\n"},
    )
    redactor = Redactor()
    redact_bundle(out, redactor)
    texts = read_all(out)
    assert "calling parse(&cfg) now" in texts["logs/ingester.log"]
    assert "hard-coded-key-99" not in texts["source/rsky-ingester/src/main.rs#L1-L2.txt"]
    assert redactor.mapping == {}


def test_a_url_written_without_its_scheme_is_learned_from_the_compose_file(tmp_path: Path) -> None:
    """REDIS_URL given as `:password@redis:6379` (the configuration error the service then prints
    back in its Configuration line) is a URL password too: learned from the compose file, replaced
    in the log that prints it, and in any form of it elsewhere."""
    secret = "Sw0rdf1sh-Redis-77"  # noqa: S105 - a planted test secret
    compose = f'services:\n  ingester:\n    image: x\n    environment:\n      REDIS_URL: ":{secret}@redis:6379"\n'
    redactor = Redactor()
    redactor.learn_text(compose)
    log = (
        f'Configuration: IngesterConfig {{ redis_url: ":{secret}@redis:6379", relay_hosts: [] }}\n'
        f"auth refused for {secret}\n"
    )
    out = redactor.text(log)
    assert not leaks(secret, out), out
    assert out.count("[REDACTED-1]") == 2
    assert not leaks(secret, redactor.text(compose))


KNOWN = [
    "ghp_Zq4Xv8Lr2Tn6Wm0Ys3Kb7Hd1Jf5Gc9Pa2Ue8",
    "ghs_Yq4Xv8Lr2Tn6Wm0Ys3Kb7Hd1Jf5Gc9Pa2Ue9",
    "github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ01234567",
    "glpat-Ab3dEf6hIj9kLm2nOp5q",
    "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "AKIAIOSFODNN7EXAMPL3",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
]


@pytest.mark.parametrize("token", KNOWN, ids=[t[:5] for t in KNOWN])
def test_a_token_whose_format_names_it_is_redacted_anywhere(token: str) -> None:
    """No secret name, no shape around it: a GitHub, GitLab, Slack, AWS, Stripe or Google token, or
    a JWT, quoted in an error message, is known by its own format, and learned."""
    redactor = Redactor()
    out = redactor.text(f'ERROR ingester: request refused for "{token}" (401)\nretrying with {token}\n')
    assert not leaks(token, out), out
    assert out.count("[REDACTED-1]") == 2


@pytest.mark.parametrize("text", [
    "see github_pat_ in the docs",
    "xghp_Zq4Xv8Lr2Tn6Wm0Ys3Kb7Hd1Jf5Gc9Pa2Ue8",  # inside a longer word
    "AKIAIOSFODNN7EXAMPL3X",  # longer than an access key id
    "the eyJ prefix, alone",
    "skip sk_live_ short",
])
def test_near_misses_of_token_formats_are_left_alone(text: str) -> None:
    assert Redactor().text(text) == text


@pytest.mark.parametrize("line", [
    "command: redis-server --requirepass {s} --appendonly yes",  # redis-server's own flag
    "command: my-tool --password {s}",  # a flag after a hyphenated command name
    "ExecStart=/usr/bin/rsky-ingester --api-token {s}",
    "redis-cli -a {s} ping",
    'test: ["CMD", "redis-cli", "-a", "{s}", "ping"]',
    "curl -fsS -u admin:{s} https://api.example/health",
    "mysqladmin -uroot -p{s} ping",
    "docker login -p {s} registry.example",
    "requirepass: {s}",
])
def test_password_flags_of_commands_are_redacted(line: str) -> None:
    secret = "flagPw-Adv-9191"  # noqa: S105 - a planted test secret
    out = Redactor().text(line.format(s=secret))
    assert not leaks(secret, out), out


def test_a_healthchecks_argument_list_is_redacted_field_by_field() -> None:
    """docker inspect's Config.Healthcheck.Test and the compose config's healthcheck.test."""
    redactor = Redactor()
    doc = {"Config": {"Healthcheck": {"Test": ["CMD", "redis-cli", "-a", "hcPw-Adv-9292", "ping"]}},
           "healthcheck": {"test": ["CMD-SHELL", "redis-cli -a hcPw-Adv-9393 ping"]},
           "Cmd": ["mysql", "-pmyPw-Adv-9494"]}
    out = json.dumps(redactor.value(doc))
    for secret in ("hcPw-Adv-9292", "hcPw-Adv-9393", "myPw-Adv-9494"):
        assert not leaks(secret, out), out
    assert '"CMD", "redis-cli", "-a", "[REDACTED-' in out and '"ping"' in out


@pytest.mark.parametrize("line", [
    "run the -a flag of something else -a xyz123456",
    "curl https://example.internal/health -o out.txt",
    "redis-server --appendonly yes --port 6379",
    "docker-compose up -d --remove-orphans",
])
def test_flags_that_are_not_password_flags_are_left_alone(line: str) -> None:
    assert Redactor().text(line) == line
