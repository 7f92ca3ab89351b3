#!/usr/bin/python
# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
"""Build the debug image in the background, labelled with its commit; report where the build is."""

from __future__ import annotations

DOCUMENTATION = r"""
module: debug_build
short_description: Build the debug image in the background, labelled with the built commit, or reuse it
description:
  - V(started) finds the commit being built (C(git rev-parse HEAD) of the build context's checkout, else of
    O(git_dir)). If O(image) already exists with the label C(org.opencontainers.image.revision) of that commit and
    O(rebuild) is false, it is reused and nothing is built. Otherwise it starts C(docker build --force-rm --label
    org.opencontainers.image.revision=<commit>) detached, its output appended to C(build.log) in the work folder, and
    returns at once. With C(--force-rm) a failed step of the legacy builder leaves no container behind on the host
    (BuildKit makes none).
  - V(status) waits up to O(poll) seconds for the build to end and returns where it is, read from its own log
    (Docker's C(Step N/M), the BuildKit step, the number of crates cargo has compiled) and, once it ended, its exit code.
  - A checkout with uncommitted changes is never reused (the commit does not say what was built).
  - With O(pull), V(started) first runs that command (the runbook's C(git pull --ff-only)), its output appended to
    C(build.log); if it fails, the task fails before anything is built, with its last lines, production untouched.
  - Everything returned is redacted like the bundle.
version_added: 0.1.0
author: ingester-capture contributors (@blacksky-algorithms)
requirements:
  - Python 3.8 or newer on the host (standard library only)
  - the docker CLI on the host, talking to the Docker engine
  - C(git) on the host when O(pull) or the build context is a checkout
extends_documentation_fragment:
  - rsky.ingester_capture.attributes
  - rsky.ingester_capture.work
  - rsky.ingester_capture.target
options:
  state:
    description: V(started) or V(status).
    type: str
    choices: [started, status]
    default: status
  image:
    description: The tag to build.
    type: str
  dockerfile:
    description: Dockerfile, relative to O(project_dir).
    type: str
  context:
    description: Build context, relative to O(project_dir).
    type: str
  git_dir:
    description: The checkout whose commit is built when the context is not in a git checkout of its own.
    type: path
  rebuild:
    description: Build even if an image of this commit exists.
    type: bool
    default: false
  timeout:
    description: Seconds before the build is stopped (exit 124).
    type: int
    default: 3600
  pull:
    description: V(started) runs this command first (C([git, -C, DIR, pull, --ff-only, REMOTE, BRANCH])); empty for none.
    type: list
    elements: str
    default: []
  pull_timeout:
    description: Seconds before O(pull) is stopped.
    type: int
    default: 600
  poll:
    description: Seconds a V(status) request waits for the build to end.
    type: int
    default: 15
  snapshot:
    description:
      - V(started) first saves the production container's logs and inspect output into the work folder, as the
        C(rsky.ingester_capture.snapshot) module does, before the build starts (production is still untouched), and
        returns what it saved as RV(snapshot). One module run for both.
    type: bool
    default: false
  lock_owner:
    description:
      - The owner of the capture lock this build runs under (pre-flight took it). V(started) names the build's process
        in the lock, so a capture killed while its image builds leaves a lock that the next capture sees as stale; a
        build that ends by itself hands the lock back to its time to live. Empty for none.
    type: str
    default: ""
attributes:
  check_mode:
    support: full
    details: In check mode nothing is built; V(started) says whether the image would be reused or built.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Start the build
  rsky.ingester_capture.debug_build:
    state: started
    project_dir: /mnt/nvme/bsky/atproto
    work_dir: /var/lib/ingester-capture/0123456789ab/work/20260101T000000Z-capture
    image: rsky-ingester:debug
    dockerfile: ../rsky/rsky-ingester/Dockerfile
    context: ../rsky
"""

