"""Compose layouts with secrets where production compose files really put them.

The stand-in test bed (:mod:`standin.stack`) writes one tidy compose file. Real ones are
laid out differently: ``environment:`` straight under ``image:``, list-form variables, labels
carrying URLs with passwords, profile-only services with passwords that contain spaces.
A :class:`Layout` writes such a compose file into a laid-out :class:`Stack`'s project dir,
keeping the stack's names (project, container, debug image) so the stack's own ``up()`` and
``down()`` still work. Every service uses ``network_mode: none``.

Each layout lists the secrets it plants and, for values with spaces or quotes, the fragments
that would betray them (a single word of a spaced password, the part after a quote).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from standin.stack import PROD_IMAGE, Stack, build_images, run


@dataclass(frozen=True)
class Secret:
    """One planted secret: what it is, its value, and fragments that must not leak either."""

    what: str
    value: str
    fragments: tuple[str, ...] = ()

    def needles(self) -> tuple[str, ...]:
        """The value, its JSON-escaped form (quotes inside it) and its fragments."""
        escaped = json.dumps(self.value)[1:-1]
        found = [self.value]
        if escaped != self.value:
            found.append(escaped)
        return (*found, *self.fragments)


@dataclass(frozen=True)
class Layout:
    """A compose file shape, the secrets it carries and how to write it for a stack."""

    name: str
    secrets: tuple[Secret, ...]
    render: Callable[[Stack], str]
    # Files beside the compose file (env_file, .env), by name.
    files: dict[str, str] = field(default_factory=dict)

    def install(self, stack: Stack) -> bytes:
        """Write this layout's compose file (and its files) over the stack's; return its bytes."""
        for name, text in self.files.items():
            (stack.project_dir / name).write_text(text)
        data = self.render(stack).encode("utf-8")
        stack.compose_path.write_bytes(data)
        return data


# The stand-in's behaviour: a crash loop fast enough for a short capture (every ~1.5 s).
_STANDIN_ENV = {
    "STANDIN_SCENARIO": "task-error",
    "STANDIN_EXIT_AFTER_MS": "1500",
    "INGESTER_MODE": "all",
    "INGESTER_RELAY_HOSTS": "https://relay1.us-east.bsky.network",
    "INGESTER_LABELER_HOSTS": "https://atproto.africa",
    "RUST_LOG": "info,rsky_ingester=info",
    "RUST_BACKTRACE": "1",
}


def _map_env(env: dict[str, str]) -> list[str]:
    return [f"      {key}: {json.dumps(value)}" for key, value in env.items()]


def _list_env(env: dict[str, str]) -> list[str]:
    return ["      - " + json.dumps(f"{key}={value}") for key, value in env.items()]


def _compose(stack: Stack, *services: list[str]) -> str:
    head = [
        "# Production compose file, laid out the way it grew on the host.",
        "# Test bed: network_mode none everywhere.",
        f"name: {stack.project}",
        "",
        "services:",
    ]
    body: list[str] = []
    for service in services:
        body += [*service, ""]
    return "\n".join(head + body)


# ---------------------------------------------------------------- env right under image ---

ENV_UNDER_IMAGE_REDIS = "Pelican-r3dis-pw"
ENV_UNDER_IMAGE_TOKEN = "tok_live_9c1f7a3e5b2d"  # noqa: S105 - a planted test secret


def _env_under_image(stack: Stack) -> str:
    env = {
        "REDIS_URL": f"redis://:{ENV_UNDER_IMAGE_REDIS}@redis:6379",
        "BSKY_API_TOKEN": ENV_UNDER_IMAGE_TOKEN,
        **_STANDIN_ENV,
    }
    redis = [
        "  redis:",
        f"    image: {PROD_IMAGE}",
        "    environment:",
        "      STANDIN_SCENARIO: idle",
        f"      REDIS_PASSWORD: {ENV_UNDER_IMAGE_REDIS}",
        f"    container_name: {stack.redis_container}",
        "    restart: unless-stopped",
        "    network_mode: none",
    ]
    ingester = [
        "  ingester:",
        f"    image: {PROD_IMAGE}",
        "    environment:",
        *_map_env(env),
        f"    container_name: {stack.container}",
        "    restart: unless-stopped",
        "    network_mode: none",
        "    mem_limit: 64m",
    ]
    return _compose(stack, redis, ingester)


ENV_UNDER_IMAGE = Layout(
    name="env-under-image",
    secrets=(
        Secret("Redis password in REDIS_URL, right under image:", ENV_UNDER_IMAGE_REDIS),
        Secret("API token under a secret-looking name, right under image:", ENV_UNDER_IMAGE_TOKEN),
    ),
    render=_env_under_image,
)

# -------------------------------------------------- spaced password, profile-only service ---

SPACED_PASSWORD = "50 Leagues Under the Sea"  # noqa: S105 - a planted test secret
SPACED_REDIS = "Heron-r3dis-pw"


def _spaced_profile(stack: Stack) -> str:
    env = {"REDIS_URL": f"redis://:{SPACED_REDIS}@redis:6379", **_STANDIN_ENV}
    ingester = [
        "  ingester:",
        f"    image: {PROD_IMAGE}",
        f"    container_name: {stack.container}",
        "    restart: unless-stopped",
        "    network_mode: none",
        "    environment:",
        *_map_env(env),
        "    mem_limit: 64m",
    ]
    migrate = [
        "  # Run by hand before a schema change: docker compose --profile migrate run db-migrate",
        "  db-migrate:",
        f"    image: {PROD_IMAGE}",
        f"    container_name: {stack.prefix}-db-migrate",
        "    profiles: [migrate]",
        "    network_mode: none",
        "    environment:",
        "      STANDIN_SCENARIO: idle",
        "      DB_USER: bsky",
        # A plain YAML scalar with spaces, as people type it.
        f"      DB_PASSWORD: {SPACED_PASSWORD}",
    ]
    return _compose(stack, ingester, migrate)


SPACED_PROFILE = Layout(
    name="spaced-password-profile-only",
    secrets=(
        Secret(
            "password with spaces in a profile-only service",
            SPACED_PASSWORD,
            fragments=("Leagues Under the Sea", "Leagues"),
        ),
        Secret("Redis password in REDIS_URL", SPACED_REDIS),
    ),
    render=_spaced_profile,
)

# ------------------------------------------------------------ secret-named, with quotes ---

QUOTED_WEBHOOK = "o'Brien-Wombat-4410"
QUOTED_SIGNING = 'Marmalade "Quokka" 7731'
QUOTED_CACHE = 'Tapir\'s "Zephyr" 5521'
QUOTED_REDIS = "Ibis-r3dis-pw"


def _quoted(stack: Stack) -> str:
    env = {
        "WEBHOOK_TOKEN": QUOTED_WEBHOOK,
        "SIGNING_SECRET": QUOTED_SIGNING,
        "REDIS_URL": f"redis://:{QUOTED_REDIS}@redis:6379",
        **_STANDIN_ENV,
    }
    cache = [
        "  cache:",
        f"    image: {PROD_IMAGE}",
        f"    container_name: {stack.redis_container}",
        "    network_mode: none",
        "    environment:",
        "      STANDIN_SCENARIO: idle",
        # A double-quoted YAML scalar with an apostrophe and escaped double quotes.
        f"      CACHE_AUTH_SECRET: {json.dumps(QUOTED_CACHE)}",
    ]
    ingester = [
        "  ingester:",
        f"    image: {PROD_IMAGE}",
        "    environment:",
        # List form, each item quoted whole: "NAME=value with 'quotes'".
        *_list_env(env),
        f"    container_name: {stack.container}",
        "    restart: unless-stopped",
        "    network_mode: none",
        "    mem_limit: 64m",
    ]
    return _compose(stack, cache, ingester)


QUOTED = Layout(
    name="secret-names-with-quotes",
    secrets=(
        Secret("token with an apostrophe (list form, under image:)", QUOTED_WEBHOOK, ("Brien-Wombat",)),
        Secret("secret with double quotes (list form, under image:)", QUOTED_SIGNING, ("Marmalade", "Quokka")),
        Secret("secret with both quotes in a sidecar", QUOTED_CACHE, ("Tapir", "Zephyr")),
        Secret("Redis password in REDIS_URL (list form)", QUOTED_REDIS),
    ),
    render=_quoted,
)

# ---------------------------------------------------------- passwords inside URLs only ---

URL_MIRROR = "Narwhal-url-8812"
URL_DB = "Otter-db-2291"
URL_QUEUE = "Kestrel-mq-6603"
URL_REDIS = "Puffin-r3dis-pw"


def _url_passwords(stack: Stack) -> str:
    env = {
        "UPSTREAM_MIRROR": f"https://mirror-user:{URL_MIRROR}@mirror.invalid/xrpc",
        "DATABASE_URL": f"postgres://bsky:{URL_DB}@db.invalid:5432/bsky",
        "REDIS_URL": f"redis://:{URL_REDIS}@redis:6379/0",
        **_STANDIN_ENV,
    }
    ingester = [
        "  ingester:",
        f"    image: {PROD_IMAGE}",
        "    labels:",
        f"      org.example.queue: amqp://ingest:{URL_QUEUE}@mq.invalid:5672/bsky",
        f"    container_name: {stack.container}",
        "    restart: unless-stopped",
        "    network_mode: none",
        "    environment:",
        *_map_env(env),
        "    mem_limit: 64m",
    ]
    return _compose(stack, ingester)


URL_PASSWORDS = Layout(
    name="url-passwords",
    secrets=(
        Secret("URL password in a label right under image:", URL_QUEUE),
        Secret("URL password in a plainly named variable", URL_MIRROR),
        Secret("password in DATABASE_URL", URL_DB),
        Secret("Redis password in REDIS_URL", URL_REDIS),
    ),
    render=_url_passwords,
)

# ------------------------------------------- env_file and .env interpolation (no secret in the file) ---

ENV_FILE_ADMIN = "Albatross Quince Mirage 88"
ENV_FILE_REDIS = "Gannet-r3dis-pw"


def _env_file(stack: Stack) -> str:
    env = {"REDIS_URL": "redis://:${REDIS_PASSWORD}@redis:6379", **_STANDIN_ENV}
    ingester = [
        "  ingester:",
        f"    image: {PROD_IMAGE}",
        "    env_file: [ingester.env]",
        "    environment:",
        *_map_env(env),
        f"    container_name: {stack.container}",
        "    restart: unless-stopped",
        "    network_mode: none",
        "    mem_limit: 64m",
    ]
    return _compose(stack, ingester)


ENV_FILE = Layout(
    name="env-file-and-interpolation",
    secrets=(
        Secret("spaced password from an env_file", ENV_FILE_ADMIN, ("Quince Mirage", "Quince", "Mirage")),
        Secret("Redis password interpolated from .env", ENV_FILE_REDIS),
    ),
    render=_env_file,
    files={
        ".env": f"REDIS_PASSWORD={ENV_FILE_REDIS}\n",
        "ingester.env": f"ADMIN_PASSWORD={ENV_FILE_ADMIN}\nINGESTER_SITE=backfill-1\n",
    },
)

ALL = (ENV_UNDER_IMAGE, SPACED_PROFILE, QUOTED, URL_PASSWORDS, ENV_FILE)


# ================================================================ the swap corpus (issue 13) ===
#
# Compose files as people write them, each with what a careful operator expects the capture's
# swap to do: the answer key, written by hand from the layout (never from the module's output).
# ``swapped``: the capture edits exactly one line (``line``: the line that holds ``target``, or
# the new line right after it for an inserted ``image:``) and the file comes back byte for byte;
# ``refused``: nothing changes, and one message names the file, the line and ``reason``.
#
# Placeholders in the texts: @PROJECT@, @CONTAINER@, @REDIS@, @PREFIX@, @DIGEST@ (the image pinned
# by digest) and @ENV:<n>@ (the stand-in's crash-loop environment, as a map indented by n).

SWAP_REDIS = "Cormorant-r3dis-pw"
SWAP_TOKEN = "tok_live_2b8e4d6f0a1c"  # noqa: S105 - a planted test secret
SWAP_MIGRATE = "Twenty Thousand Leagues 1870"
SWAP_ENV_FILE = "Quagga Lantern Orchid 12"


@dataclass(frozen=True)
class SwapLayout:
    """One compose layout of the swap corpus and its expected outcome."""

    name: str
    text: str
    outcome: str  # "swapped" or "refused"
    # The line the outcome is about: the first line containing target[-1] after the lines
    # containing target[0], target[1]... in turn (a path through the file, by hand).
    target: tuple[str, ...]
    why: str  # the answer key's one-line reason
    edit: str = "replace"  # swapped: "replace" the target line, or "insert" a line after it
    reason: tuple[str, ...] = ()  # refused: words the message must carry
    compose_file: str = "docker-compose.prod-rust.yml"
    # Other config files of the project, in -f order after compose_file (an override file).
    overrides: tuple[tuple[str, str], ...] = ()
    # The file the swap edits, when not compose_file.
    swapped_file: str = ""
    files: tuple[tuple[str, str], ...] = ()
    profiles: tuple[str, ...] = ()  # profiles the stack is started with
    crlf: bool = False
    secrets: tuple[Secret, ...] = ()
    # Part of the multi-host capture.yml + rollback.yml run. Every layout goes through the module
    # run; the capture run (CPU-heavy: a whole capture per host) takes the layouts where the
    # capture's own steps (preflight's refusal, preflight on the labels, the window's stop/rm/up,
    # rollback's recreate and wait on the original image) meet something the module run does not:
    # a digest, an interpolated tag, a build section, an inserted line, a profile, several files.
    capture: bool = True
    # The image compose resolves for the ingester before the swap ("" for the production tag).
    original: str = ""

    @property
    def edited_file(self) -> str:
        return self.swapped_file or self.compose_file

    def config_files(self) -> list[str]:
        return [self.compose_file, *(name for name, _ in self.overrides)]

    def render(self, stack: Stack, digest: str = "") -> dict[str, bytes]:
        """Every file of this layout for ``stack``, by name relative to the project dir."""
        out: dict[str, bytes] = {}
        for name, text in ((self.compose_file, self.text), *self.overrides, *self.files):
            body = _fill(text, stack, digest)
            if self.crlf and name in self.config_files():
                body = body.replace("\n", "\r\n")
            out[name] = body.encode("utf-8")
        return out

    def install(self, stack: Stack, digest: str = "") -> dict[str, bytes]:
        """Write the layout over the stack's project dir and point the stack at its compose file."""
        for name in ("docker-compose.prod-rust.yml",):
            (stack.project_dir / name).unlink(missing_ok=True)
        rendered = self.render(stack, digest)
        for name, data in rendered.items():
            path = stack.project_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        stack.compose_file = self.compose_file
        stack.compose_path = stack.project_dir / self.compose_file
        return rendered

    def compose_argv(self, stack: Stack) -> list[str]:
        argv = ["docker", "compose", "--project-directory", str(stack.project_dir)]
        for name in self.config_files():
            argv += ["-f", str(stack.project_dir / name)]
        return argv

    def up(self, stack: Stack) -> None:
        """Start the stack the way its operator does (-f for every file, the profiles)."""
        build_images()
        argv = self.compose_argv(stack)
        for profile in self.profiles:
            argv += ["--profile", profile]
        run([*argv, "up", "-d"], cwd=stack.project_dir, timeout=300)

    def down(self, stack: Stack) -> None:
        """Remove what :meth:`up` made (every profile, the image a build-only service built)."""
        run([*self.compose_argv(stack), "--profile", "*", "down", "-v", "-t", "0"], check=False)
        run(["docker", "image", "rm", "-f", f"{stack.project}-ingester"], check=False)
        stack.down()

    def line_of_target(self, data: bytes) -> int:
        """The 1-based line the answer key's ``target`` path points at in the rendered file."""
        lines = data.decode("utf-8").split("\n")
        at = 0
        for step in self.target:
            hits = [i for i in range(at, len(lines)) if step in lines[i]]
            if not hits:
                raise AssertionError(f"{self.name}: no line with {step!r} after line {at + 1}")
            at = hits[0]
            at += 1 if step != self.target[-1] else 0
        return at + 1


