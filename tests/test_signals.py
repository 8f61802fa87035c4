"""Signals and keys that end the TUI, as a user meets them: `cockpit run` in a real
pseudo-terminal, the fake Ollama over loopback, and the SQLite log read afterwards.

`cockpit run` starts the session's owner process and attaches the TUI to it. SIGTERM and SIGINT
to that TUI stop the crew: the session ends `interrupted` (resumable) with exit 130. SIGHUP, or
closing the terminal (a real hang-up, with nothing left to draw on), only detaches it (exit
129): the crew goes on, and SIGTERM to the owner interrupts it later. Either way the terminal is
handed back as it was: alternate screen left, mouse reporting off, cursor shown. Ctrl-C is a
key in the TUI's raw mode, not a signal: it does what `q` does (or copies, when text is
selected).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input

from cockpit.ui.app import make_app
from cockpit.ui.screens.help import HelpScreen
from cockpit.ui.screens.modals import ConfirmModal, InputModal
from tests.conftest import make_crew
from tests.fake_ollama import FakeOllama, FakeOllamaThread, ModelScript, wait_until

pytestmark = pytest.mark.slow

TIMEOUT = 60.0
"""Generous: two cores, possibly loaded, and a Python + Textual start-up in each test."""

CREW = """\
name = "signal-crew"
host = "{host}"
model = "m1"

[[agents]]
name = "talker"
task = "Talk for a long time."
"""

MODES = {"1049": "alternate screen", "1000": "mouse reporting", "1003": "mouse motion reporting",
         "1006": "SGR mouse reporting", "25": "hidden cursor (reset = shown)"}
"""DEC private modes the TUI sets (`CSI ? n h`) and must reset (`CSI ? n l`) on the way out;
for the cursor, `l` hides it and `h` shows it again."""


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Poll a condition (no fixed sleeps); fail naming what did not happen."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


class Terminal:
    """A child process whose controlling terminal is a pty, as in a terminal emulator;
    everything it writes is kept, and closing our side is a real hang-up."""

    LEADER = ("import fcntl, os, sys, termios; os.setsid(); "
              "fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
              "os.execv(sys.executable, [sys.executable, '-m', 'cockpit', *sys.argv[1:]])")
    """Make the pty the controlling terminal, then become `cockpit` (same pid). Done in the
    child rather than with preexec_fn, which is unsafe in a process with threads."""

    def __init__(self, args: list[str], cwd: Path, size: tuple[int, int] = (40, 120),
                 env: dict[str, str] | None = None) -> None:
        master, slave = pty.openpty()
        rows, cols = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        extra = env or {}
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("TEXTUAL")}  # e.g. TEXTUAL_ALLOW_SIGNALS would change ^C
        env.update(TERM="xterm-256color", COLUMNS=str(cols), LINES=str(rows), **extra)
        self.master: int | None = master
        self.output = bytearray()
        self._lock = threading.Lock()
        self._stop_read, self._stop_write = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", self.LEADER, *args], stdin=slave, stdout=slave,
                stderr=slave, cwd=cwd, env=env, close_fds=True)
        finally:
            os.close(slave)
        self._reader = threading.Thread(target=self._read, args=(master,), name="pty reader",
                                        daemon=True)
        self._reader.start()

    def _read(self, master: int) -> None:
        while True:
            ready, _, _ = select.select([master, self._stop_read], [], [])
            if self._stop_read in ready:
                return
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every copy of the slave is closed, the child is gone
                return
            if not chunk:
                return
            with self._lock:
                self.output += chunk

    def snapshot(self) -> bytes:
        with self._lock:
            return bytes(self.output)

    def write(self, data: bytes) -> None:
        assert self.master is not None
        os.write(self.master, data)

    def wait_for_text(self, text: str, since: int = 0) -> None:
        wanted = text.encode()
        wait_for(lambda: wanted in self.snapshot()[since:], f"{text!r} on the screen")

    def hang_up(self) -> None:
        """Close the terminal, as when its window is closed: the kernel sends SIGHUP."""
        self._stop_reader()
        if self.master is not None:
            os.close(self.master)
            self.master = None

    def wait_exit(self) -> int:
        """The exit code, once the child has ended and its last bytes have been read."""
        try:
            code = self.process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the TUI did not exit; last output: "
                                 f"{self.snapshot()[-2000:]!r}") from None
        self._reader.join(timeout=TIMEOUT)
        return code

    def _stop_reader(self) -> None:
        os.write(self._stop_write, b"x")
        self._reader.join(timeout=TIMEOUT)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=TIMEOUT)
        self._stop_reader()
        if self.master is not None:
            os.close(self.master)
            self.master = None
        os.close(self._stop_read)
        os.close(self._stop_write)


@contextlib.contextmanager
def tui(tmp_path: Path) -> Iterator[tuple[Terminal, Path]]:
    """`cockpit run crew.toml` in a pty against a fake Ollama that streams for minutes; the
    owner process it starts is killed afterwards, whatever happened."""
    tokens = [f"tok{i} " for i in range(100_000)]
    with FakeOllamaThread({"m1": ModelScript(tokens=tokens, delay=0.01)}) as fake:
        crew = tmp_path / "crew.toml"
        crew.write_text(CREW.format(host=fake.url))
        db = tmp_path / "log.db"
        terminal = Terminal(["run", str(crew), "--db", str(db)], cwd=tmp_path,
                            env={"COCKPIT_RUNTIME_DIR": str(tmp_path / "run")})
        try:
            yield terminal, db
        finally:
            terminal.close()
            for (pid,) in query(db, "SELECT pid FROM sessions"):
                with contextlib.suppress(ProcessLookupError, TypeError):
                    os.kill(int(str(pid)), signal.SIGKILL)


def owner_pid(db: Path) -> int:
    [(pid,)] = query(db, "SELECT pid FROM sessions")
    return int(str(pid))


def query(db: Path, sql: str) -> list[tuple[object, ...]]:
    """Read the log as another process would: read-only, never in the writer's way."""
    if not db.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True,
                                                timeout=TIMEOUT)) as connection:
            return connection.execute(sql).fetchall()
    except sqlite3.OperationalError:  # the tables are not created yet
        return []


