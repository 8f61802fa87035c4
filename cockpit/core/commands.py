"""What a person (or the log, or a shell) asks of a running agent, and the refusal.

Apart from the runner so that views can catch `CommandError` without importing the engine.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal


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
