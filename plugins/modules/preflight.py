#!/usr/bin/python
# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
"""Read-only checks before a capture changes anything."""

DOCUMENTATION = r"""
module: preflight
short_description: Read-only checks before a capture changes anything
description:
  - Checks the host's Python (3.8 or newer), the Docker engine, Compose v2, the compose file and that it validates
    (every profile), the service, free disk for the bundle and, in capture mode, the build inputs and that the swap
    can be one exact edit of the compose file (the decision of M(rsky.ingester_capture.compose_image), naming the
    file and the line when it cannot; docs/compose-layouts.md).
  - Reads the service's logging driver (its C(logging) block, else the daemon's default) and says whether C(docker logs)
    can read it back (C(json-file), C(local), C(journald); other drivers through the daemon's dual-logging cache unless
    C(cache-disabled)). When it cannot (C(none), a driver with the cache disabled) the capture relies on the attached
    stream alone and says so; C(journald) without a running systemd-journald is a problem.
  - Lists every problem found in one message; changes nothing.
  - Fails at once, with what to do, when the login user may not connect to the Docker socket (not root, not in the
    C(docker) group, no become) or may not read the state folder or the compose file.
  - Returns this target's state folder, so no playbook computes the state key itself.
  - With O(lock_owner), a host that passed every check is also locked for the capture (as
    M(rsky.ingester_capture.capture_lock) V(acquired) does, in the same module run); a lock another run holds is a
    problem. In check mode the lock is only checked.
version_added: 0.1.0
author: ingester-capture contributors (@blacksky-algorithms)
requirements:
  - Python 3.8 or newer on the host (standard library only)
  - the docker CLI on the host, talking to the Docker engine
  - Docker Compose v2 (C(docker compose)) on the host
extends_documentation_fragment:
  - rsky.ingester_capture.attributes
  - rsky.ingester_capture.target
options:
  container:
    description: The service's container_name.
    type: str
    default: rust-ingester
  mode:
    description: V(capture) also checks the debug build inputs; V(observe) does not.
    type: str
    choices: [capture, observe]
    default: capture
  build_context:
    description: Build context of the debug image, relative to O(project_dir).
    type: str
    default: ../rsky
  dockerfile:
    description: Dockerfile of the debug image, relative to O(project_dir).
    type: str
    default: ../rsky/rsky-ingester/Dockerfile
  git_pull:
    description: Whether the capture will C(git pull); then O(git_dir) must be a git checkout.
    type: bool
    default: false
  git_dir:
    description: The checkout to pull; empty for O(project_dir).
    type: str
    default: ""
  min_free_bytes:
    description: Free disk needed under O(state_dir).
    type: int
    default: 536870912
  expect_missing:
    description:
      - The service's container may be missing (a first deployment, or it was removed on purpose). Otherwise a container
        that cannot be inspected is a problem, with docker's own error, because the capture would lose the production history.
    type: bool
    default: false
  lock_owner:
    description: Take the capture lock for this owner once every check passed; empty to leave the lock alone.
    type: str
    default: ""
  lock_purpose:
    description: The lock's purpose.
    type: str
    choices: [capture, rollback]
    default: capture
  lock_ttl:
    description: Seconds the lock holds without a process on the host that keeps it.
    type: int
    default: 7200
  lock_force:
    description: Take the lock over even when another run holds it (C(capture_break_lock)).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - An interpreter older than Python 3.8 is refused with one line naming the version found and the one needed.
"""

EXAMPLES = r"""
- name: Check the host before a capture
  rsky.ingester_capture.preflight:
    project_dir: /mnt/nvme/bsky/atproto
    compose_file: docker-compose.prod-rust.yml
    service: ingester
    container: rust-ingester
    mode: observe
  register: preflight
"""

