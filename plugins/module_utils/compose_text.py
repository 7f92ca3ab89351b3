"""The compose file's ``image:`` line, found and edited as text: pure, no file, no process.

Python 3.8+, standard library only. The compose file is edited as text, never re-serialised, so
every byte but the swapped line stays (docs/compose-layouts.md).
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

# Which line is decided here, without a YAML library (docs/compose-layouts.md): the
# service's own ``image:`` line is replaced whatever its value (plain, quoted, digest-pinned,
# ``${VAR}`` interpolation, a ``*alias``); a service that inherits its image (``<<: *anchor``,
# ``extends:``) gets one ``image:`` line of its own; anything else is refused, naming the line.

IMAGE_HEAD = re.compile(r"^(?P<indent>[ \t]+)image[ \t]*:(?P<sp>[ \t]+(?:&(?P<anchor>\S+)[ \t]+)?)")
IMAGE_VALUE = re.compile(
    r"^(?:(?P<alias>\*[^\s,\[\]{}]+)|\"(?P<dq>[^\"\\]+)\"|'(?P<sq>[^']+)'|(?P<plain>[^\s\"'#&*|>!{}\[\]%@`,?:-].*|[?:-]\S.*))$"
)
_KEY = re.compile(r"^(?P<indent>[ \t]*)(?P<key>\"[^\"]*\"|'[^']*'|[^\s#\"'\[{-][^#]*?)[ \t]*:(?:[ \t]+(?P<value>.*))?$")
INSERTED_NOTE = "# ingester-capture: debug image over the inherited one; rollback.yml restores this file"


class ComposeTextError(ValueError):
    """The compose file has no place to edit as asked; nothing was changed."""


class RefusedSwap(ComposeTextError):
    """The swap cannot be one exact edit of the compose file; nothing was changed."""

    def __init__(self, name: str, index: int, why: str) -> None:
        self.line = index + 1
        super().__init__(
            "%s line %d: %s; the swap is refused and the compose file left as it was" % (name, index + 1, why)
        )


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _lines(text: str) -> List[str]:
    """The lines of ``text`` with their endings ("".join gives ``text`` back, CRLF kept)."""
    return re.findall(r"[^\n]*\n|[^\n]+\Z", text)


def _scan(line: str, blank_quotes: bool) -> str:
    """``line`` without its comment (and, with ``blank_quotes``, with quoted scalars emptied)."""
    out = []
    quote = ""
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            if quote == '"' and ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
                out.append(ch)
            elif not blank_quotes:
                out.append(ch)
        elif ch in "\"'" and (i == 0 or line[i - 1] in " \t[{,:-"):
            quote = ch
            out.append(ch)
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            break
        else:
            out.append(ch)
        i += 1
    return "".join(out).rstrip()


def _unquote(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] and key[0] in "\"'" else key


def image_line(line: str) -> Optional[Dict[str, str]]:
    """The parts of an ``image:`` line (without its ending): ``indent``, ``sp`` (the spaces and
    any ``&anchor`` before the value), ``anchor``, ``alias`` (``*name``) or ``q`` and ``value``
    (one plain or quoted scalar), and ``rest`` (spaces and a comment). None when the value is not
    one scalar on this line (a block scalar, a flow collection, nothing)."""
    head = IMAGE_HEAD.match(line)
    if not head:
        return None
    body = line[head.end() :]
    content = _scan(body, False)
    found = IMAGE_VALUE.match(content)
    if not content or not found:
        return None
    if found.group("alias"):
        q, value = "", found.group("alias")
    elif found.group("dq") is not None:
        q, value = '"', found.group("dq")
    elif found.group("sq") is not None:
        q, value = "'", found.group("sq")
    else:
        q, value = "", found.group("plain")
    return {
        "indent": head.group("indent"),
        "sp": head.group("sp"),
        "anchor": head.group("anchor") or "",
        "alias": found.group("alias") or "",
        "q": q,
        "value": value,
        "rest": body[len(content) :],
    }


class _Block:
    """One service's lines: its header, where it ends, its children's indent and keys."""

    def __init__(self, name: str, header: int, indent: int, value: str) -> None:
        self.name = name
        self.header = header
        self.indent = indent
        self.value = value
        self.end = header + 1
        self.child_indent = -1
        self.keys = {}  # type: Dict[str, int]


def _service_blocks(lines: Sequence[str]) -> Dict[str, _Block]:
    """The blocks under the top-level ``services:`` key, by service name (block style only)."""
    blocks = {}  # type: Dict[str, _Block]
    in_services = False
    service_indent = -1
    current = None  # type: Optional[_Block]
    for index, raw in enumerate(lines):
        line = _scan(raw.rstrip("\r\n"), False)
        if not line.strip():
            continue
        indent = _indent(line)
        match = _KEY.match(line)
        if current is not None and (indent == 0 or (in_services and indent <= service_indent)):
            current.end = index
            current = None
        if indent == 0:
            in_services = match is not None and _unquote(match.group("key")) == "services" and not match.group("value")
            continue
        if not in_services:
            continue
        if service_indent < 0:
            service_indent = indent
        if indent <= service_indent:
            name = _unquote(match.group("key")) if match else line.strip()
            current = _Block(name, index, indent, (match.group("value") or "") if match else line.strip())
            blocks.setdefault(name, current)
            continue
        if current is None:
            continue
        current.end = index + 1
        if current.child_indent < 0:
            current.child_indent = indent
        if indent == current.child_indent and match:
            current.keys.setdefault(_unquote(match.group("key")), index)
    return blocks


def _owner(lines: Sequence[str], blocks: Dict[str, _Block], index: int) -> str:
    """What a line belongs to, for a message: a service, or a top-level key."""
    for block in blocks.values():
        if block.header <= index < block.end:
            return "service '%s'" % block.name
    for back in range(index, -1, -1):
        line = _scan(lines[back].rstrip("\r\n"), False)
        match = _KEY.match(line) if line.strip() and _indent(line) == 0 else None
        if match:
            return "'%s'" % _unquote(match.group("key"))
    return "the top of the file"


def _alias_uses(lines: Sequence[str], anchor: str, skip: int) -> List[int]:
    """Indexes of the lines (but ``skip``) that use ``*anchor``."""
    use = re.compile(r"(?:^|(?<=[\s\[{,:]))\*%s(?=$|[\s,\]}])" % re.escape(anchor))
    return [i for i, raw in enumerate(lines) if i != skip and use.search(_scan(raw.rstrip("\r\n"), True))]


def image_site(text: str, service: str, name: str = "the compose file") -> Dict[str, Any]:
    """Where one swap edits ``text`` for ``service`` (read-only); raises :class:`RefusedSwap`.

    ``edit`` is ``replace`` (``index``: the service's own ``image:`` line, ``match``) or ``insert``
    (``index``: where a new ``image:`` line goes, ``indent``, ``inherit``: the ``<<:`` or
    ``extends:`` line the image comes from)."""
    lines = _lines(text)
    blocks = _service_blocks(lines)
    block = blocks.get(service)
    if block is None:
        raise ComposeTextError(
            "%s has no block for service '%s' under a top-level services: key (block style); "
            "the swap is refused and the compose file left as it was" % (name, service)
        )
    block_anchor = re.match(r"^&(\S+)$", block.value)
    if block.value and not block_anchor:
        raise RefusedSwap(
            name,
            block.header,
            "service '%s' is written on one line (%s): there is no image: line of its own to edit"
            % (service, block.value[:60]),
        )
    users = _alias_uses(lines, block_anchor.group(1), block.header) if block_anchor else []
    if block_anchor and users:
        raise RefusedSwap(
            name,
            block.header,
            "service '%s' is the anchor &%s, and %s reuse%s it as *%s: any edit of the service would change "
            "that too. Give the other service its own block, then capture again"
            % (
                service,
                block_anchor.group(1),
                ", ".join("line %d (%s)" % (i + 1, _owner(lines, blocks, i)) for i in users),
                "s" if len(users) == 1 else "",
                block_anchor.group(1),
            ),
        )
    index = block.keys.get("image")
    if index is not None:
        match = image_line(lines[index].rstrip("\r\n"))
        if not match:
            raise RefusedSwap(
                name,
                index,
                "the image: of '%s' is not one plain, quoted or *aliased value on that line "
                "(a multi-line or block scalar cannot be swapped as one line)" % service,
            )
        anchor = match["anchor"]
        users = _alias_uses(lines, anchor, index) if anchor else []
        if users:
            others = ", ".join("line %d (%s)" % (i + 1, _owner(lines, blocks, i)) for i in users)
            raise RefusedSwap(
                name,
                index,
                "the image of '%s' is the anchor &%s, and %s reuse%s it as *%s: editing this line would swap "
                "that too, and dropping the anchor would break it. Give the other service its own image: "
                "line, then capture again" % (service, anchor, others, "s" if len(users) == 1 else "", anchor),
            )
        return {"edit": "replace", "index": index, "match": match, "block": block}
    inherit = block.keys.get("<<", block.keys.get("extends"))
    if inherit is not None:
        at = inherit + 1
        for j in range(inherit + 1, block.end):
            line = _scan(lines[j].rstrip("\r\n"), False)
            if line.strip():
                if _indent(line) <= block.child_indent:
                    break
                at = j + 1
        raw = lines[inherit].rstrip("\r\n")
        return {
            "edit": "insert",
            "index": at,
            "indent": raw[: _indent(raw)],
            "inherit": inherit,
            "inherit_text": _scan(raw, False).strip(),
            "block": block,
        }
    if "build" in block.keys:
        raise RefusedSwap(
            name,
            block.header,
            "service '%s' has no image: line: it is built from build: (line %d), so there is no image tag to "
            "swap. Add image: with the production tag to the service (compose then tags its build so), "
            "then capture again" % (service, block.keys["build"] + 1),
        )
    raise RefusedSwap(
        name,
        block.header,
        "service '%s' has no image: line, and no <<: merge key or extends: it could inherit one from" % service,
    )


def find_image_line(text: str, service: str) -> Tuple[int, Any]:
    """(line index, match) of the service's own ``image:`` line; ComposeTextError when it has none."""
    site = image_site(text, service)
    if site["edit"] != "replace":
        raise ComposeTextError("service '%s' has no image: line of its own (it inherits its image)" % service)
    return site["index"], site["match"]


def swap_edit(text: str, service: str, image: str, name: str = "the compose file") -> Dict[str, Any]:
    """The one edit that swaps ``service`` to ``image``: ``text`` (the new text, every other byte
    kept), ``line`` (1-based), ``edit``, ``found`` (the value on the line; "" when inherited) and
    ``how`` (one sentence for the plan)."""
    site = image_site(text, service, name)
    lines = _lines(text)
    index = site["index"]
    if site["edit"] == "replace":
        match = site["match"]
        line = lines[index]
        ending = line[len(line.rstrip("\r\n")) :]
        q = match["q"]
        lines[index] = "%simage:%s%s%s%s%s%s" % (match["indent"], match["sp"], q, image, q, match["rest"], ending)
        found = match["value"]
        how = "line %d, the service's own image: line (%s%s%s), now %s" % (
            index + 1,
            "&%s " % match["anchor"] if match["anchor"] else "",
            q + found + q,
            ", which compose resolves" if ("$" in found or found.startswith("*")) else "",
            image,
        )
    else:
        inherit = lines[site["inherit"]]
        ending = inherit[len(inherit.rstrip("\r\n")) :] or "\n"
        if index > 0 and not lines[index - 1].endswith("\n"):
            lines[index - 1] += ending
        lines.insert(index, "%simage: %s  %s%s" % (site["indent"], image, INSERTED_NOTE, ending))
        found = ""
        how = (
            "a new line %d, image: %s in the service's own block, over the image it inherits through %s (line %d); "
            "%s and every other service stay as they are"
            % (
                index + 1,
                image,
                site["inherit_text"],
                site["inherit"] + 1,
                "the anchor" if site["inherit_text"].startswith("<<") else "the service it extends",
            )
        )
    return {"text": "".join(lines), "line": index + 1, "edit": site["edit"], "found": found, "how": how, "site": site}


def swap_text(text: str, service: str, image: str) -> Tuple[str, str]:
    """The compose text with one service's image swapped, every other byte kept; and the old value."""
    edit = swap_edit(text, service, image)
    return edit["text"], edit["found"]


def unified_diff(before: str, after: str, name: str, before_label: str, after_label: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(True),
            after.splitlines(True),
            "%s (%s)" % (name, before_label),
            "%s (%s)" % (name, after_label),
        )
    )
