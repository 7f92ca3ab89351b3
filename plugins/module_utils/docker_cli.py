"""The docker CLI, run with argv lists and timeouts (Python 3.8+, standard library only).

Nothing here goes through a shell. Short read-only commands return (exit code, stdout, stderr);
commands whose output is evidence write it to a bundle file and record how it was made.
"""

from __future__ import annotations

import heapq
import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple
from urllib.parse import quote

from ansible_collections.rsky.ingester_capture.plugins.module_utils.manifest import record
from ansible_collections.rsky.ingester_capture.plugins.module_utils.timeparse import line_ns, now_iso


class DockerError(Exception):
    """A docker command failed; the message keeps docker's own words."""


# Answers of read-only commands a module started side by side (prefetch), each handed out once.
_PREFETCHED = {}  # type: Dict[Tuple[str, ...], Tuple[int, str, str]]


def prefetch(argvs: Sequence[Sequence[str]], timeout: float = 60) -> None:
    """Run read-only commands side by side now; the next run() of the same argv returns its answer.

    For a module that asks docker a dozen short questions before it changes anything (pre-flight):
    their sum becomes the slowest one. An argv that nobody asks again is just not used; one asked
    that was not prefetched runs as always."""
    from concurrent.futures import ThreadPoolExecutor

    keys = list(dict.fromkeys(tuple(a) for a in argvs))
    if not keys:
        return
    with ThreadPoolExecutor(max_workers=min(8, len(keys))) as pool:
        answers = list(pool.map(lambda key: _run(key, timeout, None), keys))
    _PREFETCHED.update(zip(keys, answers))


def run(argv: Sequence[str], timeout: float = 60, cwd: Optional[str] = None) -> Tuple[int, str, str]:
    """Run a short command; (exit code, stdout, stderr). Never raises for the command's failure."""
    if cwd is None and _PREFETCHED:
        answer = _PREFETCHED.pop(tuple(argv), None)
        if answer is not None:
            return answer
    return _run(argv, timeout, cwd)


