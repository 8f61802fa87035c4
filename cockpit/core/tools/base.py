"""The one shape of a tool, whoever provides it (the board, messages, an MCP server).

The runner knows only this: a name, a schema for the model, whether a call may safely run
again after an interruption, and a coroutine that turns arguments into an `Outcome`. A tool
never raises to the runner: a failure is an `Outcome` with `error` set, which the model reads
as the call's result and can act on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Outcome:
    """A call's result as the model reads it (`content` is a `role: "tool"` message)."""

    content: str
    error: bool = False


class ToolsUnavailable(Exception):  # noqa: N818 - what the user reads: "tools unavailable"
    """The crew's tools cannot be provided (an MCP server that will not start): the run
    cannot begin, and the message names the server and why."""


class ToolError(Exception):
    """Raised inside a tool for a failure the model should read: the message is the result."""


Run = Callable[[dict[str, Any]], Awaitable[Outcome]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    """A JSON schema object (`type`, `properties`, `required`), as Ollama's `tools` takes it.
    Ollama keeps only some keywords (REFERENCE-2 F.1): constraints go in descriptions."""
    run: Run
    repeatable: bool = False
    """Safe to run again when the log has the call but not its result (reads are). Any other
    interrupted call is not retried: the model is told it was interrupted."""

    def schema(self) -> dict[str, Any]:
        """The tool in Ollama's `tools` request format."""
        return {"type": "function", "function": {
            "name": self.name, "description": self.description, "parameters": self.parameters}}

    async def call(self, arguments: dict[str, Any]) -> Outcome:
        """Run the tool; every failure becomes an error outcome, never an exception."""
        try:
            return await self.run(arguments)
        except ToolError as error:
            return Outcome(str(error), error=True)
        except Exception as error:  # a tool's bug is the model's error result, not a crash
            return Outcome(f"{self.name} failed: {type(error).__name__}: {error}", error=True)


def parameters(properties: dict[str, dict[str, Any]], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}
