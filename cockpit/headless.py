"""Headless progress: one readable stderr line per meaningful event, never one per token.

The printer is a bus subscriber that folds what it receives into its own `SessionState`, so it is
a pure view, exactly like the TUI: it cannot disagree with the log. Given a second stream
(`cockpit demo --headless` gives stdout), it also prints what the agents say there, exactly
as `cockpit logs` prints the session: whole lines, each prefixed `name | `.

Every line is sanitised where it is written (names, models, keys, reasons and errors come from
crew files, commands and Ollama), whatever its parts did already.

Host outages are logged per agent (each agent that cannot reach its host logs `host_waiting`,
then `host_back`) but printed per host: one line when the first agent starts waiting, one a
minute while any agent still waits (a timer: no event need arrive for it), and one when the host
answers again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from cockpit.core import events as ev
from cockpit.core.bus import Subscription
from cockpit.core.describe import (
    call_line,
    describe,
    duration,
    host_name,
    result_line,
    resumed_line,
    status_text,
    wait_limit,
)
from cockpit.core.state import AgentState, SessionState
from cockpit.core.text import one_line, split_lines
from cockpit.core.transcript import Transcript
from cockpit.logs import wants_colour

STILL_WAITING_EVERY = 60.0
"""Seconds between the `still waiting for Ollama` lines of one host outage."""


def describe_agent(agent: AgentState) -> str:
    """`282 tokens · 61.3 tok/s · 4.9 s`: the figures of an agent's run so far."""
    parts = [f"{agent.tokens} tokens"]
    rate = agent.tokens_per_second
    if rate is not None:
        parts.append(f"{rate:.1f} tok/s")
    if agent.started_at is not None and agent.ended_at is not None:
        parts.append(f"{agent.elapsed():.1f} s")  # paused, queued and crashed time excluded
    if agent.retries:
        parts.append(f"{agent.retries} retries")
    if agent.waited:
        parts.append(f"waited {duration(agent.waited)} for Ollama")
    return " · ".join(parts)


@dataclass
class HostWait:
    """One host's outage as the printer tells it: who waits, since when, the next minute line."""

    host: str
    reason: str
    limit: float
    began: float
    """The printer's clock when the first agent started waiting."""
    ts: float
    """That first `host_waiting` event's time (the start line's clock column)."""
    agents: list[str] = field(default_factory=list)
    """The agents waiting for the host now, in the order they began."""
    announced: bool = False
    next_line: float = 0.0


