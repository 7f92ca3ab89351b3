#!/usr/bin/python
# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
"""Redact the bundle on the host, cap its size, write the manifest and the tarball."""

from __future__ import annotations

DOCUMENTATION = r"""
module: seal
short_description: Redact the bundle on the host, cap its size, write manifest.json and the tarball
description:
  - Every file of the capture's work folder is redacted in place before anything leaves the host. Secrets are learned
    from the compose config of every profile (C(docker compose --profile '*' config --format json)), the container's
    C(docker inspect) environment, the compose file and by pattern (URL passwords, secret-named variables,
    O(patterns)); the same secret gets the same placeholder everywhere, and the mapping stays on the host.
  - With O(collect), first gathers the host evidence as M(rsky.ingester_capture.collect) does, in the same module run
    (while the redactor learns what to redact), so both steps cost one module run.
  - Logs are cut, newest part kept, until the bundle fits O(max_bytes); C(manifest.json) says what was cut, what
    made each file, and the built commit (C(build.commit), C(git rev-parse HEAD) of O(build_context)).
version_added: 0.1.0
author: ingester-capture contributors (@blacksky-algorithms)
requirements:
  - Python 3.8 or newer on the host (standard library only)
  - the docker CLI on the host, talking to the Docker engine
  - Docker Compose v2 (C(docker compose)) on the host
extends_documentation_fragment:
  - rsky.ingester_capture.attributes
  - rsky.ingester_capture.work
  - rsky.ingester_capture.target
options:
  tarball:
    description: The tarball to write.
    type: path
    required: true
  patterns:
    description: Extra regular expressions to redact; a group, if any, is what is replaced.
    type: list
    elements: str
    default: []
  max_bytes:
    description: Bundle size cap (0 for none).
    type: int
    default: 536870912
  host:
    description: The host's name for the manifest.
    type: str
    default: ""
  mode:
    description: The pass's mode for the manifest.
    type: str
    choices: [capture, observe]
    default: capture
  build_context:
    description: The debug image's build context, relative to O(project_dir); its git HEAD is recorded. Empty for none.
    type: str
    default: ""
  collect:
    description: Gather the host evidence first (M(rsky.ingester_capture.collect)'s files, with O(mode) in C(host.json)).
    type: bool
    default: false
attributes:
  check_mode:
    support: partial
    details: >-
      In check mode nothing is redacted, written or packed
      and the result says C(changed=false): there is no work folder to seal before a real capture.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Seal the bundle
  rsky.ingester_capture.seal:
    project_dir: /mnt/nvme/bsky/atproto
    work_dir: /var/lib/ingester-capture/0123456789ab/work/20260101T000000Z-capture
    tarball: /var/lib/ingester-capture/0123456789ab/work/20260101T000000Z-capture.tar.gz
"""

RETURN = r"""
tarball:
  description: The tarball written.
  returned: unless in check mode
  type: str
  sample: "/var/lib/ingester-capture/0123456789ab/work/20260101T000000Z-capture.tar.gz"
files:
  description: Files in the bundle.
  returned: unless in check mode
  type: int
  sample: 23
bytes:
  description: Their total size.
  returned: unless in check mode
  type: int
  sample: 1843200
truncated:
  description: Files that were cut to fit.
  returned: unless in check mode
  type: list
  sample: []
  elements: str
placeholders:
  description: Distinct secrets replaced.
  returned: unless in check mode
  type: int
  sample: 3
commit:
  description: The built commit, or null.
  returned: unless in check mode
  type: str
  sample: "fce7fe099d96e0b859e39277c4837b154c905456"
checksum:
  description: The tarball's SHA-1 (what C(ansible.builtin.fetch) compares), for M(rsky.ingester_capture.fetch_bundle).
  returned: unless in check mode
  type: str
  sample: "3f786850e387550fdab836ed7e6dc881de23001b"
collected:
  description: With O(collect), what M(rsky.ingester_capture.collect) returns (C(kernel_log_source), C(container_id),
    C(container_state)).
  returned: when O(collect) is true, unless in check mode
  type: dict
  sample: {"kernel_log_source": "dmesg", "container_id": "4f2c9a7e1b3d", "container_state": "restarting"}
"""

import hashlib
import json
import platform
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.rsky.ingester_capture.plugins.module_utils import evidence, host_state, source
from ansible_collections.rsky.ingester_capture.plugins.module_utils.docker_cli import compose_argv, prefetch, run
from ansible_collections.rsky.ingester_capture.plugins.module_utils.manifest import (
    cap_size,
    manifest,
    record_note,
    write_json,
)
from ansible_collections.rsky.ingester_capture.plugins.module_utils.redact import (
    MAP_FILE,
    RedactError,
    Redactor,
    redact_bundle,
)


