"""The compose corpus (tests/data/compose/): real-shaped compose files and what each one means.

Two sets of project folders, each file stored under the name it is written as:

* ``secrets/<name>/``: compose files with secrets where production files really put them
  (``environment:`` straight under ``image:``, list-form variables, labels carrying URLs with
  passwords, profile-only services with passwords that contain spaces, env_file and .env). A
  :class:`Layout` writes one over a laid-out :class:`Stack`'s project dir, keeping the stack's
  names, so the stack's own ``up()`` and ``down()`` still work.
* ``swap/<name>/``: compose files as people write them, each with what a careful operator expects
  the capture's swap to do (:class:`SwapLayout`, the answer key, written by hand from the layout,
  never from the module's output).

Every service uses ``network_mode: none``. The files hold placeholders for the names of the stack
they are written for: ``@PROJECT@``, ``@CONTAINER@``, ``@REDIS@``, ``@PREFIX@`` and ``@DIGEST@``
(the image pinned by digest); :func:`fill` puts the names in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from standin.stack import COMPOSE_NAME, Stack, build_images, run

COMPOSE = Path(__file__).resolve().parent.parent / "data" / "compose"


def layout_files(group: str, name: str) -> dict[str, str]:
    """Every file of one layout's folder, by path relative to it (sorted), as text."""
    folder = COMPOSE / group / name
    if not folder.is_dir():
        raise FileNotFoundError(f"no compose layout {group}/{name} in {COMPOSE}")
    return {
        path.relative_to(folder).as_posix(): path.read_bytes().decode("utf-8")
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def fill(text: str, stack: Stack, digest: str = "") -> str:
    """A layout's text with the stack's names (and the pinned digest) in place of the placeholders."""
    for token, value in (
        ("@PROJECT@", stack.project),
        ("@CONTAINER@", stack.container),
        ("@REDIS@", stack.redis_container),
        ("@PREFIX@", stack.prefix),
        ("@DIGEST@", digest or "rsky-ingester@sha256:" + "0" * 64),
    ):
        text = text.replace(token, value)
    return text


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


# ================================================================ the secrets corpus (issue 11) ===


@dataclass(frozen=True)
class Layout:
    """A compose file shape (``secrets/<name>/``) and the secrets it carries.

    Each layout lists the secrets it plants and, for values with spaces or quotes, the fragments
    that would betray them (a single word of a spaced password, the part after a quote).
    """

    name: str
    secrets: tuple[Secret, ...]

    @property
    def files(self) -> dict[str, str]:
        """The files beside the compose file (env_file, .env), by name."""
        return {name: text for name, text in layout_files("secrets", self.name).items() if name != COMPOSE_NAME}

    def render(self, stack: Stack) -> str:
        """The compose file, written for ``stack``."""
        return fill(layout_files("secrets", self.name)[COMPOSE_NAME], stack)

    def install(self, stack: Stack) -> bytes:
        """Write this layout's compose file (and its files) over the stack's; return its bytes."""
        for name, text in self.files.items():
            (stack.project_dir / name).write_text(text)
        data = self.render(stack).encode("utf-8")
        stack.compose_path.write_bytes(data)
        return data


ENV_UNDER_IMAGE = Layout(
    name="env-under-image",
    secrets=(
        Secret("Redis password in REDIS_URL, right under image:", "Pelican-r3dis-pw"),
        Secret("API token under a secret-looking name, right under image:", "tok_live_9c1f7a3e5b2d"),
    ),
)

SPACED_PROFILE = Layout(
    name="spaced-password-profile-only",
    secrets=(
        Secret(
            "password with spaces in a profile-only service",
            "50 Leagues Under the Sea",
            fragments=("Leagues Under the Sea", "Leagues"),
        ),
        Secret("Redis password in REDIS_URL", "Heron-r3dis-pw"),
    ),
)

QUOTED = Layout(
    name="secret-names-with-quotes",
    secrets=(
        Secret("token with an apostrophe (list form, under image:)", "o'Brien-Wombat-4410", ("Brien-Wombat",)),
        Secret(
            "secret with double quotes (list form, under image:)", 'Marmalade "Quokka" 7731', ("Marmalade", "Quokka")
        ),
        Secret("secret with both quotes in a sidecar", 'Tapir\'s "Zephyr" 5521', ("Tapir", "Zephyr")),
        Secret("Redis password in REDIS_URL (list form)", "Ibis-r3dis-pw"),
    ),
)

URL_PASSWORDS = Layout(
    name="url-passwords",
    secrets=(
        Secret("URL password in a label right under image:", "Kestrel-mq-6603"),
        Secret("URL password in a plainly named variable", "Narwhal-url-8812"),
        Secret("password in DATABASE_URL", "Otter-db-2291"),
        Secret("Redis password in REDIS_URL", "Puffin-r3dis-pw"),
    ),
)

# env_file and .env interpolation: no secret in the compose file itself.
ENV_FILE = Layout(
    name="env-file-and-interpolation",
    secrets=(
        Secret("spaced password from an env_file", "Albatross Quince Mirage 88", ("Quince Mirage", "Quince", "Mirage")),
        Secret("Redis password interpolated from .env", "Gannet-r3dis-pw"),
    ),
)

ALL = (ENV_UNDER_IMAGE, SPACED_PROFILE, QUOTED, URL_PASSWORDS, ENV_FILE)


# ================================================================ the swap corpus (issue 13) ===
#
# ``swapped``: the capture edits exactly one line (``line``: the line that holds ``target``, or
# the new line right after it for an inserted ``image:``) and the file comes back byte for byte;
# ``refused``: nothing changes, and one message names the file, the line and ``reason``.

SWAP_REDIS = "Cormorant-r3dis-pw"


@dataclass(frozen=True)
class SwapLayout:
    """One compose layout of the swap corpus (``swap/<name>/``) and its expected outcome."""

    name: str
    outcome: str  # "swapped" or "refused"
    # The line the outcome is about: the first line containing target[-1] after the lines
    # containing target[0], target[1]... in turn (a path through the file, by hand).
    target: tuple[str, ...]
    why: str  # the answer key's one-line reason
    edit: str = "replace"  # swapped: "replace" the target line, or "insert" a line after it
    reason: tuple[str, ...] = ()  # refused: words the message must carry
    compose_file: str = COMPOSE_NAME
    # Other config files of the project, in -f order after compose_file (an override file).
    overrides: tuple[str, ...] = ()
    # The file the swap edits, when not compose_file.
    swapped_file: str = ""
    profiles: tuple[str, ...] = ()  # profiles the stack is started with
    # Written with CRLF line endings (a file saved on Windows); the folder holds it with LF.
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
        return [self.compose_file, *self.overrides]

    def render(self, stack: Stack, digest: str = "") -> dict[str, bytes]:
        """Every file of this layout for ``stack``, by name relative to the project dir: the
        compose file, the overrides in -f order, then the other files."""
        texts = layout_files("swap", self.name)
        config = self.config_files()
        names = [*config, *(name for name in texts if name not in config)]
        out: dict[str, bytes] = {}
        for name in names:
            body = fill(texts[name], stack, digest)
            if self.crlf and name in config:
                body = body.replace("\n", "\r\n")
            out[name] = body.encode("utf-8")
        return out

    def install(self, stack: Stack, digest: str = "") -> dict[str, bytes]:
        """Write the layout over the stack's project dir and point the stack at its compose file."""
        (stack.project_dir / COMPOSE_NAME).unlink(missing_ok=True)
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


ENV_UNDER_IMAGE_SWAP = SwapLayout(
    name="env-under-image",
    capture=False,  # text only: the module run covers it (compose reads it as any other file)
    outcome="swapped",
    target=("  ingester:", "image:"),
    why="the ingester's own image: line holds a plain tag: edit that line",
    secrets=(
        Secret("Redis password right under image:", SWAP_REDIS),
        Secret("API token under image:", "tok_live_2b8e4d6f0a1c"),
    ),
)

ENV_FILE_SWAP = SwapLayout(
    name="env-file",
    capture=False,  # its files are read by the same compose calls the module run makes
    outcome="swapped",
    target=("  ingester:", "image:"),
    why="env_file: changes nothing about the image line: edit it",
    secrets=(
        Secret(
            "spaced password in an env_file", "Quagga Lantern Orchid 12", ("Lantern Orchid", "Quagga Lantern")
        ),
    ),
)

TAG_INTERPOLATION = SwapLayout(
    name="tag-interpolation",
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
    capture=False,  # its files are read by the same compose calls the module run makes
    outcome="swapped",
    target=("    ingester:", "image:"),
    why="compose.yaml, 4-space indents, the whole image from a required variable: edit the service's own line",
)

DIGEST_PINNED = SwapLayout(
    name="digest-pinned",
    outcome="swapped",
    target=("  ingester:", "image:"),
    why="an image pinned by digest is one value on one line: swap it, and rollback puts the digest back",
    original="@DIGEST@",
)

DOUBLE_QUOTED_COMMENT = SwapLayout(
    name="double-quoted-with-comment",
    capture=False,  # text only: the module run covers it (compose reads it as any other file)
    outcome="swapped",
    target=("  ingester:", "image:"),
    why="double quotes and the comment stay; only the value between the quotes changes",
)

SINGLE_QUOTED_CRLF = SwapLayout(
    name="single-quoted-crlf",
    crlf=True,
    capture=False,  # text only: the module run covers it (compose reads it as any other file)
    outcome="swapped",
    target=("  ingester:", "image:"),
    why="single quotes and the CRLF line endings (a file saved on Windows) stay byte for byte",
)

BUILD_BESIDE_IMAGE = SwapLayout(
    name="build-beside-image",
    outcome="swapped",
    target=("  ingester:", "image:"),
    why="image: names what the service runs (build: only says how to make it): edit the image line",
)

BUILD_ONLY = SwapLayout(
    name="build-only",
    outcome="refused",
    target=("  ingester:",),
    reason=("no image: line", "build: (line 4)"),
    why="no image: line: there is no tag to swap, and inventing one would change how the service is built",
    original="@PROJECT@-ingester",  # the tag compose gives its build
)

MERGE_KEY_SHARED = SwapLayout(
    name="merge-key-shared-anchor",
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
    capture=False,  # text only: the module run covers it (compose reads it as any other file)
    outcome="swapped",
    target=("  ingester:", "image:"),
    why="the ingester's own line holds an alias: replace the alias on that line; the anchor and redis stay",
)

EXTENSION_FIELDS = SwapLayout(
    name="x-extension-fields",
    capture=False,  # text only: the module run covers it (compose reads it as any other file)
    outcome="swapped",
    target=("  ingester:", "image:"),
    why="x- fields (top level and in the service) and a shared logging anchor do not touch the image line",
)

PROFILES = SwapLayout(
    name="profiles",
    profiles=("backfill",),
    outcome="swapped",
    target=("  ingester:", "image:"),
    why="the ingester runs in a profile (compose starts a service named on the command line): edit its line",
    secrets=(
        Secret("spaced password in a profile-only service", "Twenty Thousand Leagues 1870", ("Thousand Leagues",)),
    ),
)

LONG_FORM = SwapLayout(
    name="long-form-ports-volumes",
    capture=False,  # its files are read by the same compose calls the module run makes
    outcome="swapped",
    target=("  ingester:", "image:"),
    why="long-form ports and volumes are other keys of the block: the image line is edited alone",
)

OVERRIDE_FILE = SwapLayout(
    name="override-file",
    compose_file="docker-compose.yml",
    overrides=("docker-compose.override.yml",),
    swapped_file="docker-compose.override.yml",
    outcome="swapped",
    target=("  ingester:", "image:"),
    why="started with -f base -f override: the override's image: wins, so the swap edits the override's line",
)

EXTENDS = SwapLayout(
    name="extends-other-file",
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
