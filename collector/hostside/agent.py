#!/usr/bin/env python3
"""ingester-capture host agent: the steps of a capture that run on the production host.

Stdlib only: production hosts have python3 but not our virtual environment. The capture roles
copy this file (with redact.py beside it) to a temporary folder on the host and call it with
argv, never through a shell.

Subcommands (each prints one JSON object on stdout; errors are one line on stderr):
  preflight  read-only checks: docker, compose v2, compose file, service, disk, build inputs
  lock       acquire / release the per-project capture lock
  run        run one command, its output appended to a bundle file, and record it
  snapshot   the production container's logs and inspect output, before anything changes
  swap       swap one service's image tag in the compose file, keeping a byte-exact backup
  restore    put the backup back (rollback after a failed capture)
  window     start | wait | stop the capture window (a detached process owning the followers)
  collect    dmesg, inspect, stats, compose ps, compose file, host facts
  seal       redact, cap the size, write manifest.json and the tarball

Exit codes: 0 done; 1 the step failed (message on stderr); 2 usage; 75 the lock is held.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import difflib
import hashlib
import heapq
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

if __package__:
    from .redact import RedactError, Redactor, collect_inspect_env, redact_inspect
else:  # run as a script on the host, with redact.py beside it
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from redact import (  # type: ignore[no-redef,import-not-found,unused-ignore]
        RedactError,
        Redactor,
        collect_inspect_env,
        redact_inspect,
    )

SCHEMA_VERSION = 1
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 75
COMMANDS_FILE = ".commands.jsonl"
PROGRESS_FILE = ".window.json"
HEARTBEAT_FILE = ".heartbeat"
STOP_FILE = ".stop"


class AgentError(Exception):
    """A step cannot go on; the message says what is wrong and what state the host is in."""


class LockedError(AgentError):
    """Another capture holds the lock."""


# --- small helpers ----------------------------------------------------------------------------


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write a file so a reader sees the old or the new content, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_json(path: Path, obj: object, mode: int = 0o600) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode(), mode)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_RECORD_LOCK = threading.Lock()


def record(out: Path, entry: dict[str, Any]) -> None:
    """Append how a bundle file was made; seal turns these into manifest.json."""
    out.mkdir(parents=True, exist_ok=True)
    with _RECORD_LOCK, (out / COMMANDS_FILE).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")


def run_to_file(
    out: Path,
    rel: str,
    argv: Sequence[str],
    *,
    timeout: float = 120,
    append: bool = False,
    stderr_to_stdout: bool = True,
    cwd: str | None = None,
) -> int:
    """Run argv with its output in out/rel; record the command, exit code and times."""
    target = out / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    started = now_iso()
    timed_out = False
    with target.open("ab" if append else "wb") as handle:
        if append:
            handle.write(f"$ {' '.join(argv)}\n".encode())
            handle.flush()
        try:
            proc = subprocess.run(
                list(argv),
                stdout=handle,
                stderr=subprocess.STDOUT if stderr_to_stdout else subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                cwd=cwd,
                check=False,
            )
            code = proc.returncode
        except subprocess.TimeoutExpired:
            timed_out, code = True, -1
        except OSError as exc:
            handle.write(f"cannot run {argv[0]}: {exc}\n".encode())
            code = 127
    record(
        out,
        {
            "file": rel,
            "argv": list(argv),
            "exit_code": code,
            "started": started,
            "ended": now_iso(),
            "timed_out": timed_out,
        },
    )
    return code


def capture(argv: Sequence[str], timeout: float = 60, cwd: str | None = None) -> tuple[int, str, str]:
    """Run a short read-only command; (exit code, stdout, stderr)."""
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            errors="replace",
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return -1, "", f"{argv[0]} timed out after {timeout:.0f} s"
    except OSError as exc:
        return 127, "", f"cannot run {argv[0]}: {exc}"
    return proc.returncode, proc.stdout, proc.stderr


def compose_argv(compose: Path, *rest: str) -> list[str]:
    return [
        "docker",
        "compose",
        "--project-directory",
        str(compose.parent),
        "-f",
        str(compose),
        *rest,
    ]


def inspect_container(name: str) -> dict[str, Any] | None:
    code, out, _ = capture(["docker", "inspect", "--type", "container", name])
    if code != 0:
        return None
    try:
        data = json.loads(out)
    except ValueError:
        return None
    return data[0] if isinstance(data, list) and data else None


# --- preflight --------------------------------------------------------------------------------


def cmd_preflight(args: argparse.Namespace) -> int:
    """Read-only checks; every problem found is listed, nothing is changed."""
    problems: list[str] = []
    facts: dict[str, Any] = {}
    project = Path(args.project_dir)
    compose = project / args.compose_file

    code, out, err = capture(["docker", "version", "--format", "{{json .Server}}"])
    if code != 0:
        problems.append(f"docker engine not reachable: {(err or out).strip()[:200]}")
    else:
        with contextlib.suppress(ValueError):
            facts["docker_version"] = json.loads(out).get("Version")
    code, out, err = capture(["docker", "compose", "version", "--short"])
    if code != 0 or not out.strip().lstrip("v").startswith("2"):
        problems.append("Docker Compose v2 is missing ('docker compose version' failed or is not 2.x)")
    else:
        facts["compose_version"] = out.strip()

    if not compose.is_file():
        problems.append(f"compose file not found: {compose}")
    else:
        code, out, err = capture(compose_argv(compose, "--profile", "*", "config", "--services"))
        services = out.split()
        if code != 0:
            problems.append(f"compose config does not validate: {err.strip()[:300]}")
        elif args.service not in services:
            problems.append(f"service '{args.service}' is not in {compose.name} (services: {', '.join(services)})")
        else:
            code, _, err = capture(compose_argv(compose, "config", "-q"))
            if code != 0:
                problems.append(f"compose config does not validate: {err.strip()[:300]}")
            facts["image"] = current_image(compose, args.service)

    if args.mode == "capture":
        context = (project / args.build_context).resolve()
        dockerfile = (project / args.dockerfile).resolve()
        if not context.is_dir():
            problems.append(f"build context not found: {context}")
        if not dockerfile.is_file():
            problems.append(f"Dockerfile not found: {dockerfile}")
        if args.git_pull:
            git_dir = Path(args.git_dir or project)
            code, out, err = capture(["git", "-C", str(git_dir), "rev-parse", "--is-inside-work-tree"])
            if code != 0:
                problems.append(f"not a git checkout: {git_dir} ({err.strip()[:200]})")

    state = Path(args.state_dir)
    probe = state if state.exists() else state.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    facts["free_bytes"] = free
    if free < args.min_free_bytes:
        problems.append(f"not enough disk for the bundle on {probe}: {free} bytes free, need {args.min_free_bytes}")
    container = inspect_container(args.container)
    facts["container_exists"] = container is not None
    if container is not None:
        facts["container_id"] = container.get("Id")
        facts["container_image"] = container.get("Config", {}).get("Image")
        labels = container.get("Config", {}).get("Labels") or {}
        facts["container_service"] = labels.get("com.docker.compose.service")
    emit({"ok": not problems, "problems": problems, "facts": facts})
    return EXIT_OK if not problems else EXIT_FAILED


# --- lock -------------------------------------------------------------------------------------


def cmd_lock(args: argparse.Namespace) -> int:
    path = Path(args.state_dir) / "lock"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if args.action == "release":
        try:
            held = json.loads(path.read_text())
        except (OSError, ValueError):
            emit({"released": False, "reason": "no lock"})
            return EXIT_OK
        if held.get("owner") == args.owner or args.force:
            path.unlink(missing_ok=True)
            emit({"released": True})
        else:
            emit({"released": False, "reason": f"held by {held.get('owner')}"})
        return EXIT_OK
    body = {
        "owner": args.owner,
        "pid": os.getpid(),
        "since": now_iso(),
        "expires": time.time() + args.ttl,
    }
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            try:
                held = json.loads(path.read_text())
            except (OSError, ValueError):
                held = {}
            if held.get("owner") == args.owner:
                emit({"acquired": True, "again": True})
                return EXIT_OK
            expired = float(held.get("expires", 0)) < time.time()
            if expired or args.force:
                path.unlink(missing_ok=True)
                continue
            raise LockedError(
                f"another capture holds the lock on this host (owner {held.get('owner')}, "
                f"since {held.get('since')}); wait for it to finish, or pass "
                f"-e capture_break_lock=true if it died"
            ) from None
        with os.fdopen(fd, "w") as handle:
            json.dump(body, handle)
        emit({"acquired": True})
        return EXIT_OK
    raise AgentError(f"could not take the lock {path}")


# --- run / snapshot ---------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    argv = args.argv[1:] if args.argv and args.argv[0] == "--" else args.argv
    if not argv:
        raise AgentError("run: no command given")
    code = run_to_file(Path(args.out), args.file, argv, timeout=args.timeout, append=True, cwd=args.cwd)
    tail = (Path(args.out) / args.file).read_bytes()[-2000:].decode(errors="replace")
    # The tail is shown in Ansible's output, which leaves the host: redact it like the bundle.
    redactor = Redactor.load(Path(args.map) if args.map else None)
    if args.learn_compose and Path(args.learn_compose).is_file():
        redactor.learn_assignments(Path(args.learn_compose).read_text(errors="replace"))
    emit({"exit_code": code, "tail": redactor.line(tail)})
    return EXIT_OK if code == 0 else EXIT_FAILED


def _ts_key(line: bytes) -> int:
    """Nanoseconds since the epoch of a `docker logs --timestamps` line (0 when absent)."""
    head = line[:40].split(b" ", 1)[0].decode("ascii", "replace")
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)?$", head)
    if not match:
        return 0
    base = dt.datetime.fromisoformat(match.group(1) + (match.group(3) or "Z").replace("Z", "+00:00"))
    frac = (match.group(2) or "").ljust(9, "0")
    return int(base.timestamp()) * 1_000_000_000 + int(frac or 0)


def _keyed(path: Path, stream: int) -> Iterator[tuple[int, int, int, bytes]]:
    last = 0
    with path.open("rb") as handle:
        for seq, line in enumerate(handle):
            key = _ts_key(line) or last
            last = key
            yield key, stream, seq, line if line.endswith(b"\n") else line + b"\n"


def docker_logs_merged(out: Path, rel: str, container: str, since: str | None = None) -> dict[str, Any]:
    """`docker logs --timestamps`, stdout and stderr merged in time order, into out/rel."""
    target = out / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_out, tmp_err = target.with_suffix(".stdout.tmp"), target.with_suffix(".stderr.tmp")
    argv = ["docker", "logs", "--timestamps"]
    if since:
        argv += ["--since", since]
    argv.append(container)
    started = now_iso()
    with tmp_out.open("wb") as o, tmp_err.open("wb") as e:
        try:
            code = subprocess.run(
                argv, stdout=o, stderr=e, stdin=subprocess.DEVNULL, timeout=600, check=False
            ).returncode
            timed_out = False
        except subprocess.TimeoutExpired:
            code, timed_out = -1, True
    lines = {"stdout": 0, "stderr": 0}
    with target.open("wb") as handle:
        for _, stream, _, line in heapq.merge(_keyed(tmp_out, 0), _keyed(tmp_err, 1)):
            handle.write(line)
            lines["stdout" if stream == 0 else "stderr"] += 1
    tmp_out.unlink(missing_ok=True)
    tmp_err.unlink(missing_ok=True)
    record(
        out,
        {
            "file": rel,
            "argv": argv,
            "exit_code": code,
            "started": started,
            "ended": now_iso(),
            "timed_out": timed_out,
            "lines": lines,
            "note": "stdout and stderr merged by timestamp",
        },
    )
    return {"exit_code": code, "lines": lines}


def cmd_snapshot(args: argparse.Namespace) -> int:
    out = Path(args.out)
    container = inspect_container(args.container)
    if container is None:
        record(
            out,
            {
                "file": "logs/pre-swap.log",
                "argv": [],
                "exit_code": None,
                "missing": True,
                "note": f"no container named {args.container} before the capture",
            },
        )
        emit({"exists": False})
        return EXIT_OK
    result = docker_logs_merged(out, "logs/pre-swap.log", args.container)
    run_to_file(out, "inspect-pre.json", ["docker", "inspect", args.container], stderr_to_stdout=False)
    emit(
        {
            "exists": True,
            "id": container.get("Id"),
            "image": container.get("Config", {}).get("Image"),
            "restart_count": container.get("RestartCount"),
            "status": container.get("State", {}).get("Status"),
            "log_lines": result["lines"],
        }
    )
    return EXIT_OK


# --- compose swap -----------------------------------------------------------------------------

IMAGE_LINE = re.compile(
    r"^(?P<indent>[ \t]+)image:(?P<sp>[ \t]*(?:&[^\s]+[ \t]+)?)(?P<q>[\"']?)(?P<value>[^\"'#\s&*][^\"'#\s]*)(?P=q)"
    r"(?P<rest>[ \t]*(?:#.*)?)$"
)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def find_image_line(text: str, service: str) -> tuple[int, re.Match[str]]:
    """(line index, match) of the `image:` key of one service, found without a YAML library."""
    lines = text.splitlines()
    in_services = False
    service_indent = -1
    child_indent = -1
    in_service = False
    names = {service, f'"{service}"', f"'{service}'"}
    for index, line in enumerate(lines):
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
    raise AgentError(
        f"no plain 'image:' value found for service '{service}' (an image given by a YAML alias, or a service "
        "built with 'build:' only, cannot be swapped safely)"
    )


def current_image(compose: Path, service: str) -> str | None:
    try:
        _, match = find_image_line(compose.read_text(encoding="utf-8"), service)
    except (AgentError, OSError, UnicodeDecodeError):
        return None
    return match.group("value")


def swap_text(text: str, service: str, image: str) -> tuple[str, str]:
    """The compose text with one service's image replaced; every other byte kept."""
    index, match = find_image_line(text, service)
    lines = text.splitlines(keepends=True)
    line = lines[index]
    ending = line[len(line.rstrip("\r\n")) :]
    new = (
        f"{match.group('indent')}image:{match.group('sp')}{match.group('q')}{image}"
        f"{match.group('q')}{match.group('rest')}{ending}"
    )
    lines[index] = new
    return "".join(lines), match.group("value")


