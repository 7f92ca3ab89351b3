"""What ingester-capture keeps on the host: the contract of docs/host-state.md, in code, once.

Python 3.8+, standard library only. Every module that reads or writes the state folder goes
through here: the state key, the lock, the swap record, the swap and the restore.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ansible_collections.rsky.ingester_capture.plugins.module_utils.compose_text import (
    ComposeTextError,
    RefusedSwap,
    find_image_line,
    swap_edit,
    unified_diff,
)
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
# flock()ed around every step on the lock file; never removed (docs/host-state.md).
GUARD_FILE = "lock.guard"
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
# The labels docker compose puts on a container: the project it was started as.
PROJECT_LABEL = "com.docker.compose.project"
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


class UnsafeStateError(StateError):
    """The state folder, or a file in it, could have been written by someone else: it is not used."""


def _unsafe(path: Path, st: os.stat_result, what: str) -> str:
    """Why ``path`` cannot be trusted by this user ("" when it can)."""
    uid = os.geteuid()
    if st.st_uid != uid:
        return "%s %s is owned by uid %d, not by uid %d that runs the modules" % (what, path, st.st_uid, uid)
    if st.st_mode & 0o022:
        return "%s %s can be written by %s (mode %04o)" % (
            what,
            path,
            "group and others" if st.st_mode & 0o022 == 0o022 else "others" if st.st_mode & 0o002 else "group",
            stat.S_IMODE(st.st_mode),
        )
    return ""


def check_state_dir(state: Path) -> None:
    """The state folder and the configured root it is in (``capture_state_dir``) must be this
    user's alone to write: owned by the user running the modules, not writable by group or
    others. A folder missing is fine (make_state_dir creates it so). Raises UnsafeStateError."""
    for folder in (state.parent, state):
        try:
            st = folder.stat()
        except FileNotFoundError:
            continue
        problem = "the state folder %s is not a folder" % folder if not stat.S_ISDIR(st.st_mode) else ""
        problem = problem or _unsafe(folder, st, "the state folder")
        if problem:
            raise UnsafeStateError(
                "%s: refusing to use it, nothing was changed (make it that user's alone: chown, chmod go-w)" % problem
            )


def trusted_file(state: Path, name: str) -> Optional[Path]:
    """``state/name`` when it exists and only this user could have written it (a regular file,
    not a link, in a safe state folder); None when it does not exist. Raises UnsafeStateError."""
    check_state_dir(state)
    path = state / name
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    problem = "%s is not a regular file" % path if not stat.S_ISREG(st.st_mode) else ""
    problem = problem or _unsafe(path, st, "the state file")
    if problem:
        raise UnsafeStateError("%s: refusing to trust it, nothing was changed" % problem)
    return path


def make_state_dir(state: Path) -> None:
    """Create the state folder (0700) or check the one there; an unsafe one is refused, unchanged."""
    check_state_dir(state)
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    check_state_dir(state)
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
        if process_start(pid) == held.get("pid_start"):
            return ""
        ended = held.get("pid_ended_file")
        if not (ended and Path(str(ended)).exists()):
            return "its %s (pid %d) is no longer running" % (held.get("pid_role") or "capture window", pid)
        # That process ended by itself and said so (the build finished): the capture goes on
        # without a process on the host, and the lock holds by its time to live.
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
        # A lock appears whole (linked in once written); an empty one is from an older version
        # still writing it: give the writer a moment before calling it broken.
        try:
            young = time.time() - path.stat().st_mtime < 10
        except OSError:
            return None
        return {"owner": "?", "purpose": "capture", "expires": time.time() + 10} if young else {}
    return held


@contextmanager
def _guarded(state: Path) -> Iterator[None]:
    """Hold the state folder's lock guard (an exclusive ``flock`` on a file never removed) for one
    step on the lock file: read, decide and write happen as one, whoever else tries at the same
    time. The lock file itself cannot carry the flock, since a takeover replaces it."""
    fd = os.open(str(state / GUARD_FILE), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _create_lock(state: Path, body: Dict[str, Any]) -> bool:
    """Create the lock file whole, or return False when one exists (a hard link fails with EEXIST,
    like O_EXCL, but the lock appears with its content)."""
    tmp = state / (".%s.%d.tmp" % (LOCK_FILE, os.getpid()))
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(body, handle)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(str(tmp), str(state / LOCK_FILE))
        except FileExistsError:
            return False
        return True
    finally:
        try:
            tmp.unlink()
        except OSError:
            pass


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
    """Take the lock, or say who holds it. A stale lock is broken and said so. The check and the
    take are one step under the guard's flock: of many runs finding the same stale lock, one takes
    it over and the others are refused (they see the taker's live lock)."""
    make_state_dir(state)
    body = {
        "owner": owner,
        "purpose": purpose,
        "host": platform.node(),
        "since": now_iso(),
        "expires": time.time() + ttl,
        "pid": None,
        "pid_start": None,
    }
    with _guarded(state):
        broke = ""
        held = read_lock(state)
        if held is not None:
            if held.get("owner") == owner:
                return {"acquired": True, "again": True, "broke": "", "lock": held}
            stale = lock_stale_reason(held) if held else "it was unreadable"
            if not (stale or force):
                raise LockedError(locked_message(state, held))
            broke = "took over the lock of %s (%s)" % (held.get("owner"), stale or "capture_break_lock")
            try:
                (state / LOCK_FILE).unlink()
            except FileNotFoundError:
                pass
        if not _create_lock(state, body):
            # Only a writer that does not take the guard (an older version) gets here.
            raise LockedError(locked_message(state, read_lock(state) or {"owner": "?"}))
        return {"acquired": True, "again": False, "broke": broke, "lock": body}


def lock_attach(
    state: Path,
    owner: str,
    pid: int,
    until: Optional[float] = None,
    role: str = "capture window",
    ended_file: Optional[Path] = None,
) -> None:
    """Name the process that keeps the capture alive (the window, or the debug build), so its
    death frees the lock. ``ended_file``: written when that process ends by itself; once it
    exists, the process's end is no death of the capture. ``until``: a new expiry (default: keep)."""
    if not state.is_dir():
        return
    with _guarded(state):
        held = read_lock(state)
        if not held or held.get("owner") != owner:
            return
        held.update(
            {
                "pid": pid,
                "pid_start": process_start(pid),
                "pid_role": role,
                "pid_ended_file": str(ended_file) if ended_file else None,
                "host": platform.node(),
            }
        )
        if until is not None:
            held["expires"] = until
        write_json(state / LOCK_FILE, held)


def lock_detach(state: Path, owner: str, until: float) -> None:
    """The window ended normally: the capture goes on (collect, seal, fetch) without a process on
    the host, so the lock holds by its time to live again."""
    if not state.is_dir():
        return
    with _guarded(state):
        held = read_lock(state)
        if not held or held.get("owner") != owner:
            return
        held.update({"pid": None, "pid_start": None, "pid_role": None, "pid_ended_file": None, "expires": until})
        write_json(state / LOCK_FILE, held)


def lock_release(state: Path, owner: str, force: bool = False) -> Dict[str, Any]:
    """Give the lock back if ``owner`` holds it (or with ``force``); another run's lock stays."""
    if not (state / LOCK_FILE).exists():
        return {"released": False, "reason": "no lock"}
    with _guarded(state):
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
#
# Which line of the compose file a swap edits, and how, is compose_text's (pure); here the file
# is read, compose asked what it resolves, and the backup and record kept.


def current_image(compose: Path, service: str) -> Optional[str]:
    """The text of the service's own ``image:`` value (a ``*alias`` as written); None without one."""
    try:
        _text, match = find_image_line(compose.read_text(encoding="utf-8"), service)
    except (ComposeTextError, OSError, UnicodeDecodeError):
        return None
    return str(match["value"])


def resolved_image(compose: Path, service: str) -> Optional[str]:
    """The service's image as compose resolves it (interpolation, anchors, merge keys, every
    profile, the project's other files); None when compose gives it none (built only)."""
    found = (config_json(compose).get("services", {}) or {}).get(service) or {}
    image = found.get("image") if isinstance(found, dict) else None
    return str(image) if image else None


def read_swap(state: Path) -> Optional[Dict[str, Any]]:
    """The swap record, or None. Raises StateError when it cannot be trusted: unreadable, not an
    object, or in a folder (or a file) someone other than this user could have written."""
    path = trusted_file(state, SWAP_FILE)
    if path is None:
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


def prove_only_image_changes(compose: Path, candidate: Path, service: str, image: str, line: int = 0) -> None:
    """Compose sees one difference between the two files: this service's image (every profile)."""
    where = "%s line %d: " % (compose, line) if line else ""
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
                "%sthe swap would change more than the image of '%s' (service '%s' differs); "
                "compose file left as it was" % (where, service, svc)
            )
    if (after_services.get(service) or {}).get("image") != image:
        raise StateError(
            "%sthe swapped compose file does not resolve to the debug image; compose file left as it was" % where
        )


