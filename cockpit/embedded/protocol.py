"""Ollama-compatible HTTP/1.1 server: the wire protocol, separate from what generates tokens.

Backends (a scripted fake for tests, the embedded llama.cpp engine) only yield text pieces; this
module owns everything a real Ollama client can observe (REFERENCE.md part A): NDJSON framing,
status codes and error bodies, metrics, per-model FIFO slots with a bounded queue, keep-alive,
and stopping generation when the client goes away. Stdlib asyncio only, so it stays light.
``ServerThread`` runs a server on its own loop for synchronous callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from json.encoder import encode_basestring_ascii as _jstr
from typing import Any, Literal, Protocol

from cockpit.core.model_names import canonical

OLLAMA_VERSION = "0.5.1"
BUSY = "server busy, please try again.  maximum pending requests exceeded"
_ROUTES = {"/": ("GET", "HEAD"), "/api/version": ("GET", "HEAD"), "/api/tags": ("GET", "HEAD"),
           "/api/ps": ("GET",), "/api/chat": ("POST",), "/api/generate": ("POST",),
           "/api/show": ("POST",)}
_JSON = "application/json; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"
_MAX_HEAD = 1 << 20


@dataclass
class ModelEntry:
    """A model a backend can serve, as listed by /api/tags, /api/ps and /api/show."""

    name: str
    size: int = 0
    family: str = "llama"
    parameter_size: str = ""
    quantization_level: str = "Q4_K_M"
    context_length: int = 4096
    capabilities: list[str] = field(default_factory=lambda: ["completion"])


@dataclass
class Generation:
    """One chat/generate request, validated, as handed to a backend."""

    endpoint: Literal["chat", "generate"]
    model: str  # the name exactly as the client sent it (echoed on the wire)
    entry: ModelEntry  # the backend's model it resolved to ("m1" and "m1:latest" are one)
    messages: list[dict[str, Any]]
    prompt: str
    system: str | None
    options: dict[str, Any]
    think: bool | str | None  # True when omitted and the model can think, as Ollama does
    body: dict[str, Any]


@dataclass
class Piece:
    """Some generated text; tool_calls are ``{"name", "arguments"}`` dicts (ids are added)."""

    content: str = ""
    thinking: str = ""
    tool_calls: list[dict[str, Any]] | None = None


@dataclass
class Finish:
    """End of generation: counts come from the backend, durations are measured here."""

    done_reason: str = "stop"
    prompt_eval_count: int = 0
    eval_count: int | None = None  # None: the number of pieces streamed
    load_duration_ns: int = 0
    context: list[int] | None = None  # generate only; None: a placeholder of the right length


class BackendError(Exception):
    """Before the first piece: an HTTP error status; after it: an ``{"error"}`` line."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.message, self.status = message, status


class DropConnection(Exception):  # noqa: N818 - it is an instruction, not an error
    """Fault injection: the server closes the TCP connection without ending the stream."""


class Backend(Protocol):
    """What generates tokens. ``generate`` is an async generator: raising BackendError before
    its first yield becomes an HTTP error, after it an error line. The server aclose()s it
    when the client disconnects, so cleanup (stopping a llama.cpp job) belongs in its
    ``finally``."""

    def models(self) -> list[ModelEntry]: ...
    def generate(self, gen: Generation) -> AsyncGenerator[Piece | Finish, None]: ...


@dataclass
class RequestRecord:
    """Live view of one request, for tests and logs (mutated while the request runs)."""

    method: str
    path: str
    body: dict[str, Any] | None
    model: str | None
    connection: int  # accept-order number of the TCP connection (proves keep-alive reuse)
    status: int | None = None
    chunks_sent: int = 0
    finished: bool = False  # the server completed its response (possibly an error response)
    disconnected: bool = False  # the client went away before the end
    error: str | None = None
    admission: int | None = None  # order in which generations got a slot (FIFO checks)
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None


_sec_cache: tuple[int, str] = (-1, "")


def rfc3339(ns: int | None = None) -> str:
    """Go's RFC3339Nano in UTC (trailing zeros trimmed); cached per second, it is per-chunk."""
    global _sec_cache
    sec, frac = divmod(time.time_ns() if ns is None else ns, 1_000_000_000)
    cached = _sec_cache  # one read: other ServerThreads may replace it concurrently
    if cached[0] != sec:
        cached = _sec_cache = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    digits = f"{frac:09d}".rstrip("0")
    return f"{cached[1]}.{digits}Z" if digits else f"{cached[1]}Z"


