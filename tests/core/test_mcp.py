"""McpHub against the real test server (tests/mcp_server.py) over stdio and streamable HTTP.

Nothing is mocked: each test starts real server processes. Waits are on conditions, with the
suite's patience, so a loaded machine only makes them slower."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import types as mt

from cockpit.core.spec import McpServer
from cockpit.core.tools import mcp as mcp_module
from cockpit.core.tools.mcp import McpError, McpHub, McpStartError, ollama_parameters, render
from tests.conftest import PATIENCE, wait_until

SERVER = str(Path(__file__).resolve().parents[1] / "mcp_server.py")


def stdio(name: str = "t", *args: str, **fields: Any) -> McpServer:
    return McpServer(name=name, command=sys.executable, args=[SERVER, *args], **fields)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def call(hub: McpHub, ref: str, **arguments: Any) -> tuple[str, bool]:
    [tool] = hub.tools(ref)
    outcome = await tool.call(arguments)
    return outcome.content, outcome.error


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[McpHub]:
    hub = McpHub([stdio(env={"COCKPIT_MCP_TEST": "42"}, timeout=PATIENCE)],
                 tmp_path / "mcp.log", init_timeout=PATIENCE)
    await hub.start()
    yield hub
    await hub.aclose()


async def test_tools_are_listed_with_ollama_schemas(hub: McpHub) -> None:
    tools = {tool.name: tool for tool in hub.tools("mcp:t")}
    assert set(tools) == {f"t.{name}" for name in
                          ("add", "echo", "fail", "slow", "die", "env", "pid", "plot")}
    assert tools["t.add"].schema() == {"type": "function", "function": {
        "name": "t.add", "description": "Add two integers.", "parameters": {
            "type": "object", "required": ["a", "b"],
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}}
    assert tools["t.add"].repeatable and not tools["t.echo"].repeatable  # from the annotations
    assert tools["t.echo"].parameters["properties"]["times"] == {
        "type": "integer", "description": "Default 1."}
    plot = tools["t.plot"].parameters
    assert plot["required"] == ["where"]
    assert plot["properties"] == {  # $ref resolved and described, `X | None` made optional
        "where": {"type": "object", "description": "A JSON object {x: integer, y: integer}."},
        "label": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}}}
    assert [t.name for t in hub.tools("t.echo")] == ["t.echo"]
    assert set(await hub.list_all()) == {"t"}


async def test_calls_return_text_and_errors_as_outcomes(hub: McpHub) -> None:
    assert await call(hub, "t.add", a=2, b=3) == ("5", False)
    assert await call(hub, "t.echo", text="ab", times=2) == ("abab", False)
    assert await call(hub, "t.fail", message="no disk") == (
        "Error executing tool fail: no disk", True)
    content, error = await call(hub, "t.add", a="x", b=3)
    assert error and "validation error" in content
    results = await asyncio.gather(*(call(hub, "t.add", a=n, b=1) for n in range(5)))
    assert results == [(str(n + 1), False) for n in range(5)]


async def test_unknown_refs_are_clear_errors(hub: McpHub) -> None:
    with pytest.raises(McpError, match=r"mcp server 't' has no tool 'nope' \(it has: add, "):
        hub.tools("t.nope")
    with pytest.raises(McpError, match="no \\[\\[mcp\\]\\] server named 'other'"):
        hub.tools("mcp:other")
    with pytest.raises(McpError, match="neither"):
        hub.tools("t")


async def test_env_passes_through_and_nothing_else(
        hub: McpHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COCKPIT_MCP_SECRET", "leak")  # too late for the child anyway
    assert await call(hub, "t.env", name="COCKPIT_MCP_TEST") == ("42", False)
    assert await call(hub, "t.env", name="COCKPIT_MCP_SECRET") == ("<unset>", False)


async def test_stderr_goes_to_the_errlog(tmp_path: Path, capfd: pytest.CaptureFixture[str]
                                         ) -> None:
    async with McpHub([stdio()], tmp_path / "mcp.log", init_timeout=PATIENCE) as hub:
        assert await call(hub, "t.add", a=1, b=1) == ("2", False)
    assert "CallToolRequest" in (tmp_path / "mcp.log").read_text()
    assert "Processing request" not in capfd.readouterr().err


async def test_a_slow_call_times_out_and_keeps_the_session(tmp_path: Path) -> None:
    async with McpHub([stdio(timeout=1)], None, init_timeout=PATIENCE) as hub:
        assert await call(hub, "t.slow", seconds=PATIENCE) == (
            "t.slow timed out after 1 s (the server may still be running it)", True)
        assert hub.status("t") == "up"
        [add] = hub.tools("t.add")
        for _ in range(3):  # a fast call may still miss 1 s on a loaded machine
            if not (outcome := await add.call({"a": 1, "b": 2})).error:
                break
        assert outcome.content == "3"


async def test_a_crash_mid_call_restarts_the_server(tmp_path: Path) -> None:
    restarts: list[tuple[str, str]] = []
    hub = McpHub([stdio(timeout=PATIENCE)], None, init_timeout=PATIENCE,
                 on_restart=lambda name, why: restarts.append((name, why)))
    async with hub:
        first = int((await call(hub, "t.pid"))[0])
        assert await call(hub, "t.die") == (
            "mcp server 't' crashed during the call (Connection closed); it is being "
            "restarted; the call was not retried", True)
        assert restarts == [("t", "Connection closed")]
        assert await call(hub, "t.add", a=2, b=2) == ("4", False)  # waits for the restart
        second = int((await call(hub, "t.pid"))[0])
        assert second != first and hub.status("t") == "up"
        await wait_until(lambda: not alive(first), what="the crashed server reaped")
    await wait_until(lambda: not alive(second), what="the restarted server stopped")
    assert hub.status("t") == "stopped"


async def test_a_server_killed_while_idle_is_restarted(hub: McpHub) -> None:
    pid = int((await call(hub, "t.pid"))[0])
    os.kill(pid, signal.SIGKILL)
    await wait_until(lambda: not alive(pid), what="the server killed")
    content, error = await call(hub, "t.add", a=1, b=1)
    # Whether the SDK noticed the closed pipe before the call depends on timing.
    assert error and ("had stopped before the call" in content
                      or "crashed during the call" in content), content
    assert "it is being restarted" in content
    assert await call(hub, "t.add", a=1, b=1) == ("2", False)


async def test_restarts_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mcp_module, "RESTART_BACKOFF", 0.0)
    once = stdio("t", "--once", str(tmp_path / "started"), timeout=PATIENCE)
    async with McpHub([once], None, init_timeout=PATIENCE) as hub:
        assert (await call(hub, "t.die"))[1]
        await wait_until(lambda: hub.status("t") == "down", what="restarts given up")
        assert await call(hub, "t.add", a=1, b=1) == (
            "mcp server 't' is down: 5 restarts failed (last: exited before it answered "
            "(Connection closed))", True)


@pytest.mark.parametrize(("server", "message"), [
    (McpServer(name="files", command="no-such-command-xyz"),
     "mcp server 'files': command 'no-such-command-xyz' not found"),
    (McpServer(name="x", command=sys.executable, args=["-c", "import sys; sys.exit(1)"]),
     "mcp server 'x': exited before it answered (Connection closed)"),
    (McpServer(name="h", url="http://127.0.0.1:9/mcp"),
     "mcp server 'h': cannot reach http://127.0.0.1:9/mcp (ConnectError: "),
])
async def test_start_failures_name_the_server(server: McpServer, message: str) -> None:
    with pytest.raises(McpStartError) as raised:
        await McpHub([server], None, init_timeout=PATIENCE).start()
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


async def test_a_silent_server_fails_initialize_and_the_others_stop(tmp_path: Path) -> None:
    silent = McpServer(name="mute", command=sys.executable,
                       args=["-c", "import time; time.sleep(600)"])
    # Long enough for the good server to start on a loaded machine; the silent one never does.
    hub = McpHub([stdio("good"), silent], tmp_path / "mcp.log", init_timeout=10)
    with pytest.raises(McpStartError, match=r"^mcp server 'mute': did not answer initialize "
                                            r"within 10 s \(its stderr is in .*mcp\.log\)$"):
        await hub.start()
    assert hub.status("good") == "stopped"
    await hub.aclose()  # idempotent


async def test_aclose_leaves_no_process(tmp_path: Path) -> None:
    hub = McpHub([stdio("a"), stdio("b")], None, init_timeout=PATIENCE)
    await hub.start()
    pids = [int((await call(hub, f"{name}.pid"))[0]) for name in ("a", "b")]
    await hub.aclose()
    await hub.aclose()
    await wait_until(lambda: not any(map(alive, pids)), what="both servers gone")
    assert await call(hub, "a.add", a=1, b=1) == ("the crew's mcp servers are stopped", True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


async def test_streamable_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mcp_module, "RESTART_BACKOFF", 0.0)
    port = free_port()
    server = subprocess.Popen([sys.executable, SERVER, "--http", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_until(lambda: listening(port), what="the HTTP server listening")
        spec = McpServer(name="h", url=f"http://127.0.0.1:{port}/mcp", timeout=PATIENCE)
        async with McpHub([spec], None, init_timeout=PATIENCE) as hub:
            assert "h.add" in [tool.name for tool in hub.tools("mcp:h")]
            assert await call(hub, "h.add", a=2, b=3) == ("5", False)
            server.kill()
            server.wait()
            content, error = await call(hub, "h.add", a=2, b=3)
            assert error and content.startswith("mcp server 'h' crashed during the call ("
                                                f"cannot reach http://127.0.0.1:{port}/mcp")
            await wait_until(lambda: hub.status("h") == "down", what="restarts given up")
    finally:
        server.kill()
        server.wait()


def test_render_describes_what_is_not_text() -> None:
    result = mt.CallToolResult(content=[
        mt.TextContent(type="text", text="a chart:"),
        mt.ImageContent(type="image", data="aGVsbG8=", mimeType="image/png"),
    ])
    assert render(result) == "a chart:\n[image/png, 5 bytes]"
    assert render(mt.CallToolResult(content=[], structuredContent={"n": 1})) == '{"n": 1}'


def test_parameters_keep_what_ollama_keeps() -> None:
    schema = {"type": "object", "title": "x", "required": ["mode"], "properties": {
        "mode": {"title": "Mode", "enum": ["a", "b"], "description": "How."},
        "n": {"type": "integer", "minimum": 0, "default": 3},
        "id": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        "shape": {"anyOf": [{"type": "string"}, {"type": "object", "properties": {
            "r": {"type": "number"}}, "required": ["r"]}]}}}
    assert ollama_parameters(schema)["properties"] == {
        "mode": {"enum": ["a", "b"], "description": "How."},
        "n": {"type": "integer", "description": "Default 3; minimum 0."},
        "id": {"type": ["string", "integer"]},
        "shape": {"description": "One of: string or {r: number}."}}
