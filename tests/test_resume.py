"""Resume after a crash: a real `cockpit run` process is killed with SIGKILL mid-stream, then
`cockpit resume` finishes the same session from its log. The log is a real SQLite file, read
here with plain sqlite3 (as any tool could)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import PATIENCE
from tests.fake_ollama import FakeOllamaThread, ModelScript
from tests.test_cli import cockpit

WORDS = [f"w{i} " for i in range(120)]
FULL = "".join(WORDS)
CREW = """\
name = "crash"
model = "m1"
retries = 1
retry_backoff = 0.01

[[agents]]
name = "a"
task = "one"

[[agents]]
name = "b"
task = "two"

[[agents]]
name = "c"
after = ["a", "b"]
task = "three: {{outputs.a}}"
"""


def rows(db: Path) -> list[tuple[int, str, str | None, str]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        return connection.execute("SELECT id, type, agent, data FROM events ORDER BY id").fetchall()


def chunks_logged(db: Path) -> int:
    """Model chunks in the log so far. Counted by chunk, not by event: the runner merges the
    chunks of one frame into one event, and how many merge depends on the machine's speed."""
    if not db.exists():
        return 0
    try:
        return sum(json.loads(row[3]).get("chunks", 1) for row in rows(db) if row[1] == "token")
    except sqlite3.OperationalError:  # the schema is not written yet
        return 0


def start_run(crew: Path, db: Path, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "cockpit", "run", str(crew), "--headless",
                             "--db", str(db)], env={**os.environ, "OLLAMA_HOST": url},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_mid_stream_then_resume_finishes_every_agent_once(tmp_path: Path) -> None:
    crew = tmp_path / "crew.toml"
    crew.write_text(CREW)
    db = tmp_path / "log.db"
    # a's and b's first replies hold after 40 tokens until the kill, so the kill is certainly
    # mid-stream: streaming freely, a busy test process could look up only after the end.
    script = ModelScript(tokens=WORDS, delay=0.01, stall_after=40, faults_for=2)
    with FakeOllamaThread({"m1": script}) as fake:
        run = start_run(crew, db, fake.url)
        fake.wait_until(lambda: chunks_logged(db) >= 6, PATIENCE, "tokens in the log")
        run.send_signal(signal.SIGKILL)
        run.wait(PATIENCE)
        before = rows(db)
        assert not any(r[1] == "session_finished" for r in before)
        sessions = json.loads(cockpit("sessions", "--json", "--db", str(db)).stdout)
        assert sessions[0]["outcome"] == "crashed" and sessions[0]["resumable"] is True

        resumed = cockpit("resume", "last", "--headless", "--db", str(db),
                          env={"OLLAMA_HOST": fake.url})
        assert resumed.returncode == 0, resumed.stderr
        assert "resuming session" in resumed.stderr

        after = rows(db)
        # Every event committed before the kill is still there, unchanged, in front.
        assert after[: len(before)] == before
        ids = [r[0] for r in after]
        assert ids == sorted(set(ids))
        finished = [r[2] for r in after if r[1] == "agent_finished"]
        assert sorted(finished) == ["a", "b", "c"]  # each exactly once
        for name in "abc":
            text = "".join(json.loads(r[3])["text"] for r in after
                           if r[1] == "token" and r[2] == name)
            output = next(json.loads(r[3])["output"] for r in after
                          if r[1] == "agent_finished" and r[2] == name)
            assert output == text == FULL  # continued, neither regenerated nor duplicated
        # The continued requests ended with the logged partial as the assistant message.
        continued = [r.body for r in fake.chat_requests()
                     if r.body and r.body["messages"][-1]["role"] == "assistant"]
        assert continued and all(FULL.startswith(b["messages"][-1]["content"]) for b in continued)
        types = [r[1] for r in after]
        assert types.count("session_resumed") == 1 and types[-1] == "session_finished"
        assert json.loads(after[-1][3])["outcome"] == "finished"

    again = cockpit("resume", "last", "--headless", "--db", str(db))
    assert again.returncode == 2 and "already ended (finished)" in again.stderr


def test_a_session_still_running_elsewhere_is_refused(tmp_path: Path) -> None:
    crew = tmp_path / "crew.toml"
    crew.write_text(CREW)
    db = tmp_path / "log.db"
    with FakeOllamaThread({"m1": ModelScript(tokens=WORDS, stall_after=3)}) as fake:
        run = start_run(crew, db, fake.url)
        try:
            fake.wait_until(lambda: chunks_logged(db) >= 2, PATIENCE, "the run to stream")
            refused = cockpit("resume", "last", "--headless", "--db", str(db))
            assert refused.returncode == 2
            assert f"still running in process {run.pid}" in refused.stderr
            assert "Traceback" not in refused.stderr
        finally:
            run.send_signal(signal.SIGTERM)
            assert run.wait(PATIENCE) == 130  # interrupted: logged as such, and resumable
    sessions = json.loads(cockpit("sessions", "--json", "--db", str(db)).stdout)
    assert sessions[0]["outcome"] == "interrupted" and sessions[0]["resumable"] is True


def test_sighup_to_a_headless_run_interrupts_it_with_129(tmp_path: Path) -> None:
    crew = tmp_path / "crew.toml"
    crew.write_text(CREW)
    db = tmp_path / "log.db"
    with FakeOllamaThread({"m1": ModelScript(tokens=WORDS, stall_after=3)}) as fake:
        run = start_run(crew, db, fake.url)
        try:
            fake.wait_until(lambda: chunks_logged(db) >= 2, 120, "the run to stream")
            run.send_signal(signal.SIGHUP)  # its terminal closed
            assert run.wait(120) == 129
        finally:
            run.kill()
            run.wait()
    sessions = json.loads(cockpit("sessions", "--json", "--db", str(db)).stdout)
    assert sessions[0]["outcome"] == "interrupted" and sessions[0]["resumable"] is True
