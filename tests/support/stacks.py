"""The stand-in stacks the tests run: the images they are built from, the factory fixture's type,
and small edits and readings of a stack."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from standin.stack import Stack

# What the ``stack_factory`` fixture (tests/conftest.py) gives: ``make(scenario, **kw) -> Stack``.
StackFactory = Callable[..., Stack]


@dataclass(frozen=True)
class StandinImages:
    """The compiled stand-in binary and the shared production image built from it."""

    binary: Path
    prod_image: str


def with_logging(stack: Stack, block: str) -> None:
    """Give the ingester service a logging block, as many production compose files carry."""
    text = stack.compose_path.read_text()
    anchor = f"    mem_limit: {stack.mem_limit}\n"
    assert text.count(anchor) == 1
    stack.compose_path.write_text(text.replace(anchor, anchor + block))


def sortable_stamp(stamp: str) -> str:
    """A ``docker logs --timestamps`` stamp that sorts as a time: Docker's RFC3339Nano drops the
    fraction's trailing zeros (".12345Z" for .123450000), and as text ".12345Z" sorts after
    ".1234567Z" ("Z" > "6"). The fraction padded to 9 digits."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    return f"{head}.{frac.ljust(9, '0')}Z"