def sha1_file(path: Path) -> str:
    digest = hashlib.sha1()  # noqa: S324 - the checksum fetch compares, not a signature
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_commit(project_dir: str, build_context: str) -> Dict[str, Any]:
    if not build_context:
        return {"commit": None, "context": None}
    context = (Path(project_dir) / build_context).resolve()
    code, out, err = run(["git", "-C", str(context), "rev-parse", "HEAD"])
    commit = out.strip() if code == 0 and out.strip() else None
    return {"commit": commit, "context": str(context), "error": None if commit else (err.strip()[:200] or None)}


def write_source(out: Path, build: Dict[str, Any]) -> None:
    """source/index.json and the snippets the merged log cites (redacted with the rest)."""
    log = out / "logs" / "ingester.log"
    if not build.get("context") or not log.is_file():
        return
    with log.open(encoding="utf-8", errors="replace") as lines:
        index, files = source.build_index(Path(build["context"]), build.get("commit"), lines)
    for rel, text in files.items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        record_note(out, rel, "lines of the build context cited by the log")
    write_json(out / "source" / "index.json", index, mode=0o600)
    record_note(out, "source/index.json", "where each snippet comes from (schema_version 1)")


def main() -> None:
    host_state.private_files()
    spec = host_state.target_argument_spec()
    spec.update(
        work_dir={"type": "path", "required": True},
        tarball={"type": "path", "required": True},
        container={"type": "str", "default": "rust-ingester"},
        patterns={"type": "list", "elements": "str", "default": [], "no_log": True},
        max_bytes={"type": "int", "default": 536870912},
        host={"type": "str", "default": ""},
        mode={"type": "str", "choices": ["capture", "observe"], "default": "capture"},
        build_context={"type": "str", "default": ""},
        collect={"type": "bool", "default": False},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    if module.check_mode:
        module.exit_json(changed=False, msg="check mode: nothing sealed")
    p = module.params
    out = Path(p["work_dir"])
    state, compose = host_state.target_paths(p)
    # What the redactor learns from (the compose config, the container's Env) and the built commit,
    # asked side by side.
    questions = [["docker", "inspect", "--type", "container", p["container"]]]
    if compose.is_file():
        questions.append(compose_argv(compose, "--profile", "*", "config", "--format", "json"))
    if p["build_context"]:
        questions.append(["git", "-C", str((Path(p["project_dir"]) / p["build_context"]).resolve()), "rev-parse", "HEAD"])
    collected = None
    if p["collect"]:
        with ThreadPoolExecutor(max_workers=1) as pool:
            gathering = pool.submit(evidence.collect, out, compose, p["container"], p["service"], p["mode"])
            prefetch(questions)
            collected = gathering.result()
    else:
        prefetch(questions)
    try:
        redactor = Redactor.for_target(state, compose, [p["container"]], p["patterns"])
    except RedactError as exc:
        module.fail_json(msg=str(exc))
    build = build_commit(p["project_dir"], p["build_context"])
    try:  # what debug_build did: the image, its labelled commit, and whether it was reused
        made = json.loads((out / ".build.json").read_text())
        build.update(image=made.get("image"), revision=made.get("revision"), reused=bool(made.get("reused")))
    except (OSError, ValueError):
        pass
    write_source(out, build)
    redactions = redact_bundle(out, redactor)
    redactor.save(state / MAP_FILE)
    truncated = cap_size(out, p["max_bytes"])
    document = manifest(
        out,
        host=p["host"] or platform.node(),
        mode=p["mode"],
        truncated=truncated,
        redactions=redactions,
        redaction={
            "placeholders": len(redactor.mapping),
            "replacements": dict(redactor.counts),
            "mapping_kept_on_host": True,
        },
        max_bytes=p["max_bytes"],
        build=redactor.value(build),
    )
    write_json(out / "manifest.json", document, mode=0o600)
    for hidden in out.glob(".*"):
        if hidden.is_file():
            hidden.unlink()
    tar_path = Path(p["tarball"])
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    # gzip level 6, not tarfile's 9: a few percent larger, several times faster on logs.
    with tarfile.open(str(tar_path), "w:gz", compresslevel=6) as tar:
        tar.add(str(out), arcname=".")
    module.exit_json(
        changed=True,
        tarball=str(tar_path),
        checksum=sha1_file(tar_path),
        files=len(document["files"]),
        bytes=sum(f["size"] for f in document["files"]),
        truncated=sorted(truncated),
        placeholders=len(redactor.mapping),
        commit=build["commit"],
        **({"collected": collected} if collected is not None else {}),
    )


if __name__ == "__main__":
    main()
