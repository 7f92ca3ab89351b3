"""Production-shaped Docker Compose stacks around the stand-in ingester.

A :class:`Stack` lays out, under one root directory, what the production host has:

* ``<root>/rsky/rsky-ingester/{Dockerfile,ingester}``: the source tree the debug build uses;
  ``docker build -f ../rsky/rsky-ingester/Dockerfile -t <tag> ../rsky`` from the project dir
  builds the instrumented image (``ENV STANDIN_SOURCE_BUILD=debug``: the 13f9a6b7 build with
  ``[EXIT-TRACE]``, whatever the compose file's ``STANDIN_BUILD`` says).
* ``<root>/atproto/``: the compose project dir, a git checkout of branch ``rude1/backfill``
  tracking ``origin`` (the bare repo ``<root>/origin.git``), one commit behind it so that
  ``git pull --ff-only origin rude1/backfill`` really fetches something.
* ``<root>/atproto/docker-compose.prod-rust.yml``: a redis sidecar, then the ``ingester``
  service shaped like production's block (``image: rsky-ingester:latest``, ``restart:
  unless-stopped``, secrets in ``environment``, ``mem_limit``), then a tools service; test
  stacks use ``network_mode: none``.

The production image ``rsky-ingester:latest`` is shared by all stacks and runs the ``hook``
build generation (2f7ec42a: panic hook, CRITICAL lines, no ``[EXIT-TRACE]``) unless the compose
environment sets ``STANDIN_BUILD`` (``oldest`` | ``hook`` | ``debug``: the ``build`` argument).
The scenario is chosen by the compose environment (``STANDIN_SCENARIO`` ...); the ``config-*``
scenarios also plant their fault (:data:`SCENARIO_ENV`), and ``env`` overrides any variable
(``REDIS_URL``, ``INGESTER_RELAY_HOSTS``, ``INGESTER_MODE``, ``METRICS_PORT``, ``RUST_LOG`` ...).
Container names, the compose project name and the debug image tag carry the stack's prefix, so
several stacks coexist on one engine.

CLI (used by the demo script)::

    python -m standin.stack build
    python -m standin.stack up --root .demo --scenario all-panicked --prefix demo
    python -m standin.stack down --root .demo

``up`` prints a JSON description of the stack on stdout; ``down`` reads ``<root>/stack.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).with_name("ingester.c")
STATE_DIR = Path(os.environ.get("INGESTER_CAPTURE_STATE", "/var/tmp/ingester-capture-dev"))
CACHE_DIR = STATE_DIR / "standin"
CFLAGS = ("-static", "-O2", "-Wall", "-Wextra")

PROD_IMAGE = "rsky-ingester:latest"
DEBUG_REPO = "rsky-ingester"
SHA_LABEL = "org.ingester-capture.standin.sha256"
BRANCH = "rude1/backfill"
COMPOSE_NAME = "docker-compose.prod-rust.yml"
SERVICE = "ingester"

DEFAULT_RELAY_HOSTS = "https://relay1.us-east.bsky.network,https://relay1.us-west.bsky.network,https://atproto.africa"
DEFAULT_LABELER_HOSTS = "https://atproto.africa"
# The secrets planted in every stack: tests check that bundles never carry them in clear text.
REDIS_PASSWORD = "s3cretpass"  # noqa: S105 - a planted test secret, not a credential
MONITOR_TOKEN = "mon-t0ken-5f1d2c"  # noqa: S105 - a planted test secret, not a credential

BUILDS = ("oldest", "hook", "debug")
# Real-code scenarios (the stand-in's own names) and, for the config-* ones, the fault they plant
# in the ingester's environment; ``env`` given to :class:`Stack` overrides these.
SCENARIO_ENV: dict[str, dict[str, str]] = {
    "healthy": {},
    "retry-errors": {},
    "all-panicked": {},
    "contained-panic": {},
    # REDIS_URL without redis:// (the scheme dropped from redis://:pass@redis:6379)
    "config-redis-url": {"REDIS_URL": f":{REDIS_PASSWORD}@redis:6379"},
    "config-no-relays": {"INGESTER_RELAY_HOSTS": ""},
    "config-unknown-mode": {"INGESTER_MODE": "firehouse"},
    # the debug build reads METRICS_PORT (13f9a6b7); the hook build (2f7ec42a) does not
    "config-metrics-port": {"METRICS_PORT": "4100/tcp"},
    "binary-cannot-start": {},
    "oom": {},
    "leak": {},
}
HYPOTHETICAL_SCENARIOS = (
    "hypothetical-task-error",
    "hypothetical-task-panic",
    "hypothetical-host-panic",
    "hypothetical-main-panic",
    "hypothetical-task-ok",
    "hypothetical-single-mode",
    "hypothetical-impossible",
    "hypothetical-silent-exit",
    "hypothetical-cancelled",
)
SCENARIOS = (*SCENARIO_ENV, *HYPOTHETICAL_SCENARIOS)

_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


# The seed's scenario names: the stand-in still accepts them as aliases of the hypothetical ones.
_LEGACY = {
    "task-error": "hypothetical-task-error",
    "task-panic": "hypothetical-task-panic",
    "host-panic": "hypothetical-host-panic",
    "main-panic": "hypothetical-main-panic",
    "task-ok": "hypothetical-task-ok",
    "impossible": "hypothetical-impossible",
    "silent-exit": "hypothetical-silent-exit",
}


class StackError(RuntimeError):
    """A docker, compose, git or gcc command the test bed needs failed."""


def run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    check: bool = True,
    timeout: float = 300,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` capturing text output; raise :class:`StackError` with its stderr on failure."""
    proc = subprocess.run(
        list(argv),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=None if env is None else {**os.environ, **env},
    )
    if check and proc.returncode != 0:
        raise StackError(f"{' '.join(argv)} exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()}")
    return proc


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- images ---


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """Hold the stand-in build lock: one builder at a time across processes, re-entrant within one.

    Parallel test workers (pytest-xdist) and other checkouts share the cache dir, the binary and
    the image tags; the first to need a build builds while the others wait on ``flock``, then
    find it done. Within a process the lock is taken once (``build_images`` calls the others).
    """
    global _LOCK_DEPTH
    if _LOCK_DEPTH:
        _LOCK_DEPTH += 1
        try:
            yield
        finally:
            _LOCK_DEPTH -= 1
        return
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with (CACHE_DIR / ".build.lock").open("a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        _LOCK_DEPTH = 1
        try:
            yield
        finally:
            _LOCK_DEPTH = 0
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


_LOCK_DEPTH = 0


def _binary_path() -> Path:
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join(CFLAGS).encode()).hexdigest()[:16]
    return CACHE_DIR / f"ingester-{key}"


