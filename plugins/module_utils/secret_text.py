"""Secrets in text, found and replaced (Python 3.8+, standard library only, no host access).

The redaction rules themselves, shared by the two places that redact: the host, where every byte
that leaves it passes through ``redact`` (which adds the host's map, the compose file, the
containers and the bundle's files), and the collector, which redacts every line it shows from a
bare log (a log captured by hand never went through the host). One file, so the two cannot
drift: the collector's package holds it by a link (``collector/secret_text.py``).

The same secret becomes the same placeholder everywhere (``[REDACTED-3]``), so a person reading
the result can still see that two values are equal.

* secret-shaped places are found by parsing, not by one pattern per line: URL userinfo (any
  scheme, the password up to the last ``@`` before the host), secret query keys, ``NAME=value``
  and ``NAME: value`` with a secret name (quoted, spaced and YAML block values), ``--flag value``
  arguments, ``Authorization``/``Bearer``/``Basic`` credentials and PEM private keys;
* JSON-like values are walked field by field: a value under a secret name is replaced whatever
  it looks like (``Env``, ``Labels``, ``Args``/``Cmd``/``Entrypoint``);
* every value learned is replaced wherever it occurs, across line breaks and in its encoded
  forms: JSON/Go-escaped, percent-encoded and -decoded, base64 (also of ``user:password``, the
  Basic auth form).

A value is learned (replaced everywhere) only when it comes from a secret-shaped place and is
long and unusual enough; a short or ordinary value found there is replaced in its place only, so
a log line such as ``at://:e@did:plc:x`` cannot poison the map. A value that is already a
redaction mark (``[REDACTED-3]``, the service's own ``<redacted>``) is left as it is.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import re
import stat
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple, Type, TypeVar
from urllib.parse import quote, quote_plus, unquote, unquote_plus

PLACEHOLDER = "[REDACTED-{n}]"
# A value replaced in its place but not learned (too short or too ordinary to replace elsewhere).
IN_PLACE = "[REDACTED]"
# Below this a value is replaced where it was found, never learned: a map that replaced two- to
# five-letter values would mangle every log line that happened to contain them.
MIN_LEARNED_LENGTH = 6
# A document too large to redact whole is redacted in blocks that overlap by this much (``redact``),
# so a multi-line secret that crosses a block's end is still seen whole; `Redactor.tail` reads as
# much before the end it keeps.
OVERLAP = 256 << 10

# --- what makes a name secret ------------------------------------------------------------------
# A name is split into words (SMTP_PW -> SMTP, PW; apiKey -> API, KEY); it is secret when a word is
# one of these, or when it contains one of the long ones glued to other letters (DBPASSWORD).
SECRET_WORDS = frozenset(
    {
        "PASSWORD",
        "PASSWORDS",
        "PASSWD",
        "PASS",
        "PW",
        "PWD",
        "PASSPHRASE",
        "PASSCODE",
        "SECRET",
        "SECRETS",
        "TOKEN",
        "TOKENS",
        "KEY",
        "KEYS",
        "APIKEY",
        "ACCESSKEY",
        "PRIVATEKEY",
        "CREDENTIAL",
        "CREDENTIALS",
        "CREDS",
        "AUTH",
        "AUTHORIZATION",
        "BEARER",
        "JWT",
        "COOKIE",
        "COOKIES",
        "SESSION",
        "SESSIONID",
        "SIG",
        "SIGNATURE",
        "SALT",
        "DSN",
        "WEBHOOK",
        "WEBHOOKS",
        "OTP",
        "MNEMONIC",
        "SEED",
        "HMAC",
        "CONNECTIONSTRING",
        "CONNSTR",
        # redis-server's own: --requirepass, --masterauth (and requirepass/masterauth in redis.conf)
        "REQUIREPASS",
        "MASTERAUTH",
    }
)
SECRET_PARTS = (
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "SECRET",
    "TOKEN",
    "APIKEY",
    "CREDENTIAL",
    "WEBHOOK",
    "PRIVATEKEY",
    "SIGNATURE",
)
# Names that contain a secret word but name no secret (docker inspect's own fields).
NOT_SECRET_NAMES = frozenset({"SANDBOXKEY", "KEYS_USED", "TOKENIZER"})
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")

# Values that are never learned: a map holding them would replace ordinary text.
COMMON_VALUES = frozenset(
    {
        "true",
        "false",
        "yes",
        "no",
        "on",
        "off",
        "null",
        "none",
        "nil",
        "undefined",
        "unknown",
        "empty",
        "default",
        "required",
        "optional",
        "enabled",
        "disabled",
        "enable",
        "disable",
        "info",
        "debug",
        "warn",
        "warning",
        "error",
        "trace",
        "fatal",
        "localhost",
        "changeme",
        "password",
        "secret",
        "token",
        "example",
        "test",
        "testing",
        "production",
        "staging",
        "development",
        "prod",
        "dev",
    }
)


@functools.lru_cache(maxsize=4096)
def secret_name(name: str) -> bool:
    """Whether a variable, key, label, flag or field name names a secret."""
    upper = name.upper()
    if upper.strip("-_ ").replace("-", "_") in NOT_SECRET_NAMES:
        return False
    words = [w.upper() for w in _WORD_SPLIT.split(name) if w]
    if any(w in SECRET_WORDS for w in words):
        return True
    glued = re.sub(r"[^A-Z0-9]", "", upper)
    return any(part in glued for part in SECRET_PARTS)


def ordinary(value: str) -> bool:
    """Whether a value is too short or too ordinary to be replaced wherever it occurs."""
    core = value.strip()
    if len(core) < MIN_LEARNED_LENGTH or core.startswith("[REDACTED"):
        return True
    if core.lower() in COMMON_VALUES:
        return True
    if re.fullmatch(r"[0-9]{1,9}", core):
        return True  # a small number (a port, a timeout)
    # A word or two (a mode, a level, a host name): lower, Capitalised or upper case, not the
    # mixed case of base64 or a generated password.
    word = r"(?:[a-z]+|[A-Z][a-z]+|[A-Z]+)"
    return bool(re.fullmatch(r"%s(?:[-_. ]%s)?" % (word, word), core) and len(core) <= 16)


# --- encoded forms ---------------------------------------------------------------------------
def _b64_fragments(data: bytes) -> List[str]:
    """The base64 text that ``data`` yields at each of the three alignments inside a longer
    encoded string: only the characters fully determined by ``data``."""
    found = []
    for pad in range(3):
        enc = base64.b64encode(b"\0" * pad + data).decode("ascii")
        start = (pad * 8 + 5) // 6
        end = ((pad + len(data)) * 8) // 6
        frag = enc[start:end]
        if len(frag) >= MIN_LEARNED_LENGTH:
            found.append(frag)
            found.append(frag.replace("+", "-").replace("/", "_"))
    return found


def _go_escaped(text: str) -> str:
    """JSON as Go's encoding/json writes it: <, > and & as \\u003c, \\u003e, \\u0026."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def encoded_forms(secret: str, user: Optional[str] = None) -> List[str]:
    """Every form in which ``secret`` may be written: as it is, escaped, percent-encoded or
    -decoded, base64; with ``user``, the base64 of ``user:secret`` (Basic auth) too."""
    forms = {secret}
    decoded = unquote(secret)
    forms.update({decoded, unquote_plus(secret)})
    for base in (secret, decoded):
        forms.update({quote(base, safe=""), quote(base, safe="/:"), quote_plus(base), quote(base)})
        forms.add(re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(base, safe="")))
        escaped = json.dumps(base)[1:-1]
        forms.update(
            {escaped, _go_escaped(escaped), escaped.replace("/", "\\/"), _go_escaped(escaped).replace("/", "\\/")}
        )
        forms.add(json.dumps(base, ensure_ascii=False)[1:-1])
        forms.add(base.replace("'", "''"))
        forms.add(base.replace("\\", "\\\\").replace('"', '\\"'))
        raw = base.encode("utf-8", "surrogateescape")
        forms.update(_b64_fragments(raw))
        forms.add(binascii.hexlify(raw).decode("ascii"))
        if user is not None:
            pair = ("%s:%s" % (user, base)).encode("utf-8", "surrogateescape")
            forms.update(_b64_fragments(pair))
    if "\n" in secret:
        # Each line of a multi-line secret (a PEM key) on its own: logs print them one by one.
        forms.update(line.strip() for line in secret.splitlines())
    return [f for f in forms if not ordinary(f)]