RETURN = r"""
revision:
  description: The commit built (with C(+dirty) for uncommitted changes), empty if not in a git checkout.
  returned: always
  type: str
  sample: "fce7fe099d96e0b859e39277c4837b154c905456"
reused:
  description: Whether an image of this commit was reused instead of built.
  returned: always
  type: bool
  sample: false
done:
  description: Whether the build ended (or was not needed).
  returned: always
  type: bool
  sample: false
rc:
  description: The build's exit code once it ended (124 when it timed out).
  returned: when done
  type: int
  sample: 0
elapsed:
  description: Seconds since the build started.
  returned: when a build runs
  type: float
  sample: 95.2
step:
  description: The build's current step, for example C(Step 7/12 RUN cargo build --release).
  returned: when a build runs
  type: str
  sample: "Step 7/12 : RUN cargo build --release"
compiled:
  description: Crates cargo has compiled so far.
  returned: when a build runs
  type: int
  sample: 231
tail:
  description: The last 2000 characters of build.log once the build ended, redacted.
  returned: when done
  type: str
  sample: "Successfully tagged rsky-ingester:debug\n"
snapshot:
  description:
    - What O(snapshot) saved, as the C(rsky.ingester_capture.snapshot) module returns it (C(exists), C(id), C(image),
      C(restart_count), C(status), C(log_lines), or C(inspect_error)), redacted.
  returned: when O(snapshot) ran
  type: dict
  sample:
    exists: true
    id: 4f2c9a7e1b3d
    image: rsky-ingester:latest
    restart_count: 14
    status: restarting
    log_lines:
      stdout: 160
      stderr: 0
pull:
  description: What O(pull) did - its C(rc), C(tail) (redacted), C(cmd) and C(changed) (false when already up to date).
  returned: when O(pull) ran
  type: dict
  sample:
    rc: 0
    tail: "Already up to date.\n"
    cmd:
    - git
    - -C
    - /mnt/nvme/bsky/atproto
    - pull
    - --ff-only
    - origin
    - rude1/backfill
    changed: false
"""

import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.rsky.ingester_capture.plugins.module_utils import host_state, pre_swap
from ansible_collections.rsky.ingester_capture.plugins.module_utils.docker_cli import Child, run_to_file, spawn_detached
from ansible_collections.rsky.ingester_capture.plugins.module_utils.manifest import record, record_note
from ansible_collections.rsky.ingester_capture.plugins.module_utils.redact import MAP_FILE, Redactor

LABEL = "org.opencontainers.image.revision"
STATE_FILE = ".build.json"
RC_FILE = ".build.rc"
LOG = "build.log"
_STEP = re.compile(rb"^(?:Step (\d+/\d+) : (.*)|#\d+ \[([^\]]+)\] (.*))$", re.MULTILINE)
_COMPILING = re.compile(rb"^\s*Compiling \S+ v", re.MULTILINE)


def _git(directory: str, *args: str) -> Optional[str]:
    try:
        proc = subprocess.run(
            ["git", "-C", directory] + list(args), capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def revision(context: str, git_dir: str) -> str:
    """The commit the build context is at: its own checkout, else git_dir's; '+dirty' if changed."""
    for directory in (context, git_dir):
        if not directory or not Path(directory).is_dir():
            continue
        # A folder no file of the checkout is tracked in (an ignored or untracked copy inside some
        # other repository) is not that commit's content.
        head = _git(directory, "rev-parse", "HEAD") if _git(directory, "ls-files", "--", ".") else None
        if head:
            dirty = _git(directory, "status", "--porcelain", "--untracked-files=no")
            return head + ("+dirty" if dirty else "")
    return ""


def image_revision(image: str) -> Optional[str]:
    """The revision label of the image, '' if it has none, None if there is no such image."""
    try:
        proc = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{ json .Config.Labels }}", image],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    try:
        labels = json.loads(proc.stdout.strip() or "null") or {}
    except ValueError:
        labels = {}
    return str(labels.get(LABEL, ""))


def progress(log: bytes, redact: Optional[Callable[[str], str]] = None) -> Dict[str, Any]:
    """Where the build is, from its own output: the last step line and cargo's crate count
    (the step redacted by ``redact`` before it is cut)."""
    step = ""
    for match in _STEP.finditer(log):
        if match.group(1):
            step = "Step %s %s" % (match.group(1).decode(), match.group(2).decode(errors="replace"))
        else:
            step = "[%s] %s" % (match.group(3).decode(errors="replace"), match.group(4).decode(errors="replace"))
    if redact is not None:
        step = redact(step)
    return {"step": step[:160], "compiled": len(_COMPILING.findall(log))}


def private_folder(out: Path, name: str) -> None:
    """``out`` (and the folders above it that are missing) and ``out/name`` for their owner alone,
    without changing this process's umask for what runs next."""
    old = os.umask(0o077)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / name).touch()
    finally:
        os.umask(old)