def build_binary() -> Path:
    """Compile ingester.c into the cache dir once per source version and return the binary.

    The file name carries a hash of the source and the flags, so an edited .c is rebuilt and
    concurrent sessions never overwrite a binary another one is copying (rename is atomic);
    the build lock makes the others wait for the one compiling instead of compiling too.
    """
    binary = _binary_path()
    if binary.is_file():
        return binary
    with _build_lock():
        if binary.is_file():  # built by another process while this one waited
            return binary
        tmp = CACHE_DIR / f".{binary.name}.{os.getpid()}"
        run(["gcc", *CFLAGS, "-o", str(tmp), str(SOURCE)])
        tmp.replace(binary)
    return binary


def _image_label(image: str) -> str | None:
    proc = run(["docker", "image", "inspect", image], check=False)
    if proc.returncode != 0:
        return None
    labels = json.loads(proc.stdout)[0]["Config"].get("Labels") or {}
    value = labels.get(SHA_LABEL)
    return str(value) if value is not None else None


def _dockerfile(*, copy_from: str, source_build: str | None, sha: str) -> str:
    """The stand-in's Dockerfile: production (``source_build`` None) or built from source.

    The production image sets no build generation (the binary's default is ``hook``, the
    compose file's ``STANDIN_BUILD`` may choose another); the image built from the rsky tree
    pins its generation with ``STANDIN_SOURCE_BUILD``, as a real build pins its code.
    """
    if source_build is None:
        what = "production image: hook build unless STANDIN_BUILD says otherwise"
        env = "ENV STANDIN_IMAGE=production\n"
    else:
        what = f"built from the source tree: {source_build} build"
        env = f"ENV STANDIN_IMAGE=source STANDIN_SOURCE_BUILD={source_build}\n"
    return (
        f"# rsky-ingester stand-in, {what}.\n"
        "# FROM scratch with a static binary: no registry is reachable from this engine.\n"
        "FROM scratch\n"
        f"COPY {copy_from} /ingester\n"
        f"{env}"
        f"LABEL {SHA_LABEL}={sha}\n"
        'ENTRYPOINT ["/ingester"]\n'
    )


