"""The session owner as its own process, and its viewers (issue 11): `cockpit run --detach`,
`cockpit attach` in real pseudo-terminals, viewers that leave, die or come back, and an owner
that dies under its viewer. The fake Ollama runs on a thread of this process; its streams are
paced by gates the tests open, so "while nobody watched" is a fact, not a race. Everything is
checked against the SQLite log, read read-only as another process would.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from cockpit.core import events as ev
from tests.conftest import PATIENCE
from tests.fake_ollama import FakeOllamaThread, ModelScript
from tests.owners import (
    Gate,
    Viewer,
    alive,
    assert_complete,
    cockpit,
    cockpit_env,
    crew_toml,
    detach,
    events,
    owner_pids,
    owners,
    replies,
    session_outcome,
    text_of,
    wait_for,
    wait_gone,
)

pytestmark = pytest.mark.slow


def gated(tokens: dict[str, list[str]], gate: Gate,
          delay: float = 0.01) -> dict[str, ModelScript]:
    """Each agent `x` its own model `mx`, streaming its reply as far as `gate` lets it."""
    return {f"m{name}": ModelScript(tokens=reply, delay=delay, gate=gate)
            for name, reply in tokens.items()}


def kill_owner_under(viewer: Viewer, db: Path) -> int:
    """SIGKILL the session's owner and wait for the viewer to say it died; its pid."""
    (pid,) = owner_pids(db)
    mark = viewer.mark()
    os.kill(pid, signal.SIGKILL)
    viewer.wait_for_text("has died", since=mark)
    return pid


def logged_through(db: Path, tokens: dict[str, list[str]], count: int) -> bool:
    """Each agent's first `count` tokens, and nothing more, are in the log."""
    log = events(db)
    return all(text_of(log, name) == "".join(reply[:count]) for name, reply in tokens.items())


def test_detach_and_attach_while_four_agents_stream_loses_and_repeats_nothing(
        tmp_path: Path) -> None:
    names = ["a", "b", "c", "d"]
    tokens = replies(names, 60)
    gate = Gate(10)
    scripts = gated(tokens, gate)
    crew, db, env = tmp_path / "crew.toml", tmp_path / "log.db", cockpit_env(tmp_path)
    with FakeOllamaThread(scripts) as fake, owners(db):
        crew.write_text(crew_toml(fake.url, names))
        session = detach(crew, db, env)
        wait_for(lambda: logged_through(db, tokens, 10), "10 tokens of each agent in the log")

        first = Viewer(["attach", session, "--db", db], tmp_path, env)
        try:
            for name in names:
                first.wait_for_text(tokens[name][9].strip())
            first.press("q", expect="Detach")
            first.press("d")
            assert first.wait_exit() == 0
            assert b"detached; session" in first.snapshot()
        finally:
            first.close()
        gone = events(db)[-1].id  # the last event a viewer could have been sent live

        gate.limit = 30  # streamed while nobody is attached
        wait_for(lambda: logged_through(db, tokens, 30), "30 tokens of each agent in the log")
        unseen = events(db, after=gone)
        for name in names:
            assert text_of(unseen, name) == "".join(tokens[name][10:30])

        second = Viewer(["attach", session, "--db", db], tmp_path, env)
        try:
            for name in names:  # the last token each agent streamed while nobody watched
                second.wait_for_text(tokens[name][29].strip())
            gate.open()
            second.wait_for_text(f"{len(names)} finished")
            assert session_outcome(db) == "finished"
            (pid,) = owner_pids(db)
            assert alive(pid)  # it stays while a viewer is attached
            second.press("q")
            assert second.wait_exit() == 0
        finally:
            second.close()
        wait_gone(pid)
    assert_complete(db, tokens)


