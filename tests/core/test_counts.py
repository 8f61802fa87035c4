"""Honest numbers, folded from the log: elapsed time and tok/s leave out paused, queued and
crashed time, a restart counts afresh, and a reply cut off by `num_predict` says so. Event
lists with chosen timestamps, so every second is accounted for."""

from __future__ import annotations

import time
from typing import Any

import pytest

from cockpit.core import events as ev
from cockpit.core.describe import describe, intervention, status_text
from cockpit.core.state import AgentStatus, SessionState, fold

CONFIG = {"name": "c", "host": "http://h", "model": "m", "agents": [{"name": "a"}]}
OPENING = [{"role": "user", "content": "go"}]


class Log:
    """Events of one session, each at the time given."""

    def __init__(self) -> None:
        self.events: list[ev.BaseEvent] = [ev.SessionStarted(
            session="s", seq=1, ts=1.0, crew="c", config=CONFIG, pid=1, version="t")]

    def at(self, ts: float, kind: type[ev.BaseEvent], agent: str | None = "a",
           **fields: Any) -> Log:
        self.events.append(kind(session="s", agent=agent, seq=len(self.events) + 1, ts=ts,
                                **fields))
        return self

    def start(self, ts: float) -> Log:
        return self.at(ts, ev.AgentStarted, model="m", host="http://h", messages=OPENING)

    def tokens(self, *times: float) -> Log:
        for ts in times:
            self.at(ts, ev.TokenStreamed, text="x ")
        return self

    def finish(self, ts: float, done_reason: str = "stop") -> Log:
        return self.at(ts, ev.MessageCompleted, content="x", done_reason=done_reason) \
            .at(ts, ev.AgentFinished, output="x")

    def fold(self) -> SessionState:
        return fold(self.events)


def test_paused_and_queued_time_count_neither_in_elapsed_nor_in_the_rate() -> None:
    # queued 10-12 (the model loads), streams 12-15, paused 15-100, queued 100-102, streams
    # 102-104: 5 s of work in 94 s on the wall clock.
    log = Log().start(10).tokens(12, 14).at(15, ev.AgentPaused).at(100, ev.AgentResumed) \
        .tokens(102, 103)
    agent = log.fold().agents["a"]
    assert agent.elapsed(103.5) == pytest.approx(3 + 1.5)
    assert agent.rate(103.5) == pytest.approx(4 / 4.5)
    assert log.finish(104).fold().agents["a"].elapsed() == pytest.approx(5)
    finished = log.fold().agents["a"]
    assert finished.elapsed(10_000) == pytest.approx(5)  # ended: the clock has stopped
    assert finished.rate() == pytest.approx(4 / 5)  # no eval_duration from Ollama here


def test_paused_time_does_not_grow_while_the_pause_lasts() -> None:
    agent = Log().start(10).tokens(11, 13).at(14, ev.AgentPaused).fold().agents["a"]
    assert agent.status is AgentStatus.PAUSED
    assert agent.elapsed(14) == agent.elapsed(5_000) == pytest.approx(3)


def test_ollamas_eval_rate_wins_once_the_agent_has_ended() -> None:
    log = Log().start(1).tokens(2, 3) \
        .at(4, ev.MessageCompleted, content="x x", eval_count=10, eval_duration=2 * 10**9) \
        .at(4, ev.AgentFinished, output="x x")
    assert log.fold().agents["a"].rate() == pytest.approx(5.0)


def test_a_crash_is_the_gap_between_the_last_event_and_the_resume() -> None:
    log = Log().start(10).tokens(11, 13)  # the process dies after 13
    crashed = log.fold().agents["a"]
    assert crashed.elapsed(13) == pytest.approx(2)
    log.at(1_000, ev.SessionResumed, None, pid=2, stopped_at=13.0, previous="crashed")
    log.tokens(1_001, 1_002)
    agent = log.fold().agents["a"]
    assert agent.elapsed(1_002.5) == pytest.approx(2 + 2.5)
    assert agent.rate(1_002.5) == pytest.approx(4 / 4.5)
    assert log.finish(1_003).fold().agents["a"].elapsed() == pytest.approx(5)


def test_the_resume_says_when_the_run_stopped_even_to_a_tail_that_merged_tokens() -> None:
    # An attached viewer's tail merges a run of tokens into one event dated by its first
    # chunk: the streaming from 11 to 13 looks like one event at 11.
    log = Log().start(10).at(11, ev.TokenStreamed, text="x x x ", chunks=3) \
        .at(1_000, ev.SessionResumed, None, pid=2, stopped_at=13.0, previous="crashed")
    assert log.fold().agents["a"].elapsed(1_001) == pytest.approx(2 + 1)


