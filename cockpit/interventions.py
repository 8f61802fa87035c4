"""Commands from a shell: `cockpit pause|resume|stop|restart|redirect|set|approve|deny`.

Each sends one request to the session's owner over its socket (core/control.py) and returns
once the owner has committed the event, as a key in the cockpit does. Exit 0 when it was
applied; 2 with the reason when it does not apply ("writer is finished"), when the session is
not running, or when the caller may not command it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cockpit.core.commands import CommandError
from cockpit.core.control import ControlClient, ControlError, NotRunning, RemoteCommands
from cockpit.core.eventlog import EventLog, LogError, default_db_path
from cockpit.core.text import one_line, sanitize

EXIT_OK, EXIT_USAGE = 0, 2
EXAMPLE = "example: cockpit {0} last writer"


def add_parsers(commands: Any, add_db: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register the intervention subcommands (`resume` is cli's: it also continues an ended
    session)."""
    for verb, what in (("pause", "pause a running agent (its stream is closed; the partial "
                                 "reply is kept)"),
                       ("stop", "stop an agent for good (until restarted); no confirmation"),
                       ("restart", "start a failed or stopped agent again from its opening")):
        parser = commands.add_parser(verb, help=what, description=what.capitalize() + ".",
                                     epilog=EXAMPLE.format(verb))
        _session_agent(parser)
        add_db(parser)

    redirect = commands.add_parser(
        "redirect", help="cut an agent's reply off and give it a new instruction",
        description="Cut the agent's reply off, keep it, and go on from INSTRUCTION.",
        epilog='example: cockpit redirect last writer "Answer in French"')
    _session_agent(redirect)
    redirect.add_argument("instruction", metavar="INSTRUCTION")
    add_db(redirect)

    board = commands.add_parser(
        "set", help="write the shared board of a running session, as a person",
        description="Write KEY on the board (logged as state_set by person). Agents that "
                    "start later read the new value.",
        epilog='example: cockpit set last topic "the 2.1 release"')
    board.add_argument("session", metavar="SESSION", help="a session id (or prefix), or 'last'")
    board.add_argument("key", metavar="KEY")
    board.add_argument("value", metavar="VALUE")
    board.add_argument("--json", action="store_true",
                       help="VALUE is JSON (a number, a list, an object); default: a string")
    add_db(board)

    approve = commands.add_parser(
        "approve", help="approve a tool call that waits, or every one (--all)",
        description="Approve tool calls waiting for a decision in a running session. "
                    "Without CALL or --all, list them.",
        epilog="example: cockpit approve last researcher.3.1")
    approve.add_argument("session", metavar="SESSION", help="a session id (or prefix), or 'last'")
    approve.add_argument("call", nargs="?", metavar="CALL", help="the call's id (agent.turn.n)")
    approve.add_argument("--all", action="store_true", help="every call that waits")
    add_db(approve)

    deny = commands.add_parser(
        "deny", help="deny a tool call that waits; the model reads the reason",
        description="Refuse a waiting tool call. The reason is the call's result.",
        epilog='example: cockpit deny last researcher.3.1 --reason "two findings are enough"')
    deny.add_argument("session", metavar="SESSION", help="a session id (or prefix), or 'last'")
    deny.add_argument("call", metavar="CALL")
    deny.add_argument("--reason", required=True, help="what the model is told")
    add_db(deny)


def _session_agent(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session", metavar="SESSION", help="a session id (or prefix), or 'last'")
    parser.add_argument("agent", metavar="AGENT")


def _db(args: argparse.Namespace) -> Path:
    return Path(args.db).expanduser() if args.db else default_db_path()


def command(args: argparse.Namespace,
            send: Callable[[RemoteCommands], Awaitable[Any]],
            said: Callable[[Any], str]) -> int:
    """Send one command to session `args.session`; say what was done, or why not."""
    db = _db(args)

    async def go() -> tuple[str, Any]:
        async with EventLog.open(db, readonly=True) as log:
            session = await log.resolve(args.session)
        client = await ControlClient.connect(db, session)
        try:
            return session, await send(RemoteCommands(client))
        finally:
            await client.aclose()

    try:
        session, result = asyncio.run(go())
    except (CommandError, ControlError, LogError) as error:
        hint = ""
        if isinstance(error, NotRunning):
            hint = "; `cockpit status` says how it ended, `cockpit resume` continues it"
        print(f"cockpit: {sanitize(str(error))}{hint}", file=sys.stderr)
        return EXIT_USAGE
    print(f"cockpit: {sanitize(said(result))} (session {session})", file=sys.stderr)
    return EXIT_OK


def cmd_pause(args: argparse.Namespace) -> int:
    return command(args, lambda c: c.pause(args.agent), lambda _: f"paused {args.agent}")


def cmd_resume_agent(args: argparse.Namespace) -> int:
    return command(args, lambda c: c.resume(args.agent), lambda _: f"resumed {args.agent}")


def cmd_stop(args: argparse.Namespace) -> int:
    return command(args, lambda c: c.stop(args.agent), lambda _: f"stopped {args.agent}")


def cmd_restart(args: argparse.Namespace) -> int:
    return command(args, lambda c: c.restart(args.agent), lambda _: f"restarted {args.agent}")


def cmd_redirect(args: argparse.Namespace) -> int:
    return command(args, lambda c: c.redirect(args.agent, args.instruction),
                   lambda _: f"redirected {args.agent}")


def cmd_set(args: argparse.Namespace) -> int:
    value: Any = args.value
    if args.json:
        try:
            value = json.loads(args.value)
        except json.JSONDecodeError as error:
            print(f"cockpit: VALUE is not valid JSON: {error}", file=sys.stderr)
            return EXIT_USAGE
    return command(args, lambda c: c.set_state(args.key, value),
                   lambda _: f"set {one_line(args.key, 80)}")


def cmd_approve(args: argparse.Namespace) -> int:
    if args.all and args.call:
        print("cockpit: give a CALL or --all, not both", file=sys.stderr)
        return EXIT_USAGE
    if args.all:
        return command(args, lambda c: c.approve_all(),
                       lambda ids: f"approved {', '.join(ids)}" if ids
                       else "no calls were waiting")
    if args.call:
        return command(args, lambda c: c.decide(args.call, "approved"),
                       lambda _: f"approved {args.call}")
    return _list_waiting(args)


def cmd_deny(args: argparse.Namespace) -> int:
    return command(args, lambda c: c.decide(args.call, "denied", reason=args.reason),
                   lambda _: f"denied {args.call}")


def _list_waiting(args: argparse.Namespace) -> int:
    """`cockpit approve SESSION`: what waits, read from the log; exit 2 (nothing decided)."""
    from cockpit.core.describe import call_line
    from cockpit.core.tail import fold_log

    async def load() -> tuple[str, list[str]]:
        async with EventLog.open(_db(args), readonly=True) as log:
            session = await log.resolve(args.session)
            state, _ = await fold_log(log, session)
        return session, [f"  {p.call_id}  {call_line(p.tool, p.arguments, 100)}"
                         for p in state.approvals.values()]

    try:
        session, lines = asyncio.run(load())
    except LogError as error:
        print(f"cockpit: {error}", file=sys.stderr)
        return EXIT_USAGE
    if not lines:
        print(f"cockpit: no calls wait for approval in session {session}", file=sys.stderr)
    else:
        print(f"calls waiting in session {session} (cockpit approve {session} CALL, or --all):")
        print(sanitize("\n".join(lines)))
    return EXIT_USAGE