RETURN = r"""
problems:
  description: Every problem found; empty when the host is ready.
  returned: always
  type: list
  sample: []
  elements: str
facts:
  description: >-
    Docker and Compose versions, the service's image, free bytes, whether the container exists (and docker's error when
    it cannot be inspected), the logging driver, its options and whether C(docker logs) can read it.
  returned: always
  type: dict
  sample:
    docker_version: 24.0.7
    compose_version: 2.24.5
    image: rsky-ingester:latest
    free_bytes: 53687091200
    container_exists: true
    container_error: null
    log_driver: json-file
    log_readable: true
warnings_text:
  description: What the capture will do differently on this host (for example, rely on the attached stream alone).
  returned: always
  type: list
  sample: []
  elements: str
state_dir:
  description: This target's state folder on the host.
  returned: always
  type: str
  sample: /var/lib/ingester-capture/0123456789ab
compose_path:
  description: The compose file.
  returned: always
  type: str
  sample: "/mnt/nvme/bsky/atproto/docker-compose.prod-rust.yml"
project:
  description:
    - The compose project the capture runs every compose call under. When the container exists, its compose labels
      (C(com.docker.compose.project), C(.working_dir), C(.config_files)) win over the inventory's values, since that
      is the project C(docker compose up) would collide with.
    - C(note) says in one line what differs from the inventory and which wins; empty when nothing does.
  returned: always
  type: dict
  contains:
    name:
      description: The compose project name (C(-p)) every compose call runs under.
      type: str
    working_dir:
      description: The compose project directory of the compose calls.
      type: str
    config_files:
      description: The compose files of the compose calls, in order.
      type: list
      elements: str
    compose_path:
      description: The compose file the swap edits.
      type: str
    source:
      description: Where the project came from, V(container) (its compose labels) or V(inventory).
      type: str
    note:
      description: One line saying what differs from the inventory and which wins; empty when nothing does.
      type: str
  sample:
    name: atproto
    working_dir: /mnt/nvme/bsky/atproto
    config_files: [/mnt/nvme/bsky/atproto/docker-compose.prod-rust.yml]
    compose_path: /mnt/nvme/bsky/atproto/docker-compose.prod-rust.yml
    source: container
    note: ""
lock:
  description: With O(lock_owner), the lock taken - C(broke) (whose stale lock was taken over, or empty), C(again)
    (this owner held it already) and C(lock) (its content).
  returned: when O(lock_owner) is set and every check passed
  type: dict
  sample: {"broke": "", "again": false, "lock": {"owner": "capture.yml@controller#k3v9q2m0x7ab", "purpose": "capture"}}
python:
  description: The host's Python version.
  returned: always
  type: str
  sample: 3.11.2
"""

# The Python floor is checked first and its module uses no newer syntax, so that an old
# interpreter gets one line that says what it found, not a traceback.
from ansible_collections.rsky.ingester_capture.plugins.module_utils.python_floor import refuse_old_python  # isort: skip

if __name__ == "__main__":
    refuse_old_python()

import errno
import json
import os
import pwd
import shutil
import socket
import sys
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.rsky.ingester_capture.plugins.module_utils import compose_text, host_state
from ansible_collections.rsky.ingester_capture.plugins.module_utils.docker_cli import (
    DockerError,
    compose_argv,
    config_json,
    docker_socket,
    inspect,
    prefetch,
    run,
    use_project,
)
from ansible_collections.rsky.ingester_capture.plugins.module_utils.redact import Redactor

BECOME_HINT = "run with become (ansible_become=true)"

READABLE_DRIVERS = ("json-file", "local", "journald")
JOURNAL_SOCKET = "/run/systemd/journal/socket"


def daemon_log_opts(path="/etc/docker/daemon.json"):  # type: ignore[no-untyped-def]
    """The daemon's default log-opts (daemon.json), {} when there are none or it is unreadable."""
    try:
        with Path(path).open() as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    opts = data.get("log-opts") if isinstance(data, dict) else None
    return opts if isinstance(opts, dict) else {}


def log_driver(compose, service):  # type: ignore[no-untyped-def]
    """(driver, options, where from) of the service's logs, or (None, {}, why not)."""
    # Every profile: the service may itself be in one (started by naming it).
    # (config_json: the redactor asks the same question after the checks; it is answered once)
    try:
        logging = ((config_json(compose).get("services") or {}).get(service) or {}).get("logging") or {}
    except (DockerError, AttributeError):
        logging = {}
    options = dict(logging.get("options") or {})
    if logging.get("driver"):
        return str(logging["driver"]), options, "the service's logging block"
    code, out, err = run(["docker", "info", "--format", "{{json .LoggingDriver}}"])
    try:
        driver = json.loads(out) if code == 0 else None
    except ValueError:
        driver = None
    if not driver:
        return None, options, "docker info failed: %s" % (err or out).strip()[:200]
    merged = daemon_log_opts()
    merged.update(options)
    return str(driver), merged, "the daemon's default (no logging block)"


