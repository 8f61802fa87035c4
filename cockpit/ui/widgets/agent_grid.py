"""The grid of agent panes: adapts to 1-9 agents and to the terminal, pages the rest.

A pane is never squashed below a readable size: when the terminal is too small for every pane,
the grid shows as many as fit and pages through the others (`[` and `]`).
"""

from __future__ import annotations

from textual.containers import Grid

from cockpit.ui.widgets.agent_pane import AgentPane

MAX_PER_PAGE = 9
MIN_PANE_WIDTH = 40
MIN_PANE_HEIGHT = 7


def page_capacity(width: int, height: int) -> tuple[int, int]:
    """(max columns, max rows) of readable panes on a grid of this size."""
    return max(1, width // MIN_PANE_WIDTH), max(1, height // MIN_PANE_HEIGHT)


def grid_shape(count: int, width: int, height: int) -> tuple[int, int, int]:
    """(columns, rows, panes per page) for `count` panes on a `width` x `height` grid."""
    max_columns, max_rows = page_capacity(width, height)
    per_page = max(1, min(MAX_PER_PAGE, max_columns * max_rows))
    shown = min(count, per_page)
    preferred = 1 if shown <= 1 else 2 if shown <= 4 else 3
    columns = max(1, min(preferred, max_columns))
    rows = -(-shown // columns)
    if rows > max_rows:  # too tall: use more columns if they fit
        columns = min(max_columns, -(-shown // max_rows))
        rows = -(-shown // columns)
    return columns, rows, per_page


class AgentGrid(Grid):
    """Shows one page of panes; panes off the page stay mounted, keep their text, and render
    when shown. On a page whose last row is short, its last pane spans the rest of the row, so
    three agents leave no empty quarter. Zoom shows one pane alone."""

    DEFAULT_CSS = """
    AgentGrid { grid-gutter: 0 0; height: 1fr; }
    AgentGrid > AgentPane.-off-page { display: none; }
    """

    def __init__(self, panes: list[AgentPane]) -> None:
        super().__init__(*panes, id="agent-grid")
        self.panes = panes
        self.page = 0
        self.per_page = MAX_PER_PAGE
        self.zoomed: AgentPane | None = None

    @property
    def pages(self) -> int:
        return max(1, -(-len(self.panes) // self.per_page))

    def on_resize(self) -> None:
        self.layout_panes()

    def on_mount(self) -> None:
        self.layout_panes()

    def show_page(self, page: int) -> None:
        self.page = page % self.pages
        self.layout_panes()

    def show_pane(self, pane: AgentPane) -> None:
        """Turn to the page that holds `pane` (a zoom moves to it)."""
        if self.zoomed is not None and self.zoomed is not pane:
            self.zoom(pane)
        page = self.panes.index(pane) // self.per_page
        if page != self.page:
            self.show_page(page)

    def zoom(self, pane: AgentPane | None) -> None:
        """`pane` alone on the grid (None: the page again)."""
        self.zoomed = pane
        self.layout_panes()

    def layout_panes(self) -> None:
        width, height = self.size.width or 160, self.size.height or 44
        columns, rows, self.per_page = grid_shape(len(self.panes), width, height)
        self.page = min(self.page, self.pages - 1)
        visible = self.panes[self.page * self.per_page:(self.page + 1) * self.per_page]
        if self.zoomed is not None:
            visible, columns, rows = [self.zoomed], 1, 1
        for pane in self.panes:
            pane.set_class(pane not in visible, "-off-page")
            pane.styles.column_span = 1
        if short := len(visible) % columns:  # the last row's last pane takes what is left
            visible[-1].styles.column_span = columns - short + 1
        self.styles.grid_size_columns = columns
        self.styles.grid_size_rows = rows
