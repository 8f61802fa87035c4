"""Regenerate the SVGs in screenshots/ from a deterministic scripted session.

    python scripts/screenshots.py

The fake Ollama server (a thread) holds each stream open at a fixed token and the clock is
frozen, so running this twice gives the same pictures. Each scene is what a user sees.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cockpit.ui.app import CockpitApp  # noqa: E402
from tests.fake_ollama import FakeOllamaThread, ModelScript  # noqa: E402
from tests.scenarios import research  # noqa: E402
from tests.ui.snapshot_apps import CREW, HOST, SCRIPTS, streaming_app  # noqa: E402

RESEARCH = (ROOT / "examples" / "research.toml").read_text().replace(
    'name = "research"', f'name = "research"\nhost = "{HOST}"')
"""The research example against the scripted scenario: the inbox with a call waiting."""

OUT = ROOT / "screenshots"
KEY_NAMES = {"_": "underscore", " ": "space"}
FILTER = "session_started agent_started agent_paused"
"""Token events interleave and merge by timing, so the event-log picture filters to the
lifecycle events, whose order is fixed."""


async def scene(app: CockpitApp, name: str, keys: list[str], size: tuple[int, int],
                ready: Callable[[CockpitApp], bool]) -> None:
    async with app.run_test(size=size) as pilot:
        deadline = time.monotonic() + 20
        while not (ready(app) and not app.cockpit.query(".-flash")):
            if time.monotonic() > deadline:
                raise SystemExit(f"{name}: the scene never became ready")
            await pilot.pause(0.02)
        for key in keys:
            await pilot.press(KEY_NAMES.get(key, key))
        await pilot.pause()
        (OUT / f"{name}.svg").write_text(app.export_screenshot(title=f"cockpit: {name}"))
        print(f"screenshots/{name}.svg")


def mid_stream(app: CockpitApp) -> bool:
    agents = app.view.agents
    return bool(agents) and agents["features"].tokens == 40 and agents["risks"].tokens == 28


def main() -> None:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, FakeOllamaThread(dict(SCRIPTS)) as fake:
        scenes: list[tuple[str, str, list[str], tuple[int, int], Callable[[CockpitApp], bool]]] = [
            ("cockpit", CREW, [], (160, 48), mid_stream),
            ("paused", CREW, ["1", "p"], (160, 48), mid_stream),
            ("inspector", CREW, ["2", "s"], (160, 48), mid_stream),
            ("event-log", CREW, ["1", "p", "l", "shift+tab", *FILTER], (160, 48), mid_stream),
            ("help", CREW, ["question_mark"], (160, 48), mid_stream),
            ("small-terminal", CREW, [], (80, 24), mid_stream),
            ("failed", CREW.replace('model = "qwen2.5:7b"', 'model = "missing:70b"'), [],
             (160, 48), lambda app: bool(app.view.agents)
             and app.view.agents["risks"].status == "failed"
             and app.view.agents["features"].tokens == 40),
        ]
        for index, (name, crew, keys, size, ready) in enumerate(scenes):
            app = streaming_app(fake, Path(tmp) / f"{index}.db", crew)
            asyncio.run(scene(app, name, keys, size, ready))
    with tempfile.TemporaryDirectory() as tmp, \
            FakeOllamaThread({"qwen2.5:7b": ModelScript(turn=research)}) as fake:
        app = streaming_app(fake, Path(tmp) / "inbox.db", RESEARCH)
        asyncio.run(scene(app, "inbox", ["a"], (160, 48), lambda app: bool(app.view.approvals)))


if __name__ == "__main__":
    main()
