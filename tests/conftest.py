"""Shared fixtures: a Docker engine, the stand-in images and production-shaped stacks.

Only what every suite needs lives here; ansible/sshd fixtures belong to
``tests/integration/conftest.py``.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.standin.stack import PROD_IMAGE, Stack, build_binary, build_images

REPO = Path(__file__).resolve().parent.parent

StackFactory = Callable[..., Stack]


@dataclass(frozen=True)
class StandinImages:
    """The compiled stand-in binary and the shared production image built from it."""

    binary: Path
    prod_image: str


def _engine_answers() -> bool:
    proc = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=60)
    return proc.returncode == 0


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A Docker engine that answers ``docker info``; starts one via setup.sh or fails loudly.

    Never skips: a suite that silently skips its Docker tests proves nothing.
    """
    if _engine_answers():
        return
    setup = subprocess.run(
        ["bash", str(REPO / "scripts" / "setup.sh"), "test"],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if not _engine_answers():
        pytest.fail(
            "no Docker engine: `docker info` fails even after scripts/setup.sh test "
            f"(exit {setup.returncode}): {setup.stderr.strip()[-2000:]}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def standin_images(docker_engine: None) -> StandinImages:
    """The stand-in binary and ``rsky-ingester:latest``, built once per session (cached)."""
    return StandinImages(binary=build_binary(), prod_image=build_images())


@pytest.fixture
def stack_factory(standin_images: StandinImages, tmp_path: Path) -> Iterator[StackFactory]:
    """A factory ``make(scenario, **kw) -> Stack`` laying stacks out under ``tmp_path``.

    Each stack gets a unique name prefix (unless ``name_prefix`` is given) and is torn down
    (containers, volumes, its debug image tag) after the test, pass or fail. The stack is
    laid out, not started: call ``up()``.
    """
    made: list[Stack] = []

    def make(scenario: str = "healthy", **kw: Any) -> Stack:
        prefix = kw.pop("name_prefix", None) or f"ict-{uuid.uuid4().hex[:8]}"
        stack = Stack(tmp_path / f"stack{len(made)}", scenario, name_prefix=prefix, **kw)
        made.append(stack)
        return stack

    yield make
    errors: list[str] = []
    for stack in made:
        try:
            stack.down()
        except Exception as exc:  # teardown must reach every stack
            errors.append(f"{stack.container}: {exc}")
    assert not errors, f"stack teardown failed: {errors}"


__all__ = ["PROD_IMAGE", "StackFactory", "StandinImages"]
