"""Secrets planted in every place a capture reads never reach the controller unredacted."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest

from standin.stack import Stack
from tests.support.inventories import write_inventory
from tests.support.playbooks import run_playbook

pytestmark = pytest.mark.integration

SECRETS = {
    "REDIS_URL password": "s3cretpass",  # the stand-in prints REDIS_URL whole, as the real one does
    "sidecar password": "s3cretpass",
    "profiled service token": "mon-t0ken-5f1d2c",
    "API key env": "ak-9f8e7d6c5b4a",
    "AWS secret env": "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY",
    "URL password in a plain env": "urlpw-77aa",
    "URL password in the build": "buildpw-5599",
}


def test_no_secret_leaves_the_host(stack_factory: Any, tmp_path: Path, capture_paths: tuple[Path, Path]) -> None:
    dest, state = capture_paths
    stack: Stack = stack_factory(
        "hypothetical-task-error",
        exit_after_ms=1500,
        env={
            "INGESTER_API_KEY": SECRETS["API key env"],
            "AWS_SECRET_ACCESS_KEY": SECRETS["AWS secret env"],
            "UPSTREAM_MIRROR": f"https://mirror:{SECRETS['URL password in a plain env']}@relay.invalid/x",
        },
    )
    dockerfile = stack.rsky_dir / "rsky-ingester" / "Dockerfile"
    dockerfile.write_text(
        dockerfile.read_text()
        + f'\nLABEL upstream="redis://builder:{SECRETS["URL password in the build"]}@redis:6379/0"\n'
    )
    stack.up()
    inventory = write_inventory(
        tmp_path / "i.yml",
        stack,
        dest=dest,
        state=state,
        # A user pattern: the repo cursors the stand-in logs (group 1 is replaced).
        capture_redact_patterns=[r"cursor: (did:plc:[a-z0-9]+)"],
    )

    result = run_playbook("capture.yml", inventory, "-v")

    assert result.rc == 0, result.out[-4000:]
    (bundle,) = [p for p in dest.glob("*/*") if p.is_dir()]
    (tarball,) = list(dest.glob("*/*.tar.gz"))
    texts: dict[str, str] = {"ansible output": result.out}
    for path in bundle.rglob("*"):
        if path.is_file():
            texts[str(path.relative_to(bundle))] = path.read_text(errors="replace")
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            if handle is not None:
                texts[f"tar:{member.name}"] = handle.read().decode(errors="replace")

    leaks = [
        f"{what} ({secret}) in {where}"
        for what, secret in SECRETS.items()
        for where, text in texts.items()
        if secret in text
    ]
    assert not leaks, leaks
    cursors = [where for where, text in texts.items() if re.search(r"cursor: did:plc:[a-z0-9]+", text)]
    assert not cursors, f"user pattern not applied in {cursors}"

    # The evidence is still readable: the same secret has the same placeholder everywhere.
    mapping = json.loads(next(state.glob("*/redaction-map.json")).read_text())["mapping"]
    placeholder = mapping[SECRETS["REDIS_URL password"]]
    assert f"redis://:{placeholder}@redis:6379" in texts["logs/ingester.log"]
    assert placeholder in texts["inspect.json"] and placeholder in texts["compose.yml"]
    assert mapping[SECRETS["URL password in the build"]] in texts["build.log"]
    assert mapping[SECRETS["API key env"]] in texts["inspect.json"]
    assert (next(state.glob("*/redaction-map.json")).stat().st_mode & 0o077) == 0, "the map must be private"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["redaction"]["mapping_kept_on_host"] is True
    assert sum(f["redactions"] for f in manifest["files"]) > 0
    # Nothing of the mapping reaches the controller.
    assert not list(dest.rglob("redaction-map.json"))
