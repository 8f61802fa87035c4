"""The built-in tools: the shared board (`tools = ["board"]`) and messages (`"messages"`).

Every write and every message goes through the session (`Crew`), which logs it as an event
before the tool returns: the model is told "written" only once the log says so. Descriptions
are written for small models: what the tool is for, when to use it, and what comes back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from cockpit.core.tools.base import Outcome, Tool, ToolError, parameters

if TYPE_CHECKING:
    from cockpit.core.state import BoardEntry

PREVIEW = 200
"""Characters of each value `board_list` shows; `board_read` gives the whole value."""


class Crew(Protocol):
    """What the built-in tools may do to the session, on behalf of one agent."""

    @property
    def board(self) -> Mapping[str, BoardEntry]: ...

    @property
    def crewmates(self) -> list[str]:
        """The other agents' names, in crew order."""
        ...

    async def write(self, key: str, value: Any, expected_version: int | None) -> int:
        """Log the write; the key's new version. ToolError if refused."""
        ...

    async def send(self, to: str, text: str) -> str:
        """Log the message; what the sender is told about its delivery."""
        ...


def _entry(key: str, entry: BoardEntry, preview: int | None = None) -> dict[str, Any]:
    value = entry.value
    if preview is not None and isinstance(value, str) and len(value) > preview:
        value = value[:preview] + f"… ({len(entry.value)} characters; board_read for all)"
    return {"key": key, "value": value, "version": entry.version, "by": entry.by}


def board_tools(crew: Crew) -> list[Tool]:
    async def read(arguments: dict[str, Any]) -> Outcome:
        key = _text(arguments, "key")
        entry = crew.board.get(key)
        if entry is None:
            keys = ", ".join(sorted(crew.board)) or "none"
            raise ToolError(f"no key {key!r} on the board. Keys: {keys}")
        return Outcome(json.dumps(_entry(key, entry), ensure_ascii=False))

    async def list_(arguments: dict[str, Any]) -> Outcome:
        prefix = str(arguments.get("prefix") or "")
        entries = [_entry(key, entry, PREVIEW) for key, entry in sorted(crew.board.items())
                   if key.startswith(prefix)]
        return Outcome(json.dumps(entries, ensure_ascii=False))

    async def write(arguments: dict[str, Any]) -> Outcome:
        key = _text(arguments, "key")
        if "value" not in arguments:
            raise ToolError("board_write needs a `value`")
        expected = arguments.get("expected_version")
        if expected is not None and not isinstance(expected, int):
            try:
                expected = int(expected)
            except (TypeError, ValueError):
                raise ToolError("expected_version must be a whole number") from None
        version = await crew.write(key, arguments["value"], expected)
        return Outcome(f"wrote {key!r} (now version {version})")

    return [
        Tool("board_read", "Read one value from the shared board that all agents of the crew "
             "see. Returns the key, its value, its version number and who wrote it.",
             parameters({"key": {"type": "string", "description": "The board key, e.g. plan"}},
                        ["key"]),
             read, repeatable=True),
        Tool("board_list", "List the keys on the shared board, with their versions, who wrote "
             "them and the start of each value. Use it to find what other agents have written.",
             parameters({"prefix": {"type": "string", "description":
                         "Only keys that start with this, e.g. findings. Empty for all keys."}},
                        []),
             list_, repeatable=True),
        Tool("board_write", "Write a value to the shared board, where the other agents can "
             "read it. To change a value another agent may also change, first board_read it "
             "and pass its version as expected_version: the write is then refused if someone "
             "wrote it in between, instead of overwriting their work.",
             parameters({
                 "key": {"type": "string", "description": "The board key, e.g. findings"},
                 "value": {"type": "string", "description": "The new value"},
                 "expected_version": {"type": "integer", "description":
                                      "Optional. The version you read; the write is refused "
                                      "if the key has changed since."},
             }, ["key", "value"]),
             write),
    ]


def message_tools(crew: Crew) -> list[Tool]:
    async def send(arguments: dict[str, Any]) -> Outcome:
        return Outcome(await crew.send(_text(arguments, "to"), _text(arguments, "text")))

    names = ", ".join(crew.crewmates) or "none"
    return [Tool(
        "send_message", f"Send a message to another agent of the crew ({names}). They read "
        "it at their next turn; an agent that has finished wakes up to read it. Use it to hand "
        "work on or to ask for something.",
        parameters({"to": {"type": "string", "description": f"The agent's name: one of {names}"},
                    "text": {"type": "string", "description": "The message"}}, ["to", "text"]),
        send)]


def _text(arguments: dict[str, Any], name: str) -> str:
    value = arguments.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ToolError(f"missing argument {name!r}")
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
