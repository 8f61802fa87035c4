"""The supervisor: owns the runners and the session; the only place commands enter.

It stamps every event (session, per-session `seq`, time), folds it into the live
`SessionState`, and publishes it on the bus, in that order and synchronously, so the state, the
log and every view agree on what happened and when. Commands return once their event is
committed to the log.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx
import ollama

from cockpit import __version__
from cockpit.core import events as ev
from cockpit.core.bus import EventBus
from cockpit.core.config import CrewConfig, render_template
from cockpit.core.eventlog import EventLog
from cockpit.core.runner import Command, CommandError, Runner
from cockpit.core.state import RUNNING, AgentStatus, SessionState

E = TypeVar("E", bound=ev.BaseEvent)

CONNECT_TIMEOUT = 10.0


def new_session_id(now: float | None = None) -> str:
    """Sortable and readable: `20261121-060142-3fa9`."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return f"{stamp}-{secrets.token_hex(2)}"


class Supervisor:
    """Runs a crew as one session. Create it on the running loop; `run()` drives it."""

    def __init__(
        self,
        crew: CrewConfig,
        log: EventLog,
        bus: EventBus | None = None,
        *,
        crew_path: Path | str | None = None,
        session: str | None = None,
        hosts: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.crew = crew
        self.log = log
        self.bus = bus if bus is not None else EventBus()
        self.bus.add_sink(log.append)
        self.crew_path = str(crew_path) if crew_path is not None else None
        self.session = session or new_session_id()
        self.state = SessionState()
        self._hosts = dict(hosts or {})
        self._clock = clock
        """Event timestamps; tests and screenshots freeze it."""
        self._seq = 0
        self._clients: dict[str, ollama.AsyncClient] = {}
        self._runners: dict[str, Runner] = {}
        self._drivers: dict[str, asyncio.Task[None]] = {}
        self._ended = {agent.name: asyncio.Event() for agent in crew.agents}
        self._changed = asyncio.Event()
        self._finished = False
        self._error: BaseException | None = None
        """A driver that died of something other than an agent failure (a broken log)."""

    # -- events --------------------------------------------------------------------------------

    def emit(self, event_type: type[E], agent: str | None, **fields: Any) -> E:
        """Stamp, fold and publish one event. Synchronous, so order is emission order."""
        self._seq += 1
        event = event_type(session=self.session, agent=agent, seq=self._seq, ts=self._clock(),
                           **fields)
        self.state.apply(event)
        self.bus.publish(event)
        if event.type in ev.TERMINAL_TYPES and agent is not None:  # type: ignore[attr-defined]
            self._ended[agent].set()
            self._changed.set()
        return event

    def emit_text(self, event_type: type[ev.TokenStreamed] | type[ev.ThinkingStreamed],
                  agent: str, text: str, chunks: int = 1) -> None:
        """`emit` for streamed text, the hot path: no terminal-event bookkeeping."""
        self._seq += 1
        event = event_type(session=self.session, agent=agent, seq=self._seq, ts=self._clock(),
                           text=text, chunks=chunks)
        self.state.apply(event)
        self.bus.publish(event)

    async def commit(self) -> None:
        """Wait until every event emitted so far is on disk."""
        await self.log.flush()

    def host_url(self, host: str) -> str:
        """The address to connect to for a crew host (e.g. "embedded" -> its loopback URL)."""
        return self._hosts.get(host, host)

    def client(self, host: str) -> ollama.AsyncClient:
        """One client per host, created on the running loop, with a connect timeout.

        No read timeout: the runner's stall watchdog owns that decision, per agent.
        """
        url = self.host_url(host)
        if url not in self._clients:
            timeout = httpx.Timeout(connect=CONNECT_TIMEOUT, read=None, write=30.0, pool=None)
            # Plain http needs no CA bundle; loading it cost ~15 ms before the first request.
            verify = url.startswith("https:")
            self._clients[url] = ollama.AsyncClient(host=url, timeout=timeout, verify=verify)
        return self._clients[url]

    # -- the session ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Log the session's start and launch every agent (dependents wait for theirs)."""
        self.emit(
            ev.SessionStarted, None,
            crew=self.crew.name, crew_path=self.crew_path,
            config=self.crew.model_dump(mode="json"), pid=os.getpid(), version=__version__,
        )
        await self.commit()
        for agent in self.crew.agents:
            self._launch(agent.name)

    async def resume_session(self, state: SessionState) -> None:
        """Continue a session rebuilt from its log: ended agents stay ended, the rest go on."""
        self.state = state
        self.session = state.session
        self._seq = state.last_seq
        self.emit(ev.SessionResumed, None, pid=os.getpid())
        await self.commit()
        for name, agent in state.agents.items():
            if agent.status.ended:
                self._ended[name].set()
            else:
                self._launch(name, fresh=agent.started_at is None)

    async def wait(self) -> SessionState:
        """Return when every agent has ended, after logging `session_finished`."""
        while not self.state.all_ended:
            self._changed.clear()
            await self._changed.wait()
            if self._error is not None:
                raise self._error
        await self.finish("failed" if self._any_unsuccessful() else "finished")
        return self.state

    async def run(self, resume: SessionState | None = None) -> SessionState:
        """Start (or continue `resume`, a session folded from its log), wait for every agent,
        finish. Always closes the clients."""
        try:
            if resume is None:
                await self.start()
            else:
                await self.resume_session(resume)
            return await self.wait()
        finally:
            await self.aclose()

    async def finish(self, outcome: str) -> None:
        """Log `session_finished` once. "interrupted" leaves the session resumable."""
        if self._finished:
            return
        self._finished = True
        self.emit(ev.SessionFinished, None, outcome=outcome,
                  agents={name: str(a.status) for name, a in self.state.agents.items()})
        await self.commit()

    async def shutdown(self) -> None:
        """Stop every agent where it is (partials stay in the log) and end as interrupted."""
        tasks = [task for task in self._drivers.values() if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not self.state.all_ended:
            await self.finish("interrupted")
        await self.aclose()

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()  # type: ignore[no-untyped-call]

    def _any_unsuccessful(self) -> bool:
        return any(a.status is not AgentStatus.FINISHED for a in self.state.agents.values())

    def _launch(self, name: str, *, fresh: bool = True) -> None:
        self._ended[name].clear()
        task = asyncio.create_task(self._drive(name, fresh), name=f"cockpit agent {name}")
        task.add_done_callback(self._driver_done)
        self._drivers[name] = task

    def _driver_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and self._error is None:
            self._error = task.exception()
        self._changed.set()

    async def _drive(self, name: str, fresh: bool) -> None:
        """Wait for the agent's dependencies, then run it to its end."""
        config = self.crew.agent(name)
        for dependency in config.after:
            await self._ended[dependency].wait()
        unfinished = [d for d in config.after
                      if self.state.agents[d].status is not AgentStatus.FINISHED]
        if unfinished:
            status = self.state.agents[unfinished[0]].status
            self.emit(ev.AgentFailed, name,
                      error=f"not started: dependency {unfinished[0]!r} {status}")
            await self.commit()
            return
        if fresh:
            try:
                messages = self._opening(name)
            except KeyError as missing:
                self.emit(ev.AgentFailed, name,
                          error=f"not started: {{{{{missing.args[0]}}}}} is not on the board")
                await self.commit()
                return
            self.emit(ev.AgentStarted, name, model=self.crew.model_for(config),
                      host=self.crew.host_for(config), messages=messages,
                      options=dict(config.options))
            await self.commit()
        runner = Runner(self, name, self.client(self.crew.host_for(config)))
        self._runners[name] = runner
        await runner.run()

    def _opening(self, name: str) -> list[dict[str, Any]]:
        config = self.crew.agent(name)
        board = self.state.board_values()
        messages = []
        if config.system:
            messages.append({"role": "system", "content": render_template(config.system, board)})
        messages.append({"role": "user", "content": render_template(config.task, board)})
        return messages

    # -- commands ------------------------------------------------------------------------------

    def _check(self, name: str, allowed: frozenset[AgentStatus] | set[AgentStatus],
               verb: str) -> None:
        if name not in self.state.agents:
            raise CommandError(f"no agent named {name!r}")
        status = self.state.agents[name].status
        if status not in allowed:
            raise CommandError(f"cannot {verb} {name}: it is {status}")

    async def _send(self, name: str, command: Command) -> None:
        runner = self._runners.get(name)
        if runner is None:
            raise CommandError(f"{name} has not started")
        await runner.command(command)

    async def pause(self, name: str, by: str = "person") -> None:
        """Close the agent's stream (Ollama stops generating); the partial reply is kept."""
        self._check(name, RUNNING, "pause")
        await self._send(name, Command("pause", by=by))

    async def resume(self, name: str, by: str = "person") -> None:
        """Re-send the conversation with the partial reply last; Ollama continues it."""
        self._check(name, {AgentStatus.PAUSED}, "resume")
        await self._send(name, Command("resume", by=by))

    async def redirect(self, name: str, instruction: str, by: str = "person") -> None:
        """Cut the reply off, keep it, add `instruction` as a user message, and go on."""
        if not instruction.strip():
            raise CommandError("an empty instruction would change nothing")
        self._check(name, RUNNING | {AgentStatus.PAUSED}, "redirect")
        await self._send(name, Command("redirect", instruction=instruction, by=by))

    async def stop(self, name: str, by: str = "person") -> None:
        """End the agent for good (until restarted); dependents will not start."""
        self._check(name, RUNNING | {AgentStatus.PAUSED, AgentStatus.WAITING}, "stop")
        if self.state.agents[name].status is AgentStatus.WAITING:
            driver = self._drivers[name]
            driver.cancel()
            await asyncio.gather(driver, return_exceptions=True)
            self.emit(ev.AgentStopped, name, by=by, reason="stopped before it started")
            await self.commit()
            return
        await self._send(name, Command("stop", by=by))

    async def restart(self, name: str, by: str = "person") -> None:
        """Start a failed or stopped agent again from its opening messages."""
        self._check(name, {AgentStatus.FAILED, AgentStatus.STOPPED}, "restart")
        self.emit(ev.AgentRestarted, name, by=by)
        await self.commit()
        self._launch(name)

    async def pause_all(self, by: str = "person") -> list[str]:
        """Pause every running agent; returns the names paused."""
        names = [n for n, a in self.state.agents.items() if a.status in RUNNING]
        results = await asyncio.gather(*(self.pause(n, by) for n in names),
                                       return_exceptions=True)
        return [n for n, r in zip(names, results, strict=True) if r is None]

    async def resume_all(self, by: str = "person") -> list[str]:
        names = [n for n, a in self.state.agents.items() if a.status is AgentStatus.PAUSED]
        results = await asyncio.gather(*(self.resume(n, by) for n in names),
                                       return_exceptions=True)
        return [n for n, r in zip(names, results, strict=True) if r is None]

    async def set_state(self, key: str, value: Any, by: str = "person") -> None:
        """Write the board. Agents that start later read the new value."""
        if not key.strip():
            raise CommandError("a board key cannot be empty")
        self.emit(ev.StateSet, None, key=key, value=value, by=by)
        await self.commit()
