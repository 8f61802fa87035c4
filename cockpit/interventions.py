"""Commands from a shell: `cockpit pause|resume|stop|restart|redirect|set|approve|deny`.

Each sends one request to the session's owner over its socket (core/channel.py) and returns
once the owner has committed the event, as a key in the cockpit does. Exit 0 when it was
applied; 2 with the reason when it does not apply ("writer is finished"), when the session is
not running, or when the caller may not command it.

`cockpit.entry` sends these verbs here without importing the rest of the CLI (pydantic, the
event types, aiosqlite): a command from a shell costs little more than Python's start-up.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cockpit.arguments import SESSION_HELP, add_command, add_db
from cockpit.core.channel import ControlError, NotRunning, Refused, request, resolve_session
from cockpit.core.logfile import default_db_path
from cockpit.core.text import one_line, sanitize

EXIT_OK, EXIT_USAGE = 0, 2
EXAMPLE = "example:\n  cockpit {0} last writer"


def add_parsers(commands: Any, add_db: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register the intervention subcommands (`resume` is cli's: it also continues an ended
    session)."""
    for verb, what in (("pause", "pause a running agent (its stream is closed; the partial "
                                 "reply is kept)"),
                       ("stop", "stop an agent for good (until restarted); no confirmation"),
                       ("restart", "start a failed, stopped or finished agent again from its "
                                   "opening")):
        parser = add_command(commands, verb, help=what, description=what.capitalize() + ".",
                             example=EXAMPLE.format(verb))
        _session_agent(parser)
        add_db(parser)

    redirect = add_command(
        commands, "redirect",
        help="cut an agent's reply off and give it a new instruction (a finished agent: ask "
             "it a follow-up)",
        description="Cut the agent's reply off, keep it, and go on from INSTRUCTION. A "
                    "finished agent is asked a follow-up instead: a new turn of the same "
                    "conversation, whose answer becomes outputs.AGENT.",
        example='example:\n  cockpit redirect last writer "Answer in French"')
    _session_agent(redirect)
    redirect.add_argument("instruction", metavar="INSTRUCTION")
    add_db(redirect)

    board = add_command(
        commands, "set", help="write the shared board of a running session, as a person",
        description="Write KEY on the board (logged as state_set by person). Agents that "
                    "start later read the new value.",
        example='examples:\n  cockpit set last topic "the 2.1 release"\n'
                '  cockpit set last limits \'{"words": 300}\' --json')
    board.add_argument("session", metavar="SESSION", help=SESSION_HELP)
    board.add_argument("key", metavar="KEY")
    board.add_argument("value", metavar="VALUE")
    board.add_argument("--json", action="store_true",
                       help="VALUE is JSON (a number, a list, an object); default: a string")
    add_db(board)

    approve = add_command(
        commands, "approve", help="approve a tool call that waits, or every one (--all)",
        description="Approve tool calls waiting for a decision in a running session. "
                    "Without CALL or --all, list them.",
        example="examples:\n  cockpit approve last                  # list the calls that wait\n"
                "  cockpit approve last researcher.3.1")
    approve.add_argument("session", metavar="SESSION", help=SESSION_HELP)
    approve.add_argument("call", nargs="?", metavar="CALL", help="the call's id (agent.turn.n)")
    approve.add_argument("--all", action="store_true", help="every call that waits")
    add_db(approve)

    deny = add_command(
        commands, "deny", help="deny a tool call that waits; the model reads the reason",
        description="Refuse a waiting tool call. The reason is the call's result.",
        example='example:\n'
                '  cockpit deny last researcher.3.1 --reason "two findings are enough"')
    deny.add_argument("session", metavar="SESSION", help=SESSION_HELP)
    deny.add_argument("call", metavar="CALL")
    deny.add_argument("--reason", required=True, help="what the model is told")
    add_db(deny)


