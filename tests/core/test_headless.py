"""The headless printer: host outages print per host (start, a line a minute, end), the event
log refusing writes prints loudly, and untrusted text cannot reach the terminal raw."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from cockpit.core import events as ev
from cockpit.core.bus import EventBus
from cockpit.headless import HeadlessPrinter
from tests.conftest import wait_until

HOST = "http://10.0.0.7:11434"
OTHER = "http://10.0.0.8:11434"


@dataclass
class Printed:
    """A printer running on a real bus, fed stamped events."""

    bus: EventBus
    printer: HeadlessPrinter
    out: io.StringIO
    seq: int = 0

    def emit(self, cls: type[ev.BaseEvent], agent: str | None, **fields: Any) -> None:
        self.seq += 1
        fields.setdefault("ts", 1_800_000_000.0 + self.seq)
        self.bus.publish(cls(session="s1", agent=agent, seq=self.seq, **fields))

    @property
    def lines(self) -> list[str]:
        return self.out.getvalue().splitlines()

    def with_text(self, text: str) -> list[str]:
        return [line for line in self.lines if text in line]

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        await wait_until(predicate, 5.0, f"{what}; printed so far:\n{self.out.getvalue()}")

    async def printed(self, text: str, count: int = 1) -> None:
        await self.until(lambda: len(self.with_text(text)) >= count, f"{count} x {text!r}")


@pytest.fixture
async def printed() -> AsyncIterator[Printed]:
    bus = EventBus()
    out = io.StringIO()
    printer = HeadlessPrinter(bus.subscribe(), out)
    printer.still_every = 3600.0  # no minute lines unless a test asks for them
    running = asyncio.create_task(printer.run())
    feed = Printed(bus, printer, out)
    config = {"name": "crew", "model": "m1", "host": HOST,
              "agents": [{"name": "a"}, {"name": "b"}, {"name": "c", "host": OTHER}]}
    feed.emit(ev.SessionStarted, None, crew="crew", config=config, pid=1, version="0")
    for name in "abc":
        feed.emit(ev.AgentStarted, name, model="m1", host=OTHER if name == "c" else HOST,
                  messages=[])
    try:
        yield feed
    finally:
        bus.close()
        await asyncio.wait_for(running, 5)


async def test_a_host_outage_prints_once_per_host_however_many_agents_wait(
        printed: Printed) -> None:
    printed.emit(ev.HostWaiting, "a", host=HOST, reason="connection refused", limit=600.0)
    await printed.printed("waiting   for Ollama at 10.0.0.7:11434")
    printed.emit(ev.HostWaiting, "b", host=HOST, reason="connection refused", limit=600.0)
    printed.emit(ev.HostSelected, "c", host=HOST, reason="model loaded there")
    await printed.printed("host      10.0.0.7:11434 (model loaded there)")
    assert len(printed.with_text("waiting   for Ollama")) == 1  # b joined a's outage
    start = printed.with_text("waiting   for Ollama")[0]
    assert " a " in start and "connection refused (up to 10 min)" in start

    printed.emit(ev.HostBack, "b", host=HOST, waited=65.0)
    await printed.printed("answered again after 1 min 5 s")
    printed.emit(ev.HostBack, "a", host=HOST, waited=66.0)
    printed.emit(ev.AgentFinished, "a", output="done")
    await printed.printed("finished")
    assert len(printed.with_text("answered again")) == 1  # a's own host_back printed nothing
    back = printed.with_text("answered again")[0]
    assert back.split()[1] == "b" and "back      Ollama at 10.0.0.7:11434" in back
    assert printed.printer.waits == {}

    # A later outage of the same host is news again.
    printed.emit(ev.HostWaiting, "b", host=HOST, reason="connection reset", limit=60.0)
    await printed.printed("waiting   for Ollama", 2)
    assert "connection reset (up to 1 min)" in printed.with_text("waiting   for Ollama")[1]


async def test_agents_that_start_waiting_together_share_one_line(printed: Printed) -> None:
    printed.emit(ev.HostWaiting, "a", host=HOST, reason="refused", limit=30.0)
    printed.emit(ev.HostWaiting, "b", host=HOST, reason="refused", limit=30.0)
    printed.emit(ev.HostWaiting, "c", host=OTHER, reason="timed out", limit=30.0)
    await printed.printed("waiting   for Ollama at 10.0.0.8")
    together = printed.with_text("for Ollama at 10.0.0.7")
    assert len(together) == 1
    assert together[0].split()[1] == "session" and "(up to 30 s; agents a, b)" in together[0]
    alone = printed.with_text("for Ollama at 10.0.0.8")[0]
    assert alone.split()[1] == "c" and "agents" not in alone


async def test_a_line_a_minute_while_the_wait_lasts_even_with_no_events() -> None:
    now = [1_800_000_000.0]
    bus = EventBus()
    out = io.StringIO()
    printer = HeadlessPrinter(bus.subscribe(), out, clock=lambda: now[0])
    printer.still_every = 0.02  # a "minute" (in real time) that the printer sleeps for
    running = asyncio.create_task(printer.run())
    feed = Printed(bus, printer, out)
    try:
        config = {"name": "crew", "model": "m1", "host": HOST,
                  "agents": [{"name": "a"}, {"name": "b"}]}
        feed.emit(ev.SessionStarted, None, crew="crew", config=config, pid=1, version="0")
        feed.emit(ev.HostWaiting, "a", host=HOST, reason="refused", limit=600.0)
        feed.emit(ev.HostWaiting, "b", host=HOST, reason="refused", limit=600.0)
        await feed.printed("waiting   for Ollama")
        now[0] += 180  # three minutes later by the printer's clock; no event meanwhile
        await feed.printed("still     waiting for Ollama at 10.0.0.7:11434 (3 min; agents a, b)")
        feed.emit(ev.AgentFailed, "b", error="gave up")  # leaves the wait
        now[0] += 60
        await feed.printed("(4 min)")
        assert feed.with_text("(4 min)")[0].split()[1] == "a"
        feed.emit(ev.HostBack, "a", host=HOST, waited=245.0)
        await feed.printed("answered again after 4 min 5 s")
        assert printer.waits == {} and printer._next_due() is None  # no more minute lines
    finally:
        bus.close()
        await asyncio.wait_for(running, 5)
    stills = [line for line in out.getvalue().splitlines() if "still     waiting" in line]
    assert len(stills) == len(set(stills))  # one line per minute, not one per wake-up


async def test_an_agent_whose_wait_ends_otherwise_leaves_it_silently(printed: Printed) -> None:
    printed.emit(ev.HostWaiting, "a", host=HOST, reason="refused", limit=5.0)
    printed.emit(ev.AgentFailed, "a", error=f"cannot reach {HOST} after 5 s")
    await printed.printed("failed    cannot reach")
    assert len(printed.with_text("waiting   for Ollama")) == 1  # the start still printed first
    lines = printed.lines
    assert lines.index(printed.with_text("waiting   for")[0]) < lines.index(
        printed.with_text("failed")[0])
    assert printed.printer.waits == {}


async def test_the_log_refusing_writes_is_loud_and_its_recovery_too(printed: Printed) -> None:
    printed.emit(ev.LogStuck, None, cause="database is locked\x1b[2J")
    for name in "abc":
        printed.emit(ev.AgentPaused, name, by="log")
    await printed.printed("paused    by log", 3)
    stuck = printed.with_text("LOG STUCK")
    assert len(stuck) == 1 and stuck[0].split()[1] == "session"
    assert "LOG STUCK: database is locked — agents paused until the log accepts writes; " \
        "nothing is lost" in stuck[0]
    assert "\x1b" not in printed.out.getvalue()
    printed.emit(ev.LogRecovered, None, stuck_for=12.4)
    for name in "abc":
        printed.emit(ev.AgentResumed, name, by="log")
    await printed.printed("resumed   by log", 3)
    recovered = printed.with_text("writable again")
    assert len(recovered) == 1 and recovered[0].split()[1] == "session"
    assert "log       writable again after 12 s; agents resume" in recovered[0]


async def test_retries_name_their_host_and_reasons_are_one_clean_line(printed: Printed) -> None:
    printed.emit(ev.Retrying, "a", attempt=1, reason="HTTP 503\nbusy\x1b]0;pwned\x07", delay=0.5,
                 host=HOST)
    printed.emit(ev.HostWaiting, "b", host="http://evil\x1b[31m:1", reason="x\ny", limit=1.0)
    printed.emit(ev.AgentResumed, "c", by="resume")
    await printed.printed("resumed   by cockpit resume")
    retry = printed.with_text("retrying")[0]
    assert "(attempt 1, in 0.5 s, 10.0.0.7:11434): HTTP 503 busy" in retry
    text = printed.out.getvalue()
    assert "\x1b" not in text and "\x07" not in text
    assert "for Ollama at evil:1: x y (up to 1 s)" in text


async def test_a_call_waiting_for_approval_is_printed_then_reminded_each_minute() -> None:
    now = [1_800_000_000.0]
    bus = EventBus()
    out = io.StringIO()
    printer = HeadlessPrinter(bus.subscribe(), out, clock=lambda: now[0])
    printer.still_every = 0.02
    running = asyncio.create_task(printer.run())
    feed = Printed(bus, printer, out)
    try:
        config = {"name": "crew", "model": "m1", "host": HOST, "agents": [{"name": "a"}]}
        feed.emit(ev.SessionStarted, None, crew="crew", config=config, pid=1, version="0",
                  ts=now[0])
        feed.emit(ev.AgentStarted, "a", model="m1", host=HOST, messages=[], ts=now[0])
        feed.emit(ev.MessageCompleted, "a", content="", ts=now[0], tool_calls=[
            {"id": "a.1.1", "function": {"name": "board_write",
                                         "arguments": {"key": "k", "value": "\x1b]52;c;x\x07"}}}])
        feed.emit(ev.ApprovalRequested, "a", call_id="a.1.1", tool="board_write",
                  arguments={"key": "k", "value": "\x1b]52;c;x\x07"}, ts=now[0])
        await feed.printed("approval  a.1.1 waits: board_write")
        now[0] += 120
        await feed.printed("still     waiting for approval of a.1.1: board_write key=\"k\"")
        assert "(2 min;" in feed.with_text("still     waiting for approval")[0]
        feed.emit(ev.ApprovalDecided, "a", call_id="a.1.1", decision="approved", ts=now[0])
        await feed.printed("approved by person (a.1.1)")
        assert printer._next_due() is None  # nothing waits: no more reminders
    finally:
        bus.close()
        await asyncio.wait_for(running, 5)
    assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue()
