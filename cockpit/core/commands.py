"""What a person (or the log, or a shell) asks of a running agent, and the refusal.

Apart from the runner so that views can catch `CommandError` without importing the engine,
and so that a viewer can command a session it does not own (`SessionCommands`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Decision = Literal["approved", "denied", "edited"]
"""How a person answers a tool call that waits for approval."""


class CommandError(Exception):
    """A command that does not apply to the agent now; the message says why."""


@dataclass
class Command:
    kind: Literal["pause", "resume", "redirect", "stop"]
    instruction: str = ""
    by: str = "person"
    gentle: bool = False
    """Let a running tool call finish first (the log's pause: tools do not fill memory)."""
    done: asyncio.Future[None] | None = None
    """Set by the runner; resolved once the command's event is committed."""


class SessionCommands(Protocol):
    """Every intervention a viewer or a shell can ask of a running session.

    The supervisor answers them in its own process; `control.RemoteCommands` sends them to the
    owner process over its socket. Each returns once its event is committed, and raises
    `CommandError` (the reason) when it does not apply now.
    """

    async def pause(self, name: str, by: str = "person") -> None: ...

    async def resume(self, name: str, by: str = "person") -> None: ...

    async def redirect(self, name: str, instruction: str, by: str = "person") -> None: ...

    async def stop(self, name: str, by: str = "person") -> None: ...

    async def restart(self, name: str, by: str = "person") -> None: ...

    async def pause_all(self, by: str = "person") -> list[str]: ...

    async def resume_all(self, by: str = "person") -> list[str]: ...

    async def decide(self, call_id: str, decision: Decision, *, reason: str = "",
                     arguments: dict[str, Any] | None = None, by: str = "person") -> None: ...

    async def approve_all(self, by: str = "person",
                          ids: list[str] | None = None) -> list[str]: ...

    async def set_state(self, key: str, value: Any, by: str = "person") -> None: ...
