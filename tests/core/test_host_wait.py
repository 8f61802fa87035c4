"""Waiting for Ollama is not failing: outages, a pool of hosts, and `host_wait`.

Outages are real: the fake server stops listening (live connections are cut) and starts again
on the same port, as `systemctl restart ollama` does.
"""

from __future__ import annotations

import socket
from pathlib import Path

import ollama

from cockpit.core import events as ev
from cockpit.core.state import AgentStatus
from tests.conftest import make_crew, running, wait_until
from tests.fake_ollama import FakeOllama, ModelScript

WORDS = [f"w{i} " for i in range(120)]
FULL = "".join(WORDS)
TIMEOUT = 60.0
"""Generous: a waiting test only runs this long when it is failing."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def of_type(events: list[ev.BaseEvent], kind: type[ev.BaseEvent],
            agent: str = "a") -> list[ev.BaseEvent]:
    return [e for e in events if isinstance(e, kind) and e.agent == agent]


async def test_a_host_down_at_start_is_waited_for_without_spending_retries(db: Path) -> None:
    port = free_port()
    fake = FakeOllama({"m1": ModelScript(tokens=WORDS)}, port=port)
    crew = make_crew(fake.url, [{"name": "a"}], retries=0)
    async with running(crew, db) as session:
        await session.wait_status("a", AgentStatus.WAITING_HOST, TIMEOUT)
        await fake.start()  # Ollama is back
        try:
            state = await session.supervisor.wait()
            logged = await session.logged()
        finally:
            await fake.stop()
    assert state.agents["a"].status is AgentStatus.FINISHED
    assert state.agents["a"].output == FULL
    waiting = of_type(logged, ev.HostWaiting)
    assert len(waiting) == 1 and len(of_type(logged, ev.HostBack)) == 1  # once, not per attempt
    assert isinstance(waiting[0], ev.HostWaiting) and waiting[0].host == fake.url
    assert "connection refused" in waiting[0].reason and waiting[0].limit == 600
    assert not of_type(logged, ev.Retrying)  # retries = 0, and none were spent
    assert state.agents["a"].waited > 0


async def test_an_outage_mid_reply_continues_the_partial_once_the_host_is_back(db: Path) -> None:
    port = free_port()
    fake = FakeOllama({"m1": ModelScript(tokens=WORDS, delay=0.01)}, port=port)
    await fake.start()
    crew = make_crew(fake.url, [{"name": "a"}])
    try:
        async with running(crew, db) as session:
            await wait_until(lambda: session.state.agents["a"].tokens >= 20, TIMEOUT,
                             "20 tokens before the outage")
            await fake.stop()  # a restart: the stream is cut, then nothing listens
            await session.wait_status("a", AgentStatus.WAITING_HOST, TIMEOUT)
            partial = session.state.agents["a"].partial
            await fake.start()
            state = await session.supervisor.wait()
            logged = await session.logged()
    finally:
        await fake.stop()
    assert state.agents["a"].output == FULL  # nothing regenerated, nothing lost
    tokens = "".join(e.text for e in logged if isinstance(e, ev.TokenStreamed))
    assert tokens == FULL
    last = fake.chat_requests("m1")[-1].body
    assert last is not None
    assert last["messages"][-1] == {"role": "assistant", "content": partial}
    assert len(of_type(logged, ev.HostWaiting)) == 1 and len(of_type(logged, ev.HostBack)) == 1


async def test_waiting_ends_at_host_wait_with_a_clear_reason(db: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    crew = make_crew(url, [{"name": "a", "host_wait": 0.5}, {"name": "b", "after": ["a"]}])
    async with running(crew, db) as session:
        state = await session.supervisor.wait()
        logged = await session.logged()
    assert state.outcome == "failed"
    error = state.agents["a"].error or ""
    assert url in error and "host_wait is 0.5 s" in error and "connection refused" in error
    assert not of_type(logged, ev.Retrying)
    assert state.agents["b"].error == "not started: dependency 'a' failed"


async def test_a_pool_sends_the_agent_to_a_host_that_has_its_model(db: Path) -> None:
    async with FakeOllama({"other": ModelScript()}) as first, \
            FakeOllama({"m1": ModelScript(tokens=WORDS)}) as second:
        crew = make_crew(first.url, [{"name": "a", "hosts": [first.url, second.url]}])
        async with running(crew, db) as session:
            state = await session.supervisor.wait()
            logged = await session.logged()
    assert state.agents["a"].output == FULL and state.agents["a"].host == second.url
    selected = of_type(logged, ev.HostSelected)
    assert [e.host for e in selected] == [second.url]  # type: ignore[attr-defined]
    assert not first.chat_requests()


async def test_a_pool_prefers_the_host_where_the_model_is_loaded(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(tokens=WORDS)}) as first, \
            FakeOllama({"m1": ModelScript(tokens=WORDS)}) as second:
        warm = ollama.AsyncClient(host=second.url)
        await warm.chat("m1", messages=[{"role": "user", "content": "load it"}])
        await warm._client.aclose()
        crew = make_crew(first.url, [{"name": "a", "hosts": [first.url, second.url]}])
        async with running(crew, db) as session:
            state = await session.supervisor.wait()
    assert state.agents["a"].host == second.url
    assert not first.chat_requests() and len(second.chat_requests()) == 2


async def test_a_host_going_down_mid_reply_hands_the_partial_to_another(db: Path) -> None:
    slow = FakeOllama({"m1": ModelScript(tokens=WORDS, delay=0.01)})
    await slow.start()
    async with FakeOllama({"m1": ModelScript(tokens=WORDS)}) as spare:
        crew = make_crew(slow.url, [{"name": "a", "hosts": [slow.url, spare.url]}])
        try:
            async with running(crew, db) as session:
                await wait_until(lambda: session.state.agents["a"].tokens >= 20, TIMEOUT,
                                 "20 tokens on the first host")
                assert not spare.chat_requests()
                await slow.stop()
                state = await session.supervisor.wait()
                logged = await session.logged()
        finally:
            await slow.stop()
    assert state.agents["a"].output == FULL
    continued = spare.chat_requests("m1")[-1].body
    assert continued is not None and continued["messages"][-1]["role"] == "assistant"
    assert FULL.startswith(continued["messages"][-1]["content"])
    assert [e.host for e in of_type(logged, ev.HostSelected)] == [spare.url]  # type: ignore[attr-defined]
    retry = of_type(logged, ev.Retrying)
    assert retry and retry[0].host == slow.url  # type: ignore[attr-defined]
