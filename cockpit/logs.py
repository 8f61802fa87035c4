"""`cockpit logs SESSION [-f] [--agent A]`: a session's transcript, from any shell, any time.

The log is the truth and a running session's writer commits within a frame, so reading the
log is watching the session: nothing is asked of the process that runs it, and a reader that
dies or reads slowly costs the crew nothing. `-f` tails the log (`LogTail`) until the session
has ended and its process is gone (a TUI can restart an ended session while it is open), or
until its process is gone without ending it (a crash: `cockpit resume` continues it).

The lines are `core.transcript`'s: whole lines prefixed `agent | ` (or, `--by message`, each
reply as one block), in colour only on a terminal (never in a pipe, nor with NO_COLOR set).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from cockpit.arguments import SESSION_HELP, add_command
from cockpit.core import events as ev
from cockpit.core.eventlog import EventLog, LogError, default_db_path
from cockpit.core.logreader import LogReader
from cockpit.core.logschema import Row
from cockpit.core.process import owner_alive
from cockpit.core.state import SessionState
from cockpit.core.tail import PAGE, LogTail
from cockpit.core.text import one_line, sanitize
from cockpit.core.transcript import By, Transcript, agent_names

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130

EXAMPLE = """\
examples:
  cockpit logs last                      the last session's transcript
  cockpit logs 20261121-0601 -f          follow a running session until it ends
  cockpit logs last --agent writer | less
  cockpit logs last --by message         each reply whole, as one block
"""


class UnknownAgent(Exception):
    """`--agent` names an agent the session does not have; the message names the ones it has."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser],
               add_db: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    """Register `logs` on the command line's subparsers; `add_db` adds its `--db`."""
    logs = add_command(
        commands, "logs", help="a session's transcript: whole lines, each prefixed `agent | `",
        description="Print a session's transcript from its log, as `docker compose logs` does: "
                    "each agent's reply as whole lines prefixed by its name, and what happened "
                    "to it (pauses, redirects, tool calls, approvals, retries, failures, ends) "
                    "on marked lines (`writer | ── paused by person`).",
        example=EXAMPLE)
    logs.add_argument("session", metavar="SESSION", help=SESSION_HELP)
    logs.add_argument("-f", "--follow", action="store_true",
                      help="keep printing events as they are logged, until the session has "
                           "ended and its process is gone")
    logs.add_argument("--agent", action="append", dest="agents", metavar="A",
                      help="only this agent's lines (repeat for more agents)")
    add_by(logs)
    add_db(logs)
    return logs


def add_by(parser: argparse.ArgumentParser) -> None:
    """`--by line|message`, shared with `cockpit replay --headless`."""
    parser.add_argument("--by", choices=("line", "message"), default="line",
                        help="line: whole lines, each prefixed `agent | `; message: each reply "
                             "whole, as one block under a header naming the agent "
                             "(default: line)")


