"""The crew file hot-reloads: real files watched by watchfiles, a real SQLite log, the real
`ollama` client against the fake server. Agents that have not started take an edit, new agents
join and wait for their dependencies, started ones are left alone (the diff says so), invalid
edits are logged and change nothing, and resume runs the crew as updated.

The planner's one tool call waits for approval: it holds the crew still, with the planner
started and the writer waiting, for as long as a test edits the file."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cockpit.core import events as ev
from cockpit.core.bus import EventBus
from cockpit.core.config import ConfigError, load_crew, parse_crew
from cockpit.core.eventlog import EventLog
from cockpit.core.reload import crew_diff, reload_crew, watch_crew
from cockpit.core.report import write_report
from cockpit.core.resume import load_resumable
from cockpit.core.state import AgentStatus, fold
from cockpit.core.supervisor import Supervisor
from cockpit.headless import HeadlessPrinter
from tests.conftest import PATIENCE, Session, running, wait_until
from tests.fake_ollama import FakeOllama, ModelScript, Turn

Messages = list[dict[str, Any]]
WRITER_TASK = "Write from: {{outputs.planner}}"
CRITIC = """
[[agents]]
name = "critic"
model = "m2"
after = ["writer"]
task = "Critique: {{outputs.writer}}"
"""


def crew_text(url: str, *, writer_task: str = WRITER_TASK, planner_system: str = "You plan.",
              writer_options: str = "{ temperature = 0.2 }", writer_after: str = '["planner"]',
              more: str = "") -> str:
    return f"""name = "reload"
host = "{url}"
model = "m1"
retry_backoff = 0.01
approve = ["board_write"]

[[agents]]
name = "planner"
system = "{planner_system}"
task = "Plan."
tools = ["board"]

[[agents]]
name = "writer"
model = "m2"
after = {writer_after}
task = "{writer_task}"
options = {writer_options}
{more}"""


def plans(messages: Messages) -> Turn:
    """Turn 1 writes the board (and waits for approval), turn 2 answers."""
    if not any(m["role"] == "tool" for m in messages):
        return Turn.call("board_write", key="plan", value="v1")
    return Turn.say("the plan")


def echoes(messages: Messages) -> list[str]:
    return [f"wrote: {messages[-1]['content']}"]


SCRIPTS = {"m1": ModelScript(turn=plans), "m2": ModelScript(reply=echoes)}


def write_in_place(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def write_by_rename(path: Path, text: str) -> None:
    """What vim, `sed -i` and atomic writers do: write a temporary file, rename it over."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def updates(session: Session) -> list[ev.CrewUpdated]:
    return [e for e in session.seen if isinstance(e, ev.CrewUpdated)]


def rejections(session: Session) -> list[ev.CrewRejected]:
    return [e for e in session.seen if isinstance(e, ev.CrewRejected)]


async def updated(session: Session, count: int) -> ev.CrewUpdated:
    await wait_until(lambda: len(updates(session)) >= count, what=f"crew_updated #{count}")
    return updates(session)[count - 1]


@contextlib.asynccontextmanager
async def watching(path: Path, supervisor: Supervisor) -> AsyncIterator[asyncio.Task[None]]:
    """`watch_crew` on `path` until the block ends; entered once the watch is in place."""
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(watch_crew(path, supervisor, stop=stop, ready=ready))
    await wait_until(lambda: ready.is_set() or task.done(), what="the watch to be in place")
    if task.done():
        task.result()
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, PATIENCE)


@contextlib.asynccontextmanager
async def crew_running(tmp_path: Path, db: Path, fake: FakeOllama,
                       **options: Any) -> AsyncIterator[tuple[Session, Path]]:
    """The crew file on disk, its session running with the planner waiting for approval, and
    the file watched."""
    path = tmp_path / "crew.toml"
    path.write_text(crew_text(fake.url), encoding="utf-8")
    async with running(load_crew(path), db, crew_path=path, **options) as session:
        await session.wait_status("planner", "awaiting approval")
        async with watching(path, session.supervisor):
            yield session, path


def started(logged: list[ev.BaseEvent], agent: str) -> ev.AgentStarted:
    return next(e for e in logged if isinstance(e, ev.AgentStarted) and e.agent == agent)