def _fill(text: str, stack: Stack, digest: str) -> str:
    def env(match: re.Match[str]) -> str:
        pad = " " * int(match.group(1))
        return "\n".join(f"{pad}{key}: {json.dumps(value)}" for key, value in _STANDIN_ENV.items())

    text = re.sub(r"@ENV:(\d+)@", env, text)
    for token, value in (
        ("@PROJECT@", stack.project),
        ("@CONTAINER@", stack.container),
        ("@REDIS@", stack.redis_container),
        ("@PREFIX@", stack.prefix),
        ("@DIGEST@", digest or "rsky-ingester@sha256:" + "0" * 64),
    ):
        text = text.replace(token, value)
    return text


ENV_UNDER_IMAGE_SWAP = SwapLayout(
    name="env-under-image",
    text=f"""\
# Rust backfill pipeline: environment right under the image, as it grew.
name: @PROJECT@

services:
  redis:
    image: rsky-ingester:latest
    environment:
      STANDIN_SCENARIO: idle
      REDIS_PASSWORD: {SWAP_REDIS}
    container_name: @REDIS@
    restart: unless-stopped
    network_mode: none

  ingester:
    image: rsky-ingester:latest
    environment:
      REDIS_URL: "redis://:{SWAP_REDIS}@redis:6379"
      BSKY_API_TOKEN: {SWAP_TOKEN}
@ENV:6@
    container_name: @CONTAINER@
    restart: unless-stopped
    network_mode: none
    mem_limit: 64m
""",
    capture=False,  # text only: the module run covers it (compose reads it as any other file)
    outcome="swapped",
    target=("  ingester:", "image:"),
    why="the ingester's own image: line holds a plain tag: edit that line",
    secrets=(Secret("Redis password right under image:", SWAP_REDIS), Secret("API token under image:", SWAP_TOKEN)),
)