@dataclass(frozen=True)
class SwapPlan:
    """What a swap would do: ``raw`` the compose file's bytes now, ``new_raw`` after the swap (and
    ``before``/``after`` as text, ``diff`` between them); the image compose resolves now
    (``original_image``) and the value on the edited line (``original_text``, "" when inserted);
    ``line`` (1-based), ``edit`` (replace or insert) and ``how`` (one sentence); ``again`` when the
    file is already this swap's result (the backup holds the original, whose digest is
    ``sha256_orig``); ``changed`` when the bytes differ."""

    raw: bytes
    new_raw: bytes
    before: str
    after: str
    original_image: str
    original_text: str
    line: int
    edit: str
    how: str
    again: bool
    sha256_orig: str
    changed: bool
    diff: str


def plan_swap(state: Path, compose: Path, service: str, image: str) -> SwapPlan:
    """What a swap would do, changing nothing: the new bytes, the original image, the diff."""
    if not IMAGE_REF.fullmatch(image):
        raise StateError("not a valid image reference: %r" % image)
    raw = compose.read_bytes()
    text = raw.decode("utf-8")
    previous = read_swap(state)
    current = sha256_bytes(raw)
    again = bool(previous and current == previous.get("sha256_swapped"))
    edit = swap_edit(text, service, image, str(compose))
    new_text = edit["text"]
    if again and previous:
        # A capture ran before and was not rolled back: the backup already holds the original.
        original_image = str(previous["original_image"])
    else:
        resolved = resolved_image(compose, service)
        if resolved is None:
            raise RefusedSwap(
                str(compose),
                edit["site"]["block"].header,
                "compose resolves no image for service '%s' (it is built, not pulled), so there is no tag to swap"
                % service,
            )
        original_image = resolved
    return SwapPlan(
        raw=raw,
        new_raw=new_text.encode("utf-8"),
        before=text,
        after=new_text,
        original_image=original_image,
        original_text=edit["found"],
        line=edit["line"],
        edit=edit["edit"],
        how=edit["how"],
        again=again,
        sha256_orig=str(previous["sha256_orig"]) if again and previous else current,
        changed=new_text.encode("utf-8") != raw,
        diff=unified_diff(text, new_text, compose.name, "before", "swapped"),
    )