async def test_an_agent_that_has_not_started_takes_the_new_task(tmp_path: Path,
                                                                db: Path) -> None:
    async with FakeOllama(SCRIPTS) as fake, crew_running(tmp_path, db, fake) as (session, path):
        write_by_rename(path, crew_text(fake.url, writer_task="Write briefly: {{outputs.planner}}",
                                        writer_options="{ temperature = 0.7, seed = 3 }"))
        event = await updated(session, 1)
        assert event.diff == [
            '~ writer.task: "Write from: {{outputs.planner}}" → '
            '"Write briefly: {{outputs.planner}}"',
            '~ writer.options: {"temperature": 0.2} → {"seed": 3, "temperature": 0.7}',
        ]
        assert (event.added, event.changed, event.path) == ([], ["writer"], str(path))
        assert session.state.config["agents"][1]["task"] == "Write briefly: {{outputs.planner}}"
        await session.supervisor.decide("planner.1.1", "approved")
        state = await session.supervisor.wait()
        logged = await session.logged()
    opening = started(logged, "writer")
    assert opening.messages[-1]["content"] == "Write briefly: the plan"
    assert opening.options == {"temperature": 0.7, "seed": 3}
    assert fake.chat_requests("m2")[0].body["options"] == {"temperature": 0.7, "seed": 3}
    assert state.agents["writer"].output == "wrote: Write briefly: the plan"
    assert event.seq < opening.seq


async def test_a_new_agent_joins_and_runs_after_its_dependency(tmp_path: Path,
                                                               db: Path) -> None:
    async with FakeOllama(SCRIPTS) as fake, crew_running(tmp_path, db, fake) as (session, path):
        write_by_rename(path, crew_text(fake.url, more=CRITIC))
        event = await updated(session, 1)
        assert event.diff == ["+ agent critic (after writer)"]
        assert (event.added, event.changed) == (["critic"], [])
        assert session.state.agents["critic"].status is AgentStatus.WAITING
        assert session.supervisor.crew.agent("critic").after == ["writer"]
        await session.supervisor.decide("planner.1.1", "approved")
        state = await session.supervisor.wait()
        logged = await session.logged()
    assert state.outcome == "finished"
    assert list(state.agents) == ["planner", "writer", "critic"]
    writer_done = next(e for e in logged if isinstance(e, ev.AgentFinished) and e.agent == "writer")
    opening = started(logged, "critic")
    assert writer_done.seq < opening.seq
    assert opening.messages[-1]["content"] == "Critique: wrote: Write from: the plan"
    assert state.agents["critic"].output == "wrote: Critique: wrote: Write from: the plan"
    finished = next(e for e in logged if isinstance(e, ev.SessionFinished))
    assert finished.agents["critic"] == "finished"
    folded = fold(logged)  # the log tells the same story as the live state
    assert list(folded.agents) == list(state.agents)
    assert folded.agents["critic"].output == state.agents["critic"].output


async def test_a_waiting_agent_whose_after_changes_waits_for_the_new_ones(
        tmp_path: Path, db: Path) -> None:
    async with FakeOllama(SCRIPTS) as fake, crew_running(tmp_path, db, fake) as (session, path):
        write_by_rename(path, crew_text(fake.url, writer_after="[]", writer_task="Write now."))
        event = await updated(session, 1)
        assert '~ writer.after: ["planner"] → []' in event.diff
        await session.wait_status("writer", "finished")  # the planner still waits for approval
        assert session.state.agents["planner"].status is AgentStatus.AWAITING_APPROVAL
        assert session.state.agents["writer"].after == []
        await session.supervisor.decide("planner.1.1", "approved")
        state = await session.supervisor.wait()
    assert state.outcome == "finished"
    assert state.agents["writer"].output == "wrote: Write now."


async def test_a_new_agent_reopens_a_session_that_had_ended(tmp_path: Path, db: Path) -> None:
    async with FakeOllama(SCRIPTS) as fake:
        path = tmp_path / "crew.toml"
        path.write_text(crew_text(fake.url), encoding="utf-8")
        async with running(load_crew(path), db, crew_path=path, approve="all") as session:
            assert (await session.supervisor.wait()).outcome == "finished"
            async with watching(path, session.supervisor):
                write_by_rename(path, crew_text(fake.url, more=CRITIC))
                await updated(session, 1)
                await session.supervisor.commit()
                # the sessions table says so too: `sessions`, `resume` and viewers read it
                async with EventLog.open(db, readonly=True) as reader:
                    [row] = await reader.sessions()
                assert row.outcome is None or session.state.outcome is not None
                assert row.agents == 3
                await wait_until(lambda: session.state.outcome is not None,
                                 what="the reopened session to end")
            logged = await session.logged()
    assert [e.outcome for e in logged if isinstance(e, ev.SessionFinished)] == [
        "finished", "finished"]
    assert session.state.agents["critic"].output == "wrote: Critique: wrote: Write from: the plan"


