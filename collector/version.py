"""The installed distribution's version, as every entry's `--version` prints it."""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "ingester-capture"


def package_version() -> str:
    """The installed distribution's version (the collection's own, checked by every play's first
    play), or "unknown" when the package runs from a checkout that was never installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def version_line(prog: str) -> str:
    """`<prog> <version>`: the controller's first play reads the last word."""
    return f"{prog} {package_version()}"
