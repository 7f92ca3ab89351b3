"""What ingester-capture keeps on the host: the contract of docs/host-state.md, in code, once.

Python 3.8+, standard library only. Every module that reads or writes the state folder goes
through here: the state key, the lock, the swap record, the swap and the restore.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import platform
import re
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.rsky.ingester_capture.plugins.module_utils.docker_cli import (
    config_json,
    current_project,
    use_project,
)
from ansible_collections.rsky.ingester_capture.plugins.module_utils.manifest import (
    read_json,
    sha256_bytes,
    write_atomic,
    write_json,
)
from ansible_collections.rsky.ingester_capture.plugins.module_utils.timeparse import iso, now_iso

LOCK_FILE = "lock"
SWAP_FILE = "swap.json"
BACKUP_FILE = "compose.orig"
ROLLBACK_FILE = "rollback.json"
SWAP_KEYS = (
    "compose_path",
    "service",
    "container",
    "original_image",
    "debug_image",
    "sha256_orig",
    "sha256_swapped",
    "swapped_at",
)
IMAGE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]*")


class StateError(Exception):
    """A step on the host state cannot go on; the message says why and what state the host is in."""


class LockedError(StateError):
    """Someone else holds the lock of this compose project."""


# --- where ------------------------------------------------------------------------------------


def state_key(project_dir: str, compose_file: str, service: str) -> str:
    """The folder name of one compose project and service: 12 hex digits of a sha256."""
    return hashlib.sha256(("%s/%s:%s" % (project_dir, compose_file, service)).encode()).hexdigest()[:12]


def state_dir(root: str, project_dir: str, compose_file: str, service: str) -> Path:
    return Path(root) / state_key(project_dir, compose_file, service)


def compose_path(project_dir: str, compose_file: str) -> Path:
    return Path(project_dir.rstrip("/") or "/") / compose_file


# What the capture keeps on the host is unredacted until the seal: folders 0700 and files 0600
# (docs/host-state.md) whatever umask the login, or sudo, left.
PRIVATE_UMASK = 0o077


def private_files() -> None:
    """Create this process's files and folders, and its children's, for their owner alone."""
    os.umask(PRIVATE_UMASK)


def make_state_dir(state: Path) -> None:
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(str(state), 0o700)


# --- the lock ---------------------------------------------------------------------------------


def process_start(pid: int) -> Optional[str]:
    """The start time of a live process (clock ticks since boot, /proc/PID/stat field 22)."""
    try:
        raw = Path("/proc/%d/stat" % pid).read_text()
    except (OSError, ValueError):
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    # A zombie (nobody reaped it yet) is as dead as a process can be.
    if not fields or fields[0] in ("Z", "X") or len(fields) <= 19:
        return None
    return fields[19]


def lock_stale_reason(held: Dict[str, Any], now: Optional[float] = None) -> str:
    """Why a lock no longer holds ("" when it does): its capture's process is gone, or it expired."""
    now = time.time() if now is None else now
    pid = held.get("pid")
    if isinstance(pid, int) and held.get("pid_start") and held.get("host") in (None, platform.node()):
        if process_start(pid) != held.get("pid_start"):
            return "its capture window (pid %d) is no longer running" % pid
        return ""
    try:
        expires = float(held.get("expires", 0))
    except (TypeError, ValueError):
        expires = 0
    if expires < now:
        return "it expired at %s" % iso(expires)
    return ""


def read_lock(state: Path) -> Optional[Dict[str, Any]]:
    path = state / LOCK_FILE
    if not path.exists():
        return None
    held = read_json(path)
    if not held:
        # Written right after the O_EXCL create: give the writer a moment before calling it broken.
        try:
            young = time.time() - path.stat().st_mtime < 10
        except OSError:
            return None
        return {"owner": "?", "purpose": "capture", "expires": time.time() + 10} if young else {}
    return held


def lock_check(state: Path) -> Dict[str, Any]:
    """Whether the lock is held (read-only: never creates anything)."""
    held = read_lock(state)
    if held is None:
        return {"held": False, "stale": "", "lock": None}
    stale = lock_stale_reason(held)
    return {"held": not stale, "stale": stale, "lock": held}


