# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
"""What the action plugins do on the controller's own file system."""

from __future__ import annotations

from pathlib import Path


def private_folder(folder: Path) -> None:
    """``folder`` and each missing folder above it, made 0750 whatever the umask (the bundles of
    every host are below them); folders that exist keep their modes."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o750)
        except FileExistsError:
            continue
        path.chmod(0o750)
