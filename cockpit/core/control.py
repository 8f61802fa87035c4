"""The session's command channel: a Unix socket that the owner process listens on.

Viewers read the log (tail.py); they write nothing to it. Everything that changes a running
session (pause, redirect, a board write, an approval...) is a request on this socket, answered
only once its event is committed. So a command that was accepted has been applied and is on
disk: it cannot be lost between the two, across a crash either. If the owner dies first, the
caller sees the connection drop and says that the command was not confirmed.

Only the user who owns a session may command it, checked twice: the socket lives in a directory
only that user can enter (0700, checked, never trusted as found), and the owner checks each
caller's uid (`SO_PEERCRED`), which also holds against root, whom file modes do not stop.

Where the socket lives, and a shell's single request, are in channel.py (no asyncio there).

One JSON object per line each way. A request is `{"id", "op", "args"}`; its answer is
`{"id", "ok": true, "result"}` or `{"id", "ok": false, "error", "kind"}`. A viewer says
`hello` with `viewer: true` and keeps its connection: the owner counts it, and the viewer
learns of the owner's death when the connection drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cockpit.core.channel import ControlError, socket_path, unreachable
from cockpit.core.commands import CommandError, Decision
from cockpit.core.logreader import LogError

if TYPE_CHECKING:
    from cockpit.core.supervisor import Supervisor

RESERVE_FOR = 30.0
"""Seconds the owner keeps a place for the viewer `cockpit run` starts."""
HELLO_WAIT = 15.0
"""Longest a viewer waits for the owner's hello (a stopped owner accepts and never answers)."""
SHUTDOWN_COMMIT = 10.0
"""Longest a `shutdown` waits for its commit before it answers."""
LINE_LIMIT = 16 * 1024 * 1024
"""Longest request or answer (a board value can be long; a runaway peer cannot grow it)."""


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket (Linux), else None."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:  # pragma: no cover - not Linux
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