class HeadlessPrinter:
    """Turns the event stream into progress lines on `stream` (stderr in `cockpit run`)."""

    def __init__(self, subscription: Subscription, stream: TextIO,
                 clock: Callable[[], float] = time.time, text: TextIO | None = None) -> None:
        self.subscription = subscription
        self.stream = stream
        self.text = text
        """Where the agents' text goes, if anywhere (progress lines stay on `stream`)."""
        self.transcript = Transcript(colour=text is not None and wants_colour(text))
        self.state = SessionState()
        self.clock = clock
        self.still_every = STILL_WAITING_EVERY
        """Seconds between `still waiting` lines (tests make it small)."""
        self.waits: dict[str, HostWait] = {}
        """Host outages under way, by host."""
        self._answered: dict[str, set[str]] = {}
        """Per host, agents still in an outage whose end was already printed: their own
        `host_back` prints nothing."""
        self._width = 8
        self.approve = "ask"
        """The run's `--approve` policy: the reminders say how a waiting call can be decided."""
        self._approvals_due: float | None = None
        """When the next `still waiting for approval` lines print, while calls wait."""

    async def run(self) -> None:
        """Print until the bus closes; then the agents' last partial lines."""
        try:
            await self._run()
        finally:
            self._say(self.transcript.close())

    async def _run(self) -> None:
        quiet = (ev.TokenStreamed, ev.ThinkingStreamed)
        subscription = self.subscription
        said = self.transcript.feed if self.text is not None else None
        while True:
            due = self._next_due()
            if due is None:
                if not (batch := await subscription.batch()):
                    return
            else:  # a host outage is under way: wake for its minute line even if all is quiet
                await subscription.until_any(due - self.clock())
                batch = subscription.take()
            lines: list[str] = []
            for event in batch:
                self.state.apply(event)
                if said is not None:
                    lines += said(event)
                if isinstance(event, quiet):  # the hot path: tokens never print
                    continue
                line = self.line_for(event)
                if line:
                    self._print(event, line)
            self._announce()
            self._still_waiting()
            self._still_approving()
            self.stream.flush()
            self._say(lines)
            if subscription.closed and not subscription.pending():
                return

    def _say(self, lines: list[str]) -> None:
        """The agents' whole lines, on the text stream (flushed: someone is reading)."""
        if lines and self.text is not None:
            self.text.write("\n".join(lines) + "\n")
            self.text.flush()

    def _print(self, event: ev.BaseEvent, line: str) -> None:
        self._announce()  # an outage that began earlier in the batch prints first
        self._write(event.ts, event.agent or "session", line)

    def _write(self, ts: float, who: str, line: str) -> None:
        clock = time.strftime("%H:%M:%S", time.localtime(ts))
        text = "\n".join(part.expandtabs(8) for part in split_lines(line))
        self.stream.write(f"{clock} {one_line(who, 40).ljust(self._width)} {text}\n")

    def line_for(self, event: ev.BaseEvent) -> str | None:
        """The progress line for an event, or None for events not worth a line (tokens)."""
        agent = self.state.agents.get(event.agent) if event.agent else None
        if event.agent is not None:
            self._track_host(event, event.agent)
        match event:
            case ev.SessionStarted():
                self._width = max([8, *(len(name) for name in self.state.agents)])
                waiting = [a for a in self.state.agents.values() if a.after]
                text = f"started crew {event.crew!r} ({len(self.state.agents)} agents)"
                for other in waiting:
                    text += f"\n{' ' * 9}{other.name.ljust(self._width)} waiting for " + \
                        ", ".join(other.after)
                return text
            case ev.CrewUpdated() if not event.diff:
                return "crew      file valid again; the crew is as it was"
            case ev.CrewUpdated():
                return "crew      file changed\n" + self._indented(event.diff)
            case ev.CrewRejected():
                return "crew      file change rejected; the crew goes on unchanged\n" + \
                    self._indented(event.error.splitlines())
            case ev.SessionResumed():
                where = f" ({line})" if (line := resumed_line(event)) else ""
                if event.only is not None:
                    return "resumed   only " + ", ".join(event.only) + where
                return "resumed" + where
            case ev.AgentStarted():
                return f"started   {event.model} @ {one_line(event.host)}"
            case ev.AgentPaused():
                hint = (f"; `cockpit resume {event.session} {event.agent}` goes on"
                        if event.by == "person" else "")
                return f"paused    by {event.by} after {agent.tokens if agent else 0} tokens{hint}"
            case ev.AgentResumed() if event.by == "resume":
                return "resumed   by cockpit resume (continues where it failed)"
            case ev.AgentResumed():
                return f"resumed   by {event.by}"
            case ev.AgentRedirected():
                verb = "follow-up " if event.follow_up else "redirected"
                return f"{verb} by {event.by}: {one_line(event.instruction, 80)}"
            case ev.AgentStopped():
                return f"stopped   by {event.by}" + (f": {event.reason}" if event.reason else "")
            case ev.AgentRestarted():
                return f"restarted by {event.by}"
            case ev.Retrying():
                at = f", {host_name(event.host)}" if event.host else ""
                return (f"retrying  (attempt {event.attempt}, in {event.delay:.1f} s{at}): "
                        f"{one_line(event.reason, 160)}")
            case ev.Stalled():
                return f"stalled   no new chunk for {event.seconds:g} s"
            case ev.HostSelected():
                why = f" ({one_line(event.reason, 80)})" if event.reason else ""
                return f"host      {host_name(event.host)}{why}"
            case ev.HostWaiting():
                self._host_waiting(event, event.agent or "")
                return None  # announced per host, with every agent that joined this batch
            case ev.HostBack():
                return self._host_back(event, event.agent or "")
            case ev.LogStuck():
                return (f"LOG STUCK: {one_line(event.cause, 200)} — agents paused until the "
                        "log accepts writes; nothing is lost")
            case ev.LogRecovered():
                return f"log       writable again after {duration(event.stuck_for)}; " \
                    "agents resume"
            case ev.AgentFailed():
                return f"failed    {one_line(event.error, 200)}"
            case ev.AgentFinished():
                return f"{status_text(agent).ljust(9)} {describe_agent(agent)}" if agent \
                    else "finished"
            case ev.StateSet() if event.by not in self.state.agents:
                return f"board     {event.key} = {one_line(repr(event.value), 80)} (by {event.by})"
            case ev.SessionFinished():
                return f"{event.outcome}\n" + self.summary()
            case ev.ApprovalRequested():
                return (f"approval  {event.call_id} waits: "
                        f"{call_line(event.tool, event.arguments, 120)}")
            case ev.ToolResult():
                return result_line(event)
            case _ if event.notable:
                return one_line(describe(event), 200)
        return None

    def _indented(self, lines: list[str]) -> str:
        """Lines under the text of the line above (past its clock and name columns)."""
        indent = " " * (10 + self._width)
        return "\n".join(indent + one_line(line, 200) for line in lines)

    def summary(self) -> str:
        """One line per agent: status and figures, or the error."""
        lines = []
        for agent in self.state.agents.values():
            detail = one_line(agent.error, 160) if agent.error else describe_agent(agent)
            status = status_text(agent).ljust(9)
            lines.append(f"  {agent.name.ljust(self._width)} {status} {detail}")
        return "\n".join(lines)

    # -- host outages, per host ----------------------------------------------------------------

    def _track_host(self, event: ev.BaseEvent, agent: str) -> None:
        """An agent leaves the outage it was waiting in when it waits elsewhere, moves to
        another host, retries (its wait ran out), is paused, starts over or ends."""
        match event:
            case ev.HostWaiting() | ev.HostSelected():
                self._leave(agent, keep=event.host)
            case ev.HostBack():
                pass
            case (ev.Retrying() | ev.AgentPaused() | ev.AgentStarted() | ev.AgentRestarted()
                  | ev.AgentFailed() | ev.AgentStopped() | ev.AgentFinished()):
                self._leave(agent)

    def _leave(self, agent: str, keep: str | None = None) -> None:
        for host, wait in list(self.waits.items()):
            if host != keep and agent in wait.agents:
                wait.agents.remove(agent)
                if not wait.agents and wait.announced:  # nobody waits: it ends unannounced
                    del self.waits[host]
        for host, agents in self._answered.items():
            if host != keep:
                agents.discard(agent)

    def _host_waiting(self, event: ev.HostWaiting, agent: str) -> None:
        self._answered.get(event.host, set()).discard(agent)  # a new outage for this agent
        wait = self.waits.get(event.host)
        if wait is None:
            now = self.clock()
            wait = self.waits[event.host] = HostWait(
                event.host, event.reason, event.limit, began=now, ts=event.ts,
                next_line=now + self.still_every)
        if agent not in wait.agents:
            wait.agents.append(agent)

    def _host_back(self, event: ev.HostBack, agent: str) -> str | None:
        """The first agent to get through prints the outage's end; the others nothing."""
        answered = self._answered.setdefault(event.host, set())
        wait = self.waits.pop(event.host, None)
        if wait is None:
            if agent in answered:
                answered.discard(agent)
                return None
            # An outage this printer did not see begin (a resumed session): still tell its end,
            # once, for every agent the log says waited for the host.
            answered.update(name for name, other in self.state.agents.items()
                            if other.waiting_since is not None and other.host == event.host)
            answered.discard(agent)
            return self._back_line(event)
        self._announce_wait(wait)  # it began and ended within one batch: both lines print
        answered.update(wait.agents)
        answered.discard(agent)
        return self._back_line(event)

    @staticmethod
    def _back_line(event: ev.HostBack) -> str:
        return f"back      Ollama at {host_name(event.host)} answered again after " \
            f"{duration(event.waited)}"

    def _announce(self) -> None:
        """Print the start of outages that began since the last line."""
        for host, wait in list(self.waits.items()):
            if not wait.announced:
                self._announce_wait(wait)
                if not wait.agents:
                    del self.waits[host]

    def _announce_wait(self, wait: HostWait) -> None:
        if wait.announced:
            return
        wait.announced = True
        limit = wait_limit(wait.limit)
        self._write(wait.ts, self._who(wait),
                    f"waiting   for Ollama at {host_name(wait.host)}: "
                    f"{one_line(wait.reason, 160)} ({limit}{self._agents(wait)})")

    def _next_due(self) -> float | None:
        due = [w.next_line for w in self.waits.values() if w.agents]
        if self.state.approvals:
            if self._approvals_due is None:
                self._approvals_due = self.clock() + self.still_every
            due.append(self._approvals_due)
        else:
            self._approvals_due = None
        return min(due, default=None)

    def _still_approving(self) -> None:
        """Every `still_every` while calls wait for a decision: what waits, and for how
        long. Nobody may be watching: the line says how to unblock the night."""
        now = self.clock()
        if not self.state.approvals or self._approvals_due is None or now < self._approvals_due:
            return
        self._approvals_due = now + self.still_every
        for pending in self.state.approvals.values():
            self._write(now, pending.agent,
                        f"still     waiting for approval of {pending.call_id}: "
                        f"{call_line(pending.tool, pending.arguments, 100)} "
                        f"({duration(now - pending.requested_at)}; `cockpit approve "
                        f"{self.state.session} {pending.call_id}` or `cockpit deny ... --reason "
                        "TEXT` from another shell decides it, or `cockpit attach`)")

    def _still_waiting(self) -> None:
        now = self.clock()
        for wait in self.waits.values():
            if not wait.agents or now < wait.next_line:
                continue
            missed = math.floor((now - wait.next_line) / self.still_every) + 1
            wait.next_line += missed * self.still_every  # one line, however late the wake-up
            self._write(now, self._who(wait),
                        f"still     waiting for Ollama at {host_name(wait.host)} "
                        f"({duration(now - wait.began)}{self._agents(wait)})")

    @staticmethod
    def _who(wait: HostWait) -> str:
        return wait.agents[0] if len(wait.agents) == 1 else "session"

    @staticmethod
    def _agents(wait: HostWait) -> str:
        return f"; agents {', '.join(wait.agents)}" if len(wait.agents) > 1 else ""