def pull(module: AnsibleModule, out: Path, redactor: Redactor) -> Dict[str, Any]:
    """Run O(pull) into build.log; fail the task if it fails (nothing was built or changed)."""
    p = module.params
    code = run_to_file(out, LOG, p["pull"], timeout=p["pull_timeout"], append=True)
    # Redacted first, then cut: a secret the cut would halve is replaced whole.
    tail = redactor.tail((out / LOG).read_bytes(), 2000)
    result = {"rc": code, "tail": tail, "cmd": redactor.value(p["pull"]), "changed": "Already up to date" not in tail}
    if code != 0:
        module.fail_json(
            msg=redactor.line("%s failed; production is untouched. %s" % (" ".join(p["pull"]), tail.strip()[-800:])),
            pull=result,
        )
    return result


def start(module: AnsibleModule, out: Path, redactor: Redactor) -> Dict[str, Any]:
    p = module.params
    project = p["project_dir"]
    pulled = None
    if p["pull"] and not module.check_mode:
        # The work folder and build.log are private before git runs (git itself keeps the umask
        # the checkout expects: the files it writes there are the build's context).
        private_folder(out, LOG)
        pulled = pull(module, out, redactor)
    context = os.path.normpath(str(Path(project) / p["context"]))
    rev = revision(context, p["git_dir"] or project)
    existing = image_revision(p["image"])
    reusable = bool(rev) and not rev.endswith("+dirty") and existing == rev and not p["rebuild"]
    why = (
        "image %s is already built from commit %s: reused, not rebuilt (-e ingester_rebuild=true rebuilds)"
        % (p["image"], rev[:12])
        if reusable
        else "building %s from commit %s%s"
        % (
            p["image"],
            rev[:12] or "(not a git checkout)",
            " (rebuild asked)" if p["rebuild"] and existing == rev else "",
        )
    )
    result = {"changed": not reusable, "revision": rev, "reused": reusable, "msg": redactor.line(why)}
    if pulled is not None:
        result.update(pull=pulled, changed=bool(result["changed"] or pulled["changed"]))
    if module.check_mode:
        would = ("run %s, then " % " ".join(p["pull"])) if p["pull"] else ""
        result.update(done=True, msg=redactor.line("would have: " + would + why))
        return result
    # After the revision's git calls (git may rewrite the checkout's index): the build's files are private.
    host_state.private_files()
    out.mkdir(parents=True, exist_ok=True)
    if reusable:
        with (out / LOG).open("ab") as handle:
            handle.write(("%s\n" % why).encode())
        record_note(out, LOG, why, reused=True, revision=rev, image=p["image"])
        (out / STATE_FILE).write_text(json.dumps({"reused": True, "revision": rev, "image": p["image"], "msg": why}))
        result.update(done=True, rc=0, tail=redactor.line(why))
        if p["snapshot"]:
            result["snapshot"] = snapshot(module, out, redactor)
        return result
    # --force-rm: the legacy builder keeps the container of a failed RUN step without it (BuildKit
    # takes the flag and makes no such container).
    argv = ["docker", "build", "--force-rm", "--label", "%s=%s" % (LABEL, rev)]
    argv += ["-f", p["dockerfile"], "-t", p["image"], p["context"]]
    script = "timeout --kill-after=30 %d %s >> %s 2>&1; echo $? > %s" % (
        p["timeout"],
        " ".join(shlex.quote(a) for a in argv),
        shlex.quote(str(out / LOG)),
        shlex.quote(str(out / RC_FILE)),
    )
    # Production's snapshot first (still untouched), then the build: a fast build that ended
    # during the snapshot would hand the lock to its time to live before the capture went on,
    # and a capture killed then would leave a lock no one sees as stale.
    snapped = snapshot(module, out, redactor) if p["snapshot"] else None
    with (out / LOG).open("ab") as handle:
        handle.write(("$ %s\n" % " ".join(argv)).encode())
    if (out / RC_FILE).exists():
        (out / RC_FILE).unlink()
    proc = spawn_detached(["/bin/sh", "-c", script], cwd=project)
    state = {"pid": proc.pid, "started": time.time(), "argv": argv, "revision": rev, "image": p["image"]}
    (out / STATE_FILE).write_text(json.dumps(state))
    if p["lock_owner"]:
        # The build's shell writes RC_FILE as it ends: an end without it (killed) frees the lock.
        lock_state, _compose = host_state.target_paths(p)
        host_state.lock_attach(lock_state, p["lock_owner"], proc.pid, role="debug build", ended_file=out / RC_FILE)
    result.update(done=False, elapsed=0.0, step="", compiled=0, cmd=redactor.value(argv))
    if snapped is not None:
        result["snapshot"] = snapped
    return result


