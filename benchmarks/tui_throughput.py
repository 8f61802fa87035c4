"""The TUI under load: how much slower than the bare client, and how fast a key takes effect.

1. Throughput: the fake Ollama server (its own process) streams 8 agents x 3000 tokens at full
   speed. Alternating in one run, we time the bare `ollama.AsyncClient` consuming the 8 streams
   (first request to last chunk) and the cockpit TUI headless under `run_test` (mount to every
   pane having rendered its last token). Target: ratio <= 1.5.
2. Latency: while 8 agents stream at full speed, post `p` as the terminal driver would and time
   until the focused pane's header says `paused`, then `p` again until it no longer does.
   Target: p95 < 50 ms.

    python benchmarks/tui_throughput.py [--rounds 3] [--presses 20]
"""

from __future__ import annotations

import argparse
import asyncio
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


def crew_text(url: str, agents: int) -> str:
    lines = [f'name = "bench"\nmodel = "m1"\nhost = "{url}"\n']
    lines += [f'[[agents]]\nname = "a{i}"\ntask = "go {i}"\n' for i in range(agents)]
    return "\n".join(lines)


def header(app: CockpitApp, name: str) -> str:
    return str(app.cockpit.panes[name].header.render())


async def tui_run(url: str, agents: int, db: Path) -> float:
    app = make_app(parse_crew(crew_text(url, agents)), db, watch_themes=False)
    async with app.run_test(size=(160, 48)):
        start = time.perf_counter()
        deadline = start + TIMEOUT
        while not (app.view.agents and all(a.status == "finished"
                                           for a in app.view.agents.values())):
            if time.perf_counter() > deadline:
                raise SystemExit("the TUI run did not finish")
            await asyncio.sleep(0.001)
        return time.perf_counter() - start


async def key_latency(url: str, agents: int, db: Path, presses: int) -> list[float]:
    from textual import events

    app = make_app(parse_crew(crew_text(url, agents)), db, watch_themes=False)
    samples: list[float] = []
    async with app.run_test(size=(160, 48)):
        while not (len(app.view.agents) == agents and all(
                a.tokens > 100 for a in app.view.agents.values())):
            await asyncio.sleep(0.005)
        for _ in range(presses):
            for want_paused in (True, False):
                start = time.perf_counter()
                app.post_message(events.Key("p", "p"))
                while ("paused" in header(app, "a0")) != want_paused:
                    if time.perf_counter() - start > 10:
                        raise SystemExit("a key press never took effect")
                    await asyncio.sleep(0.001)
                samples.append(time.perf_counter() - start)
    return samples


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=3000)
    parser.add_argument("--presses", type=int, default=20)
    args = parser.parse_args()

    bare, tui = [], []
    server, url = start_fake(args.tokens)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run_bare(url, args.agents, args.tokens)  # warm up
            for index in range(args.rounds):
                bare.append(run_bare(url, args.agents, args.tokens)[1])
                tui.append(asyncio.run(tui_run(url, args.agents, Path(tmp) / f"{index}.db")))
    finally:
        server.terminate()
        server.wait()
    ratios = [t / b for t, b in zip(tui, bare, strict=True)]

    server, url = start_fake(2_000_000)  # long enough to stream through every press
    try:
        with tempfile.TemporaryDirectory() as tmp:
            samples = asyncio.run(key_latency(url, args.agents, Path(tmp) / "k.db",
                                              args.presses))
    finally:
        server.terminate()
        server.wait()

    print(f"{args.agents} agents x {args.tokens} tokens, fake Ollama at full speed, "
          f"median of {args.rounds} alternating rounds")
    print(f"  bare ollama.AsyncClient (streaming)   {statistics.median(bare):.2f} s")
    print(f"  TUI, mount to every last token        {statistics.median(tui):.2f} s")
    print(f"  ratio (target <= 1.5)                 {statistics.median(ratios):.2f}")
    print(f"key press to visible effect, {len(samples)} presses while {args.agents} agents "
          "stream at full speed")
    print(f"  median {statistics.median(samples) * 1000:.1f} ms, "
          f"p95 {percentile(samples, 0.95) * 1000:.1f} ms (target < 50 ms), "
          f"max {max(samples) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
