"""Untrusted text made safe for a terminal: control sequences and bidi controls go, the words
stay."""

from __future__ import annotations

import pytest

from cockpit.core.text import one_line, sanitize


@pytest.mark.parametrize(("raw", "shown"), [
    ("plain text, ünïcödé, 日本語 ✓", "plain text, ünïcödé, 日本語 ✓"),
    ("a\x1b[2Jb\x1b]0;title\x07c\x9b6nd", "abcd"),          # clear, retitle, 8-bit CSI
    ("\x1b]52;c;aGk=\x07copied?", "copied?"),                # OSC 52 clipboard
    ("access\u202e\u2066 level\u2069", "access level"),      # bidi overrides and isolates
    ("line\u2028next\r\nthird", "line\nnext\nthird"),
    ("tab\tkept", "tab\tkept"),
])
def test_sanitize_keeps_the_words_and_drops_the_controls(raw: str, shown: str) -> None:
    assert sanitize(raw) == shown


def test_one_line_is_one_sanitised_line_cut_to_width() -> None:
    assert one_line("a\nb\u2029c\x1b[31m d", 80) == "a b c d"
    assert one_line("x" * 10, 5) == "xxxx…"
