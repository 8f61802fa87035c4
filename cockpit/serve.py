"""`cockpit serve`: cockpit viewers in the browser, through textual-serve.

Each browser tab (websocket) gets its own viewer process, `cockpit attach SESSION`, run by
textual-serve through a shell (REFERENCE-2 I.1); the session's owner runs elsewhere, so closing
a tab closes only that viewer. A viewer can pause, redirect, stop and approve, so the server
binds loopback unless `--public` says otherwise, and it answers only pages of its own origin:
browsers let any site open a websocket to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import hmac
import ipaddress
import secrets
import shlex
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from cockpit.arguments import add_command, add_theme
from cockpit.core.logfile import default_db_path

if TYPE_CHECKING:
    from textual_serve.server import Server

EXIT_OK, EXIT_USAGE = 0, 2
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000
COOKIE = "cockpit_token"

EXAMPLE = """\
examples:
  cockpit run crew.toml --detach        # prints the session id; the crew runs on
  cockpit serve                         # then open http://127.0.0.1:8000/ (the last session)

From another machine, prefer an SSH tunnel to --public:
  ssh -L 8000:127.0.0.1:8000 HOST       # then open http://127.0.0.1:8000/ there
"""


class ServeError(Exception):
    """Bad usage found before serving; one line on stderr, exit 2."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser],
               add_db: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    """Register `cockpit serve` on cli.py's subcommands (`add_db` adds the shared --db)."""
    serve = add_command(
        commands, "serve", help="open a session's viewer in the browser (each tab its own viewer)",
        description="Serve cockpit viewers over HTTP: each browser tab runs `cockpit attach "
                    "SESSION` and commands the agents as the TUI does. It listens on "
                    "127.0.0.1 only, unless --public.",
        example=EXAMPLE)
    serve.add_argument("session", nargs="?", default="last", metavar="SESSION",
                       help="a session id (or prefix), or 'last' (the default), resolved when "
                            "each tab opens")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port")
    serve.add_argument("--host", default=DEFAULT_HOST,
                       help="address to listen on; any other than loopback needs --public")
    serve.add_argument("--public", action="store_true",
                       help="allow a non-loopback --host: anyone who reaches it can command "
                            "the agents, with no password")
    add_theme(serve)
    add_db(serve)
    return serve


def cmd_serve(args: argparse.Namespace) -> int:
    """`cockpit serve` from parsed arguments (see add_parser)."""
    return serve(args.session, args.db, theme=args.theme, host=args.host, port=args.port,
                 public=args.public)


def viewer_command(session: str, db: Path, theme: str | None,
                   argv: Sequence[str] | None = None) -> str:
    """The shell command each tab runs: `cockpit attach SESSION --db DB [--theme T]`, or the
    cockpit arguments `argv` instead. Quoted, since textual-serve runs it through a shell."""
    if argv is None:
        argv = ["attach", session, "--db", str(db), *(["--theme", theme] if theme else [])]
    return shlex.join([sys.executable, "-m", "cockpit", *argv])


def serve(session: str, db: Path | None, *, theme: str | None = None,
          host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, public: bool = False,
          argv: Sequence[str] | None = None) -> int:
    """Serve viewers of `session` until SIGINT or SIGTERM (exit 0); bad usage is exit 2.
    `argv` serves other cockpit arguments instead of attach (see viewer_command)."""
    db = (Path(db).expanduser() if db else default_db_path()).resolve()
    try:
        if argv is None and not db.exists():
            raise ServeError(f"no event log at {db}: start a crew first "
                             f"(cockpit run CREW.toml --detach --db {db})")
        if theme:
            check_theme(theme)
        loopback = check_address(host, port, public=public)
    except ServeError as error:
        print(f"cockpit: {error}", file=sys.stderr)
        return EXIT_USAGE

    token = secrets.token_urlsafe(18)
    server = _make_server(viewer_command(session, db, theme, argv), host=host, port=port,
                          session=session, public=public, token=token)
    if not loopback:
        print(f"cockpit serve: WARNING: listening on {host} port {port}: anyone who can "
              f"reach it and has the link can command the agents", file=sys.stderr)
    url = server.public_url
    where = (f"{url}/?token={token} (from elsewhere: this machine's address, port {port})"
             if _is_wildcard(host) else f"{url}/?token={token}")
    which = "the last session" if session == "last" else f"session {session}"
    print(f"cockpit serve: {which} at {where}; each tab runs its own viewer. Ctrl-C stops",
          file=sys.stderr, flush=True)
    try:
        _run(server)
    except OSError as error:  # lost a race for the port since check_address
        print(f"cockpit: {_bind_problem(host, port, error)}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


# -- the address ---------------------------------------------------------------------------------


def check_address(host: str, port: int, *, public: bool) -> bool:
    """Whether `host` is loopback only. Refuses any other unless `public`, then checks that
    `port` is free there, so a taken port is one line on stderr before anything is served."""
    if not 1 <= port <= 65535:
        raise ServeError(f"--port {port}: give a port from 1 to 65535 (serve prints the URL "
                         f"to open before it listens, so it cannot let the system pick one)")
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ServeError(f"--host {host}: cannot resolve it ({error.strerror})") from None
    loopback = bool(host) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)
    if not loopback and not public:
        raise ServeError(
            f"refusing to serve on {host}: it is not a loopback address, and anyone who "
            f"reaches it can command the agents (pause, redirect, stop, approve tool calls) "
            f"with no password. Pass --public to serve there anyway, or keep the default and "
            f"use an SSH tunnel (ssh -L {port}:127.0.0.1:{port} HOST)")
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as asyncio does
            try:
                probe.bind(address)
            except OSError as error:
                raise ServeError(_bind_problem(host, port, error)) from None
    return loopback


