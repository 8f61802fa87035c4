"""Command line: arguments -> config -> the engine (headless) or the app (TUI).

Exit codes (DESIGN.md): 0 every agent finished, 1 an agent failed or was stopped, 2 bad usage,
a crew-file error or a log error, 130 interrupted (the session stays resumable), 129 when the
terminal hung up (SIGHUP).
Errors are one clear line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import gc
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from cockpit import __version__
from cockpit.arguments import SESSION_HELP, HelpFormatter, add_command, add_db, add_theme
from cockpit.core.channel import ControlError
from cockpit.core.config import EMBEDDED_HOST, ConfigError, CrewConfig, load_crew
from cockpit.core.eventlog import EventLog, LogError, SessionRow, default_db_path
from cockpit.core.logfile import mcp_log_path
from cockpit.core.resume import ResumeError, outcome_of, resumable
from cockpit.core.text import one_line, safe_json, sanitize, table
from cockpit.core.tools.base import ToolsUnavailable
from cockpit.owner_process import OwnerError, start_owner

if TYPE_CHECKING:
    from textual.app import App

    from cockpit.core.acting import Policy
    from cockpit.core.resume import Resumable
    from cockpit.core.state import SessionState
    from cockpit.core.supervisor import Supervisor
    from cockpit.embedded.protocol import ServerThread

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_HANGUP = 0, 1, 2, 130, 129
PARALLEL = 2
DEMO_PACE = 5.0
"""Tokens a second per reply in the TUI demo: the tiny model writes 60 a second, which left
no time to try a key; at this pace the demo runs for about a minute."""
"""Generations the embedded engine runs at once (the demo runs two agents side by side)."""


class UsageError(Exception):
    """Bad usage that argparse cannot catch; printed as one line, exit 2."""


def _add_approve(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--approve", choices=("ask", "all", "none"), default="ask",
        help="calls the crew's `approve` patterns gate: ask (wait for a decision; headless "
             "says every minute what waits), all (approve them), none (deny them, with a "
             "reason the model reads). Default: ask")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cockpit", formatter_class=HelpFormatter,
        description="A terminal cockpit for crews of local LLM agents on Ollama: several agents "
                    "stream at once, each in its own pane, over a shared board; pause, redirect, "
                    "stop and approve them by keyboard. Every event goes to an SQLite log, so "
                    "any session can be replayed, reported on, or resumed after a crash.",
        epilog=TOP_EXAMPLES)
    parser.add_argument("--version", action="version", version=f"cockpit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = add_command(
        commands, "run", help="run a crew (the TUI, or --headless)",
        description="Run a crew file's agents: in the TUI, headless (a progress line per event "
                    "on stderr), or in the background (--detach). Every event is logged, so the "
                    "session can be replayed, reported on and resumed. Exit 0 when every agent "
                    "finished, 1 when one failed or was stopped, 2 for a crew-file error, 130 "
                    "when interrupted (the session stays resumable).",
        example="examples:\n"
                "  cockpit check --probe crew.toml && cockpit run crew.toml\n"
                "  cockpit run crew.toml --headless --approve none   # overnight, unattended\n"
                "  cockpit run crew.toml --detach && cockpit attach last")
    run.add_argument("crew", type=Path, metavar="CREW.toml", help="the crew file (TOML)")
    run.add_argument("--headless", action="store_true",
                     help="no TUI: progress lines on stderr, exit when every agent has ended")
    run.add_argument("--detach", action="store_true",
                     help="start the crew in the background, print its session id and return "
                          "(`cockpit attach ID` shows it)")
    add_theme(run)
    _add_approve(run)
    run.add_argument("--watch", action=argparse.BooleanOptionalAction, default=None,
                     help="apply edits of the crew file while it runs (agents that have not "
                          "started, new agents) and of theme files; --no-watch: neither "
                          "(default: themes only)")
    add_db(run)

    attach = add_command(
        commands, "attach",
        help="the cockpit on a running session (an ended one opens as a replay)",
        description="Open the cockpit on a session another process runs (`cockpit run "
                    "--detach`, or another terminal's TUI). Leaving it (q, then d) detaches: "
                    "the crew goes on.",
        example="example:\n  cockpit run crew.toml --detach && cockpit attach last")
    attach.add_argument("session", nargs="?", default="last", metavar="SESSION",
                        help="a session id (or prefix), or 'last' (the default)")
    add_theme(attach)
    add_db(attach)

    demo = add_command(
        commands, "demo",
        help="run the bundled three-agent crew on the embedded engine (no Ollama needed)",
        description="Run the bundled example crew on the embedded engine (llama.cpp and a "
                    "135M-parameter model, installed with the 'embedded' extra), to try the "
                    "cockpit's keys without Ollama: p pauses, r redirects, x stops, ? lists "
                    "every key.",
        example="examples:\n"
                "  cockpit demo\n"
                "  cockpit demo --headless | less   # the agents' text, as `cockpit logs` prints")
    demo.add_argument("--pace", type=float, metavar="TOK_S",
                      help=f"tokens a second per reply (default: {DEMO_PACE:g} in the TUI, "
                           "so there is time to pause, redirect and stop; full speed "
                           "headless); 0 is as fast as the engine goes")
    demo.add_argument("--headless", action="store_true",
                      help="no TUI: the agents' text on stdout (`name | line`), progress "
                           "lines on stderr, exit when every agent has ended")
    add_theme(demo)
    _add_approve(demo)
    add_db(demo)

    engine = add_command(
        commands, "engine",
        help="serve the embedded model over the Ollama API, for any Ollama client",
        description="Serve the embedded engine's model (smollm2:135m) on 127.0.0.1 with "
                    "Ollama's HTTP API, until Ctrl-C: any Ollama client, or a crew's `host`, "
                    "can use it.",
        example="example:\n"
                "  cockpit engine --port 11500      # then, in another shell:\n"
                "  OLLAMA_HOST=http://127.0.0.1:11500 cockpit run crew.toml")
    engine.add_argument("--port", type=int, default=0,
                        help="port on 127.0.0.1 (default: any free port, printed at start)")
    engine.add_argument("--parallel", type=int, default=PARALLEL, metavar="N",
                        help=f"requests generated at once; more wait in line (default {PARALLEL})")

    replay = add_command(
        commands, "replay",
        help="watch a logged session again (the TUI, or --headless for a transcript)",
        description="Play a logged session back from its event log, in the cockpit (space "
                    "plays or pauses, +/- change the speed, left/right seek, . steps one "
                    "event) or, with --headless, as a transcript on stdout. A replay decides "
                    "nothing: the session is left as it is.",
        example="examples:\n"
                "  cockpit replay last --speed 4\n"
                "  cockpit replay last --headless --by message > transcript.txt")
    replay.add_argument("session", metavar="SESSION", help=SESSION_HELP)
    replay.add_argument("--speed", type=float, default=None, metavar="X",
                        help="0.25 to 16 times the original pace; --headless also takes 0, "
                             "as fast as possible (default: 1; headless: 0)")
    replay.add_argument("--headless", action="store_true",
                        help="print the transcript to stdout instead of opening the TUI")
    from cockpit.logs import add_by

    add_by(replay)
    add_theme(replay)
    add_db(replay)

    report = add_command(
        commands, "report", help="the morning report of a session, in Markdown",
        description="Write what a session did, in Markdown, to read in the morning: a table "
                    "of its agents (outcome, duration, tokens, tok/s, retries, stalls, "
                    "interventions), the first lines of each one's answer or error, the tools "
                    "they used, a timeline, and the final board.",
        example="examples:\n"
                "  cockpit report last\n"
                "  cockpit report last -o report.md")
    report.add_argument("session", metavar="SESSION", help=SESSION_HELP)
    report.add_argument("-o", "--output", type=Path, metavar="FILE", help="default: stdout")
    add_db(report)

    resume = add_command(
        commands, "resume",
        help="continue an interrupted, crashed or failed session where its log ends; "
             "with AGENT, resume that paused agent of a running session",
        description="Continue a session that was interrupted, crashed or failed, in the same "
                    "session id: finished agents stay finished, failed ones go on from their "
                    "partial reply, and those a failure held back now start. With AGENT, "
                    "resume that paused agent of a session that is running.",
        example="examples:\n"
                "  cockpit resume last\n"
                "  cockpit resume last --only writer --headless\n"
                "  cockpit resume last writer          # a paused agent of a running session")
    resume.add_argument("session", metavar="SESSION", help=SESSION_HELP)
    resume.add_argument("agent", nargs="?", metavar="AGENT",
                        help="a paused agent of the running session to resume")
    resume.add_argument("--only", action="append", metavar="AGENT",
                        help="continue only this agent (repeat for more); the others stay as "
                             "they are and the session stays resumable")
    resume.add_argument("--headless", action="store_true",
                        help="no TUI: progress lines on stderr, exit when every agent has ended")
    resume.add_argument("--detach", action="store_true",
                        help="continue it in the background; print its id and return")
    add_theme(resume)
    _add_approve(resume)
    add_db(resume)

    check = add_command(
        commands, "check", help="validate a crew file and summarise it (--probe: ask its hosts)",
        description="Validate a crew file as `cockpit run` would, without running it: each "
                    "problem is named with its file:line and field, and the exit code is 2. A "
                    "valid crew is summarised (each agent's model, host and dependencies), and "
                    "its MCP servers are started to list their tools.\n\n"
                    "--probe also asks every host of the crew which models it has (what "
                    "`ollama list` shows) and names each missing one with the `ollama pull` that "
                    "fixes it. Exit 0 when every model is there, 1 when one is missing or a host "
                    "does not answer. The embedded engine is not probed: it starts with the "
                    "crew; the check is that it is installed and serves the agents' model.",
        example="examples:\n"
                "  cockpit check crew.toml\n"
                "  cockpit check --probe crew.toml   # at 11 PM, what would fail at 3 AM")
    check.add_argument("crew", type=Path, metavar="CREW.toml", help="the crew file (TOML)")
    check.add_argument("--probe", action="store_true",
                       help="also ask each host whether it has the models its agents need; "
                            "exit 1 if one is missing or a host does not answer")
    add_db(check)

    status = add_command(
        commands, "status",
        help="where a session stands: each agent's status, figures and waiting calls",
        description="Where a session stands, read from its log (running or not): its outcome, "
                    "each agent's status, tokens, tok/s, tool calls and host, and the tool "
                    "calls waiting for approval.",
        example="examples:\n"
                "  cockpit status\n"
                "  cockpit status last --json | jq '.agents'")
    status.add_argument("session", nargs="?", default="last", metavar="SESSION",
                        help="a session id (or prefix), or 'last' (the default)")
    status.add_argument("--json", action="store_true", help="one JSON object instead of text")
    add_db(status)

    sessions = add_command(
        commands, "sessions", help="list logged sessions",
        description="List the sessions in the event log, oldest first: id, crew, start, "
                    "duration, agents, outcome, and whether `cockpit resume` can continue it.",
        example="examples:\n"
                "  cockpit sessions\n"
                "  cockpit sessions --json --db overnight.db")
    sessions.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    add_db(sessions)

    export = add_command(
        commands, "export", help="write a session's events",
        description="Write a session's events: JSONL, one event per line as "
                    '{"id", "session", "agent", "type", "ts", "data"} (exact text, control '
                    "characters escaped), or a Markdown transcript. A file written with -o is "
                    "created 0600 and appears only once complete.",
        example="examples:\n"
                "  cockpit export last > session.jsonl\n"
                "  cockpit export last --format markdown -o session.md")
    export.add_argument("session", metavar="SESSION", help=SESSION_HELP)
    export.add_argument("--format", choices=("jsonl", "markdown"), default="jsonl",
                        help="jsonl: every event; markdown: a readable transcript")
    export.add_argument("-o", "--output", type=Path, metavar="FILE", help="default: stdout")
    add_db(export)

    from cockpit import interventions, logs, owner_process, serve

    logs.add_parser(commands, add_db)
    serve.add_parser(commands, add_db)
    interventions.add_parsers(commands, add_db)
    owner_process.add_parser(commands)
    return parser


TOP_EXAMPLES = """\
examples:
  cockpit demo                       try it: no Ollama needed
  cockpit check --probe crew.toml    is the crew valid, do its hosts have its models?
  cockpit run crew.toml --detach     run it in the background, then
  cockpit attach last                watch and command it
  cockpit report last                the morning report