def locked_message(state: Path, held: Dict[str, Any]) -> str:
    return (
        "another %s holds the lock on this host (owner %s, since %s, %s); wait for it to finish, "
        "or pass -e capture_break_lock=true if it died"
        % (held.get("purpose", "capture"), held.get("owner"), held.get("since"), state / LOCK_FILE)
    )


def lock_acquire(state: Path, owner: str, purpose: str, ttl: float, force: bool = False) -> Dict[str, Any]:
    """Take the lock (O_EXCL create), or say who holds it. A stale lock is broken and said so."""
    make_state_dir(state)
    path = state / LOCK_FILE
    body = {
        "owner": owner,
        "purpose": purpose,
        "host": platform.node(),
        "since": now_iso(),
        "expires": time.time() + ttl,
        "pid": None,
        "pid_start": None,
    }
    broke = ""
    for _ in range(3):
        try:
            fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            held = read_lock(state) or {}
            if held.get("owner") == owner:
                return {"acquired": True, "again": True, "broke": "", "lock": held}
            stale = lock_stale_reason(held) if held else "it was unreadable"
            if stale or force:
                broke = "took over the lock of %s (%s)" % (held.get("owner"), stale or "capture_break_lock")
                try:
                    path.unlink()
                except OSError:
                    pass
                continue
            raise LockedError(locked_message(state, held)) from None
        with os.fdopen(fd, "w") as handle:
            json.dump(body, handle)
        return {"acquired": True, "again": False, "broke": broke, "lock": body}
    raise StateError("could not take the lock %s" % path)


def lock_attach(state: Path, owner: str, pid: int, until: float) -> None:
    """Name the process that keeps the capture alive (the window), so its death frees the lock."""
    held = read_lock(state)
    if not held or held.get("owner") != owner:
        return
    held.update({"pid": pid, "pid_start": process_start(pid), "host": platform.node(), "expires": until})
    write_json(state / LOCK_FILE, held)


def lock_detach(state: Path, owner: str, until: float) -> None:
    """The window ended normally: the capture goes on (collect, seal, fetch) without a process on
    the host, so the lock holds by its time to live again."""
    held = read_lock(state)
    if not held or held.get("owner") != owner:
        return
    held.update({"pid": None, "pid_start": None, "expires": until})
    write_json(state / LOCK_FILE, held)


def lock_release(state: Path, owner: str, force: bool = False) -> Dict[str, Any]:
    held = read_lock(state)
    if held is None:
        return {"released": False, "reason": "no lock"}
    if held.get("owner") == owner or force:
        try:
            (state / LOCK_FILE).unlink()
        except OSError:
            pass
        return {"released": True, "reason": ""}
    return {"released": False, "reason": "held by %s" % held.get("owner")}


# --- the swap ---------------------------------------------------------------------------------

IMAGE_LINE = re.compile(
    r"^(?P<indent>[ \t]+)image:(?P<sp>[ \t]*(?:&[^\s]+[ \t]+)?)(?P<q>[\"']?)(?P<value>[^\"'#\s&*][^\"'#\s]*)(?P=q)"
    r"(?P<rest>[ \t]*(?:#.*)?)$"
)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def find_image_line(text: str, service: str) -> Tuple[int, Any]:
    """(line index, match) of the ``image:`` key of one service, found without a YAML library."""
    in_services = False
    service_indent = -1
    child_indent = -1
    in_service = False
    names = {service, '"%s"' % service, "'%s'" % service}
    for index, line in enumerate(text.splitlines()):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = _indent(line)
        if indent == 0:
            in_services = stripped.split("#", 1)[0].strip() == "services:"
            in_service = False
            continue
        if not in_services:
            continue
        if service_indent < 0:
            service_indent = indent
        if indent == service_indent:
            key = stripped.split("#", 1)[0].strip()
            in_service = key.endswith(":") and key[:-1].strip() in names
            child_indent = -1
            continue
        if in_service and indent > service_indent:
            if child_indent < 0:
                child_indent = indent
            if indent == child_indent:
                match = IMAGE_LINE.match(line.rstrip("\r\n"))
                if match:
                    return index, match
    raise StateError(
        "no plain 'image:' value found for service '%s' (an image given by a YAML alias, or a service "
        "built with 'build:' only, cannot be swapped safely); compose file left as it was" % service
    )