def apply_swap(state: Path, compose: Path, service: str, container: str, image: str, plan: SwapPlan) -> None:
    """Validate the swapped file beside the original (relative paths resolve the same way), prove
    that only the image changes, keep the byte-exact backup and the swap record, then replace."""
    make_state_dir(state)
    candidate = compose.with_name(".%s.ingester-capture.tmp" % compose.name)
    try:
        write_atomic(candidate, plan.new_raw, mode=compose.stat().st_mode & 0o777)
        prove_only_image_changes(compose, candidate, service, image, plan.line)
        if not plan.again:
            write_atomic(state / BACKUP_FILE, plan.raw)
        write_json(
            state / SWAP_FILE,
            {
                "compose_path": str(compose),
                "service": service,
                "container": container,
                "original_image": plan.original_image,
                "debug_image": image,
                "sha256_orig": plan.sha256_orig,
                "sha256_swapped": sha256_bytes(plan.new_raw),
                "swapped_at": now_iso(),
                # What the swap edited: the line (1-based), replace or insert, the value it held.
                "line": plan.line,
                "edit": plan.edit,
                "original_text": plan.original_text,
                # The compose project the swap ran under, so a rollback recreates the same one.
                "project": recorded_project(compose),
            },
        )
        if plan.changed:
            candidate.replace(compose)
    finally:
        try:
            candidate.unlink()
        except OSError:
            pass


# --- the restore ------------------------------------------------------------------------------


def _same_file(a: Path, b: Path) -> bool:
    return os.path.realpath(str(a)) == os.path.realpath(str(b))


@dataclass(frozen=True)
class RestoreTargets:
    """What a restore may write and run: ``files``, the inventory's compose file first, then the
    config files of the service's compose project as the role or Docker names them; ``folders``,
    the project directories compose may run from. Never what the state folder says."""

    files: Tuple[Path, ...]
    folders: Tuple[Path, ...]


def restore_targets(params: Dict[str, Any], labels: Optional[Dict[str, Any]] = None) -> RestoreTargets:
    """The inventory's compose file and project folder, the project the role passed (preflight
    read it from the running container) and the one the container's compose labels name
    (``labels``: Docker's record of how it was started)."""
    files = [compose_path(params["project_dir"], params["compose_file"])]
    folders = [Path(params["project_dir"]), files[0].parent]
    if params.get("project_working_dir"):
        folders.append(Path(str(params["project_working_dir"])))
    files += [Path(str(f)) for f in params.get("project_config_files") or [] if f]
    labels = labels or {}
    working_dir = str(labels.get(PROJECT_LABEL + ".working_dir") or "")
    if working_dir:
        folders.append(Path(working_dir))
    named = str(labels.get(PROJECT_LABEL + ".config_files") or "")
    files += [Path(working_dir or "/") / f.strip() for f in named.split(",") if f.strip()]
    folders += [f.parent for f in files]
    return RestoreTargets(tuple(files), tuple(folders))