def wait_streaming(terminal: Terminal, db: Path) -> None:
    """The owner streams into the log, and the TUI attached to it shows the pane (so its
    signal handlers are in place)."""
    def streaming() -> bool:
        assert terminal.process.poll() is None, terminal.snapshot()[-2000:]
        return bool(query(db, "SELECT 1 FROM events WHERE type = 'token' LIMIT 1"))

    wait_for(streaming, "the agent to stream tokens into the log")
    terminal.wait_for_text("streaming")


def tokens_logged(db: Path) -> int:
    return int(str(query(db, "SELECT count(*) FROM events WHERE type = 'token'")[0][0]))


def assert_goes_on(db: Path) -> None:
    """The crew outlived its viewer: still running, still streaming; then SIGTERM to the
    owner interrupts it, flushed and resumable."""
    pid = owner_pid(db)
    before = tokens_logged(db)
    wait_for(lambda: tokens_logged(db) > before, "the crew to stream on without its viewer")
    assert query(db, "SELECT outcome FROM sessions") == [(None,)]
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: query(db, "SELECT outcome FROM sessions") == [("interrupted",)],
             "the owner to interrupt the session on SIGTERM")


def assert_interrupted(db: Path) -> None:
    [(session, outcome)] = query(db, "SELECT id, outcome FROM sessions")
    assert outcome == "interrupted"
    [(kind, data)] = query(db, "SELECT type, data FROM events ORDER BY seq DESC LIMIT 1")
    assert kind == "session_finished", (session, kind)
    assert json.loads(str(data))["outcome"] == "interrupted"


def assert_terminal_restored(output: bytes) -> None:
    """Each mode the TUI turned on was turned off again after the last time it was turned
    on, and no traceback was printed."""
    for mode, what in MODES.items():
        on, off = f"\x1b[?{mode}h".encode(), f"\x1b[?{mode}l".encode()
        if mode == "25":
            on, off = off, on
        assert on in output, (what, output[-2000:])
        assert output.rfind(off) > output.rindex(on), (f"{what} left on", output[-2000:])
    assert b"Traceback" not in output


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_run_viewer_stops_the_crew_and_restores_the_terminal(
        tmp_path: Path, signum: signal.Signals) -> None:
    with tui(tmp_path) as (terminal, db):
        wait_streaming(terminal, db)
        terminal.process.send_signal(signum)
        assert terminal.wait_exit() == 130
        output = terminal.snapshot()
    assert_interrupted(db)
    assert_terminal_restored(output)


