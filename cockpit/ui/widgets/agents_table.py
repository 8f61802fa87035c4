"""`v`: every agent as one row of a table, like k9s; the natural view past nine agents.

The table shows the app's folded view (`app.view.agents`) and the last event each agent had.
It follows the view through `app.events_applied`, published once per frame (and on a replay
seek), and while it is shown it rewrites only the cells whose text changed, so a streaming crew
costs a few cell updates a frame, never a rebuild. Hidden, it only remembers last events.

Names, models, hosts and event text come from crew files, the log and models: every cell is a
`rich.text.Text` of sanitised, one-line text, never markup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from rich.text import Text
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from cockpit.core import events as ev
from cockpit.core.config import CrewConfig
from cockpit.core.describe import describe, host_name, status_text
from cockpit.core.logreader import LogError
from cockpit.core.logschema import decode
from cockpit.core.state import AgentState, AgentStatus, SessionState
from cockpit.core.text import one_line
from cockpit.ui.screens.event_log import summarise
from cockpit.ui.widgets.agent_pane import STATUS_STYLES

if TYPE_CHECKING:
    from cockpit.ui.app import CockpitApp

STATUS_WIDTH = len(f" {AgentStatus.WAITING_HOST} ")
"""The status column's fixed width: the longest status word fits, and the column comes right
after the name, so a narrow terminal cuts other columns, never the status."""
NAME_WIDTH, MODEL_WIDTH, HOST_WIDTH, EVENT_WIDTH = 20, 24, 28, 100
STREAMED = (ev.TokenStreamed, ev.ThinkingStreamed)
"""Counted in the tokens column; not what "last event" means."""
STREAMED_TYPES = frozenset({"token", "thinking"})
BACKFILL_WINDOW, BACKFILL_IDS = 5000, 200_000
"""How the log is read back for the last events of a view the table did not see built (a
resume, a replay seek): windows of this many ids, this far back at most."""
TRANSPORT_ACTIONS = frozenset({"cursor_left", "cursor_right", "scroll_home", "scroll_end"})
"""DataTable actions whose keys a replay uses to seek: there the keys go to the player."""
ATTENTION = (AgentStatus.FAILED, AgentStatus.AWAITING_APPROVAL, AgentStatus.STALLED,
             AgentStatus.RETRYING, AgentStatus.WAITING_HOST, AgentStatus.PAUSED,
             AgentStatus.CALLING, AgentStatus.THINKING, AgentStatus.STREAMING,
             AgentStatus.QUEUED, AgentStatus.WAITING, AgentStatus.STOPPED,
             AgentStatus.FINISHED)
"""Sorted by status, the agents that need a person come first, the ended ones last."""
STATUS_RANK = {status: rank for rank, status in enumerate(ATTENTION)}


class Column(NamedTuple):
    key: str
    label: str
    numeric: bool = False
    """Right-aligned."""
    descending: bool = False
    """Sorted largest (or latest) first."""


COLUMNS = (
    Column("name", "name"), Column("status", "status"), Column("model", "model"),
    Column("host", "host"), Column("turns", "turns", True, True),
    Column("tokens", "tokens", True, True), Column("rate", "tok/s", True, True),
    Column("elapsed", "elapsed", True, True), Column("retries", "retries", True, True),
    Column("last", "last event", descending=True),
)
SORTS = (None, *(column.key for column in COLUMNS))
"""What `S` cycles through: crew order, then each column."""


class Cell(Text):
    """A cell's text, carrying the value it sorts by (numbers sort as numbers) and the row's
    place in the crew (the order before any sort)."""

    def __init__(self, text: str, order: Any, number: int, **options: Any) -> None:
        super().__init__(text, no_wrap=True, overflow="ellipsis", **options)
        self.order = order
        self.number = number


def counts(event: ev.BaseEvent) -> bool:
    """Whether `event` can be an agent's last event: not streamed text, and not the board
    write of its own output that follows its finish (the finish says more)."""
    if isinstance(event, STREAMED):
        return False
    return not (isinstance(event, ev.StateSet) and event.key == f"outputs.{event.agent}")


class LastEvent(NamedTuple):
    ts: float
    text: str


def last_event_line(event: ev.BaseEvent, agent: str) -> str:
    """What the last-event column says of `event`, for `agent` (the sender, or the target of
    a message)."""
    if isinstance(event, ev.MessageSent) and event.to == agent and event.agent != agent:
        return f"message from {event.agent}: {one_line(event.text, EVENT_WIDTH)}"
    line = describe(event)
    kind = str(getattr(event, "type", ""))
    if line == kind:  # describe has no sentence for it: its type and what it says
        detail = summarise(event)
        line = f"{kind.replace('_', ' ')}: {detail}" if detail else kind.replace("_", " ")
    return one_line(line, EVENT_WIDTH)


def clock(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def row_cells(number: int, agent: AgentState, now: float, last: LastEvent | None,
              ) -> tuple[tuple[str, Any, str], ...]:
    """(text, sort value, style) per column: what a row shows, compared before any cell is
    rebuilt."""
    rate, elapsed = agent.rate(now), agent.elapsed(now)
    status = status_text(agent)
    started = agent.started_at is not None
    return (
        (one_line(agent.name, NAME_WIDTH), agent.name, "bold"),
        (f" {status} ", (STATUS_RANK.get(agent.status, len(STATUS_RANK)), number),
         STATUS_STYLES.get(str(agent.status), "reverse")),
        (one_line(agent.model, MODEL_WIDTH), agent.model, ""),
        (host_name(agent.host, HOST_WIDTH), agent.host, "dim"),
        (str(agent.turns), agent.turns, ""),
        (str(agent.tokens), agent.tokens, ""),
        # Numbers sort as shown: rows do not swap over differences the table does not show.
        (f"{rate:.1f}" if rate is not None else "–", round(rate, 1) if rate is not None else -1,
         ""),
        (clock(elapsed) if started else "–", int(elapsed) if started else -1, ""),
        (str(agent.retries), agent.retries, "" if not agent.retries else "bold"),
        (last.text if last else "", last.ts if last else 0.0, "dim"),
    )


def composed(crew: CrewConfig) -> dict[str, AgentState]:
    """The agents as the crew declares them, before any event (a replay at its start)."""
    return {agent.name: AgentState(
        name=agent.name, model=crew.model_for(agent), host=crew.host_for(agent),
        after=list(agent.after),
        status=AgentStatus.WAITING if agent.after else AgentStatus.QUEUED)
        for agent in crew.agents}


class AgentsTable(DataTable[Text]):
    """The agents, one row each; the cursor's row is the agent the screen's keys act on."""

    DEFAULT_CSS = """
    AgentsTable { height: 1fr; display: none; }
    AgentsTable.-shown { display: block; }
    """
    BINDINGS = [
        Binding("S", "sort", "Sort", id="cockpit.agents_sort",
                tooltip="Sort the agents table by the next column (click a header to sort "
                        "by it; again to reverse)"),
        Binding("enter", "select_cursor", "Zoom", id="cockpit.agents_zoom", show=False,
                tooltip="Close the table and zoom the agent's pane"),
        Binding("z", "select_cursor", "Zoom", id="cockpit.zoom",
                tooltip="Close the table and zoom the agent's pane"),
        Binding("j", "cursor_down", "Down", id="cockpit.agents_down", show=False,
                tooltip="The next agent in the table"),
        Binding("k", "cursor_up", "Up", id="cockpit.agents_up", show=False,
                tooltip="The previous agent in the table"),
        # As on the panes (the same ids, so a `[keymap]` moves both): `1`-`9` pick an agent.
        *[Binding(str(n), f"select_number({n})", f"Focus {n}", id=f"cockpit.focus_{n}",
                  show=False) for n in range(1, 10)],
    ]

    app: CockpitApp

    class Highlighted(Message):
        """The cursor is on `agent`'s row: the agent keys act on."""

        def __init__(self, agent: str) -> None:
            super().__init__()
            self.agent = agent

    class Chosen(Message):
        """`enter` on `agent`'s row: show its pane, zoomed."""

        def __init__(self, agent: str) -> None:
            super().__init__()
            self.agent = agent

    def __init__(self) -> None:
        super().__init__(id="agents-table", cursor_type="row", zebra_stripes=True)
        self._shown: dict[str, tuple[tuple[str, Any, str], ...]] = {}
        """Each row as last drawn: a cell is rewritten only when its entry changes."""
        self._last: dict[str, LastEvent] = {}
        self._view: SessionState | None = None
        self.sort_by: str | None = None
        """The column the rows are sorted by (None: crew order)."""
        self.reverse = False

    # -- what the screen calls -----------------------------------------------------------------

    @property
    def shown(self) -> bool:
        return self.has_class("-shown")

    def show(self, shown: bool, selected: str | None) -> None:
        """Show the table with the cursor on `selected`'s row, or hide it."""
        self.set_class(shown, "-shown")
        if shown:
            self.update_rows()
            self.select(selected)

    def select(self, agent: str | None) -> None:
        """Put the cursor on `agent`'s row."""
        if agent is not None and agent in self.rows:
            self.move_cursor(row=self.get_row_index(agent))

    def action_select_number(self, number: int) -> None:
        """`1`-`9`: the cursor on the crew's agent of that number, wherever it is sorted."""
        agents = list(self.app.view.agents) or [agent.name for agent in self.app.crew.agents]
        if 1 <= number <= len(agents):
            self.select(agents[number - 1])

    @property
    def cursor_agent(self) -> str | None:
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0))
        return row_key.value

    def update_rows(self) -> None:
        """Bring every row up to date with the view: new rows, changed cells, the sort kept."""
        now = self.app.clock()
        agents = self.app.view.agents or composed(self.app.crew)  # before the session starts
        resort = False
        for gone in [name for name in self._shown if name not in agents]:  # not in this view
            self.remove_row(gone)
            del self._shown[gone]
        for number, (name, agent) in enumerate(agents.items(), start=1):
            cells = row_cells(number, agent, now, self._last.get(name))
            before = self._shown.get(name)
            if before is None:
                self.add_row(*(self._cell(i, cell, number) for i, cell in enumerate(cells)),
                             key=name)
                resort = True
            else:
                for index, (old, new) in enumerate(zip(before, cells, strict=True)):
                    if old[0] != new[0] or old[2] != new[2]:
                        self.update_cell(name, COLUMNS[index].key,
                                         self._cell(index, new, number),
                                         update_width=index != 1)
                    if old[1] != new[1] and COLUMNS[index].key == self.sort_by:
                        resort = True
            self._shown[name] = cells
        if resort:
            self._sort()

    # -- following the view ----------------------------------------------------------------------

    def on_mount(self) -> None:
        for column in COLUMNS:
            self.add_column(self._label(column), key=column.key,
                            width=STATUS_WIDTH if column.key == "status" else None)
        self._view = self.app.view
        self.app.events_applied.subscribe(self, self._applied, immediate=True)
        self.set_interval(1.0, self._tick)
        self._backfill()

    def _applied(self, events: list[ev.BaseEvent]) -> None:
        if self.app.view is not self._view:  # a replay seek: another moment, other events
            self._view = self.app.view
            self._last = {}
            self._backfill()
        self.note(events)
        if self.shown:
            self.update_rows()

    def note(self, events: Iterable[ev.BaseEvent]) -> None:
        """Remember each agent's last event (the text is made only for the events that can
        be last in this frame)."""
        latest: dict[str, ev.BaseEvent] = {}
        for event in events:
            if event.agent is None or not counts(event):
                continue
            latest[event.agent] = event
            if isinstance(event, ev.MessageSent):
                latest[event.to] = event
        for name, event in latest.items():
            self._last[name] = LastEvent(event.ts, last_event_line(event, name))

    def _tick(self) -> None:
        """Elapsed time moves even when no event arrives."""
        if self.shown and any(a.started_at is not None and not a.status.ended
                              for a in self.app.view.agents.values()):
            self.update_rows()

    def _backfill(self) -> None:
        view = self.app.view
        if view.events and len(self._last) < len(view.agents):
            self.run_worker(self._read_last_events(view), group="agents-table-backfill",
                            exclusive=True, exit_on_error=False,
                            description="the agents' last events, from the log")

    async def _read_last_events(self, view: SessionState) -> None:
        """The last event of each started agent up to the view's last one, read back from
        the log a window of ids at a time. Streamed text, the bulk of a log, is skipped
        undecoded."""
        log, session = self.app.log_store, self.app.session
        if log is None or session is None:
            return
        wanted = {name for name, agent in view.agents.items() if agent.started_at is not None}
        found: dict[str, LastEvent] = {}
        top = view.last_id
        floor = max(0, top - BACKFILL_IDS)
        try:
            while top > floor and not wanted <= found.keys():
                bottom = max(floor, top - BACKFILL_WINDOW)
                rows = await log.rows(session, bottom, top - bottom)
                for row in reversed(rows):
                    if row[0] > top or row[5] in STREAMED_TYPES:
                        continue  # a later event (a replay's future), or streamed text
                    event = decode(row)
                    for name in (event.agent, getattr(event, "to", None)):
                        if isinstance(name, str) and name not in found and counts(event):
                            found[name] = LastEvent(event.ts, last_event_line(event, name))
                top = bottom
        except LogError:
            return  # the column stays empty; the rest of the table does not depend on it
        if self.app.view is not view:
            return  # a seek since: its own backfill runs
        for name, last in found.items():
            self._last.setdefault(name, last)  # what arrived meanwhile is newer
        if self.shown:
            self.update_rows()

    # -- sorting ---------------------------------------------------------------------------------

    def action_sort(self) -> None:
        """`S`: the next column (crew order after the last one)."""
        self.sort_by = SORTS[(SORTS.index(self.sort_by) + 1) % len(SORTS)]
        self.reverse = False
        self._sorted_anew()

    def on_data_table_header_selected(self, message: DataTable.HeaderSelected) -> None:
        message.stop()
        key = message.column_key.value
        if key == self.sort_by:
            self.reverse = not self.reverse
        else:
            self.sort_by, self.reverse = key, False
        self._sorted_anew()

    def _sorted_anew(self) -> None:
        for column in COLUMNS:
            self.columns[ColumnKey(column.key)].label = self._label(column)
        self._sort()
        self._show_column(self.sort_by)

    def _show_column(self, key: str | None) -> None:
        """Scroll sideways to the sorted column if a narrow terminal had it out of view."""
        widths = {column.key.value: column.get_render_width(self)
                  for column in self.columns.values()}
        if key not in widths:
            return
        x = 0
        for name, width in widths.items():
            if name == key:
                break
            x += width
        if x < self.scroll_x or x + widths[key] > self.scroll_x + self.size.width:
            self.scroll_to(x=x, animate=False)

    def _sort(self) -> None:
        """Sort by the chosen column, ties in crew order, keeping the cursor on its agent."""
        agent = self.cursor_agent
        key = self.sort_by
        column = next((c for c in COLUMNS if c.key == key), COLUMNS[0])
        # Python's sort is stable (also reversed): equal values keep the crew order the rows
        # were added in; numbers sort largest first, last events latest first.
        order: Callable[[Cell], Any] = (lambda cell: cell.order) if key is not None \
            else (lambda cell: cell.number)
        self.sort(column.key, key=order, reverse=column.descending != self.reverse)
        self.select(agent)

    def _label(self, column: Column) -> Text:
        """The header, with room for the sort's arrow kept, so sorting never resizes it."""
        arrow = "  "
        if column.key == self.sort_by:
            arrow = " ▲" if column.descending == self.reverse else " ▼"
        return Text(column.label + arrow, justify="right" if column.numeric else "left")

    @staticmethod
    def _cell(index: int, cell: tuple[str, Any, str], number: int) -> Cell:
        text, order, style = cell
        if COLUMNS[index].key == "status":
            text = text.ljust(STATUS_WIDTH)
        return Cell(text, order, number, style=style,
                    justify="right" if COLUMNS[index].numeric else "left")

    # -- the cursor is the selection ---------------------------------------------------------------

    def on_data_table_row_highlighted(self, message: DataTable.RowHighlighted) -> None:
        message.stop()
        if self.shown and message.row_key.value is not None:
            self.post_message(self.Highlighted(message.row_key.value))

    def on_data_table_row_selected(self, message: DataTable.RowSelected) -> None:
        message.stop()
        if message.row_key.value is not None:
            self.post_message(self.Chosen(message.row_key.value))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in TRANSPORT_ACTIONS and self.app.source.plays:
            return False  # a replay's left/right/home/end seek
        return super().check_action(action, parameters)
