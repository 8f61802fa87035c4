"""What a viewer is fed from: one viewer, three sources.

The cockpit (the TUI, in a terminal or a browser) only folds the events a source publishes on
its bus and sends the person's commands to `source.commands`. Where the events come from is the
source's business:

- `OwnedSource`: a supervisor in this process (tests, screenshots, benchmarks);
- `AttachedSource`: a session another process owns; its log is tailed, and its commands go
  over the owner's socket (control.py). `cockpit run` and `cockpit attach` use it;
- `ReplaySource`: a logged session played back; it commands nothing.

So the viewer never asks "is this a replay": it asks whether there are commands
(`commands is None`) or a player (`player is None`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from cockpit.core.bus import EventBus
from cockpit.core.channel import ControlError
from cockpit.core.commands import SessionCommands
from cockpit.core.config import CrewConfig
from cockpit.core.control import ControlClient, RemoteCommands
from cockpit.core.eventlog import EventLog
from cockpit.core.events import BaseEvent
from cockpit.core.logfile import mcp_log_path
from cockpit.core.logreader import LogError
from cockpit.core.state import SessionState
from cockpit.core.tail import LogTail
from cockpit.core.tools.base import ToolsUnavailable

if TYPE_CHECKING:
    import ollama

    from cockpit.core.acting import Policy
    from cockpit.core.replay import Player, Timeline
    from cockpit.core.supervisor import Supervisor

STOP_WAIT = 20.0
"""Longest a viewer waits for the owner to confirm that it stopped the crew."""
OWNER_POLL = 1.0
"""Seconds between checks for a new owner of a session whose owner died."""

Quit = Literal["confirm", "detach", "free"]
"""What `q` does while agents run: confirm cutting them off (the session is here), offer to
detach or stop (it runs elsewhere), or just leave (a replay)."""


class Viewer(Protocol):
    """What a source tells the viewer it feeds, besides the events on the bus."""

    def source_failed(self, message: str) -> None:
        """The session cannot go on or be shown (a log error): exit 2 with `message`."""

    def owner_lost(self, message: str) -> None:
        """The process that owns the session died: say so, and how to resume it."""

    def owner_back(self) -> None:
        """An owner answers for the session again (it was resumed): commands apply again."""

    def source_ready(self) -> None:
        """What the source offers changed (the replay's player exists now)."""

    def show_state_at(self, state: SessionState, index: int) -> None:
        """A replay seek: the view is replaced by `state`."""


class Source:
    crew: CrewConfig
    db: Path
    session: str | None = None
    readonly = True
    """The viewer opens the log read-only: it never writes (only an owner does)."""
    commands: SessionCommands | None = None
    player: Player | None = None
    plays = False
    """It has a player: the viewer offers the transport keys (a replay)."""
    quit: Quit = "free"

    def initial_view(self) -> SessionState:
        """The session as it stands before the first event is published."""
        return SessionState()

    async def run(self, log: EventLog, bus: EventBus, viewer: Viewer) -> None:
        """Publish events on `bus` for as long as the viewer lives."""

    async def close(self, stop: bool) -> None:
        """The viewer is going; `stop` asks to stop the crew too (else it goes on)."""

    def command_done(self) -> None:
        """A command was answered: its event is committed (the attached viewer reads it
        at once instead of at its next poll)."""

    def stops_on(self, signum: int) -> bool:
        """Whether signal `signum` to the viewer stops the crew (else it only detaches)."""
        return True

    def host_client(self, host: str) -> ollama.AsyncClient | None:
        """A client for crew host `host` (the inspector's model list), or None."""
        return None


class OwnedSource(Source):
    """The session runs here: a supervisor in this process, started when the viewer mounts.
    Leaving cuts the agents off where they are; the session stays resumable."""

    readonly = False
    quit: Quit = "confirm"

    def __init__(self, crew: CrewConfig, db: Path, *, crew_path: Path | None = None,
                 hosts: Mapping[str, str] | None = None, clock: Callable[[], float] | None = None,
                 resume: SessionState | None = None, only: list[str] | None = None,
                 approve: Policy = "ask") -> None:
        self.crew, self.db, self.crew_path = crew, db, crew_path
        self.hosts = dict(hosts or {})
        self.clock = clock
        self.resume, self.only, self.approve = resume, only, approve
        self.supervisor: Supervisor | None = None
        self.session = resume.session if resume is not None else None

    def initial_view(self) -> SessionState:
        return copy.deepcopy(self.resume) if self.resume is not None else SessionState()

    async def run(self, log: EventLog, bus: EventBus, viewer: Viewer) -> None:
        from cockpit.core.supervisor import Supervisor

        log.add_failure_listener(lambda error: viewer.source_failed(f"cockpit: {error}"))
        options = {"clock": self.clock} if self.clock is not None else {}
        self.supervisor = supervisor = Supervisor(
            self.crew, log, bus, crew_path=self.crew_path, hosts=self.hosts,
            session=self.session, approve=self.approve, mcp_log=mcp_log_path(self.db),
            **options)
        self.session = supervisor.session
        self.commands = supervisor
        viewer.source_ready()
        try:
            if self.resume is not None:
                await supervisor.resume_session(self.resume, self.only)
            else:
                await supervisor.start()
            await supervisor.wait()
        except (LogError, ToolsUnavailable) as error:
            viewer.source_failed(f"cockpit: {error}")

    async def close(self, stop: bool) -> None:
        if self.supervisor is not None:
            await self.supervisor.shutdown()

    def host_client(self, host: str) -> ollama.AsyncClient | None:
        return self.supervisor.client(host) if self.supervisor is not None else None


class AttachedSource(Source):
    """A session that another process (its owner) runs: its log is read from the start and
    then tailed, so no event is missed or shown twice, and commands go over the owner's
    socket. The viewer's death costs the crew nothing.

    The events before the attach are published like the ones after, not folded into a
    starting state: each pane then shows the whole history (the reply before a redirect,
    the redirect's line, tool calls), not just the reply in progress."""

    quit: Quit = "detach"

    def __init__(self, db: Path, session: str, crew: CrewConfig, *,
                 started_here: bool = False) -> None:
        self.db, self.session, self.crew = db, session, crew
        self.client: ControlClient | None = None
        """The viewer's connection to the owner, made on the viewer's own event loop."""
        self._connected = asyncio.Event()
        self.commands = RemoteCommands(self)
        self.started_here = started_here
        """`cockpit run` started the owner for this viewer: SIGTERM stops the crew."""
        self.tail: LogTail | None = None
        self.lost = False
        """The owner has gone and no other answers yet."""
        self._revived = asyncio.Event()
        self._clients: dict[str, ollama.AsyncClient] = {}

    @classmethod
    async def open(cls, db: Path, ref: str, *, started_here: bool = False) -> AttachedSource:
        """Attach to session `ref` of log `db`: NotRunning if no owner answers for it (it
        ended or crashed: open it as a replay instead), LogError if the log cannot be read."""
        async with EventLog.open(db, readonly=True) as log:
            session = await log.resolve(ref)
            probe = await ControlClient.connect(db, session)  # NotRunning: replay it
            await probe.aclose()
            crew, _ = await log.crew(session)
        return cls(db, session, crew, started_here=started_here)

    async def call(self, op: str, **args: Any) -> Any:
        """A request to the owner (RemoteCommands sends through here)."""
        await self._connected.wait()
        if self.client is None:
            raise ControlError(f"session {self.session} is not running")
        return await self.client.call(op, **args)

    async def run(self, log: EventLog, bus: EventBus, viewer: Viewer) -> None:
        """Follow the log for the viewer's whole life. When the owner goes, say so; when an
        owner answers again (`cockpit resume` here or anywhere), command it."""
        assert self.session is not None
        self.tail = tail = LogTail(log, self.session)  # from the start: the whole history

        def publish(events: list[BaseEvent]) -> None:
            for event in events:
                bus.publish(event)

        following = asyncio.create_task(tail.follow(publish), name="cockpit attach tail")
        try:
            while True:
                if await self._serve_while_connected(following, viewer):
                    return
                await self._told_lost(log, viewer)
                if await self._until_owner(following):
                    return
        except (LogError, OSError) as error:
            viewer.source_failed(f"cockpit: {error}")
        finally:
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)

    async def _serve_while_connected(self, following: asyncio.Task[None],
                                     viewer: Viewer) -> bool:
        """Connect to the owner and keep the connection until it drops; True if the tail
        ended instead (its error is raised)."""
        try:
            self.client = await ControlClient.connect(self.db, self.session or "",
                                                      viewer=True)
        except ControlError:
            self.client = None
        finally:
            self._connected.set()
        if self.client is None:
            return False
        if self.lost:
            self.lost = False
            viewer.owner_back()
        lost = asyncio.create_task(self.client.closed.wait(), name="cockpit attach owner")
        try:
            await asyncio.wait({following, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        client, self.client = self.client, None
        await client.aclose()
        if following.done():
            following.result()  # a log error: raised to the viewer
            return True
        return False

    async def _told_lost(self, log: EventLog, viewer: Viewer) -> None:
        """The owner hung up. A session that ended said so in its log first; tell the viewer
        only if it did not end as it should."""
        if self.lost:
            return
        self.lost = True
        outcome = await self._outcome(log)
        if outcome is None:
            viewer.owner_lost(
                f"The process that ran session {self.session} has died; the crew is not "
                f"running. Press ctrl+r (or run `cockpit resume {self.session}`) to continue "
                "it.")
        elif outcome == "interrupted":
            viewer.owner_lost(
                f"Session {self.session} was interrupted (its owner process was stopped). "
                f"Press ctrl+r (or run `cockpit resume {self.session}`) to continue it.")
        else:
            self.lost = False  # it ended: nothing to say beyond what the panes show

    async def _until_owner(self, following: asyncio.Task[None]) -> bool:
        """Wait until an owner answers for the session again (checked each second, or at once
        after `revive`); True if the tail ended first."""
        while not await _owner_answers(self.db, self.session or ""):
            self._revived.clear()
            waiting = asyncio.create_task(self._revived.wait())
            try:
                await asyncio.wait({following, waiting}, timeout=OWNER_POLL,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiting.cancel()
            if following.done():
                following.result()
                return True
        return False

    async def revive(self) -> None:
        """Continue the session in a new owner process (the viewer's `resume`), then command
        it. OwnerError says why not."""
        from cockpit.owner_process import start_owner

        await asyncio.to_thread(start_owner, self.db, resume=self.session)
        self._revived.set()

    async def _outcome(self, log: EventLog) -> str | None:
        rows = [r for r in await log.sessions() if r.id == self.session]
        return rows[0].outcome if rows else None


    def command_done(self) -> None:
        if self.tail is not None:
            self.tail.wake()

    async def close(self, stop: bool) -> None:
        client = self.client
        try:
            if stop:
                await self._stop_crew(client)
        finally:
            if client is not None:
                await client.aclose()
            for host_client in self._clients.values():
                await host_client.close()  # type: ignore[no-untyped-call]

    async def _stop_crew(self, client: ControlClient | None) -> None:
        """Ask the owner to stop the crew, on a connection of its own if the viewer's is not
        up (a signal can come before it is, or after the owner went)."""
        own = client is None or client.closed.is_set()
        if own:
            try:
                client = await ControlClient.connect(self.db, self.session or "")
            except ControlError:
                return  # nobody runs the session: nothing to stop
        assert client is not None
        try:
            with contextlib.suppress(ControlError, TimeoutError):  # then the owner finishes
                await asyncio.wait_for(client.call("shutdown"), STOP_WAIT)
        finally:
            if own:
                await client.aclose()

    def stops_on(self, signum: int) -> bool:
        return self.started_here and signum in (signal.SIGTERM, signal.SIGINT)

    def host_client(self, host: str) -> ollama.AsyncClient | None:
        import ollama

        info = self.client.info if self.client is not None else {}
        url = str(dict(info.get("hosts") or {}).get(host, host))
        if url not in self._clients:
            self._clients[url] = ollama.AsyncClient(host=url)
        return self._clients[url]


class ReplaySource(Source):
    """A logged session played back with its original timing; nothing is written."""

    plays = True

    def __init__(self, db: Path, session: str, crew: CrewConfig, speed: float = 1.0) -> None:
        self.db, self.session, self.crew, self.speed = db, session, crew, speed
        self.timeline: Timeline | None = None
        """Set once the log is indexed (a large session takes seconds)."""

    @classmethod
    async def open(cls, db: Path, ref: str, speed: float = 1.0) -> ReplaySource:
        """Session `ref` (an id, a prefix, `last`); LogError if it cannot be read. The crew
        is read first: the panes are laid out for it before the viewer starts."""
        async with EventLog.open(db, readonly=True) as log:
            session = await log.resolve(ref)
            crew, _ = await log.crew(session)
        return cls(db, session, crew, speed)

    async def run(self, log: EventLog, bus: EventBus, viewer: Viewer) -> None:
        import sqlite3

        from cockpit.core.replay import Player, Timeline

        assert self.session is not None
        try:
            self.timeline = await Timeline.load(log, self.session)
        except (LogError, sqlite3.Error, ValueError) as error:
            viewer.source_failed(f"cockpit: {self.db}: cannot replay {self.session}: {error}")
            return
        self.player = player = Player(self.timeline, bus, viewer.show_state_at)
        player.set_speed(self.speed)
        viewer.source_ready()
        await player.run()


async def _owner_answers(db: Path, session: str) -> bool:
    try:
        client = await ControlClient.connect(db, session)
    except ControlError:
        return False
    await client.aclose()
    return True