def _trie_regex(words: Iterable[str]) -> str:
    """One regular expression matching any of ``words``, longest first, as a trie (fast with
    hundreds of alternatives, unlike a flat alternation)."""
    trie = {}  # type: Dict[str, Any]
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: Dict[str, Any]) -> str:
        ends = "" in node
        branches = [re.escape(c) + build(child) for c, child in sorted(node.items()) if c]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return "(?:%s)?" % body if ends else body

    return build(trie)


# --- places where secrets are --------------------------------------------------------------
# A Docker timestamp that `docker logs --timestamps` puts before each line of a multi-line value.
_LINE_BREAK = r"\r?\n(?:[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z )?[ \t]*"
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_HOST_AFTER_AT = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_~%!$&'()*+,;=.\-]+)(?=$|[/?#:\s\"'`,;)>\]}\\])")
_QUERY = re.compile(r"[?&;](?P<name>[A-Za-z0-9_.\-\[\]]+)=(?P<value>[^&#\s\"'<>`\\]*)")
QUERY_SECRET_NAMES = frozenset(
    {
        "sig",
        "signature",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "x-goog-signature",
        "x-goog-credential",
        "code",
        "key",
        "apikey",
        "api_key",
        "api-key",
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "auth",
        "password",
        "passwd",
        "pwd",
        "pass",
        "secret",
        "client_secret",
        "sas",
        "sv_sig",
        "se_sig",
    }
)
# Where a secret name may be: a word of one (lower-cased text); the name around it is then read.
# (str.find per word: many times faster than one regular expression of alternatives.)
_NAME_HINTS = [
    "pass",
    "pw",
    "key",
    "token",
    "secret",
    "auth",
    "jwt",
    "bearer",
    "cookie",
    "session",
    "sig",
    "salt",
    "dsn",
    "webhook",
    "otp",
    "mnemonic",
    "seed",
    "hmac",
    "cred",
    "conn",
]
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_SEP = re.compile(r"[ \t]*[=:](?![=:/])[ \t]*")
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_QUOTED = re.compile(r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\n]|'')*'""")
_BLOCK = re.compile(r"[|>][+-]?[0-9]?[+-]?[ \t]*(?:#[^\n]*)?(?=\r?\n)")
# A flag's value is not another flag: "-server" of "redis-server --requirepass X" must not take
# "--requirepass" for its value (`_flag_hits` then drops it: a flag starts an argument). The
# pattern starts with its "-" so that the search runs at C speed.
_FLAG = re.compile(
    r"--?(?P<name>[A-Za-z][A-Za-z0-9_.\-]*)(?P<sep>=|[ \t]+|[\"'][ \t]*,[ \t]*[\"'])"
    r"(?P<value>\"[^\"\n]*\"|'[^'\n]*'|(?!-)[^\s\"',\]]+)"
)
_AUTH = re.compile(
    r"(?P<kind>Bearer|Basic|Token|Digest|BEARER|BASIC|TOKEN|bearer|basic)[ \t]+(?P<value>[A-Za-z0-9+/=._~\-]{6,})"
)
_PEM = re.compile(
    r"-----BEGIN (?P<what>[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?)-----(?P<body>[\s\S]{0,65536}?)-----END (?P=what)-----"
)

