"""A crew's `[[mcp]]` servers as tools (the MCP Python SDK v1, REFERENCE-2 H).

Each server has one owning task that enters and leaves both of the SDK's context managers,
because anyio refuses to exit a cancel scope from another task (H.5); any task may call the
session meanwhile. A server's death is only noticed through a failed call (H.4): that call
returns an error outcome and the hub restarts the server in the background.

Tools are named `SERVER.TOOL` (Ollama accepts dots in function names), so the crew file's
approval patterns such as `files.*` match them and two servers' tools never collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import anyio
import httpx
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp import types as mt
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError as SdkError
from mcp.shared.message import SessionMessage

from cockpit.core.spec import McpServer, mcp_server_of
from cockpit.core.tools.base import Outcome, Tool, ToolsUnavailable

if TYPE_CHECKING:
    from cockpit.core.config import AgentConfig

INIT_TIMEOUT = 10.0
"""Seconds a server has to answer `initialize`: without a bound a silent server hangs (H.4)."""
MAX_FAILED_STARTS = 5
"""Restart attempts in a row that may fail before a server counts as down."""
RESTART_BACKOFF = 0.2
"""Seconds before the second restart attempt, doubling for each one after."""
STOP_TIMEOUT = 10.0
"""Seconds a server has to stop (the SDK waits 2 s after closing stdin, then kills it)."""
_CALL_TIMED_OUT = 408  # v1 reports a request timeout as McpError with HTTP's 408 (H.1)

OnRestart = Callable[[str, str], None]
"""Called with a server's name and why it is being restarted."""


class McpStartError(ToolsUnavailable):
    """A server did not start; the message names it and the cause, on one line."""


class McpError(ToolsUnavailable, ValueError):
    """A tool reference names no such server or tool."""


def qualified(server: str, tool: str) -> str:
    """The name the model and approval patterns see for one server's tool."""
    return f"{server}.{tool}"


class _Server:
    def __init__(self, spec: McpServer) -> None:
        self.spec = spec
        self.session: ClientSession | None = None
        self.listed: list[mt.Tool] = []
        self.ready = asyncio.Event()
        """Set while `session` is usable or the server is down for good: calls wait on it."""
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.started: asyncio.Future[str | None] | None = None
        self.restarting: asyncio.Task[None] | None = None
        self.down: str | None = None
        self.why: str | None = None
        """Why the owning task last ended by itself."""


