"""The morning report: what each agent did, what happened when, and the final board.

Derived from the log alone (one pass, flat memory), so it can be written for any session, even
one whose process was killed. Names, errors, output and board entries are untrusted: each is
cut to one sanitised line where it is written, and the stream itself is sanitised as well.
"""

from __future__ import annotations

import json
import time
from typing import Any, TextIO

from cockpit.core import events as ev
from cockpit.core.describe import describe, host_name, resumed_line, status_text
from cockpit.core.eventlog import EventLog
from cockpit.core.state import AgentState, AgentStatus, SessionState
from cockpit.core.text import one_line, safe_stream

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


def _rate(agent: AgentState, end: float | None) -> str:
    rate = agent.rate(end)
    return f"{rate:.1f}" if rate is not None else "–"


Answers = list[tuple[str, str]]
"""An agent's turns as the report tells them: ("answer", text), ("follow-up", instruction),
("woken", sender), in order, since its last (re)start."""


def _note_answer(answers: dict[str, Answers], event: ev.BaseEvent) -> None:
    if event.agent is None:
        return
    match event:
        case ev.AgentStarted():
            answers[event.agent] = []
        case ev.AgentFinished():
            answers.setdefault(event.agent, []).append(("answer", event.output))
        case ev.AgentRedirected() if event.follow_up:
            answers.setdefault(event.agent, []).append(("follow-up", event.instruction))
        case ev.AgentWoken():
            answers.setdefault(event.agent, []).append(("woken", event.by))


def _quote(out: TextIO, text: str) -> bool:
    """The first lines of `text`, quoted; False if it has none."""
    lines = [line for line in text.splitlines() if line.strip()][:OUTPUT_LINES]
    for line in lines:
        out.write(f"> {one_line(line, 200)}\n")
    return bool(lines)


def _write_answers(out: TextIO, agent: AgentState, answers: Answers, checked: str) -> None:
    """Each answer of an agent that was asked follow-ups (or woken): answer 1, the
    instruction, answer 2... The last one carries its check; one under way is cut off."""
    number = 0
    for index, (kind, text) in enumerate(answers):
        gap = "\n" if index else ""  # the heading's blank line is the first one's
        if kind == "follow-up":
            out.write(f"{gap}Follow-up: {one_line(text, 300)}\n")
            continue
        if kind == "woken":
            out.write(f"{gap}Woken by a message from {one_line(text, 60)}\n")
            continue
        number += 1
        last = index == len(answers) - 1 and agent.status is AgentStatus.FINISHED
        out.write(f"{gap}Answer {number}{checked if last else ''}, first lines:\n\n")
        if not _quote(out, text):
            out.write("(empty)\n")
    if agent.status is not AgentStatus.FINISHED:
        out.write(f"{chr(10) if answers else ''}Answer {number + 1} so far (cut off):\n\n")
        if not _quote(out, agent.partial):
            out.write("(nothing yet)\n")