Hit = Tuple[int, int, str, str, Optional[str]]  # start, end, secret, kind, user (for Basic forms)


def _line_end(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    return len(text) if end < 0 else end


def _url_hits(text: str) -> Iterator[Hit]:
    """URL userinfo, parsed: after ``scheme://``, the userinfo runs to the last ``@`` that a
    host follows, within the value (the line, or the quoted string the URL opens in)."""
    pos = text.find("://")
    while pos >= 0:
        found = _url_at(text, pos)
        if found is not None:
            yield found
        pos = text.find("://", pos + 3)


def _scheme_start(text: str, colon: int) -> int:
    """Where the scheme of the ``://`` at ``colon`` starts (``colon`` when there is none)."""
    first = colon
    while first > 0 and colon - first < 64 and text[first - 1] in _SCHEME_CHARS:
        first -= 1
    while first < colon and not ("a" <= text[first].lower() <= "z"):
        first += 1
    return first


def _url_at(text: str, colon: int) -> Optional[Hit]:
    """The userinfo hit of the URL whose ``://`` is at ``colon``, if it has one."""
    first = _scheme_start(text, colon)
    if first == colon:
        return None
    start = colon + 3
    end = _line_end(text, start)
    before = text[first - 1] if first > 0 else ""
    if before in ('"', "'"):
        # Inside a quoted string: it ends at the first unescaped closing quote.
        pos = start
        while True:
            pos = text.find(before, pos, end)
            if pos < 0:
                break
            if text[pos - 1] != "\\":
                end = pos
                break
            pos += 1
    # Another URL after a space (or an opening quote, bracket, comma or =) starts a new value.
    following = text.find("://", start, end)
    while following >= 0:
        other = _scheme_start(text, following)
        if other < following and other > start and text[other - 1] in " \t=(<[,\"'":
            end = other
            break
        following = text.find("://", following + 3, end)
    region = text[start:end]
    at = -1
    pos = region.rfind("@")
    while pos >= 0:
        if _HOST_AFTER_AT.match(region, pos + 1):
            at = pos
            break
        pos = region.rfind("@", 0, pos)
    if at <= 0:
        return None
    userinfo = region[:at]
    user, sep, password = userinfo.partition(":")
    if sep:
        if password:
            return start + len(user) + 1, start + at, password, "url-password", user
        return None
    return start, start + at, userinfo, "url-user-token", None


# A URL written without its scheme (REDIS_URL=:password@redis:6379, the mistake the configuration
# error names, printed back by the service as it was given): a password, then a host and maybe a
# port, standing as a value of its own (after a quote, =, a space, a bracket or the line's start).
_BARE_USERINFO = re.compile(
    r"(?<![^\s\"'=(\[,])(?P<user>[A-Za-z0-9._~%!$&*+;-]*):(?P<password>[^\s\"'/@]+)@"
    r"(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*)(?::[0-9]{1,5})?(?=$|[/\s\"',;)\]}?#])"
)


def _bare_userinfo_hits(text: str) -> Iterator[Hit]:
    """The password of userinfo without a scheme before it (``_BARE_USERINFO``)."""
    if "@" not in text:
        return
    for m in _BARE_USERINFO.finditer(text):
        yield m.start("password"), m.end("password"), m.group("password"), "url-password", m.group("user")


def _block_end(text: str, line_start: int, value_end: int) -> Tuple[int, int]:
    """The span of a YAML block scalar's lines (more indented than its key's line)."""
    indent = len(text[line_start:]) - len(text[line_start:].lstrip(" \t"))
    pos = value_end + 1 if value_end < len(text) and text[value_end] in "\r\n" else value_end
    if text[value_end : value_end + 2] == "\r\n":
        pos = value_end + 2
    first = pos
    last = pos
    while pos < len(text):
        end = _line_end(text, pos)
        line = text[pos:end]
        if line.strip() and len(line) - len(line.lstrip(" \t")) <= indent:
            break
        if line.strip():
            last = end
        pos = end + 1
    return first, last


def _assignment_heads(text: str) -> Iterator[Tuple[int, str, int]]:
    """(where the name starts, its separator, where its value starts) of every ``NAME=`` or
    ``NAME:`` (the name optionally quoted) whose name is secret. Found from the words secret
    names contain, so the scan costs one pass of one regular expression."""
    lower = text.translate(_LOWER)
    # One byte per character (non-ASCII as "?"), so offsets agree; bytes.find is the fast one.
    raw = lower.encode("ascii", "replace")
    hints = []  # type: List[Tuple[int, int]]
    for word in _NAME_HINTS:
        needle = word.encode("ascii")
        at = raw.find(needle)
        while at >= 0:
            hints.append((at, at + len(word)))
            at = raw.find(needle, at + 1)
    hints.sort()
    done = -1
    for hint_start, hint_end in hints:
        if hint_start < done:
            continue
        first = hint_start
        while first > 0 and hint_start - first < 128 and text[first - 1] in _NAME_CHARS:
            first -= 1
        last = hint_end
        while last < len(text) and last - hint_end < 128 and text[last] in _NAME_CHARS:
            last += 1
        done = last
        while first < last and not (text[first] == "_" or "a" <= lower[first] <= "z"):
            first += 1
        name = text[first:last]
        if not name or not secret_name(name):
            continue
        quote_char = text[first - 1] if first > 0 and text[first - 1] in "\"'" else ""
        after = last
        if quote_char:
            if text[last : last + 1] != quote_char:
                quote_char = ""
            else:
                after = last + 1
        sep = _SEP.match(text, after)
        if sep is None:
            continue
        yield first - len(quote_char), sep.group(0).strip(), sep.end()


def _assignment_hits(text: str) -> Iterator[Hit]:
    for name_start, sep, vstart in _assignment_heads(text):
        line_start = text.rfind("\n", 0, name_start) + 1
        head = text[line_start:name_start]
        block = _BLOCK.match(text, vstart)
        if block and sep == ":":
            first, last = _block_end(text, line_start, block.end())
            if last > first:
                lines = [ln.strip() for ln in text[first:last].splitlines()]
                first += len(text[first:last]) - len(text[first:last].lstrip(" \t"))
                yield first, last, "\n".join(lines), "assignment", None
            continue
        quoted = _QUOTED.match(text, vstart)
        if quoted:
            inner = quoted.group(0)[1:-1]
            secret = inner
            if quoted.group(0)[0] == '"':
                try:
                    secret = json.loads('"%s"' % inner)
                except ValueError:
                    secret = inner
            else:
                secret = inner.replace("''", "'")
            if inner:
                yield vstart + 1, quoted.end() - 1, secret, "assignment", None
            continue
        vend = _line_end(text, vstart)
        # Unquoted: the rest of the line in an env file, a YAML mapping or at a line's start;
        # up to the next space, comma or closing bracket in the middle of a log line.
        at_start = re.fullmatch(r"[ \t]*(?:export[ \t]+|-[ \t]+[\"']?)?", head) is not None
        value = text[vstart:vend]
        if sep == ":":
            comment = re.search(r"[ \t]+#", value)
            if comment:
                value = value[: comment.start()]
            if not at_start:
                cut = re.search(r"[,;\"'`)\]}>]|\s(?=[A-Za-z_\"']+[=:])", value)
                if cut:
                    value = value[: cut.start()]
        elif not at_start:
            cut = re.search(r"[\s,;&\"'`)\]}>]", value)
            if cut:
                value = value[: cut.start()]
        value = value.rstrip(" \t\r")
        if value.endswith(('"', "'")) and head.rstrip().endswith(('- "', "- '")):
            value = value[:-1]
        if value:
            yield vstart, vstart + len(value), value, "assignment", None


def _flag_hits(text: str) -> Iterator[Hit]:
    for match in _FLAG.finditer(text):
        at = match.start()
        if at > 0 and text[at - 1] not in " \t\r\n\"'[,":
            continue
        if secret_name(match.group("name")):
            value = match.group("value")
            vstart, vend = match.span("value")
            if value[:1] in "\"'":
                vstart, vend = vstart + 1, vend - 1
            if vend > vstart:
                yield vstart, vend, text[vstart:vend], "flag", None


# Commands whose password flag has no secret name (``-a``, ``-p``, ``-u user:password``), as
# they stand in healthchecks and scripts: the command's name, then on the same line (or in the
# same argument list, as text) the flag and its value.
_ARG_START = r"(?:(?<=[\s\"',\[])|^)"
_ARG_VALUE = r"(?P<value>[^\s\"',\]]+)"
COMMAND_FLAGS = (
    ("redis-cli", re.compile(_ARG_START + r"-a(?:=|[\s\"',]+)" + _ARG_VALUE)),
    ("curl", re.compile(_ARG_START + r"(?:-u|--user)(?:=|[\s\"',]+)(?P<user>[^\s\"':,\]]*):" + _ARG_VALUE)),
    ("mysql", re.compile(_ARG_START + r"-p" + _ARG_VALUE)),  # -pPASSWORD, attached (mysqldump, mysqladmin)
    ("mariadb", re.compile(_ARG_START + r"-p" + _ARG_VALUE)),
    ("docker login", re.compile(_ARG_START + r"-p(?:[\s\"',]+)" + _ARG_VALUE)),
    ("sshpass", re.compile(_ARG_START + r"-p(?:[\s\"',]*)" + _ARG_VALUE)),
)


def _command_flag_hits(text: str) -> Iterator[Hit]:
    """The password given to a command by a flag without a secret name (``COMMAND_FLAGS``)."""
    for command, pattern in COMMAND_FLAGS:
        pos = text.find(command)
        while pos >= 0:
            end = _line_end(text, pos)
            for match in pattern.finditer(text, pos + len(command), end):
                user = match.groupdict().get("user")
                yield match.start("value"), match.end("value"), match.group("value"), "command-flag", user
            pos = text.find(command, end)


def _query_hits(text: str) -> Iterator[Hit]:
    for match in _QUERY.finditer(text):
        name = match.group("name").lower()
        if match.group("value") and (name in QUERY_SECRET_NAMES or secret_name(name)):
            yield match.start("value"), match.end("value"), match.group("value"), "query", None


def _auth_hits(text: str) -> Iterator[Hit]:
    for match in _AUTH.finditer(text):
        if match.start() > 0 and text[match.start() - 1] in _NAME_CHARS:
            continue
        value = match.group("value")
        start, end = match.span("value")
        yield start, end, value, "auth-header", None
        if match.group("kind").lower() == "basic":
            try:
                pair = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                continue
            user, colon, password = pair.partition(":")
            if colon and password:
                # The same place; learning the password makes its other forms known too.
                yield start, end, password, "auth-header", user


def _pem_hits(text: str) -> Iterator[Hit]:
    for match in _PEM.finditer(text):
        body = match.group("body")
        if body.strip():
            lines = "\n".join(line.strip() for line in body.strip().splitlines())
            yield match.start("body"), match.end("body"), lines, "private-key", None


# Tokens whose format names them, wherever they stand (no secret name needed): each prefix is
# looked for with str.find, then the format is matched there (after no letter, digit or "_").
# Each prefix costs a scan of the document (about 5 ms per 8 MiB): the formats most often
# leaked, not every format there is; a team's own goes in capture_redact_patterns.
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
KNOWN_TOKENS = (
    ("ghp_", re.compile(r"ghp_[A-Za-z0-9]{36,255}")),  # GitHub: personal, OAuth, Actions
    ("gho_", re.compile(r"gho_[A-Za-z0-9]{36,255}")),
    ("ghs_", re.compile(r"ghs_[A-Za-z0-9]{36,255}")),
    ("github_pat_", re.compile(r"github_pat_[A-Za-z0-9_]{22,255}")),  # GitHub fine-grained
    ("glpat-", re.compile(r"glpat-[A-Za-z0-9_\-]{20,255}")),  # GitLab
    ("xox", re.compile(r"xox[abposr]-[A-Za-z0-9\-]{10,255}")),  # Slack
    ("AKIA", re.compile(r"AKIA[0-9A-Z]{16}(?![0-9A-Za-z])")),  # AWS access key ids
    ("sk_live_", re.compile(r"sk_live_[0-9A-Za-z]{16,255}")),  # Stripe
    ("AIza", re.compile(r"AIza[0-9A-Za-z_\-]{35}(?![0-9A-Za-z_\-])")),  # Google API keys
    ("eyJ", re.compile(r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}")),  # JWT
)


def _known_token_hits(text: str) -> Iterator[Hit]:
    """Tokens of a format that names them (``KNOWN_TOKENS``), in any place."""
    for prefix, pattern in KNOWN_TOKENS:
        pos = text.find(prefix)
        while pos >= 0:
            match = None
            if pos == 0 or text[pos - 1] not in _TOKEN_CHARS:
                match = pattern.match(text, pos)
            if match is not None:
                yield match.start(), match.end(), match.group(0), "known-token", None
                pos = text.find(prefix, match.end())
            else:
                pos = text.find(prefix, pos + 1)


DETECTORS = (
    _pem_hits,
    _url_hits,
    _bare_userinfo_hits,
    _query_hits,
    _assignment_hits,
    _flag_hits,
    _auth_hits,
    _known_token_hits,
    _command_flag_hits,
)


def _detect(text: str) -> List[Hit]:
    """Every secret-shaped place of ``text``."""
    return [hit for detector in DETECTORS for hit in detector(text)]


class RedactError(ValueError):
    """A redaction pattern or mapping file cannot be used."""


_PLACEHOLDER_RE = re.compile(r"^\[REDACTED-[0-9]+\]$")


def _check_map_file(path: Path) -> None:
    """The saved map is trusted only as this user's own regular file that no one else can write."""
    st = os.lstat(str(path))
    if not stat.S_ISREG(st.st_mode):
        raise RedactError("redaction map %s is not a regular file: refusing to use it" % path)
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise RedactError(
            "redaction map %s is not this user's own file, or others can write it: refusing to use it" % path
        )


def _command_secrets(argv: List[Any]) -> List[Tuple[int, str, bool]]:
    """The passwords an argument list gives by ``COMMAND_FLAGS`` (the list read as one line:
    ``["CMD", "redis-cli", "-a", "pw", "ping"]``): (the argument's index, the password, whether
    it is the whole argument: ``-ppw`` and ``"redis-cli -a pw ping"`` hold more)."""
    words = [arg if isinstance(arg, str) else "" for arg in argv]
    line = " ".join(words)
    starts = []
    pos = 0
    for word in words:
        starts.append(pos)
        pos += len(word) + 1
    found = []  # type: List[Tuple[int, str, bool]]
    for start, end, secret, _kind, _user in _command_flag_hits(line):
        for index, at in enumerate(starts):
            if at <= start and end <= at + len(words[index]):
                found.append((index, secret, at == start and end == at + len(words[index])))
                break
    return found


_R = TypeVar("_R", bound="Redactor")
# A value some program already hid (rsky-ingester prints its Redis URL with `:<redacted>@`):
# not a secret, and left as it is.
_MARK = re.compile(r"<(?:redacted|REDACTED|hidden|masked)>|\*{3,}")


class Redactor:
    """Replaces known secrets, secret-shaped places and user patterns, consistently."""

    def __init__(self, mapping: Optional[Dict[str, str]] = None, patterns: Iterable[Any] = ()) -> None:
        self.mapping = {}  # type: Dict[str, str]
        self.patterns = list(patterns)
        self.counts = {}  # type: Dict[str, int]
        # What the redactor could not do or refused, for the module result and the manifest.
        self.notes = []  # type: List[str]
        self._forms = {}  # type: Dict[str, str]
        self._literal = None  # type: Optional[Any]
        self._next = 1
        # False while redacting text that is not a secret-shaped source (source code): what its
        # secret-shaped places hold is replaced there, not learned.
        self.learning = True
        self._detected = {}  # type: Dict[str, List[Hit]]
        for secret, placeholder in (mapping or {}).items():
            self._keep(secret, placeholder)

    # --- building --------------------------------------------------------------------------
    @classmethod
    def load(cls: Type[_R], map_path: Optional[Path], patterns: Iterable[str] = ()) -> _R:
        """A redactor from the host's mapping file (if any) and extra regex patterns. Entries
        that would replace ordinary text (an earlier capture learned them from noise) are
        dropped, and a note says how many."""
        mapping = {}  # type: Dict[str, str]
        if map_path is not None and os.path.lexists(str(map_path)):
            _check_map_file(map_path)
            try:
                data = json.loads(map_path.read_text(encoding="utf-8"))
                mapping = {str(k): str(v) for k, v in data.get("mapping", {}).items()}
            except (OSError, ValueError, AttributeError) as exc:
                raise RedactError("cannot read redaction map %s: %s" % (map_path, exc)) from exc
            odd = [v for v in mapping.values() if not _PLACEHOLDER_RE.match(v)]
            if odd:
                # A placeholder that is not ours could be the secret itself: the map is not trusted.
                raise RedactError(
                    "redaction map %s holds %d value(s) that are not placeholders: refusing to use it"
                    % (map_path, len(odd))
                )
        compiled = []
        for pattern in patterns:
            try:
                compiled.append(re.compile(pattern))
            except re.error as exc:
                raise RedactError("bad redaction pattern %r: %s" % (pattern, exc)) from exc
        kept = {k: v for k, v in mapping.items() if not ordinary(k) and re.fullmatch(r"\[REDACTED-[0-9]+\]", v)}
        redactor = cls(mapping=kept, patterns=compiled)
        dropped = len(mapping) - len(kept)
        if dropped:
            redactor.notes.append(
                "%s: %d entr%s ignored, each would rewrite ordinary text (shorter than %d characters, "
                "a common word or a small number); such values are redacted in place only"
                % (map_path, dropped, "y" if dropped == 1 else "ies", MIN_LEARNED_LENGTH)
            )
        return redactor

    # --- learning --------------------------------------------------------------------------
    def _keep(self, secret: str, placeholder: str) -> None:
        self.mapping[secret] = placeholder
        number = re.fullmatch(r"\[REDACTED-([0-9]+)\]", placeholder)
        if number:
            self._next = max(self._next, int(number.group(1)) + 1)
        for form in encoded_forms(secret):
            self._forms.setdefault(form, placeholder)
        self._literal = None

    def placeholder(self, secret: str, user: Optional[str] = None) -> str:
        """The placeholder for a secret found in a secret-shaped place: learned (numbered, and
        replaced everywhere from now on) when long and unusual enough, else ``[REDACTED]``."""
        secret = secret.strip("\r\n")
        if secret.startswith("[REDACTED") or _MARK.fullmatch(secret):
            return secret
        if ordinary(secret):
            return IN_PLACE
        found = self.mapping.get(secret) or self._forms.get(secret)
        if found is None and not self.learning:
            return IN_PLACE
        if found is None:
            found = PLACEHOLDER.format(n=self._next)
            self._keep(secret, found)
        if user is not None:
            for form in encoded_forms(secret, user):
                self._forms.setdefault(form, found)
            self._literal = None
        return found

    def add_secret(self, value: str) -> None:
        """Remember a value to be replaced wherever it appears (if it is not ordinary)."""
        self.placeholder(value)

    def learn_value(self, name: str, value: object) -> None:
        """One NAME=value pair: the whole value when the name is secret, and whatever the value's
        text holds in secret-shaped places."""
        if not isinstance(value, str):
            return
        if secret_name(name) and value:
            self.placeholder(value)
        self.learn_text(value)

    def learn_env(self, entries: Iterable[str]) -> None:
        """Learn secrets from ``NAME=value`` entries (docker inspect's Config.Env)."""
        for entry in entries:
            name, sep, value = entry.partition("=")
            if sep:
                self.learn_value(name, value)
            else:
                self.learn_text(entry)

    def learn_argv(self, argv: List[Any]) -> None:
        """``--password value`` / ``--token=value`` / ``NAME=value`` in an argument list."""
        for i, arg in enumerate(argv):
            if not isinstance(arg, str):
                continue
            flag = re.fullmatch(r"--?([A-Za-z][A-Za-z0-9_.\-]*)(=(.*))?", arg, re.S)
            if flag and secret_name(flag.group(1)):
                if flag.group(2):
                    self.placeholder(flag.group(3))
                elif i + 1 < len(argv) and isinstance(argv[i + 1], str) and not argv[i + 1].startswith("-"):
                    self.placeholder(argv[i + 1])
            self.learn_text(arg)
        for _index, secret, _whole in _command_secrets(argv):
            self.placeholder(secret)

    def learn_structure(self, data: object, name: str = "") -> None:
        """Learn from any JSON value (compose config, docker inspect, an event): every value
        under a secret name, NAME=value lists, argument lists, and every string's text."""
        if isinstance(data, dict):
            for key, item in data.items():
                key = str(key)
                if isinstance(item, str):
                    self.learn_value(key, item)
                elif key in ENV_KEYS and isinstance(item, list):
                    self.learn_env(str(v) for v in item)
                elif key in ARGV_KEYS and isinstance(item, list):
                    self.learn_argv(item)
                elif secret_name(key) and isinstance(item, list):
                    for value in item:
                        if isinstance(value, str):
                            self.placeholder(value)
                else:
                    self.learn_structure(item, key)
        elif isinstance(data, list):
            for item in data:
                self.learn_structure(item, name)
        elif isinstance(data, str):
            self.learn_text(data)

    def learn_compose_config(self, data: object) -> None:
        """Learn from ``docker compose config --format json`` (every service of every profile)."""
        self.learn_structure(data)

    def learn_text(self, text: str) -> List[Hit]:
        """Learn what a document's secret-shaped places hold; returns those places."""
        hits = _detect(text)
        for _start, _end, secret, _kind, user in hits:
            self.placeholder(secret, user)
        return hits

    def learn_assignments(self, text: str) -> None:
        """Learn secrets from a compose file's or env file's text (the old name of learn_text)."""
        self.learn_text(text)

    # --- redacting -------------------------------------------------------------------------
    def _bump(self, kind: str, n: int = 1) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + n

    def _literal_regex(self) -> Any:
        if self._literal is None:
            # Short forms go in a trie; a long one (its depth would be the recursion's) on its own.
            single = [f for f in self._forms if "\n" not in f and len(f) <= 200]
            long = sorted((f for f in self._forms if "\n" not in f and len(f) > 200), key=len, reverse=True)
            multi = sorted((f for f in self._forms if "\n" in f), key=len, reverse=True)
            parts = [_LINE_BREAK.join(re.escape(line.strip()) for line in f.strip("\n").splitlines()) for f in multi]
            parts.extend(re.escape(f) for f in long)
            if single:
                parts.append(_trie_regex(single))
            self._literal = re.compile("|".join(parts)) if parts else False
        return self._literal

    def _spans(self, text: str, detected: Optional[List[Hit]] = None) -> List[Tuple[int, int, str, str]]:
        """What to replace in ``text``: (start, end, replacement, kind), sorted, not overlapping.
        ``detected``: the secret-shaped places of ``text`` when the learning pass found them."""
        hits = []  # type: List[Tuple[int, int, str, str]]
        for start, end, secret, kind, user in detected if detected is not None else _detect(text):
            hits.append((start, end, self.placeholder(secret, user), kind))
        for pattern in self.patterns:
            for match in pattern.finditer(text):
                if match.end() == match.start():
                    continue
                span = match.span(1) if match.re.groups and match.group(1) is not None else match.span(0)
                if span[1] > span[0]:
                    hits.append((span[0], span[1], self.placeholder(text[span[0] : span[1]]), "user-pattern"))
        literal = self._literal_regex()
        if literal:
            for match in literal.finditer(text):
                if match.end() > match.start():
                    hits.append((match.start(), match.end(), self._placeholder_of(match.group(0)), "known-secret"))
        hits.sort(key=lambda h: (h[0], -(h[1] - h[0])))
        merged = []  # type: List[Tuple[int, int, str, str]]
        for hit in hits:
            if merged and hit[0] < merged[-1][1]:
                last = merged[-1]
                if hit[1] > last[1]:
                    longer = hit if hit[1] - hit[0] > last[1] - last[0] else last
                    merged[-1] = (last[0], hit[1], longer[2], last[3])
                continue
            merged.append(hit)
        return merged

    def _placeholder_of(self, form: str) -> str:
        found = self._forms.get(form)
        if found is not None:
            return found
        # A multi-line secret matched with other indentation: find it by its lines.
        squeezed = re.sub(_LINE_BREAK, "\n", form)
        for known, placeholder in self._forms.items():
            if "\n" in known and "\n".join(ln.strip() for ln in known.strip("\n").splitlines()) == squeezed:
                return placeholder
        return IN_PLACE

    def _apply(self, text: str, spans: List[Tuple[int, int, str, str]]) -> str:
        out = []
        pos = 0
        for start, end, replacement, kind in spans:
            if text[start:end] == replacement:
                continue
            out.append(text[pos:start])
            out.append(replacement)
            pos = end
            self._bump(kind)
        out.append(text[pos:])
        return "".join(out)

    def text(self, document: str, detected: Optional[List[Hit]] = None) -> str:
        """Redact a whole document: secret-shaped places, user patterns, every learned value."""
        if not document:
            return document
        return self._apply(document, self._spans(document, detected))

    # The old line-wise name: any text is redacted as one document now.
    line = text

    def env_list(self, entries: List[str]) -> List[str]:
        """Redact ``NAME=value`` entries: secret names lose their whole value."""
        out = []
        for entry in entries:
            name, sep, value = entry.partition("=")
            if sep and secret_name(name) and value:
                self._bump("env-value")
                out.append("%s=%s" % (name, self.placeholder(value)))
            else:
                out.append(self.text(entry))
        return out

    def argv(self, argv: List[Any]) -> List[Any]:
        """Redact an argument list: the value after a secret ``--flag`` and every argument's text."""
        self.learn_argv(argv)
        out = []  # type: List[Any]
        secret_next = False
        given = {index for index, _secret, whole in _command_secrets(argv) if whole}
        for index, arg in enumerate(argv):
            if not isinstance(arg, str):
                out.append(self.value(arg))
                continue
            if index in given:
                self._bump("argument")
                out.append(self.placeholder(arg) if not ordinary(arg) else IN_PLACE)
                secret_next = False
                continue
            if secret_next and not arg.startswith("-"):
                self._bump("argument")
                out.append(self.placeholder(arg) if not ordinary(arg) else IN_PLACE)
                secret_next = False
                continue
            flag = re.fullmatch(r"--?([A-Za-z][A-Za-z0-9_.\-]*)(=(.*))?", arg, re.S)
            secret_next = bool(flag and secret_name(flag.group(1)) and not flag.group(2))
            out.append(self.text(arg))
        return out

    def value(self, data: Any, _learned: bool = False) -> Any:
        """Redact any JSON-like value field by field: a string under a secret name whole, env
        and argument lists by entry, every other string as a document."""
        if not _learned:
            self.learn_structure(data)
        if isinstance(data, list):
            return [self.value(item, True) for item in data]
        if isinstance(data, dict):
            out = {}  # type: Dict[Any, Any]
            for key, item in data.items():
                if isinstance(item, str) and item and secret_name(str(key)):
                    self._bump("field")
                    out[key] = self.placeholder(item)
                elif key in ENV_KEYS and isinstance(item, list):
                    out[key] = self.env_list([str(v) for v in item])
                elif key in ARGV_KEYS and isinstance(item, list):
                    out[key] = self.argv(item)
                elif secret_name(str(key)) and isinstance(item, list) and all(isinstance(v, str) for v in item):
                    out[key] = [self.placeholder(v) if v else v for v in item]
                else:
                    out[key] = self.value(item, True)
            return out
        if isinstance(data, str):
            return self.text(data)
        return data

    def tail(self, data: bytes, limit: int = 2000) -> str:
        """The last ``limit`` characters of ``data`` (a file's end), redacted before it is cut, so
        a secret that the cut would halve is still whole when it is replaced."""
        window = data[-(limit * 4 + OVERLAP) :]
        text = window.decode("utf-8", errors="replace")
        if len(window) < len(data):
            # The window's first line is partial: drop it rather than redact half a value.
            newline = text.find("\n")
            text = text[newline + 1 :] if newline >= 0 else text
        return self.text(text)[-limit:]

    def cut(self, text: str, limit: int, end: bool = False) -> str:
        """``text`` redacted, then cut to ``limit`` characters (its end when ``end``)."""
        redacted = self.text(text)
        return redacted[-limit:] if end else redacted[:limit]


ENV_KEYS = frozenset({"Env", "env", "environment", "Environment"})
# (Test, test: a healthcheck's command, in docker inspect and in the compose config)
ARGV_KEYS = frozenset({"Args", "Cmd", "Entrypoint", "command", "entrypoint", "argv", "cmd", "Command", "Test", "test"})


__all__ = [
    "IN_PLACE",
    "OVERLAP",
    "PLACEHOLDER",
    "RedactError",
    "Redactor",
    "encoded_forms",
    "ordinary",
    "secret_name",
]