`cockpit COMMAND --help` describes each command, with examples.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `cockpit` script."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = COMMANDS[args.command]
    try:
        return handler(args)
    except (ConfigError, LogError, UsageError, ResumeError, ToolsUnavailable, OwnerError,
            ControlError) as error:
        message = f"cockpit: {error}" if not isinstance(error, ConfigError) else str(error)
        print(sanitize(message), file=sys.stderr)  # it may quote a crew file, a model, a log
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `cockpit export last | head`
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return EXIT_OK


def db_path(args: argparse.Namespace) -> Path:
    return Path(args.db).expanduser() if args.db else default_db_path()


# -- check --------------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 2 for a crew-file error (or an MCP server that does not start); with --probe, 1
    when a host lacks a model an agent needs or does not answer."""
    crew = load_crew(args.crew)
    print(summarise_crew(crew, args.crew), flush=True)
    if crew.mcp:
        print(asyncio.run(_mcp_tools(crew)), flush=True)
    if not args.probe:
        return EXIT_OK
    from cockpit.probe import probe, report

    lines, problems = report(crew, asyncio.run(probe(crew)))
    print("\n".join(lines))
    for problem in problems:
        print(f"cockpit: {problem}", file=sys.stderr)
    return EXIT_FAILED if problems else EXIT_OK


async def _mcp_tools(crew: CrewConfig) -> str:
    """Start the crew's MCP servers (a failure is the run's error, exit 2) and list their
    tools, with the agents that may call each."""
    from cockpit.core.tools.mcp import McpHub

    lines = []
    async with McpHub(list(crew.mcp)) as hub:
        hub.check_refs(crew.agents)  # each NAME.TOOL names a tool its server has
        for server in crew.mcp:
            tools = hub.tools(f"mcp:{server.name}")
            lines.append(f"  mcp {one_line(server.name, 60)}: {len(tools)} tools")
            for tool in tools:
                users = [a.name for a in crew.agents
                         if f"mcp:{server.name}" in a.tools or tool.name in a.tools]
                who = f"  (used by {', '.join(users)})" if users else ""
                about = one_line(tool.description.split("\n")[0], 70)
                name = one_line(tool.name, 80)
                lines.append(f"    {name}{who}" + (f": {about}" if about else ""))
    return "\n".join(lines)


def summarise_crew(crew: CrewConfig, path: Path) -> str:
    lines = [f"{path}: crew {crew.name!r} is valid: {len(crew.agents)} agents"]
    width = max(len(agent.name) for agent in crew.agents)
    for agent in crew.agents:
        after = f"  after {', '.join(agent.after)}" if agent.after else ""
        hosts = ", ".join(one_line(host, 120) for host in crew.hosts_for(agent))
        lines.append(f"  {agent.name.ljust(width)}  {one_line(crew.model_for(agent), 80)} @ "
                     f"{hosts}{after}")
    if crew.state:  # names and keys are the crew file's text: one sanitised line each
        lines.append(f"  board: {', '.join(one_line(key, 80) for key in sorted(crew.state))}")
    return "\n".join(lines)


# -- run ----------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    crew = load_crew(args.crew)
    if args.detach and args.headless:
        raise UsageError("--detach and --headless do not go together: a detached crew has no "
                         "terminal; `cockpit logs ID -f` prints its transcript")
    crew_watch = bool(args.watch)  # the crew file only when asked; themes unless --no-watch
    if args.detach or not args.headless:
        return run_owned(db_path(args), crew_path=args.crew.resolve(), detach=args.detach,
                         theme=args.theme, approve=args.approve, watch=crew_watch,
                         watch_themes=args.watch is not False)
    return run_crew(crew, args.crew, db_path(args), headless=True, theme=None, watch=False,
                    approve=args.approve, crew_watch=crew_watch)


def cmd_demo(args: argparse.Namespace) -> int:
    with resources.as_file(resources.files("cockpit") / "examples" / "demo.toml") as path:
        crew = load_crew(path)
        pace = args.pace if args.pace is not None else None if args.headless else DEMO_PACE
        if pace is not None and not 0 <= pace <= 10_000:
            raise UsageError("--pace must be between 0 (full speed) and 10000 tokens a second")
        if not args.headless:
            return run_owned(db_path(args), crew_path=path, detach=False, theme=args.theme,
                             approve=args.approve, watch=False, watch_themes=False,
                             pace=pace or None)
        # The demo is there to be read: the agents' text on stdout, progress on stderr.
        return run_crew(crew, path, db_path(args), headless=True, theme=None, watch=False,
                        approve=args.approve, text=sys.stdout, pace=pace or None)


def cmd_resume(args: argparse.Namespace) -> int:
    from cockpit.core.resume import load_resumable

    if args.agent is not None:  # a paused agent of a running session
        from cockpit.interventions import cmd_resume_agent

        return cmd_resume_agent(args)

    async def load() -> Resumable:
        async with EventLog.open(db_path(args), create=False) as log:
            return await load_resumable(log, args.session, args.only)

    found = asyncio.run(load())
    if found.complete:  # a crash between the last agent's end and the session's: close it
        return run_async(run_headless(found.crew, Path(found.crew_path or "crew.toml"),
                                      db_path(args), resume=found.state))
    if args.detach or not args.headless:
        return run_owned(db_path(args), resume=found.state.session, only=found.only,
                         detach=args.detach, theme=args.theme, approve=args.approve,
                         watch=False, watch_themes=True)
    return run_crew(found.crew, Path(found.crew_path or "crew.toml"), db_path(args),
                    headless=True, theme=None, watch=False, resume=found.state,
                    only=found.only, approve=args.approve)


def run_owned(db: Path, *, crew_path: Path | None = None, resume: str | None = None,
              only: list[str] | None = None, detach: bool, theme: str | None,
              approve: Policy, watch: bool, watch_themes: bool,
              pace: float | None = None) -> int:
    """Start the session's owner process; then return (`--detach`) or attach the TUI to it.
    The crew outlives the TUI: leaving it can detach, and a closed terminal does."""
    if not detach:
        _need_terminal("for pipes and scripts")
        if theme:
            from cockpit.ui.themes import ThemeError, check_theme_name

            try:
                check_theme_name(theme)
            except ThemeError as error:
                raise UsageError(str(error)) from None
    session, pid = start_owner(db, crew_path=crew_path, resume=resume, only=only,
                               approve=approve, watch=watch, viewer=not detach, pace=pace)
    if not detach:
        return _attach_started(db, session, theme=theme, watch_themes=watch_themes)
    print(session, flush=True)
    print(f"cockpit: session {session} runs in the background (process {pid}): "
          f"`cockpit attach {session}` shows it, `cockpit logs {session} -f` follows it, "
          f"`cockpit stop {session} AGENT` stops an agent", file=sys.stderr)
    return EXIT_OK


def _attach_started(db: Path, session: str, *, theme: str | None, watch_themes: bool) -> int:
    """The TUI on the owner just started. Until the TUI's own handlers are in place, SIGTERM
    (like Ctrl-C) stops the crew it started, as it does once the TUI runs."""
    from cockpit.core.channel import Refused, request
    from cockpit.owner_process import raise_interrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        return attach_tui(db, session, theme=theme, started_here=True,
                          watch_themes=watch_themes)
    except KeyboardInterrupt:
        with contextlib.suppress(ControlError, Refused):
            request(db, session, "shutdown", timeout=30.0)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_attach(args: argparse.Namespace) -> int:
    _need_terminal("(`cockpit logs SESSION -f` prints a running session's transcript)")
    return attach_tui(db_path(args), args.session, theme=args.theme, started_here=False,
                      watch_themes=True)


def attach_tui(db: Path, ref: str, *, theme: str | None, started_here: bool,
               watch_themes: bool) -> int:
    """The cockpit on session `ref`, run by another process; an ended session is replayed."""
    from cockpit.core.channel import NotRunning
    from cockpit.core.sources import AttachedSource, ReplaySource, Source

    async def open_source() -> Source:
        try:
            return await AttachedSource.open(db, ref, started_here=started_here)
        except NotRunning:
            return await ReplaySource.open(db, ref)

    source = asyncio.run(open_source())

    built: App[int] | None = None

    def build() -> App[int]:
        nonlocal built
        from cockpit.ui.app import viewer

        built = viewer(source, theme=theme, watch_themes=watch_themes and not source.plays)
        return built

    code = run_app(build, "for pipes and scripts", EXIT_INTERRUPTED)
    if getattr(built, "detached", False):
        session = source.session
        with contextlib.suppress(OSError):  # the terminal may be gone (a hang-up)
            print(f"cockpit: detached; session {session} goes on: `cockpit attach {session}` "
                  f"comes back, `cockpit status {session}` says where it stands",
                  file=sys.stderr)
    return code


def run_crew(crew: CrewConfig, crew_path: Path, db: Path, *, headless: bool,
             theme: str | None, watch: bool, resume: SessionState | None = None,
             only: list[str] | None = None, approve: Policy = "ask",
             crew_watch: bool = False, text: TextIO | None = None,
             pace: float | None = None) -> int:
    """Run a crew (or continue `resume`) in this process, headless or in the TUI, with the
    embedded engine up if the crew uses it. Headless, `text` gets what the agents say."""
    with contextlib.ExitStack() as stack:
        hosts = {}
        if EMBEDDED_HOST in crew.all_hosts():
            hosts[EMBEDDED_HOST] = stack.enter_context(start_engine(PARALLEL, pace=pace)).url
        if headless:
            return run_async(run_headless(crew, crew_path, db, hosts=hosts, resume=resume,
                                          only=only, approve=approve, crew_watch=crew_watch,
                                          text=text))
        return run_tui(crew, crew_path, db, theme=theme, watch=watch, hosts=hosts,
                       resume=resume, only=only, approve=approve)


@contextlib.contextmanager
def start_engine(parallel: int, port: int = 0,
                 pace: float | None = None) -> Iterator[ServerThread]:
    """The embedded engine (at `pace` tokens a second per reply, if given), or a UsageError
    saying how to install it."""
    try:
        from cockpit.embedded.llama import EngineUnavailable, embedded_engine
    except ImportError as error:  # pragma: no cover - the module itself has no extra imports
        raise UsageError(str(error)) from None
    try:
        engine = embedded_engine(parallel, port, pace=pace)
        server = engine.__enter__()
    except EngineUnavailable as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"cannot start the embedded engine: {error}") from None
    try:
        yield server
    finally:
        engine.__exit__(None, None, None)


def cmd_engine(args: argparse.Namespace) -> int:
    if args.parallel < 1:
        raise UsageError("--parallel must be at least 1")
    with start_engine(args.parallel, args.port) as server:
        from cockpit.embedded.llama import MODEL_NAME

        print(f"cockpit engine: serving {MODEL_NAME} at {server.url} "
              f"({args.parallel} at once); Ctrl-C stops it", file=sys.stderr, flush=True)
        print(f"OLLAMA_HOST={server.url}", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return EXIT_OK


def run_tui(crew: CrewConfig, crew_path: Path, db: Path, *, theme: str | None,
            watch: bool, hosts: dict[str, str] | None = None,
            resume: SessionState | None = None, only: list[str] | None = None,
            approve: Policy = "ask") -> int:
    """Open the cockpit. The app owns the session: it opens the log and closes it on exit."""

    def build() -> App[int]:
        from cockpit.ui.app import make_app

        return make_app(crew, db, crew_path=crew_path.resolve(), theme=theme,
                        watch_themes=watch, hosts=hosts, resume=resume, resume_only=only,
                        approve=approve)

    return run_app(build, "for pipes and scripts", EXIT_INTERRUPTED)


def _need_terminal(headless_use: str) -> None:
    if not _in_browser() and (not sys.__stderr__ or not sys.__stderr__.isatty()):
        raise UsageError(f"the TUI needs a terminal; use --headless {headless_use}")


def run_app(build: Callable[[], App[int]], headless_use: str, no_code: int) -> int:
    """Build and run a TUI app on the terminal. A bad theme or a log error (the app exits
    with return code 2) is a usage error; `no_code` is the exit code when the app gives none."""
    _need_terminal(headless_use)
    from cockpit.ui.themes import ThemeError

    try:
        app = build()
    except ThemeError as error:
        raise UsageError(str(error)) from None
    code = app.run()
    if app.return_code == 2:
        return EXIT_USAGE
    _next_steps(app)
    return code if code is not None else no_code


def _next_steps(app: App[int]) -> None:
    """On leaving a TUI: the session's id and what can be done with it next."""
    session = getattr(app, "session", None)
    if not session or getattr(app, "detached", False):  # a detach says its own
        return
    with contextlib.suppress(OSError):  # the terminal may be gone (a hang-up)
        print(f"cockpit: session {session}: `cockpit report {session}` · "
              f"`cockpit replay {session}` · `cockpit resume {session}`", file=sys.stderr)


