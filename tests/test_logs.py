"""`cockpit logs` as a user runs it: sessions made by real `cockpit run --headless` processes
against the fake Ollama, read in-process and by `python -m cockpit logs` subprocesses (pipes,
a pseudo-terminal), and followed while another process writes them."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cockpit.cli import main
from tests.conftest import PATIENCE
from tests.core.test_transcript import OURS, leaks
from tests.fake_ollama import FakeOllamaThread, ModelScript, Turn
from tests.test_resume import chunks_logged, start_run

Messages = list[dict[str, Any]]

CREW = """\
name = "logs-crew"
model = "m1"
approve = ["board_write"]

[[agents]]
name = "planner"
task = "Plan."

[[agents]]
name = "writer"
model = "m2"
task = "Write."
tools = ["board"]
"""

PLAN = ["Step", " one:\x1b]52;c;aGk=\x07 outline\n", "Step two", ": \u202edraft\x1b[2J\n",
        "\x07Step\x9b6n three: ", "ship"]


def draft(messages: Messages) -> Turn:
    if not any(m["role"] == "tool" for m in messages):
        return Turn(["Draft\nin pro", "gress"], [{"name": "board_write",
                                                  "arguments": {"key": "draft", "value": "d1"}}])
    return Turn.say("done")


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    """Poll a condition (no fixed sleeps); fail naming what did not happen."""
    deadline = time.monotonic() + PATIENCE
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {PATIENCE:g}s waiting for {what}")
        time.sleep(0.01)


def logs(*args: str, env: dict[str, str] | None = None,
         **popen: Any) -> subprocess.CompletedProcess[str]:
    """`cockpit logs ...` in its own process."""
    popen.setdefault("capture_output", "stdout" not in popen)
    return subprocess.run([sys.executable, "-m", "cockpit", "logs", *args], text=True,
                          timeout=PATIENCE, env={**os.environ, **(env or {})}, **popen)


@pytest.fixture(scope="module")
def ended(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished session: two agents streaming at once, one of them calling a gated tool."""
    tmp = tmp_path_factory.mktemp("logs")
    crew, db = tmp / "crew.toml", tmp / "log.db"
    crew.write_text(CREW)
    scripts = {"m1": ModelScript(tokens=PLAN, delay=0.005),
               "m2": ModelScript(turn=draft, delay=0.005)}
    with FakeOllamaThread(scripts) as fake:
        run = subprocess.run([sys.executable, "-m", "cockpit", "run", str(crew), "--headless",
                              "--approve", "all", "--db", str(db)], capture_output=True,
                             text=True, timeout=PATIENCE,
                             env={**os.environ, "OLLAMA_HOST": fake.url})
    assert run.returncode == 0, run.stderr
    return db


