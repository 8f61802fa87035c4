"""Deterministic cockpit sessions for snapshot tests and the screenshots script.

The fake Ollama server runs in a thread (snapshots run the app with `asyncio.run`). Streams stop
at fixed points and stay open, the clock is frozen, and the crew's host is an alias, so nothing
on screen depends on timing, ports or the date.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from cockpit.core.config import parse_crew
from cockpit.ui.app import CockpitApp, make_app
from tests.conftest import PATIENCE
from tests.fake_ollama import FakeOllamaThread, ModelScript

HOST = "http://ollama.local:11434"
FROZEN = 1_795_000_000.0  # 2026-11-18, any fixed instant

PROSE = (
    "Release notes for cockpit 0.1. Several agents stream at once, each in its own pane, "
    "over a shared board. Every event goes to an SQLite log as it happens, so a session can "
    "be replayed, reported on, or resumed after a crash. Pause, redirect, stop and restart "
    "from the keyboard; the log records each intervention."
)
TOKENS = [word + " " for word in PROSE.split()]

CREW = f"""
name = "release-notes"
host = "{HOST}"
model = "llama3.2"

[state]
product = "cockpit"
version = "0.1"

[[agents]]
name = "features"
system = "You are a concise technical writer."
task = "List the features of {{{{product}}}} {{{{version}}}}."

[[agents]]
name = "risks"
model = "qwen2.5:7b"
task = "List two risks of {{{{product}}}}."

[[agents]]
name = "writer"
after = ["features", "risks"]
task = "Write release notes from {{{{outputs.features}}}} and {{{{outputs.risks}}}}."
"""

SCRIPTS = {
    "llama3.2": ModelScript(tokens=TOKENS, stall_after=40),
    "qwen2.5:7b": ModelScript(tokens=TOKENS, stall_after=25, thinking=["Weigh", " the", " risks."]),
}


def wait_for(app: CockpitApp,
             predicate: Callable[[], bool]) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """A `run_before` that waits (without sleeping blindly) until the scene is ready and drawn:
    `app.view` is folded at once, but an early frame draws only the agents it concerns and
    holds the others' text for the next regular frame."""

    async def run_before(pilot: Pilot[Any]) -> None:
        deadline = time.monotonic() + PATIENCE
        while not (predicate() and not app.cockpit._held and not app.cockpit.query(".-flash")):
            if time.monotonic() > deadline:
                raise AssertionError("the snapshot scene never became ready")
            await pilot.pause(0.02)
        await pilot.pause()

    return run_before


def streaming_app(fake: FakeOllamaThread, db: Path, crew: str = CREW) -> CockpitApp:
    return make_app(parse_crew(crew, "crew.toml"), db, hosts={HOST: fake.url},
                    clock=lambda: FROZEN, watch_themes=False)


def mid_stream(app: CockpitApp) -> Callable[[], bool]:
    def ready() -> bool:
        agents = app.view.agents
        return bool(agents) and agents["features"].tokens == 40 and agents["risks"].tokens == 28
    return ready
