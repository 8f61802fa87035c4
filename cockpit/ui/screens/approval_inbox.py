"""`a`: the approval inbox: every tool call waiting for a decision, across agents, oldest first.

It lists `SessionState.approvals` from the app's folded view and redraws when a frame changes
them, so a call appears when its `approval_requested` event arrives and goes when the decision
comes back as `approval_decided`; keys only ask the session owner (`decide`, `approve_all`).
Without one (a replay) the inbox shows what waited at the cursor, read-only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from cockpit.core.state import PendingApproval
from cockpit.core.text import one_line
from cockpit.ui.calls import clock, pretty_json

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from cockpit.core.commands import Decision
    from cockpit.ui.app import CockpitApp

EMPTY = "No calls are waiting for approval."
LIVE_INTRO = ("y approves the selected call · n denies it (the model reads your reason) · "
              "e edits its arguments, then approves · Y approves every call")
READ_ONLY = "The session is not running here: its calls can be seen, not decided."
"""Why nothing can be decided, when the screen gets no session owner (its default)."""
DECIDING = ("approve", "deny", "edit", "approve_all")


class Decisions(Protocol):
    """What the inbox asks of the session (`SessionCommands` has these)."""

    def decide(self, call_id: str, decision: Decision, *, reason: str = "",
               arguments: dict[str, Any] | None = None, by: str = "person") -> Awaitable[None]:
        ...

    def approve_all(self, by: str = "person",
                    ids: list[str] | None = None) -> Awaitable[list[str]]:
        ...


class ApprovalInboxScreen(Screen[None]):
    DEFAULT_CSS = """
    ApprovalInboxScreen #intro { height: auto; padding: 0 1; color: $text-muted; }
    ApprovalInboxScreen #calls { height: 1fr; border: round $panel; }
    ApprovalInboxScreen #empty { height: 1fr; content-align: center middle; color: $text-muted; }
    ApprovalInboxScreen #detail { height: 2fr; border: round $panel; padding: 0 1; }
    ApprovalInboxScreen.-empty #calls, ApprovalInboxScreen.-empty #detail { display: none; }
    ApprovalInboxScreen #empty { display: none; }
    ApprovalInboxScreen.-empty #empty { display: block; }
    """
    BINDINGS = [
        Binding("escape,a", "app.pop_screen", "Back", id="cockpit.approvals_close"),
        Binding("y", "approve", "Approve", id="cockpit.approve",
                tooltip="Run the selected call with its arguments as they are"),
        Binding("n", "deny", "Deny", id="cockpit.deny",
                tooltip="Refuse the selected call; the model reads your reason as its result"),
        Binding("e", "edit", "Edit & approve", id="cockpit.approval_edit",
                tooltip="Edit the selected call's arguments (JSON), then run it with them"),
        Binding("Y", "approve_all", "Approve all", id="cockpit.approve_all",
                tooltip="Approve every call that waits, oldest first"),
    ]

    app: CockpitApp

    def __init__(self, decisions: Decisions | None, read_only: str = READ_ONLY) -> None:
        super().__init__()
        self.decisions = decisions
        """None: nothing can be decided here (a replay)."""
        self.read_only = read_only
        self._shown: tuple[str, ...] | None = None
        self._hold: str | None = None
        """A call the cursor landed on because the selected one was decided elsewhere: the
        decision keys refuse it until the person moves the cursor."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text(LIVE_INTRO if self.decisions is not None else self.read_only),
                     id="intro")
        calls: DataTable[Text] = DataTable(id="calls", cursor_type="row", zebra_stripes=True)
        calls.border_title = "Waiting for approval (oldest first)"
        yield calls
        yield Static(EMPTY, id="empty", markup=False)
        with VerticalScroll(id="detail"):
            yield Static(id="arguments")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#calls", DataTable)
        table.add_column("waited", key="waited", width=8)
        table.add_column("agent", key="agent")
        table.add_column("tool", key="tool")
        table.add_column("arguments", key="arguments")
        self.show_calls()
        self.app.events_applied.subscribe(self, lambda _: self.show_calls())
        self.set_interval(1.0, self.show_waits)
        table.focus()

    # -- what it shows -------------------------------------------------------------------------

    @property
    def pending(self) -> dict[str, PendingApproval]:
        return self.app.view.approvals

    def show_calls(self) -> None:
        """Redraw the list when the calls waiting have changed (a frame, a replay seek)."""
        pending = self.pending
        current = tuple(pending)
        if current == self._shown:
            return
        self._shown = current
        table = self.query_one("#calls", DataTable)
        selected = self._row_id(table)  # the call the person had chosen, decided or not
        row = table.cursor_row
        was_empty = not table.row_count
        table.clear()
        now = self.app.clock()
        agents = max((len(one_line(c.agent, 40)) for c in pending.values()), default=0)
        tools = max((len(one_line(c.tool, 60)) for c in pending.values()), default=0)
        room = max(30, self.size.width - agents - tools - 24)  # the rest of the row
        for call_id, call in pending.items():
            table.add_row(Text(clock(now - call.requested_at)), Text(one_line(call.agent, 40)),
                          Text(one_line(call.tool, 60)),
                          Text(one_line(pretty_json(call.arguments, indent=None), room)),
                          key=call_id)
        self.set_class(not pending, "-empty")
        if pending:
            gone = selected is not None and selected not in pending
            keep = list(pending).index(selected) if selected is not None \
                and not gone else min(row, len(pending) - 1)
            table.move_cursor(row=keep)
            # The selected call was decided elsewhere: the call now under the cursor is one
            # the person has not chosen, so the keys wait for the cursor to move.
            self._hold = list(pending)[keep] if gone else None
            if was_empty:
                table.focus()  # hidden while empty, the table had lost the focus
        self.show_detail()
        self.refresh_bindings()

    def on_resize(self) -> None:
        self._shown = None  # the arguments column fits the width
        self.show_calls()

    def show_waits(self) -> None:
        """The wait of each call, in session time, once a second."""
        table = self.query_one("#calls", DataTable)
        now = self.app.clock()
        shown = self._shown or ()
        for call_id, call in self.pending.items():
            if call_id in shown:
                table.update_cell(call_id, "waited", Text(clock(now - call.requested_at)))
        self.show_detail()

    def show_detail(self) -> None:
        call = self.selected
        detail = self.query_one("#detail", VerticalScroll)
        if call is None:
            detail.border_title = ""
            self.query_one("#arguments", Static).update("")
            return
        waited = clock(self.app.clock() - call.requested_at)
        detail.border_title = Text(f"{one_line(call.agent, 40)} · {one_line(call.tool, 60)} · "
                                   f"{one_line(call.call_id, 40)} · waiting {waited}")
        self.query_one("#arguments", Static).update(Text(pretty_json(call.arguments)))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value != self._hold:
            self._hold = None
        self.show_detail()

    @staticmethod
    def _row_id(table: DataTable[Any]) -> str | None:
        if not table.row_count or table.cursor_row < 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return str(key) if key is not None else None

    @property
    def selected(self) -> PendingApproval | None:
        table = self.query_one("#calls", DataTable)
        if not table.row_count or table.cursor_row < 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.pending.get(str(key)) if key is not None else None

    # -- keys ----------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action not in DECIDING:
            return True
        if self.decisions is None:
            return False  # a replay decides nothing: the keys are not offered
        if action == "approve_all":
            return True if self.pending else None
        return True if self.selected is not None else None

    def action_approve(self) -> None:
        if (target := self._target()) is not None:
            decisions, call = target
            self._command(lambda: decisions.decide(call.call_id, "approved"),
                          f"approved {call.tool} for {call.agent}")

    def action_deny(self) -> None:
        from cockpit.ui.screens.modals import InputModal

        if (target := self._target()) is None:
            return
        decisions, call = target

        def deny(reason: str | None) -> None:
            if reason is not None:
                self._command(lambda: decisions.decide(call.call_id, "denied",
                                                       reason=reason.strip()),
                              f"denied {call.tool} for {call.agent}")

        self.app.push_screen(InputModal(
            f"Deny {one_line(call.tool, 60)} for {one_line(call.agent, 40)}: the model reads "
            "your reason as the call's result.", placeholder="Reason (enter alone: no reason)",
            allow_empty=True), deny)

    def action_edit(self) -> None:
        from cockpit.ui.screens.arguments_modal import ArgumentsModal

        if (target := self._target()) is None:
            return
        decisions, call = target

        def edited(arguments: dict[str, Any] | None) -> None:
            if arguments is not None:
                self._command(lambda: decisions.decide(call.call_id, "edited",
                                                       arguments=arguments),
                              f"approved {call.tool} for {call.agent} with edited arguments")

        title = f"{one_line(call.agent, 40)} · {one_line(call.tool, 60)} · {call.call_id}"
        self.app.push_screen(ArgumentsModal(title, pretty_json(call.arguments)), edited)

    def action_approve_all(self) -> None:
        decisions = self.decisions
        if decisions is None or not self.pending:
            return
        shown = [call_id for call_id in self._shown or () if call_id in self.pending]
        count = len(shown)
        self._command(lambda: decisions.approve_all(ids=shown),  # only what the person saw
                      "approved 1 call" if count == 1 else f"approved {count} calls")

    def _target(self) -> tuple[Decisions, PendingApproval] | None:
        call, decisions = self.selected, self.decisions
        if call is not None and call.call_id == self._hold:
            self._hold = None  # told once: the next key acts on the call now shown
            self.notify("The call you had selected was decided elsewhere, and the cursor is "
                        "on another one now: look at it, then press the key again.",
                        severity="warning", markup=False)
            return None
        return None if call is None or decisions is None else (decisions, call)

    def _command(self, call: Callable[[], Awaitable[object]], done: str) -> None:
        # On the app, not this screen: leaving the inbox must not cancel a decision half made.
        self.app.run_worker(self.app.command(call, done), group="commands", exclusive=False,
                            exit_on_error=False, description=done)