def _in_browser() -> bool:
    """Under `cockpit serve` (textual-serve's web driver) no stream is a TTY, and Textual
    draws on the websocket instead (REFERENCE-2 I.2): the terminal check does not apply."""
    return os.environ.get("TEXTUAL_DRIVER", "").endswith("WebDriver")


def run_async(main: Awaitable[int]) -> int:
    """Run `main` with SIGTERM and SIGHUP treated like Ctrl-C: each cancels it so it can log
    and close. Exit 130, or 129 for SIGHUP (the terminal closed)."""
    received: list[int] = []

    async def wrapper() -> int:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()

        def stop(signum: int) -> None:
            received.append(signum)
            if task is not None:
                task.cancel()

        for signum in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop, signum)
        return await main

    try:
        return asyncio.run(wrapper())
    except (KeyboardInterrupt, asyncio.CancelledError):
        return EXIT_HANGUP if received[:1] == [signal.SIGHUP] else EXIT_INTERRUPTED


async def run_headless(crew: CrewConfig, crew_path: Path, db: Path,
                       stream: TextIO | None = None, hosts: dict[str, str] | None = None,
                       resume: SessionState | None = None, only: list[str] | None = None,
                       approve: Policy = "ask", crew_watch: bool = False,
                       text: TextIO | None = None) -> int:
    """Run the crew to its end with progress lines on `stream` (stderr), and what the agents
    say, as `cockpit logs` prints it, on `text` if given.

    Nobody can resume a paused agent here, so when only paused agents are left the run ends,
    interrupted and resumable, and says so. A log that cannot be written at all ends the run
    with exit 2 and says what was not written and where it went.
    """
    from cockpit.core.bus import EventBus
    from cockpit.core.supervisor import Supervisor
    from cockpit.headless import HeadlessPrinter
    from cockpit.owner_process import watch_crew_file

    out = stream or sys.stderr
    async with EventLog.open(db) as log:
        bus = EventBus()
        printer = HeadlessPrinter(bus.subscribe(), out, text=text)
        printing = asyncio.create_task(printer.run(), name="cockpit headless printer")
        supervisor = Supervisor(crew, log, bus, crew_path=crew_path.resolve(), hosts=hosts,
                                session=resume.session if resume else None, approve=approve,
                                mcp_log=mcp_log_path(db))
        printer.approve = approve
        verb = "resuming session" if resume else "session"
        print(f"cockpit: {verb} {supervisor.session}, log {db}", file=out, flush=True)
        if resume is not None:
            printer.state = copy.deepcopy(resume)  # its lines count from where the log ends
        # What start-up built (modules, pydantic schemas) lives for the whole run: out of the
        # collector's reach, full collections do not rescan it while agents stream.
        gc.freeze()
        try:
            async with _commands_if_possible(supervisor, db, hosts or {}, out):
                watching = watch_crew_file(crew_path.resolve(), supervisor) if crew_watch else None
                try:
                    state = await supervisor.run(resume, only=only, until_idle=True)
                finally:
                    if watching is not None:
                        watching.cancel()
        except LogError:
            await asyncio.shield(_abandon(supervisor))
            raise
        except asyncio.CancelledError:
            await asyncio.shield(supervisor.shutdown())
            bus.close()
            await printing
            print(f"cockpit: interrupted; session {supervisor.session} kept in {db}",
                  file=out, flush=True)
            raise
        finally:
            bus.close()
            await printing
    if state.outcome == "interrupted":
        from cockpit.core.state import AgentStatus

        paused = [name for name, a in state.agents.items() if a.status is AgentStatus.PAUSED]
        held = [name for name, a in state.agents.items()
                if not a.status.ended and name not in paused]
        reasons = ([f"{', '.join(paused)} paused"] if paused else []) + \
            ([f"{', '.join(held)} not continued"] if held else [])
        why = "; ".join(reasons)
        print(f"cockpit: {why}; session {supervisor.session} stays resumable "
              f"(`cockpit resume {supervisor.session}`)", file=out, flush=True)
        return EXIT_INTERRUPTED
    return EXIT_OK if state.outcome == "finished" else EXIT_FAILED


