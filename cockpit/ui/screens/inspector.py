"""`s`: the state inspector: the shared board and each key's history, the focused agent's
conversation, the hosts.

It reads the app's folded view, refreshed from the `events_applied` signal; edits go through the
session as `state_set` events by "person", like every other change. `enter` shows a value in
full, `e` edits it (cockpit/ui/screens/value_editor.py).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Static

from cockpit.core import events as ev
from cockpit.core.describe import call_line, host_name
from cockpit.core.state import STREAMED, AgentState, AgentStatus
from cockpit.core.text import one_line, sanitize
from cockpit.ui.screens.value_editor import Edited, ValueEditor

if TYPE_CHECKING:
    from cockpit.ui.app import CockpitApp

HOSTS_EVERY = 3.0
PS_TIMEOUT = 2.5
"""Seconds one host's `/api/ps` may take before its row says unreachable."""
HOST_EVENTS = (ev.HostSelected, ev.HostWaiting, ev.HostBack, ev.AgentStarted)
"""Events that move an agent to another host or change whether it waits for one."""
CONVERSATION_EVERY = 0.5
"""Seconds between redraws of the conversation while only text streams in (any other event of
the agent redraws it at once). The last text is drawn too, when its time comes."""
TEXT_EVENTS = (ev.TokenStreamed, ev.ThinkingStreamed)


def preview(value: Any, width: int = 60) -> str:
    return one_line(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False),
                    width)


def describe_metrics(agent: AgentState) -> str:
    metrics = agent.metrics
    if not metrics:
        return "no completed message yet"
    parts = [f"prompt {metrics.get('prompt_eval_count') or 0} tok",
             f"eval {metrics.get('eval_count') or 0} tok"]
    if metrics.get("eval_duration"):
        rate = (metrics.get("eval_count") or 0) / (metrics["eval_duration"] / 1e9)
        parts.append(f"{rate:.1f} tok/s")
    if metrics.get("load_duration") is not None:
        parts.append(f"load {metrics['load_duration'] / 1e6:.0f} ms")
    if metrics.get("done_reason"):
        parts.append(f"done: {metrics['done_reason']}")
    return " · ".join(parts)


def host_agents(agents: list[AgentState], now: float) -> Text:
    """`a, b (waiting 0:42)`: the agents whose current host this is; waiting ones say so."""
    text = Text()
    for index, agent in enumerate(agents):
        if index:
            text.append(", ")
        text.append(agent.name)
        if agent.status is AgentStatus.WAITING_HOST:
            since = agent.waiting_since if agent.waiting_since is not None else now
            seconds = int(max(0.0, now - since))
            text.append(f" (waiting {seconds // 60}:{seconds % 60:02d})", style="bold magenta")
    return text


def expires_in(expires_at: Any) -> str:
    """`in 5 min`: how long until Ollama unloads the model (rounded up to the minute)."""
    if expires_at is None:
        return ""
    try:
        moment = expires_at if isinstance(expires_at, datetime) else \
            datetime.fromisoformat(str(expires_at).replace("Z", "+00:00"))
    except ValueError:
        return str(expires_at)
    seconds = moment.timestamp() - time.time()
    if seconds > 10 * 365 * 86400:
        return "never"
    return f"in {max(0, math.ceil(seconds / 60))} min" if seconds > 0 else "expired"


