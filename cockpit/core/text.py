"""Making untrusted text (model output, Ollama error messages) safe to show in a terminal.

Model output is untrusted: an escape sequence in a token must not be able to clear the screen,
move the cursor or retitle the window. Markup safety is the UI's job (it never parses model text
as Rich markup); this module removes the control characters themselves, and the bidirectional
controls that would let text show in another order than it runs (a "Trojan Source" argument).
"""

from __future__ import annotations

import re

# ESC-introduced sequences (CSI, OSC, DCS, ...) first, so their parameters go with them; then any
# other C0/C1 control character except newline and tab.
_ESCAPE_RE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"          # CSI ... final byte
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC / DCS / SOS / PM / APC ... terminator
    r"|\x1b[@-Z\\-_]?"                  # other two-byte escapes, or a lone ESC
    r"|\x9b[0-?]*[ -/]*[@-~]"           # 8-bit CSI
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
    r"|[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"  # bidi controls: no reordered text
)
_BREAK_RE = re.compile("\r?\n|[\u2028\u2029]")


def sanitize(text: str) -> str:
    """`text` without terminal control sequences; newlines and tabs are kept."""
    if text.isprintable():
        return text
    text = text.replace("\r\n", "\n").replace("\u2028", "\n").replace("\u2029", "\n")
    return _ESCAPE_RE.sub("", text)


def split_lines(text: str) -> list[str]:
    """`text` cut at its line breaks (`\\n`, `\\r\\n`, U+2028, U+2029), each piece sanitised.
    Cutting first means an unterminated escape sequence cannot swallow a line break, so the
    pieces are exactly the lines the text has; none holds a control character but tab."""
    return [sanitize(line) for line in _BREAK_RE.split(text)]


def one_line(text: str, width: int = 120) -> str:
    """A sanitised single-line preview, cut to `width` characters."""
    flat = " ".join(sanitize(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """Plain aligned columns for a terminal: upper-case headers, then one line per row."""
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    return [line.rstrip() for line in lines]
