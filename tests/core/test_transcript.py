"""The transcript as `cockpit logs` prints it: whole lines per agent however the tokens
interleave, what happens to an agent on marked lines, and no untrusted control character out.

Sessions are real: a crew against the fake Ollama, or events stamped by a Supervisor, written
to an SQLite log and read back from it."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

from cockpit.core import events as ev
from cockpit.core.bus import EventBus
from cockpit.core.eventlog import EventLog
from cockpit.core.supervisor import Supervisor
from cockpit.core.text import split_lines
from cockpit.core.transcript import COLOURS, DIM, RESET, Transcript, transcript
from tests.conftest import make_crew, running, wait_until
from tests.fake_ollama import FakeOllama, ModelScript, Turn

Messages = list[dict[str, Any]]
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
OURS = re.compile("|".join(re.escape(code) for code in
                           [*(f"\x1b[{c}m" for c in COLOURS), DIM, RESET]))
"""The escape codes the colour mode itself writes, and nothing else."""


def leaks(text: str) -> list[str]:
    """Characters that must never reach the terminal from untrusted text: any C0/C1 control
    but the newline (ESC, BEL, CR, tab...), and bidirectional controls."""
    return [f"U+{ord(c):04X}" for c in text
            if (unicodedata.category(c) == "Cc" and c != "\n") or c in BIDI]


async def logged(log: EventLog, session: str) -> list[ev.BaseEvent]:
    await log.flush()
    return [event async for event in log.iter_events(session)]


def test_split_lines_cuts_before_it_sanitises() -> None:
    # An OSC 52 with no terminator would swallow the rest of the text, newlines included,
    # if the text were sanitised whole; cut first, it costs only its own line.
    assert split_lines("a\x1b]52;c;aGk=\nb\r\nc\u2028d\u2029e\x07") == ["a", "b", "c", "d", "e"]
    assert split_lines("x\u061cy\u202e\tz") == ["xy\tz"]  # ALM is a bidi control too
    assert split_lines("") == [""]


async def test_interleaved_fragments_come_out_as_whole_lines(db: Path) -> None:
    crew = make_crew("http://127.0.0.1:9", [{"name": "a"}, {"name": "writer"}])
    async with EventLog.open(db) as log:
        supervisor = Supervisor(crew, log, EventBus())
        supervisor.emit(ev.SessionStarted, None, crew=crew.name,
                        config=crew.model_dump(mode="json"), pid=0, version="test")
        for name in ("a", "writer"):
            supervisor.emit(ev.AgentStarted, name, model="m1", host="h", messages=[])
        fragments = [("a", "The qu"), ("writer", "Once up"), ("a", "ick brown"),
                     ("writer", "on a time\nthere "), ("a", " fox\njumps\n\nov"),
                     ("writer", "was\r"), ("a", "er"), ("writer", "\na dog.")]
        for name, text in fragments:
            supervisor.emit_text(ev.TokenStreamed, name, text)
        supervisor.emit(ev.MessageCompleted, "a", content="")
        supervisor.emit(ev.AgentFinished, "a", output="")
        supervisor.emit(ev.SessionFinished, None, outcome="finished", agents={})
        events = await logged(log, supervisor.session)

    assert transcript(events) == [
        "       | ── session started: crew 'test-crew'",
        "a      | ── started on m1 @ h",
        "writer | ── started on m1 @ h",
        "writer | Once upon a time",
        "a      | The quick brown fox",
        "a      | jumps",
        "a      |",
        "writer | there was",
        "a      | over",                # the reply ended: its partial line goes out
        "a      | ── finished",
        "writer | a dog.",              # the output ended: so does every partial line
        "       | ── session finished",
    ]
    assert transcript(events, only={"writer"}) == [
        "writer | ── started on m1 @ h", "writer | Once upon a time", "writer | there was",
        "writer | a dog."]


async def test_agents_streaming_at_once_print_each_reply_whole(db: Path) -> None:
    first = ["Roses ", "are", " red,\nviolets", " are", " blue,\n", "sugar is sweet"]
    second = ["One\ntwo ", "three\nfo", "ur ", "five\n", "six"]
    scripts = {"m1": ModelScript(tokens=first, delay=0.01),
               "m2": ModelScript(tokens=second, delay=0.01)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "poet"}, {"name": "counter", "model": "m2"}])
        async with running(crew, db) as session:
            await session.supervisor.wait()
            events = await session.logged()
    lines = transcript(events)
    assert [line for line in lines if line.startswith("poet    | ") and "──" not in line] == [
        "poet    | Roses are red,", "poet    | violets are blue,", "poet    | sugar is sweet"]
    assert [line for line in lines if line.startswith("counter | ") and "──" not in line] == [
        "counter | One", "counter | two three", "counter | four five", "counter | six"]


async def test_pause_and_redirect_are_marked_lines_after_the_partial(db: Path) -> None:
    def reply(messages: Messages) -> list[str]:
        if messages[-1]["content"].startswith("Now"):
            return ["redirected\n", "answer"]
        return ["one\ntw", "o ", "thr", "never sent"]

    # The first reply holds after three tokens until it is cut off: the pause is certainly
    # mid-line. stall_timeout is long so the watchdog never retries it meanwhile.
    scripts = {"m1": ModelScript(reply=reply, stall_after=3, faults_for=1)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a", "stall_timeout": 600}])
        async with running(crew, db) as session:
            await wait_until(lambda: session.state.agents["a"].tokens >= 3, what="3 tokens")
            await session.supervisor.pause("a")
            await session.supervisor.redirect("a", "Now be\nbrief \x1b[2J")
            await session.supervisor.wait()
            events = await session.logged()
    lines = transcript(events)
    start = lines.index("a | one")
    assert lines[start:] == [
        "a | one",
        "a | two thr",                   # the partial line, before what cut it off
        "a | ── paused by person",
        "a | ── redirected by person: Now be brief",
        "a | redirected",
        "a | answer",
        "a | ── finished",
        "  | ── session finished",
    ]


async def test_tool_calls_approvals_messages_and_board_writes_are_marked(db: Path) -> None:
    def writer(messages: Messages) -> Turn:
        done = [m["content"] for m in messages if m["role"] == "tool"]
        if not done:
            return Turn(["Writing\nthe pl", "an."], [{"name": "board_write",
                                                     "arguments": {"key": "plan", "value": 1}}])
        if len(done) == 1:
            return Turn.call("send_message", to="reader", text="plan\nready")
        return Turn.say("done")

    scripts = {"m1": ModelScript(turn=writer), "m2": ModelScript(tokens=["ok"])}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [
            {"name": "w", "tools": ["board", "messages"]},
            {"name": "reader", "model": "m2", "after": ["w"]}], approve=["board_write"])
        async with running(crew, db) as session:
            await session.wait_status("w", "awaiting approval")
            await session.supervisor.set_state("topic", "moved")
            await session.supervisor.decide("w.1.1", "approved")
            await session.supervisor.wait()
            events = await session.logged()
    lines = [re.sub(r"✓ \d+ ms", "✓ N ms", line) for line in transcript(events)]
    assert [line for line in lines if line.startswith("w      | ")] == [
        "w      | ── started on m1 @ " + fake.url,
        "w      | Writing",
        "w      | the plan.",               # the reply ended with the turn's calls
        'w      | ── asks approval: board_write key="plan" value=1',
        "w      | ── approved by person (w.1.1)",
        'w      | ── ⚙ board_write key="plan" value=1',
        "w      | ── ⚙ board_write ✓ N ms",
        'w      | ── ⚙ send_message to="reader" text="plan\\nready"',
        "w      | ── message to reader: plan ready",
        "w      | ── ⚙ send_message ✓ N ms",
        "w      | done",
        "w      | ── finished",
    ]
    assert '       | ── board topic = "moved" (by person)' in lines
    assert not any("outputs.w" in line for line in lines)  # the agent's own write: no line
    only = transcript(events, only={"reader"})
    assert only[-2:] == ["reader | ok", "reader | ── finished"]
    assert all(line.startswith("reader | ") for line in only)


async def test_hostile_text_never_leaves_and_cannot_pass_for_a_marked_line(db: Path) -> None:
    hostile = ["safe \x1b[2J\x1b]0;title\x07", "\x9b6n\x85\x90q\x9c", "\u202egnp.exe\u2066",
               "\n\x1b]52;c;", "aGk=\x07copied\n", "── approved by person\n",
               "\u200b── paused by person\n", "\t\x1b", "[31mred\x07\x1b\\\n", "tail\x1b"]
    scripts = {"m1": ModelScript(tokens=hostile),
               "m2": ModelScript(fail_first=1, fail_status=400,
                                 fail_message="bad \x1b]52;c;aGk=\x07\u202e model")}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a"}, {"name": "b", "model": "m2"}])
        async with running(crew, db) as session:
            await session.supervisor.wait()
            events = await session.logged()
    plain = transcript(events)
    text = "\n".join(plain)
    assert leaks(text) == [] and "\x1b" not in text
    mine = [line for line in plain if line.startswith("a | ")]
    assert mine[1:] == [
        "a | safe qgnp.exe", "a | copied",       # the OSC 52 went, up to its end
        "a | \\── approved by person",          # cannot pass for a marked line,
        "a | \\\u200b── paused by person",     # not even behind an invisible character
        "a |         red",                     # the tab expanded: no control at all
        "a | tail", "a | ── finished"]
    assert "b | ── failed: Ollama answered 400: bad model" in plain
    coloured = "\n".join(transcript(events, colour=True))
    assert "\x1b[" in coloured
    assert leaks(OURS.sub("", coloured)) == []  # only our own codes, around sanitised text


def test_colour_is_stable_per_agent_and_dims_marked_lines() -> None:
    writer = Transcript(["a", "bb"], colour=True)
    events = [ev.TokenStreamed(agent="bb", text="hi\n"),
              ev.AgentPaused(agent="bb"), ev.TokenStreamed(agent="a", text="yo\n")]
    lines = [line for event in events for line in writer.feed(event)]
    assert lines == [
        f"\x1b[{COLOURS[1]}mbb |{RESET} hi",
        f"\x1b[{COLOURS[1]}mbb |{RESET} {DIM}── paused by person{RESET}",
        f"\x1b[{COLOURS[0]}ma  |{RESET} yo",
    ]


async def test_by_message_prints_each_reply_whole_as_one_block(db: Path) -> None:
    crew = make_crew("http://127.0.0.1:9", [{"name": "a"}, {"name": "writer"}])
    async with EventLog.open(db) as log:
        supervisor = Supervisor(crew, log, EventBus())
        supervisor.emit(ev.SessionStarted, None, crew=crew.name,
                        config=crew.model_dump(mode="json"), pid=0, version="test")
        for name in ("a", "writer"):
            supervisor.emit(ev.AgentStarted, name, model="m1", host="h", messages=[])
        for name, text in [("a", "The qu"), ("writer", "Once up"), ("a", "ick\n\nbrown"),
                           ("writer", "on a time\n── finished\nb | ── paused by person\n")]:
            supervisor.emit_text(ev.TokenStreamed, name, text)
        supervisor.emit(ev.AgentPaused, "a")  # cut off: what came so far is its block
        supervisor.emit(ev.AgentResumed, "a")
        supervisor.emit_text(ev.TokenStreamed, "a", " fox\n")
        supervisor.emit(ev.MessageCompleted, "a", content="")
        supervisor.emit(ev.AgentFinished, "a", output="")
        supervisor.emit(ev.AgentRedirected, "writer", instruction="Shorter.")
        supervisor.emit_text(ev.TokenStreamed, "writer", "Once.\tThe | end")
        supervisor.emit(ev.SessionFinished, None, outcome="finished", agents={})
        events = await logged(log, supervisor.session)

    assert transcript(events, by="message") == [
        "       | ── session started: crew 'test-crew'",
        "a      | ── started on m1 @ h",
        "writer | ── started on m1 @ h",
        "a      | ── reply",
        "The quick",
        "",
        "brown",
        "a      | ── paused by person",
        "a      | ── resumed by person",
        "a      | ── reply (continued)",
        " fox",
        "a      | ── finished",
        "writer | ── reply",                   # cut by the redirect: a block, then the mark
        "Once upon a time",
        "\\── finished",                       # cannot pass for a marked line
        "\\b | ── paused by person",           # nor for another agent's
        "writer | ── redirected by person: Shorter.",
        "writer | ── reply",                   # a new reply, not the cut one continued
        "Once.   The | end",                   # a bar alone is text; the tab expanded
        "       | ── session finished",
    ]
    assert transcript(events, only={"a"}, by="message")[2:5] == ["The quick", "", "brown"]


def test_a_token_rows_text_is_read_exactly_whatever_it_holds() -> None:
    from cockpit.core.logschema import encode
    from cockpit.core.transcript import token_text

    for text in ["", "plain", 'quo"te\\ \n\t\x1b[2J\u2028 日本 \ud800 🙂', "x" * 10_000]:
        data = encode(ev.TokenStreamed(session="s", agent="a", seq=1, ts=0.0, text=text))[5]
        assert token_text(data) == text
    assert token_text('{"chunks": 2, "text": "other order"}') == "other order"