def current_image(compose: Path, service: str) -> Optional[str]:
    try:
        _, match = find_image_line(compose.read_text(encoding="utf-8"), service)
    except (StateError, OSError, UnicodeDecodeError):
        return None
    return match.group("value")


def swap_text(text: str, service: str, image: str) -> Tuple[str, str]:
    """The compose text with one service's image replaced, every other byte kept; and the old image."""
    index, match = find_image_line(text, service)
    lines = text.splitlines(True)
    line = lines[index]
    ending = line[len(line.rstrip("\r\n")) :]
    lines[index] = "%simage:%s%s%s%s%s%s" % (
        match.group("indent"),
        match.group("sp"),
        match.group("q"),
        image,
        match.group("q"),
        match.group("rest"),
        ending,
    )
    return "".join(lines), match.group("value")


def unified_diff(before: str, after: str, name: str, before_label: str, after_label: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(True),
            after.splitlines(True),
            "%s (%s)" % (name, before_label),
            "%s (%s)" % (name, after_label),
        )
    )


def read_swap(state: Path) -> Optional[Dict[str, Any]]:
    path = state / SWAP_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StateError(
            "the backup in %s cannot be trusted, refusing: swap.json is unreadable (%s)" % (state, exc)
        ) from exc
    if not isinstance(data, dict):
        raise StateError("the backup in %s cannot be trusted, refusing: swap.json is not an object" % state)
    return data


def prove_only_image_changes(compose: Path, candidate: Path, service: str, image: str) -> None:
    """Compose sees one difference between the two files: this service's image (every profile)."""
    before, after = config_json(compose), config_json(candidate)
    before_services = before.get("services", {}) or {}
    after_services = after.get("services", {}) or {}
    for svc in sorted(set(before_services) | set(after_services)):
        b = dict(before_services.get(svc, {}))
        a = dict(after_services.get(svc, {}))
        if svc == service:
            b.pop("image", None)
            a.pop("image", None)
        if a != b:
            raise StateError(
                "the swap would change more than the image of '%s' (service '%s' differs); "
                "compose file left as it was" % (service, svc)
            )
    if (after_services.get(service) or {}).get("image") != image:
        raise StateError("the swapped compose file does not resolve to the debug image; compose file left as it was")


def plan_swap(state: Path, compose: Path, service: str, image: str) -> Dict[str, Any]:
    """What a swap would do, changing nothing: the new bytes, the original image, the diff."""
    if not IMAGE_REF.fullmatch(image):
        raise StateError("not a valid image reference: %r" % image)
    raw = compose.read_bytes()
    text = raw.decode("utf-8")
    previous = read_swap(state)
    current = sha256_bytes(raw)
    again = bool(previous and current == previous.get("sha256_swapped"))
    new_text, found = swap_text(text, service, image)
    # A capture ran before and was not rolled back: the backup already holds the original.
    original_image = str(previous["original_image"]) if again and previous else found
    return {
        "raw": raw,
        "new_raw": new_text.encode("utf-8"),
        "before": text,
        "after": new_text,
        "original_image": original_image,
        "again": again,
        "sha256_orig": str(previous["sha256_orig"]) if again and previous else current,
        "changed": new_text.encode("utf-8") != raw,
        "diff": unified_diff(text, new_text, compose.name, "before", "swapped"),
    }


