"""Replay at scale: a generated session of a million events.

The session imitates a long night: 8 agents streaming, each reply ~300 token events, then a
completed message and a redirect to a new turn; a retry now and then; board writes. It is
written through `EventLog` (the real writer), then measured:

1. indexing it for replay (one pass that takes the snapshots);
2. seeking to 20 random points: rebuilding the state there (target < 1 s each);
3. `write_transcript` at speed 0, i.e. `cockpit replay --headless --speed 0` (target
   >= 100k events/s);
4. the log's size per token.

    python benchmarks/replay.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cockpit.core import events as ev  # noqa: E402
from cockpit.core.eventlog import EventLog  # noqa: E402
from cockpit.core.replay import Timeline, write_transcript  # noqa: E402

AGENTS = [f"agent{i}" for i in range(8)]
REPLY = 300
SESSION = "bench-replay"


async def generate(db: Path, total: int) -> int:
    """Write a session of about `total` events; returns the token count."""
    seq = 0
    ts = 1_700_000_000.0
    tokens = 0

    async with EventLog.open(db) as log:

        def emit(kind: type[ev.BaseEvent], agent: str | None, **data: object) -> None:
            nonlocal seq, ts
            seq += 1
            ts += 0.004  # ~250 events a second, as 8 agents at ~30 frames a second
            log.append(kind(session=SESSION, agent=agent, seq=seq, ts=ts, **data))

        config = {"name": "night", "host": "http://127.0.0.1:11434", "model": "m",
                  "agents": [{"name": name, "task": "go", "after": []} for name in AGENTS]}
        emit(ev.SessionStarted, None, crew="night", config=config, pid=1, version="bench")
        for name in AGENTS:
            emit(ev.AgentStarted, name, model="m", host="http://127.0.0.1:11434",
                 messages=[{"role": "user", "content": "go"}])
        counts = dict.fromkeys(AGENTS, 0)
        rng = random.Random(1)
        while seq < total - 2:
            name = AGENTS[seq % len(AGENTS)]
            chunks = rng.randint(1, 4)  # merged chunks per event, as the runner merges them
            emit(ev.TokenStreamed, name, text="word " * chunks, chunks=chunks)
            tokens += chunks
            counts[name] += 1
            if counts[name] % REPLY == 0:
                emit(ev.MessageCompleted, name, content="(reply)", eval_count=REPLY)
                emit(ev.AgentRedirected, name, instruction="Go on.", by="person")
                emit(ev.StateSet, None, key=f"progress.{name}", value=counts[name],
                     by="person")
            elif rng.random() < 0.0005:
                emit(ev.Retrying, name, attempt=1, reason="Ollama answered 503", delay=1.0)
            if seq % 50_000 == 0:
                await log.flush()
        emit(ev.SessionFinished, None, outcome="interrupted", agents={})
    return tokens


async def measure(db: Path, seeks: int) -> dict[str, float]:
    results: dict[str, float] = {}
    async with EventLog.open(db, readonly=True) as log:
        started = time.perf_counter()
        timeline = await Timeline.load(log, SESSION)
        results["index"] = time.perf_counter() - started
        results["events"] = len(timeline)
        rng = random.Random(7)
        times = []
        for _ in range(seeks):
            target = rng.randrange(len(timeline))
            started = time.perf_counter()
            state = await timeline.state_at(target)
            times.append(time.perf_counter() - started)
            assert state.events == target
        results["seek_median"] = statistics.median(times)
        results["seek_max"] = max(times)
        sink = io.StringIO()
        started = time.perf_counter()
        count = await write_transcript(log, SESSION, sink, speed=0)
        results["transcript"] = count / (time.perf_counter() - started)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seeks", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "night.db"
        started = time.perf_counter()
        tokens = asyncio.run(generate(db, args.events))
        written = time.perf_counter() - started
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
        results = asyncio.run(measure(db, args.seeks))
    events = int(results["events"])
    print(f"a generated session of {events:,} events ({tokens:,} tokens), written in "
          f"{written:.1f} s")
    print(f"  index for replay (one pass, snapshots)  {results['index']:.1f} s")
    print(f"  seek to a random point ({args.seeks} seeks)    median "
          f"{results['seek_median'] * 1000:.0f} ms, max {results['seek_max'] * 1000:.0f} ms "
          "(target < 1 s)")
    print(f"  replay --headless --speed 0            {results['transcript']:,.0f} events/s "
          "(target >= 100k/s)")
    print(f"  log size                               {size / 1e6:.0f} MB: "
          f"{size / tokens:.1f} bytes per token, {size / events:.0f} bytes per event")


if __name__ == "__main__":
    main()