def config_json(compose: Path) -> dict[str, Any]:
    # Every profile: a service outside the active profiles must not change unseen either.
    code, out, err = capture(compose_argv(compose, "--profile", "*", "config", "--format", "json"))
    if code != 0:
        raise AgentError(f"the compose file does not validate: {err.strip()[:400]}")
    data = json.loads(out)
    if not isinstance(data, dict):
        raise AgentError("docker compose config printed something that is not a JSON object")
    return data


def state_key(project_dir: str, compose_file: str, service: str) -> str:
    return hashlib.sha256(f"{project_dir}/{compose_file}:{service}".encode()).hexdigest()[:12]


def cmd_swap(args: argparse.Namespace) -> int:
    compose = Path(args.project_dir) / args.compose_file
    state = Path(args.state_dir)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/:@-]*", args.image):
        raise AgentError(f"not a valid image reference: {args.image!r}")
    raw = compose.read_bytes()
    text = raw.decode("utf-8")
    swap_file = state / "swap.json"
    previous = json.loads(swap_file.read_text()) if swap_file.exists() else None
    current = hashlib.sha256(raw).hexdigest()
    if previous and current == previous.get("sha256_swapped"):
        # A capture ran before and was not rolled back: the backup already holds the original.
        original_image = previous["original_image"]
        new_text, _ = swap_text(text, args.service, args.image)
    else:
        new_text, original_image = swap_text(text, args.service, args.image)
    new_raw = new_text.encode("utf-8")
    changed = new_raw != raw
    diff = "".join(
        difflib.unified_diff(
            text.splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            f"{compose.name} (before)",
            f"{compose.name} (swapped)",
        )
    )
    result = {
        "changed": changed,
        "original_image": original_image,
        "image": args.image,
        "compose_path": str(compose),
        "diff": diff,
        "check": args.check,
    }
    if args.check:
        emit(result)
        return EXIT_OK
    # Validate the swapped file beside the original (relative paths must resolve the same way),
    # and prove that the only change compose sees is this service's image.
    candidate = compose.with_name(f".{compose.name}.ingester-capture.tmp")
    try:
        write_atomic(candidate, new_raw, mode=compose.stat().st_mode & 0o777)
        before, after = config_json(compose), config_json(candidate)
        before_services = before.get("services", {})
        after_services = after.get("services", {})
        for svc in set(before_services) | set(after_services):
            b = dict(before_services.get(svc, {}))
            a = dict(after_services.get(svc, {}))
            if svc == args.service:
                b.pop("image", None)
                a.pop("image", None)
            if a != b:
                raise AgentError(
                    f"the swap would change more than the image of '{args.service}' "
                    f"(service '{svc}' differs); compose file left as it was"
                )
        if after_services.get(args.service, {}).get("image") != args.image:
            raise AgentError(
                "the swapped compose file does not resolve to the debug image; compose file left as it was"
            )
        if not (previous and current == previous.get("sha256_swapped")):
            write_atomic(state / "compose.orig", raw)
        write_json(
            swap_file,
            {
                "compose_path": str(compose),
                "service": args.service,
                "container": args.container,
                "original_image": original_image,
                "debug_image": args.image,
                "sha256_orig": previous["sha256_orig"]
                if previous and current == previous.get("sha256_swapped")
                else current,
                "sha256_swapped": hashlib.sha256(new_raw).hexdigest(),
                "swapped_at": now_iso(),
            },
        )
        if changed:
            candidate.replace(compose)
    finally:
        candidate.unlink(missing_ok=True)
    if args.out:
        out = Path(args.out)
        (out / "compose.diff").write_text(diff, encoding="utf-8")
        record(
            out,
            {
                "file": "compose.diff",
                "argv": [],
                "exit_code": 0,
                "started": now_iso(),
                "ended": now_iso(),
                "timed_out": False,
                "note": "backup vs swapped compose file",
            },
        )
    emit(result)
    return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    """Put the byte-exact backup back, when the compose file is still the one we swapped."""
    state = Path(args.state_dir)
    swap_file = state / "swap.json"
    if not swap_file.exists():
        emit({"changed": False, "reason": "no swap recorded"})
        return EXIT_OK
    meta = json.loads(swap_file.read_text())
    compose = Path(meta["compose_path"])
    backup = (state / "compose.orig").read_bytes()
    current = compose.read_bytes() if compose.exists() else b""
    if current == backup:
        changed = False
    elif hashlib.sha256(current).hexdigest() != meta["sha256_swapped"] and not args.force:
        raise AgentError(
            f"{compose} changed since the swap (not the file we wrote); left as it is, "
            f"backup at {state / 'compose.orig'}"
        )
    else:
        write_atomic(compose, backup, mode=(compose.stat().st_mode & 0o777) if compose.exists() else 0o644)
        changed = True
    if not args.check:
        swap_file.unlink(missing_ok=True)
        write_json(
            state / "rollback.json",
            {
                "rolled_back_at": now_iso(),
                "compose_path": str(compose),
                "original_image": meta["original_image"],
                "sha256_orig": meta["sha256_orig"],
                "by": "capture rescue",
            },
        )
    emit({"changed": changed, "original_image": meta["original_image"], "compose_path": str(compose)})
    return EXIT_OK


