"""The embedded engine: what the cockpit costs over llama.cpp itself, and how it scales.

1. One agent. Alternating in one run, with the model loaded in both: llama-cpp-python called
   directly (the same chat template, sampling options and seed, `Llama.generate`) against a
   one-agent crew run by the cockpit (supervisor, event log, the real `ollama` client, the
   loopback server). Each side is timed from the request to its last token, the prompt
   included. Target: cockpit tok/s / direct tok/s >= 0.9.
2. Aggregate tok/s of the engine (2 generations at once, the `cockpit demo` setting) with 1, 2
   and 4 agents streaming together through the cockpit.

    python benchmarks/embedded.py [--rounds 5] [--tokens 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cockpit.core.bus import EventBus  # noqa: E402
from cockpit.core.config import parse_crew  # noqa: E402
from cockpit.core.eventlog import EventLog  # noqa: E402
from cockpit.core.supervisor import Supervisor  # noqa: E402
from cockpit.embedded.llama import (  # noqa: E402
    DEFAULTS,
    MODEL_NAME,
    LlamaBackend,
    embedded_engine,
)
from cockpit.embedded.protocol import ServerThread  # noqa: E402

TASK = "Count from 1 to 500, separated by commas."
SEED = 11


def options(tokens: int) -> dict[str, float | int]:
    return {"temperature": 0.0, "seed": SEED, "num_predict": tokens}


def direct(backend: LlamaBackend, llm: object, tokens: int) -> tuple[int, float]:
    """(tokens, seconds) from llama-cpp-python with what the engine would send it."""
    from llama_cpp import llama_vocab_is_eog

    from cockpit.embedded.llama import _prompt_tokens
    from cockpit.embedded.protocol import Generation

    gen = Generation("chat", MODEL_NAME, backend.models()[0],
                     [{"role": "user", "content": TASK}], "", None, options(tokens), None, {})
    settings = {**DEFAULTS, **gen.options}
    started = time.perf_counter()
    prompt = _prompt_tokens(llm, gen)  # type: ignore[arg-type]
    llm.set_seed(SEED)  # type: ignore[attr-defined]
    llm.reset()  # type: ignore[attr-defined] # the engine evaluates the whole prompt: so do we
    count = 0
    for token in llm.generate(  # type: ignore[attr-defined]
            prompt, top_k=int(settings["top_k"]), top_p=float(settings["top_p"]),
            min_p=float(settings["min_p"]), temp=float(settings["temperature"]),
            repeat_penalty=float(settings["repeat_penalty"])):
        if llama_vocab_is_eog(llm._model.vocab, token):  # type: ignore[attr-defined]
            break
        llm.detokenize([token])  # type: ignore[attr-defined]
        count += 1
        if count >= tokens:
            break
    return count, time.perf_counter() - started


def crew_text(agents: int, tokens: int) -> str:
    lines = [f'name = "bench"\nhost = "embedded"\nmodel = "{MODEL_NAME}"\n']
    for i in range(agents):
        lines.append(f'[[agents]]\nname = "a{i}"\ntask = "{TASK}"\n'
                     f'options = {{ temperature = 0.0, seed = {SEED + i}, '
                     f'num_predict = {tokens} }}\n')
    return "\n".join(lines)


async def through_cockpit(url: str, agents: int, tokens: int, db: Path) -> tuple[int, float]:
    """(tokens, seconds) for a crew of `agents`, from the first request to the last token."""
    crew = parse_crew(crew_text(agents, tokens))
    async with EventLog.open(db) as log:
        supervisor = Supervisor(crew, log, EventBus(), hosts={"embedded": url})
        started = time.perf_counter()
        state = await supervisor.run()
        elapsed = time.perf_counter() - started
    assert state.outcome == "finished", state.outcome
    return sum(a.tokens for a in state.agents.values()), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=200)
    args = parser.parse_args()

    # 1. one agent. Both sides use the engine's one context: a second llama.cpp instance
    # would keep its worker threads spinning and slow whichever side runs next.
    backend = LlamaBackend(parallel=1)
    ratios, direct_rates, cockpit_rates = [], [], []
    with ServerThread(backend, parallel=1) as server, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(through_cockpit(server.url, 1, 8, Path(tmp) / "warm.db"))  # loads it
        llm = backend._free[0]  # idle between requests  # noqa: SLF001
        direct(backend, llm, 8)
        for index in range(args.rounds):
            n, seconds = direct(backend, llm, args.tokens)
            direct_rates.append(n / seconds)
            n, seconds = asyncio.run(through_cockpit(server.url, 1, args.tokens,
                                                     Path(tmp) / f"{index}.db"))
            cockpit_rates.append(n / seconds)
            ratios.append(cockpit_rates[-1] / direct_rates[-1])
    backend.close()

    # 2. aggregate, with the demo's two slots
    aggregate: dict[int, float] = {}
    with embedded_engine(parallel=2) as server, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(through_cockpit(server.url, 2, 8, Path(tmp) / "warm.db"))
        for agents in (1, 2, 4):
            rates = []
            for index in range(max(1, args.rounds // 2)):
                n, seconds = asyncio.run(through_cockpit(server.url, agents, args.tokens,
                                                         Path(tmp) / f"{agents}-{index}.db"))
                rates.append(n / seconds)
            aggregate[agents] = statistics.median(rates)

    cores = os.cpu_count()
    print(f"SmolLM2-135M Q4_1, {args.tokens} tokens per agent, {cores} cores, "
          f"median of {args.rounds} alternating rounds")
    print(f"  llama-cpp-python direct       {statistics.median(direct_rates):6.1f} tok/s")
    print(f"  through the cockpit           {statistics.median(cockpit_rates):6.1f} tok/s")
    print(f"  ratio (target >= 0.9)         {statistics.median(ratios):6.2f} "
          f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})")
    print("aggregate through the cockpit, engine with 2 slots")
    for agents, rate in aggregate.items():
        print(f"  {agents} agent{'s' if agents > 1 else ' '}                      "
              f"{rate:6.1f} tok/s")


if __name__ == "__main__":
    main()