# -- the owner's side ---------------------------------------------------------------------------


Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class ControlServer:
    """Answers requests for one supervisor's session. `hello` is answered with `info`."""

    def __init__(self, supervisor: Supervisor, path: Path, info: dict[str, Any]) -> None:
        self.supervisor = supervisor
        self.path = path
        self.info = info
        self.shut_down = asyncio.Event()
        """Set once a `shutdown` (a viewer's "stop the crew") has been done and answered."""
        self.viewers = 0
        self.viewers_changed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._requests: set[asyncio.Task[None]] = set()
        self._reserved = False
        self._lock: int | None = None
        self._ops: dict[str, Handler] = {
            "pause": lambda a: supervisor.pause(a["agent"], _by(a)),
            "resume": lambda a: supervisor.resume(a["agent"], _by(a)),
            "stop": lambda a: supervisor.stop(a["agent"], _by(a)),
            "restart": lambda a: supervisor.restart(a["agent"], _by(a)),
            "redirect": lambda a: supervisor.redirect(a["agent"], str(a["instruction"]),
                                                      _by(a)),
            "pause_all": lambda a: supervisor.pause_all(_by(a)),
            "resume_all": lambda a: supervisor.resume_all(_by(a)),
            "set": lambda a: supervisor.set_state(str(a["key"]), a.get("value"), _by(a)),
            "decide": lambda a: supervisor.decide(
                str(a["call_id"]), a["decision"], reason=str(a.get("reason", "")),
                arguments=a.get("arguments"), by=_by(a)),
            "approve_all": lambda a: supervisor.approve_all(_by(a), a.get("ids")),
            "shutdown": self._shutdown,
        }

    async def start(self) -> None:
        """Listen, or refuse if another owner runs the session: it holds the lock on
        `SESSION.lock` beside the socket for as long as it serves, so two owners started at
        once cannot both run it. A socket left by a dead owner is replaced."""
        self._lock = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock)
            self._lock = None
            raise ControlError(f"another process already runs session "
                               f"{self.supervisor.session}") from None
        self.path.unlink(missing_ok=True)  # a dead owner's (a live one holds the lock)
        old = os.umask(0o177)  # the socket is created 0600, never briefly wider
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path),
                                                           limit=LINE_LIMIT)
        finally:
            os.umask(old)

    async def aclose(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(OSError):
                if self.path.exists():
                    self.path.unlink()
        if self._lock is not None:
            os.close(self._lock)  # the lock goes with it (the file stays: unlinking races)
            self._lock = None
        if self._requests:  # answers under way (the shutdown's own) get out first
            await asyncio.wait(set(self._requests), timeout=2.0)
        for task in [*self._connections, *self._requests]:
            task.cancel()
        await asyncio.gather(*self._connections, *self._requests, return_exceptions=True)

    async def until_no_viewers(self) -> None:
        while self.viewers:
            self.viewers_changed.clear()
            await self.viewers_changed.wait()

    def reserve_viewer(self, timeout: float = RESERVE_FOR) -> None:
        """Count a viewer that is on its way (the TUI `cockpit run` started): a crew that
        ends before it attaches must still wait for it, so it can restart a failed agent.
        Its first `hello` takes the place; if it never comes, the place goes after
        `timeout` seconds."""
        self._reserved = True
        self._count(+1)
        asyncio.get_running_loop().call_later(timeout, self._release)

    def _release(self) -> None:
        if self._reserved:
            self._reserved = False
            self._count(-1)

    async def _shutdown(self, args: dict[str, Any]) -> None:
        """Cut every agent off and log the session interrupted. The answer waits for the
        commit, but no longer than SHUTDOWN_COMMIT: a locked log must not hold the viewer,
        and the log's close goes on trying within its own grace."""
        try:
            await self.supervisor.shutdown()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.supervisor.commit()),
                                       SHUTDOWN_COMMIT)
        finally:
            self.shut_down.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        viewer = False
        lock = asyncio.Lock()
        try:
            sock = writer.get_extra_info("socket")
            uid = peer_uid(sock) if sock is not None else None
            if uid is not None and uid != os.getuid():
                await _send(writer, lock, {"id": 0, "ok": False, "kind": "denied",
                                           "error": f"permission denied: session "
                                                    f"{self.supervisor.session} belongs to "
                                                    f"uid {os.getuid()}, not {uid}"})
                return
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                    op, args, rid = request["op"], request.get("args") or {}, request["id"]
                    if not isinstance(op, str) or not isinstance(args, dict):
                        raise TypeError
                except (ValueError, KeyError, TypeError, AttributeError):
                    await _send(writer, lock, {"id": None, "ok": False, "kind": "usage",
                                               "error": "not a request"})
                    continue
                if op == "hello":
                    if args.get("viewer") and not viewer:
                        viewer = True
                        if self._reserved:
                            self._reserved = False  # the viewer that was on its way
                        else:
                            self._count(+1)
                    await _send(writer, lock, {"id": rid, "ok": True, "result": self.info})
                    continue
                # Not the connection's task: a caller that hangs up must not cut a command off
                # halfway (a shutdown whose agents are gone but whose end is not logged).
                job = asyncio.create_task(self._answer(writer, lock, rid, op, args))
                self._requests.add(job)
                job.add_done_callback(self._requests.discard)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # a viewer that went away (killed, or a line over the limit)
        except asyncio.CancelledError:
            # The server is closing. Ended quietly: asyncio's stream callback asks a
            # connection task for its exception, and a cancelled one logs a traceback.
            pass
        finally:
            if viewer:
                self._count(-1)
            writer.close()
            self._connections.discard(task)

    def _count(self, step: int) -> None:
        self.viewers += step
        self.viewers_changed.set()

    async def _answer(self, writer: asyncio.StreamWriter, lock: asyncio.Lock, rid: Any,
                      op: str, args: dict[str, Any]) -> None:
        handler = self._ops.get(op)
        if handler is None:
            reply = {"id": rid, "ok": False, "kind": "usage", "error": f"unknown request {op!r}"}
        else:
            try:
                result = await handler(args)
                reply = {"id": rid, "ok": True, "result": result}
            except CommandError as error:
                reply = {"id": rid, "ok": False, "kind": "command", "error": str(error)}
            except LogError as error:
                reply = {"id": rid, "ok": False, "kind": "log", "error": str(error)}
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                reply = {"id": rid, "ok": False, "kind": "usage",
                         "error": f"bad {op} request: {error!r}"}
        with contextlib.suppress(ConnectionError, RuntimeError):
            await _send(writer, lock, reply)  # the caller may have gone: the work is done


def _by(args: dict[str, Any]) -> str:
    return str(args.get("by") or "person")


async def _send(writer: asyncio.StreamWriter, lock: asyncio.Lock, message: dict[str, Any]) -> None:
    async with lock:
        writer.write(json.dumps(message, ensure_ascii=False).encode() + b"\n")
        await writer.drain()



# -- a viewer's or a shell's side --------------------------------------------------------------