def _run(argv: Sequence[str], timeout: float, cwd: Optional[str]) -> Tuple[int, str, str]:
    try:
        proc = subprocess.run(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return -1, "", "%s timed out after %.0f s" % (argv[0], timeout)
    except OSError as exc:
        return 127, "", "cannot run %s: %s" % (argv[0], exc)
    return proc.returncode, proc.stdout, proc.stderr


# A child process the caller started and still owns (a module file may not name Popen itself:
# validate-modules holds modules to run_command, and the children here outlive or stream past it).
Child = subprocess.Popen


def spawn_detached(argv: Sequence[str], cwd: Optional[str] = None) -> Child[bytes]:
    """Start a child that outlives the module run, in a session of its own, its output discarded.

    Not AnsibleModule.run_command: that waits for the child, and a background step (the debug
    build) must keep running between the polls, each of which is a module run of its own.
    """
    return subprocess.Popen(
        list(argv),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stream_lines(argv: Sequence[str]) -> Child[bytes]:
    """Start a child whose stdout (stderr merged in) the caller reads line by line as it comes.

    Not AnsibleModule.run_command: that holds the whole output in memory, and a restart loop's
    `docker logs` can be far larger than what the caller keeps of it.
    """
    return subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def run_to_file(
    out: Path,
    rel: str,
    argv: Sequence[str],
    timeout: float = 120,
    append: bool = False,
    stderr_to_stdout: bool = True,
    cwd: Optional[str] = None,
) -> int:
    """Run argv with its output in out/rel; record the command, exit code and times."""
    target = out / rel
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    started = now_iso()
    timed_out = False
    # For its owner alone whatever the umask: what a command prints is unredacted until the seal.
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    with os.fdopen(os.open(str(target), flags, 0o600), "ab" if append else "wb") as handle:
        if append:
            handle.write(("$ %s\n" % " ".join(argv)).encode())
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
            handle.write(("cannot run %s: %s\n" % (argv[0], exc)).encode())
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


# The Unix socket the docker CLI uses when nothing chooses another (DOCKER_HOST, a context).
# docker stats' size units (MemUsage "12.5MiB / 64MiB"): binary and decimal.
SIZE_UNITS = {
    "B": 1,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
}
_SIZE = re.compile(r"^\s*([\d.]+)\s*([A-Za-z]+)\s*$")


def parse_size(text: str) -> Optional[int]:
    """``12.5MiB`` -> bytes (docker stats units), None if unreadable."""
    m = _SIZE.match(text or "")
    if not m or m.group(2).upper() not in SIZE_UNITS:
        return None
    try:
        return int(float(m.group(1)) * SIZE_UNITS[m.group(2).upper()])
    except ValueError:
        return None


DOCKER_SOCKET = "/var/run/docker.sock"
# The Engine API version of the one-shot stats sample (Docker 20.10 and newer).
STATS_API = "v1.41"


def docker_socket(environ: Optional[Dict[str, str]] = None) -> Optional[str]:
    """The Unix socket the docker CLI talks to, or None when DOCKER_HOST names another transport."""
    host = (os.environ if environ is None else environ).get("DOCKER_HOST") or ""
    if not host:
        return DOCKER_SOCKET
    return host[len("unix://") :] if host.startswith("unix://") else None


def _cli_context(environ: Dict[str, str]) -> str:
    """The docker context the CLI would use ("default" when none is chosen)."""
    if environ.get("DOCKER_CONTEXT"):
        return environ["DOCKER_CONTEXT"]
    folder = Path(environ["DOCKER_CONFIG"]) if environ.get("DOCKER_CONFIG") else Path("~/.docker").expanduser()
    try:
        with (folder / "config.json").open(encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError):
        return "default"
    return str(config.get("currentContext") or "default") if isinstance(config, dict) else "default"


def engine_get(path: str, timeout: float = 20) -> Tuple[Optional[int], bytes, str]:
    """GET ``path`` from the Engine API on the CLI's own Unix socket: (HTTP status, body, where).
    Status None: not asked (DOCKER_HOST or a docker context names another daemon, or no socket),
    or the request failed; the CLI is then the way."""
    import http.client  # (here: most modules never ask the API, and every import costs them time)

    environ = dict(os.environ)
    where = docker_socket(environ)
    if where is None or _cli_context(environ) != "default" or not Path(where).exists():
        return None, b"", ""

    class UnixHTTPConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.settimeout(self.timeout)
            try:
                conn.connect(str(where))
            except OSError:
                conn.close()
                raise
            self.sock = conn

    conn = UnixHTTPConnection("localhost", timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read(), "unix://%s%s" % (where, path)
    except (OSError, http.client.HTTPException):
        return None, b"", ""
    finally:
        conn.close()


def stats_to_file(out: Path, rel: str, name: str, timeout: float = 120) -> int:
    """One stats sample of container ``name`` in out/rel, recorded.

    The Engine API's one-shot sample (milliseconds to a second) where the CLI's socket can be
    asked; else ``docker stats --no-stream`` (a second or two: it waits for a second sample to
    compute CPU%), which also says in its own words that a container is missing."""
    started = now_iso()
    path = "/%s/containers/%s/stats?stream=false&one-shot=true" % (STATS_API, quote(name, safe=""))
    status, body, where = engine_get(path, timeout=min(timeout, 20))
    if status == 200:
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with os.fdopen(os.open(str(target), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
            handle.write(body.rstrip(b"\n") + b"\n")
        record(
            out,
            {
                "file": rel,
                "argv": ["GET", where],
                "exit_code": 0,
                "started": started,
                "ended": now_iso(),
                "timed_out": False,
                "note": "the Engine API's one-shot stats sample (raw: memory_stats, pids_stats, cpu_stats)",
            },
        )
        return 0
    return run_to_file(
        out, rel, ["docker", "stats", "--no-stream", "--format", "{{json .}}", name], timeout, False, False
    )


# The compose project of this process's target (see use_project). The capture window's
# detached worker gets it in its config (window.ComposeTarget), not from this process.
_PROJECT = {}  # type: Dict[str, Any]


def use_project(compose: Path, name: str, working_dir: str = "", config_files: Sequence[str] = ()) -> None:
    """Run every later ``docker compose`` of ``compose`` as project ``name`` (``-p``), with this
    project directory and these config files (the running container's labels); "" keeps compose's
    own choice. ``compose`` is the file the capture swaps: it stands for itself in the list."""
    files = [str(f) for f in config_files if f] or [str(compose)]
    if str(compose) not in files:
        files = [str(compose)]
    _PROJECT.clear()
    _PROJECT.update({"main": str(compose), "name": name, "working_dir": working_dir or str(compose.parent), "files": files})


def forget_project() -> None:
    """Back to compose's own choice of project (a process that serves more than one target)."""
    _PROJECT.clear()


def current_project() -> Dict[str, Any]:
    """The project set by use_project in this process; {} when none."""
    return dict(_PROJECT)


def compose_argv(compose: Path, *rest: str) -> List[str]:
    """``docker compose`` for one compose file, its folder as the project directory; or, once
    use_project named this target's project, ``-p NAME --project-directory DIR -f FILE...`` with
    ``compose`` in place of the swapped file (a candidate beside it is validated the same way)."""
    project = current_project()
    if not project.get("main"):
        return ["docker", "compose", "--project-directory", str(compose.parent), "-f", str(compose)] + list(rest)
    argv = ["docker", "compose"]
    if project.get("name"):
        argv += ["-p", str(project["name"])]
    argv += ["--project-directory", str(project.get("working_dir") or compose.parent)]
    for name in project.get("files") or [project["main"]]:
        argv += ["-f", str(compose) if name == project["main"] else str(name)]
    return argv + list(rest)


def inspect(
    name: str, kind: str = "container", attempts: int = 3, delay: float = 1.0
) -> Tuple[Optional[Dict[str, Any]], str]:
    """(the inspect document, "") or (None, docker's error).

    A failed inspect is tried again: a container being recreated is briefly not there, and the
    answer "not present" must not come from one unlucky moment. "No such ..." is final at once.
    """
    error = ""
    for attempt in range(max(1, attempts)):
        code, out, err = run(["docker", "inspect", "--type", kind, name])
        if code == 0:
            try:
                data = json.loads(out)
            except ValueError as exc:
                error = "docker inspect printed something that is not JSON: %s" % exc
            else:
                if isinstance(data, list) and data and isinstance(data[0], dict):
                    return data[0], ""
                error = "docker inspect returned no object for %s" % name
        else:
            error = (err or out).strip() or "docker inspect exited %d" % code
            if "no such" in error.lower():
                return None, error
        if attempt + 1 < attempts:
            time.sleep(delay)
    return None, error


# config_json's answers in this process (a module asks it for the redactor and for the swap).
_CONFIGS = {}  # type: Dict[Tuple[str, ...], Tuple[int, str, str]]


def _content_key(arg: str) -> str:
    """A file's bytes, hashed, for an argument that names a file (compose's -f and the .env
    beside it would change the answer); "" for the others."""
    import hashlib

    try:
        if not arg.startswith("-") and os.path.isfile(arg):
            return hashlib.sha256(Path(arg).read_bytes()).hexdigest()
    except OSError:
        pass
    return ""


def config_json(compose: Path) -> Dict[str, Any]:
    """``docker compose --profile '*' config --format json``: every service of every profile.

    Asked once per process for the same files with the same bytes (a module asks it for the
    redactor and again for the swap); an edited file is asked again."""
    argv = compose_argv(compose, "--profile", "*", "config", "--format", "json")
    key = tuple(argv) + tuple(_content_key(a) for a in argv)
    answer = _CONFIGS.get(key)
    if answer is None:
        answer = _CONFIGS[key] = run(argv)
    code, out, err = answer
    if code != 0:
        raise DockerError("the compose file does not validate: %s" % err.strip()[:400])
    try:
        data = json.loads(out)
    except ValueError as exc:
        raise DockerError("docker compose config printed something that is not JSON: %s" % exc) from exc
    if not isinstance(data, dict):
        raise DockerError("docker compose config printed something that is not a JSON object")
    return data


def _keyed(path: Path, stream: int) -> Iterator[Tuple[int, int, int, bytes]]:
    last = 0
    try:
        handle = path.open("rb")
    except OSError:
        return
    with handle:
        for seq, line in enumerate(handle):
            key = line_ns(line) or last
            last = key
            yield key, stream, seq, line if line.endswith(b"\n") else line + b"\n"


def _tagged(path: Path, stream: int, index: int) -> Iterator[Tuple[int, int, int, bytes]]:
    """The lines of one read in time order (stable), tagged with the read's index.

    A follower that crosses a json-file rotation can hand back lines out of order, or twice: such
    a read is sorted in memory; the usual, ordered read is streamed."""
    last = 0
    ordered = True
    for key, _stream, _seq, _line in _keyed(path, stream):
        if key < last:
            ordered = False
            break
        last = key
    if ordered:
        for key, _stream, _seq, line in _keyed(path, stream):
            yield key, stream, index, line
        return
    for key, _stream, _seq, line in sorted(_keyed(path, stream), key=lambda item: (item[0], item[2])):
        yield key, stream, index, line


# Docker's answer for a driver it cannot read back (none; syslog, fluentd... with the cache off).
UNREADABLE = "does not support reading"
# The attached stream's lines: `<container padded>  | <raw line>` (Compose v2, --no-color).
TEE_SEP = b" | "
# A tee line seen again this soon (ns) is Compose's replay at a re-attach, not a new line.
TEE_REPEAT_NS = 5_000_000_000


def logs_argv(container: str, since: Optional[str] = None, follow: bool = False) -> List[str]:
    """argv of ``docker logs --timestamps`` (``--follow`` for a live follower)."""
    argv = ["docker", "logs", "--timestamps"]
    if follow:
        argv.append("--follow")
    if since:
        argv += ["--since", since]
    argv.append(container)
    return argv


def tee_content(raw: bytes) -> Optional[bytes]:
    """The container's line inside an attached Compose line, or None for Compose's own lines."""
    head = raw[:120]
    at = head.find(TEE_SEP)
    if at < 0:
        return None
    line = raw[at + len(TEE_SEP) :]
    return line if line.endswith(b"\n") else line + b"\n"


def _content(line: bytes) -> bytes:
    """A ``docker logs --timestamps`` line without its timestamp."""
    parts = line.split(b" ", 1)
    return parts[1] if len(parts) == 2 and line_ns(line) else line


def merge_sources(
    target: Path,
    docker_parts: Sequence[Tuple[str, Path, Path]],
    tee: Optional[Tuple[Path, Sequence[int]]] = None,
) -> Dict[str, Any]:
    """Merge every copy of the container's output into target, each line once; the counts.

    ``docker_parts``: (source name, stdout file, stderr file) of each ``docker logs --timestamps``
    read (the live followers, the end-of-window read). A line is the same line when timestamp,
    stream and bytes agree; copies of a line share its timestamp, so dropping a line already
    seen at the same timestamp keeps each line once, in time order (stable).
    ``tee``: the attached stream and the receipt time (ns) of each of its lines. A tee line that
    no Docker read holds (Docker rotated it away before it was read) is kept too, stamped with
    the time the window received it.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    per_source = {}  # type: Dict[str, int]
    streams = []  # type: List[Iterator[Tuple[int, int, int, bytes]]]
    names = []  # type: List[str]
    for name, out_path, err_path in docker_parts:
        for stream, path in ((0, out_path), (1, err_path)):
            names.append(name)
            index = len(names) - 1
            streams.append(_tagged(path, stream, index))
    docker_lines = 0
    contents = {}  # type: Dict[bytes, int]
    kept = {"stdout": 0, "stderr": 0, "tee_only": 0}
    tmp = target.with_name("." + target.name + ".docker.tmp")
    with tmp.open("wb") as handle:
        current = -1
        seen = set()  # type: set
        for key, stream, index, line in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
            per_source[names[index]] = per_source.get(names[index], 0) + 1
            if key != current:
                current, seen = key, set()
            ident = (stream, line)
            if ident in seen:
                continue
            seen.add(ident)
            handle.write(line)
            docker_lines += 1
            kept["stdout" if stream == 0 else "stderr"] += 1
            if tee is not None:
                body = _content(line)
                contents[body] = contents.get(body, 0) + 1
    tee_only = []  # type: List[Tuple[int, int, int, bytes]]
    tee_lines = matched = repeats = 0
    if tee is not None:
        tee_path, times = tee
        recent = {}  # type: Dict[bytes, int]
        try:
            with tee_path.open("rb") as fh:
                for seq, raw in enumerate(fh):
                    caught = tee_content(raw)
                    if caught is None:
                        continue
                    tee_lines += 1
                    left = contents.get(caught)
                    if left:
                        contents[caught] = left - 1
                        matched += 1
                        continue
                    ns = times[seq] if seq < len(times) else (times[-1] if times else 0)
                    if left is not None or ns - recent.get(caught, -TEE_REPEAT_NS) < TEE_REPEAT_NS:
                        # Compose replays a run's first lines when it re-attaches: the same line again.
                        repeats += 1
                        continue
                    recent[caught] = ns
                    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))
                    line = ("%s.%09dZ " % (stamp, ns % 1_000_000_000)).encode() + caught
                    tee_only.append((ns, 2, seq, line))
        except OSError:
            pass
    kept["tee_only"] = len(tee_only)
    if tee_only:
        with target.open("wb") as handle:
            for _key, _stream, _seq, line in heapq.merge(_keyed(tmp, 0), iter(tee_only), key=lambda i: i[0]):
                handle.write(line)
        tmp.unlink()
    else:
        tmp.replace(target)
    return {
        "merged": docker_lines + len(tee_only),
        "kept": kept,
        "read": per_source,
        "tee_lines": tee_lines,
        "tee_matched": matched,
        "tee_repeats": repeats,
        # Where they are in the tee (1-based line numbers, the first 50): evidence a person can open.
        "tee_only_at": [seq + 1 for _ns, _stream, seq, _line in tee_only[:50]],
        # Lines of the merged log the attached stream never showed.
        "tee_missed": docker_lines - matched if tee is not None else None,
    }


def logs_merged(out: Path, rel: str, container: str, since: Optional[str] = None) -> Dict[str, Any]:
    """``docker logs --timestamps``, stdout and stderr merged in time order (stable), into out/rel."""
    target = out / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_out, tmp_err = target.with_suffix(".stdout.tmp"), target.with_suffix(".stderr.tmp")
    argv = logs_argv(container, since=since)
    started = now_iso()
    code, timed_out, error = end_read(argv, tmp_out, tmp_err)
    counts = merge_sources(target, [("end_read", tmp_out, tmp_err)])
    lines = {"stdout": counts["kept"]["stdout"], "stderr": counts["kept"]["stderr"]}
    for tmp in (tmp_out, tmp_err):
        try:
            tmp.unlink()
        except OSError:
            pass
    entry = {
        "file": rel,
        "argv": argv,
        "exit_code": code,
        "started": started,
        "ended": now_iso(),
        "timed_out": timed_out,
        "lines": lines,
        "note": "stdout and stderr merged by timestamp",
    }
    if error:
        entry["error"] = error
    record(out, entry)
    return {"exit_code": code, "lines": lines, "error": error}


def end_read(argv: Sequence[str], out_path: Path, err_path: Path, timeout: float = 600) -> Tuple[int, bool, str]:
    """Run a ``docker logs`` read into two files; (exit code, timed out, docker's error or "")."""
    timed_out = False
    with out_path.open("wb") as o, err_path.open("wb") as e:
        try:
            code = subprocess.run(
                list(argv), stdout=o, stderr=e, stdin=subprocess.DEVNULL, timeout=timeout, check=False
            ).returncode
        except subprocess.TimeoutExpired:
            code, timed_out = -1, True
        except OSError as exc:
            code = 127
            e.write(("cannot run docker: %s\n" % exc).encode())
    error = ""
    if code != 0:
        # On failure docker's error is the stderr file's last line (no timestamp): not log output.
        body = err_path.read_bytes().rstrip(b"\n")
        head, _sep, tail = body.rpartition(b"\n")
        if not line_ns(tail):
            error = tail.decode(errors="replace").strip()[:300]
            err_path.write_bytes(head + b"\n" if head else b"")
    return code, timed_out, error