# --- the capture window -----------------------------------------------------------------------


class Window:
    """Owns the followers for one capture window and stops them on every path."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(args.out)
        self.compose = Path(args.project_dir) / args.compose_file
        self.children: list[subprocess.Popen[bytes]] = []
        self.lock = threading.Lock()
        self.starts = 0
        self.dies: list[dict[str, Any]] = []
        self.ooms = 0
        self.kills = 0
        self.stop_reason = ""
        self.stopping = threading.Event()
        self.started_epoch = time.time()
        self.phase = "starting"
        self.notes: list[str] = []
        self.error = ""
        self.old_id = ""

    # progress ---------------------------------------------------------------------------------
    def restarts(self) -> int:
        # With a recreate, the first start is ours; every later one is a restart. In observe mode
        # the container was already running, so every start seen is a restart.
        return max(0, self.starts - 1) if self.args.recreate else self.starts

    def progress(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "pid": os.getpid(),
            "started_epoch": self.started_epoch,
            "elapsed": round(time.time() - self.started_epoch, 1),
            "window_seconds": self.args.seconds,
            "restarts": self.restarts(),
            "exit_codes": [d.get("exit_code") for d in self.dies],
            "oom_events": self.ooms,
            "kill_events": self.kills,
            "ended_by": self.stop_reason or None,
            "error": self.error or None,
            "notes": self.notes,
        }

    def save(self) -> None:
        write_json(self.out / PROGRESS_FILE, self.progress(), mode=0o644)

    # followers --------------------------------------------------------------------------------
    def spawn(self, argv: list[str], sink: IO[bytes] | int) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            argv,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.children.append(proc)
        return proc

    def follow_events(self) -> None:
        since = str(int(self.started_epoch) - 1)
        argv = [
            "docker",
            "events",
            "--format",
            "{{json .}}",
            "--filter",
            "type=container",
            "--filter",
            f"container={self.args.container}",
            "--since",
            since,
        ]
        started = now_iso()
        proc = self.spawn(argv, subprocess.PIPE)
        assert proc.stdout is not None
        with (self.out / "events.jsonl").open("ab") as sink:
            for raw in proc.stdout:
                sink.write(raw)
                sink.flush()
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                if self.old_id and event.get("id") == self.old_id:
                    continue  # the production container being stopped by the recreate: ours
                action = str(event.get("Action") or event.get("status") or "")
                attrs = (event.get("Actor") or {}).get("Attributes") or {}
                with self.lock:
                    if action == "start":
                        self.starts += 1
                    elif action == "die":
                        code = attrs.get("exitCode")
                        self.dies.append(
                            {
                                "exit_code": int(str(code)) if str(code).lstrip("-").isdigit() else code,
                                "time": event.get("time"),
                            }
                        )
                    elif action == "oom":
                        self.ooms += 1
                    elif action.startswith("kill"):
                        self.kills += 1
        code = proc.wait()
        record(
            self.out,
            {
                "file": "events.jsonl",
                "argv": argv,
                # The stream never ends by itself: the agent stops it at the end of the window.
                "exit_code": 0 if self.stopping.is_set() else code,
                "started": started,
                "ended": now_iso(),
                "timed_out": False,
                "note": "streamed live for the whole window",
            },
        )

    def sample_stats(self) -> None:
        argv = ["docker", "stats", "--no-stream", "--format", "{{json .}}", self.args.container]
        started = now_iso()
        samples = 0
        with (self.out / "stats.jsonl").open("a", encoding="utf-8") as sink:
            while not self.stopping.is_set():
                code, out, _ = capture(argv, timeout=20)
                if code == 0 and out.strip():
                    try:
                        stats = json.loads(out.strip().splitlines()[-1])
                    except ValueError:
                        stats = {"raw": out.strip()}
                    sink.write(json.dumps({"ts": now_iso(), "epoch": time.time(), "stats": stats}) + "\n")
                    sink.flush()
                    samples += 1
                self.stopping.wait(self.args.stats_interval)
        record(
            self.out,
            {
                "file": "stats.jsonl",
                "argv": argv,
                "exit_code": 0,
                "started": started,
                "ended": now_iso(),
                "timed_out": False,
                "samples": samples,
                "note": f"one sample every {self.args.stats_interval} s",
            },
        )

    def start_tee(self) -> None:
        # The runbook's `docker compose up SERVICE | tee FILE`: attached, so it re-attaches after
        # each restart and misses what was printed in between. Kept as evidence of that loss.
        argv = compose_argv(
            self.compose,
            "up",
            "--no-deps",
            "--no-recreate",
            "--no-build",
            "--no-color",
            self.args.service,
        )
        sink = (self.out / "logs").joinpath("tee.log")
        sink.parent.mkdir(parents=True, exist_ok=True)
        handle = sink.open("wb")
        self.spawn(argv, handle)
        record(
            self.out,
            {
                "file": "logs/tee.log",
                "argv": argv,
                "exit_code": None,
                "started": now_iso(),
                "ended": None,
                "timed_out": False,
                "note": "attached stream, as the runbook tees it; loses lines at each re-attach",
            },
        )

    def recreate(self) -> None:
        """The runbook's step 3: stop and remove the service, bring it up on the swapped image."""
        for rest in (
            ("stop", "--timeout", str(self.args.stop_timeout), self.args.service),
            ("rm", "-f", self.args.service),
            ("up", "-d", "--no-deps", "--no-build", "--pull", "never", self.args.service),
        ):
            code, out, err = capture(compose_argv(self.compose, *rest), timeout=180)
            if code != 0:
                raise AgentError(f"'docker compose {' '.join(rest)}' failed: {(err or out).strip()[:300]}")

    def ensure_not_stopped(self) -> None:
        """Never leave the service stopped: bring it up if the capture left it exited."""
        state = (inspect_container(self.args.container) or {}).get("State") or {}
        if state.get("Running") or state.get("Restarting"):
            return
        code, _, err = capture(
            compose_argv(self.compose, "up", "-d", "--no-deps", "--no-build", "--pull", "never", self.args.service),
            timeout=180,
        )
        self.notes.append(
            "the service was found stopped at the end of the window and was started again"
            if code == 0
            else f"the service was found stopped and could not be started: {err.strip()[:200]}"
        )

    # lifecycle --------------------------------------------------------------------------------
    def should_stop(self) -> str:
        if (self.out / STOP_FILE).exists():
            return "stopped"
        if time.time() - self.started_epoch >= self.args.seconds:
            return "deadline"
        if self.args.stop_after and self.restarts() >= self.args.stop_after:
            return "restarts"
        hb = self.out / HEARTBEAT_FILE
        last = hb.stat().st_mtime if hb.exists() else self.started_epoch
        if self.args.heartbeat_timeout and time.time() - last > self.args.heartbeat_timeout:
            return "aborted: the controller stopped polling (play interrupted or host unreachable)"
        return ""

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        if self.args.recreate:
            self.old_id = str((inspect_container(self.args.container) or {}).get("Id") or "")
        threads = [threading.Thread(target=self.follow_events, daemon=True)]
        threads[0].start()
        time.sleep(0.5)  # the event stream is attached before anything happens to the container
        try:
            if self.args.recreate:
                self.phase = "recreating"
                self.save()
                self.recreate()
            self.started_epoch = time.time()
            self.phase = "capturing"
            self.save()
            self.start_tee()
            stats = threading.Thread(target=self.sample_stats, daemon=True)
            stats.start()
            threads.append(stats)
            while not self.stop_reason:
                reason = self.should_stop()
                if reason:
                    if reason == "restarts":
                        time.sleep(1.0)  # let the new run print its first lines
                    self.stop_reason = reason
                    break
                self.save()
                time.sleep(0.5)
        except AgentError as exc:
            self.error = str(exc)
            self.stop_reason = "failed"
        except Exception as exc:  # the window must clean up whatever went wrong
            self.error = f"{type(exc).__name__}: {exc}"
            self.stop_reason = "failed"
        finally:
            self.finish(threads)
        return EXIT_OK if not self.error else EXIT_FAILED

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stop_reason = f"aborted: signal {signal.Signals(signum).name}"

    def split_setup_events(self) -> None:
        """Move the old container's events (our own stop and rm) out of events.jsonl.

        They are the capture's doing, not evidence about the ingester; kept beside it for the
        record in events-setup.jsonl.
        """
        events = self.out / "events.jsonl"
        if not events.exists():
            return
        marker = f'"id":"{self.old_id}"'.encode()
        kept: list[bytes] = []
        setup: list[bytes] = []
        for line in events.read_bytes().splitlines(keepends=True):
            (setup if marker in line.replace(b" ", b"") else kept).append(line)
        write_atomic(events, b"".join(kept), 0o644)
        write_atomic(self.out / "events-setup.jsonl", b"".join(setup), 0o644)
        record(
            self.out,
            {
                "file": "events-setup.jsonl",
                "argv": [],
                "exit_code": 0,
                "started": now_iso(),
                "ended": now_iso(),
                "timed_out": False,
                "note": "events of the production container while the capture stopped and removed it",
            },
        )

    def finish(self, threads: list[threading.Thread]) -> None:
        self.phase = "finishing"
        self.save()
        self.stopping.set()
        window_end = time.time()
        for proc in self.children:
            # SIGKILL the attached compose: SIGINT or SIGTERM would make it stop the service.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        for thread in threads:
            thread.join(timeout=30)
        if self.args.recreate and not self.error.startswith("'docker compose stop"):
            self.ensure_not_stopped()
        if self.old_id:
            self.split_setup_events()
        since = None if self.args.recreate else self.args.logs_since
        docker_logs_merged(self.out, "logs/ingester.log", self.args.container, since=since)
        self.phase = "done"
        progress = self.progress()
        progress.update(
            {
                "window_start_epoch": self.started_epoch,
                "window_end_epoch": window_end,
                "mode": "capture" if self.args.recreate else "observe",
                "dies": self.dies,
            }
        )
        write_json(self.out / "window.json", progress, mode=0o644)
        record(
            self.out,
            {
                "file": "window.json",
                "argv": [],
                "exit_code": 0,
                "started": now_iso(),
                "ended": now_iso(),
                "timed_out": False,
            },
        )
        self.save()
        if self.args.lock_dir and self.args.lock_owner:
            lock = Path(self.args.lock_dir) / "lock"
            with contextlib.suppress(OSError, ValueError):
                if (
                    self.stop_reason.startswith("aborted")
                    and json.loads(lock.read_text()).get("owner") == self.args.lock_owner
                ):
                    lock.unlink()