def log_readability(driver, options):  # type: ignore[no-untyped-def]
    """(docker logs can read it back, why) for a logging driver and its options."""
    if driver == "journald":
        # Measured: the journald driver drops empty lines; the attached stream keeps them.
        return True, "docker logs reads the journald driver (which drops empty lines: the attached stream keeps them)"
    if driver in READABLE_DRIVERS:
        return True, "docker logs reads the %s driver" % driver
    if driver == "none":
        return False, "the none driver keeps no logs"
    if str(options.get("cache-disabled", "")).lower() == "true":
        return False, "the %s driver with cache-disabled keeps no copy docker logs can read" % driver
    return True, "docker logs reads the %s driver through the daemon's dual-logging cache" % driver


def swap_problem(compose, service):  # type: ignore[no-untyped-def]
    """Why the capture's swap of this compose file would be refused ("" when it would not): the
    same decision compose_image makes, taken here so that nothing changes before the refusal."""
    try:
        site = compose_text.image_site(compose.read_text(encoding="utf-8"), service, str(compose))
        if site["edit"] == "insert" and host_state.resolved_image(compose, service) is None:
            raise compose_text.RefusedSwap(
                str(compose),
                site["block"].header,
                "compose resolves no image for service '%s' (it is built, not pulled), so there is no tag to swap"
                % service,
            )
    except (compose_text.ComposeTextError, DockerError) as exc:
        return "the debug image cannot be swapped in: %s" % exc
    except (OSError, UnicodeDecodeError) as exc:
        return "the compose file cannot be read: %s" % exc
    return ""


def check(params, state, compose):  # type: ignore[no-untyped-def]
    """(problems, facts) of the host; read-only."""
    problems = []
    warnings = []
    facts = {}
    project = Path(params["project_dir"])
    code, out, err = run(["docker", "version", "--format", "{{json .Server}}"])
    if code != 0:
        problems.append("docker engine not reachable: %s" % (err or out).strip()[:200])
    else:
        try:
            facts["docker_version"] = json.loads(out).get("Version")
        except (ValueError, AttributeError):
            pass
    code, out, _err = run(["docker", "compose", "version", "--short"])
    if code != 0 or not out.strip().lstrip("v").startswith("2"):
        problems.append("Docker Compose v2 is missing ('docker compose version' failed or is not 2.x)")
    else:
        facts["compose_version"] = out.strip()
    if not compose.is_file():
        problems.append("compose file not found: %s" % compose)
    else:
        code, out, err = run(compose_argv(compose, "--profile", "*", "config", "--services"))
        services = out.split()
        if code != 0:
            problems.append("compose config does not validate: %s" % err.strip()[:300])
        elif params["service"] not in services:
            problems.append(
                "service '%s' is not in %s (services: %s)" % (params["service"], compose.name, ", ".join(services))
            )
        else:
            code, _out, err = run(compose_argv(compose, "config", "-q"))
            if code != 0:
                problems.append("compose config does not validate: %s" % err.strip()[:300])
            facts["image"] = host_state.current_image(compose, params["service"])
            if params["mode"] == "capture":
                problem = swap_problem(compose, params["service"])
                if problem:
                    problems.append(problem)
            driver, options, origin = log_driver(compose, params["service"])
            facts["log_driver"] = driver
            facts["log_options"] = options
            facts["log_driver_from"] = origin
            if driver is not None:
                readable, why = log_readability(driver, options)
                facts["log_readable"] = readable
                facts["log_reading"] = why
                if not readable:
                    warnings.append(
                        "docker logs cannot read this service's logs (%s, from %s): the capture relies on the attached "
                        "stream alone, which loses lines at every restart" % (why, origin)
                    )
                if driver == "journald" and not Path(JOURNAL_SOCKET).exists():
                    problems.append(
                        "the service logs to journald (%s) but no systemd-journald runs here (%s is missing): "
                        "the container could not start" % (origin, JOURNAL_SOCKET)
                    )
    if params["mode"] == "capture":
        context = (project / params["build_context"]).resolve()
        dockerfile = (project / params["dockerfile"]).resolve()
        if not context.is_dir():
            problems.append("build context not found: %s" % context)
        if not dockerfile.is_file():
            problems.append("Dockerfile not found: %s" % dockerfile)
        if params["git_pull"]:
            git_dir = params["git_dir"] or str(project)
            code, _out, err = run(["git", "-C", git_dir, "rev-parse", "--is-inside-work-tree"])
            if code != 0:
                problems.append("not a git checkout: %s (%s)" % (git_dir, err.strip()[:200]))
    probe = Path(params["state_dir"])
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(str(probe)).free
    facts["free_bytes"] = free
    if free < params["min_free_bytes"]:
        problems.append(
            "not enough disk for the bundle on %s: %d bytes free, need %d" % (probe, free, params["min_free_bytes"])
        )
    container, error = inspect(params["container"])
    facts["container_exists"] = container is not None
    facts["container_error"] = error or None
    if container is None and not params["expect_missing"]:
        problems.append(
            "the service's container %s cannot be inspected (%s): its logs and history cannot be saved before the "
            "capture; set capture_expect_missing=true if it is expected to be missing"
            % (params["container"], error or "no answer")
        )
    if container is not None:
        config = container.get("Config") or {}
        facts["container_id"] = container.get("Id")
        facts["container_image"] = config.get("Image")
        facts["container_service"] = (config.get("Labels") or {}).get("com.docker.compose.service")
    return problems, facts, warnings


