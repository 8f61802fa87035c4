"""What does cockpit cost on top of the bare ollama client, and the event log on top of SQLite?

1. The fake Ollama server (its own process) streams 8 agents x 3000 tokens at full speed.
   Alternating in one run, we time (a) a bare `ollama.AsyncClient` consuming the same 8 streams
   concurrently and doing nothing else, and (b) `cockpit run --headless` on an 8-agent crew.
   Both are whole processes, start-up included, as a user runs them. We also report the
   streaming phase alone (first request to last chunk), measured inside each process.
2. The event log's throughput against raw `sqlite3.executemany` on the same rows and schema.

Targets (issue 2): run ratio <= 1.2; log >= 50 % of raw executemany. Machines are noisy:
the figures are medians of alternating rounds, and only the ratios mean anything.

    python benchmarks/headless_overhead.py [--rounds 5] [--agents 8] [--tokens 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120  # seconds for one run: a hung server must fail the benchmark, not stall it

BARE_CLIENT = """
import asyncio, sys, time
import ollama
async def main(url, agents):
    client = ollama.AsyncClient(host=url)
    async def one(i):
        n = 0
        async for part in await client.chat("m1", messages=[{"role": "user", "content": f"go {i}"}],
                                            stream=True):
            n += 1
        return n
    start = time.perf_counter()
    counts = await asyncio.gather(*(one(i) for i in range(agents)))
    print(time.perf_counter() - start, sum(counts))
    await client.close()
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def crew_file(directory: Path, url: str, agents: int) -> Path:
    lines = [f'name = "bench"\nmodel = "m1"\nhost = "{url}"\n']
    for i in range(agents):
        lines.append(f'[[agents]]\nname = "a{i}"\ntask = "go {i}"\n')
    path = directory / "bench.toml"
    path.write_text("\n".join(lines))
    return path


def start_fake(tokens: int, delay: float = 0.0) -> tuple[subprocess.Popen[str], str]:
    """The fake Ollama in its own process; `delay` seconds between chunks (0: full speed)."""
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fake_ollama.py"), "--tokens", str(tokens),
         "--models", "m1", "--delay", str(delay)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    assert server.stdout is not None
    return server, server.stdout.readline().strip()


def run_bare(url: str, agents: int, tokens: int) -> tuple[float, float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", BARE_CLIENT, url, str(agents)],
                          capture_output=True, text=True, check=True, timeout=TIMEOUT)
    wall = time.perf_counter() - start
    streaming, chunks = done.stdout.split()
    assert int(chunks) == agents * (tokens + 1), done.stdout
    return wall, float(streaming)


def run_cockpit(crew: Path, db: Path, agents: int, tokens: int) -> tuple[float, float]:
    db.unlink(missing_ok=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cockpit", "run", str(crew), "--headless",
                           "--db", str(db)], capture_output=True, text=True, timeout=TIMEOUT)
    wall = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db) as raw:
        first, last = raw.execute(
            "SELECT min(ts), max(ts) FROM events WHERE type IN ('agent_started', 'token')"
        ).fetchone()
        count = raw.execute("SELECT sum(json_extract(data, '$.chunks')) FROM events "
                            "WHERE type = 'token'").fetchone()[0]
    assert count == agents * tokens, count
    return wall, last - first


def bench_runs(rounds: int, agents: int, tokens: int) -> dict[str, float]:
    server, url = start_fake(tokens)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            crew = crew_file(Path(tmp), url, agents)
            db = Path(tmp) / "bench.db"
            run_bare(url, agents, tokens)  # warm the server and the page cache
            bare_wall, bare_stream, ck_wall, ck_stream = [], [], [], []
            for _ in range(rounds):
                wall, stream = run_bare(url, agents, tokens)
                bare_wall.append(wall)
                bare_stream.append(stream)
                wall, stream = run_cockpit(crew, db, agents, tokens)
                ck_wall.append(wall)
                ck_stream.append(stream)
    finally:
        server.terminate()
        server.wait()
    ratios = [c / b for c, b in zip(ck_wall, bare_wall, strict=True)]
    stream_ratios = [c / b for c, b in zip(ck_stream, bare_stream, strict=True)]
    return {
        "bare_wall_s": statistics.median(bare_wall),
        "cockpit_wall_s": statistics.median(ck_wall),
        "wall_ratio": statistics.median(ratios),
        "bare_stream_s": statistics.median(bare_stream),
        "cockpit_stream_s": statistics.median(ck_stream),
        "stream_ratio": statistics.median(stream_ratios),
    }