def test_logs_prints_each_agent_in_whole_lines_with_marked_events(
        ended: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", "last", "--db", str(ended)]) == 0
    out, err = capsys.readouterr()
    assert err == "" and leaks(out) == []
    lines = out.splitlines()
    planner = [line for line in lines if line.startswith("planner |")]
    assert re.fullmatch(r"planner \| ── started on m1 @ http://127\.0\.0\.1:\d+", planner[0])
    assert planner[1:] == [
        "planner | Step one: outline",
        "planner | Step two: draft",
        "planner | Step three: ship",
        "planner | ── finished",
    ]
    writer = [re.sub(r"\d+ ms", "N ms", line) for line in lines if line.startswith("writer  |")]
    assert writer[1:] == [
        "writer  | Draft",
        "writer  | in progress",
        'writer  | ── asks approval: board_write key="draft" value="d1"',
        "writer  | ── approved by policy (writer.1.1)",
        'writer  | ── ⚙ board_write key="draft" value="d1"',
        "writer  | ── ⚙ board_write ✓ N ms",
        "writer  | done",
        "writer  | ── finished",
    ]
    assert lines[0] == "        | ── session started: crew 'logs-crew'"
    assert lines[-1] == "        | ── session finished"


def test_by_message_prints_whole_replies_and_replay_headless_prints_the_same(
        ended: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", "last", "--by", "message", "--db", str(ended)]) == 0
    blocks = capsys.readouterr().out.splitlines()
    planner = blocks.index("planner | ── reply")
    assert blocks[planner:planner + 5] == [
        "planner | ── reply", "Step one: outline", "Step two: draft", "Step three: ship",
        "planner | ── finished"]
    writer = blocks.index("writer  | ── reply")
    assert blocks[writer:writer + 4] == [
        "writer  | ── reply", "Draft", "in progress",
        'writer  | ── asks approval: board_write key="draft" value="d1"']
    assert blocks.count("writer  | ── reply") == 2  # the turn after the tool call: a new one
    assert blocks[-1] == "        | ── session finished"

    for by in (["--by", "message"], []):
        assert main(["logs", "last", *by, "--db", str(ended)]) == 0
        logged = capsys.readouterr().out
        assert main(["replay", "last", "--headless", *by, "--db", str(ended)]) == 0
        assert capsys.readouterr().out == logged
    assert main(["replay", "last", "--by", "message", "--db", str(ended)]) == 2
    assert "--by goes with --headless" in capsys.readouterr().err


def test_agent_keeps_only_those_agents_and_an_unknown_one_is_exit_2(
        ended: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", "last", "--agent", "writer", "--db", str(ended)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line.startswith("writer | ") for line in lines)
    assert "writer | in progress" in lines

    assert main(["logs", "last", "--agent", "planner", "--agent", "writer",
                 "--db", str(ended)]) == 0
    both = capsys.readouterr().out.splitlines()
    assert {line.split(" |")[0] for line in both} == {"planner", "writer "}

    assert main(["logs", "last", "--agent", "editor", "--db", str(ended)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("cockpit: session ") and "no agent 'editor'" in err
    assert "(its agents: planner, writer)" in err


def test_a_bad_session_or_log_is_exit_2(ended: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", "nope", "--db", str(ended)]) == 2
    assert capsys.readouterr().err == f"cockpit: {ended}: no session 'nope'\n"
    assert main(["logs", "last", "--db", str(tmp_path / "absent.db")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cockpit: ") and "Traceback" not in err


def test_no_colour_in_a_pipe_colour_on_a_terminal_unless_no_color(ended: Path) -> None:
    piped = logs("last", "--db", str(ended))
    assert piped.returncode == 0, piped.stderr
    assert "\x1b" not in piped.stdout and "planner | Step two: draft" in piped.stdout

    def on_a_terminal(env: dict[str, str]) -> str:
        master, slave = pty.openpty()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "cockpit", "logs", "last", "--db", str(ended)],
                stdout=slave, stderr=subprocess.PIPE, env=env)
        finally:
            os.close(slave)
        output = bytearray()
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal, it has all been read
                break
            if not chunk:
                break
            output += chunk
        os.close(master)
        assert process.wait(PATIENCE) == 0
        return output.decode().replace("\r\n", "\n")

    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    coloured = on_a_terminal(env)
    assert "\x1b[" in coloured and leaks(OURS.sub("", coloured)) == []
    assert OURS.sub("", coloured).splitlines() == piped.stdout.splitlines()
    assert "\x1b" not in on_a_terminal({**env, "NO_COLOR": "1"})


def test_follow_on_an_ended_session_prints_it_all_and_exits(ended: Path) -> None:
    plain = logs("last", "--db", str(ended))
    followed = logs("last", "-f", "--db", str(ended))
    assert followed.returncode == 0 and followed.stderr == ""
    assert followed.stdout == plain.stdout


def test_a_closed_pipe_exits_0_quietly(ended: Path) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line: every write is EPIPE
    try:
        closed = logs("last", "--db", str(ended), stdout=write, stderr=subprocess.PIPE)
    finally:
        os.close(write)
    assert closed.returncode == 0 and closed.stderr == ""


# -- following a session another process is writing -------------------------------------------

HELD = """\
name = "held"
model = "m1"
stall_timeout = 600

[[agents]]
name = "a"
task = "Talk."
"""
HOLDING = ["alpha ", "one\nbe", "ta\n", "ha", "lf", "never sent"]
"""The reply holds after five tokens ("half" a line) until the client goes away."""


class Follower:
    """`cockpit logs -f` in its own process; its stdout lines as they come."""

    def __init__(self, db: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cockpit", "logs", "last", "-f", "--db", str(db)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, line: str) -> None:
        wait_for(lambda: line in self.lines or self.process.poll() is not None,
                 f"{line!r} from logs -f")
        assert line in self.lines, (self.lines, self.process.poll())

    def finish(self) -> tuple[int, str]:
        code = self.process.wait(PATIENCE)
        self._reader.join(PATIENCE)
        assert self.process.stderr is not None
        return code, self.process.stderr.read()


def held_run(tmp_path: Path, fake: FakeOllamaThread) -> tuple[subprocess.Popen[str], Path]:
    """A headless run whose only reply is held mid-line, once that much is in the log."""
    crew, db = tmp_path / "crew.toml", tmp_path / "log.db"
    crew.write_text(HELD)
    run = start_run(crew, db, fake.url)
    wait_for(lambda: chunks_logged(db) >= 5, "five chunks in the log")
    return run, db


def test_follow_prints_what_is_logged_after_it_started_and_ctrl_c_is_130(
        tmp_path: Path) -> None:
    with FakeOllamaThread({"m1": ModelScript(tokens=HOLDING, stall_after=5)}) as fake:
        run, db = held_run(tmp_path, fake)
        follower, quitter = Follower(db), Follower(db)
        for each in (follower, quitter):
            each.wait_line("a | beta")  # what was logged before: printed, and still running
        assert "a | half" not in follower.lines  # a partial line waits for its end

        quitter.process.send_signal(signal.SIGINT)
        assert quitter.finish() == (130, "")

        run.send_signal(signal.SIGINT)  # the session ends now: after logs -f started
        assert run.wait(PATIENCE) == 130
        code, err = follower.finish()
    assert (code, err) == (0, "")
    assert follower.lines[-3:] == ["a | beta", "a | half", "  | ── session interrupted"]
    ended = [json.loads(line) for line in subprocess.run(
        [sys.executable, "-m", "cockpit", "export", "last", "--db", str(db)],
        capture_output=True, text=True, timeout=PATIENCE).stdout.splitlines()]
    assert ended[-1]["type"] == "session_finished"


def test_follow_notices_a_crash_and_says_how_to_resume(tmp_path: Path) -> None:
    with FakeOllamaThread({"m1": ModelScript(tokens=HOLDING, stall_after=5)}) as fake:
        run, db = held_run(tmp_path, fake)
        follower = Follower(db)
        follower.wait_line("a | beta")
        run.send_signal(signal.SIGKILL)
        run.wait(PATIENCE)
        code, err = follower.finish()
    assert code == 0
    assert follower.lines[-2:] == ["a | beta", "a | half"]  # the partial, at the end
    session = err.split("session ")[1].split(" ")[0]
    assert err == (f"cockpit: session {session} is not running (its process {run.pid} is "
                   f"gone) and did not end; `cockpit resume {session}` continues it\n")
    again = logs("last", "-f", "--db", str(db))  # crashed before it was followed: the same
    assert again.returncode == 0 and again.stderr == err
    assert again.stdout.splitlines() == follower.lines