@contextlib.asynccontextmanager
async def _commands_if_possible(supervisor: Supervisor, db: Path, hosts: dict[str, str],
                                out: TextIO) -> AsyncIterator[None]:
    """Listen for `cockpit approve`, `pause`... from other shells; a headless run goes on
    without them, and says so, when the socket cannot be made (a runtime directory that is
    not private, a path too long)."""
    from cockpit.core.owner import serve_commands

    async with contextlib.AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(serve_commands(supervisor, db, hosts))
        except ControlError as error:
            print(f"cockpit: no commands from other shells for this run: {error}", file=out,
                  flush=True)
        yield


async def _abandon(supervisor: Supervisor) -> None:
    """The log gave up: stop the agents without trying to log anything more."""
    with contextlib.suppress(LogError):
        await supervisor.shutdown()


# -- sessions and export ------------------------------------------------------------------------


def _duration(row: SessionRow) -> str:
    end = row.ended_at or row.last_ts or row.started_at
    seconds = int(max(0.0, end - row.started_at))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def cmd_sessions(args: argparse.Namespace) -> int:
    async def load() -> list[SessionRow]:
        async with EventLog.open(db_path(args), readonly=True) as log:
            return await log.sessions()

    rows = asyncio.run(load())
    records = [
        {
            "id": row.id, "crew": row.crew,
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row.started_at)),
            "started_ts": row.started_at, "duration": _duration(row), "agents": row.agents,
            "outcome": outcome_of(row),
            "resumable": resumable(row),
        }
        for row in rows
    ]
    if args.json:
        print(json.dumps(records, indent=2))
        return EXIT_OK
    if not records:
        print("no sessions yet", file=sys.stderr)
        return EXIT_OK
    columns = ["id", "crew", "started", "duration", "agents", "outcome", "resumable"]
    cells = [[one_line(str(r[c]), 60) if c != "resumable" else ("yes" if r[c] else "")
              for c in columns] for r in records]  # a crew's name is the crew file's text
    print("\n".join(table(columns, cells)))
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from cockpit.core.state import fold
    from cockpit.status import status_record, status_text

    async def load() -> dict[str, object]:
        async with EventLog.open(db_path(args), readonly=True) as log:
            session = await log.resolve(args.session)
            row = next(r for r in await log.sessions() if r.id == session)
            state = fold([event async for event in log.iter_events(session)])
            return status_record(row, state)

    record = asyncio.run(load())
    print(safe_json(record, indent=2) if args.json else status_text(record))
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from cockpit.core.export import export_jsonl, export_markdown

    writer = export_jsonl if args.format == "jsonl" else export_markdown
    return write_out(args, writer, "events")


