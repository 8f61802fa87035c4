"""Writing a logged session out: JSON Lines (the contract in DESIGN.md) or a Markdown transcript.

Both read the log page by page, so exporting a session of millions of events uses flat memory.
Both are safe to print: the JSON keeps the exact text but writes every control character, C1
control and bidi control as a `\\uXXXX` escape, and the Markdown is sanitised (`core.text`).
"""

from __future__ import annotations

import json
import time
from typing import TextIO

from cockpit.core import events as ev
from cockpit.core.describe import duration, host_name, intervention
from cockpit.core.eventlog import EventLog
from cockpit.core.state import AgentStatus, SessionState
from cockpit.core.text import one_line, safe_json, safe_stream, sanitize


async def export_jsonl(log: EventLog, session: str, out: TextIO) -> int:
    """One `{"id","session","agent","type","ts","data"}` object per line. Returns the count."""
    count = 0
    async for event in log.iter_events(session):
        out.write(safe_json(ev.export_record(event)))
        out.write("\n")
        count += 1
    return count


def _code(text: str) -> str:
    """One line of text inside single backticks: a backtick in it would end the code span."""
    return text.replace("`", "'")


def _fence(text: str) -> str:
    """A code fence longer than any backtick run inside `text`, so model output cannot break out."""
    longest = 0
    run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


async def export_markdown(log: EventLog, session: str, out: TextIO) -> int:
    """A readable transcript: each agent's conversation and interventions, then the board.
    Model output, errors, names and board entries are untrusted: each is sanitised (or cut to
    one line) here, and the stream sanitises whatever else is written."""
    out = safe_stream(out)
    state = SessionState()
    interventions: dict[str, list[str]] = {}
    session_notes: list[str] = []
    """Session-level notes: the event log refusing writes, and recovering."""
    hosts: dict[str, dict[str, None]] = {}
    """Per agent, the hosts its requests went to, in the order first used."""
    count = 0
    async for event in log.iter_events(session):
        state.apply(event)
        count += 1
        note = intervention(event)
        if note and event.agent and not isinstance(event, ev.AgentFailed):
            interventions.setdefault(event.agent, []).append(one_line(note, 1000))
        elif note and event.agent is None:
            session_notes.append(one_line(note, 1000))
        if isinstance(event, ev.AgentStarted | ev.HostSelected | ev.HostWaiting | ev.Retrying) \
                and event.agent and event.host:
            hosts.setdefault(event.agent, {})[event.host] = None
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.started_at or 0))
    out.write(f"# Session {one_line(session, 80)}: {one_line(state.crew, 200)}\n\n")
    out.write(f"Started {started}; outcome: {state.outcome or 'not finished'}.\n")
    for note in session_notes:
        out.write(f"\n> {note}\n")
    for agent in state.agents.values():
        out.write(f"\n## {one_line(agent.name, 80)} ({agent.status})\n\n")
        used = ", then ".join(host_name(h) for h in hosts.get(agent.name, {agent.host: None}))
        out.write(f"Model `{_code(one_line(agent.model, 120))}` on {used}.\n")
        waited = agent.waited
        if agent.waiting_since is not None and agent.status is AgentStatus.WAITING_HOST:
            waited += max(0.0, (state.last_ts or agent.waiting_since) - agent.waiting_since)
        if waited:
            out.write(f"Waited {duration(waited)} for unreachable Ollama hosts.\n")
        for note in interventions.get(agent.name, []):
            out.write(f"\n> {note}\n")
        for message in agent.conversation():
            body = sanitize(str(message.get("content", "")))
            fence = _fence(body)
            role = one_line(str(message["role"]), 40)
            out.write(f"\n**{role}**\n\n{fence}\n{body}\n{fence}\n")
        if agent.error:
            out.write(f"\n**error:** {one_line(agent.error, 2000)}\n")
    if state.board:
        out.write("\n## Board\n\n| key | value | by |\n|---|---|---|\n")
        for key, entry in state.board.items():
            value = json.dumps(entry.value, ensure_ascii=False)
            value = (value if len(value) <= 80 else value[:79] + "…").replace("|", r"\|")
            by = one_line(entry.by, 40).replace("|", r"\|")
            out.write(f"| `{_code(one_line(key, 80))}` | {one_line(value, 80)} | {by} |\n")
    return count
