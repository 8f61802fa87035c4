"""Making untrusted text (model output, Ollama error messages) safe to show in a terminal.

Model output is untrusted: an escape sequence in a token must not be able to clear the screen,
move the cursor or retitle the window. Markup safety is the UI's job (it never parses model text
as Rich markup); this module removes the control characters themselves.
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
)


def sanitize(text: str) -> str:
    """`text` without terminal control sequences; newlines and tabs are kept."""
    if text.isprintable():
        return text
    return _ESCAPE_RE.sub("", text.replace("\r\n", "\n"))


def one_line(text: str, width: int = 120) -> str:
    """A sanitised single-line preview, cut to `width` characters."""
    flat = " ".join(sanitize(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