def test_a_quit_stops_the_clocks_until_the_resume() -> None:
    log = Log().start(10).tokens(11, 13) \
        .at(14, ev.SessionFinished, None, outcome="interrupted", agents={"a": "streaming"})
    quit_ = log.fold().agents["a"]
    assert quit_.elapsed(14) == quit_.elapsed(9_000) == pytest.approx(3)  # 11-14
    log.at(9_000, ev.SessionResumed, None, pid=2, stopped_at=14.0, previous="interrupted")
    log.tokens(9_001).finish(9_002)
    assert log.fold().agents["a"].elapsed() == pytest.approx(3 + 2)


def test_a_restart_discards_the_counts_of_the_attempt_it_ends() -> None:
    log = Log().start(10).tokens(11, 12, 13) \
        .at(14, ev.Retrying, attempt=1, reason="500", delay=0.1) \
        .at(15, ev.Stalled, seconds=5.0).tokens(16) \
        .at(20, ev.AgentFailed, error="boom")
    failed = log.fold().agents["a"]
    assert (failed.tokens, failed.retries, failed.stalls) == (4, 1, 1)
    log.at(500, ev.AgentRestarted).start(500).tokens(501, 502)
    agent = log.fold().agents["a"]
    assert (agent.tokens, agent.retries, agent.stalls) == (2, 0, 0)
    assert agent.elapsed(503) == pytest.approx(2)
    assert agent.rate(503) == pytest.approx(2 / 2)
    assert agent.interventions == 1


def test_a_reply_cut_off_by_num_predict_finishes_with_its_reason() -> None:
    assert status_text(Log().start(1).tokens(2).finish(3, "length").fold().agents["a"]) \
        == "finished (length)"
    assert status_text(Log().start(1).tokens(2).finish(3).fold().agents["a"]) == "finished"
    # the reason is the last answer's: a follow-up that ends normally is just finished
    log = Log().start(1).tokens(2).finish(3, "length") \
        .at(4, ev.AgentRedirected, instruction="again", follow_up=True)
    assert status_text(log.fold().agents["a"]) == "queued"
    assert status_text(log.tokens(5).finish(6).fold().agents["a"]) == "finished"


def test_a_follow_up_reopens_the_session_and_continues_the_conversation() -> None:
    log = Log().start(1).tokens(2).finish(3) \
        .at(4, ev.SessionFinished, None, outcome="finished", agents={"a": "finished"}) \
        .at(5, ev.AgentRedirected, instruction="And then?", follow_up=True)
    state = log.fold()
    agent = state.agents["a"]
    assert state.outcome is None and state.ended_at is None
    assert agent.status is AgentStatus.QUEUED and agent.ended_at is None
    assert agent.messages == [*OPENING, {"role": "assistant", "content": "x"},
                              {"role": "user", "content": "And then?"}]
    assert agent.follow_ups == 1 and agent.output == "x"  # the board's answer until the next
    state = log.tokens(6, 7).finish(8).fold()
    assert state.agents["a"].status is AgentStatus.FINISHED
    assert state.agents["a"].tokens == 3  # the same conversation: counted on
    assert state.agents["a"].elapsed() == pytest.approx(1 + 2)  # finished time is not work


@pytest.mark.parametrize(("previous", "word"), [
    ("crashed", "crashed"), ("interrupted", "interrupted"), ("failed", "failed")])
def test_the_resume_line_says_where_the_previous_run_stopped(previous: str, word: str) -> None:
    stopped = time.mktime((2026, 11, 21, 3, 12, 30, 0, 0, -1))
    resumed = time.mktime((2026, 11, 21, 7, 40, 0, 0, 0, -1))
    event = ev.SessionResumed(session="s", seq=9, ts=resumed, pid=2, stopped_at=stopped,
                              previous=previous)
    assert intervention(event) == f"{word} at 03:12, resumed at 07:40"
    assert describe(event) == f"session resumed (process 2): {word} at 03:12, resumed at 07:40"
    next_day = event.model_copy(update={"ts": resumed + 86_400})
    assert intervention(next_day) == f"{word} at 03:12, resumed at 2026-11-22 07:40"
    old = ev.SessionResumed(session="s", seq=9, ts=resumed, pid=2)  # logged before it was said
    assert intervention(old) is None and describe(old).startswith("session resumed")


def test_a_follow_up_is_worded_as_one() -> None:
    follow_up = ev.AgentRedirected(agent="a", instruction="More.", follow_up=True)
    assert intervention(follow_up) == "follow-up by person: More."
    assert intervention(follow_up.model_copy(update={"follow_up": False})) == \
        "redirected by person: More."