ENV_FILE_SWAP = SwapLayout(
    name="env-file",
    text="""\
name: @PROJECT@
services:
  ingester:
    image: rsky-ingester:latest
    env_file:
      - ingester.env
    environment:
@ENV:6@
    container_name: @CONTAINER@
    restart: unless-stopped
    network_mode: none
""",
    files=(("ingester.env", f"ADMIN_PASSWORD={SWAP_ENV_FILE}\nINGESTER_SITE=backfill-2\n"),),
    capture=False,  # its files are read by the same compose calls the module run makes
    outcome="swapped",
    target=("  ingester:", "image:"),
    why="env_file: changes nothing about the image line: edit it",
    secrets=(Secret("spaced password in an env_file", SWAP_ENV_FILE, ("Lantern Orchid", "Quagga Lantern")),),
)

TAG_INTERPOLATION = SwapLayout(
    name="tag-interpolation",
    text="""\
# TAG comes from .env; both services follow it.
name: @PROJECT@
services:
  redis:
    image: rsky-ingester:${TAG:-latest}
    container_name: @REDIS@
    network_mode: none
    environment:
      STANDIN_SCENARIO: idle
      REDIS_PASSWORD: ${REDIS_PASSWORD}
  ingester:
    image: rsky-ingester:${TAG:-latest}
    container_name: @CONTAINER@
    restart: unless-stopped
    network_mode: none
    environment:
      REDIS_URL: redis://:${REDIS_PASSWORD}@redis:6379
@ENV:6@
""",
    files=((".env", f"TAG=latest\nREDIS_PASSWORD={SWAP_REDIS}\n"),),
    outcome="swapped",
    target=("  ingester:", "image:"),
    why=(
        "the ingester's own line holds ${TAG:-latest}: replacing that value swaps the ingester only "
        "(redis keeps following TAG, .env is not touched), and the diff shows it"
    ),
    secrets=(Secret("Redis password interpolated from .env", SWAP_REDIS),),
)

