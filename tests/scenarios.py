"""Scripted conversations for the fake server (`python tests/fake_ollama.py --scenario NAME`):
whole crews that call tools, so a person can drive the TUI against them without Ollama.

`research` plays the three agents of examples/research.toml, telling them apart by their
system prompts: the researcher writes three findings, the writer lists them, drafts, writes the
draft and messages the reviewer, and the reviewer's first verdict misses a field of its schema,
so it gets a correction turn.
"""

from __future__ import annotations

import json
from typing import Any

from tests.fake_ollama import Turn

Messages = list[dict[str, Any]]
FINDINGS = [
    "Readers see a snapshot: each reads the WAL up to the commit that was last when it began.",
    "The one writer appends to the WAL; it never blocks readers, and readers never block it.",
    "A checkpoint copies WAL pages back into the database once no reader still needs them.",
]
DRAFT = ("SQLite's write-ahead log lets one writer and many readers work at once. The writer "
         "appends new pages to the WAL instead of changing the database in place, so a reader "
         "keeps seeing the snapshot it started with. Neither blocks the other. From time to "
         "time a checkpoint copies the pages back, once no reader needs the old ones.")


def _results(messages: Messages) -> list[str]:
    return [m.get("content") or "" for m in messages if m["role"] == "tool"]


def _role(messages: Messages) -> str:
    system = next((m.get("content") or "" for m in messages if m["role"] == "system"), "")
    return ("researcher" if "researcher" in system else "reviewer" if "review" in system
            else "writer")


def research(messages: Messages) -> Turn:
    done = _results(messages)
    role = _role(messages)
    if role == "researcher":
        if len(done) < len(FINDINGS):
            n = len(done)
            return Turn.call("board_write", key=f"findings.{n + 1}", value=FINDINGS[n])
        return Turn.say("Three findings are on the board under findings.1 to findings.3.")
    if role == "writer":
        steps = [Turn.call("board_list", prefix="findings"),
                 Turn.call("board_write", key="draft", value=DRAFT),
                 Turn.call("send_message", to="reviewer",
                           text="The draft is on the board under draft.")]
        return steps[len(done)] if len(done) < len(steps) else Turn.say(DRAFT)
    if not done:
        return Turn.call("board_read", key="draft")
    corrected = any("did not pass its checks" in (m.get("content") or "")
                    for m in messages if m["role"] == "user")
    verdict: dict[str, Any] = {"verdict": "accept"}
    if corrected:
        verdict["reasons"] = ["It is short and plain.", "Each claim matches a finding."]
    return Turn([json.dumps(verdict)])


SCENARIOS = {"research": research}
