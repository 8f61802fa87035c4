"""`cockpit status`: where a session stands, read from its log (any shell, any time).

The log is the truth and a running session's writer commits within a frame, so the fold of
the log is the session's state; nothing is asked of the process that runs it. One record per
agent (status, tokens, tok/s, host, calls waiting for approval), as a table or as JSON.
"""

from __future__ import annotations

import time
from typing import Any

from cockpit.core.describe import host_name
from cockpit.core.describe import status_text as agent_status
from cockpit.core.logreader import SessionRow
from cockpit.core.resume import outcome_of
from cockpit.core.state import SessionState
from cockpit.core.text import one_line, table


def status_record(row: SessionRow, state: SessionState) -> dict[str, Any]:
    """The session as `status --json` prints it."""
    now = time.time()
    waiting: dict[str, list[dict[str, Any]]] = {}
    for pending in state.approvals.values():
        waiting.setdefault(pending.agent, []).append({
            "call_id": pending.call_id, "tool": pending.tool, "arguments": pending.arguments,
            "waited": round(now - pending.requested_at, 1)})
    agents = []
    outcome = outcome_of(row)
    live = outcome == "running"
    for agent in state.agents.values():
        rate = agent.rate(now if live else state.last_ts)  # a crash's gap does not count
        agents.append({
            "name": agent.name, "status": str(agent.status), "status_text": agent_status(agent),
            "done_reason": agent.done_reason, "model": agent.model,
            "host": agent.host, "tokens": agent.tokens,
            "tok_s": round(rate, 1) if rate is not None else None,
            "turns": agent.turns, "tool_calls": agent.tool_calls, "retries": agent.retries,
            "error": agent.error, "awaiting_approval": waiting.get(agent.name, []),
        })
    return {"session": row.id, "crew": row.crew, "outcome": outcome,
            "pid": row.pid, "started_ts": row.started_at, "events": state.events,
            "log_stuck": state.log_stuck, "agents": agents}


def status_text(record: dict[str, Any]) -> str:
    """The same, for people: a line for the session, a row per agent, then what waits."""
    outcome = record["outcome"]
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record["started_ts"]))
    running = f" (process {record['pid']})" if outcome == "running" else ""
    lines = [f"session {record['session']} · crew {one_line(record['crew'], 60)} · "
             f"{outcome}{running} · started {started} · {record['events']} events"]
    if record["log_stuck"]:
        lines.append(f"LOG STUCK: {one_line(record['log_stuck'], 160)}")
    lines += table(["agent", "status", "tokens", "tok/s", "calls", "host"],
                   [[a["name"], a["status_text"], str(a["tokens"]),
                     "–" if a["tok_s"] is None else f"{a['tok_s']:.1f}", str(a["tool_calls"]),
                     host_name(a["host"], 40)] for a in record["agents"]])
    for agent in record["agents"]:
        if agent["error"]:
            lines.append(f"{agent['name']}: {one_line(agent['error'], 160)}")
        for call in agent["awaiting_approval"]:
            lines.append(f"{agent['name']}: {call['call_id']} waits for approval "
                         f"({call['waited']:.0f} s): {one_line(call['tool'], 60)}")
    return "\n".join(lines)
