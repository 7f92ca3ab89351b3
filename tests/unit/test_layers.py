"""The collector's layers, read from its imports: the reading layer sits below the rules."""

from __future__ import annotations

import ast
from pathlib import Path

COLLECTOR = Path(__file__).resolve().parent.parent.parent / "collector"
RULES = ("collector.runs", "collector.diagnose")


def _imports(module: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_reading_layer_imports_no_rule() -> None:
    """loader, search, inputs and sources/ feed the rules; none of them imports one."""
    reading = [COLLECTOR / "loader.py", COLLECTOR / "search.py", COLLECTOR / "inputs.py",
               *sorted((COLLECTOR / "sources").glob("*.py"))]
    for module in reading:
        assert not _imports(module) & set(RULES), module.name


def test_loader_is_short() -> None:
    assert len((COLLECTOR / "loader.py").read_text().splitlines()) < 700
