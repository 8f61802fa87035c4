"""HTTP/1.1 on a bare asyncio Protocol, just enough to be a faithful Ollama on loopback.

Written by hand rather than on an HTTP library because tests must control the bytes: one
write per streamed chunk, a connection closed mid-body on purpose, keep-alive and pipelining,
and above all a disconnect that cancels the handler at once, which is how generation stops
(REFERENCE.md A.7). Stdlib only, so the engine stays light. Routes live in a subclass.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

JSON = "application/json; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
NDJSON = "application/x-ndjson"
Reply = tuple[int, str, bytes]
"""(status, content type, body) of a whole response; status 0: a Stream has answered."""
STREAMED: Reply = (0, "", b"")
_MAX_HEAD = 1 << 20


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


def _reason(status: int) -> str:
    with contextlib.suppress(ValueError):
        return HTTPStatus(status).phrase
    return "Error"


class Connection(asyncio.Protocol):
    """One TCP connection: a byte buffer for the request parser, flow control, and the
    disconnect signal. EOF or loss cancels the handler task, which is how generation stops."""

    def __init__(self, server: HttpServer, number: int) -> None:
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


class Stream:
    """A streamed (chunked) response body: one chunk per ``send`` and one write per chunk,
    so each line reaches the client as it is made. The first chunk carries the headers."""

    def __init__(self, conn: Connection, rec: RequestRecord, content_type: str = NDJSON) -> None:
        self.conn, self.rec, self.content_type = conn, rec, content_type

    @property
    def started(self) -> bool:
        """Whether the status line went out: after that, errors travel in the body."""
        return self.rec.status is not None

    def send(self, data: bytes) -> None:
        head = b""
        if self.rec.status is None:
            self.rec.status = 200
            head = (b"HTTP/1.1 200 OK\r\nContent-Type: " + self.content_type.encode()
                    + b"\r\nDate: " + formatdate(usegmt=True).encode()
                    + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        self.conn.write(b"%b%x\r\n%b\r\n" % (head, len(data), data))
        self.rec.chunks_sent += 1

    def end(self) -> None:
        self.conn.write(b"0\r\n\r\n")

    def fail(self, data: bytes) -> None:
        """A last chunk saying what went wrong (not counted as sent), then the end."""
        self.conn.write(b"%x\r\n%b\r\n0\r\n\r\n" % (len(data), data))

    def drop(self) -> None:
        """Close the connection mid-body (fault injection): what was written is flushed."""
        self.conn.gone = True
        if self.conn.transport is not None:
            self.conn.transport.close()

    @property
    def paused(self) -> bool:
        """The client reads slower than we write: ``drain`` before sending more."""
        return self.conn.paused

    async def drain(self) -> None:
        await self.conn.drain()


class HttpServer:
    """Accepts connections and runs the keep-alive loop; subclasses answer in ``_route``."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0,
                 on_request: Callable[[RequestRecord], None] | None = None) -> None:
        self.host, self.port, self.on_request = host, port, on_request
        self.connections_accepted = 0
        self._conns: set[Connection] = set()
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

    def _new_conn(self) -> Connection:
        self.connections_accepted += 1
        conn = Connection(self, self.connections_accepted)
        self._conns.add(conn)
        return conn

    async def _serve(self, conn: Connection) -> None:
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

    async def _read_request(self, conn: Connection) -> tuple[str, str, bytes, bool] | None:
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
            self._respond(conn, 400, TEXT, b"400 Bad Request", close=True)
            return None
        close = headers.get("connection", "").lower() == "close" or version != "HTTP/1.1"
        return method, target.split("?", 1)[0], raw, close

    def _respond(self, conn: Connection, status: int, ctype: str, body: bytes, *,
                 head: bool = False, close: bool = False) -> None:
        extra = "Connection: close\r\n" if close else ""
        conn.write(
            f"HTTP/1.1 {status} {_reason(status)}\r\nContent-Type: {ctype}\r\n"
            f"Date: {formatdate(usegmt=True)}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            .encode() + (b"" if head else body))

    async def _handle(self, conn: Connection, method: str, path: str, raw: bytes,
                      close: bool) -> None:
        """Parse a JSON body, record the request, route it and send the reply."""
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
            if status:  # 0: a Stream has answered already
                self._respond(conn, status, ctype, out, head=method == "HEAD", close=close)
                rec.status = status
                if status >= 400 and ctype.startswith("application/json"):
                    rec.error = _error_text(json.loads(out).get("error"))
            rec.finished = not conn.gone
        except asyncio.CancelledError:
            rec.disconnected = conn.gone  # not set when the server itself is stopping
            raise
        finally:
            rec.ended_at = time.time()

    async def _route(self, conn: Connection, rec: RequestRecord, method: str, path: str,
                     body: dict[str, Any], bad_json: str | None) -> Reply:
        raise NotImplementedError


def _error_text(error: Any) -> str | None:
    """The message of an ``{"error": "..."}`` or ``{"error": {"message": ...}}`` body."""
    if isinstance(error, dict):
        error = error.get("message")
    return error if isinstance(error, str) else None
