"""Agents that act, from the command line: a real `cockpit run --headless` process killed with
SIGKILL while an approval waits, or while a tool runs, then resumed; the headless approval
policies; MCP servers in `cockpit check` and a server that cannot start."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

from tests.conftest import PATIENCE
from tests.fake_ollama import FakeOllamaThread, ModelScript, Turn
from tests.test_cli import cockpit
from tests.test_resume import rows, start_run

SERVER = Path(__file__).parent / "mcp_server.py"
Messages = list[dict[str, Any]]


def writes(messages: Messages) -> Turn:
    done = [m["content"] for m in messages if m["role"] == "tool"]
    return Turn.say(f"result: {done[-1]}") if done else Turn.call(
        "board_write", key="plan", value="v1")


def types(db: Path) -> list[str]:
    try:
        return [r[1] for r in rows(db)]
    except Exception:  # not created yet
        return []


GATED = """\
name = "gated"
model = "m1"
approve = ["board_write"]

[[agents]]
name = "w"
task = "Write the plan."
tools = ["board"]
"""


def test_sigkill_while_an_approval_waits_then_resume_brings_it_back(tmp_path: Path) -> None:
    crew = tmp_path / "crew.toml"
    crew.write_text(GATED)
    db = tmp_path / "log.db"
    with FakeOllamaThread({"m1": ModelScript(turn=writes)}) as fake:
        run = start_run(crew, db, fake.url)
        fake.wait_until(lambda: "approval_requested" in types(db), PATIENCE, "the approval")
        run.send_signal(signal.SIGKILL)
        run.wait(PATIENCE)
        before = rows(db)
        assert not any(r[1] in ("approval_decided", "tool_called") for r in before)

        resumed = cockpit("resume", "last", "--headless", "--approve", "all", "--db", str(db),
                          env={"OLLAMA_HOST": fake.url})
        assert resumed.returncode == 0, resumed.stderr
        after = rows(db)
    assert after[: len(before)] == before
    kinds = [r[1] for r in after]
    assert kinds.count("approval_requested") == 1  # asked once: it came back from the log
    decided = [json.loads(r[3]) for r in after if r[1] == "approval_decided"]
    assert [(d["call_id"], d["decision"], d["by"]) for d in decided] == [
        ("w.1.1", "approved", "policy")]
    assert kinds.count("tool_called") == 1 and kinds.count("agent_finished") == 1
    assert len(fake.chat_requests("m1")) == 2  # the turn was not asked for again
    written = [json.loads(r[3]) for r in after if r[1] == "state_set"]
    assert {"key": "plan", "value": "v1", "by": "w", "tool": "board_write"} in written


SLOW = f"""\
name = "slow"
model = "m1"

[[mcp]]
name = "t"
command = {json.dumps(sys.executable)}
args = [{json.dumps(str(SERVER))}]

[[agents]]
name = "s"
task = "Wait."
tools = ["t.slow"]
"""


def test_sigkill_between_tool_called_and_tool_result_does_not_run_it_twice(
        tmp_path: Path) -> None:
    def slow(messages: Messages) -> Turn:
        done = [m["content"] for m in messages if m["role"] == "tool"]
        return Turn.say(f"after: {done[-1]}") if done else Turn.call("t.slow", seconds=300)

    crew = tmp_path / "crew.toml"
    crew.write_text(SLOW)
    db = tmp_path / "log.db"
    with FakeOllamaThread({"m1": ModelScript(turn=slow)}) as fake:
        run = start_run(crew, db, fake.url)
        fake.wait_until(lambda: "tool_called" in types(db), PATIENCE, "the call to start")
        run.send_signal(signal.SIGKILL)
        run.wait(PATIENCE)
        resumed = cockpit("resume", "last", "--headless", "--db", str(db),
                          env={"OLLAMA_HOST": fake.url})
        assert resumed.returncode == 0, resumed.stderr
        after = rows(db)
    kinds = [r[1] for r in after]
    assert kinds.count("tool_called") == 1  # not run again: t.slow is not repeatable
    result = next(json.loads(r[3]) for r in after if r[1] == "tool_result")
    assert result["error"] and "interrupted before it returned" in result["content"]
    assert "not retried" in result["content"]
    finished = next(json.loads(r[3]) for r in after if r[1] == "agent_finished")
    assert finished["output"].startswith("after: the call was interrupted")


def test_headless_approve_none_denies_and_prints_the_call(tmp_path: Path) -> None:
    crew = tmp_path / "crew.toml"
    crew.write_text(GATED)
    db = tmp_path / "log.db"
    with FakeOllamaThread({"m1": ModelScript(turn=writes)}) as fake:
        done = cockpit("run", str(crew), "--headless", "--approve", "none", "--db", str(db),
                       env={"OLLAMA_HOST": fake.url})
    assert done.returncode == 0, done.stderr
    assert 'approval  w.1.1 waits: board_write key="plan" value="v1"' in done.stderr
    assert "denied by policy (w.1.1): this run approves no calls (--approve none)" in done.stderr
    assert "⚙ board_write ✗" in done.stderr


def test_check_lists_each_mcp_servers_tools_and_a_broken_server_exits_2(
        tmp_path: Path) -> None:
    crew = tmp_path / "crew.toml"
    crew.write_text(SLOW)
    checked = cockpit("check", str(crew))
    assert checked.returncode == 0, checked.stderr
    assert "mcp t:" in checked.stdout and "t.add" in checked.stdout
    assert "t.slow  (used by s)" in checked.stdout
    broken = tmp_path / "broken.toml"
    broken.write_text(SLOW.replace(json.dumps(sys.executable), '"no-such-command-xyz"'))
    db = tmp_path / "log.db"
    run = cockpit("run", str(broken), "--headless", "--db", str(db))
    assert run.returncode == 2
    assert "mcp server 't'" in run.stderr and "no-such-command-xyz" in run.stderr
    assert "Traceback" not in run.stderr
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(SLOW.replace('"t.slow"', '"t.nope"'))
    for args in (("check", str(unknown)), ("run", str(unknown), "--headless", "--db", str(db))):
        done = cockpit(*args)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "mcp server 't' has no tool 'nope'" in done.stderr


def test_status_shows_a_running_session_and_the_call_it_waits_on(tmp_path: Path) -> None:
    crew = tmp_path / "crew.toml"
    crew.write_text(GATED)
    db = tmp_path / "log.db"
    with FakeOllamaThread({"m1": ModelScript(turn=writes)}) as fake:
        run = start_run(crew, db, fake.url)
        try:
            fake.wait_until(lambda: "approval_requested" in types(db), PATIENCE, "the approval")
            shown = cockpit("status", "--json", "--db", str(db))
            text = cockpit("status", "last", "--db", str(db))
        finally:
            run.send_signal(signal.SIGTERM)
            run.wait(PATIENCE)
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["outcome"] == "running" and record["pid"] == run.pid
    [agent] = record["agents"]
    assert agent["status"] == "awaiting approval"
    assert [c["call_id"] for c in agent["awaiting_approval"]] == ["w.1.1"]
    assert agent["awaiting_approval"][0]["arguments"] == {"key": "plan", "value": "v1"}
    assert text.returncode == 0 and "w: w.1.1 waits for approval" in text.stdout
    assert "awaiting approval" in text.stdout.splitlines()[2]