def standin_image() -> str:
    """The production image of today's binary under a tag of its own, ``rsky-ingester:standin-<sha>``.

    The same image as ``rsky-ingester:latest``, but no other checkout re-points this tag, so
    containers run straight from it (the recorder, the stand-in's own tests) always get this
    source's binary even while another checkout rebuilds the shared tag.
    """
    binary = build_binary()
    sha = _sha256(binary)
    tag = f"{DEBUG_REPO}:standin-{sha[:16]}"
    if _image_label(tag) == sha:
        return tag
    with _build_lock():
        if _image_label(tag) == sha:  # built by another process while this one waited
            return tag
        with tempfile.TemporaryDirectory(prefix="standin-build-") as ctx:
            shutil.copy2(binary, Path(ctx) / "ingester")
            (Path(ctx) / "Dockerfile").write_text(_dockerfile(copy_from="ingester", source_build=None, sha=sha))
            run(["docker", "build", "-q", "-t", tag, ctx])
    return tag


def build_images() -> str:
    """Point the shared production tag ``rsky-ingester:latest`` at today's binary if it is not.

    Current means its label holds the sha256 of today's binary. Returns the image tag. Under
    the build lock, so parallel workers re-point it once and never while another builds.
    """
    sha = _sha256(build_binary())
    if _image_label(PROD_IMAGE) == sha:
        return PROD_IMAGE
    with _build_lock():
        if _image_label(PROD_IMAGE) != sha:
            run(["docker", "tag", standin_image(), PROD_IMAGE])
    return PROD_IMAGE


# --------------------------------------------------------------------------- stacks ---


@dataclass(frozen=True)
class ContainerLogs:
    """What ``docker logs`` returned: the container's stdout and stderr, kept apart."""

    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        """Both streams, stdout first (use ``timestamps=True`` and sort for true order)."""
        return self.stdout + self.stderr


def _yaml_str(value: str) -> str:
    # JSON strings are valid YAML double-quoted scalars.
    return json.dumps(value)