class ControlClient:
    """One connection to a session's owner; requests may overlap (answers carry their id)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 session: str) -> None:
        self.session = session
        self.info: dict[str, Any] = {}
        """What the owner said to `hello`: its pid, the hosts' addresses, the log."""
        self._reader, self._writer = reader, writer
        self._next = 0
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._lock = asyncio.Lock()
        self._refused: str | None = None
        self.closed = asyncio.Event()
        """Set when the owner hung up (it ended, or died)."""
        self._reading = asyncio.create_task(self._read(), name=f"cockpit control {session}")

    @classmethod
    async def connect(cls, db: Path, session: str, *, viewer: bool = False) -> ControlClient:
        """Connect and say hello; NotRunning if no owner answers for the session."""
        path = socket_path(db, session)
        try:
            reader, writer = await asyncio.open_unix_connection(str(path), limit=LINE_LIMIT)
        except OSError as error:
            raise unreachable(error, path, session) from None
        client = cls(reader, writer, session)
        try:
            client.info = await asyncio.wait_for(client.call("hello", viewer=viewer),
                                                 HELLO_WAIT)
        except TimeoutError:
            await client.aclose()
            raise ControlError(f"session {session}'s owner does not answer (stopped?)") from None
        except BaseException:
            await client.aclose()
            raise
        return client

    async def call(self, op: str, **args: Any) -> Any:
        """Send one request and wait for its answer. CommandError when it does not apply,
        LogError when the owner's log failed, ControlError when the channel did."""
        if self.closed.is_set():
            raise ControlError(f"session {self.session}'s owner has gone")
        self._next += 1
        rid = self._next
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = future
        try:
            async with self._lock:
                self._writer.write(json.dumps({"id": rid, "op": op, "args": args},
                                              ensure_ascii=False).encode() + b"\n")
                await self._writer.drain()
        except (ConnectionError, RuntimeError):
            self._waiting.pop(rid, None)
            await asyncio.gather(self._reading, return_exceptions=True)  # a refusal it sent?
            raise ControlError(self._refused or f"session {self.session}'s owner has "
                               "gone") from None
        return await future

    async def _read(self) -> None:
        try:
            while line := await self._reader.readline():
                answer = json.loads(line)
                if answer.get("kind") == "denied":  # said at once, before any request
                    self._refused = str(answer.get("error"))
                    break
                future = self._waiting.pop(answer.get("id"), None)
                if future is None or future.done():
                    continue
                if answer.get("ok"):
                    future.set_result(answer.get("result"))
                else:
                    future.set_exception(_error(answer))
        except (ConnectionError, ValueError):
            pass
        finally:
            self.closed.set()
            why = self._refused or (f"session {self.session}'s owner hung up before "
                                    f"confirming; `cockpit status {self.session}` shows what "
                                    "was applied")
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(ControlError(why))
            self._waiting.clear()

    async def aclose(self) -> None:
        self._writer.close()
        self._reading.cancel()
        await asyncio.gather(self._reading, return_exceptions=True)


def _error(answer: dict[str, Any]) -> Exception:
    text = str(answer.get("error") or "refused")
    kind = answer.get("kind")
    if kind == "command":
        return CommandError(text)
    if kind == "log":
        return LogError(text)
    return ControlError(text)


class Caller(Protocol):
    async def call(self, op: str, **args: Any) -> Any: ...


class RemoteCommands:
    """`SessionCommands` for a session another process owns, sent through `client` (a
    `ControlClient`, or a viewer's source that connects one on its own loop)."""

    def __init__(self, client: Caller) -> None:
        self.client = client

    async def pause(self, name: str, by: str = "person") -> None:
        await self.client.call("pause", agent=name, by=by)

    async def resume(self, name: str, by: str = "person") -> None:
        await self.client.call("resume", agent=name, by=by)

    async def redirect(self, name: str, instruction: str, by: str = "person") -> None:
        await self.client.call("redirect", agent=name, instruction=instruction, by=by)

    async def stop(self, name: str, by: str = "person") -> None:
        await self.client.call("stop", agent=name, by=by)

    async def restart(self, name: str, by: str = "person") -> None:
        await self.client.call("restart", agent=name, by=by)

    async def pause_all(self, by: str = "person") -> list[str]:
        return list(await self.client.call("pause_all", by=by))

    async def resume_all(self, by: str = "person") -> list[str]:
        return list(await self.client.call("resume_all", by=by))

    async def decide(self, call_id: str, decision: Decision, *, reason: str = "",
                     arguments: dict[str, Any] | None = None, by: str = "person") -> None:
        await self.client.call("decide", call_id=call_id, decision=decision, reason=reason,
                               arguments=arguments, by=by)

    async def approve_all(self, by: str = "person", ids: list[str] | None = None) -> list[str]:
        return list(await self.client.call("approve_all", by=by, ids=ids))

    async def set_state(self, key: str, value: Any, by: str = "person") -> None:
        await self.client.call("set", key=key, value=value, by=by)