async def log_throughput(rows: int) -> float:
    """Events per second through EventLog.append + flush (encoding included)."""
    from cockpit.core import events as ev
    from cockpit.core.eventlog import EventLog

    events = [ev.TokenStreamed(session="s", agent=f"a{i % 8}", seq=i + 1, ts=1e9 + i,
                               text=f"tok{i} ") for i in range(rows)]
    with tempfile.TemporaryDirectory() as tmp:
        async with EventLog.open(Path(tmp) / "log.db") as log:
            start = time.perf_counter()
            for event in events:
                log.append(event)
            await log.flush()
            return rows / (time.perf_counter() - start)


def raw_throughput(rows: int) -> float:
    """Rows per second through raw sqlite3.executemany, same schema, same rows, one commit
    per 400 rows (the log's batch size), WAL + synchronous=NORMAL."""
    from cockpit.core import events as ev
    from cockpit.core.logschema import INSERT_EVENT, SCHEMA, encode

    encoded = [encode(ev.TokenStreamed(session="s", agent=f"a{i % 8}", seq=i + 1, ts=1e9 + i,
                                       text=f"tok{i} ")) for i in range(rows)]
    with tempfile.TemporaryDirectory() as tmp:
        raw = sqlite3.connect(Path(tmp) / "raw.db")
        raw.execute("PRAGMA journal_mode = WAL")
        raw.execute("PRAGMA synchronous = NORMAL")
        raw.executescript(SCHEMA)
        start = time.perf_counter()
        for offset in range(0, rows, 400):
            raw.executemany(INSERT_EVENT, encoded[offset: offset + 400])
            raw.commit()
        elapsed = time.perf_counter() - start
        raw.close()
    return rows / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=3000)
    parser.add_argument("--log-rows", type=int, default=200_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.pop("COCKPIT_DB", None)

    runs = bench_runs(args.rounds, args.agents, args.tokens)
    log_rates, raw_rates = [], []
    for _ in range(args.rounds):
        raw_rates.append(raw_throughput(args.log_rows))
        log_rates.append(asyncio.run(log_throughput(args.log_rows)))
    log_ratios = [log / raw for log, raw in zip(log_rates, raw_rates, strict=True)]
    result = {
        **runs,
        "log_events_per_s": statistics.median(log_rates),
        "raw_rows_per_s": statistics.median(raw_rates),
        "log_vs_raw": statistics.median(log_ratios),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.agents} agents x {args.tokens} tokens, fake Ollama at full speed, "
          f"median of {args.rounds} alternating rounds")
    print(f"  bare ollama.AsyncClient   {result['bare_wall_s']:.2f} s process "
          f"({result['bare_stream_s']:.2f} s streaming)")
    print(f"  cockpit run --headless    {result['cockpit_wall_s']:.2f} s process "
          f"({result['cockpit_stream_s']:.2f} s streaming)")
    print(f"  ratio (target <= 1.2)     {result['wall_ratio']:.2f} process, "
          f"{result['stream_ratio']:.2f} streaming")
    print(f"event log, {args.log_rows} token events")
    print(f"  raw sqlite3.executemany   {result['raw_rows_per_s']:,.0f} rows/s")
    print(f"  EventLog append+flush     {result['log_events_per_s']:,.0f} events/s")
    print(f"  ratio (target >= 0.5)     {result['log_vs_raw']:.2f}")


if __name__ == "__main__":
    main()