async def test_a_started_agents_change_is_ignored_and_reported(tmp_path: Path,
                                                               db: Path) -> None:
    async with FakeOllama(SCRIPTS) as fake, crew_running(tmp_path, db, fake) as (session, path):
        write_by_rename(path, crew_text(fake.url, planner_system="You plan in haiku.",
                                        writer_task="Now: {{outputs.planner}}"))
        event = await updated(session, 1)
        assert event.diff == [
            "! planner.system ignored: planner has started",
            '~ writer.task: "Write from: {{outputs.planner}}" → "Now: {{outputs.planner}}"',
        ]
        assert event.changed == ["writer"]
        assert session.supervisor.crew.agent("planner").system == "You plan."
        assert event.config["agents"][0]["system"] == "You plan."
        # saving the same file again tells nothing new: the ignored change was reported once
        await reload_crew(path, session.supervisor)
        await session.supervisor.decide("planner.1.1", "approved")
        await session.supervisor.wait()
        logged = await session.logged()
    assert len([e for e in logged if isinstance(e, ev.CrewUpdated)]) == 1
    assert started(logged, "planner").messages[0]["content"] == "You plan."
    assert started(logged, "writer").messages[-1]["content"] == "Now: the plan"


async def test_an_invalid_edit_is_logged_and_changes_nothing(tmp_path: Path, db: Path) -> None:
    async with FakeOllama(SCRIPTS) as fake, crew_running(tmp_path, db, fake) as (session, path):
        before = session.supervisor.crew
        text = crew_text(fake.url, writer_task="Never used.",
                         writer_options='{ temperature = "hot" }')
        write_in_place(path, text)
        line = text.splitlines().index('options = { temperature = "hot" }') + 1
        where = f"{path}:{line}: agents[1] (writer).options: "
        await wait_until(lambda: any(where in e.error for e in rejections(session)),
                         what="the rejection")
        rejected = next(e for e in rejections(session) if where in e.error)
        assert "option 'temperature' must be number, not 'hot'" in rejected.error
        assert rejected.path == str(path)
        assert session.state.crew_error == rejected.error
        assert session.supervisor.crew == before
        assert session.state.config["agents"][1]["task"] == WRITER_TASK
        assert not updates(session)

        write_in_place(path, crew_text(fake.url))  # the file as the crew runs it: valid again
        event = await updated(session, 1)
        assert (event.diff, event.added, event.changed) == ([], [], [])
        assert session.state.crew_error is None
        # a save that changes nothing logs nothing
        assert await session.supervisor.update_crew(parse_crew(crew_text(fake.url))) is None
        await session.supervisor.decide("planner.1.1", "approved")
        await session.supervisor.wait()
        logged = await session.logged()
    assert started(logged, "writer").messages[-1]["content"] == "Write from: the plan"
    folded = fold(logged)
    assert folded.crew_error is None and folded.config == session.state.config


async def test_a_rewrite_by_rename_is_seen_and_so_is_the_next_write(tmp_path: Path,
                                                                    db: Path) -> None:
    async with FakeOllama(SCRIPTS) as fake, crew_running(tmp_path, db, fake) as (session, path):
        for count, (write, task) in enumerate([(write_in_place, "One: {{outputs.planner}}"),
                                               (write_by_rename, "Two: {{outputs.planner}}"),
                                               (write_in_place, "Three: {{outputs.planner}}")],
                                              start=1):
            write(path, crew_text(fake.url, writer_task=task))
            await wait_until(lambda task=task: session.supervisor.crew.agent("writer").task
                             == task, what=f"edit {count} ({write.__name__})")
        assert updates(session)[-1].diff[0].startswith('~ writer.task: "Two: ')
        await session.supervisor.decide("planner.1.1", "approved")
        await session.supervisor.wait()
        logged = await session.logged()
    assert started(logged, "writer").messages[-1]["content"] == "Three: the plan"


async def test_resume_runs_the_crew_as_updated(tmp_path: Path, db: Path) -> None:
    async with FakeOllama(SCRIPTS) as fake:
        async with crew_running(tmp_path, db, fake) as (session, path):
            write_by_rename(path, crew_text(fake.url, writer_task="Later: {{outputs.planner}}",
                                            more=CRITIC))
            await updated(session, 1)
        # leaving the block is the quit: the session is interrupted, the planner mid-call
        async with EventLog.open(db) as log:
            crew, crew_path = await log.crew(session.supervisor.session)
            assert [a.name for a in crew.agents] == ["planner", "writer", "critic"]
            assert crew.agent("writer").task == "Later: {{outputs.planner}}"
            assert crew_path == str(path)
            found = await load_resumable(log, "last")
            assert found.crew == crew
            assert found.state.agents["critic"].status is AgentStatus.WAITING
            supervisor = Supervisor(found.crew, log, EventBus(), session=found.state.session,
                                    approve="all")
            state = await supervisor.run(found.state)
            logged = [e async for e in log.iter_events(state.session)]
    assert state.outcome == "finished"
    assert started(logged, "writer").messages[-1]["content"] == "Later: the plan"
    assert state.agents["critic"].output == "wrote: Critique: wrote: Later: the plan"