def cmd_logs(args: argparse.Namespace) -> int:
    """Run `cockpit logs`: 0 once printed (or followed to the end), 2 for a bad session,
    agent or log, 130 for Ctrl-C."""
    db = Path(args.db).expanduser() if args.db else default_db_path()
    out = sys.stdout
    try:
        code = asyncio.run(write_logs(db, args.session, out, sys.stderr, agents=args.agents,
                                      follow=args.follow, colour=wants_colour(out),
                                      by=args.by))
        out.flush()  # here, where a closed pipe is caught, rather than at exit
        return code
    except (LogError, UnknownAgent) as error:
        print(sanitize(f"cockpit: {error}"), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `cockpit logs last | head`
        _silence_stdout()
        return EXIT_OK


def wants_colour(out: TextIO) -> bool:
    """Colour on a terminal only, and never with NO_COLOR in the environment."""
    try:
        return out.isatty() and "NO_COLOR" not in os.environ
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def _silence_stdout() -> None:
    """The reader went away: what is still buffered for stdout goes nowhere, quietly (not as
    a second BrokenPipeError when Python flushes it at exit)."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


async def write_logs(db: Path, ref: str, out: TextIO, err: TextIO, *,
                     agents: list[str] | None = None, follow: bool = False,
                     colour: bool = False, by: By = "line") -> int:
    """Print session `ref`'s transcript on `out` (and, following, a crash note on `err`)."""
    async with EventLog.open(db, readonly=True) as log:
        session = await log.resolve(ref)
        names = await agent_names(log, session)
        unknown = [name for name in agents or () if name not in names]
        if unknown:
            raise UnknownAgent(
                f"session {session} has no agent {', '.join(map(repr, unknown))} "
                f"(its agents: {', '.join(one_line(n, 40) for n in names) or 'none'})")
        printer = _Printer(Transcript(names, only=agents, colour=colour, by=by), out, follow)
        if follow:
            row = next(r for r in await log.sessions() if r.id == session)
            printer.owner = (row.pid, row.hostname, row.proc_start)
        try:
            after = await printer.catch_up(log, session)
            if not follow:
                return EXIT_OK
            await printer.follow(LogTail(log, session, after))
        finally:
            printer.write(printer.transcript.close())
        if printer.state.outcome is None:
            out.flush()
            pid = printer.owner[0]
            gone = f"its process {pid} is gone" if pid else "no process owns it"
            print(f"cockpit: session {session} is not running ({gone}) and did not end; "
                  f"`cockpit resume {session}` continues it", file=err, flush=True)
        return EXIT_OK


class _Printer:
    """Feeds events to the transcript and writes its lines; following, it also folds them
    (for the outcome) and tracks which process owns the session."""

    def __init__(self, transcript: Transcript, out: TextIO, follow: bool) -> None:
        self.transcript = transcript
        self.out = out
        self.following = follow
        self.state = SessionState()
        self.owner: tuple[int | None, str | None, float | None] = (None, None, None)

    def write(self, lines: list[str]) -> None:
        if lines:
            self.out.write("\n".join(lines) + "\n")
        if self.following:
            self.out.flush()

    def take(self, event: ev.BaseEvent) -> list[str]:
        """The lines of one event that is not a token; following, it is folded too (tokens
        and thinking never change the outcome, so the fold can do without them)."""
        if self.following:
            self.state.apply(event)
            if isinstance(event, ev.SessionStarted | ev.SessionResumed):
                self.owner = (event.pid, event.hostname, event.proc_start)
        return self.transcript.feed(event)

    def publish(self, events: list[ev.BaseEvent]) -> None:
        lines: list[str] = []
        text = self.transcript.text
        for event in events:
            if isinstance(event, ev.TokenStreamed):
                lines += text(event.agent, event.text) if event.agent is not None else []
            else:
                lines += self.take(event)
        self.write(lines)

    def publish_rows(self, rows: list[Row]) -> None:
        """`publish` for raw rows (`Transcript.rows`: tokens are not built as events)."""
        self.write(self.transcript.rows(rows, self.take))

    async def catch_up(self, log: LogReader, session: str) -> int:
        """Print what is logged now, a page at a time; the id of the last row printed."""
        after = 0
        while True:
            rows = await log.rows(session, after, PAGE)
            self.publish_rows(rows)
            if rows:
                after = rows[-1][0]
            if len(rows) < PAGE:
                return after

    def gone(self) -> bool:
        """The owner process is gone (or is on another machine, and the session ended)."""
        pid, host, start = self.owner
        if self.state.outcome is not None and host and host != socket.gethostname():
            return True  # not checkable from here: following it would never end
        return not owner_alive(pid, host, start)

    async def follow(self, tail: LogTail) -> None:
        """Print events as they are committed until the owner is gone. What it committed
        before it went is read after it is seen gone, so nothing of its last batch is missed;
        a resume that took over meanwhile (a new owner) is followed in turn."""
        while True:
            await tail.follow(self.publish, until=self.gone)
            owner = self.owner
            self.publish(await tail.poll())
            if self.owner == owner or self.gone():
                return

