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


def test_an_unterminated_sequence_costs_its_own_line_only() -> None:
    # A title or clipboard sequence with no terminator ends at the line break, as the text
    # after it is the reply's next line, not a parameter.
    assert sanitize("a \x1b]52;c;aGk=\nnext line\n\x1bPq#0\u2028after") == \
        "a \nnext line\n\nafter"


def test_lone_surrogates_go_so_every_stream_can_encode_the_text() -> None:
    text = sanitize("bad \ud800 pair \udfff ok 🙂")
    assert text == "bad  pair  ok 🙂"
    text.encode("utf-8")


def test_a_safe_stream_sanitises_every_write_even_one_cut_in_two() -> None:
    import io

    from cockpit.core.text import safe_stream

    out = io.StringIO()
    safe = safe_stream(out)
    for piece in ["title \x1b]0;x", "\x07 bell \x07 csi \x1b", "[2J\u202e\n", "\t\x9b6n end"]:
        safe.write(piece)
    safe.flush()
    # Each piece is cleaned alone: the CSI cut after its ESC leaves "[2J" as inert text.
    assert out.getvalue() == "title  bell  csi [2J\n\t end"
    assert safe_stream(safe) is safe


def test_safe_json_escapes_what_a_terminal_acts_on_and_round_trips() -> None:
    import json

    from cockpit.core.text import safe_json

    value = {"k\x1b": ["\x07\x7f\x85\x9b6n", "\u202e\u2066\u061c\u200f\u2028", "\ud800",
                       "é 日本 🙂"]}
    text = safe_json(value)
    assert json.loads(text) == value
    assert text.isprintable() and "é 日本 🙂" in text  # printable text stays readable
    for escape in ("\\u001b", "\\u0007", "\\u007f", "\\u0085", "\\u009b", "\\u202e", "\\u2066",
                   "\\u061c", "\\u200f", "\\u2028", "\\ud800"):
        assert escape in text
    assert json.loads(safe_json(value, indent=2)) == value