class McpHub:
    """Runs a crew's MCP servers on the running loop and hands out their tools."""

    def __init__(self, servers: list[McpServer], errlog: Path | None = None, *,
                 on_restart: OnRestart | None = None,
                 init_timeout: float = INIT_TIMEOUT) -> None:
        self._servers = {spec.name: _Server(spec) for spec in servers}
        self._errlog = errlog
        self._errfile: TextIO | None = None
        self._on_restart = on_restart
        self._init_timeout = init_timeout
        self._closed = False

    async def __aenter__(self) -> McpHub:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start every server at once; if any fails, stop the rest and raise `McpStartError`."""
        # Server stderr goes to a file, never to the terminal the TUI draws on (H.2).
        self._errfile = open(self._errlog or os.devnull, "a")  # noqa: SIM115 (closed in aclose)
        try:
            results = await asyncio.gather(*(self._launch(s) for s in self._servers.values()))
        except BaseException:
            await self.aclose()
            raise
        failures = [f"mcp server '{name}': {why}"
                    for name, why in zip(self._servers, results, strict=True) if why is not None]
        if failures:
            await self.aclose()
            where = f" (its stderr is in {self._errlog})" if self._errlog else ""
            raise McpStartError("; ".join(failures) + where)

    def check_refs(self, agents: Iterable[AgentConfig]) -> None:
        """McpError unless every MCP reference of `agents` names a tool a server has: a typo
        in `NAME.TOOL` stops the run before it starts, as `cockpit check` says."""
        for agent in agents:
            for ref in agent.tools:
                if mcp_server_of(ref) is not None:
                    self.tools(ref)

    def tools(self, ref: str) -> list[Tool]:
        """`mcp:NAME` gives all of a server's tools, `NAME.TOOL` just that one."""
        whole = ref.startswith("mcp:")
        name, _, tool = (ref[4:], "", "") if whole else ref.partition(".")
        server = self._servers.get(name)
        if not whole and not tool:
            raise McpError(f"tool reference {ref!r} is neither `mcp:SERVER` nor `SERVER.TOOL`")
        if server is None:
            raise McpError(f"no [[mcp]] server named {name!r} (tool reference {ref!r})")
        if not tool:
            return [self._tool(server, t) for t in server.listed]
        for listed in server.listed:
            if listed.name == tool:
                return [self._tool(server, listed)]
        have = ", ".join(t.name for t in server.listed) or "none"
        raise McpError(f"mcp server {name!r} has no tool {tool!r} (it has: {have})")

    def status(self, name: str) -> str:
        """`up`, `restarting`, `down` (restarts failed) or `stopped`, for a status line."""
        server = self._servers[name]
        if self._closed:
            return "stopped"
        if server.session is not None:
            return "up"
        return "down" if server.down else "restarting"

    async def list_all(self) -> dict[str, list[Tool]]:
        """Every server's tools, listed afresh from the servers that are up (`cockpit check`)."""
        for server in self._servers.values():
            if server.session is not None:
                with contextlib.suppress(Exception):  # a dead server keeps its last listing
                    server.listed = await _list_tools(server.session)
        return {name: self.tools(f"mcp:{name}") for name in self._servers}

    async def aclose(self) -> None:
        """Stop every server and wait for it; safe to call twice, and from `start`."""
        if self._closed:
            return
        self._closed = True
        restarts = [s.restarting for s in self._servers.values() if s.restarting is not None]
        for task in restarts:
            task.cancel()
        await asyncio.gather(*restarts, return_exceptions=True)
        await asyncio.gather(*(self._stop(s) for s in self._servers.values()))
        for server in self._servers.values():
            server.ready.set()  # wake waiting calls: they find the hub closed
        if self._errfile is not None:
            self._errfile.close()

    # -- one server's life -------------------------------------------------------------------

    async def _launch(self, server: _Server) -> str | None:
        """Start a new owning task; None once it is up, else why it failed."""
        started: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        server.stop, server.started, server.why = asyncio.Event(), started, None
        task = server.task = asyncio.create_task(self._own(server, server.stop, started),
                                                 name=f"mcp:{server.spec.name}")
        either: set[asyncio.Future[Any]] = {started, task}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        why = started.result() if started.done() else "stopped while starting"
        if why is None:
            server.down = None
            server.ready.set()
        return why

    async def _own(self, server: _Server, stop: asyncio.Event,
                   started: asyncio.Future[str | None]) -> None:
        """The owning task: connect, handshake, list the tools, then wait to be stopped."""
        spec, session = server.spec, None
        try:
            async with _connect(spec, self._errfile) as (read, write), ClientSession(
                    read, write, read_timeout_seconds=timedelta(seconds=spec.timeout)) as session:
                try:
                    await asyncio.wait_for(session.initialize(), self._init_timeout)
                except TimeoutError:
                    raise _Failed(f"did not answer initialize within "
                                  f"{self._init_timeout:g} s") from None
                server.listed = await _list_tools(session)
                server.session = session
                started.set_result(None)
                await stop.wait()
        except BaseException as error:
            why = _describe(error, spec)
            if not started.done():
                started.set_result(why)
            elif not stop.is_set() and not isinstance(error, asyncio.CancelledError):
                # the transport died under us (HTTP): restart
                server.why = why
                self._crashed(server, session, why)
            if isinstance(error, asyncio.CancelledError):
                raise
        finally:
            if server.session is session:
                server.session = None

    async def _stop(self, server: _Server) -> None:
        task = server.task
        if task is None:
            return
        server.stop.set()
        if server.started is not None and not server.started.done():
            task.cancel()  # still handshaking: do not wait out the init timeout
        if not (await asyncio.wait({task}, timeout=STOP_TIMEOUT))[0]:
            task.cancel()
            await asyncio.wait({task})

    def _crashed(self, server: _Server, session: ClientSession | None, why: str) -> None:
        """Restart a server in the background, once per dead session."""
        if self._closed or session is None or server.session is not session:
            return  # closing, or another call already noticed
        server.session = None
        server.ready.clear()
        server.restarting = asyncio.create_task(self._restart(server))
        if self._on_restart is not None:
            with contextlib.suppress(Exception):  # a logging hook must not stop the restart
                self._on_restart(server.spec.name, why)

    async def _restart(self, server: _Server) -> None:
        try:
            await self._stop(server)
            last: str | None = None
            for attempt in range(MAX_FAILED_STARTS):
                if attempt:
                    await asyncio.sleep(RESTART_BACKOFF * 2 ** (attempt - 1))
                last = await self._launch(server)
                if last is None:
                    return
            server.down = (f"mcp server '{server.spec.name}' is down: {MAX_FAILED_STARTS} restarts "
                           f"failed (last: {last})")
        finally:
            server.restarting = None
            server.ready.set()

    # -- calls --------------------------------------------------------------------------------

    def _tool(self, server: _Server, listed: mt.Tool) -> Tool:
        hints = listed.annotations

        async def run(arguments: dict[str, Any]) -> Outcome:
            return await self._call(server, listed.name, arguments)

        return Tool(name=qualified(server.spec.name, listed.name),
                    description=listed.description or "",
                    parameters=ollama_parameters(listed.inputSchema), run=run,
                    repeatable=bool(hints and hints.readOnlyHint and hints.idempotentHint))

    async def _call(self, server: _Server, tool: str, arguments: dict[str, Any]) -> Outcome:
        name, timeout = server.spec.name, server.spec.timeout
        if not server.ready.is_set():  # restarting: wait for it, as long as a call may take
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.ready.wait(), timeout)
        session = server.session
        if session is None:
            why = ("the crew's mcp servers are stopped" if self._closed else server.down
                   or f"mcp server '{name}' is restarting and was not back within {timeout:g} s")
            return Outcome(why, error=True)
        owner = server.task
        assert owner is not None
        call = asyncio.ensure_future(session.call_tool(
            tool, arguments, read_timeout_seconds=timedelta(seconds=timeout)))
        try:  # an HTTP transport can die without failing the calls it carries: watch it
            either: set[asyncio.Future[Any]] = {call, owner}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            call.cancel()  # no-op when done; else we were cancelled, or the server died
        try:
            result = call.result() if call.done() else None
        except SdkError as error:
            if error.error.code == _CALL_TIMED_OUT:  # the session is fine; v1 sends no cancel
                return Outcome(f"{qualified(name, tool)} timed out after {timeout:g} s (the "
                               "server may still be running it)", error=True)
            if error.error.code != mt.CONNECTION_CLOSED:
                return Outcome(f"mcp server '{name}' refused the call: {error}", error=True)
            why = str(error)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as error:
            self._crashed(server, session, why := _describe(error, server.spec))
            return Outcome(f"mcp server '{name}' had stopped before the call ({why}); it is "
                           "being restarted; the call was not run, so it is safe to repeat",
                           error=True)
        except (TimeoutError, ExceptionGroup) as error:
            why = _describe(error, server.spec)
        else:
            if result is not None:
                return Outcome(render(result), error=result.isError)
            why = server.why or "its connection was lost"
        self._crashed(server, session, why)
        return Outcome(f"mcp server '{name}' crashed during the call ({why}); it is being "
                       "restarted; the call was not retried", error=True)