def _call_id() -> str:
    return "call_" + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789")
                             for _ in range(8))


def _keep_alive_s(value: Any) -> float:
    """Seconds from a keep_alive number or Go duration ("5m", "1h30m"); negative = forever."""
    if value is None:
        return 300.0
    if isinstance(value, int | float):
        return float(value)
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}
    parts = re.findall(r"(-?[\d.]+)(ns|us|ms|s|m|h|)", str(value).strip())
    return sum(float(n) * units[u] for n, u in parts) if parts else 300.0


def _reason(status: int) -> str:
    with contextlib.suppress(ValueError):
        return HTTPStatus(status).phrase
    return "Error"


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class _Slots:
    """Per-model generation slots, strict FIFO; hand-over on release so nobody can barge."""

    def __init__(self, parallel: int, max_queue: int) -> None:
        self.parallel, self.max_queue, self.waiting = parallel, max_queue, 0
        self.free: dict[str, int] = {}
        self.queues: dict[str, deque[asyncio.Future[None]]] = {}

    async def acquire(self, key: str) -> None:
        queue = self.queues.setdefault(key, deque())
        free = self.free.setdefault(key, self.parallel)
        if free > 0 and not queue:
            self.free[key] = free - 1
            return
        if self.waiting >= self.max_queue:
            raise BackendError(BUSY, 503)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(fut)
        self.waiting += 1
        try:
            await fut
        except asyncio.CancelledError:  # the client left while waiting
            if fut.done() and not fut.cancelled():
                self.release(key)  # it had just been handed a slot: pass it on
            elif fut in queue:
                queue.remove(fut)
            raise
        finally:
            self.waiting -= 1

    def release(self, key: str) -> None:
        queue = self.queues[key]
        while queue:
            fut = queue.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.free[key] += 1


