"""Headless progress: one readable stderr line per meaningful event, never one per token.

The printer is a bus subscriber that folds what it receives into its own `SessionState`, so it is
a pure view, exactly like the TUI: it cannot disagree with the log.
"""

from __future__ import annotations

import time
from typing import TextIO

from cockpit.core import events as ev
from cockpit.core.bus import Subscription
from cockpit.core.state import AgentState, SessionState
from cockpit.core.text import one_line


def describe_agent(agent: AgentState) -> str:
    """`282 tokens · 61.3 tok/s · 4.9 s`: the figures of an agent's run so far."""
    parts = [f"{agent.tokens} tokens"]
    rate = agent.tokens_per_second
    if rate is not None:
        parts.append(f"{rate:.1f} tok/s")
    if agent.started_at is not None and agent.ended_at is not None:
        parts.append(f"{agent.ended_at - agent.started_at:.1f} s")
    if agent.retries:
        parts.append(f"{agent.retries} retries")
    return " · ".join(parts)


class HeadlessPrinter:
    """Turns the event stream into progress lines on `stream` (stderr in `cockpit run`)."""

    def __init__(self, subscription: Subscription, stream: TextIO) -> None:
        self.subscription = subscription
        self.stream = stream
        self.state = SessionState()
        self._width = 8

    async def run(self) -> None:
        """Print until the bus closes."""
        quiet = (ev.TokenStreamed, ev.ThinkingStreamed)
        while batch := await self.subscription.batch():
            for event in batch:
                self.state.apply(event)
                if isinstance(event, quiet):  # the hot path: tokens never print
                    continue
                line = self.line_for(event)
                if line:
                    self._print(event, line)
            self.stream.flush()

    def _print(self, event: ev.BaseEvent, line: str) -> None:
        clock = time.strftime("%H:%M:%S", time.localtime(event.ts))
        who = (event.agent or "session").ljust(self._width)
        self.stream.write(f"{clock} {who} {line}\n")

    def line_for(self, event: ev.BaseEvent) -> str | None:
        """The progress line for an event, or None for events not worth a line (tokens)."""
        agent = self.state.agents.get(event.agent) if event.agent else None
        match event:
            case ev.SessionStarted():
                self._width = max([8, *(len(name) for name in self.state.agents)])
                waiting = [a for a in self.state.agents.values() if a.after]
                text = f"started crew {event.crew!r} ({len(self.state.agents)} agents)"
                for other in waiting:
                    text += f"\n{' ' * 9}{other.name.ljust(self._width)} waiting for " + \
                        ", ".join(other.after)
                return text
            case ev.SessionResumed():
                return "resumed"
            case ev.AgentStarted():
                return f"started   {event.model} @ {event.host}"
            case ev.AgentPaused():
                return f"paused    by {event.by} after {agent.tokens if agent else 0} tokens"
            case ev.AgentResumed():
                return f"resumed   by {event.by}"
            case ev.AgentRedirected():
                return f"redirected by {event.by}: {one_line(event.instruction, 80)}"
            case ev.AgentStopped():
                return f"stopped   by {event.by}" + (f": {event.reason}" if event.reason else "")
            case ev.AgentRestarted():
                return f"restarted by {event.by}"
            case ev.Retrying():
                return (f"retrying  (attempt {event.attempt}, in {event.delay:.1f} s): "
                        f"{one_line(event.reason, 160)}")
            case ev.Stalled():
                return f"stalled   no new chunk for {event.seconds:g} s"
            case ev.AgentFailed():
                return f"failed    {one_line(event.error, 200)}"
            case ev.AgentFinished():
                return f"finished  {describe_agent(agent)}" if agent else "finished"
            case ev.StateSet() if event.by not in self.state.agents:
                return f"board     {event.key} = {one_line(repr(event.value), 80)} (by {event.by})"
            case ev.SessionFinished():
                return f"{event.outcome}\n" + self.summary()
        return None

    def summary(self) -> str:
        """One line per agent: status and figures, or the error."""
        lines = []
        for agent in self.state.agents.values():
            detail = one_line(agent.error, 160) if agent.error else describe_agent(agent)
            lines.append(f"  {agent.name.ljust(self._width)} {str(agent.status).ljust(9)} {detail}")
        return "\n".join(lines)
