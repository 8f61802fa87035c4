"""`cockpit serve` in a real browser: Debian's headless chromium over the DevTools protocol,
the fake Ollama as a process, a crew detached (`cockpit run CREW --detach`), `cockpit serve`
as a process on a free port whose tab attaches to it, and the SQLite log read as it is
written. Nothing is mocked; every wait is for a condition.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.browser import CHROMIUM, chromium, kill_group, poll
from tests.conftest import PATIENCE

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install "
                                                "chromium), which CI installs"),
]

FAKE_OLLAMA = Path(__file__).with_name("fake_ollama.py")
SERVE = [sys.executable, "-m", "cockpit", "serve"]
"""`cockpit serve`, until cli.py registers it (the same parser)."""

CREW = """\
name = "browser-crew"
host = "{host}"
model = "m1"

[[agents]]
name = "scout"
task = "Talk for a long time."

[[agents]]
name = "scribe"
task = "Talk for a long time too."
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def started(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process in its own process group, stdout and stderr to `log`, the whole group
    killed on the way out (serve's app children, spawned through a shell, go with it)."""
    with log.open("wb") as output:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output,
                                   stderr=output, start_new_session=True)
        try:
            yield process
        finally:
            kill_group(process)


def logged(db: Path, kind: str) -> list[tuple[str | None, dict[str, Any]]]:
    """(agent, data) of each event of type `kind` committed so far, by another process."""
    if not db.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as log:
            rows = log.execute("SELECT agent, data FROM events WHERE type = ? ORDER BY id",
                               (kind,)).fetchall()
    except sqlite3.OperationalError:  # the schema is not written yet
        return []
    return [(agent, json.loads(data)) for agent, data in rows]


def end_owners(db: Path, timeout: float = 15.0) -> None:
    """End the session owners the log names (`session_started.data.pid`) that still run on
    this log. An owner runs in a session of its own, apart from its viewers, so killing
    serve's process group does not reach it."""
    for _, data in logged(db, "session_started"):
        pid = data.get("pid")
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not isinstance(pid, int) or not _runs_on(pid, db):
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)  # a session leader: its group holds its children too
            deadline = time.monotonic() + timeout
            while _runs_on(pid, db) and time.monotonic() < deadline:
                time.sleep(0.05)


def _runs_on(pid: int, db: Path) -> bool:
    """Whether `pid` is alive (not a zombie) with `db` on its command line: a pid the log
    names may since have been reused by another process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False
    return state != "Z" and str(db).encode() in command


def tail(path: Path, size: int = 3000) -> str:
    return path.read_text(errors="replace")[-size:] if path.exists() else ""


async def test_a_browser_tab_shows_the_crew_and_a_key_pauses_an_agent(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    fake_log, serve_log = tmp_path / "fake.log", tmp_path / "serve.log"
    with contextlib.ExitStack() as stack:
        # Slow on purpose: the agents must still be streaming when the key arrives.
        stack.enter_context(started(
            [sys.executable, str(FAKE_OLLAMA), "--tokens", "100000", "--models", "m1",
             "--delay", "0.05"], fake_log))

        async def fake_up() -> bool:
            return tail(fake_log).startswith("http://")

        await poll(fake_up, PATIENCE, "the fake Ollama's URL")
        crew = tmp_path / "crew.toml"
        crew.write_text(CREW.format(host=tail(fake_log).split()[0]))

        stack.callback(end_owners, db)  # on the way out: after serve's group, before the fake
        detached = subprocess.run(
            [sys.executable, "-m", "cockpit", "run", str(crew), "--detach", "--db", str(db)],
            capture_output=True, text=True, timeout=PATIENCE)
        assert detached.returncode == 0, detached.stderr
        session = detached.stdout.split()[0]

        async def agents_started() -> bool:
            return {agent for agent, _ in logged(db, "agent_started")} == {"scout", "scribe"}

        await poll(agents_started, PATIENCE, "agent_started for both agents")

        port = free_port()
        serve = stack.enter_context(started(  # SESSION defaults to last: this one
            [*SERVE, "--port", str(port), "--db", str(db)], serve_log))
        try:
            async def linked() -> bool:
                assert serve.poll() is None, f"serve exited: {tail(serve_log)}"
                return "?token=" in tail(serve_log)

            await poll(linked, PATIENCE, "the link cockpit serve prints")
            token = tail(serve_log).split("?token=", 1)[1].split()[0].rstrip(";")
            url = f"http://127.0.0.1:{port}/?token={token}"
            async with aiohttp.ClientSession() as http:

                async def serving() -> bool:
                    assert serve.poll() is None, f"serve exited: {tail(serve_log)}"
                    with contextlib.suppress(aiohttp.ClientError):
                        async with http.get(url) as response:
                            return response.status == 200
                    return False

                await poll(serving, PATIENCE, f"cockpit serve to answer at {url}")
            assert f"at {url}" in tail(serve_log)  # the URL, printed at start

            async with chromium(tmp_path / "chromium", PATIENCE) as page:
                # (a) the page loads, and its terminal connects back where it came from
                await page.open(url)

                async def loaded() -> bool:
                    return bool(await page.evaluate("document.readyState === 'complete'"))

                await poll(loaded, PATIENCE, "the page to load")
                assert await page.evaluate(
                    "document.querySelector('#terminal').dataset.sessionWebsocketUrl"
                ) == f"ws://127.0.0.1:{port}/ws"

                # (b) the tab's viewer attaches, and the session's panes reach the page
                async def panes_shown() -> bool:
                    first_byte = await page.evaluate(
                        "document.body.classList.contains('-first-byte')")  # splash gone
                    text = await page.received()
                    return bool(first_byte) and all(
                        word in text for word in (session, "scout", "scribe", "streaming"))

                await poll(panes_shown, PATIENCE, "both panes, streaming, on the page")
                shot = await page.screenshot()
                (tmp_path / "streaming.png").write_bytes(shot)
                assert shot.startswith(b"\x89PNG")

                # (c) keys reach the app once xterm.js has focus: 1 focuses scout, p pauses it
                mark = len(await page.received())
                await page.click(250, 200)
                await page.press("1")
                await page.press("p")

                async def paused() -> bool:
                    return any(agent == "scout" and data.get("by") == "person"
                               for agent, data in logged(db, "agent_paused"))

                await poll(paused, PATIENCE, "agent_paused for scout, by the person")

                async def shows_paused() -> bool:
                    return "paused" in await page.received(mark)

                await poll(shows_paused, PATIENCE, "the pane's status word 'paused'")
                assert [agent for agent, _ in logged(db, "agent_paused")] == ["scout"]
        finally:
            print(f"--- serve (and its apps' stderr):\n{tail(serve_log)}")
