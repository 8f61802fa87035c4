"""`cockpit serve` without a browser: where it listens, what it refuses, and the page it
serves. Real processes and real HTTP on loopback; no viewer is started (none connects)."""

from __future__ import annotations

import argparse
import contextlib
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cockpit.serve import DEFAULT_HOST, add_parser, viewer_command
from tests.conftest import PATIENCE

SERVE = [sys.executable, "-m", "cockpit", "serve"]
"""`cockpit serve`, until cli.py registers it (the same parser)."""


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A log to serve: serve only checks that it exists, and no tab opens to read it."""
    path = tmp_path / "log.db"
    path.touch()
    return path


def serve(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SERVE, "--db", str(db), *args], capture_output=True, text=True,
                          timeout=PATIENCE)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(db: Path, *args: str) -> Iterator[tuple[int, subprocess.Popen[str], str, str]]:
    """A running `cockpit serve ARGS` on a free port, answering on 127.0.0.1, the token of
    the link it printed, and what it printed up to the link; SIGTERM ends it with exit 0."""
    port = free_port()
    process = subprocess.Popen([*SERVE, "--db", str(db), *args, "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        printed = ""
        while "?token=" not in printed:  # the link comes first, before it serves
            line = process.stderr.readline()
            assert line, f"serve printed no link: {printed}"
            printed += line
        token = printed.split("?token=", 1)[1].split()[0].rstrip(";")
        deadline = time.monotonic() + PATIENCE
        while True:
            assert process.poll() is None, process.communicate()[1]
            with contextlib.suppress(OSError):
                get(port, f"/?token={token}")
                break
            assert time.monotonic() < deadline, "cockpit serve did not answer"
            time.sleep(0.05)
        yield port, process, token, printed
        process.terminate()
        assert process.wait(timeout=PATIENCE) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def get(port: int, path: str, **headers: str) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    with urllib.request.urlopen(request, timeout=PATIENCE) as response:
        return str(response.read().decode())


def forbidden(port: int, path: str, **headers: str) -> bool:
    try:
        get(port, path, **headers)
    except urllib.error.HTTPError as error:
        return error.code == 403
    return False


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7"])
def test_a_non_loopback_host_is_refused_without_public(db: Path, host: str) -> None:
    done = serve(db, "--host", host)
    assert done.returncode == 2
    assert f"refusing to serve on {host}" in done.stderr
    assert "anyone who reaches it can command the agents" in done.stderr
    assert "--public" in done.stderr and "Traceback" not in done.stderr


def test_by_default_it_listens_on_loopback_and_answers_only_its_own_pages(db: Path) -> None:
    def add_db(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--db", type=Path)

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"), add_db)
    args = parser.parse_args(["serve"])
    assert (args.host, args.port, args.session, args.public) == (DEFAULT_HOST, 8000, "last",
                                                                 False)
    assert DEFAULT_HOST == "127.0.0.1"

    with serving(db) as (port, process, token, _):
        page = get(port, f"/?token={token}")
        # another user of this machine reaches the port too: no link, no page, no viewer
        assert forbidden(port, "/")
        assert forbidden(port, "/?token=guess")
        assert forbidden(port, "/ws", Connection="Upgrade", Upgrade="websocket",
                         **{"Sec-WebSocket-Version": "13",
                            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        assert f'data-session-websocket-url="ws://127.0.0.1:{port}/ws"' in page
        # DNS rebinding: a foreign name that resolves to 127.0.0.1 gets nothing
        assert forbidden(port, f"/?token={token}", Host=f"evil.example:{port}")
        # any site may open a websocket to 127.0.0.1: one from another origin is refused
        assert forbidden(port, "/ws", Origin="http://evil.example", Connection="Upgrade",
                         Upgrade="websocket", **{"Sec-WebSocket-Version": "13",
                                                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert process.stderr is not None
    assert "Traceback" not in process.stderr.read()


def test_public_serves_with_a_warning_and_pages_connect_back_where_they_came_from(
        db: Path) -> None:
    with serving(db, "--host", "0.0.0.0", "--public") as (port, process, token, printed):
        # textual-serve would give ws://0.0.0.0:PORT/ws (REFERENCE-2 I.1); the page must use
        # the address the browser used, whichever it was
        assert f'"ws://127.0.0.1:{port}/ws"' in get(port, f"/?token={token}")
        assert f'"ws://192.0.2.7:{port}/ws"' in get(port, f"/?token={token}",
                                                    Host=f"192.0.2.7:{port}")
    assert process.stderr is not None
    assert "WARNING" in printed + process.stderr.read()


def test_port_zero_and_a_port_in_use_are_usage_errors(db: Path) -> None:
    zero = serve(db, "--port", "0")
    assert zero.returncode == 2 and "--port 0" in zero.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = serve(db, "--port", str(port))
    assert busy.returncode == 2, busy.stderr
    assert f"port {port} on 127.0.0.1 is in use" in busy.stderr
    assert "Traceback" not in zero.stderr + busy.stderr


def test_a_missing_log_and_an_unknown_theme_are_usage_errors(db: Path) -> None:
    missing = serve(db.with_name("none.db"))
    assert missing.returncode == 2 and "no event log at" in missing.stderr
    theme = serve(db, "--theme", "no-such-theme")
    assert theme.returncode == 2 and "no theme named 'no-such-theme'" in theme.stderr


def test_each_tab_runs_attach_quoted_for_the_shell() -> None:
    db = Path("/tmp/my logs/it's.db")
    assert shlex.split(viewer_command("last", db, None)) == [
        sys.executable, "-m", "cockpit", "attach", "last", "--db", str(db)]
    assert shlex.split(viewer_command("2026 x", db, "nord")) == [
        sys.executable, "-m", "cockpit", "attach", "2026 x", "--db", str(db), "--theme", "nord"]
    assert shlex.split(viewer_command("last", db, None, ["replay", "last"])) == [
        sys.executable, "-m", "cockpit", "replay", "last"]
