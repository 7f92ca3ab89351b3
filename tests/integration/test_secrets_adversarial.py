"""No secret leaves the host, in any of its forms, against an adversarial corpus (issue 18).

tests/integration/data/secrets/ holds the corpus (corpus.json: 46 secret shapes) and where it is
planted: a compose file (YAML ``|`` and ``>`` blocks, quoted, spaced and plain values, URLs with
``/``, space, ``"`` and raw ``@`` in their passwords, a long scheme, none, a token as the user, a
token known by its format, secret query keys, labels, command arguments, password flags of
commands (``redis-server --requirepass``, ``redis-cli -a`` in a healthcheck), json-file log
options, a profile-only service), an env_file and a ``.env``. The stand-in prints some of them in
its log lines (the Configuration line, a panic message with ``NAME=value``, ``token=``, a URL
password and ``at://:e@did:plc:x``); Docker carries the labels into its events.

The product runs through its public interface, as in test_secrets_layouts.py: capture.yml
(``--check --diff -v`` and ``-v``), verify.yml, rollback.yml (``--check --diff`` and ``--diff``),
ansible-runner jobs, and the scheduled ``python -m collector.runner``. No form of any secret
(raw, JSON/Go-escaped, percent-encoded or -decoded, base64) may appear in the play output, the
runner artifacts, the fetched bundle or its tarball; and the saved map learned nothing ordinary.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest

from standin.stack import PROD_IMAGE, Stack
from tests.support.inventories import write_inventory
from tests.support.playbooks import REPO, run_playbook
from tests.support.secrets import VERIFY_QUICK, run_with_ansible_runner, walk

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parent / "data" / "secrets"
BASIC_USER = "svc"


@dataclass(frozen=True)
class Planted:
    """One secret of the corpus and every form it must not leak in."""

    key: str
    what: str
    value: str
    fragments: tuple[str, ...]

    def needles(self) -> dict[str, str]:
        raw = self.value.encode()
        escaped = json.dumps(self.value)[1:-1]
        found = {
            "raw": self.value,
            "json-escaped": escaped,
            "go-escaped": escaped.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e"),
            "percent-encoded": quote(self.value, safe=""),
            "percent-decoded": unquote(self.value),
        }
        # base64 at each alignment inside a longer encoded string (a Basic credential's user:password):
        # only the characters the secret's own bytes decide.
        for pad in range(3):
            encoded = base64.b64encode(b"\0" * pad + raw).decode()
            found[f"base64+{pad}"] = encoded[(pad * 8 + 5) // 6 : (pad + len(raw)) * 8 // 6]
        found.update({f"fragment {i}": fragment for i, fragment in enumerate(self.fragments)})
        # Short fragments of base64 or hex could occur by chance in unrelated text.
        return {k: v for k, v in found.items() if len(v) >= 8 or k == "raw"}


def corpus() -> list[Planted]:
    data = json.loads((DATA / "corpus.json").read_text())
    return [
        Planted(key, item["what"], item["value"], tuple(item.get("fragments", ())))
        for key, item in data.items()
        if not key.startswith("_")
    ]


def fill(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace(f"@@{key}@@", value)
    missing = re.findall(r"@@[a-z0-9_]+@@", template)
    assert not missing, f"tokens of the template with no value: {missing}"
    return template


def plant(stack: Stack, secrets: list[Planted]) -> bytes:
    """The corpus's compose file, env_file and .env over the stack's; the compose file's bytes."""
    values = {s.key: s.value for s in secrets}
    values["basic_b64"] = base64.b64encode(f"{BASIC_USER}:{values['basic_password']}".encode()).decode()
    values.update(
        project=stack.project,
        container=stack.container,
        redis_container=stack.redis_container,
        prefix=stack.prefix,
        image=PROD_IMAGE,
    )
    (stack.project_dir / "secrets.env").write_text(fill((DATA / "secrets.env.in").read_text(), values))
    (stack.project_dir / ".env").write_text(fill((DATA / "dot.env.in").read_text(), values))
    # The debug build's Dockerfile: its build.log, and the debug image rollback.yml looks for.
    dockerfile = stack.rsky_dir / "rsky-ingester" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + fill((DATA / "Dockerfile.append.in").read_text(), values))
    data = fill((DATA / "compose.yml.in").read_text(), values).encode()
    stack.compose_path.write_bytes(data)
    return data


def leaks_in(secrets: list[Planted], texts: dict[str, str]) -> list[str]:
    found = []
    for secret in secrets:
        for form, needle in secret.needles().items():
            places = [where for where, text in texts.items() if needle in text]
            if places:
                text = texts[places[0]]
                at = text.find(needle)
                around = text[max(at - 80, 0) : at + len(needle) + 20].replace("\n", "\\n")
                found.append(
                    f"{secret.what} ({form} {needle!r}) in {len(places)} place(s): {places[:4]}\n    ...{around}..."
                )
    return found