def apply_swap(state: Path, compose: Path, service: str, container: str, image: str, plan: Dict[str, Any]) -> None:
    """Validate the swapped file beside the original (relative paths resolve the same way), prove
    that only the image changes, keep the byte-exact backup and the swap record, then replace."""
    make_state_dir(state)
    candidate = compose.with_name(".%s.ingester-capture.tmp" % compose.name)
    try:
        write_atomic(candidate, plan["new_raw"], mode=compose.stat().st_mode & 0o777)
        prove_only_image_changes(compose, candidate, service, image)
        if not plan["again"]:
            write_atomic(state / BACKUP_FILE, plan["raw"])
        write_json(
            state / SWAP_FILE,
            {
                "compose_path": str(compose),
                "service": service,
                "container": container,
                "original_image": plan["original_image"],
                "debug_image": image,
                "sha256_orig": plan["sha256_orig"],
                "sha256_swapped": sha256_bytes(plan["new_raw"]),
                "swapped_at": now_iso(),
                # The compose project the swap ran under, so a rollback recreates the same one.
                "project": recorded_project(compose),
            },
        )
        if plan["changed"]:
            candidate.replace(compose)
    finally:
        try:
            candidate.unlink()
        except OSError:
            pass


# --- the restore ------------------------------------------------------------------------------


def plan_restore(state: Path, compose: Path, service: str, force: bool) -> Dict[str, Any]:
    """What a restore would do (read-only). ``status`` is ``nothing`` (no swap recorded, with
    ``reason``) or ``restore`` (``file_state``: original, swapped or missing; edited only with force).
    Raises StateError when the backup cannot be trusted or the file was edited after the swap."""
    swap = read_swap(state)
    if swap is None:
        return plan_nothing(state, compose, service)
    missing = [k for k in SWAP_KEYS if k not in swap]
    backup_path = state / BACKUP_FILE
    backup = backup_path.read_bytes() if backup_path.is_file() else None
    problem = ""
    if missing:
        problem = "swap.json lacks %s" % ", ".join(missing)
    elif swap["compose_path"] != str(compose) or swap["service"] != service:
        problem = "swap.json is for %s service %s, not %s service %s" % (
            swap["compose_path"],
            swap["service"],
            compose,
            service,
        )
    elif backup is None:
        problem = "compose.orig is missing"
    elif sha256_bytes(backup) != swap["sha256_orig"]:
        problem = "compose.orig has sha256 %s, swap.json recorded %s" % (sha256_bytes(backup), swap["sha256_orig"])
    if problem or backup is None:
        raise StateError("The backup in %s cannot be trusted, refusing to roll back: %s." % (state, problem))
    current = compose.read_bytes() if compose.exists() else None
    digest = sha256_bytes(current) if current is not None else ""
    if current is None:
        file_state = "missing"
    elif digest == swap["sha256_orig"]:
        file_state = "original"
    elif digest == swap["sha256_swapped"]:
        file_state = "swapped"
    else:
        file_state = "edited"
    if file_state == "edited" and not force:
        raise StateError(
            "%s changed after capture.yml swapped it (sha256 %s, neither the swapped %s nor the original %s). "
            "Compare it with %s; rerun with -e rollback_force=true to restore the backup anyway (the edit is lost). "
            "Nothing was changed." % (compose, digest, swap["sha256_swapped"], swap["sha256_orig"], backup_path)
        )
    before = (current or b"").decode("utf-8", "replace")
    after = backup.decode("utf-8", "replace")
    return {
        "status": "restore",
        "swap": swap,
        "file_state": file_state,
        "backup": backup,
        "changed": file_state != "original",
        "before": before,
        "after": after,
        "diff": unified_diff(before, after, compose.name, "now", "restored"),
    }


def plan_nothing(state: Path, compose: Path, service: str) -> Dict[str, Any]:
    """No swap.json: say what the last rollback did, or refuse to guess."""
    last = read_json(state / ROLLBACK_FILE)
    backup_path = state / BACKUP_FILE
    current = compose.read_bytes() if compose.is_file() else None
    if last:
        note = ""
        if current is not None and sha256_bytes(current) != last.get("sha256_orig"):
            note = " The compose file has changed since (a deployment?); it is left alone."
        return {
            "status": "nothing",
            "changed": False,
            "reason": "Nothing to roll back: no swap is recorded for %s. The last rollback, at %s, put it back on %s.%s"
            % (compose, last.get("rolled_back_at"), last.get("original_image"), note),
        }
    if backup_path.is_file() and current is not None and backup_path.read_bytes() == current:
        return {
            "status": "nothing",
            "changed": False,
            "reason": "Nothing to roll back: no swap is recorded for %s. The compose file matches the backup in %s."
            % (compose, state),
        }
    raise StateError(
        "No backup to roll back from: %s does not exist %s. Is this the host and compose project capture.yml ran "
        "against (%s, service %s)? Refusing to guess."
        % (
            state / SWAP_FILE,
            "(compose.orig does, but without swap.json the original image is unknown)"
            if backup_path.is_file()
            else "and neither does compose.orig",
            compose,
            service,
        )
    )


