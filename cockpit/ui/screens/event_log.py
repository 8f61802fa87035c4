"""`l`: the event log, tailing live from the bus; older pages come from SQLite.

It subscribes to the bus before it reads the newest page from the log, and keeps what arrives
while it reads: an event published in between would otherwise be in neither (not committed when
read, not heard). The page and what arrived are merged by `seq`, each event once.

Filter by typing words: an agent's name, an event type, a mark (`tool`, `approval`, `message`,
`check`, `intervention`, ...), or several (`writer tool`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input

from cockpit.core import events as ev
from cockpit.core.describe import call_line, describe, result_line
from cockpit.core.eventlog import LogError
from cockpit.core.text import one_line
from cockpit.ui.marks import event_mark, mark_kind

if TYPE_CHECKING:
    from cockpit.ui.app import CockpitApp

PAGE = 500
MAX_ROWS = 5000


ACTING = (ev.ApprovalRequested, ev.ApprovalDecided, ev.MessageSent, ev.MessageDelivered,
          ev.AgentWoken, ev.WakeRefused, ev.OutputChecked)
"""Events `describe` words better than their fields would."""


def merged(page: list[ev.BaseEvent], arrived: list[ev.BaseEvent]) -> list[ev.BaseEvent]:
    """The page read from the log, then what the bus delivered that it does not hold (by
    `seq`, which increases along the session): every event once, in order."""
    last = page[-1].seq if page else 0
    fresh = sorted({e.seq: e for e in arrived if e.seq > last}.values(), key=lambda e: e.seq)
    return [*page, *fresh]


def summarise(event: ev.BaseEvent) -> str:
    """One line of what an event says."""
    if isinstance(event, ev.ToolCalled):
        return call_line(event.tool, event.arguments, 100)
    if isinstance(event, ev.ToolResult):
        return one_line(result_line(event).removeprefix("⚙ "), 100)
    if isinstance(event, ACTING):
        return one_line(describe(event), 100)
    if isinstance(event, ev.MessageCompleted) and event.tool_calls and not event.content:
        calls = (call.get("function", {}) for call in event.tool_calls)
        return one_line("calls " + "; ".join(
            call_line(str(f.get("name", "?")), dict(f.get("arguments") or {}), 60)
            for f in calls), 100)
    data = event.data()
    for field in ("text", "error", "instruction", "reason", "output", "content"):
        if field in data and data[field]:
            return one_line(str(data[field]), 100)
    if isinstance(event, ev.StateSet):
        return one_line(f"{event.key} = {event.value!r} by {event.by}", 100)
    return one_line(" ".join(f"{k}={v}" for k, v in data.items()
                             if k not in ("config", "messages", "pid", "version", "crew_path")),
                    100)


class EventLogScreen(Screen[None]):
    DEFAULT_CSS = """
    EventLogScreen #filter { dock: top; }
    EventLogScreen DataTable { height: 1fr; }
    """
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="cockpit.events_close"),
        Binding("o", "older", "Older", id="cockpit.events_older",
                tooltip=f"Load {PAGE} older events from the log"),
    ]

    app: CockpitApp

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[ev.BaseEvent] = []
        self.oldest_id: int | None = None
        self.words: set[str] = set()
        self.arrived: list[ev.BaseEvent] | None = None
        """While the first page is read: the events the bus delivered meanwhile."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter: agent names, event types or marks, e.g. writer tool",
                    id="filter")
        yield DataTable(cursor_type="row", zebra_stripes=True)
        yield Footer()

    async def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("seq", "time", "", "agent", "type", "what")
        self.arrived = []
        self.app.events_applied.subscribe(self, self.on_events)  # first: see the docstring
        page: list[ev.BaseEvent] = []
        log, session = self.app.log_store, self.app.session
        if log is not None and session is not None:
            table.loading = True  # a log that cannot be written holds the flush up
            try:
                await log.flush()
                page = await log.events_before(session, None, PAGE)
            except LogError as error:  # the log gave up: say so, and show what was heard
                self.notify(str(error), title="Event log not read", severity="error",
                            markup=False)
            finally:
                table.loading = False
        arrived, self.arrived = self.arrived, None
        self.rows = merged(page, arrived)
        self.oldest_id = self.rows[0].id if self.rows else None
        self.rebuild()
        table.focus()

    def matches(self, event: ev.BaseEvent) -> bool:
        if not self.words:
            return True
        labels = {event.agent or "session", getattr(event, "type", ""), mark_kind(event) or ""}
        return bool(self.words & labels)

    def rebuild(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for event in self.rows:
            if self.matches(event):
                self._add(table, event)
        table.move_cursor(row=max(0, table.row_count - 1))

    def _add(self, table: DataTable[Text], event: ev.BaseEvent) -> None:
        glyph, colour = event_mark(event) or ("", "")
        table.add_row(Text(str(event.seq)),
                      Text(time.strftime("%H:%M:%S", time.localtime(event.ts))),
                      Text(glyph, style=colour), Text(event.agent or ""),
                      Text(getattr(event, "type", "")), Text(summarise(event)))

    def on_events(self, events: list[ev.BaseEvent]) -> None:
        if self.arrived is not None:  # the first page is being read: merged with it after
            self.arrived.extend(events)
            return
        last_seq = self.rows[-1].seq if self.rows else 0
        fresh = [e for e in events if e.seq > last_seq]
        self.rows.extend(fresh)
        table = self.query_one(DataTable)
        at_end = table.cursor_row >= table.row_count - 1
        for event in fresh:
            if self.matches(event):
                self._add(table, event)
        if len(self.rows) > MAX_ROWS:
            self.rows = self.rows[-MAX_ROWS:]
            self.oldest_id = self.rows[0].id
        if at_end:
            table.move_cursor(row=table.row_count - 1)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.words = set(event.value.split())
        self.rebuild()

    async def action_older(self) -> None:
        log, session = self.app.log_store, self.app.session
        if log is None or session is None or self.oldest_id is None:
            self.notify("no older events", timeout=2)
            return
        older = await log.events_before(session, self.oldest_id, PAGE)
        if not older:
            self.notify("this is the first event", timeout=2)
            return
        self.rows = older + self.rows
        self.oldest_id = older[0].id
        self.rebuild()
        self.query_one(DataTable).move_cursor(row=0)
