"""`?`: every key, as currently mapped (the `[keymap]` table can change them)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 100; max-width: 95%; height: 80%;
                                  border: thick $primary; background: $surface; }
    """
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", id="cockpit.help_close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "Keys (escape closes)"
            yield DataTable(cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("key", "action", "what it does")
        seen: set[str] = set()
        below = self.app.screen_stack[-2] if len(self.app.screen_stack) > 1 else self.app.screen
        shadowed = {key for key, bindings in self.app._bindings.key_to_bindings.items()
                    if any(binding.priority for binding in bindings)}  # e.g. ctrl+c: the app's
        for node in (below, self.app):
            for key, bindings in node._bindings.key_to_bindings.items():
                if node is not self.app and key in shadowed:
                    continue
                for binding in bindings:
                    label = binding.id or binding.action
                    if label in seen or binding.system:
                        continue
                    seen.add(label)
                    key = self.app.get_key_display(binding)
                    if binding.id and binding.id in self.app._keymap:  # remapped by [keymap]
                        key = ", ".join(self.app.get_key_display(Binding(k, ""))
                                        for k in self.app._keymap[binding.id].split(","))
                    table.add_row(Text(key),
                                  Text(binding.description or binding.action),
                                  Text(binding.tooltip or "", style="dim"), key=label)
        table.add_row(Text("ctrl+p"), Text("Palette"), Text("Every command, searchable",
                                                            style="dim"), key="palette")