def _session_agent(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session", metavar="SESSION", help=SESSION_HELP)
    parser.add_argument("agent", metavar="AGENT")


def _db(args: argparse.Namespace) -> Path:
    return Path(args.db).expanduser() if args.db else default_db_path()


def command(args: argparse.Namespace, op: str, said: Callable[[Any], str],
            **fields: Any) -> int:
    """Send request `op` to session `args.session`; say what was done, or why not."""
    db = _db(args)
    try:
        session = resolve_session(db, args.session)
        result = request(db, session, op, by="person", **fields)
    except (ControlError, Refused) as error:
        hint = ""
        if isinstance(error, NotRunning):
            hint = "; `cockpit status` says how it ended, `cockpit resume` continues it"
        print(f"cockpit: {sanitize(str(error))}{hint}", file=sys.stderr)
        return EXIT_USAGE
    print(f"cockpit: {sanitize(said(result))} (session {session})", file=sys.stderr)
    return EXIT_OK


def cmd_pause(args: argparse.Namespace) -> int:
    return command(args, "pause", lambda _: f"paused {args.agent}", agent=args.agent)


def cmd_resume_agent(args: argparse.Namespace) -> int:
    return command(args, "resume", lambda _: f"resumed {args.agent}", agent=args.agent)


def cmd_stop(args: argparse.Namespace) -> int:
    return command(args, "stop", lambda _: f"stopped {args.agent}", agent=args.agent)


def cmd_restart(args: argparse.Namespace) -> int:
    return command(args, "restart", lambda _: f"restarted {args.agent}", agent=args.agent)


def cmd_redirect(args: argparse.Namespace) -> int:
    return command(args, "redirect", lambda _: f"redirected {args.agent}", agent=args.agent,
                   instruction=args.instruction)


def cmd_set(args: argparse.Namespace) -> int:
    value: Any = args.value
    if args.json:
        try:
            value = json.loads(args.value)
        except json.JSONDecodeError as error:
            print(f"cockpit: VALUE is not valid JSON: {error}", file=sys.stderr)
            return EXIT_USAGE
    return command(args, "set", lambda _: f"set {one_line(args.key, 80)}", key=args.key,
                   value=value)


def cmd_approve(args: argparse.Namespace) -> int:
    if args.all and args.call:
        print("cockpit: give a CALL or --all, not both", file=sys.stderr)
        return EXIT_USAGE
    if args.all:
        return command(args, "approve_all",
                       lambda ids: f"approved {', '.join(ids)}" if ids
                       else "no calls were waiting")
    if args.call:
        return command(args, "decide", lambda _: f"approved {args.call}", call_id=args.call,
                       decision="approved")
    return _list_waiting(args)


def cmd_deny(args: argparse.Namespace) -> int:
    return command(args, "decide", lambda _: f"denied {args.call}", call_id=args.call,
                   decision="denied", reason=args.reason)


VERBS = {"pause": cmd_pause, "resume": cmd_resume_agent, "stop": cmd_stop, "restart": cmd_restart,
         "redirect": cmd_redirect, "set": cmd_set, "approve": cmd_approve, "deny": cmd_deny}


def main(argv: Sequence[str]) -> int:
    """`cockpit VERB ...` for the verbs above, parsed as the full CLI would."""
    parser = argparse.ArgumentParser(prog="cockpit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    add_parsers(commands, add_db)
    resume = commands.add_parser("resume")
    _session_agent(resume)
    add_db(resume)
    args = parser.parse_args(list(argv))
    try:
        return VERBS[args.command](args)
    except KeyboardInterrupt:
        return 130


def _list_waiting(args: argparse.Namespace) -> int:
    """`cockpit approve SESSION`: what waits, read from the log; exit 2 (nothing decided)."""
    import asyncio

    from cockpit.core.describe import call_line
    from cockpit.core.eventlog import EventLog, LogError
    from cockpit.core.state import fold

    async def load() -> tuple[str, list[str]]:
        async with EventLog.open(_db(args), readonly=True) as log:
            session = await log.resolve(args.session)
            state = fold([event async for event in log.iter_events(session)])
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