def _bind_problem(host: str, port: int, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use (another cockpit serve?): choose one with --port"
    if error.errno == errno.EACCES:
        return f"cannot listen on port {port}: permission denied (ports below 1024 need root)"
    return f"cannot listen on {host} port {port}: {error.strerror or error}"


def _is_wildcard(host: str) -> bool:
    return host in ("", "0.0.0.0", "::")


def _url_host(host: str) -> str:
    """`host` as it goes in a URL: bracketed if IPv6, and a wildcard as loopback, since a
    browser cannot connect to 0.0.0.0 (REFERENCE-2 I.1)."""
    if host == "::":  # IPv6 only: asyncio sets IPV6_V6ONLY
        return "[::1]"
    if _is_wildcard(host):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def check_theme(name: str) -> None:
    """A bad theme would leave every tab on textual-serve's splash: refuse it at start."""
    from cockpit.ui.themes import ThemeError, check_theme_name

    try:
        check_theme_name(name)
    except ThemeError as error:
        raise ServeError(str(error)) from None


# -- the server ----------------------------------------------------------------------------------


def _make_server(command: str, *, host: str, port: int, session: str,
                 public: bool, token: str) -> Server:
    """textual-serve's server with cockpit's guards: the page's URLs are built from the Host
    the browser used (right behind any address, 0.0.0.0 included), a loopback server answers
    only loopback names (DNS rebinding), the websocket only pages of the same origin, and
    nothing without the link's token. Every user of the machine can reach a loopback port,
    and each tab runs a viewer that commands the crew as the user who started `serve`: the
    token (in the printed link, then an HttpOnly same-site cookie) is what keeps the socket's
    uid check from being bypassed through the browser's port.
    Imported here: aiohttp takes a quarter of a second, which other commands need not pay."""
    from aiohttp import web
    from rich.console import Console
    from textual_serve.server import Server

    class ViewerServer(Server):
        async def on_startup(self, app: web.Application) -> None:
            """No logo: `serve` has printed the URL."""

        def check(self, request: web.Request) -> None:
            name = (urlsplit(f"//{request.host}").hostname or "").lower()
            if not public and not _loopback_name(name, host):
                raise web.HTTPForbidden(text=f"cockpit serve answers only on loopback "
                                             f"names, not {name!r}\n")
            origin = request.headers.get("Origin")
            if origin and urlsplit(origin).netloc.lower() != request.host.lower():
                raise web.HTTPForbidden(text="cross-origin websocket refused\n")
            given = request.query.get("token") or request.cookies.get(COOKIE, "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                raise web.HTTPForbidden(text="this page needs the link `cockpit serve` "
                                             "printed (with its ?token=...)\n")

        async def handle_index(self, request: web.Request) -> web.StreamResponse:
            self.check(request)
            # textual-serve builds the page's static and websocket URLs from public_url; the
            # template renders before another request can run (no await in between).
            self.public_url = f"{request.scheme}://{request.host}"
            response = await super().handle_index(request)
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
            return response

        async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
            self.check(request)
            return await super().handle_websocket(request)

    server = ViewerServer(command, host=host, port=port, title=f"cockpit · {session}",
                          public_url=f"http://{_url_host(host)}:{port}")
    server.console = Console(stderr=True)  # textual-serve's log on stderr, with cockpit's
    return server


def _run(server: Server) -> None:
    """`Server.serve()` blocks and runs its own loop: it must not be called inside one. It
    takes `asyncio.get_event_loop()`, which raises without a current loop from Python 3.14, so
    give it a fresh one."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("cockpit serve blocks: call it outside a running event loop")
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        server.serve()
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def _loopback_name(name: str, bound: str) -> bool:
    if name in ("localhost", bound.lower()) or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


# -- until cli.py registers it -------------------------------------------------------------------