class _Conn(asyncio.Protocol):
    """One TCP connection: a byte buffer for the request parser, flow control, and the
    disconnect signal. EOF or loss cancels the handler task, which is how generation stops."""

    def __init__(self, server: OllamaServer, number: int) -> None:
        self.server, self.number = server, number
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self.gone = self.paused = self.cancelled = False
        self.waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.task = asyncio.get_running_loop().create_task(self.server._serve(self))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._wake()

    def eof_received(self) -> bool:
        self._lost()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _lost(self) -> None:
        self.gone = True
        self.cancel()

    def cancel(self) -> None:
        if self.task is not None and not self.cancelled:
            self.cancelled = True  # once only: a second cancel would interrupt the cleanup
            self.task.cancel()

    async def _wait(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        await self.waiter

    async def read_until(self, sep: bytes) -> bytes:
        while (i := self.buf.find(sep)) < 0:
            if len(self.buf) > _MAX_HEAD:
                raise ValueError("request header too large")
            await self._wait()
        data = bytes(self.buf[: i + len(sep)])
        del self.buf[: i + len(sep)]
        return data

    async def read_exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            await self._wait()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def write(self, data: bytes) -> None:
        if not self.gone and self.transport is not None:
            self.transport.write(data)

    async def drain(self) -> None:
        while self.paused and not self.gone:
            await self._wait()


class OllamaServer:
    """Serves a Backend over loopback HTTP/1.1 exactly as an Ollama client expects."""

    def __init__(self, backend: Backend, *, host: str = "127.0.0.1", port: int = 0,
                 parallel: int = 1, max_queue: int = 512,
                 on_request: Callable[[RequestRecord], None] | None = None) -> None:
        self.backend, self.host, self.port, self.on_request = backend, host, port, on_request
        self.slots = _Slots(parallel, max_queue)
        self.connections_accepted = 0
        self.created_at = rfc3339()
        self._conns: set[_Conn] = set()
        self._loaded: dict[str, tuple[ModelEntry, float]] = {}
        self._admitted = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.get_running_loop().create_server(
            self._new_conn, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        conns = list(self._conns)
        for conn in conns:
            conn.cancel()
        await asyncio.gather(*(c.task for c in conns if c.task), return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> OllamaServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _new_conn(self) -> _Conn:
        self.connections_accepted += 1
        conn = _Conn(self, self.connections_accepted)
        self._conns.add(conn)
        return conn

    # -- HTTP framing ---------------------------------------------------------------------

    async def _serve(self, conn: _Conn) -> None:
        """Keep-alive loop: read a request, answer it, repeat until close, EOF or error."""
        try:
            while (req := await self._read_request(conn)) is not None:
                await self._handle(conn, *req)
                if req[3] or conn.gone:
                    break
        except asyncio.CancelledError:
            pass
        except Exception:  # a bug must cost this connection only, never the server
            logging.getLogger(__name__).exception("ollama protocol: request failed")
        finally:
            self._conns.discard(conn)
            if conn.transport is not None:
                conn.transport.close()

    async def _read_request(self, conn: _Conn) -> tuple[str, str, bytes, bool] | None:
        """(method, path, body, close-after) or None after answering a malformed request."""
        try:
            head = (await conn.read_until(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            method, target, version = (head[0].split(" ") + ["", ""])[:3]
            headers = {k.strip().lower(): v.strip()
                       for k, _, v in (h.partition(":") for h in head[1:] if h)}
            if headers.get("expect", "").lower() == "100-continue":  # curl, for big bodies
                conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if headers.get("transfer-encoding", "").lower() == "chunked":
                raw = b""
                while size := int((await conn.read_until(b"\r\n")).split(b";")[0], 16):
                    raw += (await conn.read_exactly(size + 2))[:-2]
                while await conn.read_until(b"\r\n") != b"\r\n":
                    pass  # trailers
            else:
                raw = await conn.read_exactly(max(0, int(headers.get("content-length") or 0)))
        except ValueError:
            self._respond(conn, 400, _TEXT, b"400 Bad Request", close=True)
            return None
        close = headers.get("connection", "").lower() == "close" or version != "HTTP/1.1"
        return method, target.split("?", 1)[0], raw, close

    def _respond(self, conn: _Conn, status: int, ctype: str, body: bytes, *,
                 head: bool = False, close: bool = False) -> None:
        extra = "Connection: close\r\n" if close else ""
        conn.write(
            f"HTTP/1.1 {status} {_reason(status)}\r\nContent-Type: {ctype}\r\n"
            f"Date: {formatdate(usegmt=True)}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            .encode() + (b"" if head else body))

    async def _handle(self, conn: _Conn, method: str, path: str, raw: bytes,
                      close: bool) -> None:
        body: dict[str, Any] = {}
        bad_json: str | None = None
        if raw.strip():
            try:
                body = json.loads(raw)
                if not isinstance(body, dict):
                    raise ValueError("cannot unmarshal non-object into Go value of type request")
            except ValueError as exc:
                body, bad_json = {}, str(exc)
        model = body.get("model") or body.get("name")
        rec = RequestRecord(method, path, body or None,
                            model if isinstance(model, str) else None, conn.number)
        if self.on_request is not None:
            self.on_request(rec)
        try:
            status, ctype, out = await self._route(conn, rec, method, path, body, bad_json)
            if status:  # 0: the streaming path has answered already
                self._respond(conn, status, ctype, out, head=method == "HEAD", close=close)
                rec.status = status
                if status >= 400 and ctype == _JSON:
                    rec.error = json.loads(out)["error"]
            rec.finished = not conn.gone
        except asyncio.CancelledError:
            rec.disconnected = conn.gone  # not set when the server itself is stopping
            raise
        finally:
            rec.ended_at = time.time()

    # -- routes ---------------------------------------------------------------------------

    async def _route(self, conn: _Conn, rec: RequestRecord, method: str, path: str,
                     body: dict[str, Any], bad_json: str | None) -> tuple[int, str, bytes]:
        if path not in _ROUTES:
            return 404, _TEXT, b"404 page not found"
        if method not in _ROUTES[path]:
            return 405, _TEXT, b"405 method not allowed"
        if path == "/":
            return 200, _TEXT, b"Ollama is running"
        if path == "/api/version":
            return 200, _JSON, _dumps({"version": OLLAMA_VERSION})
        if path == "/api/tags":
            models = [self._describe(e) for e in self.backend.models()]
            return 200, _JSON, _dumps({"models": models})
        if path == "/api/ps":
            return 200, _JSON, _dumps({"models": self._ps()})
        if bad_json is not None:
            return _error(400, bad_json)
        name = rec.model or ""
        entry = self._find(name)
        if path == "/api/show":
            if not name:
                return _error(400, "model is required")
            return (_error(404, f"model '{name}' not found") if entry is None
                    else (200, _JSON, _dumps(self._show(entry))))
        return await self._generation(conn, rec, path[5:], body, name, entry)

    def _find(self, name: str) -> ModelEntry | None:
        key = canonical(name) if name else ""
        return next((e for e in self.backend.models() if canonical(e.name) == key), None)

    def _describe(self, e: ModelEntry) -> dict[str, Any]:
        name = canonical(e.name)
        return {"name": name, "model": name, "modified_at": self.created_at, "size": e.size,
                "digest": hashlib.sha256(name.encode()).hexdigest(),
                "details": {"parent_model": "", "format": "gguf", "family": e.family,
                            "families": [e.family], "parameter_size": e.parameter_size,
                            "quantization_level": e.quantization_level}}

    def _ps(self) -> list[dict[str, Any]]:
        now = time.time()
        live = sorted(((exp, e) for e, exp in self._loaded.values() if exp > now),
                      key=lambda t: t[0], reverse=True)
        return [{**{k: v for k, v in self._describe(e).items() if k != "modified_at"},
                 "expires_at": rfc3339(int(exp * 1e9)),
                 "size_vram": e.size, "context_length": e.context_length} for exp, e in live]

    def _show(self, e: ModelEntry) -> dict[str, Any]:
        d = self._describe(e)
        return {"modelfile": f"# Modelfile generated by \"ollama show\"\nFROM {d['name']}\n",
                "parameters": "", "template": "{{ .Prompt }}", "system": "",
                "details": d["details"],
                "model_info": {"general.architecture": e.family,
                               f"{e.family}.context_length": e.context_length},
                "capabilities": e.capabilities, "modified_at": self.created_at}

    async def _generation(self, conn: _Conn, rec: RequestRecord, endpoint: str,
                          body: dict[str, Any], name: str,
                          entry: ModelEntry | None) -> tuple[int, str, bytes]:
        """Validate like Ollama, wait for a slot, then run the backend (see _run)."""
        t0 = time.perf_counter_ns()
        chat = endpoint == "chat"
        if not name:
            return _error(400, "model is required") if chat else _error(404, "model '' not found")
        if entry is None:
            return _error(404, f"model '{name}' not found")
        messages, prompt = body.get("messages") or [], body.get("prompt") or ""
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return _error(400, "json: cannot unmarshal messages into []api.Message")
        if not isinstance(prompt, str):
            return _error(400, "json: cannot unmarshal prompt into string")
        think = body.get("think")
        if think not in (None, True, False, "low", "medium", "high", "max"):
            return _error(400, f'invalid think value: "{think}" (must be "high", "medium", '
                               '"low", "max", true, or false)')
        can_think = "thinking" in entry.capabilities
        if think not in (None, False) and not can_think:
            return _error(400, f'"{name}" does not support thinking')
        keep = _keep_alive_s(body.get("keep_alive"))
        key = canonical(entry.name)
        if (not messages) if chat else (not prompt):  # Ollama: an empty request (un)loads
            self._touch(key, entry, keep)
            return 200, _JSON, _dumps({"model": name, "created_at": rfc3339(),
                                       **({"message": {"role": "assistant", "content": ""}}
                                          if chat else {"response": ""}),
                                       "done": True, "done_reason": "unload" if keep == 0
                                       else "load"})
        options = body.get("options")
        gen = Generation("chat" if chat else "generate", name, entry, messages if chat else [],
                         "" if chat else prompt, body.get("system"),
                         options if isinstance(options, dict) else {},
                         True if think is None and can_think else think, body)
        try:
            await self.slots.acquire(key)
        except BackendError as exc:
            return _error(exc.status, exc.message)
        self._admitted += 1
        rec.admission = self._admitted
        try:
            self._touch(key, entry, keep)
            return await self._run(conn, rec, gen, body.get("stream") is not False, t0)
        finally:
            self.slots.release(key)
            self._touch(key, entry, keep)  # keep_alive counts from the end of the request

    def _touch(self, key: str, entry: ModelEntry, keep: float) -> None:
        """Mark a model loaded until now + keep_alive, for /api/ps (negative: forever)."""
        self._loaded[key] = (entry, time.time() + (keep if keep >= 0 else 1e10))

    async def _run(self, conn: _Conn, rec: RequestRecord, gen: Generation, stream: bool,
                   t0: int) -> tuple[int, str, bytes]:
        """Stream (or aggregate) the backend's pieces. The generator is always aclose()d,
        also when a disconnect cancels this task: that is what stops generation."""
        chat = gen.endpoint == "chat"
        pre = f'{{"model":{_jstr(gen.model)},"created_at":"'  # static parts, built once
        mid = '","message":{"role":"assistant","content":' if chat else '","response":'
        end = '},"done":false}\n' if chat else ',"done":false}\n'
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[dict[str, Any]] = []
        finish, pieces, t_first = Finish(), 0, 0
        t_gen = time.perf_counter_ns()
        agen = self.backend.generate(gen)
        try:
            async for item in agen:
                if isinstance(item, Finish):
                    finish = item
                    break
                t_first, pieces = t_first or time.perf_counter_ns(), pieces + 1
                tc = [{"id": _call_id(), "function": {"index": len(calls) + i, "name": c["name"],
                                                      "arguments": c.get("arguments") or {}}}
                      for i, c in enumerate(item.tool_calls or ())]
                calls += tc
                if not stream:
                    texts.append(item.content)
                    thoughts.append(item.thinking)
                    continue
                self._chunk(conn, rec, (
                    pre + rfc3339() + mid + _jstr(item.content)
                    + (',"thinking":' + _jstr(item.thinking) if item.thinking else "")
                    + (',"tool_calls":' + json.dumps(tc, separators=(",", ":")) if tc else "")
                    + end).encode())
                if conn.paused:
                    await conn.drain()
        except DropConnection:
            rec.error, conn.gone = "connection dropped by the backend", True
            if conn.transport is not None:
                conn.transport.close()  # flushes what was written, then FIN mid-body
            return 0, "", b""
        except Exception as exc:  # BackendError, or a backend bug: Ollama's error paths
            status, msg = ((exc.status, exc.message) if isinstance(exc, BackendError)
                           else (500, str(exc) or type(exc).__name__))
            if rec.status is None:  # nothing written yet: a plain JSON error, even if streaming
                return _error(status, msg)
            rec.error = msg
            line = _dumps({"error": msg}) + b"\n"
            conn.write(b"%x\r\n%b\r\n0\r\n\r\n" % (len(line), line))
            return 0, "", b""
        finally:
            await agen.aclose()
        t_end = time.perf_counter_ns()
        t_first = t_first or t_end
        evals = pieces if finish.eval_count is None else finish.eval_count
        text, thinking = "".join(texts), "".join(thoughts)
        out: dict[str, Any] = {"role": "assistant", "content": text} if chat else {"response": text}
        if thinking:
            out["thinking"] = thinking
        if calls and not stream:
            out["tool_calls"] = calls
        final: dict[str, Any] = {"model": gen.model, "created_at": rfc3339(),
                                 **({"message": out} if chat else out),
                                 "done": True, "done_reason": finish.done_reason}
        if not chat:
            final["context"] = (finish.context if finish.context is not None else
                                list(range(1, finish.prompt_eval_count + evals + 1)))
        final |= {"total_duration": t_end - t0, "load_duration": finish.load_duration_ns,
                  "prompt_eval_count": finish.prompt_eval_count,
                  "prompt_eval_duration": t_first - t_gen, "eval_count": evals,
                  "eval_duration": t_end - t_first}
        if not stream:
            return 200, _JSON, _dumps(final)
        self._chunk(conn, rec, _dumps(final) + b"\n")
        conn.write(b"0\r\n\r\n")
        return 0, "", b""

    @staticmethod
    def _chunk(conn: _Conn, rec: RequestRecord, line: bytes) -> None:
        """One NDJSON line = one HTTP chunk = one write; the first carries the headers."""
        head = b""
        if rec.status is None:
            rec.status = 200
            head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nDate: "
                    + formatdate(usegmt=True).encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        conn.write(b"%b%x\r\n%b\r\n" % (head, len(line), line))
        rec.chunks_sent += 1


def _error(status: int, message: str) -> tuple[int, str, bytes]:
    return status, _JSON, _dumps({"error": message})


class ServerThread:
    """An OllamaServer on its own loop in a daemon thread, for synchronous code (snapshot
    tests must not share pytest-asyncio's loop, REFERENCE.md C.5) and for benchmarks."""

    def __init__(self, backend: Backend, **kwargs: Any) -> None:
        self.server = OllamaServer(backend, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> ServerThread:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self.server.start())
            except BaseException as exc:  # surface bind errors in the caller's thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="ollama-server", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            return
        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