def test_no_form_of_any_secret_leaves_the_host(
    stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]
) -> None:
    dest, state = capture_paths
    secrets = corpus()
    assert len(secrets) >= 30
    stack: Stack = stack_factory("all-panicked", exit_after_ms=1500)
    original = plant(stack, secrets)
    stack.up()
    stack.wait_running()
    inventory = write_inventory(tmp_path / "inv.yml", stack, dest=dest, state=state)

    # The secrets are really there to leak: in the running container, its labels and log options.
    inspected = json.dumps(stack.inspect())
    for key in ("label_token", "cmd_api_key", "logopt_url", "env_file_key", "passphrase", "pem_body_2"):
        value = next(s.value for s in secrets if s.key == key)
        assert value in inspected, f"{key} is not in the container's inspect document"
    stack.wait_restarts(1)
    assert "logline-Adv-2626" in stack.logs().text, "the stand-in did not print the planted log line"

    outputs: dict[str, str] = {}
    problems: list[str] = []

    def play(label: str, playbook: str, *args: str, expect_ok: bool = True, **extra: Any) -> None:
        result = run_playbook(playbook, inventory, *args, extra_vars=extra or None)
        outputs[f"output of {label}"] = result.out
        if expect_ok and result.rc != 0:
            problems.append(f"{label} exited {result.rc}: {result.out[-1500:]}")

    play("capture.yml --check --diff -v", "capture.yml", "--check", "--diff", "-v")
    play("capture.yml -v", "capture.yml", "-v")
    play("verify.yml -v", "playbooks/verify.yml", "-v", expect_ok=False, **VERIFY_QUICK)
    play("rollback.yml --check --diff -v", "playbooks/rollback.yml", "--check", "--diff", "-v")
    # Removing the debug image inspects it first: its ENV must not reach the output either.
    play("rollback.yml --diff -v", "playbooks/rollback.yml", "--diff", "-v", rollback_remove_debug_image=True)
    if stack.compose_path.read_bytes() != original:
        problems.append("rollback.yml did not restore the compose file byte for byte")

    runs = tmp_path / "runner"
    runs.mkdir()
    for name, playbook in (("capture", "capture.yml"), ("rollback", "playbooks/rollback.yml")):
        status, rc = run_with_ansible_runner(runs / name, playbook, inventory, "--diff")
        if status != "successful":
            problems.append(f"ansible-runner {playbook}: {status} rc {rc}")

    # The scheduled run: what schedule.yml's timer or cron entry starts.
    verify_runs = tmp_path / "verify-runs"
    argv = [sys.executable, "-m", "collector.runner", "-i", str(inventory), "--artifacts", str(verify_runs)]
    for key, value in VERIFY_QUICK.items():
        argv += ["-e", f"{key}={value}"]
    scheduled = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=600, check=False, stdin=subprocess.DEVNULL
    )
    outputs["output of python -m collector.runner"] = scheduled.stdout + scheduled.stderr
    if not scheduled.stdout.startswith("verify "):
        problems.append(f"collector.runner gave no verdict line: {scheduled.stdout} {scheduled.stderr[-800:]}")

    texts = {**outputs, **walk(dest, "controller"), **walk(runs, "ansible-runner"), **walk(verify_runs, "verify-runs")}
    leaks = leaks_in(secrets, texts)
    assert not leaks, "\n".join([*leaks, "(other problems: " + ("; ".join(problems) or "none") + ")"])

    # Not vacuous: every surface was produced, and the evidence is still readable.
    assert not problems, "\n".join(problems)
    bundles = sorted(dest.glob("*/*/manifest.json"))
    assert bundles, "no bundle with a manifest was fetched"
    assert list(dest.glob("*/*.tar.gz")), "no bundle tarball was fetched"
    assert any(w.endswith("job_events") or "/job_events/" in w for w in texts), "no ansible-runner job_events"
    log = (bundles[-1].parent / "logs" / "ingester.log").read_text()
    assert "Message: connect failed SMTP_PW=[REDACTED-" in log, "the panic message is still readable"
    assert "at://:[REDACTED]@did:plc:x via" in log, "the at:// URI is hidden in its place only"

    # Nothing learned from noise: the saved map holds no short or ordinary value.
    (map_file,) = state.glob("*/redaction-map.json")
    mapping = json.loads(map_file.read_text())["mapping"]
    ordinary = [k for k in mapping if len(k) < 6 or k.lower() in ("true", "info", "false")]
    assert not ordinary, ordinary
    assert stack.inspect()["Config"]["Image"] == PROD_IMAGE
