"""A scripted, fault-injecting Ollama for tests and benchmarks.

The wire protocol is the real one (``cockpit.embedded.protocol``); only token generation is
scripted here, per model, via :class:`ModelScript`. Three ways to run it:

* ``async with FakeOllama({...}) as fake:`` on the test's event loop;
* ``with FakeOllamaThread({...}) as fake:`` on its own thread, for synchronous code;
* ``python tests/fake_ollama.py --tokens 3000 --models a,b`` as a process (prints its URL first).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import signal
import sys
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `cockpit` importable from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cockpit.embedded.protocol import (  # noqa: E402
    BUSY,
    BackendError,
    DropConnection,
    Finish,
    Generation,
    ModelEntry,
    OllamaServer,
    Piece,
    RequestRecord,
    ServerThread,
)

__all__ = ["FakeOllama", "FakeOllamaThread", "ModelScript", "RequestRecord", "ScriptedBackend",
           "wait_until"]


@dataclass
class ModelScript:
    """What one model does. Fault positions count content tokens sent in *this* request."""

    tokens: list[str] = field(default_factory=lambda: ["Hello", ",", " world", "!"])
    thinking: list[str] = field(default_factory=list)  # streamed first, unless think=false
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # {"name","arguments"}
    delay: float = 0.0  # between chunks; 0 = full speed (still yields to the loop)
    first_delay: float = 0.0
    stall_after: int | None = None  # then nothing more until the client disconnects
    drop_after: int | None = None  # then the TCP connection is closed mid-body
    error_after: int | None = None  # then a mid-stream {"error": error_message} line
    error_message: str = "an error was encountered while running the model"
    faults_for: int | None = None  # stall/drop/error only for the first N (non-failed) requests
    fail_first: int = 0  # the first N requests fail before streaming ...
    fail_status: int = 500  # ... with this status
    fail_message: str | None = None  # None: BUSY for 503, else the runner-terminated text
    done_reason: str = "stop"
    prompt_eval_count: int = 26
    reply: Callable[[list[dict[str, Any]]], list[str]] | None = None  # content from messages
    family: str = "llama"
    parameter_size: str = "1.2B"
    quantization_level: str = "Q4_K_M"
    context_length: int = 4096
    size: int = 1_234_567_890
    capabilities: list[str] | None = None  # None: derived from thinking/tool_calls


class ScriptedBackend:
    """Backend yielding scripted tokens; counts requests per model and tracks live generators
    so tests can prove that a disconnect stopped generation on the server."""

    def __init__(self, scripts: dict[str, ModelScript]) -> None:
        self.scripts = scripts
        self.calls: dict[str, int] = {}  # generate() calls per model
        self.active = 0  # generators currently running
        self.cancelled = 0  # generators stopped from outside (client disconnect)
        self.completed = 0

    def models(self) -> list[ModelEntry]:
        return [ModelEntry(name, s.size, s.family, s.parameter_size, s.quantization_level,
                           s.context_length, s.capabilities or _capabilities(s))
                for name, s in self.scripts.items()]

    def _content(self, s: ModelScript, gen: Generation) -> tuple[list[str], bool]:
        """Content tokens for this request, and whether it continues an assistant message
        (ollama#6778): partial + streamed == full, splitting a token if need be."""
        msgs = gen.messages or [*([{"role": "system", "content": gen.system}] * bool(gen.system)),
                                {"role": "user", "content": gen.prompt}]
        last = msgs[-1] if gen.endpoint == "chat" and msgs else {}
        prefix = (last.get("content") or "") if last.get("role") == "assistant" else ""
        context = msgs[:-1] if last.get("role") == "assistant" else msgs
        tokens = list(s.reply(context)) if s.reply else list(s.tokens)
        full = "".join(tokens)
        if not prefix or not full.startswith(prefix):
            return tokens, bool(prefix)
        rest, skip = [], len(prefix)
        for tok in tokens:
            if skip >= len(tok):
                skip -= len(tok)
                continue
            rest.append(tok[skip:])
            skip = 0
        return rest, True

    async def generate(self, gen: Generation) -> AsyncGenerator[Piece | Finish, None]:
        s = self.scripts[gen.entry.name]
        n = self.calls[gen.entry.name] = self.calls.get(gen.entry.name, 0) + 1
        if n <= s.fail_first:
            raise BackendError(s.fail_message or (BUSY if s.fail_status == 503 else
                                                  "llama runner process has terminated"),
                               s.fail_status)
        faulty = s.faults_for is None or n - s.fail_first <= s.faults_for
        tokens, continuing = self._content(s, gen)
        limit = gen.options.get("num_predict")
        reason = s.done_reason
        if isinstance(limit, int) and 0 <= limit < len(tokens):
            tokens, reason = tokens[:limit], "length"
        thinking = [] if continuing or not gen.think else s.thinking
        self.active += 1
        sent, done = 0, False

        async def fault() -> None:
            if faulty and sent == s.stall_after:
                await asyncio.Event().wait()  # forever: only a disconnect ends this
            if faulty and sent == s.drop_after:
                raise DropConnection()
            if faulty and sent == s.error_after:
                raise BackendError(s.error_message)

        try:
            if s.first_delay:
                await asyncio.sleep(s.first_delay)
            for t in thinking:
                yield Piece(thinking=t)
                await asyncio.sleep(s.delay)
            for tok in tokens:
                await fault()
                yield Piece(content=tok)
                sent += 1
                await asyncio.sleep(s.delay)
            await fault()
            if s.tool_calls:
                yield Piece(tool_calls=[dict(c) for c in s.tool_calls])
            done = True
            self.completed += 1
            yield Finish(done_reason=reason, prompt_eval_count=s.prompt_eval_count,
                         eval_count=len(thinking) + sent)
        except (GeneratorExit, asyncio.CancelledError):
            self.cancelled += 0 if done else 1
            raise
        finally:
            self.active -= 1


def _capabilities(s: ModelScript) -> list[str]:
    return ["completion"] + ["thinking"] * bool(s.thinking) + ["tools"] * bool(s.tool_calls)


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0,
                     what: str = "") -> None:
    """The waiting primitive for tests: poll a condition on the loop, no fixed sleeps."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.002)


class FakeOllama:
    """The fake on the current event loop. ``scripts=None`` serves one default model "m1"."""

    def __init__(self, scripts: dict[str, ModelScript] | None = None, *, parallel: int = 8,
                 max_queue: int = 512, host: str = "127.0.0.1", port: int = 0) -> None:
        self.backend = ScriptedBackend({"m1": ModelScript()} if scripts is None else scripts)
        self.requests: list[RequestRecord] = []
        self.server = OllamaServer(self.backend, host=host, port=port, parallel=parallel,
                                   max_queue=max_queue, on_request=self.requests.append)

    @property
    def url(self) -> str:
        return self.server.url

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()

    async def __aenter__(self) -> FakeOllama:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def chat_requests(self, model: str | None = None) -> list[RequestRecord]:
        return _select(self.requests, "/api/chat", model)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0,
                         what: str = "") -> None:
        await wait_until(predicate, timeout, what)


class FakeOllamaThread:
    """The same fake on a daemon thread with its own loop, for synchronous tests."""

    def __init__(self, scripts: dict[str, ModelScript] | None = None, *, parallel: int = 8,
                 max_queue: int = 512, host: str = "127.0.0.1", port: int = 0) -> None:
        self.backend = ScriptedBackend({"m1": ModelScript()} if scripts is None else scripts)
        self.requests: list[RequestRecord] = []  # list.append is atomic: safe to read here
        self.thread = ServerThread(self.backend, host=host, port=port, parallel=parallel,
                                   max_queue=max_queue, on_request=self.requests.append)

    @property
    def url(self) -> str:
        return self.thread.url

    def start(self) -> FakeOllamaThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.thread.stop()

    def __enter__(self) -> FakeOllamaThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def chat_requests(self, model: str | None = None) -> list[RequestRecord]:
        return _select(self.requests, "/api/chat", model)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0,
                   what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
            time.sleep(0.002)


def _select(records: list[RequestRecord], path: str, model: str | None) -> list[RequestRecord]:
    def same(name: str | None) -> bool:
        return model is None or (name or "").removesuffix(":latest") == model.removesuffix(
            ":latest")

    return [r for r in list(records) if r.path == path and same(r.model)]


def scripts_from_args(argv: list[str] | None = None) -> tuple[argparse.Namespace,
                                                               dict[str, ModelScript]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--script", type=Path, help='JSON {"model": {ModelScript fields}}')
    p.add_argument("--tokens", type=int, help='each model streams N tokens "tok0 ", "tok1 ", ...')
    p.add_argument("--models", default=None, help="comma-separated model names (default m1)")
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--parallel", type=int, default=8)
    p.add_argument("--max-queue", type=int, default=512)
    args = p.parse_args(argv)
    base: dict[str, Any] = {"delay": args.delay}
    if args.tokens is not None:
        base["tokens"] = [f"tok{i} " for i in range(args.tokens)]
    names = args.models.split(",") if args.models else ([] if args.script else ["m1"])
    scripts = {n.strip(): ModelScript(**base) for n in names if n.strip()}
    if args.script:
        known = {f.name for f in dataclasses.fields(ModelScript)} - {"reply"}
        for name, fields in json.loads(args.script.read_text()).items():
            unknown = set(fields) - known
            if unknown:
                p.error(f"{name}: unknown ModelScript fields {sorted(unknown)}")
            scripts[name] = ModelScript(**{**base, **fields})
    return args, scripts


async def _main(argv: list[str] | None = None) -> None:
    args, scripts = scripts_from_args(argv)
    async with FakeOllama(scripts, parallel=args.parallel, max_queue=args.max_queue,
                          host=args.host, port=args.port) as fake:
        print(fake.url, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(_main())