WHOLE_IMAGE_VARIABLE = SwapLayout(
    name="compose-yaml-image-variable-4-spaces",
    compose_file="compose.yaml",
    text="""\
name: @PROJECT@
services:
    ingester:
        image: ${INGESTER_IMAGE:?set INGESTER_IMAGE in .env}
        container_name: @CONTAINER@
        restart: unless-stopped
        network_mode: none
        environment:
@ENV:12@
""",
    files=((".env", "INGESTER_IMAGE=rsky-ingester:latest\n"),),
    capture=False,  # its files are read by the same compose calls the module run makes
    outcome="swapped",
    target=("    ingester:", "image:"),
    why="compose.yaml, 4-space indents, the whole image from a required variable: edit the service's own line",
)

DIGEST_PINNED = SwapLayout(
    name="digest-pinned",
    text="""\
name: @PROJECT@
services:
  ingester:
    image: @DIGEST@
    container_name: @CONTAINER@
    restart: unless-stopped
    network_mode: none
    environment:
@ENV:6@
""",
    outcome="swapped",
    target=("  ingester:", "image:"),
    why="an image pinned by digest is one value on one line: swap it, and rollback puts the digest back",
    original="@DIGEST@",
)

DOUBLE_QUOTED_COMMENT = SwapLayout(
    name="double-quoted-with-comment",
    text="""\
name: @PROJECT@
services:
  ingester:
    image: "rsky-ingester:latest"   # pinned: bump with the release checklist
    container_name: "@CONTAINER@"
    restart: unless-stopped
    network_mode: none
    environment:
@ENV:6@
""",
    capture=False,  # text only: the module run covers it (compose reads it as any other file)
    outcome="swapped",
    target=("  ingester:", "image:"),
    why="double quotes and the comment stay; only the value between the quotes changes",
)