def snapshot(
    module: AnsibleModule, out: Path, redactor: Redactor, build: Optional[Child] = None
) -> Dict[str, Any]:
    """pre_swap.save for O(snapshot); when it cannot write (a full disk), the task fails in one
    line (a build already running beside it is stopped): production untouched, nothing left running."""
    try:
        return redactor.value(pre_swap.save(out, module.params["container"]))
    except OSError as exc:
        if build is not None:
            try:
                os.killpg(build.pid, signal.SIGKILL)
            except OSError:
                pass
            build.wait()
        module.fail_json(
            msg=redactor.line(
                "the production snapshot could not be saved in %s: %s; %sproduction is untouched"
                % (out, exc.strerror or exc, "the build was stopped; " if build is not None else "")
            )
        )
        raise  # (fail_json exits)


def status(module: AnsibleModule, out: Path, redactor: Redactor) -> Dict[str, Any]:
    host_state.private_files()
    try:
        state = json.loads((out / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {"changed": False, "done": True, "reused": False, "rc": 0, "revision": "", "msg": "no build was started"}
    if state.get("reused"):
        msg = redactor.line(str(state.get("msg", "")))
        return {"changed": False, "done": True, "reused": True, "rc": 0, "revision": state["revision"], "msg": msg}
    deadline = time.time() + module.params["poll"]
    rc_file = out / RC_FILE
    while not rc_file.exists() and time.time() < deadline:
        time.sleep(0.5)
    log = b""
    try:
        log = (out / LOG).read_bytes()
    except OSError:
        pass
    result = {
        "changed": False,
        "reused": False,
        "revision": state["revision"],
        "elapsed": round(time.time() - state["started"], 1),
    }
    result.update(progress(log, redactor.text))
    if rc_file.exists():
        try:
            code = int(rc_file.read_text().strip() or "1")
        except ValueError:
            code = 1
        if not (out / ".build.recorded").exists():
            record(
                out,
                {
                    "file": LOG,
                    "argv": state["argv"],
                    "exit_code": code,
                    "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(state["started"])),
                    "ended": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "timed_out": code == 124,
                    "revision": state["revision"],
                    "reused": False,
                    "note": "built %s from commit %s"
                    % (state["image"], state["revision"][:12] or "(not a git checkout)"),
                },
            )
            (out / ".build.recorded").write_text("")
        result.update(done=True, rc=code, tail=redactor.tail(log, 2000))
    else:
        result["done"] = False
    return result


def main() -> None:
    spec = host_state.target_argument_spec()
    spec.update(
        state={"type": "str", "choices": ["started", "status"], "default": "status"},
        work_dir={"type": "path", "required": True},
        container={"type": "str", "default": "rust-ingester"},
        image={"type": "str"},
        dockerfile={"type": "str"},
        context={"type": "str"},
        git_dir={"type": "path"},
        rebuild={"type": "bool", "default": False},
        timeout={"type": "int", "default": 3600},
        pull={"type": "list", "elements": "str", "default": []},
        pull_timeout={"type": "int", "default": 600},
        poll={"type": "int", "default": 15},
        lock_owner={"type": "str", "default": ""},
        snapshot={"type": "bool", "default": False},
    )
    module = AnsibleModule(
        argument_spec=spec,
        supports_check_mode=True,
        required_if=[("state", "started", ("image", "dockerfile", "context"))],
    )
    p = module.params
    state_path, compose = host_state.target_paths(p)
    # A status poll redacts with what the start learned and saved (no docker calls per poll).
    if p["state"] == "started" or not (state_path / MAP_FILE).is_file():
        redactor = Redactor.for_target(state_path, compose, [p["container"]])
        for note in redactor.notes:
            module.warn(note)
    else:
        redactor = Redactor.load(state_path / MAP_FILE)
    out = Path(p["work_dir"])
    result = start(module, out, redactor) if p["state"] == "started" else status(module, out, redactor)
    if state_path.is_dir() and not module.check_mode:
        redactor.save(state_path / MAP_FILE)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
