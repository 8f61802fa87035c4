"""The footer, with the keys a newcomer needs first: `?` (every key) and `q` never fall off.

Textual's footer lists the focused widget's keys, then the screen's, then the app's, and a
narrow terminal cuts the end of the line: the app's `?` and `q` went first. This footer puts
them at the front and leaves the rest in order.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

FIRST = ("help", "quit_cockpit")
"""Actions whose keys lead the footer, in this order."""


class CockpitFooter(Footer):
    def compose(self) -> ComposeResult:
        widgets = list(super().compose())
        first = sorted((w for w in widgets if isinstance(w, FooterKey) and w.action in FIRST),
                       key=lambda w: FIRST.index(w.action))
        yield from first
        yield from (w for w in widgets if w not in first)