SINGLE_QUOTED_CRLF = SwapLayout(
    name="single-quoted-crlf",
    crlf=True,
    text="""\
name: @PROJECT@
services:
  ingester:
    image: 'rsky-ingester:latest'
    container_name: '@CONTAINER@'
    restart: unless-stopped
    network_mode: none
    environment:
@ENV:6@
""",
    capture=False,  # text only: the module run covers it (compose reads it as any other file)
    outcome="swapped",
    target=("  ingester:", "image:"),
    why="single quotes and the CRLF line endings (a file saved on Windows) stay byte for byte",
)

BUILD_BESIDE_IMAGE = SwapLayout(
    name="build-beside-image",
    text="""\
name: @PROJECT@
services:
  ingester:
    build:
      context: ../rsky
      dockerfile: rsky-ingester/Dockerfile
    image: rsky-ingester:latest
    container_name: @CONTAINER@
    restart: unless-stopped
    network_mode: none
    environment:
@ENV:6@
""",
    outcome="swapped",
    target=("  ingester:", "image:"),
    why="image: names what the service runs (build: only says how to make it): edit the image line",
)

BUILD_ONLY = SwapLayout(
    name="build-only",
    text="""\
name: @PROJECT@
services:
  ingester:
    build:
      context: ../rsky
      dockerfile: rsky-ingester/Dockerfile
    container_name: @CONTAINER@
    restart: unless-stopped
    network_mode: none
    environment:
@ENV:6@
""",
    outcome="refused",
    target=("  ingester:",),
    reason=("no image: line", "build: (line 4)"),
    why="no image: line: there is no tag to swap, and inventing one would change how the service is built",
    original="@PROJECT@-ingester",  # the tag compose gives its build
)

