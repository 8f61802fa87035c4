"""The supervisor: owns the runners and the session; the only place commands enter.

It stamps every event (session, per-session `seq`, time), folds it into the live
`SessionState`, and publishes it on the bus, in that order and synchronously, so the state, the
log and every view agree on what happened and when. Commands return once their event is
committed to the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import ollama

from cockpit import __version__
from cockpit.core import events as ev
from cockpit.core.acting import Approvals, Policy, Port, delivery_note
from cockpit.core.bus import EventBus
from cockpit.core.commands import Command, CommandError, Decision
from cockpit.core.config import ConfigError, CrewConfig, render_template
from cockpit.core.eventlog import EventLog, LogError
from cockpit.core.hosts import HostPool
from cockpit.core.process import process_identity
from cockpit.core.runner import Runner
from cockpit.core.state import RUNNING, AgentStatus, SessionState, message_text
from cockpit.core.tools.base import Tool, ToolError

if TYPE_CHECKING:
    from cockpit.core.tools.mcp import McpHub

E = TypeVar("E", bound=ev.BaseEvent)

CONNECT_TIMEOUT = 10.0
LOG = "log"
"""Who pauses and resumes the agents while the event log refuses writes."""
SYSTEM_PAUSERS = frozenset({LOG})
"""Pausers that resume by themselves: their pauses do not outlive a quit."""


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
        approve: Policy = "ask",
        mcp_log: Path | None = None,
    ) -> None:
        self.crew = crew
        self._crew_file = crew
        """The crew file as last read (`update_crew`): a save that changes nothing in it logs
        nothing, and an ignored change is reported once, not at every save."""
        self.log = log
        self.bus = bus if bus is not None else EventBus()
        self.bus.add_sink(self._to_log)
        self.crew_path = str(crew_path) if crew_path is not None else None
        self.session = session or new_session_id()
        self.state = SessionState()
        self._hosts = dict(hosts or {})
        self._clock = clock
        """Event timestamps; tests and screenshots freeze it."""
        self._seq = 0
        self._clients: dict[str, ollama.AsyncClient] = {}
        self.pool = HostPool(self.client)
        self._runners: dict[str, Runner] = {}
        self._drivers: dict[str, asyncio.Task[None]] = {}
        self._ended = {agent.name: asyncio.Event() for agent in crew.agents}
        self._changed = asyncio.Event()
        self._held: set[str] = set()
        """Agents `cockpit resume --only` leaves where they are: not run, not waited for."""
        self._error: BaseException | None = None
        """A driver that died of something other than an agent failure (a broken log)."""
        self._log_task: asyncio.Task[None] | None = None
        self._finisher: asyncio.Task[SessionState] | None = None
        """Ends a session again that a restart reopened."""
        self._log_stuck_at: float | None = None
        self.approvals = Approvals(self, approve)
        self.commands_from_afar = False
        """Commands can come from other processes (the run listens on its socket): an agent a
        person pauses during the run can be resumed, so `idle()` does not count it."""
        self.paused_here: set[str] = set()
        self.closed = False
        """The session's run is over here (`run()` returned, or the supervisor was closed):
        nothing may start an agent again (a follow-up, a restart)."""
        self._once = False
        """`run()` drives the session: once it has ended, it has ended for good (a headless
        run exits), so it is not reopened."""
        self.mcp: McpHub | None = None
        self.mcp_log = mcp_log
        """Where MCP servers' stderr goes (never the terminal the TUI draws on)."""
        log.add_health_listener(self._log_health)
        log.add_failure_listener(self._log_failed)

    # -- events --------------------------------------------------------------------------------

    def emit(self, event_type: type[E], agent: str | None, **fields: Any) -> E:
        """Stamp, fold and publish one event. Synchronous, so order is emission order."""
        self._seq += 1
        event = event_type(session=self.session, agent=agent, seq=self._seq, ts=self._clock(),
                           **fields)
        self.state.apply(event)
        self.bus.publish(event)
        if event.settles and agent is not None:
            if event.terminal:
                self._ended[agent].set()
            self._changed.set()
        return event

    def _log_failed(self, error: LogError) -> None:
        """The log gave up for good: end the session now, even if every agent is paused."""
        if self._error is None:
            self._error = error
            self._changed.set()

    def _to_log(self, event: ev.BaseEvent) -> None:
        """The log's sink. A log that gave up is the session's end, noticed once here and
        raised by `wait()`, not a traceback from whichever timer or task emitted next."""
        try:
            self.log.append(event)
        except LogError as error:
            self._log_failed(error)

    async def record(self, event_type: type[E], agent: str | None, **fields: Any) -> E:
        """`emit`, then, for a durable type (`BaseEvent.durable`), wait until it is on disk.
        Every step that must not go on before its event is safe goes through here."""
        event = self.emit(event_type, agent, **fields)
        if event_type.durable:
            await self.commit()
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
        """Start the crew's tool servers, log the session's start and launch every agent
        (dependents wait for theirs)."""
        await self.start_tools()
        me = process_identity()
        await self.record(
            ev.SessionStarted, None,
            crew=self.crew.name, crew_path=self.crew_path,
            config=self.crew.model_dump(mode="json"), pid=me.pid, version=__version__,
            hostname=me.hostname, proc_start=me.proc_start,
        )
        for agent in self.crew.agents:
            self._launch(agent.name)

    async def resume_session(self, state: SessionState, only: list[str] | None = None) -> None:
        """Continue a session rebuilt from its log, where the log says each agent is.

        Finished and stopped agents stay so. A failed agent goes on from its partial reply
        (one that never started, its dependency having failed, now starts). A paused agent
        stays paused until someone resumes it. `only` limits which agents continue; the rest
        are held as they are, and the session stays resumable for them.
        """
        await self.start_tools()
        self.state = state
        self.session = state.session
        self._seq = state.last_seq
        me = process_identity()
        await self.record(ev.SessionResumed, None, pid=me.pid, hostname=me.hostname,
                          proc_start=me.proc_start, only=only, stopped_at=state.last_ts,
                          previous=state.outcome or "crashed")
        continuing = [name for name, agent in state.agents.items()
                      if agent.status is not AgentStatus.FINISHED
                      and agent.status is not AgentStatus.STOPPED
                      and (only is None or name in only)]
        self._held = {name for name, agent in state.agents.items()
                      if name not in continuing and not agent.status.ended}
        for name in state.agents:
            if name in continuing:
                self._ended[name].clear()
            else:
                self._ended[name].set()
        for name, agent in state.agents.items():  # a crash came between message and wake
            if agent.unread and (only is None or name in only):
                self._wake_if_idle(name)
        for name in continuing:
            agent = state.agents[name]
            if agent.status is AgentStatus.FAILED and agent.started_at is not None:
                await self.record(ev.AgentResumed, name, by="resume")
            elif agent.status is AgentStatus.PAUSED and agent.paused_by in SYSTEM_PAUSERS:
                await self.record(ev.AgentResumed, name, by=agent.paused_by or LOG)
            # One that has answered before (a follow-up or a wake-up was under way) is past
            # its dependencies: it does not wait for them again.
            self._launch(name, fresh=agent.started_at is None,
                         paused=agent.status is AgentStatus.PAUSED,
                         follow_up=agent.output is not None)

    def _settled(self) -> bool:
        """Every agent has ended, or is held back by `resume --only`, and no finished agent
        has a message waiting (it is about to wake)."""
        return all((agent.status.ended or name in self._held)
                   and not agent.unread
                   for name, agent in self.state.agents.items())

    def idle(self) -> bool:
        """Nothing can happen without a person: every agent that has not ended is paused by
        one, held, or waiting for an agent that is. Headless runs end here, interrupted and
        resumable."""
        return all(self._blocked(name) for name in self.state.agents)

    def _blocked(self, name: str) -> bool:
        agent = self.state.agents[name]
        if agent.unread and name not in self._held:
            return False  # about to wake
        if agent.status.ended or name in self._held:
            return True
        if agent.status is AgentStatus.PAUSED:
            # paused during this run by someone who can resume it (a shell, a viewer)
            return agent.paused_by not in SYSTEM_PAUSERS and name not in self.paused_here
        if agent.status is AgentStatus.WAITING:
            return any(not self.state.agents[d].status.ended and self._blocked(d)
                       for d in self.crew.agent(name).after)
        return False

    async def wait(self, *, until_idle: bool = False) -> SessionState:
        """Return when the session has ended, after logging `session_finished`: when every
        agent has ended (or, with `until_idle`, when only paused agents are left, which ends
        the session `interrupted`)."""
        while not (self._settled() or (until_idle and self.idle())):
            if self._error is not None:
                raise self._error
            self._changed.clear()
            await self._changed.wait()
        if self._error is not None:
            raise self._error
        if self._settled():
            await self.finish(self._outcome())
        else:
            await self.finish("interrupted")
        return self.state

    def _outcome(self) -> str:
        """failed if an agent that ran did not finish; else interrupted while `--only` holds
        agents back; else finished."""
        held = {n for n in self._held if not self.state.agents[n].status.ended}
        ran = [a for name, a in self.state.agents.items() if name not in held]
        if any(a.status is not AgentStatus.FINISHED for a in ran):
            return "failed"
        return "interrupted" if held else "finished"

    async def run(self, resume: SessionState | None = None, *, only: list[str] | None = None,
                  until_idle: bool = False) -> SessionState:
        """Start (or continue `resume`, a session folded from its log), wait for every agent,
        finish. Always closes the clients."""
        self._once = True
        try:
            if resume is None:
                await self.start()
            else:
                await self.resume_session(resume, only)
            return await self.wait(until_idle=until_idle)
        finally:
            self.closed = True
            await self.aclose()

    async def finish(self, outcome: str, *, commit: bool = True) -> None:
        """Log `session_finished`, unless the log already says the session ended (the fold
        decides: a restart reopens it). "interrupted" leaves the session resumable.
        `commit=False` leaves the commit to the log's close, which bounds it by its grace
        (a shutdown must not hang on a locked log)."""
        if self.state.outcome is not None:
            return
        agents = {name: str(a.status) for name, a in self.state.agents.items()}
        if commit:
            await self.record(ev.SessionFinished, None, outcome=outcome, agents=agents)
        else:
            self.emit(ev.SessionFinished, None, outcome=outcome, agents=agents)

    async def shutdown(self) -> None:
        """Stop every agent where it is (partials stay in the log) and end as interrupted."""
        tasks: list[asyncio.Task[Any]] = [t for t in self._drivers.values() if not t.done()]
        tasks += [task for task in (self._log_task, self._finisher)
                  if task is not None and not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not self.state.all_ended:
            await self.finish("interrupted", commit=False)
        elif self.state.outcome is None:
            await self.finish(self._outcome(), commit=False)
        await self.aclose()

    async def aclose(self) -> None:
        self.closed = True
        hub, self.mcp = self.mcp, None
        if hub is not None:
            await hub.aclose()
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()  # type: ignore[no-untyped-call]

    def _any_unsuccessful(self) -> bool:
        return any(a.status is not AgentStatus.FINISHED for a in self.state.agents.values())

    def _launch(self, name: str, *, fresh: bool = True, paused: bool = False,
                woken_by: str | None = None, follow_up: bool = False) -> None:
        if woken_by is None and not follow_up:  # else it has ended once: dependents may start
            self._ended[name].clear()
        self._held.discard(name)
        task = asyncio.create_task(self._drive(name, fresh, paused, woken_by, follow_up),
                                   name=f"cockpit agent {name}")
        task.add_done_callback(self._driver_done)
        self._drivers[name] = task

    def _driver_done(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None and self._error is None:
            self._error = task.exception()
        self._changed.set()

    async def _drive(self, name: str, fresh: bool, paused: bool = False,
                     woken_by: str | None = None, follow_up: bool = False) -> None:
        """Wait for the agent's dependencies, then run it to its end, and again each time a
        message wakes it (within `max_wakeups`). A woken or followed-up agent had started long
        ago: its dependencies are not waited for again."""
        config = self.crew.agent(name)
        if woken_by is None and not follow_up:
            for dependency in config.after:
                await self._ended[dependency].wait()
            unfinished = [d for d in config.after if not self._answered(d)]
            if unfinished:
                status = self.state.agents[unfinished[0]].status
                await self.record(ev.AgentFailed, name,
                                  error=f"not started: dependency {unfinished[0]!r} {status}")
                return
        config = self.crew.agent(name)  # an edit of the crew file may have changed it since
        if fresh and woken_by is None:
            try:
                messages = self._opening(name)
            except KeyError as missing:
                await self.record(ev.AgentFailed, name,
                                  error=f"not started: {{{{{missing.args[0]}}}}} is not on "
                                        "the board")
                return
            await self.record(ev.AgentStarted, name, model=self.crew.model_for(config),
                              host=self.crew.host_for(config), messages=messages,
                              options=dict(config.options))
        runner = Runner(Port(self, name), self.crew.spec(name))
        self._runners[name] = runner
        if woken_by is None:
            await runner.run(paused=paused)
        # Messages that came as it finished, or while a wake-up was being logged, are read
        # here: the check is made each time the agent is finished, so none is stranded.
        while (agent := self.state.agents[name]).unread:
            if await self._wake(name, agent.inbox[0][0]):
                await runner.run()

    def _answered(self, name: str) -> bool:
        """`name` finished (its output is on the board), even if a message woke it since."""
        agent = self.state.agents[name]
        return agent.status is AgentStatus.FINISHED or (
            agent.output is not None and not agent.status.ended)

    # -- the log's health ------------------------------------------------------------------------

    def _log_health(self, cause: str | None) -> None:
        """The log refuses writes (`cause`), or accepts them again (None): pause every agent
        so nothing streams into memory meanwhile, and resume them when it is back."""
        loop = asyncio.get_running_loop()
        action: Awaitable[Any]
        if cause is not None and self._log_stuck_at is not None:
            self.emit(ev.LogStuck, None, cause=cause)  # a new cause: the banner says so
            return
        if cause is not None:
            self._log_stuck_at = loop.time()
            self.emit(ev.LogStuck, None, cause=cause)
            action = self.pause_all(by=LOG)
        else:
            stuck_for = loop.time() - (self._log_stuck_at or loop.time())
            self._log_stuck_at = None
            self.emit(ev.LogRecovered, None, stuck_for=round(stuck_for, 3))
            action = self._resume_paused_by_log()
        previous = self._log_task
        self._log_task = loop.create_task(self._after(previous, action),
                                          name="cockpit log health")

    @staticmethod
    async def _after(previous: asyncio.Task[None] | None, action: Awaitable[Any]) -> None:
        """Run `action` once the previous health action is done, so a resume never overtakes
        the pause it undoes."""
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        with contextlib.suppress(CommandError, LogError):
            await action

    async def _resume_paused_by_log(self) -> None:
        names = [n for n, a in self.state.agents.items()
                 if a.status is AgentStatus.PAUSED and a.paused_by == LOG]
        await asyncio.gather(*(self.resume(n, by=LOG) for n in names), return_exceptions=True)

    def _opening(self, name: str) -> list[dict[str, Any]]:
        config = self.crew.agent(name)
        board = self.state.board_values()
        messages = []
        if config.system:
            messages.append({"role": "system", "content": render_template(config.system, board)})
        messages.append({"role": "user", "content": render_template(config.task, board)})
        messages += [{"role": "user", "content": message_text(sender, text)}
                     for sender, text in self.state.agents[name].inbox]
        return messages

    # -- the crew file ---------------------------------------------------------------------------

    def started_agents(self) -> set[str]:
        """Agents an edit of the crew file no longer reaches: started, or ended unstarted."""
        return {name for name, agent in self.state.agents.items()
                if agent.started_at is not None or agent.status.ended}

    async def update_crew(self, new: CrewConfig, *, path: Path | str | None = None,
                          source: str = "") -> ev.CrewUpdated | None:
        """Apply an edit of the crew file as far as a running crew can take it (`reload.
        crew_diff`); None if it changes nothing. `source`, the file's text, gives the lines of
        an error. A crew that the edit would leave broken (a dependency on an agent the crew
        kept under its old name, a tool of a server it does not run) is logged as
        `crew_rejected` and raised as ConfigError; the crew goes on unchanged.

        The crew is swapped in the same step as its event is folded, so an agent that starts
        from here on starts as the log says; new agents launch once the event is committed."""
        from cockpit.core.reload import check_update, crew_diff

        if self.state.started_at is None:
            raise CommandError("the session has not started")
        where = str(path) if path is not None else self.crew_path
        unchanged, self._crew_file = new == self._crew_file, new
        if unchanged and self.state.crew_error is None:
            return None
        diff = crew_diff(self.crew, new, self.started_agents())
        if not diff and self.state.crew_error is None:
            return None  # back to what the crew runs: nothing to tell
        error = check_update(diff, new, where or "<crew>", source)
        if error is None and self.mcp is not None:
            from cockpit.core.tools.mcp import McpError

            try:
                self.mcp.check_refs(diff.crew.agent(n) for n in (*diff.added, *diff.changed))
            except McpError as failure:
                error = ConfigError(where or "<crew>", [(None, "tools", str(failure))])
        if error is not None:
            await self.reject_crew(error, path=where)
            raise error
        before, self.crew = self.crew, diff.crew
        for name in diff.added:
            self._ended[name] = asyncio.Event()
        reopening = bool(diff.added) and self.state.outcome is not None
        event = self.emit(ev.CrewUpdated, None, diff=diff.lines,
                          config=diff.crew.model_dump(mode="json"), added=diff.added,
                          changed=diff.changed, path=where)
        for name in diff.changed:
            if before.agent(name).after != diff.crew.agent(name).after:
                self._wait_again(name)
        await self.commit()
        for name in diff.added:
            if not self.state.agents[name].status.ended:  # stopped while it was committed
                self._launch(name)
        if reopening:
            self._end_again()
        return event

    async def reject_crew(self, error: ConfigError | str, *,
                          path: Path | str | None = None) -> ev.CrewRejected | None:
        """Log an edit of the crew file that does not validate, so every viewer can show why;
        None if that is the rejection already shown (an editor saving the same text twice)."""
        if self.state.started_at is None:
            raise CommandError("the session has not started")
        text = str(error)
        if text == self.state.crew_error:
            return None
        if path is None and isinstance(error, ConfigError):
            path = error.path
        return await self.record(ev.CrewRejected, None, error=text,
                                 path=str(path) if path is not None else self.crew_path)

    def _wait_again(self, name: str) -> None:
        """An agent not yet started whose `after` changed: its driver waits for the new
        dependencies (one with no driver, held by `resume --only`, reads them when it runs)."""
        driver = self._drivers.get(name)
        if driver is not None and not driver.done():
            driver.cancel()
            self._launch(name)

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
        if self.commands_from_afar and by not in SYSTEM_PAUSERS:
            self.paused_here.add(name)  # before the event: `wait()` may look at it at once
        await self._send(name, Command("pause", by=by, gentle=by in SYSTEM_PAUSERS))

    async def resume(self, name: str, by: str = "person") -> None:
        """Re-send the conversation with the partial reply last; Ollama continues it."""
        self._check(name, {AgentStatus.PAUSED}, "resume")
        await self._send(name, Command("resume", by=by))

    async def redirect(self, name: str, instruction: str, by: str = "person") -> None:
        """Cut the reply off, keep it, add `instruction` as a user message, and go on. To a
        finished agent it is a follow-up (`follow_up`)."""
        if not instruction.strip():
            raise CommandError("an empty instruction would change nothing")
        self._check(name, RUNNING | {AgentStatus.PAUSED, AgentStatus.FINISHED}, "redirect")
        if self.state.agents[name].status is AgentStatus.FINISHED:
            await self.follow_up(name, instruction, by)
            return
        await self._send(name, Command("redirect", instruction=instruction, by=by))

    async def follow_up(self, name: str, instruction: str, by: str = "person") -> None:
        """Ask a finished agent a follow-up: a new turn of the same conversation (the whole
        history, then `instruction`), logged as a redirect. It runs again and finishes anew,
        `outputs.<name>` then holds the new answer; a session that had ended is open again
        until it does."""
        self._check(name, {AgentStatus.FINISHED}, "ask a follow-up of")
        self._reopenable(name)
        reopening = self.state.outcome is not None
        await self.record(ev.AgentRedirected, name, instruction=instruction, by=by,
                          follow_up=True)
        self._launch(name, fresh=False, follow_up=True)
        if reopening:
            self._end_again()

    def _reopenable(self, name: str) -> None:
        """Refuse to run an ended agent again where nothing would end the session anew."""
        if self.closed or (self._once and self.state.outcome is not None):
            raise CommandError(f"session {self.session} has ended: nothing here would run "
                               f"{name} again")
        if self.state.agents[name].unread:
            raise CommandError(f"{name} is about to read a message; ask it once it has")

    async def stop(self, name: str, by: str = "person") -> None:
        """End the agent for good (until restarted); dependents will not start."""
        self._check(name, RUNNING | {AgentStatus.PAUSED, AgentStatus.WAITING}, "stop")
        if self.state.agents[name].status is AgentStatus.WAITING:
            driver = self._drivers.get(name)  # none for an agent `resume --only` held
            if driver is not None:
                driver.cancel()
                await asyncio.gather(driver, return_exceptions=True)
            await self.record(ev.AgentStopped, name, by=by, reason="stopped before it started")
            return
        await self._send(name, Command("stop", by=by))

    async def restart(self, name: str, by: str = "person") -> None:
        """Start a failed, stopped or finished agent again from its opening messages (a
        finished one: a re-run). A session that had ended is open again (the fold says so),
        and ends anew when its agents do."""
        self._check(name, {AgentStatus.FAILED, AgentStatus.STOPPED, AgentStatus.FINISHED},
                    "restart")
        self._reopenable(name)
        reopening = self.state.outcome is not None
        await self.record(ev.AgentRestarted, name, by=by)
        self._launch(name)
        if reopening:
            self._end_again()

    def _end_again(self) -> None:
        """A session that had ended runs again: end it anew when its agents do."""
        if self._finisher is None or self._finisher.done():
            self._finisher = asyncio.create_task(self.wait(), name="cockpit session end")
            self._finisher.add_done_callback(self._driver_done)

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

    # -- agents that act ---------------------------------------------------------------------

    def now(self) -> float:
        return self._clock()

    def mcp_tools(self, ref: str) -> list[Tool]:
        if self.mcp is None:
            raise KeyError(ref)
        return self.mcp.tools(ref)

    async def start_tools(self) -> None:
        """Start the crew's MCP servers, before any agent runs: one that cannot start is an
        error naming it (`McpStartError`), not an agent failing at 3 AM."""
        if self.crew.mcp and self.mcp is None:
            from cockpit.core.tools.mcp import McpHub

            hub = McpHub(list(self.crew.mcp), errlog=self.mcp_log,
                         on_restart=self._tool_server_restarted)
            await hub.start()
            self.mcp = hub
            try:
                hub.check_refs(self.crew.agents)
            except Exception:
                await hub.aclose()
                self.mcp = None
                raise

    def _tool_server_restarted(self, server: str, reason: str) -> None:
        self.emit(ev.ToolServerRestarted, None, server=server, reason=reason)

    async def send_message(self, sender: str, to: str, text: str) -> str:
        """Log a message from `sender` to `to`; what the sender is told. A finished target
        wakes (within its `max_wakeups`); one that has not started reads it in its opening."""
        to = to.strip()
        if to not in self.state.agents:
            names = ", ".join(n for n in self.state.agents if n != sender)
            raise ToolError(f"no agent named {to!r}; the crew: {names}")
        if to == sender:
            raise ToolError("you cannot send a message to yourself")
        target = self.state.agents[to]
        note = delivery_note(target)
        self.emit(ev.MessageSent, sender, to=to, text=text, **{"from": sender})
        self._wake_if_idle(to)  # now, not after the commit: a command may cut that wait off
        await self.commit()
        return note

    def _wake_if_idle(self, name: str) -> None:
        """A finished agent with messages waiting and no driver gets one that wakes it (one
        with a driver reads them when that driver sees it finished)."""
        agent = self.state.agents[name]
        driver = self._drivers.get(name)
        if agent.unread and (driver is None or driver.done()):
            self._launch(name, fresh=False, woken_by=agent.inbox[0][0])

    async def _wake(self, name: str, by: str) -> bool:
        """Wake a finished agent for the messages waiting for it, or log why not."""
        agent = self.state.agents[name]
        limit = self.crew.spec(name).max_wakeups
        if agent.wakeups >= limit:
            await self.record(ev.WakeRefused, name, by=by, limit=limit)
            return False
        reopening = self.state.outcome is not None
        await self.record(ev.AgentWoken, name, by=by, wakeups=agent.wakeups + 1)
        if reopening:
            self._end_again()
        return True

    async def decide(self, call_id: str, decision: Decision, *, reason: str = "",
                     arguments: dict[str, Any] | None = None, by: str = "person") -> None:
        """Approve, deny (the reason is the call's result) or edit-and-approve a call."""
        await self.approvals.decide(call_id, decision, reason=reason, arguments=arguments,
                                    by=by)

    async def approve_all(self, by: str = "person", ids: list[str] | None = None) -> list[str]:
        return await self.approvals.decide_all(by, ids)

    async def set_state(self, key: str, value: Any, by: str = "person") -> None:
        """Write the board. Agents that start later read the new value."""
        if not key.strip():
            raise CommandError("a board key cannot be empty")
        await self.record(ev.StateSet, None, key=key, value=value, by=by)