async def write_report(log: EventLog, session: str, out: TextIO) -> SessionState:
    """Write the Markdown report of `session`; returns the folded state it was built from."""
    out = safe_stream(out)
    state = SessionState()
    timeline: list[ev.BaseEvent] = []
    first_start: dict[str, float] = {}
    hosts: dict[str, dict[str, None]] = {}
    """Per agent, the hosts its requests went to, in the order first used."""
    stuck: list[float] = []
    sent: dict[str, int] = {}
    crew_changes: list[ev.CrewUpdated | ev.CrewRejected] = []
    """Edits of the crew file, in full: the timeline has a line of each, cut short."""
    resumes: list[str] = []
    """Where each earlier run stopped and the session was resumed."""
    answers: dict[str, Answers] = {}
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
        if isinstance(event, ev.SessionResumed) and (line := resumed_line(event)):
            resumes.append(line)
        _note_answer(answers, event)

    start = state.started_at or 0.0
    end = state.ended_at or state.last_ts or start
    out.write(f"# Report: session {_cell(session, 80)} ({_cell(state.crew, 200)})\n\n")
    out.write(f"Started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(start))}, "
              f"ran {_span(end - start)}; outcome: **{state.outcome or 'not finished'}**. "
              f"{state.events} events.\n\n")
    for line in resumes:
        out.write(f"── {line} ──\n\n")
    if stuck or state.log_stuck is not None:
        still = f" It still refused them at the end: {one_line(state.log_stuck, 200)}." \
            if state.log_stuck is not None else ""
        out.write(f"The event log refused writes {len(stuck)} time(s), {_span(sum(stuck))} in "
                  f"all; the agents were paused meanwhile.{still}\n\n")

    out.write("## Agents\n\n| agent | outcome | duration | tokens | tok/s | retries | stalls "
              "| interventions | waited for hosts | hosts |\n"
              "|---|---|---|---|---|---|---|---|---|---|\n")
    for agent in state.agents.values():
        # Worked time: paused, queued and crashed time excluded, up to where the log ends.
        duration = _span(agent.elapsed(state.last_ts)) if agent.started_at is not None \
            else "–"
        waited = agent.waited
        if agent.waiting_since is not None and agent.status is AgentStatus.WAITING_HOST:
            # still waiting when the log ends
            waited += max(0.0, (state.last_ts or agent.waiting_since) - agent.waiting_since)
        used = ", ".join(host_name(host) for host in hosts.get(agent.name, {agent.host: None}))
        out.write(f"| {_cell(agent.name)} | {status_text(agent)} | {duration} | {agent.tokens} | "
                  f"{_rate(agent, state.last_ts)} | {agent.retries} | {agent.stalls} | "
                  f"{agent.interventions} | {_span(waited) if waited else '–'} | "
                  f"{_cell(used, 120)} |\n")
    for agent in state.agents.values():
        out.write(f"\n### {one_line(agent.name, 80)}\n\n")
        if agent.error:
            out.write(f"Error: {one_line(agent.error, 300)}\n\n")
        config: dict[str, Any] = next(
            (a for a in state.config.get("agents", []) if a["name"] == agent.name), {})
        unchecked = (" (not verified: it has no checks)" if not (config.get("format")
                     or config.get("checks")) else " (not verified: it did not reach its checks)")
        checked = (unchecked if agent.verified is None else
                   " (verified: it passed its checks)" if agent.verified else
                   " (not verified: it failed its checks)")
        turns = answers.get(agent.name, [])
        under_way = agent.status is not AgentStatus.FINISHED
        if sum(kind == "answer" for kind, _ in turns) + under_way > 1:
            _write_answers(out, agent, turns, checked)  # follow-ups: each answer in turn
            continue
        text = agent.output if agent.output is not None else agent.partial
        lines = [line for line in text.splitlines() if line.strip()][:OUTPUT_LINES]
        if not lines:
            out.write("No output.\n")
            continue
        label = "Output" if agent.output is not None else "Output so far (cut off)"
        out.write(f"{label}{checked}, first lines:\n\n")
        for line in lines:
            out.write(f"> {one_line(line, 200)}\n")

    if state.agents and any(a.tool_calls for a in state.agents.values()):
        out.write("\n## Tools\n\n| agent | calls | messages sent | wake-ups |\n|---|---|---|---|\n")
        for agent in state.agents.values():
            out.write(f"| {_cell(agent.name)} | {agent.tool_calls} | {sent.get(agent.name, 0)} | "
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
        out.write(f"| {_clock(event.ts)} | {_span(event.ts - start)} | "
                  f"{_cell(event.agent or '—')} | "
                  f"{_cell(describe(event), 120)} |\n")

    out.write("\n## Final board\n\n")
    if not state.board:
        out.write("Empty.\n")
    else:
        out.write("| key | value | by | version |\n|---|---|---|---|\n")
        for key, entry in state.board.items():
            value = entry.value if isinstance(entry.value, str) else json.dumps(entry.value)
            key_cell = _cell(key, 80).replace("`", "'")
            out.write(f"| `{key_cell}` | {_cell(value)} | {_cell(entry.by, 40)} | "
                      f"{entry.version} |\n")
    return state