MERGE_KEY_SHARED = SwapLayout(
    name="merge-key-shared-anchor",
    text="""\
name: @PROJECT@

x-rsky: &rsky-defaults
  image: rsky-ingester:latest
  restart: unless-stopped
  network_mode: none
  mem_limit: 64m

services:
  ingester:
    <<: *rsky-defaults
    container_name: @CONTAINER@
    environment:
@ENV:6@

  # Replays a day of the firehose by hand: docker compose --profile tools run backfill
  backfill:
    <<: *rsky-defaults
    container_name: @PREFIX@-backfill
    profiles: [tools]
    environment:
      STANDIN_SCENARIO: idle
""",
    outcome="swapped",
    edit="insert",
    target=("  ingester:", "<<: *rsky-defaults"),
    why=(
        "the image comes from an anchor that backfill shares: editing the anchor would swap backfill too, "
        "so the ingester gets an image: line of its own right after its merge key; the anchor stays"
    ),
)

ANCHOR_SHARED = SwapLayout(
    name="anchor-on-image-shared",
    text="""\
name: @PROJECT@
services:
  ingester:
    image: &rsky-image rsky-ingester:latest
    container_name: @CONTAINER@
    restart: unless-stopped
    network_mode: none
    environment:
@ENV:6@
  redis:
    image: *rsky-image
    container_name: @REDIS@
    network_mode: none
    environment:
      STANDIN_SCENARIO: idle
""",
    outcome="refused",
    target=("  ingester:", "image:"),
    reason=("&rsky-image", "service 'redis'", "*rsky-image", "would swap that too"),
    why=(
        "the ingester's image line defines the anchor redis reuses: editing it swaps redis too, and dropping "
        "the anchor breaks redis; no one-line edit is right, so refuse and say which line and why"
    ),
)