class Stack:
    """One production-shaped compose stack in ``root``; the files are written on construction.

    Nothing runs until :meth:`up`. :meth:`down` removes the containers, the volumes and the
    stack's own debug image tag (never the shared production image).
    """

    service = SERVICE

    def __init__(
        self,
        root: Path,
        scenario: str = "healthy",
        *,
        name_prefix: str,
        mem_limit: str = "64m",
        env: Mapping[str, str] | None = None,
        instrumented_branch: bool = True,
        labeler_hosts: str = DEFAULT_LABELER_HOSTS,
        relay_hosts: str = DEFAULT_RELAY_HOSTS,
        mode: str = "all",
        exit_after_ms: int | None = None,
        restart: str = "unless-stopped",
        build: str | None = None,
        write: bool = True,
    ) -> None:
        """Describe (and unless ``write`` is false, lay out) a stack.

        ``instrumented_branch``: whether the debug Dockerfile under ``rsky/`` builds the
        instrumented ``debug`` generation; false models a branch without the instrumentation
        (``hook``). ``build``: the production image's generation (``STANDIN_BUILD`` in the
        compose file; None leaves the image's default, ``hook``). ``env`` adds to (and
        overrides) the ingester service's environment, the scenario's planted fault included.
        """
        if not _PREFIX_RE.match(name_prefix):
            raise ValueError(f"name_prefix must match {_PREFIX_RE.pattern}: {name_prefix!r}")
        if build is not None and build not in BUILDS:
            raise ValueError(f"build must be one of {', '.join(BUILDS)}: {build!r}")
        if scenario not in SCENARIOS and not _LEGACY.get(scenario):
            raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
        self.root = Path(root).resolve()
        self.scenario = scenario
        self.prefix = name_prefix
        self.mem_limit = mem_limit
        self.extra_env = dict(env or {})
        self.instrumented_branch = instrumented_branch
        self.labeler_hosts = labeler_hosts
        self.relay_hosts = relay_hosts
        self.mode = mode
        self.exit_after_ms = exit_after_ms
        self.restart = restart
        self.build = build
        self.project = f"{name_prefix}-atproto"
        self.container = f"{name_prefix}-rust-ingester"
        self.redis_container = f"{name_prefix}-redis"
        self.debug_image = f"{DEBUG_REPO}:debug-{name_prefix}"
        self.project_dir = self.root / "atproto"
        self.compose_file = COMPOSE_NAME
        self.compose_path = self.project_dir / COMPOSE_NAME
        self.rsky_dir = self.root / "rsky"
        self.origin = self.root / "origin.git"
        if write:
            self.layout()

    # ---------------------------------------------------------------- description ---

    def ingester_env(self) -> dict[str, str]:
        """The ingester service's environment as written into the compose file."""
        env = {
            "INGESTER_MODE": self.mode,
            "INGESTER_RELAY_HOSTS": self.relay_hosts,
            "INGESTER_LABELER_HOSTS": self.labeler_hosts,
            "REDIS_URL": f"redis://:{REDIS_PASSWORD}@redis:6379",
            "RUST_LOG": "info,rsky_ingester=info",
            "RUST_BACKTRACE": "1",
            "STANDIN_SCENARIO": self.scenario,
        }
        if self.build is not None:
            env["STANDIN_BUILD"] = self.build
        if self.exit_after_ms is not None:
            env["STANDIN_EXIT_AFTER_MS"] = str(self.exit_after_ms)
        env.update(SCENARIO_ENV.get(self.scenario, {}))
        env.update(self.extra_env)
        return env

    def describe(self) -> dict[str, Any]:
        """A JSON-able description: what the demo script and other tools need to find."""
        return {
            "root": str(self.root),
            "prefix": self.prefix,
            "scenario": self.scenario,
            "project": self.project,
            "container": self.container,
            "service": self.service,
            "project_dir": str(self.project_dir),
            "compose_file": self.compose_file,
            "compose_path": str(self.compose_path),
            "debug_image": self.debug_image,
            "prod_image": PROD_IMAGE,
            "rsky_dir": str(self.rsky_dir),
            "branch": BRANCH,
            "mem_limit": self.mem_limit,
            "instrumented_branch": self.instrumented_branch,
            "labeler_hosts": self.labeler_hosts,
            "relay_hosts": self.relay_hosts,
            "mode": self.mode,
            "exit_after_ms": self.exit_after_ms,
            "restart": self.restart,
            "build": self.build,
            "env": self.extra_env,
        }

    @classmethod
    def load(cls, root: Path) -> Stack:
        """The stack laid out earlier in ``root`` (from its ``stack.json``), files untouched."""
        meta = json.loads((Path(root) / "stack.json").read_text())
        return cls(
            Path(meta["root"]),
            meta["scenario"],
            name_prefix=meta["prefix"],
            mem_limit=meta["mem_limit"],
            env=meta["env"],
            instrumented_branch=meta["instrumented_branch"],
            labeler_hosts=meta["labeler_hosts"],
            relay_hosts=meta["relay_hosts"],
            mode=meta["mode"],
            exit_after_ms=meta["exit_after_ms"],
            restart=meta["restart"],
            build=meta.get("build"),
            write=False,
        )

    def compose_text(self) -> str:
        """The production-shaped compose file for this stack."""
        env_lines = "\n".join(f"      {key}: {_yaml_str(value)}" for key, value in self.ingester_env().items())
        cpus = min(2, os.cpu_count() or 1)
        return f"""\
# Blacksky AppView: Rust backfill pipeline (production).
# Deployed from /mnt/nvme/bsky/atproto on the backfill host; see the runbook before editing.
# Test-bed copy: network_mode none replaces the backfill-net network and the published ports.
name: {self.project}

services:
  redis:
    image: {PROD_IMAGE}
    container_name: {self.redis_container}
    restart: unless-stopped
    network_mode: none
    environment:
      STANDIN_SCENARIO: "idle"
      REDIS_PASSWORD: {_yaml_str(REDIS_PASSWORD)}
    healthcheck:
      test: ["CMD", "/ingester", "--healthcheck"]
      interval: 1s
      # the check exits at once; on a loaded engine (parallel tests) starting the exec alone
      # can take seconds, and an unhealthy sidecar fails `up -d` before the ingester starts
      timeout: 30s
      retries: 3

  ingester:
    image: {PROD_IMAGE}
    container_name: {self.container}
    restart: {self.restart}
    # production: networks: [backfill-net] and ports: ["4100:4100"]
    network_mode: none
    environment:
      # relays to follow; the labeler list may be empty (then no labeler task)
{env_lines}
    depends_on:
      redis:
        condition: service_healthy
    mem_limit: {self.mem_limit}
    cpus: {cpus}

  # Not started by `up -d` (profile): present so edits must touch only the ingester block.
  relay-monitor:
    image: {PROD_IMAGE}
    container_name: {self.prefix}-relay-monitor
    profiles: ["tools"]
    network_mode: none
    environment:
      STANDIN_SCENARIO: "idle"
      MONITOR_API_TOKEN: {_yaml_str(MONITOR_TOKEN)}
"""

    # ---------------------------------------------------------------------- layout ---

    def _git(self, *args: str, cwd: Path) -> str:
        ident = ["-c", "user.name=Stand-in", "-c", "user.email=standin@example.invalid"]
        return run(["git", *ident, *args], cwd=cwd).stdout

    def layout(self) -> None:
        """Write the rsky source tree, the origin repo and the atproto checkout under root."""
        self.root.mkdir(parents=True, exist_ok=True)
        binary = build_binary()
        src = self.rsky_dir / "rsky-ingester"
        src.mkdir(parents=True, exist_ok=True)
        shutil.copy2(binary, src / "ingester")
        (src / "Dockerfile").write_text(
            _dockerfile(
                copy_from="rsky-ingester/ingester",
                source_build="debug" if self.instrumented_branch else "hook",
                sha=_sha256(binary),
            )
        )
        if not (self.project_dir / ".git").exists():
            self._init_repos()
        self.compose_path.write_text(self.compose_text())
        (self.root / "stack.json").write_text(json.dumps(self.describe(), indent=2) + "\n")

    def _init_repos(self) -> None:
        self.project_dir.mkdir(parents=True, exist_ok=True)
        run(["git", "init", "-q", "--bare", str(self.origin)])
        run(["git", "init", "-q", "-b", BRANCH, str(self.project_dir)])
        self.compose_path.write_text(self.compose_text())
        (self.project_dir / "README.md").write_text("# atproto deployment (stand-in)\n")
        self._git("add", "README.md", COMPOSE_NAME, cwd=self.project_dir)
        self._git("commit", "-q", "-m", "Production compose file", cwd=self.project_dir)
        self._git("remote", "add", "origin", str(self.origin), cwd=self.project_dir)
        self._git("push", "-q", "-u", "origin", BRANCH, cwd=self.project_dir)
        # A second clone pushes one more commit, so the checkout is one behind origin.
        with tempfile.TemporaryDirectory(prefix="standin-upstream-") as tmp:
            upstream = Path(tmp) / "upstream"
            run(["git", "clone", "-q", "-b", BRANCH, str(self.origin), str(upstream)])
            (upstream / "NOTES.md").write_text("Exit-path instrumentation for rsky-ingester (EXIT PATH A-I, Z).\n")
            self._git("add", "NOTES.md", cwd=upstream)
            self._git("commit", "-q", "-m", "Add exit-trace notes", cwd=upstream)
            self._git("push", "-q", "origin", BRANCH, cwd=upstream)

    # ---------------------------------------------------------------------- docker ---

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``docker compose -f <file> ARGS`` in the project dir."""
        return run(
            ["docker", "compose", "-f", self.compose_file, *args],
            cwd=self.project_dir,
            check=check,
        )

    def up(self) -> None:
        """Start the stack detached (``up -d``), building the shared image first if needed."""
        build_images()
        self.compose("up", "-d")

    def down(self) -> None:
        """Remove the stack's containers, volumes and debug image; safe to call twice."""
        if self.compose_path.exists():
            # -t 0: like production PID 1 the ingester ignores SIGTERM; do not wait 10 s.
            self.compose("down", "-v", "--remove-orphans", "-t", "0", check=False)
        # Containers a swap may have created outside compose's bookkeeping.
        run(["docker", "rm", "-f", "-v", self.container, self.redis_container], check=False)
        run(["docker", "image", "rm", "-f", self.debug_image], check=False)

    def build_debug_image(self) -> str:
        """Build the debug image with the runbook's command, tagged :attr:`debug_image`."""
        run(
            [
                "docker",
                "build",
                "-q",
                "-f",
                "../rsky/rsky-ingester/Dockerfile",
                "-t",
                self.debug_image,
                "../rsky",
            ],
            cwd=self.project_dir,
        )
        return self.debug_image

    def inspect(self) -> dict[str, Any]:
        """``docker inspect`` of the ingester container (the single object, not the list)."""
        data = json.loads(run(["docker", "inspect", self.container]).stdout)
        return dict(data[0])

    def container_id(self) -> str:
        """The ingester container's full id."""
        return str(self.inspect()["Id"])

    def container_pid(self) -> int:
        """Host PID of the container's PID 1 (0 while it is not running)."""
        return int(self.inspect()["State"]["Pid"])

    def restart_count(self) -> int:
        """Docker's RestartCount for the ingester container (policy restarts)."""
        return int(self.inspect()["RestartCount"])

    def kill9(self) -> int:
        """SIGKILL the container's PID 1 from the host (root needed) and return that PID.

        Unlike ``docker kill`` this is not a manual stop: the restart policy restarts it.
        """
        pid = self.wait_running()
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_running(self, timeout: float = 30) -> int:
        """Wait until the ingester container runs; return its host PID."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.inspect()["State"]
            if state["Running"] and not state["Restarting"] and state["Pid"]:
                return int(state["Pid"])
            time.sleep(0.05)
        raise TimeoutError(f"{self.container} not running after {timeout} s")

    def wait_restarts(self, n: int, timeout: float = 60) -> int:
        """Wait until RestartCount >= n; return it, or raise TimeoutError with the count seen."""
        deadline = time.monotonic() + timeout
        count = -1
        while time.monotonic() < deadline:
            count = self.restart_count()
            if count >= n:
                return count
            time.sleep(0.1)
        raise TimeoutError(f"{self.container}: RestartCount {count} < {n} after {timeout} s")

    def wait_exited(self, timeout: float = 60) -> dict[str, Any]:
        """Wait for a stack with ``restart="no"`` to exit; return the final ``State``."""
        run(["docker", "wait", self.container], timeout=timeout)
        return dict(self.inspect()["State"])

    def logs(self, *, timestamps: bool = False) -> ContainerLogs:
        """``docker logs`` of the ingester container: every run since it was created."""
        argv = ["docker", "logs", *(["--timestamps"] if timestamps else []), self.container]
        proc = run(argv)
        return ContainerLogs(stdout=proc.stdout, stderr=proc.stderr)

    def events(self, since: float, until: float | None = None) -> list[dict[str, Any]]:
        """Docker events for the ingester container between two epochs (daemon keeps 256)."""
        end = time.time() if until is None else until
        proc = run(
            [
                "docker",
                "events",
                "--since",
                f"{since:.3f}",
                "--until",
                f"{end:.3f}",
                "--filter",
                f"container={self.container}",
                "--format",
                "{{json .}}",
            ]
        )
        return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


# ------------------------------------------------------------------------------ CLI ---


def _parse_env(pairs: Sequence[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--env wants KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``build``, ``up`` (prints the stack's JSON description) and ``down``."""
    parser = argparse.ArgumentParser(
        prog="python -m standin.stack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="compile the stand-in and build rsky-ingester:latest")
    up = sub.add_parser("up", help="lay out a stack under --root and start it")
    up.add_argument("--root", type=Path, required=True)
    up.add_argument("--scenario", default="healthy", choices=SCENARIOS)
    up.add_argument("--build", choices=BUILDS, default=None, help="production image generation")
    up.add_argument("--relay-hosts", default=DEFAULT_RELAY_HOSTS, help="'' for none")
    up.add_argument("--prefix", required=True, help="unique name prefix (containers, project)")
    up.add_argument("--mem-limit", default="64m")
    up.add_argument("--mode", default="all", help="INGESTER_MODE")
    up.add_argument("--labeler-hosts", default=DEFAULT_LABELER_HOSTS, help="'' for none")
    up.add_argument("--exit-after-ms", type=int, default=None)
    up.add_argument(
        "--no-instrumented-branch",
        action="store_true",
        help="the debug Dockerfile builds the hook generation (no [EXIT-TRACE])",
    )
    up.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    down = sub.add_parser("down", help="stop and remove the stack laid out under --root")
    down.add_argument("--root", type=Path, required=True)
    args = parser.parse_args(argv)

    try:
        if args.command == "build":
            print(json.dumps({"binary": str(build_binary()), "image": build_images()}))
        elif args.command == "up":
            stack = Stack(
                args.root,
                args.scenario,
                name_prefix=args.prefix,
                mem_limit=args.mem_limit,
                env=_parse_env(args.env),
                instrumented_branch=not args.no_instrumented_branch,
                labeler_hosts=args.labeler_hosts,
                relay_hosts=args.relay_hosts,
                mode=args.mode,
                exit_after_ms=args.exit_after_ms,
                build=args.build,
            )
            stack.up()
            print(json.dumps(stack.describe(), indent=2))
        else:
            Stack.load(args.root).down()
    except (StackError, OSError, ValueError) as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
