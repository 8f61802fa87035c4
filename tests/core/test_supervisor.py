"""The engine end to end: real ollama client -> fake Ollama over loopback -> events -> SQLite."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cockpit.core import events as ev
from tests.conftest import make_crew, running, wait_until
from tests.fake_ollama import FakeOllama, ModelScript

WORDS = [f"w{i} " for i in range(40)]
FULL = "".join(WORDS)


async def test_crew_runs_to_the_end_with_templating_and_outputs(db: Path) -> None:
    scripts = {
        "m1": ModelScript(tokens=["alpha", " beta"]),
        "m2": ModelScript(reply=lambda messages: ["got: ", messages[-1]["content"]]),
    }
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [
            {"name": "first", "system": "You are {{role}}.", "task": "Start on {{topic}}."},
            {"name": "second", "model": "m2", "after": ["first"],
             "task": "Continue from: {{outputs.first}}"},
        ], state={"topic": "tests", "role": "careful"})
        async with running(crew, db) as session:
            state = await session.supervisor.wait()
            logged = await session.logged()

    assert state.outcome == "finished"
    assert state.agents["first"].output == "alpha beta"
    assert state.agents["second"].output == "got: Continue from: alpha beta"
    assert state.board["outputs.first"].value == "alpha beta"
    assert state.board["outputs.first"].by == "first"
    # The opening messages were rendered from the board and sent as such.
    first_request = fake.chat_requests("m1")[0].body
    assert first_request is not None
    assert first_request["messages"] == [
        {"role": "system", "content": "You are careful."},
        {"role": "user", "content": "Start on tests."},
    ]
    # The dependent started only after its dependency had finished and its output was logged.
    types = [(e.agent, e.type) for e in logged]  # type: ignore[attr-defined]
    assert types.index(("first", "state_set")) < types.index(("second", "agent_started"))
    # Everything that was published is in the log, in the same order, with ids increasing.
    assert [e.seq for e in logged] == [e.seq for e in session.seen]
    ids = [e.id for e in logged]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert types[0] == (None, "session_started") and types[-1] == (None, "session_finished")


async def test_message_completed_carries_ollama_metrics(db: Path) -> None:
    scripts = {"m1": ModelScript(tokens=["a", "b", "c"], thinking=["hmm", " ok"],
                                 prompt_eval_count=31)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "solo"}])
        async with running(crew, db) as session:
            await session.supervisor.wait()
            logged = await session.logged()
    completed = [e for e in logged if isinstance(e, ev.MessageCompleted)]
    assert len(completed) == 1
    message = completed[0]
    assert message.content == "abc" and message.thinking == "hmm ok"
    assert message.done_reason == "stop"
    assert message.prompt_eval_count == 31 and message.eval_count == 5
    for name in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(getattr(message, name), int)
    thinking = [e for e in logged if isinstance(e, ev.ThinkingStreamed)]
    assert "".join(e.text for e in thinking) == "hmm ok" and sum(e.chunks for e in thinking) == 2


async def test_pause_closes_the_stream_and_resume_continues_the_reply(db: Path) -> None:
    scripts = {"m1": ModelScript(tokens=WORDS, delay=0.005)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a"}])
        async with running(crew, db) as session:
            await wait_until(lambda: session.state.agents["a"].tokens >= 5, what="5 tokens")
            await session.supervisor.pause("a")
            # The command returned only after its event was committed.
            assert any(isinstance(e, ev.AgentPaused) for e in await session.logged())
            assert session.state.agents["a"].status == "paused"
            first = fake.chat_requests()[0]
            await wait_until(lambda: first.disconnected, what="the server to see the close")
            assert not first.finished and first.chunks_sent < len(WORDS)
            partial = session.state.agents["a"].partial
            assert partial and FULL.startswith(partial)

            await session.supervisor.resume("a")
            state = await session.supervisor.wait()
            logged = await session.logged()

    assert state.agents["a"].output == FULL  # continued, not regenerated
    second = fake.chat_requests()[1].body
    assert second is not None
    assert second["messages"][-1] == {"role": "assistant", "content": partial}
    tokens = "".join(e.text for e in logged if isinstance(e, ev.TokenStreamed))
    assert tokens == FULL  # token texts concatenate to exactly what the model streamed
    assert [e.type for e in logged if e.agent == "a" and e.type.startswith("agent_")] == [  # type: ignore[attr-defined]
        "agent_started", "agent_paused", "agent_resumed", "agent_finished"]


async def test_a_command_sent_as_soon_as_the_last_one_shows_is_not_refused(db: Path) -> None:
    """The UI shows an event when it is emitted, before its commit: a user who presses pause
    the moment `resumed` appears (or resume the moment `paused` does) must be obeyed."""
    scripts = {"m1": ModelScript(tokens=WORDS, delay=0.005)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a"}])
        async with running(crew, db) as session:
            supervisor = session.supervisor
            follow_ups: list[asyncio.Task[None]] = []

            def press_at_once(event: ev.BaseEvent) -> None:  # runs inside `emit`
                if isinstance(event, ev.AgentPaused) and len(follow_ups) == 0:
                    follow_ups.append(asyncio.ensure_future(supervisor.resume("a")))
                elif isinstance(event, ev.AgentResumed) and len(follow_ups) == 1:
                    follow_ups.append(asyncio.ensure_future(supervisor.pause("a")))

            supervisor.bus.add_sink(press_at_once)
            await wait_until(lambda: session.state.agents["a"].tokens >= 5, what="5 tokens")
            await supervisor.pause("a")
            await wait_until(lambda: len(follow_ups) == 2, what="both follow-up presses")
            await asyncio.gather(*follow_ups)  # raises CommandError if either was refused
            assert session.state.agents["a"].status == "paused"
            await supervisor.resume("a")
            state = await supervisor.wait()
            logged = await session.logged()

    assert state.agents["a"].output == FULL
    assert [e.type for e in logged if e.agent == "a" and e.type.startswith("agent_")] == [  # type: ignore[attr-defined]
        "agent_started", "agent_paused", "agent_resumed", "agent_paused", "agent_resumed",
        "agent_finished"]


async def test_redirect_keeps_the_partial_and_appends_the_instruction(db: Path) -> None:
    def reply(messages: list[dict[str, str]]) -> list[str]:
        if messages[-1]["role"] == "user" and messages[-1]["content"].startswith("Now"):
            return ["redirected", " answer"]
        return WORDS

    scripts = {"m1": ModelScript(reply=reply, delay=0.005)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a"}])
        async with running(crew, db) as session:
            await wait_until(lambda: session.state.agents["a"].tokens >= 3, what="3 tokens")
            await session.supervisor.redirect("a", "Now say something else.")
            state = await session.supervisor.wait()
            logged = await session.logged()

        first = fake.chat_requests()[0]
        await wait_until(lambda: first.disconnected, what="the server saw the cut-off")
    assert not first.finished
    sent = fake.chat_requests()[1].body
    assert sent is not None
    assistant, instruction = sent["messages"][-2:]
    assert assistant["role"] == "assistant" and FULL.startswith(assistant["content"])
    assert assistant["content"]
    assert instruction == {"role": "user", "content": "Now say something else."}
    assert state.agents["a"].output == "redirected answer"
    assert state.board["outputs.a"].value == "redirected answer"
    redirected = [e for e in logged if isinstance(e, ev.AgentRedirected)]
    assert [e.instruction for e in redirected] == ["Now say something else."]


async def test_stop_ends_the_agent_and_its_dependents_do_not_start(db: Path) -> None:
    scripts = {"m1": ModelScript(tokens=WORDS, delay=0.01)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a"}, {"name": "b", "after": ["a"]}])
        async with running(crew, db) as session:
            await wait_until(lambda: session.state.agents["a"].tokens >= 2, what="2 tokens")
            await session.supervisor.stop("a")
            state = await session.supervisor.wait()
            logged = await session.logged()
        first = fake.chat_requests()[0]
        await wait_until(lambda: first.disconnected, what="the server saw the stop")
    assert state.agents["a"].status == "stopped"
    assert state.agents["b"].status == "failed"
    assert "dependency 'a' stopped" in (state.agents["b"].error or "")
    assert state.outcome == "failed"
    assert len(fake.chat_requests()) == 1  # b never sent a request
    assert any(isinstance(e, ev.AgentStopped) for e in logged)


async def test_restart_runs_a_stopped_agent_again(db: Path) -> None:
    scripts = {"m1": ModelScript(tokens=WORDS, delay=0.01, faults_for=1, stall_after=3)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a"}])
        async with running(crew, db) as session:
            await wait_until(lambda: session.state.agents["a"].tokens >= 3, what="3 tokens")
            await session.supervisor.stop("a")
            await session.supervisor.restart("a")
            await session.wait_status("a", "finished")
            logged = await session.logged()
    assert session.state.agents["a"].output == FULL
    types = [e.type for e in logged if e.agent == "a"]  # type: ignore[attr-defined]
    assert types.count("agent_started") == 2
    assert types.index("agent_stopped") < types.index("agent_restarted")
    restarted = fake.chat_requests()[1].body
    assert restarted is not None and restarted["messages"][-1]["role"] == "user"


async def test_set_state_is_committed_and_read_by_later_agents(db: Path) -> None:
    scripts = {"m1": ModelScript(tokens=["x"]), "slow": ModelScript(tokens=WORDS, delay=0.01)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [
            {"name": "a", "model": "slow"},
            {"name": "b", "after": ["a"], "task": "Use {{topic}}."},
        ], state={"topic": "old"})
        async with running(crew, db) as session:
            await session.supervisor.set_state("topic", "new", by="person")
            committed = [e for e in await session.logged() if isinstance(e, ev.StateSet)]
            assert [(e.key, e.value, e.by) for e in committed] == [("topic", "new", "person")]
            await session.supervisor.wait()
    assert session.state.board["topic"].version == 2
    body = fake.chat_requests("m1")[0].body
    assert body is not None and body["messages"][-1]["content"] == "Use new."


async def test_retries_after_503_then_succeeds(db: Path) -> None:
    scripts = {"m1": ModelScript(tokens=["ok"], fail_first=2, fail_status=503)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a"}], retries=3)
        async with running(crew, db) as session:
            state = await session.supervisor.wait()
            logged = await session.logged()
    retrying = [e for e in logged if isinstance(e, ev.Retrying)]
    assert [e.attempt for e in retrying] == [1, 2]
    assert "503" in retrying[0].reason and "server busy" in retrying[0].reason
    assert state.agents["a"].status == "finished" and state.agents["a"].retries == 2
    assert len(fake.chat_requests()) == 3


async def test_dropped_stream_is_retried_and_continued(db: Path) -> None:
    scripts = {"m1": ModelScript(tokens=WORDS, drop_after=10, faults_for=1)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a"}])
        async with running(crew, db) as session:
            state = await session.supervisor.wait()
            logged = await session.logged()
    assert [e.reason for e in logged if isinstance(e, ev.Retrying)][0].startswith(
        "connection to")
    assert state.agents["a"].output == FULL
    second = fake.chat_requests()[1].body
    assert second is not None
    assert second["messages"][-1] == {"role": "assistant", "content": "".join(WORDS[:10])}


async def test_mid_stream_error_line_is_retried(db: Path) -> None:
    scripts = {"m1": ModelScript(tokens=WORDS, error_after=5, faults_for=1,
                                 error_message="boom in the runner")}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a"}])
        async with running(crew, db) as session:
            state = await session.supervisor.wait()
            logged = await session.logged()
    reasons = [e.reason for e in logged if isinstance(e, ev.Retrying)]
    assert len(reasons) == 1 and "boom in the runner" in reasons[0]
    assert state.agents["a"].output == FULL


async def test_stall_cuts_the_reply_off_and_retries(db: Path) -> None:
    scripts = {"m1": ModelScript(tokens=WORDS, stall_after=4, faults_for=1)}
    async with FakeOllama(scripts) as fake:
        # Long enough that a loaded machine's scheduling gap between two chunks never looks
        # like a stall (the test asserts exactly one); each second here is a second of test.
        crew = make_crew(fake.url, [{"name": "a"}], stall_timeout=1.0)
        async with running(crew, db) as session:
            state = await session.supervisor.wait()
            logged = await session.logged()
    stalls = [e for e in logged if isinstance(e, ev.Stalled)]
    assert len(stalls) == 1 and stalls[0].seconds == 1.0
    # Caught one stall_timeout after the last chunk, not after the queue allowance (10x)
    # counted from the request: before the fix this was always >= 10 s.
    started = next(e for e in logged if isinstance(e, ev.AgentStarted))
    assert stalls[0].ts - started.ts < 10 * 1.0
    assert fake.chat_requests()[0].disconnected
    assert state.agents["a"].output == FULL and state.agents["a"].stalls == 1


async def test_404_fails_without_retry_and_the_others_carry_on(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(tokens=["fine"])}) as fake:
        crew = make_crew(fake.url, [{"name": "good"}, {"name": "bad", "model": "missing"}],
                         retries=3)
        async with running(crew, db) as session:
            state = await session.supervisor.wait()
            logged = await session.logged()
    assert state.agents["good"].status == "finished"
    assert state.agents["bad"].status == "failed"
    assert state.agents["bad"].error == "Ollama answered 404: model 'missing' not found"
    assert not any(isinstance(e, ev.Retrying) for e in logged)
    assert len(fake.chat_requests("missing")) == 1
    assert state.outcome == "failed"


async def test_unreachable_host_fails_after_host_wait_naming_the_host(db: Path) -> None:
    async with FakeOllama() as fake:
        url = fake.url
    # The fake is stopped: its port now refuses connections. Waiting for a host spends no
    # retries: `host_wait` bounds it instead.
    crew = make_crew(url, [{"name": "a"}], retries=2, host_wait=0.3)
    async with running(crew, db) as session:
        await session.supervisor.wait()
        logged = await session.logged()
    failed = [e for e in logged if isinstance(e, ev.AgentFailed)]
    assert len(failed) == 1
    assert url in failed[0].error and "host_wait is 0.3 s" in failed[0].error
    assert not [e for e in logged if isinstance(e, ev.Retrying)]
    assert len([e for e in logged if isinstance(e, ev.HostWaiting)]) == 1


async def test_pause_all_and_resume_all(db: Path) -> None:
    scripts = {"m1": ModelScript(tokens=WORDS, delay=0.005)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a"}, {"name": "b"}, {"name": "c", "after": ["a"]}])
        async with running(crew, db) as session:
            await wait_until(lambda: all(session.state.agents[n].tokens >= 2 for n in "ab"),
                             what="a and b streaming")
            paused = await session.supervisor.pause_all()
            assert sorted(paused) == ["a", "b"]
            await wait_until(lambda: all(r.disconnected for r in fake.chat_requests()),
                             what="both streams closed")
            assert session.state.agents["c"].status == "waiting"
            resumed = await session.supervisor.resume_all()
            assert sorted(resumed) == ["a", "b"]
            state = await session.supervisor.wait()
    assert all(agent.output == FULL for agent in state.agents.values())