class _Failed(Exception):
    """A start failure already phrased for the user."""


ReadStream = MemoryObjectReceiveStream[SessionMessage | Exception]
WriteStream = MemoryObjectSendStream[SessionMessage]


@contextlib.asynccontextmanager
async def _connect(spec: McpServer, errlog: TextIO | None
                   ) -> AsyncIterator[tuple[ReadStream, WriteStream]]:
    """The server's two streams, over stdio or streamable HTTP (v1 yields 3 values there)."""
    if spec.url is not None:
        async with streamable_http_client(spec.url) as (read, write, _session_id):
            yield read, write
        return
    assert spec.command is not None
    params = StdioServerParameters(command=spec.command, args=spec.args, env=spec.env or None)
    assert errlog is not None  # opened by `start`
    async with stdio_client(params, errlog=errlog) as streams:
        yield streams


async def _list_tools(session: ClientSession) -> list[mt.Tool]:
    listed, cursor = [], None
    while True:
        page = await session.list_tools(
            params=mt.PaginatedRequestParams(cursor=cursor) if cursor else None)
        listed += page.tools
        cursor = page.nextCursor
        if not cursor:
            return listed


def _describe(error: BaseException, spec: McpServer) -> str:
    """One line for what went wrong, from the innermost real exception (H.4: groups nest)."""
    while isinstance(error, BaseExceptionGroup):
        inner = [e for e in error.exceptions if not isinstance(e, asyncio.CancelledError)]
        error = (inner or list(error.exceptions))[0]
    if isinstance(error, FileNotFoundError) and spec.command:
        return f"command {spec.command!r} not found"
    if isinstance(error, PermissionError) and spec.command:
        return f"command {spec.command!r} may not be run ({error.strerror})"
    if isinstance(error, SdkError) and error.error.code == mt.CONNECTION_CLOSED:
        return f"exited before it answered ({error})" if spec.command else str(error)
    if isinstance(error, httpx.HTTPError):
        return f"cannot reach {spec.url} ({type(error).__name__}: {error})"
    if isinstance(error, anyio.ClosedResourceError | anyio.BrokenResourceError):
        return "its connection was already closed"
    if isinstance(error, _Failed | asyncio.CancelledError):
        return str(error) or "stopped while starting"
    return f"{type(error).__name__}: {error}"


