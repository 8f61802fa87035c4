"""Pane wrapping: the same text wraps the same way however the stream chunked it."""

from __future__ import annotations

import random

import pytest

from cockpit.ui.widgets.pane_flow import held_back, wrap_chunk

TEXT = ("Release notes for cockpit 0.1. Several agents stream at once, each in its own pane, "
        "over a shared board.\nEvery event goes to an SQLite log as it happens, so a session "
        "can be replayed. Averyveryverylongwordthatcannotfitonaline ends it.")


def wrap_stream(chunks: list[str], width: int) -> str:
    """What AgentPane does: hold back the partial word, wrap whole words."""
    column, out, pending = 0, [], ""
    for chunk in chunks:
        combined = pending + chunk
        end = held_back(combined)
        pending = combined[end:]
        wrapped, column = wrap_chunk(combined[:end], column, width)
        out.append(wrapped)
    return "".join(out) + wrap_chunk(pending, column, width)[0]  # the stream ends


@pytest.mark.parametrize("width", [12, 37, 80])
def test_wrapping_does_not_depend_on_chunking(width: int) -> None:
    expected = wrap_stream([TEXT], width)
    chooser = random.Random(width)
    for _ in range(200):
        cuts = sorted(chooser.sample(range(1, len(TEXT)), chooser.randint(1, 60)))
        chunks = [TEXT[i:j] for i, j in zip([0, *cuts], [*cuts, len(TEXT)], strict=True)]
        assert wrap_stream(chunks, width) == expected


def test_no_line_is_wider_than_the_pane_except_for_a_trailing_space() -> None:
    wrapped = wrap_stream([TEXT], 20)
    assert all(len(line.rstrip(" ")) <= 20 for line in wrapped.split("\n"))
    assert "Averyveryverylongwor\ndthatcannotfitonalin" in wrapped  # hard-cut only when needed
    assert wrapped.replace("\n", "").replace(" ", "") == TEXT.replace("\n", "").replace(" ", "")


WIDE = "日本語のテキストは一文字が二つのセルを使います。 絵文字も 🎉🎉🎉 同じです。" * 3


@pytest.mark.parametrize("width", [7, 10, 23])
def test_wide_characters_wrap_by_cells_and_are_never_cut_in_half(width: int) -> None:
    from rich.cells import cell_len

    wrapped = wrap_stream([WIDE], width)
    lines = wrapped.split("\n")
    assert all(cell_len(line.rstrip(" ")) <= width for line in lines)
    assert max(cell_len(line.rstrip(" ")) for line in lines) >= width - 1  # lines are filled
    assert wrapped.replace("\n", "").replace(" ", "") == WIDE.replace(" ", "")  # none lost
    chooser = random.Random(width)
    for _ in range(50):  # and the same however it streamed
        cuts = sorted(chooser.sample(range(1, len(WIDE)), chooser.randint(1, 30)))
        chunks = [WIDE[i:j] for i, j in zip([0, *cuts], [*cuts, len(WIDE)], strict=True)]
        assert wrap_stream(chunks, width) == wrapped


def test_a_wide_character_wider_than_the_room_left_starts_a_new_line() -> None:
    wrapped, column = wrap_chunk("ab日", 0, 3)  # "ab" takes 2 of 3 cells: 日 needs 2
    assert wrapped == "ab\n日" and column == 2


def test_cjk_text_is_shown_as_it_streams_not_held_for_a_space() -> None:
    assert held_back("日本語のテキスト") == 8  # nothing waits: each character is a word
    assert held_back("日本 and mo") == 7  # a partial Latin word still waits for its end
    assert held_back("done 🎉") == 6
