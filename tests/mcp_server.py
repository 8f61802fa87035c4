"""A small MCP server for the tests (REFERENCE-2 H.6): `python tests/mcp_server.py` serves on
stdio, `python tests/mcp_server.py --http PORT` serves streamable HTTP on 127.0.0.1:PORT/mcp."""

from __future__ import annotations

import os
import sys

import anyio
from mcp.server.fastmcp import FastMCP
from mcp.types import ToolAnnotations
from pydantic import BaseModel

mcp = FastMCP("test-tools")


class Point(BaseModel):
    x: int
    y: int


@mcp.tool(annotations=ToolAnnotations(readOnlyHint=True, idempotentHint=True))
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@mcp.tool()
def echo(text: str, times: int = 1) -> str:
    """Repeat a text."""
    return text * times


@mcp.tool()
def fail(message: str = "boom") -> str:
    """Raise, so the call comes back as an error result."""
    raise RuntimeError(message)


@mcp.tool()
async def slow(seconds: float, started: str | None = None) -> str:
    """Sleep (async, so the server keeps answering other calls), then answer. `started`: a
    file created when the call begins, so a test knows the tool is running."""
    if started:
        open(started, "w").close()
    await anyio.sleep(seconds)
    return f"slept {seconds}"


@mcp.tool()
def die() -> str:
    """Crash the server mid-call (for the crash-restart test)."""
    os._exit(3)


@mcp.tool()
def env(name: str) -> str:
    """The server's value of an environment variable."""
    return os.environ.get(name, "<unset>")


@mcp.tool()
def pid() -> int:
    """The server's process id (so a test can check the process is gone)."""
    return os.getpid()


@mcp.tool()
def plot(where: Point, label: str | None = None, tags: list[str] | None = None) -> str:
    """Take a nested object and optional arguments (for the schema mapping)."""
    return f"{label}@{where.x},{where.y} {tags}"


if __name__ == "__main__":
    if "--once" in sys.argv:  # serve the first time only: every later start fails
        marker = sys.argv[sys.argv.index("--once") + 1]
        if os.path.exists(marker):
            sys.exit(1)
        open(marker, "w").close()
    if "--http" in sys.argv:
        mcp.settings.port = int(sys.argv[sys.argv.index("--http") + 1])
        mcp.run(transport="streamable-http")
    else:
        mcp.run()