def cmd_window(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress_path = out / PROGRESS_FILE
    if args.action == "run":
        return Window(args).run()
    if args.action == "start":
        if progress_path.exists():
            raise AgentError(f"a window already ran in {out}")
        (out / HEARTBEAT_FILE).touch()
        argv = [sys.executable, str(Path(__file__).resolve()), "window", "run", *args.passthrough]
        log = (out / ".window-agent.log").open("ab")
        # A new session: the window outlives this command and Ansible's connection, but not the
        # heartbeat: it stops by itself when the play stops polling.
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
        deadline = time.time() + args.start_timeout
        while time.time() < deadline:
            progress = _read_progress(progress_path)
            if progress.get("phase") in {"capturing", "finishing", "done"}:
                emit({**progress, "agent_pid": proc.pid})
                return EXIT_OK if not progress.get("error") else EXIT_FAILED
            if proc.poll() is not None:
                break
            time.sleep(0.3)
        progress = _read_progress(progress_path)
        if proc.poll() is None and not progress.get("error"):
            raise AgentError(
                f"the capture window did not start within {args.start_timeout} s (phase {progress.get('phase')})"
            )
        tail = (out / ".window-agent.log").read_bytes()[-500:].decode(errors="replace").strip()
        raise AgentError(f"the capture window failed to start: {progress.get('error') or tail}")
    if args.action == "wait":
        (out / HEARTBEAT_FILE).touch()
        deadline = time.time() + args.poll
        while time.time() < deadline:
            progress = _read_progress(progress_path)
            # Only the end of the window cuts a poll short: the play counts on every poll lasting
            # the full period to cover the window with a bounded number of polls.
            if progress.get("phase") == "done":
                break
            time.sleep(0.5)
            (out / HEARTBEAT_FILE).touch()
        progress = _read_progress(progress_path)
        progress["done"] = progress.get("phase") == "done"
        emit(progress)
        return EXIT_OK
    if args.action == "stop":
        (out / STOP_FILE).touch()
        progress = _read_progress(progress_path)
        deadline = time.time() + args.poll
        while progress.get("phase") not in {"done", None} and time.time() < deadline:
            time.sleep(0.5)
            progress = _read_progress(progress_path)
        progress["done"] = progress.get("phase") in {"done", None}
        emit(progress)
        return EXIT_OK
    raise AgentError(f"unknown window action {args.action}")


def _read_progress(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


# --- collect ----------------------------------------------------------------------------------


def cmd_collect(args: argparse.Namespace) -> int:
    out = Path(args.out)
    compose = Path(args.project_dir) / args.compose_file
    # Independent read-only commands run side by side (docker stats alone takes a second or two).
    jobs = [
        ("dmesg-T.txt", ["dmesg", "-T"]),
        ("inspect.json", ["docker", "inspect", args.container]),
        ("stats-final.json", ["docker", "stats", "--no-stream", "--format", "{{json .}}", args.container]),
        ("compose-ps.json", compose_argv(compose, "ps", "--all", "--format", "json", args.service)),
    ]
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        for rel, argv in jobs:
            pool.submit(run_to_file, out, rel, argv, stderr_to_stdout=False)
        code = run_to_file(out, "dmesg.txt", ["dmesg"], stderr_to_stdout=False)
    kernel_source = "dmesg"
    if code != 0:
        # dmesg_restrict=1 refuses non-root readers; the journal keeps the same kernel lines.
        code = run_to_file(
            out,
            "dmesg.txt",
            ["journalctl", "-k", "--no-pager", "-o", "short-iso"],
            stderr_to_stdout=False,
        )
        kernel_source = "journalctl -k" if code == 0 else "none"
    if compose.is_file():
        shutil.copyfile(compose, out / "compose.yml")
        record(
            out,
            {
                "file": "compose.yml",
                "argv": [],
                "exit_code": 0,
                "started": now_iso(),
                "ended": now_iso(),
                "timed_out": False,
                "note": f"copy of {compose}",
            },
        )
    container = inspect_container(args.container) or {}
    window = _read_progress(out / "window.json")
    host: dict[str, Any] = {
        "hostname": platform.node(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "boot_epoch": _boot_epoch(),
        "mem_total_bytes": _meminfo_total(),
        "docker_version": capture(["docker", "version", "--format", "{{.Server.Version}}"])[1].strip() or None,
        "compose_version": capture(["docker", "compose", "version", "--short"])[1].strip() or None,
        "cgroup_version": 2 if Path("/sys/fs/cgroup/cgroup.controllers").exists() else 1,
        "kernel_log_source": kernel_source,
        "container": args.container,
        "container_id": container.get("Id"),
        "service": args.service,
        "compose_path": str(compose),
        "image": (container.get("Config") or {}).get("Image"),
        "mode": args.mode,
        "window_start_epoch": window.get("window_start_epoch"),
        "window_end_epoch": window.get("window_end_epoch"),
        "collected_at": now_iso(),
    }
    write_json(out / "host.json", host, mode=0o644)
    record(
        out,
        {
            "file": "host.json",
            "argv": [],
            "exit_code": 0,
            "started": now_iso(),
            "ended": now_iso(),
            "timed_out": False,
        },
    )
    emit(
        {
            "kernel_log_source": kernel_source,
            "container_id": host["container_id"],
            "state": container.get("State", {}).get("Status"),
        }
    )
    return EXIT_OK


def _boot_epoch() -> float | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    return None


def _meminfo_total() -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return None


# --- seal: redact, cap, manifest, tarball -----------------------------------------------------

JSON_FILES = {"inspect.json", "inspect-pre.json"}


def _bundle_files(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file() and not p.name.startswith("."))


def redact_bundle(out: Path, redactor: Redactor, compose_path: Path | None) -> dict[str, int]:
    """Redact every file in place; returns replacements per file."""
    for name in JSON_FILES:
        path = out / name
        if path.exists():
            with contextlib.suppress(ValueError, OSError):
                redactor.learn_env(collect_inspect_env(json.loads(path.read_text(errors="replace"))))
    for source in (compose_path, out / "compose.yml"):
        if source is not None and source.is_file():
            with contextlib.suppress(OSError):
                redactor.learn_assignments(source.read_text(errors="replace"))
    per_file: dict[str, int] = {}
    for path in _bundle_files(out):
        rel = str(path.relative_to(out))
        before = sum(redactor.counts.values())
        if path.name in JSON_FILES:
            try:
                data = json.loads(path.read_text(errors="replace"))
            except ValueError:
                data = None
            if data is not None:
                write_atomic(
                    path,
                    (json.dumps(redact_inspect(redactor, data), indent=2) + "\n").encode(),
                    0o644,
                )
                per_file[rel] = sum(redactor.counts.values()) - before
                continue
        tmp = path.with_name(f".{path.name}.redact")
        with (
            path.open("r", encoding="utf-8", errors="surrogateescape", newline="") as src,
            tmp.open("w", encoding="utf-8", errors="surrogateescape", newline="") as dst,
        ):
            for line in src:
                dst.write(redactor.line(line))
        tmp.replace(path)
        per_file[rel] = sum(redactor.counts.values()) - before
    return per_file


# How much of the size budget each log deserves: the merged log is the evidence, the tee is a
# known-lossy copy of it.
CUT_WEIGHTS = {"logs/ingester.log": 8, "logs/pre-swap.log": 4, "events.jsonl": 2, "stats.jsonl": 2}


def cap_size(out: Path, max_bytes: int) -> dict[str, dict[str, int]]:
    """Cut logs, keeping their newest part, until the bundle fits in max_bytes.

    The budget left after the small files is shared by weight (water-filling): a file smaller
    than its share is kept whole and the rest is shared again, so the merged log is cut last
    and least.
    """
    truncated: dict[str, dict[str, int]] = {}
    if max_bytes <= 0:
        return truncated
    files = _bundle_files(out)
    sizes = {str(p.relative_to(out)): p.stat().st_size for p in files}
    if sum(sizes.values()) <= max_bytes:
        return truncated
    cuttable = {rel: size for rel, size in sizes.items() if Path(rel).suffix in {".log", ".jsonl", ".txt"}}
    budget = max_bytes - sum(size for rel, size in sizes.items() if rel not in cuttable)
    budget = max(0, budget - 64 * 1024)  # room for manifest.json and the reports
    allowed: dict[str, int] = {}
    pending = dict(cuttable)
    while pending:
        weight = sum(CUT_WEIGHTS.get(rel, 1) for rel in pending)
        fits = {rel: size for rel, size in pending.items() if size <= budget * CUT_WEIGHTS.get(rel, 1) / weight}
        if not fits:
            for rel in pending:
                allowed[rel] = int(budget * CUT_WEIGHTS.get(rel, 1) / weight)
            break
        for rel, size in fits.items():
            allowed[rel] = size
            budget -= size
            del pending[rel]
    for rel, keep in allowed.items():
        size = cuttable[rel]
        if keep >= size:
            continue
        path = out / rel
        with path.open("rb") as handle:
            handle.seek(size - keep)
            data = handle.read()
        newline = data.find(b"\n")
        data = data[newline + 1 :] if newline >= 0 else b""
        write_atomic(path, data, 0o644)
        truncated[rel] = {"original_bytes": size, "kept_bytes": len(data)}
    return truncated


def cmd_seal(args: argparse.Namespace) -> int:
    out = Path(args.out)
    compose = Path(args.project_dir) / args.compose_file if args.project_dir else None
    try:
        redactor = Redactor.load(Path(args.map) if args.map else None, args.pattern or [])
    except RedactError as exc:
        raise AgentError(str(exc)) from exc
    redactions = redact_bundle(out, redactor, compose)
    if args.map:
        redactor.save(Path(args.map))
    truncated = cap_size(out, args.max_bytes)
    commands: dict[str, dict[str, Any]] = {}
    with contextlib.suppress(OSError):
        for raw in (out / COMMANDS_FILE).read_text().splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(raw)
                commands.setdefault(entry.get("file", ""), entry)
    files = []
    for path in _bundle_files(out):
        rel = str(path.relative_to(out))
        made = commands.get(rel, {})
        files.append(
            {
                "path": rel,
                "sha256": sha256_file(path),
                "size": path.stat().st_size,
                "command": made.get("argv"),
                "exit_code": made.get("exit_code"),
                "started": made.get("started"),
                "ended": made.get("ended"),
                "timed_out": bool(made.get("timed_out")),
                "truncated": rel in truncated,
                "truncation": truncated.get(rel),
                "redactions": redactions.get(rel, 0),
                "note": made.get("note"),
            }
        )
    missing = sorted(
        {rel for rel in commands if rel and not (out / rel).exists()}
        | {str(e["file"]) for e in commands.values() if e.get("missing") and e.get("file")}
    )
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "tool": "ingester-capture",
        "created": now_iso(),
        "host": args.host or platform.node(),
        "mode": args.mode,
        "files": files,
        "missing": missing,
        "redaction": {
            "placeholders": len(redactor.mapping),
            "replacements": dict(redactor.counts),
            "mapping_kept_on_host": bool(args.map),
        },
        "max_bundle_bytes": args.max_bytes,
    }
    write_json(out / "manifest.json", manifest, mode=0o644)
    (out / COMMANDS_FILE).unlink(missing_ok=True)
    for hidden in out.glob(".*"):
        if hidden.is_file():
            hidden.unlink()
    tar_path = Path(args.tar)
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(out, arcname=".")
    emit(
        {
            "tarball": str(tar_path),
            "files": len(files),
            "bytes": sum(f["size"] for f in files),
            "truncated": sorted(truncated),
            "placeholders": len(redactor.mapping),
        }
    )
    return EXIT_OK


# --- argv -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agent.py", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)

    def target(p: argparse.ArgumentParser) -> None:
        p.add_argument("--project-dir", required=True)
        p.add_argument("--compose-file", required=True)
        p.add_argument("--service", required=True)
        p.add_argument("--container", required=True)

    p = sub.add_parser("preflight")
    target(p)
    p.add_argument("--mode", choices=["capture", "observe"], default="capture")
    p.add_argument("--build-context", default="../rsky")
    p.add_argument("--dockerfile", default="../rsky/rsky-ingester/Dockerfile")
    p.add_argument("--git-pull", action="store_true")
    p.add_argument("--git-dir", default="")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--min-free-bytes", type=int, default=512 << 20)

    p = sub.add_parser("lock")
    p.add_argument("action", choices=["acquire", "release"])
    p.add_argument("--state-dir", required=True)
    p.add_argument("--owner", required=True)
    p.add_argument("--ttl", type=float, default=3600)
    p.add_argument("--force", action="store_true")

    p = sub.add_parser("run")
    p.add_argument("--out", required=True)
    p.add_argument("--file", required=True)
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--cwd", default=None)
    p.add_argument("--map", default="", help="redaction map: known secrets are hidden in the printed tail")
    p.add_argument("--learn-compose", default="", help="compose file whose secret-looking values are hidden too")
    p.add_argument("argv", nargs=argparse.REMAINDER)

    p = sub.add_parser("snapshot")
    p.add_argument("--out", required=True)
    p.add_argument("--container", required=True)

    p = sub.add_parser("swap")
    target(p)
    p.add_argument("--image", required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--out", default="")
    p.add_argument("--check", action="store_true")

    p = sub.add_parser("restore")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--force", action="store_true")
    p.add_argument("--check", action="store_true")

    p = sub.add_parser("window")
    p.add_argument("action", choices=["start", "run", "wait", "stop"])
    p.add_argument("--out", required=True)
    p.add_argument("--poll", type=float, default=15)
    p.add_argument("--start-timeout", type=float, default=240)

    p = sub.add_parser("window-run")  # the detached process's own argv (see window start)
    target(p)
    p.add_argument("--out", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--stop-after", type=int, default=0)
    p.add_argument("--recreate", action="store_true")
    p.add_argument("--stop-timeout", type=int, default=10, help="seconds docker compose stop waits before SIGKILL")
    p.add_argument("--stats-interval", type=float, default=5)
    p.add_argument("--heartbeat-timeout", type=float, default=60)
    p.add_argument("--logs-since", default=None)
    p.add_argument("--lock-dir", default="")
    p.add_argument("--lock-owner", default="")

    p = sub.add_parser("collect")
    target(p)
    p.add_argument("--out", required=True)
    p.add_argument("--mode", choices=["capture", "observe"], default="capture")

    p = sub.add_parser("seal")
    p.add_argument("--out", required=True)
    p.add_argument("--tar", required=True)
    p.add_argument("--map", default="")
    p.add_argument("--pattern", action="append", default=[])
    p.add_argument("--max-bytes", type=int, default=0)
    p.add_argument("--project-dir", default="")
    p.add_argument("--compose-file", default="")
    p.add_argument("--host", default="")
    p.add_argument("--mode", default="capture")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # `window run ARGS`: the detached window parses its own options.
    if args_list[:2] == ["window", "run"]:
        args = parser.parse_args(["window-run", *args_list[2:]])
        args.action = "run"
        handler = cmd_window
    else:
        # `window start OPTIONS -- WINDOW-RUN OPTIONS`: the part after -- goes to the detached run.
        passthrough: list[str] = []
        if args_list[:1] == ["window"] and "--" in args_list:
            cut = args_list.index("--")
            args_list, passthrough = args_list[:cut], args_list[cut + 1 :]
            parser.parse_args(["window-run", *passthrough])  # fail fast on bad options
        args = parser.parse_args(args_list)
        args.passthrough = passthrough
        handler = {
            "preflight": cmd_preflight,
            "lock": cmd_lock,
            "run": cmd_run,
            "snapshot": cmd_snapshot,
            "swap": cmd_swap,
            "restore": cmd_restore,
            "window": cmd_window,
            "collect": cmd_collect,
            "seal": cmd_seal,
        }[args.command]
    try:
        return handler(args)
    except LockedError as exc:
        print(f"ingester-capture agent: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except (AgentError, OSError, ValueError, KeyError) as exc:
        print(f"ingester-capture agent: {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