class InspectorScreen(Screen[None]):
    CSS_PATH = "inspector.tcss"
    BINDINGS = [
        Binding("escape,s", "app.pop_screen", "Back", id="cockpit.inspector_close"),
        Binding("enter", "show_value", "Full value", id="cockpit.board_show",
                tooltip="The selected value (a board key, or a version in its history)"),
        Binding("e", "edit_value", "Edit", id="cockpit.board_edit",
                tooltip="Edit the selected board value (JSON, or plain text)"),
    ]

    app: CockpitApp

    def __init__(self, agent: str | None) -> None:
        super().__init__()
        self.agent = agent
        self._board_version = -1
        self._conversation_at = 0.0
        self._conversation_due: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="left"):
                board: DataTable[Text] = DataTable(id="board", cursor_type="row",
                                                   zebra_stripes=True)
                board.border_title = "Board"
                yield board
                history: DataTable[Text] = DataTable(id="history", cursor_type="row")
                history.border_title = "History"
                yield history
                hosts: DataTable[Text] = DataTable(id="hosts", cursor_type="none")
                hosts.border_title = "Hosts (/api/ps)"
                yield hosts
            conversation = VerticalScroll(Static(id="conversation-text"), id="conversation")
            conversation.border_title = f"Conversation: {self.agent or 'no agent focused'}"
            yield conversation
        yield Footer()

    def on_mount(self) -> None:
        board = self.query_one("#board", DataTable)
        board.add_columns("key", "value", "by", "when", "v")
        history = self.query_one("#history", DataTable)
        history.add_columns("v", "when", "by", "via", "value")
        hosts = self.query_one("#hosts", DataTable)
        hosts.add_columns("host", "model", "VRAM", "expires", "agents")
        self.refresh_board(force=True)
        self.refresh_conversation(force=True)
        self.app.events_applied.subscribe(self, self.on_events)
        self.refresh_hosts()
        self.set_interval(HOSTS_EVERY, self.refresh_hosts)

    def on_events(self, events: list[ev.BaseEvent]) -> None:
        if not events:  # the view was replaced (a replay seek): everything may have changed
            self.refresh_board()
            self.refresh_conversation(force=True)
            return
        if any(isinstance(e, ev.StateSet) for e in events):
            self.refresh_board()
        mine = [e for e in events if e.agent == self.agent]
        if mine:  # text is drawn at most every CONVERSATION_EVERY; a status change at once
            self.refresh_conversation(force=any(not isinstance(e, TEXT_EVENTS) for e in mine))
        if any(isinstance(e, HOST_EVENTS) for e in events):
            self.refresh_hosts()  # an agent moved or waits: show it now, not at the next poll

    # -- board ---------------------------------------------------------------------------------

    def refresh_board(self, force: bool = False) -> None:
        table = self.query_one("#board", DataTable)
        selected = table.cursor_row
        table.clear()
        for key, entry in self.app.view.board.items():
            when = time.strftime("%H:%M:%S", time.localtime(entry.ts))
            table.add_row(Text(one_line(key, 80)), Text(preview(entry.value)),
                          Text(one_line(entry.by, 40)), Text(when),
                          Text(str(entry.version)), key=key)
        if table.row_count:
            table.move_cursor(row=min(selected, table.row_count - 1))
        self.refresh_history()

    def refresh_history(self) -> None:
        """Every version of the selected key, newest first: who wrote it, how, and when."""
        table = self.query_one("#history", DataTable)
        key = self._selected_key()
        table.clear()
        versions = self.app.view.history.get(key, []) if key is not None else []
        table.border_title = Text(f"History of {one_line(key, 60)}") if key is not None \
            else "History"
        room = max(20, (table.size.width or self.size.width // 2) - 45)
        for entry in reversed(versions):
            via = Text(one_line(entry.tool, 40)) if entry.tool else Text("—", style="dim")
            table.add_row(Text(str(entry.version)),
                          Text(time.strftime("%H:%M:%S", time.localtime(entry.ts))),
                          Text(one_line(entry.by, 40)), via, Text(preview(entry.value, room)),
                          key=str(entry.version))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "board":
            self.refresh_history()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """`enter` on a board key or one of its versions (the table takes the key itself)."""
        if event.data_table.id in ("board", "history"):
            self.action_show_value()

    def _selected_key(self) -> str | None:
        table = self.query_one("#board", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return str(key) if key is not None else None

    def action_show_value(self) -> None:
        from cockpit.ui.screens.modals import TextModal

        key = self._selected_key()
        if key is None:
            return
        value, title = self.app.view.board[key].value, key
        history = self.query_one("#history", DataTable)
        if self.focused is history and history.row_count:
            version = history.coordinate_to_cell_key(history.cursor_coordinate).row_key.value
            entry = next((e for e in self.app.view.history.get(key, [])
                          if str(e.version) == version), None)
            if entry is not None:
                value, title = entry.value, f"{key}, version {entry.version} by {entry.by}"
        text = value if isinstance(value, str) else json.dumps(value, indent=2,
                                                               ensure_ascii=False)
        self.app.push_screen(TextModal(title, text))

    def action_edit_value(self) -> None:
        """`e`: the selected key's value in an editor; saved as a `state_set` by the person."""
        key = self._selected_key()
        if key is None:
            self.notify("the board is empty: there is nothing to edit", severity="warning",
                        markup=False, timeout=4)
            return
        if self.app.commands is None:
            self.notify(self.why_no_edit(), severity="warning", markup=False, timeout=6)
            return
        entry = self.app.view.board[key]
        self.app.push_screen(ValueEditor(key, entry.value, entry.version),
                             lambda edited: self._edited(key, edited))

    def why_no_edit(self) -> str:
        """Why `e` does nothing when nothing can be commanded."""
        if self.app.owner_gone is not None:
            revive = self.app.key_display("cockpit.revive", "ctrl+r")
            return (f"the session is not running: the board cannot be edited ({revive} on the "
                    "main screen resumes it)")
        if self.app.source.plays:
            return "this is a replay: the board cannot be edited"
        return "the session has not started: the board cannot be edited yet"

    def _edited(self, key: str, edited: Edited | None) -> None:
        if edited is None:
            return
        entry = self.app.view.board.get(key)
        if entry is not None and entry.version != edited.version:
            from cockpit.ui.screens.modals import ConfirmModal

            question = (f"{one_line(key, 60)} changed while you edited it: it is now version "
                        f"{entry.version}, by {one_line(entry.by, 40)}. Save yours over it?")
            self.app.push_screen(ConfirmModal(question, yes="Save mine"),
                                 lambda save: self._save(key, edited.value) if save else None)
            return
        self._save(key, edited.value)

    def _save(self, key: str, value: Any) -> None:
        commands = self.app.commands
        if commands is None:  # the owner went away while the editor was open
            self.notify(self.why_no_edit(), severity="warning", markup=False, timeout=6)
            return
        self.run_worker(
            self.app.command(lambda: commands.set_state(key, value, by="person"),
                             f"{one_line(key, 60)} updated"),
            group="commands", exit_on_error=False, description=f"set {key}")

    # -- conversation --------------------------------------------------------------------------

    def refresh_conversation(self, force: bool = False) -> None:
        """Redraw the focused agent's conversation: at once if `force`, else at most every
        CONVERSATION_EVERY seconds, and never later than that after the last call."""
        now = time.monotonic()
        wait = CONVERSATION_EVERY - (now - self._conversation_at)
        if not force and wait > 0:
            if self._conversation_due is None:  # tokens arrive every frame; the view need not
                self._conversation_due = self.set_timer(wait, self._conversation_timer)
            return
        if self._conversation_due is not None:
            self._conversation_due.stop()
            self._conversation_due = None
        self._conversation_at = now
        scroll = self.query_one("#conversation", VerticalScroll)
        following = scroll.scroll_y >= scroll.max_scroll_y
        self.query_one("#conversation-text", Static).update(self.conversation_text())
        if following:  # at the end: stay there as the reply grows
            scroll.call_after_refresh(scroll.scroll_end, animate=False)

    def _conversation_timer(self) -> None:
        self._conversation_due = None
        self.refresh_conversation(force=True)

    def conversation_text(self) -> Text:
        agent = self.app.view.agents.get(self.agent or "")
        text = Text()
        if agent is None:
            text.append("Focus an agent pane, then press s.", style="dim")
            return text
        status = f"{agent.status} at" if agent.status is AgentStatus.WAITING_HOST else \
            f"{agent.status} · on"
        text.append(f"{status} {host_name(agent.host)} · {describe_metrics(agent)}\n",
                    style="bold")
        messages = agent.conversation()
        partial = bool(agent.partial_parts or agent.thinking_parts)
        for index, message in enumerate(messages):
            role = str(message.get("role", "?"))
            if role == "tool" and message.get("tool_name"):
                role += f" · {message['tool_name']}"
            text.append(f"\n{sanitize(role)}", style="bold reverse")
            if partial and index == len(messages) - 1:  # the reply being streamed
                state = "streaming" if agent.status in STREAMED else f"cut off: {agent.status}"
                text.append(f" ({state})", style="dim")
            if message.get("thinking"):
                text.append("\n" + sanitize(str(message["thinking"])), style="dim italic")
            text.append("\n" + sanitize(str(message.get("content", ""))) + "\n")
            for call in message.get("tool_calls") or ():
                function = call.get("function", {})
                text.append("⚙ " + call_line(str(function.get("name", "?")),
                                             dict(function.get("arguments") or {}), 200)
                            + "\n", style="dim")
        if agent.error:
            text.append(f"\nerror: {sanitize(agent.error)}\n", style="red")
        return text

    # -- hosts ---------------------------------------------------------------------------------

    def refresh_hosts(self) -> None:
        self.run_worker(self._poll_hosts(), group="hosts", exclusive=True, exit_on_error=False,
                        description="poll /api/ps")

    async def _poll_hosts(self) -> None:
        source = self.app.source
        if self.app.commands is None:
            return  # a replay asks no host
        agents = list(self.app.view.agents.values())
        crew_hosts = self.app.crew.all_hosts()  # the pools too, used or not
        hosts = sorted({a.host for a in agents} | crew_hosts)

        async def ps(host: str) -> Any:
            # Bounded, so a host that swallows connections cannot hold up the others' rows.
            client = source.host_client(host)
            if client is None:
                raise ConnectionError("no client for this host")
            return await asyncio.wait_for(client.ps(), PS_TIMEOUT)

        answers = await asyncio.gather(*(ps(host) for host in hosts), return_exceptions=True)
        now = self.app.clock()
        rows: list[tuple[str, Text, str, str, str]] = []
        for host, response in zip(hosts, answers, strict=True):
            # Each agent's current host (a pool moves it; `host_selected`), and who waits.
            on_it = host_agents([a for a in agents if a.host == host and not a.status.ended],
                                now)
            if isinstance(response, BaseException):  # "unreachable", shown, never raised
                if isinstance(response, asyncio.CancelledError):
                    raise response
                rows.append((host, on_it, f"unreachable: {type(response).__name__}", "", ""))
                continue
            if not response.models:
                rows.append((host, on_it, "no model loaded", "", ""))
            # By name: Ollama lists by expiry, which reorders the rows at every refresh.
            for model in sorted(response.models, key=lambda m: str(m.model or m.name)):
                vram = f"{(model.size_vram or 0) / 2**30:.1f} GiB"
                expires = expires_in(model.expires_at)
                rows.append((host, on_it, str(model.model or model.name), vram, expires))
                on_it = Text()  # once per host
        table = self.query_one("#hosts", DataTable)
        table.clear()
        for host, on_it, model_name, vram, expires in rows:
            table.add_row(Text(host_name(host)),
                          *(Text(one_line(cell, 80)) for cell in (model_name, vram, expires)),
                          on_it)
