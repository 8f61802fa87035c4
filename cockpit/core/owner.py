"""The session owner: the process that holds the supervisor, the runners and the log writer.

It runs apart from every viewer, in a session of its own (`setsid`), so a closed terminal, a
dropped SSH connection or a killed viewer cannot reach it. Viewers read its log and command it
over its socket (control.py). Headless runs own their session in-process the same way
(`serve_commands`), so a shell can answer their approvals too.

It lives until the session has ended and no viewer is attached: a viewer can still restart a
failed agent, and a detached crew with a paused agent waits for `cockpit resume ID AGENT`.
SIGTERM (and SIGINT) interrupt the session: the agents are cut off, the log is flushed, and the
session is marked `interrupted`, resumable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from cockpit.core.channel import socket_path
from cockpit.core.control import ControlServer

if TYPE_CHECKING:
    from cockpit.core.supervisor import Supervisor


@contextlib.asynccontextmanager
async def serve_commands(supervisor: Supervisor, db: Path,
                         hosts: Mapping[str, str]) -> AsyncIterator[ControlServer]:
    """Listen for the session's commands while the block runs."""
    info = {"session": supervisor.session, "pid": os.getpid(), "db": str(db),
            "hosts": dict(hosts)}
    server = ControlServer(supervisor, socket_path(db, supervisor.session), info)
    await server.start()
    supervisor.commands_from_afar = True
    try:
        yield server
    finally:
        supervisor.commands_from_afar = False
        await server.aclose()


async def own(supervisor: Supervisor, server: ControlServer) -> str:
    """Drive a started (or resumed) session until it has ended and no viewer is attached,
    or a viewer asked to stop the crew; the session's outcome."""
    while True:
        waiting = asyncio.create_task(_ended_and_alone(supervisor, server))
        stopped = asyncio.create_task(server.shut_down.wait())
        try:
            await asyncio.wait({waiting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiting, stopped):
                task.cancel()
            await asyncio.gather(waiting, stopped, return_exceptions=True)
        if server.shut_down.is_set():
            return supervisor.state.outcome or "interrupted"
        if waiting.done() and not waiting.cancelled():
            waiting.result()  # a broken log: raised
            if supervisor.state.outcome is not None and not server.viewers:
                return supervisor.state.outcome


async def _ended_and_alone(supervisor: Supervisor, server: ControlServer) -> None:
    await supervisor.wait()
    await server.until_no_viewers()