PROJECT_LABEL = "com.docker.compose.project"


def inventory_project_name(params, compose):  # type: ignore[no-untyped-def]
    """The project name compose derives from the inventory's file and folder ("" if it cannot say)."""
    argv = ["docker", "compose", "--project-directory", params["project_dir"], "-f", str(compose)]
    code, out, _err = run(argv + ["config", "--format", "json"])
    try:
        return str(json.loads(out).get("name") or "") if code == 0 else ""
    except (ValueError, AttributeError):
        return ""


def compose_project(params, compose):  # type: ignore[no-untyped-def]
    """The compose project of the running container (its labels), else the inventory's; with a
    one-line note of what differs and which wins. Read-only."""
    found, _error = inspect(params["container"], attempts=1)
    labels = ((found or {}).get("Config") or {}).get("Labels") or {}
    inventory = {
        "name": params.get("project_name") or "",
        "working_dir": params.get("project_working_dir") or str(compose.parent),
        "config_files": list(params.get("project_config_files") or []) or [str(compose)],
    }
    if not labels.get(PROJECT_LABEL):
        return dict(inventory, compose_path=str(compose), source="inventory", note="")
    files = [f.strip() for f in str(labels.get(PROJECT_LABEL + ".config_files") or "").split(",") if f.strip()]
    running = {
        "name": str(labels[PROJECT_LABEL]),
        "working_dir": str(labels.get(PROJECT_LABEL + ".working_dir") or inventory["working_dir"]),
        "config_files": files or inventory["config_files"],
    }
    # The last of the files that sets the service's image: is the one to swap (an override file
    # wins over the inventory's file even when both are the project's).
    used = [str(f) for f in running["config_files"]]
    swapped = host_state.swapped_file(used, params["service"]) or (compose if str(compose) in used else Path(used[0]))
    if not inventory["name"]:
        inventory["name"] = inventory_project_name(params, compose)
    differs = [
        "%s %s (inventory: %s)" % (what, _show(running[key]), _show(inventory[key]))
        for key, what in (("name", "project"), ("working_dir", "working dir"), ("config_files", "config files"))
        if running[key] != inventory[key]
    ]
    note = (
        "Compose project of %s: the running container's labels win over the inventory (that is the project "
        "'docker compose up' would collide with): %s; every compose call runs as -p %s, and the swap edits %s."
        % (params["container"], "; ".join(differs), running["name"], swapped)
        if differs
        else ""
    )
    return dict(running, compose_path=str(swapped), source="container", note=note)


def login_name():  # type: ignore[no-untyped-def]
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return "uid %d" % os.geteuid()


def socket_problem(path, user):  # type: ignore[no-untyped-def]
    """One line when this user may not connect to the Docker socket (not root, not in the docker
    group, no become), else None. Any other outcome is left to the checks that say more."""
    if path is None or not Path(path).exists():
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(5)
    try:
        conn.connect(path)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM):
            return None
        return "user %s cannot reach the Docker socket %s: %s or add the user to the docker group" % (
            user,
            path,
            BECOME_HINT,
        )
    finally:
        conn.close()
    return None


def permission_problem(exc, user):  # type: ignore[no-untyped-def]
    """One line for a host path this user may not read (the state folder, the compose file)."""
    return "user %s cannot read %s (permission denied): %s or give the user access to it" % (
        user,
        exc.filename or "a file the capture needs",
        BECOME_HINT,
    )


def _show(value):  # type: ignore[no-untyped-def]
    return ",".join(value) if isinstance(value, list) else (value or "(none)")


