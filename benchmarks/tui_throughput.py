"""The TUI under load: how much slower than the bare client, and how fast a key takes effect.

1. Throughput: the fake Ollama server (its own process) streams 8 agents x 3000 tokens at full
   speed. Alternating in one run, we time the bare `ollama.AsyncClient` consuming the 8 streams
   (first request to last chunk) and the cockpit TUI headless under `run_test` (mount to the
   first frame written after every agent's `agent_finished` reached the screen). Target: ratio
   <= 1.5.
2. Latency: while 8 agents stream, post `p` as the terminal driver would and time until Textual
   has written the first frame after `agent_paused` was applied to the screen; then `p` again
   until the frame with `agent_resumed` is written. Presses are 0.1-0.3 s apart, as a person
   types. Target: p95 < 50 ms. Measured at two loads: 100 tokens/s per agent (faster than any
   local model on a CPU like this one) and full speed (~70k tokens/s in all, which saturates
   the one core the cockpit gets).

    python benchmarks/tui_throughput.py [--rounds 5] [--presses 20]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.headless_overhead import run_bare, start_fake  # noqa: E402
from cockpit.core.config import parse_crew  # noqa: E402
from cockpit.ui.app import CockpitApp, make_app  # noqa: E402

TIMEOUT = 120
HUMAN_GAP = (0.1, 0.3)
"""Seconds between presses, as a person types: each press is measured on its own, not queued
behind the drawing of the previous one."""


def crew_text(url: str, agents: int) -> str:
    lines = [f'name = "bench"\nmodel = "m1"\nhost = "{url}"\n']
    lines += [f'[[agents]]\nname = "a{i}"\ntask = "go {i}"\n' for i in range(agents)]
    return "\n".join(lines)


def header(app: CockpitApp, name: str) -> str:
    return str(app.cockpit.panes[name].header.render())


class DrawClock:
    """When Textual last wrote a frame to the terminal.

    Textual has no public "frame written" hook, and `call_after_refresh` callbacks run a few
    loop turns after the write, which on a saturated loop added ~40 ms to every sample. So the
    benchmark wraps the screen's compositor refresh, the one place a frame is written.
    """

    def __init__(self) -> None:
        from textual.screen import Screen

        self.written: list[float] = []
        self.frame = asyncio.Event()
        original = Screen._compositor_refresh
        clock = self

        def compositor_refresh(screen: Screen[object]) -> None:
            original(screen)
            clock.written.append(time.perf_counter())
            clock.frame.set()

        Screen._compositor_refresh = compositor_refresh  # type: ignore[method-assign]

    def start(self) -> None:
        """Call at the start of each run: an asyncio.Event belongs to one loop."""
        self.written = []
        self.frame = asyncio.Event()

    def first_after(self, moment: float) -> float | None:
        self.written = [t for t in self.written if t > moment]
        return self.written[0] if self.written else None


async def tui_run(url: str, agents: int, db: Path, draws: DrawClock) -> float:
    app = make_app(parse_crew(crew_text(url, agents)), db, watch_themes=False)
    draws.start()
    finished: list[float] = []

    def applied(batch: object) -> None:
        if not finished and app.view.agents and all(
                a.status == "finished" for a in app.view.agents.values()):
            finished.append(time.perf_counter())

    async with app.run_test(size=(160, 48)):
        app.events_applied.subscribe(app, applied)
        start = time.perf_counter()
        # Every pane has rendered its last token: a frame was written after the last
        # `agent_finished` reached the screen.
        while not finished or (drawn := draws.first_after(finished[0])) is None:
            draws.frame.clear()
            try:
                await asyncio.wait_for(draws.frame.wait(), TIMEOUT)
            except TimeoutError:
                raise SystemExit("the TUI run did not finish") from None
        return drawn - start


async def key_latency(url: str, agents: int, db: Path, presses: int,
                      draws: DrawClock) -> list[float]:
    from textual import events

    from cockpit.core import events as ev

    app = make_app(parse_crew(crew_text(url, agents)), db, watch_themes=False)
    samples: list[float] = []
    gaps = random.Random(7)
    draws.start()
    awaited: list[type[ev.BaseEvent]] = []
    applied_at: list[float] = []

    def applied(batch: list[ev.BaseEvent]) -> None:
        if awaited and any(isinstance(e, awaited[0]) and e.agent == "a0" for e in batch):
            awaited.clear()
            applied_at.append(time.perf_counter())

    async with app.run_test(size=(160, 48)):
        app.events_applied.subscribe(app, applied)
        while not (len(app.view.agents) == agents and all(
                a.tokens > 100 for a in app.view.agents.values())):
            await asyncio.sleep(0.005)
        for _ in range(presses):
            for effect in (ev.AgentPaused, ev.AgentResumed):
                await asyncio.sleep(gaps.uniform(*HUMAN_GAP))
                awaited[:], applied_at[:] = [effect], []
                start = time.perf_counter()
                app.post_message(events.Key("p", "p"))
                # Visible: the first frame written after the effect was applied to the screen.
                while not applied_at or (shown_at := draws.first_after(applied_at[0])) is None:
                    draws.frame.clear()
                    try:
                        await asyncio.wait_for(draws.frame.wait(), 10)
                    except TimeoutError:
                        raise SystemExit("a key press never took effect") from None
                samples.append(shown_at - start)
                shown = header(app, "a0")
                assert ("paused" in shown) == (effect is ev.AgentPaused), shown
    return samples


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=3000)
    parser.add_argument("--presses", type=int, default=20)
    args = parser.parse_args()

    bare, tui = [], []
    draws = DrawClock()
    server, url = start_fake(args.tokens)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run_bare(url, args.agents, args.tokens)  # warm up
            for index in range(args.rounds):
                bare.append(run_bare(url, args.agents, args.tokens)[1])
                tui.append(asyncio.run(tui_run(url, args.agents, Path(tmp) / f"{index}.db",
                                               draws)))
    finally:
        server.terminate()
        server.wait()
    ratios = [t / b for t, b in zip(tui, bare, strict=True)]

    latencies = {}
    for label, delay in (("100 tok/s per agent", 0.01), ("full speed", 0.0)):
        server, url = start_fake(2_000_000, delay)  # long enough to stream through every press
        try:
            with tempfile.TemporaryDirectory() as tmp:
                latencies[label] = asyncio.run(key_latency(url, args.agents, Path(tmp) / "k.db",
                                                           args.presses, draws))
        finally:
            server.terminate()
            server.wait()

    print(f"{args.agents} agents x {args.tokens} tokens, fake Ollama at full speed, "
          f"median of {args.rounds} alternating rounds")
    print(f"  bare ollama.AsyncClient (streaming)   {statistics.median(bare):.2f} s")
    print(f"  TUI, mount to every last token        {statistics.median(tui):.2f} s")
    print(f"  ratio (target <= 1.5)                 {statistics.median(ratios):.2f} "
          f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})")
    for label, samples in latencies.items():
        print(f"key press to visible effect, {len(samples)} presses, {args.agents} agents "
              f"streaming at {label}")
        print(f"  median {statistics.median(samples) * 1000:.1f} ms, "
              f"p95 {percentile(samples, 0.95) * 1000:.1f} ms (target < 50 ms), "
              f"max {max(samples) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