def write_restored(compose: Path, plan: Dict[str, Any]) -> None:
    """Put the byte-exact backup back (keeping the file's mode)."""
    if plan["changed"]:
        mode = (compose.stat().st_mode & 0o777) if compose.exists() else 0o644
        write_atomic(compose, plan["backup"], mode=mode)


def retire_swap(state: Path, compose: Path, swap: Dict[str, Any], by: str) -> Dict[str, Any]:
    """Record the rollback and retire swap.json: the host is back on the original."""
    done = {
        "rolled_back_at": now_iso(),
        "compose_path": str(compose),
        "original_image": swap["original_image"],
        "sha256_orig": swap["sha256_orig"],
        "by": by,
    }
    write_json(state / ROLLBACK_FILE, done)
    try:
        (state / SWAP_FILE).unlink()
    except OSError:
        pass
    return done


def target_argument_spec() -> Dict[str, Any]:
    """The argument spec of the target options (doc fragment rsky.ingester_capture.target)."""
    return {
        "project_dir": {"type": "path", "required": True},
        "compose_file": {"type": "str", "default": "docker-compose.prod-rust.yml"},
        "service": {"type": "str", "default": "ingester"},
        "state_dir": {"type": "path", "default": "/var/lib/ingester-capture"},
        "project_name": {"type": "str", "default": ""},
        "project_working_dir": {"type": "str", "default": ""},
        "project_config_files": {"type": "list", "elements": "str", "default": []},
    }


def recorded_project(compose: Path) -> Dict[str, Any]:
    """The compose project this process runs its compose calls under, as swap.json keeps it."""
    project = current_project()
    return {
        "name": str(project.get("name") or ""),
        "working_dir": str(project.get("working_dir") or compose.parent),
        "config_files": [str(f) for f in project.get("files") or [compose]],
        "compose_path": str(compose),
    }


def swapped_file(config_files: Sequence[str], service: str) -> Optional[Path]:
    """Of a container's config files, the last that sets the service's image (compose merges in
    order, so that is the one whose ``image:`` counts); None when none does."""
    found = None
    for name in config_files:
        if current_image(Path(name), service) is not None:
            found = Path(name)
    return found


def _swap_project(state: Path) -> Dict[str, Any]:
    try:
        swap = read_swap(state)
    except StateError:
        return {}
    project = (swap or {}).get("project")
    return project if isinstance(project, dict) and project.get("compose_path") else {}


def target_paths(params: Dict[str, Any]) -> Tuple[Path, Path]:
    """(this target's state folder, its compose file) from module parameters.

    The state folder is always the inventory's target (docs/host-state.md). The compose calls run
    under ``project_name``, ``project_working_dir`` and ``project_config_files`` when given (the
    running container's labels, read by preflight); when they are not and a swap is recorded,
    under the project the swap ran under, so a rollback recreates the same project."""
    state = state_dir(params["state_dir"], params["project_dir"], params["compose_file"], params["service"])
    compose = compose_path(params["project_dir"], params["compose_file"])
    name = params.get("project_name") or ""
    working_dir = params.get("project_working_dir") or ""
    files: List[str] = [str(f) for f in params.get("project_config_files") or [] if f]
    if not (name or working_dir or files):
        recorded = _swap_project(state)
        if recorded:
            name = str(recorded.get("name") or "")
            working_dir = str(recorded.get("working_dir") or "")
            files = [str(f) for f in recorded.get("config_files") or []]
            compose = Path(str(recorded["compose_path"]))
    if files and str(compose) not in files:
        compose = swapped_file(files, params["service"]) or Path(files[0])
    if name or working_dir or files:
        use_project(compose, name, working_dir, files)
    return state, compose
