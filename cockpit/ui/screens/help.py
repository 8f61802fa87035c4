"""`?`: every key of the screen underneath and of the app, as currently mapped, each with the
binding id a crew's `[keymap]` table remaps it by.

One row per binding, whatever number of keys it has (`j, ↓`) and wherever Textual lists it;
`1`-`9` are one row. The table fits 80 columns: what a key does is cropped to the room left,
and said in full under the table for the highlighted row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingsMap
from textual.containers import Vertical
from textual.dom import DOMNode
from textual.events import Resize
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from cockpit.core.text import one_line

FOCUS_ID = re.compile(r"cockpit\.focus_(\d)$")
"""`cockpit.focus_1` ... `cockpit.focus_9`: shown as one row."""
COLUMNS = ("key", "action", "id for [keymap]")
MIN_WHAT = 12
"""The narrowest "what it does" column; below that the detail line alone says it."""
HINT = '[keymap] "ID" = "KEY" in the crew file remaps a key · esc closes'


@dataclass
class KeyRow:
    """One binding (or the `1`-`9` group) and every key that runs it."""

    label: str
    """The binding id, or the action of a binding without one (Textual's own)."""
    action: str
    what: str
    keys: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    @property
    def key_text(self) -> str:
        if len(self.keys) > 2 and all(k.isdigit() and len(k) == 1 for k in self.keys):
            digits = sorted(self.keys)
            if int(digits[-1]) - int(digits[0]) == len(digits) - 1:
                return f"{digits[0]}–{digits[-1]}"
        return ", ".join(self.keys)

    @property
    def id_text(self) -> str:
        if not self.ids:
            return "—"  # Textual's own binding: no id, so [keymap] cannot move it
        if len(self.ids) == 1:
            return self.ids[0]
        numbers = [match.group(1) for i in self.ids if (match := FOCUS_ID.match(i))]
        if len(numbers) == len(self.ids):
            return f"cockpit.focus_{numbers[0]}…{numbers[-1]}"
        return ", ".join(self.ids)


def key_rows(app_node: DOMNode, below: DOMNode, keymap: dict[str, str],
             display: dict[str, str]) -> list[KeyRow]:
    """The rows for the screen `below` and the app, in that order, each binding once.

    `display` maps a key to how it is shown. A key the app binds with priority (ctrl+c) is the
    app's wherever it is pressed, so the screen's binding of it is left out.
    """
    shadowed = {key for key, bindings in app_node._bindings.key_to_bindings.items()
                if any(binding.priority for binding in bindings)}
    rows: dict[str, KeyRow] = {}
    for node in (below, app_node):
        bindings: BindingsMap = node._bindings.copy()
        if keymap:
            bindings.apply_keymap(keymap)  # what Textual does for each key press
        for key, key_bindings in bindings.key_to_bindings.items():
            if node is not app_node and key in shadowed:
                continue
            for binding in key_bindings:
                if binding.system:
                    continue
                row = _row_for(rows, binding)
                shown = display.get(key, key)
                if shown not in row.keys:
                    row.keys.append(shown)
                if binding.id and binding.id not in row.ids:
                    row.ids.append(binding.id)
    return list(rows.values())


def _row_for(rows: dict[str, KeyRow], binding: Binding) -> KeyRow:
    label = binding.id or binding.action
    if FOCUS_ID.match(label):
        label = "cockpit.focus_N"
        if label not in rows:
            rows[label] = KeyRow(label, "Focus pane 1–9",
                                 "Focus that agent's pane (in crew order)")
        return rows[label]
    if label not in rows:
        description = binding.description or binding.action
        rows[label] = KeyRow(label, description[:1].upper() + description[1:],
                             binding.tooltip or "")
    return rows[label]


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical { width: 120; max-width: 95%; height: 90%; border: thick $primary;
                            background: $surface; }
    HelpScreen DataTable { height: 1fr; }
    HelpScreen #what { height: 2; padding: 0 1; color: $text-muted; }
    HelpScreen #hint { height: 1; padding: 0 1; color: $text-muted; text-wrap: nowrap;
                       text-overflow: ellipsis; }
    """
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", id="cockpit.help_close")]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[KeyRow] = []
        self._what_width = -1

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Keys"
            yield DataTable(cursor_type="row", zebra_stripes=True)
            yield Static(id="what", markup=False)
            yield Static(Text(HINT), id="hint")

    def on_mount(self) -> None:
        app = self.app
        below = app.screen_stack[-2] if len(app.screen_stack) > 1 else app.screen
        keys = {key for node in (below, app) for key in node._bindings.key_to_bindings}
        keys |= {k for value in app._keymap.values() for k in value.split(",")}
        display = {key: self._display(key) for key in keys}
        self.rows = key_rows(app, below, dict(app._keymap), display)
        self.call_after_refresh(self.fit)

    def _display(self, key: str) -> str:
        shown = self.app.get_key_display(Binding(key, ""))
        return f"ctrl+{shown[1:]}" if shown.startswith("^") and len(shown) > 1 else shown

    def on_resize(self, event: Resize) -> None:
        self.call_after_refresh(self.fit)

    def fit(self) -> None:
        """Lay the table out for its width: the first three columns whole, what each key does
        in the room that is left."""
        table: DataTable[Text] = self.query_one(DataTable)
        widths = [max((cell_len(text) for text in column), default=0) for column in (
            [COLUMNS[0], *(row.key_text for row in self.rows)],
            [COLUMNS[1], *(row.action for row in self.rows)],
            [COLUMNS[2], *(row.id_text for row in self.rows)])]
        room = table.scrollable_content_region.width or self.size.width
        what = max(MIN_WHAT, room - sum(widths) - 2 * 4 - 2)  # padding, scrollbar
        if what == self._what_width:
            return
        self._what_width = what
        row = table.cursor_row
        table.clear(columns=True)
        for label, width in zip(COLUMNS, widths, strict=True):
            table.add_column(Text(label), width=width)
        table.add_column(Text("what it does"), width=what)
        for entry in self.rows:
            table.add_row(Text(entry.key_text), Text(entry.action),
                          Text(entry.id_text, style="dim"),
                          Text(one_line(entry.what, 300), style="dim", no_wrap=True,
                               overflow="ellipsis"),
                          key=entry.label)
        table.move_cursor(row=max(0, min(row, table.row_count - 1)))
        self._show_what(table.cursor_row)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_what(event.cursor_row)

    def _show_what(self, index: int) -> None:
        if not 0 <= index < len(self.rows):
            return
        entry = self.rows[index]
        self.query_one("#what", Static).update(
            Text(f"{entry.key_text}: {one_line(entry.what or entry.action, 300)}"))
