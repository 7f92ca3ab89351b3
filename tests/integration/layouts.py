"""Compose layouts with secrets where production compose files really put them.

The stand-in test bed (:mod:`tests.standin.stack`) writes one tidy compose file. Real ones are
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
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.standin.stack import PROD_IMAGE, Stack


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