ALIAS_ON_IMAGE = SwapLayout(
    name="alias-on-image",
    text="""\
name: @PROJECT@
x-images:
  production: &production-image rsky-ingester:latest
services:
  redis:
    image: *production-image
    container_name: @REDIS@
    network_mode: none
    environment:
      STANDIN_SCENARIO: idle
  ingester:
    image: *production-image
    container_name: @CONTAINER@
    restart: unless-stopped
    network_mode: none
    environment:
@ENV:6@
""",
    capture=False,  # text only: the module run covers it (compose reads it as any other file)
    outcome="swapped",
    target=("  ingester:", "image:"),
    why="the ingester's own line holds an alias: replace the alias on that line; the anchor and redis stay",
)

EXTENSION_FIELDS = SwapLayout(
    name="x-extension-fields",
    text="""\
name: @PROJECT@
x-logging: &default-logging
  driver: json-file
  options:
    max-size: "10m"
    max-file: "3"
x-deploy-notes: the backfill host only; see the runbook
services:
  ingester:
    x-owner: backfill-team
    image: rsky-ingester:latest
    logging: *default-logging
    container_name: @CONTAINER@
    restart: unless-stopped
    network_mode: none
    environment:
@ENV:6@
  redis:
    image: rsky-ingester:latest
    logging: *default-logging
    container_name: @REDIS@
    network_mode: none
    environment:
      STANDIN_SCENARIO: idle
""",
    capture=False,  # text only: the module run covers it (compose reads it as any other file)
    outcome="swapped",
    target=("  ingester:", "image:"),
    why="x- fields (top level and in the service) and a shared logging anchor do not touch the image line",
)