def test_sighup_detaches_the_viewer_and_the_crew_goes_on(tmp_path: Path) -> None:
    with tui(tmp_path) as (terminal, db):
        wait_streaming(terminal, db)
        terminal.process.send_signal(signal.SIGHUP)
        assert terminal.wait_exit() == 129
        output = terminal.snapshot()
        assert_terminal_restored(output)
        assert_goes_on(db)
    assert_interrupted(db)


def test_closing_the_terminal_detaches_and_the_crew_goes_on(tmp_path: Path) -> None:
    """A real hang-up: nothing can be drawn any more; the viewer leaves, the crew does not."""
    with tui(tmp_path) as (terminal, db):
        wait_streaming(terminal, db)
        terminal.hang_up()
        assert terminal.wait_exit() == 129
        assert_goes_on(db)
    assert_interrupted(db)


def test_ctrl_c_asks_like_q_and_y_stops_the_crew(tmp_path: Path) -> None:
    with tui(tmp_path) as (terminal, db):
        wait_streaming(terminal, db)
        mark = len(terminal.snapshot())
        terminal.write(b"\x03")
        terminal.wait_for_text("still running", since=mark)
        assert terminal.process.poll() is None  # asked, did not quit
        terminal.write(b"y")
        assert terminal.wait_exit() == 130
        output = terminal.snapshot()
    assert_interrupted(db)
    assert_terminal_restored(output)


def test_replay_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    crew, db = tmp_path / "crew.toml", tmp_path / "log.db"
    with FakeOllamaThread({"m1": ModelScript(tokens=["Hello", " there"])}) as fake:
        crew.write_text(CREW.format(host=fake.url))
        run = subprocess.run([sys.executable, "-m", "cockpit", "run", str(crew), "--headless",
                              "--db", str(db)], capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 0, run.stderr
    terminal = Terminal(["replay", "last", "--db", str(db)], cwd=tmp_path)
    try:
        terminal.wait_for_text("■ end")
        terminal.process.send_signal(signal.SIGTERM)
        assert terminal.wait_exit() == 130
        output = terminal.snapshot()
    finally:
        terminal.close()
    assert_terminal_restored(output)
    assert query(db, "SELECT outcome FROM sessions") == [("finished",)]  # replay wrote nothing


def held() -> dict[str, ModelScript]:
    """Five tokens, then the stream is held open: the agent runs until the test is done."""
    return {"m1": ModelScript(tokens=[f"w{i} " for i in range(50)], stall_after=5)}


async def test_ctrl_c_copies_a_selection_else_asks_to_quit(tmp_path: Path) -> None:
    """Even in an input, which would take ctrl+c for itself."""
    async with FakeOllama(held()) as fake:
        app = make_app(make_crew(fake.url, [{"name": "a"}]), tmp_path / "log.db",
                       watch_themes=False)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(lambda: "a" in app.view.agents and app.view.agents["a"].tokens > 0,
                             what="a streaming")
            await pilot.press("r")
            await wait_until(lambda: isinstance(app.screen, InputModal)
                             and isinstance(app.focused, Input), what="redirect input")
            await pilot.press(*"hello", "shift+home", "ctrl+c")
            await wait_until(lambda: app.clipboard == "hello", what="the selection copied")
            assert isinstance(app.screen, InputModal)
            await pilot.press("end", "ctrl+c")
            await wait_until(lambda: isinstance(app.screen, ConfirmModal), what="quit question")
            await pilot.press("n")
            await wait_until(lambda: isinstance(app.screen, InputModal), what="back to input")
            assert app.screen.query_one(Input).value == "hello"


async def test_help_lists_ctrl_c(tmp_path: Path) -> None:
    """As quit; the screen's ctrl+c (copy) it overrides is not listed."""
    async with FakeOllama(held()) as fake:
        app = make_app(make_crew(fake.url, [{"name": "a"}]), tmp_path / "log.db",
                       watch_themes=False)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("question_mark")
            await wait_until(lambda: isinstance(app.screen, HelpScreen), what="help")
            await pilot.pause()
            table = app.screen.query_one(DataTable)
            rows = [[str(cell) for cell in table.get_row(key)] for key in table.rows]
            listed = [row[1] for row in rows if "ctrl+c" in row[0].split(", ")]
            assert listed == ["Quit"]