def cmd_replay(args: argparse.Namespace) -> int:
    speed = args.speed if args.speed is not None else (0.0 if args.headless else 1.0)
    if speed < 0 or (not args.headless and not 0.25 <= speed <= 16):
        raise UsageError("--speed must be between 0.25 and 16 (or 0 with --headless)")
    if args.by != "line" and not args.headless:
        raise UsageError("--by goes with --headless (the TUI shows each agent in its pane)")
    if args.headless:
        from cockpit.core.replay import write_transcript
        from cockpit.logs import wants_colour

        async def transcript(log: EventLog, session: str, out: TextIO) -> int:
            return await write_transcript(log, session, out, speed, by=args.by,
                                          colour=wants_colour(out))

        args.output = None
        return write_out(args, transcript, "events")

    def build() -> App[int]:
        from cockpit.ui.replay_app import open_replay

        return asyncio.run(open_replay(db_path(args), args.session, speed=speed,
                                       theme=args.theme))

    return run_app(build, "for a transcript", EXIT_OK)


def cmd_report(args: argparse.Namespace) -> int:
    from cockpit.core.report import write_report

    async def report(log: EventLog, session: str, out: TextIO) -> int:
        return (await write_report(log, session, out)).events

    return write_out(args, report, "events' report")


def write_out(args: argparse.Namespace,
              writer: Callable[[EventLog, str, TextIO], Awaitable[int]], what: str) -> int:
    """Run `writer` on session `args.session`, to stdout or (atomically) to `args.output`.

    The file holds model output and board values: it is created 0600 (an existing file's
    narrower mode is kept), written under a temporary name beside it and renamed over it only
    when complete, so an error never costs what was there.
    """

    async def export(out: TextIO) -> int:
        async with EventLog.open(db_path(args), readonly=True) as log:
            session = await log.resolve(args.session)
            return await writer(log, session, out)

    if args.output is None:
        asyncio.run(export(sys.stdout))
        sys.stdout.flush()
        return EXIT_OK
    target: Path = args.output
    try:
        mode = 0o600 & os.stat(target).st_mode
    except FileNotFoundError:
        mode = 0o600
    except OSError as error:
        raise UsageError(f"cannot write {target}: {error.strerror}") from None
    try:
        fd, name = tempfile.mkstemp(prefix=f"{target.name}.", suffix=".part",
                                    dir=target.parent)  # O_CREAT | O_EXCL, mode 0600
    except OSError as error:
        raise UsageError(f"cannot write {target}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            count = asyncio.run(export(out))
            os.fchmod(out.fileno(), mode)
        os.replace(name, target)  # never leave a half-written export under the real name
    except OSError as error:
        raise UsageError(f"cannot write {target}: {error.strerror}") from None
    finally:
        Path(name).unlink(missing_ok=True)
    print(f"cockpit: wrote {count} {what} to {one_line(str(target), 300)}", file=sys.stderr)
    return EXIT_OK


def _logs(args: argparse.Namespace) -> int:
    from cockpit.logs import cmd_logs

    return cmd_logs(args)


def _serve(args: argparse.Namespace) -> int:
    from cockpit.serve import cmd_serve

    return cmd_serve(args)


def _owner(args: argparse.Namespace) -> int:
    from cockpit.owner_process import owner_main

    return owner_main(args)


def _intervention(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from cockpit import interventions

        handler: Callable[[argparse.Namespace], int] = getattr(interventions, f"cmd_{name}")
        return handler(args)

    return run


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "attach": cmd_attach,
    "logs": _logs,
    "serve": _serve,
    "_owner": _owner,
    **{name: _intervention(name)
       for name in ("pause", "stop", "restart", "redirect", "set", "approve", "deny")},
    "demo": cmd_demo,
    "resume": cmd_resume,
    "report": cmd_report,
    "replay": cmd_replay,
    "engine": cmd_engine,
    "check": cmd_check,
    "sessions": cmd_sessions,
    "status": cmd_status,
    "export": cmd_export,
}