def restore_target_problem(compose: Path, allowed: RestoreTargets) -> str:
    """Why a restore of ``compose``, under the compose project this process runs its compose calls
    under (use_project: the role's, or swap.json's), is not among ``allowed`` ("" when it is):
    a swap record cannot choose what a rollback writes or runs."""
    if not any(_same_file(compose, f) for f in allowed.files):
        return (
            "the restore target %s is neither the inventory's compose file %s nor a config file of the service's project"
            % (
                compose,
                allowed.files[0],
            )
        )
    project = current_project()
    stray = [str(f) for f in project.get("files") or [] if not any(_same_file(Path(str(f)), a) for a in allowed.files)]
    if stray:
        return "the compose project to recreate names %s, not a config file of the service's project" % ", ".join(stray)
    working_dir = project.get("working_dir")
    if working_dir and not any(_same_file(Path(str(working_dir)), d) for d in allowed.folders):
        return "the compose project to recreate runs from %s, not from the service's project folder" % working_dir
    return ""


@dataclass(frozen=True)
class RestorePlan:
    """What a restore would do. ``status`` is ``nothing`` (no swap recorded; ``reason`` says what
    the host shows instead) or ``restore``: the swap record (``swap``), the compose file's state
    (``file_state``: original, swapped, edited or missing), the backup's bytes (``backup``), and
    ``before``/``after``/``diff`` of the file; ``changed`` when the file would be written."""

    status: str
    changed: bool
    reason: str = ""
    swap: Optional[Dict[str, Any]] = None
    file_state: str = ""
    backup: bytes = b""
    before: str = ""
    after: str = ""
    diff: str = ""


def plan_restore(state: Path, compose: Path, service: str, force: bool, allowed: RestoreTargets) -> RestorePlan:
    """What a restore would do (read-only): a RestorePlan (``file_state`` edited only with force).
    Raises StateError when the backup cannot be trusted (a state folder others can write, a record
    for another file), the target is not among ``allowed`` (restore_targets), or the file was edited
    after the swap."""
    swap = read_swap(state)
    if swap is None:
        return plan_nothing(state, compose, service)
    missing = [k for k in SWAP_KEYS if k not in swap]
    trusted = trusted_file(state, BACKUP_FILE)
    backup = trusted.read_bytes() if trusted is not None else None
    backup_path = state / BACKUP_FILE
    problem = restore_target_problem(compose, allowed)
    if problem:
        pass  # the first problem found is the one said
    elif missing:
        problem = "swap.json lacks %s" % ", ".join(missing)
    elif not _same_file(Path(str(swap["compose_path"])), compose) or swap["service"] != service:
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
    return RestorePlan(
        status="restore",
        swap=swap,
        file_state=file_state,
        backup=backup,
        changed=file_state != "original",
        before=before,
        after=after,
        diff=unified_diff(before, after, compose.name, "now", "restored"),
    )


def plan_nothing(state: Path, compose: Path, service: str) -> RestorePlan:
    """No swap.json: say what the last rollback did, or refuse to guess."""
    last = read_json(state / ROLLBACK_FILE)
    backup_path = state / BACKUP_FILE
    current = compose.read_bytes() if compose.is_file() else None
    if last:
        note = ""
        if current is not None and sha256_bytes(current) != last.get("sha256_orig"):
            note = " The compose file has changed since (a deployment?); it is left alone."
        return RestorePlan(
            status="nothing",
            changed=False,
            reason="Nothing to roll back: no swap is recorded for %s. The last rollback, at %s, put it back on %s.%s"
            % (compose, last.get("rolled_back_at"), last.get("original_image"), note),
        )
    if backup_path.is_file() and current is not None and backup_path.read_bytes() == current:
        return RestorePlan(
            status="nothing",
            changed=False,
            reason="Nothing to roll back: no swap is recorded for %s. The compose file matches the backup in %s."
            % (compose, state),
        )
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


def write_restored(compose: Path, plan: RestorePlan) -> None:
    """Put the byte-exact backup back (keeping the file's mode)."""
    if plan.changed:
        mode = (compose.stat().st_mode & 0o777) if compose.exists() else 0o644
        write_atomic(compose, plan.backup, mode=mode)


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
    if files:
        # The file whose image: counts is the last that sets it (an override file), even when
        # the inventory's file is one of the project's files too.
        compose = swapped_file(files, params["service"]) or (compose if str(compose) in files else Path(files[0]))
    if name or working_dir or files:
        use_project(compose, name, working_dir, files)
    return state, compose
