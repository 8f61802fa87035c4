"""The morning report: what each agent did, what happened when, and the final board.

Derived from the log alone (one pass, flat memory), so it can be written for any session, even
one whose process was killed.
"""

from __future__ import annotations

import json
import time
from typing import Any, TextIO

from cockpit.core import events as ev
from cockpit.core.describe import describe, host_name
from cockpit.core.eventlog import EventLog
from cockpit.core.state import AgentState, AgentStatus, SessionState
from cockpit.core.text import one_line

OUTPUT_LINES = 3


def _clock(ts: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts or 0))


def _span(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{rest:02d}" if hours else f"{minutes}:{rest:02d}"


def _cell(text: str, width: int = 60) -> str:
    return one_line(text, width).replace("|", r"\|")


def _rate(agent: AgentState) -> str:
    rate = agent.tokens_per_second
    return f"{rate:.1f}" if rate is not None else "–"


async def write_report(log: EventLog, session: str, out: TextIO) -> SessionState:
    """Write the Markdown report of `session`; returns the folded state it was built from."""
    state = SessionState()
    timeline: list[ev.BaseEvent] = []
    first_start: dict[str, float] = {}
    hosts: dict[str, dict[str, None]] = {}
    """Per agent, the hosts its requests went to, in the order first used."""
    stuck: list[float] = []
    sent: dict[str, int] = {}
    crew_changes: list[ev.CrewUpdated | ev.CrewRejected] = []
    """Edits of the crew file, in full: the timeline has a line of each, cut short."""
    async for event in log.iter_events(session):
        state.apply(event)
        if event.notable:
            timeline.append(event)
        if isinstance(event, ev.CrewUpdated | ev.CrewRejected):
            crew_changes.append(event)
        if isinstance(event, ev.AgentStarted) and event.agent:
            first_start.setdefault(event.agent, event.ts)
        if isinstance(event, ev.AgentStarted | ev.HostSelected | ev.HostWaiting | ev.Retrying) \
                and event.agent and event.host:
            hosts.setdefault(event.agent, {})[event.host] = None
        if isinstance(event, ev.LogRecovered):
            stuck.append(event.stuck_for)
        if isinstance(event, ev.MessageSent):
            sent[event.from_] = sent.get(event.from_, 0) + 1

    start = state.started_at or 0.0
    end = state.ended_at or state.last_ts or start
    out.write(f"# Report: session {session} ({state.crew})\n\n")
    out.write(f"Started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(start))}, "
              f"ran {_span(end - start)}; outcome: **{state.outcome or 'not finished'}**. "
              f"{state.events} events.\n\n")
    if stuck or state.log_stuck is not None:
        still = f" It still refused them at the end: {one_line(state.log_stuck, 200)}." \
            if state.log_stuck is not None else ""
        out.write(f"The event log refused writes {len(stuck)} time(s), {_span(sum(stuck))} in "
                  f"all; the agents were paused meanwhile.{still}\n\n")

    out.write("## Agents\n\n| agent | outcome | duration | tokens | tok/s | retries | stalls "
              "| interventions | waited for hosts | hosts |\n"
              "|---|---|---|---|---|---|---|---|---|---|\n")
    for agent in state.agents.values():
        began = first_start.get(agent.name)
        finished = agent.ended_at or (state.last_ts if began is not None else None)
        duration = _span(finished - began) if began is not None and finished else "–"
        waited = agent.waited
        if agent.waiting_since is not None and agent.status is AgentStatus.WAITING_HOST:
            # still waiting when the log ends
            waited += max(0.0, (state.last_ts or agent.waiting_since) - agent.waiting_since)
        used = ", ".join(host_name(host) for host in hosts.get(agent.name, {agent.host: None}))
        out.write(f"| {agent.name} | {agent.status} | {duration} | {agent.tokens} | "
                  f"{_rate(agent)} | {agent.retries} | {agent.stalls} | "
                  f"{agent.interventions} | {_span(waited) if waited else '–'} | "
                  f"{_cell(used, 120)} |\n")
    for agent in state.agents.values():
        out.write(f"\n### {agent.name}\n\n")
        if agent.error:
            out.write(f"Error: {one_line(agent.error, 300)}\n\n")
        text = agent.output if agent.output is not None else agent.partial
        lines = [line for line in text.splitlines() if line.strip()][:OUTPUT_LINES]
        if not lines:
            out.write("No output.\n")
            continue
        label = "Output" if agent.output is not None else "Output so far (cut off)"
        config: dict[str, Any] = next(
            (a for a in state.config.get("agents", []) if a["name"] == agent.name), {})
        unchecked = (" (not verified: it has no checks)" if not (config.get("format")
                     or config.get("checks")) else " (not verified: it did not reach its checks)")
        checked = (unchecked if agent.verified is None else
                   " (verified: it passed its checks)" if agent.verified else
                   " (not verified: it failed its checks)")
        out.write(f"{label}{checked}, first lines:\n\n")
        for line in lines:
            out.write(f"> {one_line(line, 200)}\n")

    if state.agents and any(a.tool_calls for a in state.agents.values()):
        out.write("\n## Tools\n\n| agent | calls | messages sent | wake-ups |\n|---|---|---|---|\n")
        for agent in state.agents.values():
            out.write(f"| {agent.name} | {agent.tool_calls} | {sent.get(agent.name, 0)} | "
                      f"{agent.wakeups} |\n")

    if crew_changes:
        out.write("\n## Crew file changes\n\n")
        for change in crew_changes:
            at = f"{_clock(change.ts)} (+{_span(change.ts - start)})"
            if isinstance(change, ev.CrewRejected):
                out.write(f"- {at}: rejected, the crew went on unchanged:\n")
                lines = change.error.splitlines()
            elif change.diff:
                out.write(f"- {at}: changed (`+` added, `~` applied, `!` ignored):\n")
                lines = change.diff
            else:
                out.write(f"- {at}: valid again; the crew was as before\n")
                lines = []
            for line in lines:
                out.write(f"  - `{one_line(line, 200).replace('`', chr(39))}`\n")

    out.write("\n## Timeline\n\n| time | +elapsed | agent | event |\n|---|---|---|---|\n")
    for event in timeline:
        out.write(f"| {_clock(event.ts)} | {_span(event.ts - start)} | {event.agent or '—'} | "
                  f"{_cell(describe(event), 120)} |\n")

    out.write("\n## Final board\n\n")
    if not state.board:
        out.write("Empty.\n")
    else:
        out.write("| key | value | by | version |\n|---|---|---|---|\n")
        for key, entry in state.board.items():
            value = entry.value if isinstance(entry.value, str) else json.dumps(entry.value)
            out.write(f"| `{key}` | {_cell(value)} | {entry.by} | {entry.version} |\n")
    return state