def render(result: mt.CallToolResult) -> str:
    """A call's content as the model reads it: text joined, other parts described."""
    parts: list[str] = []
    for item in result.content:
        if isinstance(item, mt.TextContent):
            parts.append(item.text)
        elif isinstance(item, mt.ImageContent | mt.AudioContent):
            parts.append(f"[{item.mimeType}, {_b64_size(item.data)} bytes]")
        elif isinstance(item, mt.ResourceLink):
            parts.append(f"[resource {item.uri}]")
        elif isinstance(item.resource, mt.TextResourceContents):
            parts.append(item.resource.text)
        else:
            parts.append(f"[{item.resource.mimeType or 'binary'} resource {item.resource.uri}, "
                         f"{_b64_size(item.resource.blob)} bytes]")
    if not parts and result.structuredContent is not None:
        parts.append(json.dumps(result.structuredContent))
    return "\n".join(parts)


def _b64_size(data: str) -> int:
    return len(data) * 3 // 4 - data[-2:].count("=")


_NOTED = ("default", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength",
          "maxLength", "pattern", "format", "minItems", "maxItems", "uniqueItems")
"""Constraints Ollama drops (F.1): they go in the description instead."""


def ollama_parameters(schema: dict[str, Any]) -> dict[str, Any]:
    """An MCP `inputSchema` as Ollama keeps it (F.1, F.4): ollama-python re-validates each
    property to `type, items, description, enum`, so nested objects are described in prose."""
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    return {"type": "object", "required": list(schema.get("required", [])),
            "properties": {key: _property(value, defs)
                           for key, value in (schema.get("properties") or {}).items()}}


def _resolve(schema: Any, defs: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(schema, dict):
        return {}
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in defs:
        return {**defs[ref.rsplit("/", 1)[-1]], **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _property(schema: Any, defs: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    schema = _resolve(schema, defs)
    options = [_resolve(o, defs) for o in schema.get("anyOf", schema.get("oneOf", []))]
    kept = [o for o in options if o.get("type") != "null"]  # `X | None` is just optional
    if len(kept) == 1 and depth < 4:
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
        return _property({**kept[0], **rest}, defs, depth + 1)
    out: dict[str, Any] = {}
    notes: list[str] = []
    if kept and all(isinstance(o.get("type"), str) and set(o) <= {"type", "title"} for o in kept):
        out["type"] = [o["type"] for o in kept]
    elif kept:
        notes.append("one of: " + " or ".join(_prose(o, defs) for o in kept))
    if "type" in schema:
        out["type"] = schema["type"]
    if "enum" in schema or "const" in schema:
        out["enum"] = schema["enum"] if "enum" in schema else [schema["const"]]
    if "items" in schema and depth < 4:
        out["items"] = _property(schema["items"], defs, depth + 1)
    if schema.get("type") == "object" and "properties" in schema:
        notes.append("a JSON object " + _prose(schema, defs))
    notes += [f"{key} {json.dumps(schema[key])}" for key in _NOTED
              if schema.get(key) is not None]
    text = (schema.get("description") or "").strip()
    if notes:
        note = "; ".join(notes)
        text = (text.rstrip(".") + ". " if text else "") + note[0].upper() + note[1:] + "."
    if text:
        out["description"] = text
    return out


def _prose(schema: Any, defs: dict[str, Any], depth: int = 0) -> str:
    """A nested schema in a compact form a model can read: `{x: integer, tag?: string}`."""
    schema = _resolve(schema, defs)
    if depth > 3:
        return "..."
    if "enum" in schema or "const" in schema:
        return " | ".join(json.dumps(v) for v in schema.get("enum", [schema.get("const")]))
    if "anyOf" in schema or "oneOf" in schema:
        return " or ".join(_prose(o, defs, depth + 1)
                           for o in schema.get("anyOf", schema.get("oneOf", [])))
    if schema.get("type") == "array":
        return f"list of {_prose(schema.get('items', {}), defs, depth + 1)}"
    if "properties" in schema:
        required = set(schema.get("required", []))
        return "{" + ", ".join(f"{k}{'' if k in required else '?'}: {_prose(v, defs, depth + 1)}"
                               for k, v in schema["properties"].items()) + "}"
    kind = schema.get("type", "any")
    return kind if isinstance(kind, str) else " or ".join(map(str, kind))
