"""Starting a session's owner process, and what runs in it (`cockpit _owner`, hidden).

`cockpit run` (the TUI), `run --detach` and `resume` start the owner with `start_owner` and
wait for one line on a pipe: the session id once `session_started` (or `session_resumed`) is
committed, or the error that stopped it (an MCP server that did not start, a log that cannot be
opened). The owner has its own session (`setsid`) and no terminal: its stdin is /dev/null and
its output goes to `DB.owner.log`, so nothing it or its children print can reach a viewer's
screen, and a hang-up cannot reach it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cockpit.core.config import EMBEDDED_HOST, load_crew
from cockpit.core.eventlog import EventLog, LogError
from cockpit.core.logfile import mcp_log_path
from cockpit.core.tools.base import ToolsUnavailable

if TYPE_CHECKING:
    from cockpit.core.acting import Policy
    from cockpit.core.config import CrewConfig
    from cockpit.core.state import SessionState


WATCH_AFTER = 0.05
"""Seconds between looks at whether the session has started, before the crew watch begins."""


class OwnerError(Exception):
    """The owner process could not start the session; the message says why."""


def owner_log_path(db: Path) -> Path:
    """Where owner processes write what they print (tracebacks of a crash included)."""
    return db.with_name(db.name + ".owner.log")


def start_owner(db: Path, *, crew_path: Path | None = None, resume: str | None = None,
                only: list[str] | None = None, approve: Policy = "ask",
                watch: bool = False, viewer: bool = False,
                pace: float | None = None) -> tuple[str, int]:
    """Start an owner for a new session of `crew_path`, or to continue session `resume`;
    return (session id, pid) once it runs. `viewer`: a viewer is about to attach, and the
    owner waits for it even if the crew ends first. `pace`: the embedded engine's tokens a
    second per reply (the demo). OwnerError if it could not start."""
    read_end, write_end = os.pipe()
    argv = [sys.executable, "-m", "cockpit", "_owner", "--db", str(db),
            "--ready-fd", str(write_end), "--approve", approve]
    if crew_path is not None:
        argv += ["--crew", str(crew_path)]
    if resume is not None:
        argv += ["--resume", resume]
    for name in only or ():
        argv += ["--only", name]
    if watch:
        argv.append("--watch")
    if viewer:
        argv.append("--expect-viewer")
    if pace:
        argv += ["--engine-pace", str(pace)]
    log_path = owner_log_path(db)
    with open(log_path, "ab") as output:
        try:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                pass_fds=(write_end,), start_new_session=True, close_fds=True)
        finally:
            os.close(write_end)
    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        with os.fdopen(read_end, "rb") as ready:
            line = ready.readline()
    except KeyboardInterrupt:
        process.terminate()  # Ctrl-C or SIGTERM while it starts: it must not run on unseen
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not line:
        code = process.wait()
        raise OwnerError(f"the session's owner process exited (code {code}) before the "
                         f"session started; see {log_path}")
    answer = json.loads(line)
    if "error" in answer:
        process.wait()
        raise OwnerError(str(answer["error"]))
    process.returncode = 0  # it lives on after us: no "still running" warning at exit
    return str(answer["session"]), process.pid


def raise_interrupt(signum: int, frame: object) -> None:
    """A signal handler that makes SIGTERM a KeyboardInterrupt, as Ctrl-C is."""
    raise KeyboardInterrupt


def owner_main(args: argparse.Namespace) -> int:
    """`cockpit _owner`: run one session until it has ended and nobody is attached."""
    from cockpit.cli import run_async, start_engine

    ready = os.fdopen(args.ready_fd, "w", encoding="utf-8")

    def say(**answer: Any) -> None:
        if not ready.closed:
            ready.write(json.dumps(answer) + "\n")
            ready.close()

    db = Path(args.db)
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} cockpit owner {os.getpid()} starting "
          f"({'resume ' + args.resume if args.resume else args.crew})", flush=True)
    try:
        crew, crew_path, state = _load(args, db)
        with contextlib.ExitStack() as stack:
            hosts: dict[str, str] = {}
            if EMBEDDED_HOST in crew.all_hosts():
                hosts[EMBEDDED_HOST] = stack.enter_context(
                    start_engine(2, pace=args.engine_pace)).url
            return run_async(_own(crew, crew_path, db, hosts, state, args, say))
    except Exception as error:  # every failure before the session runs is told to the caller
        say(error=str(error))
        raise
    finally:
        say(error="the owner ended before the session started")
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} cockpit owner {os.getpid()} ends",
              flush=True)


def _load(args: argparse.Namespace, db: Path) -> tuple[CrewConfig, Path, SessionState | None]:
    if args.resume is None:
        crew_path = Path(args.crew).resolve()
        return load_crew(crew_path), crew_path, None
    from cockpit.core.resume import load_resumable

    async def load() -> tuple[CrewConfig, Path, SessionState]:
        async with EventLog.open(db, create=False) as log:
            found = await load_resumable(log, args.resume, args.only)
        return found.crew, Path(found.crew_path or "crew.toml"), found.state

    return asyncio.run(load())


async def _own(crew: CrewConfig, crew_path: Path, db: Path, hosts: dict[str, str],
               resume: SessionState | None, args: argparse.Namespace, say: Any) -> int:
    from cockpit.core.bus import EventBus
    from cockpit.core.owner import own, serve_commands
    from cockpit.core.supervisor import Supervisor

    async with EventLog.open(db) as log:
        supervisor = Supervisor(crew, log, EventBus(), crew_path=crew_path, hosts=hosts,
                                session=resume.session if resume else None,
                                approve=args.approve, mcp_log=mcp_log_path(db))
        async with serve_commands(supervisor, db, hosts) as server:
            try:
                if resume is not None:
                    await supervisor.resume_session(resume, args.only)
                else:
                    await supervisor.start()
            except (ToolsUnavailable, LogError) as error:
                say(error=str(error))
                await asyncio.shield(supervisor.shutdown())
                return 2
            if args.expect_viewer:
                server.reserve_viewer()
            say(session=supervisor.session)
            watching = watch_crew_file(crew_path, supervisor) if args.watch else None
            gc.freeze()  # start-up's objects live for the whole run: out of the collector's way
            try:
                outcome = await own(supervisor, server)
            except asyncio.CancelledError:  # SIGTERM: interrupted, flushed, resumable
                await asyncio.shield(supervisor.shutdown())
                raise
            except LogError:
                with contextlib.suppress(LogError):
                    await asyncio.shield(supervisor.shutdown())
                raise
            finally:
                if watching is not None:
                    watching.cancel()
                    await asyncio.gather(watching, return_exceptions=True)
                await supervisor.aclose()
    return {"finished": 0, "interrupted": 130}.get(outcome, 1)


def watch_crew_file(crew_path: Path, supervisor: Any) -> asyncio.Task[None]:
    """The crew file's hot reload (`--watch`), for as long as the session runs here. It
    starts once the session has (a headless run starts its tool servers first), and a
    failure is said in the owner's output rather than ending the watch unseen."""
    from cockpit.core.reload import watch_crew

    async def watch() -> None:
        while supervisor.state.started_at is None or supervisor.state.session is None:
            await asyncio.sleep(WATCH_AFTER)
        try:
            await watch_crew(crew_path, supervisor)
        except Exception as error:  # not ConfigError: those are crew_rejected events
            print(f"cockpit: the crew file is no longer watched: {error!r}", file=sys.stderr,
                  flush=True)
            raise

    return asyncio.create_task(watch(), name="cockpit crew watch")


def add_parser(commands: Any) -> None:
    owner = commands.add_parser("_owner")  # no help: not for people
    owner.add_argument("--db", required=True)
    owner.add_argument("--ready-fd", type=int, required=True)
    owner.add_argument("--crew")
    owner.add_argument("--resume")
    owner.add_argument("--only", action="append")
    owner.add_argument("--approve", choices=("ask", "all", "none"), default="ask")
    owner.add_argument("--watch", action="store_true")
    owner.add_argument("--expect-viewer", action="store_true")
    owner.add_argument("--engine-pace", type=float)
