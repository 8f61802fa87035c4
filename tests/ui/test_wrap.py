"""Pane wrapping: the same text wraps the same way however the stream chunked it."""

from __future__ import annotations

import random

import pytest

from cockpit.ui.widgets.pane_flow import wrap_chunk

TEXT = ("Release notes for cockpit 0.1. Several agents stream at once, each in its own pane, "
        "over a shared board.\nEvery event goes to an SQLite log as it happens, so a session "
        "can be replayed. Averyveryverylongwordthatcannotfitonaline ends it.")


def wrap_stream(chunks: list[str], width: int) -> str:
    """What AgentPane does: hold back the partial word, wrap whole words."""
    column, out, pending = 0, [], ""
    for chunk in chunks:
        combined = pending + chunk
        end = max(combined.rfind(" "), combined.rfind("\n")) + 1
        pending = combined[end:]
        wrapped, column = wrap_chunk(combined[:end], column, width)
        out.append(wrapped)
    return "".join(out) + pending


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
