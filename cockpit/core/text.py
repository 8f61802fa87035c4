"""Making untrusted text (model output, Ollama error messages) safe to show in a terminal.

Model output is untrusted: an escape sequence in a token must not be able to clear the screen,
move the cursor or retitle the window. Markup safety is the UI's job (it never parses model text
as Rich markup); this module removes the control characters themselves, and the bidirectional
controls that would let text show in another order than it runs (a "Trojan Source" argument).
"""

from __future__ import annotations

import json
import re
from typing import Any, TextIO, cast

# ESC-introduced sequences (CSI, OSC, DCS, ...) first, so their parameters go with them; then any
# other C0/C1 control character except newline and tab. A string sequence (OSC, DCS, ...) ends at
# its terminator or at a line break: an unterminated one costs the rest of its line, no more.
_ESCAPE_RE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"          # CSI ... final byte
    r"|\x1b[\]PX^_][^\x07\x1b\x9c\n\u2028\u2029]*(?:\x07|\x1b\\|\x9c)?"  # OSC, DCS, PM...
    r"|\x1b[@-Z\\-_]?"                  # other two-byte escapes, or a lone ESC
    r"|\x9b[0-?]*[ -/]*[@-~]"           # 8-bit CSI
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
    r"|[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"  # bidi controls: no reordered text
    r"|[\ud800-\udfff]"                # lone surrogates: not text, and no stream can encode them
)
_BREAK_RE = re.compile("\r?\n|[\u2028\u2029]")
_UNSAFE_IN_JSON = re.compile(
    "[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
"""What `json.dumps(ensure_ascii=False)` leaves raw but a terminal must not get: DEL, C1
controls, bidi controls, line and paragraph separators, lone surrogates (it escapes C0 itself)."""


def sanitize(text: str) -> str:
    """`text` without terminal control sequences; newlines and tabs are kept."""
    if text.isprintable():
        return text
    text = text.replace("\r\n", "\n").replace("\u2028", "\n").replace("\u2029", "\n")
    return _ESCAPE_RE.sub("", text)


def safe_json(value: object, indent: int | None = None) -> str:
    """`value` as JSON that is safe to print or `cat`: readable UTF-8 for printable text, a
    `\\uXXXX` escape for every character a terminal would act on. `json.loads` gives back
    exactly `value`."""
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    return text if text.isascii() else _UNSAFE_IN_JSON.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def split_lines(text: str) -> list[str]:
    """`text` cut at its line breaks (`\\n`, `\\r\\n`, U+2028, U+2029), each piece sanitised.
    Cutting first means an unterminated escape sequence cannot swallow a line break, so the
    pieces are exactly the lines the text has; none holds a control character but tab."""
    return [sanitize(line) for line in _BREAK_RE.split(text)]


class _SafeStream:
    """A text stream whose writes are sanitised (see `safe_stream`)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def write(self, text: str) -> int:
        return self._out.write(sanitize(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._out, name)


def safe_stream(out: TextIO) -> TextIO:
    """`out`, with every write sanitised: a document built of many pieces (a report, an
    export) cannot let a control character through by forgetting to clean one of them.
    Newlines and tabs pass; a sequence cut across two writes loses its control characters
    all the same, only some of its parameters may show."""
    return out if isinstance(out, _SafeStream) else cast(TextIO, _SafeStream(out))


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