def questions(params, compose):  # type: ignore[no-untyped-def]
    """The read-only commands check() and the redactor will run, asked side by side first."""
    argvs = [
        ["docker", "version", "--format", "{{json .Server}}"],
        ["docker", "compose", "version", "--short"],
        ["docker", "info", "--format", "{{json .LoggingDriver}}"],
        ["docker", "inspect", "--type", "container", params["container"]],
    ]
    if compose.is_file():
        argvs += [
            compose_argv(compose, "--profile", "*", "config", "--services"),
            compose_argv(compose, "config", "-q"),
            compose_argv(compose, "config", "--format", "json"),
            compose_argv(compose, "--profile", "*", "config", "--format", "json"),
        ]
    if params["mode"] == "capture" and params["git_pull"]:
        argvs.append(["git", "-C", params["git_dir"] or params["project_dir"], "rev-parse", "--is-inside-work-tree"])
    return argvs


def main():  # type: ignore[no-untyped-def]
    spec = host_state.target_argument_spec()
    spec.update(
        container={"type": "str", "default": "rust-ingester"},
        mode={"type": "str", "choices": ["capture", "observe"], "default": "capture"},
        build_context={"type": "str", "default": "../rsky"},
        dockerfile={"type": "str", "default": "../rsky/rsky-ingester/Dockerfile"},
        git_pull={"type": "bool", "default": False},
        git_dir={"type": "str", "default": ""},
        min_free_bytes={"type": "int", "default": 536870912},
        expect_missing={"type": "bool", "default": False},
        lock_owner={"type": "str", "default": ""},
        lock_purpose={"type": "str", "choices": ["capture", "rollback"], "default": "capture"},
        lock_ttl={"type": "int", "default": 7200},
        lock_force={"type": "bool", "default": False},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    # Without become, a deploy user outside the docker group fails here, with what to do, rather
    # than with every check below that needs Docker, or a traceback on the state folder.
    user = login_name()
    denied = socket_problem(docker_socket(), user)
    if denied:
        module.fail_json(msg="Pre-flight failed; nothing was changed: %s" % denied, problems=[denied], user=user)
    try:
        state, compose = host_state.target_paths(module.params)
        project = compose_project(module.params, compose)
        compose = Path(project["compose_path"])
        use_project(compose, project["name"], project["working_dir"], project["config_files"])
        prefetch(questions(module.params, compose))
        problems, facts, warnings = check(module.params, state, compose)
        redactor = Redactor.for_target(state, compose if compose.is_file() else None)
        # A source the redactor could not read is said, not swallowed.
        warnings = list(warnings) + redactor.notes
    except PermissionError as exc:
        denied = permission_problem(exc, user)
        module.fail_json(msg="Pre-flight failed; nothing was changed: %s" % denied, problems=[denied], user=user)
    result = redactor.value(
        {
            "changed": False,
            "problems": problems,
            "warnings_text": warnings,
            "facts": facts,
            "state_dir": str(state),
            "compose_path": str(compose),
            "project": project,
            "python": ".".join(str(x) for x in sys.version_info[:3]),
        }
    )
    if problems:
        module.fail_json(
            msg="Pre-flight failed; nothing was changed: %s" % "; ".join(result["problems"]),
            **{k: v for k, v in result.items() if k != "changed"},
        )
    if module.params["lock_owner"]:
        # The state folder and the lock are root's alone (after the checks: git keeps its index's modes).
        host_state.private_files()
        lock = take_lock(module, state)
        result.update(lock=lock, changed=not lock["again"])
    module.exit_json(**result)


def take_lock(module, state):  # type: ignore[no-untyped-def]
    """The capture lock for lock_owner (capture_lock's V(acquired)); fails the module if another run holds it."""
    p = module.params
    owner = p["lock_owner"]
    if module.check_mode:
        checked = host_state.lock_check(state)
        held = checked["lock"] or {}
        if checked["held"] and held.get("owner") != owner and not p["lock_force"]:
            module.fail_json(msg=host_state.locked_message(state, held), state_dir=str(state))
        return {"broke": "", "again": held.get("owner") == owner, "lock": held}
    try:
        taken = host_state.lock_acquire(state, owner, p["lock_purpose"], p["lock_ttl"], p["lock_force"])
    except host_state.LockedError as exc:
        module.fail_json(msg=str(exc), state_dir=str(state))
    except (host_state.StateError, OSError) as exc:
        module.fail_json(msg="the lock could not be taken: %s" % exc, state_dir=str(state))
    return {"broke": taken["broke"], "again": taken["again"], "lock": taken["lock"]}


if __name__ == "__main__":
    main()
