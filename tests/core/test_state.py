"""The reducer: tables of event lists and the state they fold to."""

from __future__ import annotations

from typing import Any

import pytest

from cockpit.core import events as ev
from cockpit.core.state import AgentStatus, fold

CONFIG = {"name": "c", "host": "http://h", "model": "m", "state": {"topic": "x"},
          "agents": [{"name": "a"}, {"name": "b", "after": ["a"], "model": "other"}]}


def events(*specs: tuple[type[ev.BaseEvent], str | None, dict[str, Any]]) -> list[ev.BaseEvent]:
    built: list[ev.BaseEvent] = [ev.SessionStarted(session="s", seq=1, ts=1.0, crew="c",
                                                   config=CONFIG, pid=1, version="t")]
    for seq, (kind, agent, fields) in enumerate(specs, start=2):
        built.append(kind(session="s", agent=agent, seq=seq, ts=float(seq), **fields))
    return built


START = (ev.AgentStarted, "a", {"model": "m", "host": "http://h",
                                "messages": [{"role": "user", "content": "go"}]})


def test_session_start_lays_out_agents_and_board() -> None:
    state = fold(events())
    assert list(state.agents) == ["a", "b"]
    assert state.agents["a"].status is AgentStatus.QUEUED
    assert state.agents["b"].status is AgentStatus.WAITING
    assert state.agents["b"].model == "other" and state.agents["a"].host == "http://h"
    assert state.board["topic"].value == "x" and state.board["topic"].by == "crew"


@pytest.mark.parametrize(("specs", "status", "partial", "messages"), [
    ([START], "queued", "", 1),
    ([START, (ev.TokenStreamed, "a", {"text": "he"}), (ev.TokenStreamed, "a", {"text": "llo"})],
     "streaming", "hello", 1),
    ([START, (ev.ThinkingStreamed, "a", {"text": "hmm"})], "thinking", "", 1),
    ([START, (ev.TokenStreamed, "a", {"text": "he"}), (ev.AgentPaused, "a", {})],
     "paused", "he", 1),
    ([START, (ev.TokenStreamed, "a", {"text": "he"}), (ev.AgentPaused, "a", {}),
      (ev.AgentResumed, "a", {})], "queued", "he", 1),
    ([START, (ev.TokenStreamed, "a", {"text": "he"}),
      (ev.AgentRedirected, "a", {"instruction": "other"})], "queued", "", 3),
    ([START, (ev.TokenStreamed, "a", {"text": "he"}),
      (ev.Retrying, "a", {"attempt": 1, "reason": "x", "delay": 1.0})], "retrying", "he", 1),
    ([START, (ev.Stalled, "a", {"seconds": 5.0})], "stalled", "", 1),
    ([START, (ev.TokenStreamed, "a", {"text": "hi"}),
      (ev.MessageCompleted, "a", {"content": "hi", "eval_count": 1}),
      (ev.AgentFinished, "a", {"output": "hi"})], "finished", "", 2),
    ([START, (ev.AgentFailed, "a", {"error": "404"})], "failed", "", 1),
    ([START, (ev.AgentStopped, "a", {})], "stopped", "", 1),
    ([START, (ev.AgentStopped, "a", {}), (ev.AgentRestarted, "a", {})], "queued", "", 1),
])
def test_agent_status_partial_and_conversation(
    specs: list[tuple[type[ev.BaseEvent], str, dict[str, Any]]], status: str, partial: str,
    messages: int,
) -> None:
    agent = fold(events(*specs)).agents["a"]
    assert agent.status == status
    assert agent.partial == partial
    assert len(agent.messages) == messages


def test_redirect_turns_the_partial_into_an_assistant_message() -> None:
    state = fold(events(START, (ev.TokenStreamed, "a", {"text": "half"}),
                        (ev.AgentRedirected, "a", {"instruction": "do y"})))
    assert state.agents["a"].messages[-2:] == [
        {"role": "assistant", "content": "half"}, {"role": "user", "content": "do y"}]
    assert state.agents["a"].interventions == 1


def test_the_partial_is_sent_back_as_the_last_assistant_message() -> None:
    agent = fold(events(START, (ev.ThinkingStreamed, "a", {"text": "t"}),
                        (ev.TokenStreamed, "a", {"text": "part"}))).agents["a"]
    assert agent.conversation()[-1] == {"role": "assistant", "content": "part", "thinking": "t"}
    assert agent.tokens == 2


def test_board_versions_and_authors() -> None:
    state = fold(events((ev.StateSet, None, {"key": "topic", "value": "y", "by": "person"}),
                        (ev.StateSet, None, {"key": "new", "value": [1], "by": "a"})))
    assert (state.board["topic"].value, state.board["topic"].version) == ("y", 2)
    assert state.board["topic"].by == "person" and state.board["new"].version == 1


def test_metrics_and_rate_come_from_ollama() -> None:
    state = fold(events(START, (ev.TokenStreamed, "a", {"text": "x"}),
                        (ev.MessageCompleted, "a", {"content": "x", "eval_count": 50,
                                                    "eval_duration": 2_000_000_000})))
    assert state.agents["a"].tokens_per_second == 25.0
    assert state.agents["a"].metrics["eval_count"] == 50


def test_session_end_and_seq_tracking() -> None:
    state = fold(events(START, (ev.SessionFinished, None,
                                {"outcome": "failed", "agents": {"a": "failed"}})))
    assert state.outcome == "failed" and state.last_seq == 3 and state.events == 3
