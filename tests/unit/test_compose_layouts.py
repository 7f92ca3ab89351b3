"""The swap's decision on every layout of the corpus, on the text alone (no Docker).

The corpus is tests/data/compose/swap/, its answer key tests/support/compose_layouts.py
(SWAP_CORPUS): swapped (one line replaced, or one ``image:`` line inserted after the merge key /
extends) or refused (the message names the file, the line and why). The integration tests drive
the same layouts through the modules, the plays and the real engine
(tests/integration/test_compose_layouts.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.rsky.ingester_capture.plugins.module_utils import compose_text  # noqa: E402

from standin.stack import Stack  # noqa: E402
from tests.support.compose_layouts import SWAP_CORPUS, SwapLayout  # noqa: E402

DEBUG = "rsky-ingester:debug-unit"


def _rendered(layout: SwapLayout, tmp_path: Path) -> tuple[bytes, str]:
    stack = Stack(tmp_path, "healthy", name_prefix="unit", write=False)
    files = layout.render(stack)
    return files[layout.edited_file], layout.edited_file


@pytest.mark.parametrize("layout", SWAP_CORPUS, ids=[layout.name for layout in SWAP_CORPUS])
def test_the_swap_is_one_exact_edit_or_a_refusal_naming_the_line(layout: SwapLayout, tmp_path: Path) -> None:
    data, name = _rendered(layout, tmp_path)
    text = data.decode("utf-8")
    line = layout.line_of_target(data)
    if layout.outcome == "refused":
        with pytest.raises(compose_text.RefusedSwap) as refused:
            compose_text.swap_edit(text, "ingester", DEBUG, name)
        message = str(refused.value)
        assert refused.value.line == line, message
        assert message.startswith(f"{name} line {line}: "), message
        assert all(word in message for word in layout.reason), (layout.reason, message)
        assert "\n" not in message
        return
    edit = compose_text.swap_edit(text, "ingester", DEBUG, name)
    assert edit["edit"] == layout.edit, edit["how"]
    before, after = text.splitlines(True), edit["text"].splitlines(True)
    if layout.edit == "replace":
        assert edit["line"] == line, edit["how"]
        assert len(before) == len(after)
        changed = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if b != a]
        assert changed == [line - 1], changed
        old, new = before[line - 1], after[line - 1]
        assert DEBUG in new and DEBUG not in old
        # Indent, key, quotes, anchor spacing, comment and line ending are kept.
        value = edit["found"]
        assert old.replace(value, DEBUG, 1) == new, (old, new)
    else:
        assert edit["line"] == line + 1, edit["how"]
        assert after[:line] == before[:line] and after[line + 1 :] == before[line:]
        inserted = after[line]
        assert inserted.lstrip().startswith(f"image: {DEBUG}")
        # Indented as the merge key or extends: it overrides, with the file's line ending.
        key = next(row for row in reversed(before[:line]) if row.lstrip().startswith(("<<:", "extends:")))
        assert inserted[: len(inserted) - len(inserted.lstrip())] == key[: len(key) - len(key.lstrip())]
        assert inserted.endswith("\r\n" if layout.crlf else "\n") and not inserted.endswith("\r\r\n")
    if layout.crlf:
        assert all(row.endswith("\r\n") for row in after), "a CRLF file keeps CRLF on every line"
    # The swapped file swaps again to the same bytes (a capture run twice edits nothing more).
    again = compose_text.swap_edit(edit["text"], "ingester", DEBUG, name)
    assert again["text"] == edit["text"]


def test_every_layout_says_why() -> None:
    names = [layout.name for layout in SWAP_CORPUS]
    assert len(set(names)) == len(names)
    for layout in SWAP_CORPUS:
        assert layout.outcome in ("swapped", "refused") and layout.why, layout.name
        assert layout.outcome == "swapped" or layout.reason, layout.name


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        # The whole service is an anchor another service reuses (alias or merge key).
        (
            "services:\n  ingester: &ing\n    image: a:1\n  copy: *ing\n  other:\n    <<: *ing\n",
            2,
            ("&ing", "line 4 (service 'copy')", "line 6 (service 'other')"),
        ),
        # A block scalar, and a service written in flow style: not one value on the image line.
        ("services:\n  ingester:\n    image: >-\n      a:1\n", 3, ("not one plain",)),
        ("services:\n  ingester: {image: 'a:1'}\n", 2, ("on one line",)),
    ],
    ids=["service-anchor-reused", "block-scalar", "flow-style"],
)
def test_refusals_beyond_the_corpus(text: str, line: int, words: tuple[str, ...]) -> None:
    with pytest.raises(compose_text.RefusedSwap) as refused:
        compose_text.swap_edit(text, "ingester", DEBUG, "compose.yaml")
    assert refused.value.line == line and str(refused.value).startswith(f"compose.yaml line {line}: ")
    assert all(word in str(refused.value) for word in words), str(refused.value)


def test_an_anchor_nobody_reuses_stays_on_the_swapped_line() -> None:
    text = "services:\n  ingester: &ing\n    image: &img a:1  # prod\n"
    edit = compose_text.swap_edit(text, "ingester", DEBUG, "compose.yaml")
    assert edit["text"] == f"services:\n  ingester: &ing\n    image: &img {DEBUG}  # prod\n"
