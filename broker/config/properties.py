"""Java `.properties` files, as Kafka's `server.properties` is read.

Rules (those of `java.util.Properties.load`):
- a line whose first non-blank character is `#` or `!` is a comment; blank
  lines are skipped;
- the key ends at the first unescaped `=`, `:` or whitespace; blanks and at
  most one `=` or `:` between key and value are skipped; a key alone has the
  value "";
- a line ending in an odd number of backslashes continues on the next line,
  whose leading blanks are dropped (a comment line never continues);
- escapes in keys and values: `\\t \\n \\r \\f`, `\\uXXXX` (UTF-16 surrogate
  pairs join into one character), and a backslash before any other character
  stands for that character (`\\=`, `\\:`, `\\ `, `\\\\`);
- leading blanks of a value are dropped, trailing blanks are kept (config
  parsing trims them later); a repeated key: the last one wins.
"""

from __future__ import annotations

import re

_BLANKS = " \t\f"
_NEWLINE = re.compile(r"\r\n|\r|\n")
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")


class PropertiesSyntaxError(ValueError):
    """A malformed escape. `line` is the 1-based line where its logical line
    starts; `source` names the file, when known."""

    def __init__(self, line: int, reason: str, source: str | None = None):
        self.line = line
        self.reason = reason
        self.source = source
        where = f"line {line}" if source is None else f"{source}:{line}"
        super().__init__(f"{where}: {reason}")


def parse_properties(text: str, source: str | None = None) -> dict[str, str]:
    """The key/value pairs of a `.properties` text, in file order; `source`
    (a file name) only labels errors."""
    result: dict[str, str] = {}
    for line_no, logical in _logical_lines(text):
        key, value = _split(logical)
        result[_unescape(key, line_no, source)] = _unescape(value, line_no, source)
    return result


def _logical_lines(text: str):
    """Yield (first line number, logical line) with continuations joined."""
    parts: list[str] = []
    start = 0
    for number, natural in enumerate(_NEWLINE.split(text), start=1):
        stripped = natural.lstrip(_BLANKS)
        if not parts:
            if not stripped or stripped[0] in "#!":
                continue
            start = number
        trailing = len(stripped) - len(stripped.rstrip("\\"))
        if trailing % 2 == 1:
            parts.append(stripped[:-1])
            continue
        parts.append(stripped)
        yield start, "".join(parts)
        parts = []
    if parts:  # the text ended inside a continuation
        yield start, "".join(parts)


def _split(line: str) -> tuple[str, str]:
    """Split a logical line into raw (still escaped) key and value."""
    key_end = len(line)
    value_start = len(line)
    has_separator = False
    escaped = False
    for i, c in enumerate(line):
        if not escaped and c in "=:":
            key_end, value_start, has_separator = i, i + 1, True
            break
        if not escaped and c in _BLANKS:
            key_end, value_start = i, i + 1
            break
        escaped = c == "\\" and not escaped
    while value_start < len(line):
        c = line[value_start]
        if c in _BLANKS:
            pass
        elif not has_separator and c in "=:":
            has_separator = True
        else:
            break
        value_start += 1
    return line[:key_end], line[value_start:]


def _unescape(raw: str, line_no: int, source: str | None) -> str:
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i = 0
    while i < len(raw):
        c = raw[i]
        i += 1
        if c != "\\" or i == len(raw):
            out.append(c)
            continue
        c = raw[i]
        i += 1
        if c == "u":
            digits = raw[i:i + 4]
            if not _HEX4.fullmatch(digits):
                raise PropertiesSyntaxError(line_no, f"malformed \\uXXXX escape: \\u{digits}", source)
            out.append(chr(int(digits, 16)))
            i += 4
        else:
            out.append(_ESCAPES.get(c, c))
    text = "".join(out)
    # \uD83D\uDE00 is one character in Java (UTF-16); join such pairs.
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