def test_two_viewers_share_a_session_and_one_killed_costs_the_crew_nothing(
        tmp_path: Path) -> None:
    names = ["a", "b", "c"]
    tokens = replies(names, 80)
    gate = Gate(10)
    scripts = gated(tokens, gate)
    crew, db, env = tmp_path / "crew.toml", tmp_path / "log.db", cockpit_env(tmp_path)
    with FakeOllamaThread(scripts) as fake, owners(db):
        crew.write_text(crew_toml(fake.url, names))
        session = detach(crew, db, env)
        viewers = [Viewer(["attach", session, "--db", db], tmp_path, env) for _ in range(2)]
        one, other = viewers
        try:
            for viewer in viewers:  # the same agents, streaming, on both screens
                viewer.wait_for_text("streaming")
                for name in names:
                    viewer.wait_for_text(tokens[name][9].strip())

            mark = other.mark()
            one.press("1")
            one.press("p", expect="paused")
            other.wait_for_text("paused", since=mark)  # a key in one viewer, seen in both
            [paused] = [e for e in events(db) if e.type == "agent_paused"]
            assert (paused.agent, paused.data["by"]) == ("a", "person")

            gate.limit = 40
            wait_for(lambda: len(text_of(events(db), "b")) > len("".join(tokens["b"][:10])),
                     "b to stream on")
            one.process.send_signal(signal.SIGKILL)  # mid-stream
            assert one.wait_exit() == -signal.SIGKILL
            killed = events(db)[-1].id
            wait_for(lambda: logged_through(db, {n: tokens[n] for n in names[1:]}, 40),
                     "b and c to stream on without the killed viewer")
            assert any(e.type == "token" for e in events(db, after=killed))

            mark = other.mark()
            other.press("1")
            other.press("p", expect=tokens["a"][39].strip())  # the other one still commands
            [resumed] = [e for e in events(db) if e.type == "agent_resumed"]
            assert (resumed.agent, resumed.data["by"]) == ("a", "person")
            assert all(e.type != "session_finished" for e in events(db))

            gate.open()
            other.wait_for_text(f"{len(names)} finished")
            other.press("q")
            assert other.wait_exit() == 0
        finally:
            for viewer in viewers:
                viewer.close()
        for pid in owner_pids(db):
            wait_gone(pid)
    assert_complete(db, tokens)


