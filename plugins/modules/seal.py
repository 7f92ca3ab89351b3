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
  - The tarball is an allow-list, not a walk of the work folder - the files C(manifest.json) names, each redacted
    above, and C(manifest.json) itself; a hidden work file or folder (the window's raw follower copies in C(.follow/),
    its log, the commands record) is never in it, and is removed once the tarball is written. A name that is not a
    regular file (a symlink) is left out and listed in the manifest's C(withheld).
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
  partial:
    description:
      - Why this bundle holds less than a whole capture (the play's failure after the window started); empty for a whole
        one. The manifest marks the bundle C(partial) with this reason and any the window left in C(window.json) (its
        worker died, the merged log could not be written), which count even when this is empty.
    type: str
    default: ""
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
partial:
  description: Whether the bundle is partial, and RV(partial_reasons) why.
  returned: unless in check mode
  type: bool
  sample: false
partial_reasons:
  description: Why the bundle is partial (also in C(manifest.json)).
  returned: unless in check mode
  type: list
  elements: str
  sample: []
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
import os
import platform
import shutil
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.rsky.ingester_capture.plugins.module_utils import evidence, host_state, source
from ansible_collections.rsky.ingester_capture.plugins.module_utils.docker_cli import compose_argv, prefetch, run
from ansible_collections.rsky.ingester_capture.plugins.module_utils.manifest import (
    cap_size,
    manifest,
    read_json,
    record_note,
    write_atomic,
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


def confined(out: Path, rel: str) -> Optional[Path]:
    """``out / rel`` when that stays inside ``out`` (no ``..``, no absolute path, no symlinked folder
    leading out); None otherwise. Bundle file names built from data go through here."""
    parts = Path(rel).parts
    if not parts or Path(rel).is_absolute() or ".." in parts:
        return None
    root = out.resolve()
    target = root.joinpath(*parts)
    try:
        target.parent.resolve().relative_to(root)
    except (OSError, RuntimeError, ValueError):
        return None
    return target


def write_source(out: Path, build: Dict[str, Any]) -> None:
    """source/index.json and the snippets the merged log cites (redacted with the rest)."""
    log = out / "logs" / "ingester.log"
    if not build.get("context") or not log.is_file():
        return
    with log.open(encoding="utf-8", errors="replace") as lines:
        index, files = source.build_index(Path(build["context"]), build.get("commit"), lines)
    refused = set()
    for rel, text in files.items():
        target = confined(out / "source", rel[len("source/") :]) if rel.startswith("source/") else None
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target = confined(out / "source", rel[len("source/") :])  # the folders made are checked again
        if target is None:
            refused.add(rel)
            continue
        write_atomic(target, text.encode("utf-8"), mode=0o600)
        record_note(out, rel, "lines of the build context cited by the log")
    if refused:
        kept = [s for s in index["snippets"] if s.get("file") not in refused]
        index["missing"] += [
            {"location": s["location"], "why": "its file name would leave the bundle"}
            for s in index["snippets"]
            if s.get("file") in refused
        ]
        index["snippets"] = kept
    write_json(out / "source" / "index.json", index, mode=0o600)
    record_note(out, "source/index.json", "where each snippet comes from (schema_version 1)")


def partial_reasons(out: Path, given: str) -> List[str]:
    """Why the bundle is partial: the play's reason, and what the window's own record says."""
    reasons = [given] if given else []
    window = read_json(out / "window.json")
    if not window:
        progress = read_json(out / ".window.json")
        if progress and progress.get("phase") != "done":
            reasons.append("the capture window did not end (phase %s): its merged log and window.json are missing" % progress.get("phase"))
    said = str(window.get("partial") or "")
    if said and not any(said in reason for reason in reasons):
        reasons.append(said)
    logs = window.get("logs")
    if isinstance(logs, dict) and logs.get("error"):
        reasons.append("the merged log could not be written: %s" % logs["error"])
    return reasons


def write_tarball(out: Path, tar_path: Path, names: List[str]) -> List[str]:
    """The tarball of exactly ``names`` (paths inside ``out``), each opened without following a
    symlink; the names left out (not a regular file)."""
    left_out = []
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    # gzip level 6, not tarfile's 9: a few percent larger, several times faster on logs.
    with tarfile.open(str(tar_path), "w:gz", compresslevel=6) as tar:
        for rel in names:
            path = confined(out, rel)
            try:
                if path is None:
                    raise OSError("outside the work folder")
                fd = os.open(str(path), os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                left_out.append(rel)
                continue
            with os.fdopen(fd, "rb") as handle:
                info = tar.gettarinfo(arcname=rel, fileobj=handle)
                if not info.isfile():
                    left_out.append(rel)
                    continue
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, handle)
    return left_out


def remove_work_files(out: Path) -> None:
    """The hidden work files and folders (raw follower copies, the window's log and config, the
    commands record): never in the bundle, and not kept once it is sealed."""
    for hidden in out.glob(".*"):
        if hidden.is_dir() and not hidden.is_symlink():
            shutil.rmtree(str(hidden), ignore_errors=True)
        else:
            try:
                hidden.unlink()
            except OSError:
                pass


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
        partial={"type": "str", "default": ""},
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
            # What the redactor could not read or refused to learn (docs/security.md).
            "notes": [redactor.line(n) for n in redactor.notes],
        },
        max_bytes=p["max_bytes"],
        build=redactor.value(build),
        partial=redactor.value(partial_reasons(out, p["partial"])),
    )
    # The allow-list: the files the manifest names, each of them redacted above.
    withheld = [f["path"] for f in document["files"] if f["path"] not in redactions]
    document["files"] = [f for f in document["files"] if f["path"] not in withheld]
    document["withheld"] = sorted(withheld)
    tar_path = Path(p["tarball"])
    if tar_path.exists():
        tar_path.unlink()
    write_json(out / "manifest.json", document, mode=0o600)
    left_out = write_tarball(out, tar_path, [f["path"] for f in document["files"]] + ["manifest.json"])
    if left_out:
        # Named but not a regular file when it was opened: the manifest says so, and the tarball is
        # made again without it.
        document["files"] = [f for f in document["files"] if f["path"] not in left_out]
        document["withheld"] = sorted(set(withheld) | set(left_out) - {"manifest.json"})
        write_json(out / "manifest.json", document, mode=0o600)
        write_tarball(out, tar_path, [f["path"] for f in document["files"]] + ["manifest.json"])
    remove_work_files(out)
    for note in redactor.notes:
        module.warn(redactor.line(note))
    module.exit_json(
        changed=True,
        tarball=str(tar_path),
        checksum=sha1_file(tar_path),
        files=len(document["files"]),
        bytes=sum(f["size"] for f in document["files"]),
        truncated=sorted(truncated),
        partial=document["partial"],
        partial_reasons=document["partial_reasons"],
        placeholders=len(redactor.mapping),
        commit=build["commit"],
        **({"collected": collected} if collected is not None else {}),
    )


if __name__ == "__main__":
    main()