async def test_the_report_and_the_headless_printer_tell_the_edits(tmp_path: Path,
                                                                  db: Path) -> None:
    async with FakeOllama(SCRIPTS) as fake, crew_running(tmp_path, db, fake) as (session, path):
        write_by_rename(path, crew_text(fake.url, more=CRITIC))
        await updated(session, 1)
        write_by_rename(path, crew_text(fake.url, more=CRITIC + "oops = 1\n"))
        await wait_until(lambda: bool(rejections(session)), what="the rejection")
    printer = HeadlessPrinter(EventBus().subscribe(), io.StringIO())
    lines = [printer.line_for(e) for e in updates(session) + rejections(session)]
    assert lines[0] == "crew      file changed\n" + " " * 18 + "+ agent critic (after writer)"
    assert lines[1] is not None and lines[1].startswith(
        "crew      file change rejected; the crew goes on unchanged\n" + " " * 18 + str(path))
    assert "agents[2] (critic).oops: unknown key 'oops'" in lines[1]
    async with EventLog.open(db, create=False) as log:
        out = io.StringIO()
        await write_report(log, session.supervisor.session, out)
    report = out.getvalue()
    assert "## Crew file changes" in report
    assert "  - `+ agent critic (after writer)`" in report
    assert "unknown key 'oops'" in report


async def test_a_rename_is_refused_and_what_needs_it_is_rejected(tmp_path: Path,
                                                                 db: Path) -> None:
    async with FakeOllama(SCRIPTS) as fake:
        path = tmp_path / "crew.toml"
        path.write_text(crew_text(fake.url), encoding="utf-8")
        async with running(load_crew(path), db, crew_path=path) as session:
            await session.wait_status("planner", "awaiting approval")
            text = crew_text(fake.url).replace('name = "writer"', 'name = "author"') + \
                CRITIC.replace('"writer"', '"author"').replace("outputs.writer", "outputs.author")
            path.write_text(text, encoding="utf-8")
            await reload_crew(path, session.supervisor)
            rejected = rejections(session)
            assert len(rejected) == 1 and not updates(session)
            line = text.splitlines().index('after = ["author"]') + 1
            assert f"{path}:{line}: agents[2] (critic).after: no agent named 'author'" \
                in rejected[0].error
            assert "keeps its agents' names" in rejected[0].error
            with pytest.raises(ConfigError):
                await session.supervisor.update_crew(parse_crew(text, path), path=path,
                                                     source=text)
            assert len(rejections(session)) == 1  # the same rejection is not logged twice
            assert [a.name for a in session.supervisor.crew.agents] == ["planner", "writer"]


def test_the_diff_words_each_kind_of_change() -> None:
    def crew(agents: str, head: str = 'model = "m1"\n') -> Any:
        return parse_crew(f'name = "c"\n{head}{agents}')

    a = '[[agents]]\nname = "a"\ntask = "A task that is rather long, about the notes."\n'
    b = '[[agents]]\nname = "b"\nafter = ["a"]\ntask = "B."\n'
    old = crew(a + b)
    new = crew(a.replace("about the notes", "about the release notes") + '[[agents]]\n'
               'name = "c"\nafter = ["a"]\ntask = "C."\n', head='model = "m2"\n')
    diff = crew_diff(old, new, started=set())
    assert diff.lines == [
        '~ a.task: "…about the notes." → "…about the release notes."',
        "! agent b renamed to c ignored: agents keep their names while the crew runs",
        "! model ignored: crew-wide settings stay while the crew runs",
    ]
    assert [x.name for x in diff.crew.agents] == ["a", "b"] and diff.changed == ["a"]
    removed = crew_diff(old, crew(a + '[[agents]]\nname = "d"\ntask = "D."\n'
                                  '[[agents]]\nname = "e"\ntask = "E."\n'), started={"a"})
    assert removed.lines == ["! agent b renamed to d ignored: agents keep their names while "
                             "the crew runs", "+ agent e"]
    gone = crew_diff(old, crew(a), started={"a"})
    assert gone.lines == ["! agent b removed ignored: a running crew keeps its agents"]
    assert not crew_diff(old, old, started=set())
    with_mcp = crew(a, head='model = "m1"\n[[mcp]]\nname = "files"\ncommand = "x"\n')
    assert crew_diff(old, with_mcp, set()).lines[-1] == \
        "! mcp ignored (added files): tool servers stay while the crew runs"
