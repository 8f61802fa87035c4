"""The bridge: streamed text waits for its frame, urgent events do not, and nothing is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cockpit.core import events as ev
from cockpit.core.bus import EventBus
from cockpit.ui.bridge import Bridge, urgent
from tests.conftest import PATIENCE, wait_until
from tests.fake_ollama import FakeOllama, ModelScript
from tests.ui.test_cockpit import SIZE, app_for, body, header

WORDS = [f"w{i} " for i in range(800)]


def token(agent: str, seq: int, text: str) -> ev.TokenStreamed:
    return ev.TokenStreamed(session="s", agent=agent, seq=seq, ts=0.0, text=text)


async def test_an_urgent_event_is_applied_early_and_the_rest_follows_at_the_frame() -> None:
    bus = EventBus()
    applied: list[tuple[list[str], bool]] = []
    # A long frame, so that "before the frame is due" holds even when a loaded machine takes
    # a while between the first frame and the next publish; the owed frame costs this long.
    bridge = Bridge(bus.subscribe(urgent), lambda batch, early: applied.append(
        ([f"{e.agent}:{e.type}" for e in batch], early)), frame=2.0)
    runner = asyncio.create_task(bridge.run())
    try:
        bus.publish(token("a", 1, "x"))
        await wait_until(lambda: len(applied) == 1, what="the first frame")
        bus.publish(token("b", 2, "y"))  # waits for the frame, 2 s away
        bus.publish(ev.AgentPaused(session="s", agent="a", seq=3, ts=0.0))
        await wait_until(lambda: len(applied) == 2, what="the early frame")
        assert applied[1] == (["b:token", "a:agent_paused"], True)
        # Nothing else arrives, yet the frame that was due still comes, so the app can draw
        # the text it held back.
        await wait_until(lambda: len(applied) == 3, what="the owed frame")
        assert applied[2] == ([], False)
    finally:
        bus.close()
        await asyncio.wait_for(runner, PATIENCE)


async def test_pausing_one_agent_loses_no_text_of_the_others(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(tokens=WORDS, delay=0.005)}) as fake:
        app = app_for(fake, db, [{"name": "a"}, {"name": "b"}, {"name": "c"}])
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: len(app.view.agents) == 3 and all(
                a.tokens > 20 for a in app.view.agents.values()), what="three streaming")
            await pilot.press("1", "p")
            await wait_until(lambda: "paused" in header(app, "a"), what="a paused on screen")
            await pilot.press("p")
            await wait_until(lambda: len(app.view.agents) == 3 and all(
                a.status == "finished" for a in app.view.agents.values()), what="all finished")
            await pilot.pause()
            full = " ".join("".join(WORDS).split())
            for name in "bc":
                assert " ".join(body(app, name).split()) == full
            lines = [line for line in body(app, "a").split("\n") if not line.startswith("──")]
            assert " ".join(" ".join(lines).split()) == full
            assert "── paused by person ──" in body(app, "a")
