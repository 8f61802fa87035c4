"""One agent's run: turns streamed from Ollama, the tool calls between them, commands.

Each request runs in its own task (`_attempt`), because the only way to make Ollama stop
generating is to close the HTTP response, and the only safe way to do that from outside the
iterating coroutine is to cancel the task that iterates (REFERENCE.md B.4). Commands (pause,
redirect, stop) cancel that task and are then applied by the runner loop itself, so every event
of an agent is emitted from one place and in order.

The runner sees the session only through its `AgentPort` and is given its agent resolved
(`AgentSpec`). The conversation lives in the session's folded state, not here: the partial
reply is the sum of the logged tokens, which is what makes pause, retry and crash-resume
continue the reply instead of regenerating it. How failures are sorted is in failures.py,
and the per-chunk machinery (merging, the stall watchdog) in streaming.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ollama

from cockpit.core import events as ev
from cockpit.core.checks import NO_JSON, verdict
from cockpit.core.commands import Command, CommandError
from cockpit.core.describe import duration
from cockpit.core.eventlog import LogError
from cockpit.core.failures import (
    MAX_BACKOFF,
    StallError,
    StreamEnded,
    classify,
    host_wait_delay,
)
from cockpit.core.hosts import HostUnreachable
from cockpit.core.state import AgentState, Call
from cockpit.core.streaming import Coalescer, StallWatchdog

if TYPE_CHECKING:
    from cockpit.core.port import AgentPort
    from cockpit.core.spec import AgentSpec

YIELD_EVERY = 0.0005
"""Seconds of parsing after which a stream yields to the event loop. At full speed httpx hands
over a whole socket buffer (hundreds of chunks) without suspending; without this, eight agents
would hold the loop for ~100 ms per turn and a key press would wait behind them."""
class Runner:
    """Drives one agent until it finishes, fails or is stopped."""

    def __init__(self, port: AgentPort, spec: AgentSpec) -> None:
        self.port = port
        self.spec = spec
        self.name = spec.name
        self.pool = port.pool
        self.model = spec.model
        self.hosts = spec.hosts
        self.host = self.agent.host if self.agent.host in self.hosts else self.hosts[0]
        """The host of the current (or last) attempt."""
        self.retries = spec.retries
        self.stall_timeout = spec.stall_timeout
        self.host_wait = spec.host_wait
        self.backoff = spec.backoff
        self._schemas = [tool.schema() for tool in port.tools.values()]
        self._began = port.now()
        self._alive = False
        """The loop runs: a command that arrives between its steps waits for the next one."""
        self._tool_running = False
        self._unstarted: set[str] = set()
        """Calls logged as running whose start a command cut off before the tool ran."""
        self._attempt_task: asyncio.Task[Any] | None = None
        self._received = False
        """Whether the current attempt has had a chunk: a drop after one is a broken reply,
        before one the host is unreachable."""
        self._waiting_since: float | None = None
        """Loop time the agent began waiting for an unreachable host, else None."""
        self._waits = 0
        """Attempts in the current wait: the backoff starts small again at each outage."""
        self._command: Command | None = None
        self._wake: asyncio.Future[Command] | None = None
        self._applying = False
        """True while the loop applies a command. Its event is already on screen, so a key
        pressed now (pause right after resume) is queued for the loop, not refused."""

    @property
    def agent(self) -> AgentState:
        return self.port.agent

    def _emit(self, event_type: type[ev.BaseEvent], **fields: Any) -> ev.BaseEvent:
        return self.port.emit(event_type, **fields)

    # -- commands (called by the supervisor, from other tasks) --------------------------------

    async def command(self, command: Command) -> None:
        """Hand a command to the runner loop and wait until its event is committed."""
        command.done = asyncio.get_running_loop().create_future()
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(command)
        elif command.kind == "resume":
            raise CommandError(f"{self.name} is not paused")
        elif self._command is not None:
            raise CommandError(f"{self.name} is already handling a {self._command.kind}")
        elif self._attempt_task is not None and not self._attempt_task.done():
            self._command = command
            if not (command.gentle and self._tool_running):
                self._attempt_task.cancel()  # else the tool step stops after this call
        elif self._applying or self._alive:
            self._command = command  # the loop takes it before its next step
        else:
            raise CommandError(f"{self.name} is {self.agent.status}")
        await command.done

    # -- the loop ------------------------------------------------------------------------------

    async def run(self, *, paused: bool = False) -> None:
        """Stream until the agent ends. The partial reply in the state is continued, if any.

        `paused`: the log says the agent is paused (a pause outlives quit and resume), so it
        waits for a resume before it sends anything.
        """
        failures = 0
        delay = 0.0
        loop = asyncio.get_running_loop()
        if paused:
            self._command = Command("pause", by=self.agent.paused_by or "person")
        self._alive = True
        try:
            await self._loop(paused, failures, delay, loop)
        finally:
            self._alive = False
            if self._command is not None:  # queued as the agent ended: say why it did not apply
                command, self._command = self._command, None
                if command.done is not None and not command.done.done():
                    command.done.set_exception(
                        CommandError(f"{self.name} is {self.agent.status}"))

    async def _loop(self, paused: bool, failures: int, delay: float,
                    loop: asyncio.AbstractEventLoop) -> None:
        while True:
            if self._command is not None:
                command, self._command = self._command, None
                self._applying = True
                try:
                    if not await self._apply(command, logged=paused):
                        return
                finally:
                    self._applying = False
                paused = False
                failures = self._waits = 0
                delay = 0.0
                self._waiting_since = None  # a new wait starts if the host is still down
                continue
            if self.agent.calls:  # the last turn asked for tools: run them (pausable too)
                self._attempt_task = asyncio.create_task(
                    self._run_calls(), name=f"cockpit {self.name} tools")
                try:
                    await self._attempt_task
                except asyncio.CancelledError:
                    if self._command is None or _being_cancelled():
                        self._attempt_task.cancel()
                        raise
                finally:
                    self._attempt_task = None
                continue
            agent = self.agent
            if agent.inbox and not agent.partial_parts and not agent.thinking_parts:
                await self.port.record(ev.MessageDelivered, count=len(agent.inbox))
                if self._command is not None:
                    continue  # a command came while the delivery was written
            self._received = False
            self._attempt_task = asyncio.create_task(
                self._attempt(delay), name=f"cockpit {self.name} request"
            )
            delay = 0.0
            try:
                turn = await self._attempt_task
            except asyncio.CancelledError:
                if self._command is None or _being_cancelled():
                    self._attempt_task.cancel()
                    raise
                continue  # the command is applied at the top of the loop
            except LogError:
                raise  # the log itself is broken: the supervisor stops the session
            except Exception as error:  # every failure becomes an event, never a traceback
                kind, message = classify(error, self.host, self._received)
                if kind != "fatal":
                    self.pool.forget(self.host)
                if kind == "unreachable":
                    now = loop.time()
                    if self._waiting_since is None:
                        self._waiting_since = now
                        await self.port.record(ev.HostWaiting, host=self._hosts_label(error),
                                               reason=message, limit=self.host_wait)
                    waited = now - self._waiting_since
                    if waited < self.host_wait:
                        self._waits += 1
                        delay = min(host_wait_delay(self._waits, self.backoff),
                                    self.host_wait - waited)
                        continue
                    message = (f"{message} (still unreachable after waiting "
                               f"{duration(waited)}; host_wait is {duration(self.host_wait)})")
                    await self.port.record(ev.AgentFailed, error=message)
                    return
                await self._host_answered()
                if isinstance(error, StallError):
                    self._emit(ev.Stalled, seconds=error.seconds)
                if self._received:
                    failures = 0  # it made progress: retries bound failures in a row
                if kind == "retry" and failures < self.retries:
                    failures += 1
                    delay = min(self.backoff * 2 ** (failures - 1), MAX_BACKOFF)
                    self._emit(ev.Retrying, attempt=failures, reason=message, delay=delay,
                               host=self.host)
                    continue
                if kind == "retry" and self.retries:
                    message += f" (gave up after {self.retries} retries)"
                await self.port.record(ev.AgentFailed, error=message)
                return
            finally:
                self._attempt_task = None
            failures = 0
            if await self._complete(turn):
                return

    def _hosts_label(self, error: BaseException) -> str:
        return ", ".join(self.hosts) if isinstance(error, HostUnreachable) else self.host

    async def _host_answered(self) -> None:
        """The host answered (a chunk, or an error status): end a wait for it, if any."""
        if self._waiting_since is not None:
            waited = asyncio.get_running_loop().time() - self._waiting_since
            self._waiting_since = None
            self._waits = 0
            await self.port.record(ev.HostBack, host=self.host, waited=round(waited, 3))

    async def _apply(self, command: Command, *, logged: bool = False) -> bool:
        """Apply an interrupting command. False when the agent has ended. `logged`: a pause
        the log already records (resuming a session with the agent paused)."""
        if command.kind == "pause":
            if not logged:
                self._emit(ev.AgentPaused, by=command.by)
            refusal: Exception | None = None
            while command.kind == "pause":
                # Ready for the resume before the pause is acknowledged: the user sees
                # `paused` as soon as the event is emitted and may press the key at once.
                wake = self._wake = asyncio.get_running_loop().create_future()
                try:
                    await self._acknowledge(command, refusal)
                    command = await wake
                finally:
                    self._wake = None
                refusal = CommandError(f"{self.name} is already paused")
        if command.kind == "resume":
            self._emit(ev.AgentResumed, by=command.by)
        elif command.kind == "redirect":
            for call in list(self.agent.calls):  # the new instruction replaces them
                self._emit(ev.ToolResult, call_id=call.call_id, tool=call.tool, error=True,
                           content=f"not run: {command.by} redirected the agent")
            self._emit(ev.AgentRedirected, instruction=command.instruction, by=command.by)
        elif command.kind == "stop":
            self._emit(ev.AgentStopped, by=command.by)
        await self._acknowledge(command)
        return command.kind != "stop"

    async def _acknowledge(self, command: Command, error: Exception | None = None) -> None:
        await self.port.commit()
        if command.done is not None and not command.done.done():
            if error is None:
                command.done.set_result(None)
            else:
                command.done.set_exception(error)

    async def _complete(self, turn: _Turn) -> bool:
        """Log a completed turn. True when the agent has ended: a final answer that passed
        its checks, or one out of correction turns, or too many tool turns in a row."""
        agent = self.agent
        output = agent.partial
        calls = [{"id": f"{self.name}.{agent.turns + 1}.{n}",
                  "function": {"name": name, "arguments": arguments}}
                 for n, (name, arguments) in enumerate(turn.calls, 1)]
        self._emit(ev.MessageCompleted, content=output, thinking=agent.partial_thinking,
                   tool_calls=calls, **turn.metrics)
        if calls:
            if agent.tool_turns >= self.spec.max_turns:
                await self.port.record(
                    ev.AgentFailed, error=f"no final answer after {agent.tool_turns} turns in a "
                    f"row that called tools (max_turns is {self.spec.max_turns})")
                return True
            await self.port.commit()  # the calls are on disk before any of them runs
            return False
        value: Any = output
        if self.spec.verified:
            failures, parsed = verdict(self.spec, output)
            await self.port.record(ev.OutputChecked, passed=not failures, failures=failures,
                                   attempt=agent.check_failures + 1)
            if failures:
                if agent.check_failures <= self.spec.check_retries:
                    return False  # the fold added the correction turn
                await self.port.record(
                    ev.AgentFailed, error=f"its answer failed its checks after "
                    f"{self.spec.check_retries} correction turns: {'; '.join(failures)}")
                return True
            if parsed is not NO_JSON and self.spec.format is not None:
                value = parsed  # outputs.<name> holds the JSON, for {{outputs.name.key}}
        self._emit(ev.AgentFinished, output=output)
        await self.port.record(ev.StateSet, key=f"outputs.{self.name}", value=value,
                               by=self.name)
        if self._command is not None:  # a command raced with the last chunk: the agent won
            command, self._command = self._command, None
            await self._acknowledge(command, CommandError(f"{self.name} already finished"))
        return True

    # -- tool calls ----------------------------------------------------------------------------

    async def _run_calls(self) -> None:
        """Run the last turn's calls that have no result, in order. What the log says of each
        decides: a call logged as running but without a result was interrupted (a crash, or
        a pause that cut it off) and runs again only if its tool is repeatable; a call that
        waits for approval is not asked again."""
        for call in list(self.agent.calls):
            if self._command is not None:
                return
            tool = self.port.tools.get(call.tool)
            rerun = call.running and call.call_id not in self._unstarted
            if rerun and (tool is None or not tool.repeatable):
                await self._result(call, "the call was interrupted before it returned, and it "
                                   "was not retried: it may or may not have taken effect", True)
                continue
            if tool is None:
                known = ", ".join(self.port.tools) or "none"
                await self._result(call, f"there is no tool named {call.tool!r}; "
                                   f"your tools: {known}", True)
                continue
            if call.approval is None and not rerun and self._gated(call.tool):
                await self.port.request_approval(call)
            if call.approval == "pending":
                await self._await_decision(call)
            if call.approval == "denied":
                reason = call.reason or "no reason given"
                await self._result(call, f"the call was denied and did not run: {reason}", True)
                continue
            self._unstarted.discard(call.call_id)
            self._emit(ev.ToolCalled, call_id=call.call_id, tool=call.tool,
                       arguments=call.arguments, turn=call.turn, rerun=rerun)
            try:
                await self.port.commit()  # on disk before it runs: it may have run
            except asyncio.CancelledError:
                self._unstarted.add(call.call_id)  # it did not: run it when the agent goes on
                raise
            clock = asyncio.get_running_loop().time
            began = clock()
            self._tool_running = True
            try:
                outcome = await tool.call(call.arguments)
            except asyncio.CancelledError:
                if not tool.repeatable:  # cut off: the model is told, nothing runs twice
                    why = self._command.kind if self._command is not None else "shutdown"
                    self._emit(ev.ToolResult, call_id=call.call_id, tool=call.tool,
                               content=f"the call was cut off by a {why} and was not retried: "
                               "it may or may not have taken effect", error=True,
                               duration_ms=round((clock() - began) * 1000, 1))
                raise
            finally:
                self._tool_running = False
            await self._result(call, outcome.content, outcome.error,
                               duration_ms=(clock() - began) * 1000)
            if self._command is not None:
                return  # a gentle pause waited for this call; the loop applies it now

    def _gated(self, tool: str) -> bool:
        return any(fnmatch.fnmatchcase(tool, pattern) for pattern in self.spec.approve)

    async def _await_decision(self, call: Call) -> None:
        """Wait for the decision; past `approval_timeout` (counted from the request, which
        the log dates, so a resume does not restart the clock) deny the call."""
        await self.port.apply_policy(call.call_id)
        timeout = self.spec.approval_timeout
        if call.approval != "pending":
            return
        if timeout is None:
            await self.port.decided(call.call_id)
            return
        # Counted from the request, or from this run's start if the call was asked before a
        # crash: time with nobody able to answer does not count.
        since = max(self.port.requested_at(call.call_id) or self._began, self._began)
        left = timeout - (self.port.now() - since)
        try:
            await asyncio.wait_for(self.port.decided(call.call_id), max(left, 0.0))
        except TimeoutError:
            with contextlib.suppress(CommandError):  # decided meanwhile: that decision holds
                await self.port.decide(call.call_id, "denied", by="timeout", reason=(
                    f"no decision within {duration(timeout)} (approval_timeout)"))

    async def _result(self, call: Call, content: str, error: bool,
                      duration_ms: float = 0.0) -> None:
        await self.port.record(ev.ToolResult, call_id=call.call_id, tool=call.tool,
                               content=content, error=error, duration_ms=round(duration_ms, 1))

    # -- one request ---------------------------------------------------------------------------

    async def _attempt(self, delay: float) -> _Turn:
        """Send the conversation (continuing any partial reply) and stream it into events.

        Returns Ollama's final metrics and the turn's tool calls. Raises on any failure;
        cancelled by commands.
        """
        if delay:
            await asyncio.sleep(delay)
        host, why = await self.pool.choose(self.model, self.hosts)
        if host != self.host:
            self.host = host
            self._emit(ev.HostSelected, host=host, reason=why)
        with self.pool.request(host):
            return await self._stream(self.pool.client(host))

    async def _stream(self, client: ollama.AsyncClient) -> _Turn:
        watchdog = StallWatchdog(self.stall_timeout)
        calls: list[tuple[str, dict[str, Any]]] = []
        finished: _Turn | None = None
        text = Coalescer(self.port)
        clock = asyncio.get_running_loop().time
        next_yield = clock() + YIELD_EVERY
        stream = await client.chat(
            self.model,
            messages=self.agent.conversation(),
            options=self.spec.options or None,
            tools=self._schemas or None,
            format=self.spec.format,
            stream=True,
        )
        try:
            async for part in stream:
                if not self._received:
                    self._received = True
                    await self._host_answered()
                now = watchdog.chunk()
                if now >= next_yield:
                    await asyncio.sleep(0)
                    next_yield = clock() + YIELD_EVERY
                message = part.message
                if message.thinking:
                    text.add(ev.ThinkingStreamed, message.thinking)
                if message.content:
                    text.add(ev.TokenStreamed, message.content)
                if message.tool_calls:  # each chunk lists only new calls (REFERENCE-2 F.2)
                    calls += [(c.function.name, dict(c.function.arguments or {}))
                              for c in message.tool_calls]
                if part.done:
                    text.flush()
                    finished = _Turn(calls, {
                        "done_reason": part.done_reason,
                        "prompt_eval_count": part.prompt_eval_count,
                        "eval_count": part.eval_count,
                        "total_duration": part.total_duration,
                        "load_duration": part.load_duration,
                        "prompt_eval_duration": part.prompt_eval_duration,
                        "eval_duration": part.eval_duration,
                    })
                    return finished
        except asyncio.CancelledError:
            if watchdog.fired:
                raise StallError(watchdog.fired) from None
            raise
        finally:
            text.flush()  # whatever arrived before a cut-off is part of the reply
            watchdog.disarm()
            aclose = getattr(stream, "aclose", None)  # an async generator (REFERENCE.md B.2)
            if aclose is not None:
                try:
                    with contextlib.suppress(Exception):
                        await aclose()  # closes the response: Ollama stops generating
                except asyncio.CancelledError:
                    if finished is None:
                        raise
                    # The turn was whole before the command came: keep it (its tool calls
                    # are in no partial), and let the loop apply the command after it.
                    if (task := asyncio.current_task()) is not None:
                        task.uncancel()
        raise StreamEnded("the stream ended before Ollama said it was done")


@dataclass
class _Turn:
    """One streamed turn: the tool calls the model made, and Ollama's final metrics."""

    calls: list[tuple[str, dict[str, Any]]]
    metrics: dict[str, Any]


def _being_cancelled() -> bool:
    """True if the current task itself is being cancelled (shutdown), not just its request."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0