def test_an_owner_killed_under_its_viewer_is_told_there_and_resume_completes_it(
        tmp_path: Path) -> None:
    names = ["a", "b"]
    tokens = replies(names, 50)
    gate = Gate(12)
    scripts = gated(tokens, gate)
    crew, db, env = tmp_path / "crew.toml", tmp_path / "log.db", cockpit_env(tmp_path)
    with FakeOllamaThread(scripts) as fake, owners(db):
        crew.write_text(crew_toml(fake.url, names))
        session = detach(crew, db, env)
        viewer = Viewer(["attach", session, "--db", db], tmp_path, env)
        try:
            for name in names:
                viewer.wait_for_text(tokens[name][11].strip())
            mark = viewer.mark()
            pid = kill_owner_under(viewer, db)
            viewer.wait_for_text(f"cockpit resume {session}", since=mark)
            assert viewer.process.poll() is None  # it says so and stays
            assert session_outcome(db) is None  # nobody wrote an end: resumable
            stale = cockpit("pause", session, "a", "--db", db, env=env, cwd=tmp_path)
            assert stale.returncode == 2  # its socket file is left, but nobody answers
            assert f"session {session} is not running" in stale.stderr, stale.stderr
            viewer.press("q")  # no question: nothing runs that leaving could stop
            assert viewer.wait_exit() == 130  # what it saw: a crew cut off, resumable
        finally:
            viewer.close()

        resumed = cockpit("resume", session, "--detach", "--db", db, env=env, cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        assert resumed.stdout.splitlines()[0] == session
        (again,) = owner_pids(db) - {pid}
        assert alive(again)
        gate.open()
        wait_for(lambda: session_outcome(db) == "finished", "the resumed session to finish")
        wait_gone(again)  # ended, and nobody attached: the new owner ends too
    log = assert_complete(db, tokens)
    assert [e.type for e in log].count("session_resumed") == 1


def test_ctrl_r_in_the_viewer_resumes_a_session_whose_owner_died(tmp_path: Path) -> None:
    """The viewer offers the resume itself, and goes on commanding the new owner."""
    names = ["a"]
    tokens = replies(names, 40)
    gate = Gate(8)
    scripts = gated(tokens, gate)
    crew, db, env = tmp_path / "crew.toml", tmp_path / "log.db", cockpit_env(tmp_path)
    with FakeOllamaThread(scripts) as fake, owners(db):
        crew.write_text(crew_toml(fake.url, names))
        session = detach(crew, db, env)
        viewer = Viewer(["attach", session, "--db", db], tmp_path, env)
        try:
            viewer.wait_for_text(tokens["a"][7].strip())
            pid = kill_owner_under(viewer, db)
            mark = viewer.mark()
            viewer.write(b"\x12")  # ctrl+r
            viewer.wait_for_text("runs again", since=mark)
            (again,) = owner_pids(db) - {pid}
            assert alive(again)
            # commands reach the new owner; the title counts it once the view has the pause
            viewer.press("p", expect="1 paused")
            assert any(e.type == "agent_paused" for e in events(db))
            viewer.press("p", expect="resumed a")
            gate.open()
            wait_for(lambda: session_outcome(db) == "finished", "the resumed session to finish")
            viewer.wait_for_text("1 finished")  # the viewer has caught up with the log
            assert alive(again)  # a viewer is attached: the owner waits for it
            viewer.press("q")
            assert viewer.wait_exit() == 0
            wait_gone(again)
        finally:
            viewer.close()
    log = assert_complete(db, tokens)
    assert [e.type for e in log].count("session_resumed") == 1


async def test_what_an_attached_viewer_receives_is_each_reply_whole_and_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The viewer's own feed, not the log: attach part-way (history, then live events across
    several polls), and per agent the streamed text the viewer was handed is exactly the
    reply, with every other event once and in log order."""
    import asyncio

    from cockpit.core.bus import EventBus
    from cockpit.core.eventlog import EventLog
    from cockpit.core.sources import AttachedSource
    from cockpit.core.state import SessionState

    class Watcher:
        lost: list[str] = []

        def source_failed(self, message: str) -> None:
            raise AssertionError(message)

        def owner_lost(self, message: str) -> None:
            self.lost.append(message)

        def owner_back(self) -> None: ...

        def source_ready(self) -> None: ...

        def show_state_at(self, state: SessionState, index: int) -> None: ...

    names = ["a", "b", "c", "d"]
    tokens = replies(names, 80)
    gate = Gate(20)
    scripts = gated(tokens, gate, delay=0.005)
    crew, db, env = tmp_path / "crew.toml", tmp_path / "log.db", cockpit_env(tmp_path)
    monkeypatch.setenv("COCKPIT_RUNTIME_DIR", env["COCKPIT_RUNTIME_DIR"])  # we attach too
    with FakeOllamaThread(scripts) as fake, owners(db):
        crew.write_text(crew_toml(fake.url, names))
        session = detach(crew, db, env)
        wait_for(lambda: logged_through(db, tokens, 20), "20 tokens of each in the log")
        source = await AttachedSource.open(db, session)
        bus = EventBus()
        feed = bus.subscribe()
        async with EventLog.open(db, readonly=True) as log:
            viewing = asyncio.create_task(source.run(log, bus, Watcher()))
            gate.open()  # the rest streams while the viewer follows
            received: list[ev.BaseEvent] = []
            while not any(isinstance(e, ev.SessionFinished) for e in received):
                received += await asyncio.wait_for(feed.batch(), PATIENCE)
            await source.close(stop=False)
            viewing.cancel()
            await asyncio.gather(viewing, return_exceptions=True)
    logged = events(db)
    for name in names:
        text = "".join(e.text for e in received
                       if isinstance(e, ev.TokenStreamed) and e.agent == name)
        assert text == "".join(tokens[name])
    others = [(e.id, e.type, e.agent) for e in received if e.type != "token"]
    assert others == [(e.id, e.type, e.agent) for e in logged if e.type != "token"]
    assert Watcher.lost == []