PROFILES = SwapLayout(
    name="profiles",
    text=f"""\
name: @PROJECT@
services:
  ingester:
    image: rsky-ingester:latest
    profiles: [backfill]
    container_name: @CONTAINER@
    restart: unless-stopped
    network_mode: none
    environment:
@ENV:6@
  # Run by hand before a schema change: docker compose --profile migrate run db-migrate
  db-migrate:
    image: rsky-ingester:latest
    profiles: [migrate]
    container_name: @PREFIX@-db-migrate
    network_mode: none
    environment:
      STANDIN_SCENARIO: idle
      DB_PASSWORD: {SWAP_MIGRATE}
""",
    profiles=("backfill",),
    outcome="swapped",
    target=("  ingester:", "image:"),
    why="the ingester runs in a profile (compose starts a service named on the command line): edit its line",
    secrets=(Secret("spaced password in a profile-only service", SWAP_MIGRATE, ("Thousand Leagues",)),),
)

LONG_FORM = SwapLayout(
    name="long-form-ports-volumes",
    text="""\
name: @PROJECT@
services:
  ingester:
    image: rsky-ingester:latest
    container_name: @CONTAINER@
    restart: unless-stopped
    network_mode: none
    ports:
      - target: 4100
        published: "4100"
        host_ip: 127.0.0.1
        protocol: tcp
        mode: host
    volumes:
      - type: bind
        source: ./data
        target: /data
        read_only: true
      - type: volume
        source: cursor
        target: /cursor
        volume:
          nocopy: true
    environment:
@ENV:6@
volumes:
  cursor: {}
""",
    files=(("data/README", "relay cursors live here\n"),),
    capture=False,  # its files are read by the same compose calls the module run makes
    outcome="swapped",
    target=("  ingester:", "image:"),
    why="long-form ports and volumes are other keys of the block: the image line is edited alone",
)

OVERRIDE_FILE = SwapLayout(
    name="override-file",
    compose_file="docker-compose.yml",
    text="""\
name: @PROJECT@
services:
  ingester:
    image: rsky-ingester:stale
    container_name: @CONTAINER@
    restart: unless-stopped
    network_mode: none
    environment:
      STANDIN_SCENARIO: idle
""",
    overrides=(
        (
            "docker-compose.override.yml",
            """\
# Host override: the tag this host runs, and its crash loop.
services:
  ingester:
    image: rsky-ingester:latest
    environment:
@ENV:6@
""",
        ),
    ),
    swapped_file="docker-compose.override.yml",
    outcome="swapped",
    target=("  ingester:", "image:"),
    why="started with -f base -f override: the override's image: wins, so the swap edits the override's line",
)

EXTENDS = SwapLayout(
    name="extends-other-file",
    text="""\
name: @PROJECT@
services:
  ingester:
    extends:
      file: common.yml
      service: rsky
    container_name: @CONTAINER@
    environment:
@ENV:6@
""",
    files=(
        (
            "common.yml",
            """\
services:
  rsky:
    image: rsky-ingester:latest
    restart: unless-stopped
    network_mode: none
""",
        ),
    ),
    outcome="swapped",
    edit="insert",
    target=("  ingester:", "      service: rsky"),
    capture=False,
    why="the image comes from another file through extends: the ingester gets its own image: line, common.yml stays",
)

SWAP_CORPUS = (
    ENV_UNDER_IMAGE_SWAP,
    ENV_FILE_SWAP,
    TAG_INTERPOLATION,
    WHOLE_IMAGE_VARIABLE,
    DIGEST_PINNED,
    DOUBLE_QUOTED_COMMENT,
    SINGLE_QUOTED_CRLF,
    BUILD_BESIDE_IMAGE,
    BUILD_ONLY,
    MERGE_KEY_SHARED,
    ANCHOR_SHARED,
    ALIAS_ON_IMAGE,
    EXTENSION_FIELDS,
    PROFILES,
    LONG_FORM,
    OVERRIDE_FILE,
    EXTENDS,
)
