"""The docker CLI, run with argv lists and timeouts (Python 3.8+, standard library only).

Nothing here goes through a shell. Short read-only commands return (exit code, stdout, stderr);
commands whose output is evidence write it to a bundle file and record how it was made.
"""

from __future__ import annotations

import heapq
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ansible_collections.rsky.ingester_capture.plugins.module_utils.manifest import record
from ansible_collections.rsky.ingester_capture.plugins.module_utils.timeparse import line_ns, now_iso


class DockerError(Exception):
    """A docker command failed; the message keeps docker's own words."""


def run(argv: Sequence[str], timeout: float = 60, cwd: Optional[str] = None) -> Tuple[int, str, str]:
    """Run a short command; (exit code, stdout, stderr). Never raises for the command's failure."""
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
    target.parent.mkdir(parents=True, exist_ok=True)
    started = now_iso()
    timed_out = False
    with target.open("ab" if append else "wb") as handle:
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


# The compose project of this process's target (see use_project), in the environment so that
# the capture window's detached worker, started from the module, runs its compose calls the same.
PROJECT_ENV = "INGESTER_CAPTURE_COMPOSE_PROJECT"


def use_project(compose: Path, name: str, working_dir: str = "", config_files: Sequence[str] = ()) -> None:
    """Run every later ``docker compose`` of ``compose`` as project ``name`` (``-p``), with this
    project directory and these config files (the running container's labels); "" keeps compose's
    own choice. ``compose`` is the file the capture swaps: it stands for itself in the list."""
    files = [str(f) for f in config_files if f] or [str(compose)]
    if str(compose) not in files:
        files = [str(compose)]
    os.environ[PROJECT_ENV] = json.dumps(
        {"main": str(compose), "name": name, "working_dir": working_dir or str(compose.parent), "files": files}
    )


def current_project() -> Dict[str, Any]:
    """The project set by use_project in this process or its parent; {} when none."""
    try:
        found = json.loads(os.environ.get(PROJECT_ENV, "") or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


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


def config_json(compose: Path) -> Dict[str, Any]:
    """``docker compose --profile '*' config --format json``: every service of every profile."""
    code, out, err = run(compose_argv(compose, "--profile", "*", "config", "--format", "json"))
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
    with path.open("rb") as handle:
        for seq, line in enumerate(handle):
            key = line_ns(line) or last
            last = key
            yield key, stream, seq, line if line.endswith(b"\n") else line + b"\n"


def logs_merged(out: Path, rel: str, container: str, since: Optional[str] = None) -> Dict[str, Any]:
    """``docker logs --timestamps``, stdout and stderr merged in time order (stable), into out/rel."""
    target = out / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_out, tmp_err = target.with_suffix(".stdout.tmp"), target.with_suffix(".stderr.tmp")
    argv = ["docker", "logs", "--timestamps"]
    if since:
        argv += ["--since", since]
    argv.append(container)
    started = now_iso()
    timed_out = False
    with tmp_out.open("wb") as o, tmp_err.open("wb") as e:
        try:
            code = subprocess.run(
                argv, stdout=o, stderr=e, stdin=subprocess.DEVNULL, timeout=600, check=False
            ).returncode
        except subprocess.TimeoutExpired:
            code, timed_out = -1, True
    lines = {"stdout": 0, "stderr": 0}
    with target.open("wb") as handle:
        for _, stream, _, line in heapq.merge(_keyed(tmp_out, 0), _keyed(tmp_err, 1)):
            handle.write(line)
            lines["stdout" if stream == 0 else "stderr"] += 1
    for tmp in (tmp_out, tmp_err):
        try:
            tmp.unlink()
        except OSError:
            pass
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
