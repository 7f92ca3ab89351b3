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


def test_no_standin_convention_in_the_product() -> None:
    """The stand-in's numbered lines are a test oracle: the collector neither reads nor reports them."""
    for module in sorted(COLLECTOR.rglob("*")):
        if module.suffix in (".py", ".j2", ".json"):
            text = module.read_text()
            for word in ("[SEQ]", "numbered_runs", "STANDIN_NUMBERED", "numbered lines"):
                assert word not in text, f"{module.relative_to(COLLECTOR)}: {word}"


def test_cli_only_parses_argv() -> None:
    """The pipeline lives in the library (collector.api); cli.py defines no part of it."""
    tree = ast.parse((COLLECTOR / "cli.py").read_text())
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert not defined & {"analyse", "read_source", "gather", "summarize"}


def test_one_template_environment_and_one_escaper() -> None:
    """One Jinja environment, one Markdown escaper, one fit, one reading of the kernel's OOM lines."""
    text = {p: p.read_text() for p in COLLECTOR.rglob("*.py")}
    count = {w: sum(t.count(w) for t in text.values())
             for w in ("jinja2.Environment(", 'replace("|", "\\\\|")', "def least_squares", r"Killed process (\d+)")}
    assert count == {"jinja2.Environment(": 1, 'replace("|", "\\\\|")': 1, "def least_squares": 1,
                     r"Killed process (\d+)": 0}, count
    assert (COLLECTOR / "verify").is_dir() and not (COLLECTOR / "verify.py").exists()
