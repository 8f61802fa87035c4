"""A scripted, fault-injecting Ollama for tests and benchmarks.

The wire protocol is the real one (``cockpit.embedded.protocol``); only token generation is
scripted here, per model, via :class:`ModelScript`. Three ways to run it:

* ``async with FakeOllama({...}) as fake:`` on the test's event loop;
* ``with FakeOllamaThread({...}) as fake:`` on its own thread, for synchronous code;
* ``python tests/fake_ollama.py --tokens 3000 --models a,b`` as a process (prints its URL first).

For soak runs (benchmarks/soak.py) it can also draw seeded random faults per request
(:class:`FaultPlan`), go down and come back on the same port (``FakeOllama.restart``, or
``--restart AT:FOR`` / ``restart SECONDS`` on stdin with ``--control``), and keep a record of
what it sent: per generation request, the continuation prefix it was given and the exact
content chunks it wrote, and whether the ``done`` chunk was written (``--record FILE``, JSONL
written as it goes, so it survives whatever happens to the client).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import math
import random
import signal
import sys
import threading
import time
from collections import deque
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

__all__ = ["Fault", "FaultPlan", "FakeOllama", "FakeOllamaThread", "ModelScript", "RequestRecord",
           "ScriptedBackend", "Turn", "sha256", "wait_until"]


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
    gate: Callable[[int], bool] | None = None
    """Paces the stream from outside: before sending token i of the reply (a continuation
    counts on from the tokens its partial holds), wait until gate(i) is true. Polled on the
    server's loop, so a test on another thread opens it with a plain assignment; a
    disconnect still ends the wait."""
    fail_first: int = 0  # the first N requests fail before streaming ...
    fail_status: int = 500  # ... with this status
    fail_message: str | None = None  # None: BUSY for 503, else the runner-terminated text
    done_reason: str = "stop"
    prompt_eval_count: int = 26
    reply: Callable[[list[dict[str, Any]]], list[str]] | None = None  # content from messages
    turn: Callable[[list[dict[str, Any]]], Turn] | None = None
    """A conversation, scripted: the reply and the tool calls for the messages so far (turn
    1 calls a tool, turn 2 answers from its result). Overrides tokens, reply and tool_calls."""
    family: str = "llama"
    parameter_size: str = "1.2B"
    quantization_level: str = "Q4_K_M"
    context_length: int = 4096
    size: int = 1_234_567_890
    capabilities: list[str] | None = None  # None: derived from thinking/tool_calls


@dataclass
class Turn:
    """One scripted turn: content tokens, then tool calls ({"name", "arguments"})."""

    tokens: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def say(cls, text: str) -> Turn:
        return cls([word + " " for word in text.split(" ")[:-1]] + text.split(" ")[-1:])

    @classmethod
    def call(cls, name: str, **arguments: Any) -> Turn:
        return cls([], [{"name": name, "arguments": arguments}])


FAULT_KINDS = ("500", "503", "stall", "drop", "error")
TAIL_TIMES = 200  # write times kept for a request's last chunks, in the record
GATE_POLL = 0.005  # seconds between looks at a closed ModelScript.gate


@dataclass(frozen=True)
class Fault:
    """One injected fault: "500" or "503" before streaming; "stall", "drop" or "error" once
    ``after`` content tokens of this request have been sent."""

    kind: str
    after: int = 0


@dataclass
class FaultPlan:
    """Seeded random faults, drawn once per generation request (model, n-th call of that model),
    so an agent's faults depend on the seed and its own history, not on other agents' timing.

    ``status_500`` and ``busy_503`` are probabilities per request. ``stall``, ``drop`` and
    ``error`` are hazards per content token: the first mid-stream fault of a request strikes
    after a geometric number of tokens, so faults spread evenly over long replies instead of
    bunching at their starts. ``drawn`` lists every fault drawn, in order.
    """

    seed: int = 0
    status_500: float = 0.0
    busy_503: float = 0.0
    stall: float = 0.0
    drop: float = 0.0
    error: float = 0.0
    min_after: int = 1  # mid-stream faults strike after at least this many tokens
    drawn: list[dict[str, Any]] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return any((self.status_500, self.busy_503, self.stall, self.drop, self.error))

    def draw(self, model: str, n: int, tokens: int) -> Fault | None:
        """The fault for the n-th request to `model`, which would stream `tokens` tokens."""
        rng = random.Random(f"{self.seed}:{model}:{n}")
        u = rng.random()
        fault: Fault | None = None
        if u < self.status_500:
            fault = Fault("500")
        elif u < self.status_500 + self.busy_503:
            fault = Fault("503")
        else:
            hazard = self.stall + self.drop + self.error
            if hazard > 0:
                gap = 0 if hazard >= 1 else int(math.log(1.0 - rng.random())
                                                / math.log(1.0 - hazard))
                after = self.min_after + gap
                if after <= tokens:
                    r = rng.random() * hazard
                    kind = ("stall" if r < self.stall else
                            "drop" if r < self.stall + self.drop else "error")
                    fault = Fault(kind, after)
        if fault is not None:
            self.drawn.append({"model": model, "n": n, "kind": fault.kind, "after": fault.after})
        return fault


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class ScriptedBackend:
    """Backend yielding scripted tokens; counts requests per model and tracks live generators
    so tests can prove that a disconnect stopped generation on the server."""

    def __init__(self, scripts: dict[str, ModelScript], plan: FaultPlan | None = None) -> None:
        self.scripts = scripts
        self.plan = plan  # seeded random faults on top of the scripts' own, if any
        self.calls: dict[str, int] = {}  # generate() calls per model
        self.active = 0  # generators currently running
        self.cancelled = 0  # generators stopped from outside (client disconnect)
        self.completed = 0
        self.recording = False  # FakeOllama turns it on when asked to keep a record
        self.sent: dict[int, dict[str, Any]] = {}
        """What each running generation was given and has yielded, by id() of its request body
        (the same dict object as ``RequestRecord.body``); FakeOllama pops it when the request
        ends. A yielded piece is written at once by the protocol layer, so yielded = sent."""

    def models(self) -> list[ModelEntry]:
        return [ModelEntry(name, s.size, s.family, s.parameter_size, s.quantization_level,
                           s.context_length, s.capabilities or _capabilities(s))
                for name, s in self.scripts.items()]

    @staticmethod
    def _split(gen: Generation) -> tuple[list[dict[str, Any]], str]:
        """(the messages before any assistant message being continued, that message's text)."""
        msgs = gen.messages or [*([{"role": "system", "content": gen.system}] * bool(gen.system)),
                                {"role": "user", "content": gen.prompt}]
        last = msgs[-1] if gen.endpoint == "chat" and msgs else {}
        prefix = (last.get("content") or "") if last.get("role") == "assistant" else ""
        context = msgs[:-1] if last.get("role") == "assistant" else msgs
        return context, prefix

    def _content(self, s: ModelScript, gen: Generation) -> tuple[list[str], bool, int]:
        """Content tokens for this request, whether it continues an assistant message
        (ollama#6778): partial + streamed == full, splitting a token if need be, and how many
        of the reply's tokens the partial holds whole."""
        context, prefix = self._split(gen)
        tokens = (list(s.turn(context).tokens) if s.turn else
                  list(s.reply(context)) if s.reply else list(s.tokens))
        full = "".join(tokens)
        if not prefix or not full.startswith(prefix):
            return tokens, bool(prefix), 0
        rest, skip = [], len(prefix)
        for tok in tokens:
            if skip >= len(tok):
                skip -= len(tok)
                continue
            rest.append(tok[skip:])
            skip = 0
        return rest, True, len(tokens) - len(rest)

    async def generate(self, gen: Generation) -> AsyncGenerator[Piece | Finish, None]:
        s = self.scripts[gen.entry.name]
        n = self.calls[gen.entry.name] = self.calls.get(gen.entry.name, 0) + 1
        if n <= s.fail_first:
            raise BackendError(s.fail_message or (BUSY if s.fail_status == 503 else
                                                  "llama runner process has terminated"),
                               s.fail_status)
        faulty = s.faults_for is None or n - s.fail_first <= s.faults_for
        tokens, continuing, before = self._content(s, gen)
        limit = gen.options.get("num_predict")
        reason = s.done_reason
        if isinstance(limit, int) and 0 <= limit < len(tokens):
            tokens, reason = tokens[:limit], "length"
        thinking = [] if continuing or not gen.think else s.thinking
        stall_at, drop_at, error_at = ((s.stall_after, s.drop_after, s.error_after) if faulty
                                       else (None, None, None))
        planned = (self.plan.draw(gen.entry.name, n, len(tokens))
                   if self.plan is not None and self.plan.active else None)
        info = self._record_start(gen, n, planned)
        if planned is not None and planned.kind in ("500", "503"):
            raise BackendError(BUSY if planned.kind == "503" else
                               "llama runner process has terminated", int(planned.kind))
        if planned is not None:
            stall_at, drop_at, error_at = (planned.after if planned.kind == k else None
                                           for k in ("stall", "drop", "error"))
        chunks: list[str] = info["chunks"]
        times: deque[float] = info["tail_times"]
        self.active += 1
        sent, done = 0, False

        async def fault() -> None:
            if sent == stall_at:
                await asyncio.Event().wait()  # forever: only a disconnect ends this
            if sent == drop_at:
                raise DropConnection()
            if sent == error_at:
                raise BackendError(s.error_message)

        try:
            if s.first_delay:
                await asyncio.sleep(s.first_delay)
            for t in thinking:
                yield Piece(thinking=t)
                await asyncio.sleep(s.delay)
            for tok in tokens:
                await fault()
                while s.gate is not None and not s.gate(before + sent):
                    await asyncio.sleep(GATE_POLL)
                chunks.append(tok)  # before the yield: the protocol writes it at once
                times.append(time.time())
                yield Piece(content=tok)
                sent += 1
                await asyncio.sleep(s.delay)
            await fault()
            calls = s.turn(self._split(gen)[0]).tool_calls if s.turn else s.tool_calls
            if calls:
                yield Piece(tool_calls=[dict(c) for c in calls])
            done = True
            self.completed += 1
            info["finish"] = True
            yield Finish(done_reason=reason, prompt_eval_count=s.prompt_eval_count,
                         eval_count=len(thinking) + sent)
        except (GeneratorExit, asyncio.CancelledError):
            self.cancelled += 0 if done else 1
            raise
        finally:
            self.active -= 1


    def _record_start(self, gen: Generation, n: int, fault: Fault | None) -> dict[str, Any]:
        if not self.recording:
            return {"chunks": [], "finish": False, "tail_times": deque(maxlen=1)}
        context, prefix = self._split(gen)
        s = self.scripts[gen.entry.name]
        full = "".join(s.reply(context) if s.reply else s.tokens)
        user = next((m.get("content") or "" for m in reversed(context)
                     if m.get("role") == "user"), "")
        info: dict[str, Any] = {
            "n": n, "prefix_len": len(prefix), "prefix_sha": sha256(prefix),
            "prefix_ok": full.startswith(prefix), "user_sha": sha256(user),
            "fault": None if fault is None else {"kind": fault.kind, "after": fault.after},
            "chunks": [], "finish": False,
            "tail_times": deque(maxlen=TAIL_TIMES),  # when the last chunks were written
        }
        if not info["prefix_ok"]:
            info["prefix"] = prefix  # rare, and then the text is what one wants to see
        self.sent[id(gen.body)] = info
        return info


def _capabilities(s: ModelScript) -> list[str]:
    tools = bool(s.tool_calls or s.turn)
    return ["completion"] + ["thinking"] * bool(s.thinking) + ["tools"] * tools


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0,
                     what: str = "") -> None:
    """The waiting primitive for tests: poll a condition on the loop, no fixed sleeps."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.002)


class _RecordingServer(OllamaServer):
    """OllamaServer that reports each request once it has ended (on_request reports it at its
    start), so what was written, including the ``done`` chunk, is known."""

    def __init__(self, backend: ScriptedBackend, *, on_end: Callable[[RequestRecord], None],
                 **kwargs: Any) -> None:
        self._on_start = kwargs.pop("on_request", None)
        super().__init__(backend, on_request=self._started, **kwargs)
        self._on_end = on_end
        self._live: dict[asyncio.Task[Any] | None, RequestRecord] = {}

    def _started(self, rec: RequestRecord) -> None:
        self._live[asyncio.current_task()] = rec
        if self._on_start is not None:
            self._on_start(rec)

    async def _handle(self, conn: Any, method: str, path: str, raw: bytes,
                      close: bool) -> None:
        try:
            await super()._handle(conn, method, path, raw, close)
        finally:
            rec = self._live.pop(asyncio.current_task(), None)
            if rec is not None:
                self._on_end(rec)


class FakeOllama:
    """The fake on the current event loop. ``scripts=None`` serves one default model "m1".

    ``plan`` injects seeded random faults; ``record`` (if given) is called with one JSON-able
    dict per ended request and per restart, and ``self.sent`` keeps the same dicts.
    """

    def __init__(self, scripts: dict[str, ModelScript] | None = None, *, parallel: int = 8,
                 max_queue: int = 512, host: str = "127.0.0.1", port: int = 0,
                 plan: FaultPlan | None = None,
                 record: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.backend = ScriptedBackend({"m1": ModelScript()} if scripts is None else scripts,
                                       plan)
        self.requests: list[RequestRecord] = []
        self.sent: list[dict[str, Any]] = []  # one per ended request, then restarts, in order
        self._record = record
        self.backend.recording = record is not None
        self.up = False
        self.restarts = 0
        self.server = _RecordingServer(self.backend, host=host, port=port, parallel=parallel,
                                       max_queue=max_queue, on_request=self.requests.append,
                                       on_end=self._ended)

    @property
    def url(self) -> str:
        return self.server.url

    async def start(self) -> None:
        await self.server.start()  # a restart binds the port the first start got
        self.up = True

    async def stop(self) -> None:
        self.up = False
        await self.server.stop()

    async def restart(self, down: float) -> None:
        """Go away (stop listening, close every live connection mid-body) for `down` seconds,
        then come back on the same port, as an Ollama restart or a host reboot does."""
        self.restarts += 1
        self._note({"type": "down", "at": time.time(), "for": down, "restart": self.restarts})
        await self.stop()
        await asyncio.sleep(down)
        for attempt in range(50):  # the port is ours; a moment's EADDRINUSE is retried
            try:
                await self.start()
                break
            except OSError:
                if attempt == 49:
                    raise
                await asyncio.sleep(0.1)
        self._note({"type": "up", "at": time.time(), "restart": self.restarts})

    def _ended(self, rec: RequestRecord) -> None:
        if self._record is None:
            return
        info = self.backend.sent.pop(id(rec.body), None) if rec.body is not None else None
        entry: dict[str, Any] = {
            "type": "request", "path": rec.path, "model": rec.model, "status": rec.status,
            "connection": rec.connection, "at": rec.started_at, "ended": rec.ended_at,
            "error": rec.error, "disconnected": rec.disconnected,
        }
        if info is not None:
            entry.update(info)
            entry["tail_times"] = list(info["tail_times"])
            entry["done"] = bool(info["finish"] and rec.finished and rec.error is None)
        self._note(entry)

    def _note(self, entry: dict[str, Any]) -> None:
        self.sent.append(entry)
        if self._record is not None:
            self._record(entry)

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
    p.add_argument("--scenario", choices=("research",), help="a scripted crew that calls "
                   "tools (tests/scenarios.py), for each of --models")
    p.add_argument("--tokens", type=int, help='each model streams N tokens "tok0 ", "tok1 ", ...')
    p.add_argument("--models", default=None, help="comma-separated model names (default m1)")
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--parallel", type=int, default=8)
    p.add_argument("--max-queue", type=int, default=512)
    f = p.add_argument_group("seeded random faults (FaultPlan)")
    f.add_argument("--fault-seed", type=int, default=0)
    f.add_argument("--fault-500", type=float, default=0.0, metavar="P",
                   help="probability per request of an HTTP 500 before streaming")
    f.add_argument("--fault-503", type=float, default=0.0, metavar="P",
                   help="probability per request of a 503 busy")
    f.add_argument("--fault-stall", type=float, default=0.0, metavar="H",
                   help="hazard per content token of a stall (nothing more until disconnect)")
    f.add_argument("--fault-drop", type=float, default=0.0, metavar="H",
                   help="hazard per content token of a TCP drop mid-body")
    f.add_argument("--fault-error", type=float, default=0.0, metavar="H",
                   help='hazard per content token of a mid-stream {"error"} line')
    f.add_argument("--fault-min-after", type=int, default=1, metavar="N",
                   help="mid-stream faults strike after at least N tokens (default 1)")
    r = p.add_argument_group("restarts and the record")
    r.add_argument("--restart", action="append", default=[], metavar="AT:FOR",
                   help="go down AT seconds after start for FOR seconds (repeatable)")
    r.add_argument("--control", action="store_true",
                   help="read commands on stdin: 'restart SECONDS', 'quit'; EOF quits")
    r.add_argument("--record", type=Path, metavar="FILE",
                   help="append one JSON line per ended request and per restart, as it goes")
    args = p.parse_args(argv)
    try:
        args.restart = [tuple(float(x) for x in item.split(":", 1)) for item in args.restart]
        if any(len(item) != 2 for item in args.restart):
            raise ValueError
    except ValueError:
        p.error("--restart takes AT:FOR in seconds, e.g. 30:5")
    base: dict[str, Any] = {"delay": args.delay}
    if args.tokens is not None:
        base["tokens"] = [f"tok{i} " for i in range(args.tokens)]
    if args.scenario:
        from tests.scenarios import SCENARIOS

        base.setdefault("delay", 0.0)
        base["turn"] = SCENARIOS[args.scenario]
    names = args.models.split(",") if args.models else ([] if args.script else ["m1"])
    scripts = {n.strip(): ModelScript(**base) for n in names if n.strip()}
    if args.script:
        known = {f.name for f in dataclasses.fields(ModelScript)} - {"reply", "gate"}
        for name, fields in json.loads(args.script.read_text()).items():
            unknown = set(fields) - known
            if unknown:
                p.error(f"{name}: unknown ModelScript fields {sorted(unknown)}")
            scripts[name] = ModelScript(**{**base, **fields})
    return args, scripts


def plan_from_args(args: argparse.Namespace) -> FaultPlan | None:
    plan = FaultPlan(seed=args.fault_seed, status_500=args.fault_500, busy_503=args.fault_503,
                     stall=args.fault_stall, drop=args.fault_drop, error=args.fault_error,
                     min_after=args.fault_min_after)
    return plan if plan.active else None


async def _main(argv: list[str] | None = None) -> None:
    args, scripts = scripts_from_args(argv)
    with contextlib.ExitStack() as files:
        record = None
        if args.record is not None:
            out = files.enter_context(args.record.open("a", encoding="utf-8"))

            def record(entry: dict[str, Any]) -> None:
                out.write(json.dumps(entry, ensure_ascii=False) + "\n")
                out.flush()

        fake = FakeOllama(scripts, parallel=args.parallel, max_queue=args.max_queue,
                          host=args.host, port=args.port, plan=plan_from_args(args),
                          record=record)
        await fake.start()
        try:
            await _serve(fake, args)
        finally:
            if fake.up:
                await fake.stop()


async def _serve(fake: FakeOllama, args: argparse.Namespace) -> None:
    print(fake.url, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    restarts: asyncio.Queue[float] = asyncio.Queue()  # one at a time, in order

    async def restarter() -> None:
        while True:
            await fake.restart(await restarts.get())

    async def scheduled(at: float, down: float) -> None:
        await asyncio.sleep(at)
        restarts.put_nowait(down)

    def command(line: str | None) -> None:  # on the loop, from the stdin thread
        words = (line or "quit").split()
        if words[:1] == ["restart"] and len(words) == 2:
            restarts.put_nowait(float(words[1]))
        elif words[:1] == ["quit"]:
            stop.set()
        elif words:
            print(f"fake_ollama: unknown command {line!r}", file=sys.stderr, flush=True)

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(command, line.strip())
        loop.call_soon_threadsafe(command, None)  # EOF: whoever drove us is gone

    tasks = [asyncio.create_task(restarter())]
    tasks += [asyncio.create_task(scheduled(at, down)) for at, down in args.restart]
    if args.control:
        threading.Thread(target=read_stdin, name="fake-ollama control", daemon=True).start()
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(_main())
