"""Commands from a shell against a session another process owns (issue 11): `cockpit pause|
resume|stop|restart|redirect|set|approve|deny` as subprocesses against a detached owner (or a
headless run), over the session's Unix socket. Each returns once its event is committed, so
the log is read right after the command returns, with no waiting. A command that does not
apply, or a session that does not run, exits 2 saying why. And who may command: the socket
directory is private, the socket 0600, and the owner checks its caller's uid.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cockpit.core.channel import ControlError, runtime_dir, socket_path
from tests.fake_ollama import FakeOllamaThread, ModelScript, RequestRecord, Turn
from tests.owners import (
    NOBODY,
    PATIENCE,
    Event,
    Gate,
    assert_complete,
    can_switch_users,
    cockpit,
    cockpit_env,
    crew_toml,
    detach,
    events,
    owner_pids,
    owners,
    query,
    replies,
    run_as,
    session_outcome,
    text_of,
    wait_for,
    wait_gone,
)

pytestmark = pytest.mark.slow


def applied(done: subprocess.CompletedProcess[str], db: Path, kind: str,
            agent: str | None = None) -> Event:
    """The command exited 0 and its event is in the log already: the last one of `kind`."""
    assert done.returncode == 0, done.stderr
    found = [e for e in events(db) if e.type == kind and (agent is None or e.agent == agent)]
    assert found, f"no {kind} in the log when the command returned: {done.stderr}"
    return found[-1]


def refused(done: subprocess.CompletedProcess[str], *reasons: str) -> None:
    """Exit 2, the reasons on stderr, on one line and without a traceback."""
    assert done.returncode == 2, (done.returncode, done.stderr)
    for reason in reasons:
        assert reason in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_each_agent_command_from_a_shell_is_committed_when_it_returns(tmp_path: Path) -> None:
    tokens = replies(["a", "b", "c"], 40)
    gate = Gate(5)
    scripts = {"ma": ModelScript(tokens=tokens["a"], delay=0.01, gate=gate),
               "mb": ModelScript(tokens=tokens["b"], delay=0.01, gate=gate),
               "mc": ModelScript(tokens=tokens["c"][:3])}
    crew, db, env = tmp_path / "crew.toml", tmp_path / "log.db", cockpit_env(tmp_path)
    with FakeOllamaThread(scripts) as fake, owners(db):
        crew.write_text(crew_toml(fake.url, ["a", "b", "c"]))
        session = detach(crew, db, env)

        def shell(*args: str) -> subprocess.CompletedProcess[str]:
            return cockpit(*args[:1], session, *args[1:], "--db", db, env=env, cwd=tmp_path)

        def held(agent: str) -> bool:
            return text_of(events(db), agent) == "".join(tokens[agent][:5])

        wait_for(lambda: held("a") and held("b") and any(
            e.type == "agent_finished" and e.agent == "c" for e in events(db)),
            "a and b held after 5 tokens, c finished")

        def closed_by_client(request: RequestRecord) -> None:
            """The fake saw the client hang up mid-reply: generation stopped there."""
            fake.wait_until(lambda: request.ended_at is not None, PATIENCE,
                            f"the stream of {request.model} to end")
            assert request.disconnected and not request.finished

        # pause: committed on return, and the fake saw its stream closed by the client
        paused = applied(shell("pause", "a"), db, "agent_paused", "a")
        assert paused.data["by"] == "person"
        closed_by_client(fake.chat_requests("ma")[0])
        assert fake.backend.cancelled == 1
        refused(shell("pause", "a"), "cannot pause a: it is paused")

        # resume SESSION AGENT: the partial reply goes back to be continued
        partial = text_of(events(db), "a")
        applied(shell("resume", "a"), db, "agent_resumed", "a")
        fake.wait_until(lambda: len(fake.chat_requests("ma")) == 2, PATIENCE, "a's next request")
        again = fake.chat_requests("ma")[1]
        assert again.body is not None
        assert again.body["messages"][-1] == {"role": "assistant", "content": partial}

        # redirect: cut off, and the next request carries the instruction
        redirected = applied(shell("redirect", "a", "Answer in French"), db,
                             "agent_redirected", "a")
        assert redirected.data["instruction"] == "Answer in French"
        fake.wait_until(lambda: len(fake.chat_requests("ma")) == 3, PATIENCE,
                        "a's request after the redirect")
        last = fake.chat_requests("ma")[2].body
        assert last is not None
        assert last["messages"][-1] == {"role": "user", "content": "Answer in French"}
        closed_by_client(again)

        # stop, then restart
        applied(shell("stop", "b"), db, "agent_stopped", "b")
        refused(shell("stop", "b"), "cannot stop b: it is stopped")
        refused(shell("resume", "b"), "cannot resume b: it is stopped")
        applied(shell("restart", "b"), db, "agent_restarted", "b")
        fake.wait_until(lambda: len(fake.chat_requests("mb")) == 2, PATIENCE,
                        "b's request after the restart")
        closed_by_client(fake.chat_requests("mb")[0])

        # set: on the board as a person's write; --json for other values than strings
        board = applied(shell("set", "topic", "the 2.1 release"), db, "state_set")
        assert (board.data["key"], board.data["value"], board.data["by"]) == (
            "topic", "the 2.1 release", "person")
        board = applied(shell("set", "limits", '{"n": [1, 2.5], "on": true}', "--json"), db,
                        "state_set")
        assert (board.data["key"], board.data["value"], board.data["by"]) == (
            "limits", {"n": [1, 2.5], "on": True}, "person")
        before = len(events(db))
        refused(shell("set", "limits", "{nope", "--json"), "not valid JSON")

        # what does not apply says why, and changes nothing
        refused(shell("pause", "c"), "cannot pause c: it is finished")
        refused(shell("pause", "nobody"), "no agent named 'nobody'")
        refused(shell("resume", "c"), "cannot resume c: it is finished")
        refused(shell("redirect", "c", "  "), "an empty instruction would change nothing")
        assert not [e for e in events(db)[before:] if e.agent == "c" or e.type == "state_set"]

        # redirect on a finished agent: a follow-up, a new turn of the same conversation
        follow_up = applied(shell("redirect", "c", "More"), db, "agent_redirected", "c")
        assert follow_up.data["follow_up"] is True
        wait_for(lambda: [e.type for e in events(db) if e.agent == "c"].count(
            "agent_finished") == 2, "c's second answer")
        asked = fake.chat_requests("mc")[1].body
        assert asked is not None and asked["messages"] == [
            {"role": "user", "content": "Say what c says."},
            {"role": "assistant", "content": "".join(tokens["c"][:3])},
            {"role": "user", "content": "More"}]

        gate.open()
        wait_for(lambda: session_outcome(db) == "finished", "the session to finish")
        for pid in owner_pids(db):
            wait_gone(pid)
        refused(shell("pause", "a"), f"session {session} is not running", "cockpit status")

    log = events(db)
    assert [e.type for e in log if e.agent == "a"].count("agent_finished") == 1
    finished = {e.agent: e.data["output"] for e in log if e.type == "agent_finished"}
    assert finished == {name: "".join(reply) for name, reply in
                        {**tokens, "c": tokens["c"][:3]}.items()}
    assert [e.seq for e in log] == list(range(1, len(log) + 1))


# -- approvals ------------------------------------------------------------------------------

GATED = """\
name = "gated"
host = "{host}"
model = "m1"
approve = ["board_write"]
{agents}"""

AGENT = """
[[agents]]
name = "{name}"
task = "Write the plan of {name}."
tools = ["board"]
"""


def gated_crew(host: str, names: list[str]) -> str:
    return GATED.format(host=host, agents="".join(AGENT.format(name=n) for n in names))


def writes(messages: list[dict[str, Any]]) -> Turn:
    """Turn 1 writes the agent's plan to the board; turn 2 says what the call returned."""
    task = next(m["content"] for m in messages if m["role"] == "user")
    name = task.rsplit(" ", 1)[1].rstrip(".")
    done = [m["content"] for m in messages if m["role"] == "tool"]
    return Turn.say(f"result: {done[-1]}") if done else Turn.call(
        "board_write", key=f"plan.{name}", value=f"v1 of {name}")


def waiting_calls(db: Path) -> dict[str, str]:
    """agent -> the id of its call that waits for a decision, from the log."""
    log = events(db)
    decided = {e.data["call_id"] for e in log if e.type == "approval_decided"}
    return {str(e.agent): e.data["call_id"] for e in log
            if e.type == "approval_requested" and e.data["call_id"] not in decided}


def decision(db: Path, call_id: str) -> dict[str, Any]:
    [found] = [e.data for e in events(db)
               if e.type == "approval_decided" and e.data["call_id"] == call_id]
    return found


def test_approve_deny_and_approve_all_from_a_shell(tmp_path: Path) -> None:
    names = ["w1", "w2", "w3"]
    crew, db, env = tmp_path / "crew.toml", tmp_path / "log.db", cockpit_env(tmp_path)
    with FakeOllamaThread({"m1": ModelScript(turn=writes)}) as fake, owners(db):
        crew.write_text(gated_crew(fake.url, names))
        session = detach(crew, db, env)

        def shell(*args: str) -> subprocess.CompletedProcess[str]:
            return cockpit(*args[:1], session, *args[1:], "--db", db, env=env, cwd=tmp_path)

        wait_for(lambda: len(waiting_calls(db)) == 3, "three calls waiting for approval")
        calls = waiting_calls(db)

        listed = shell("approve")  # no CALL: what waits, and nothing decided
        refused(listed)
        for call_id in calls.values():
            assert call_id in listed.stdout

        applied(shell("approve", calls["w1"]), db, "approval_decided")
        assert decision(db, calls["w1"])["decision"] == "approved"
        assert decision(db, calls["w1"])["by"] == "person"

        applied(shell("deny", calls["w2"], "--reason", "not this plan"), db, "approval_decided")
        denied = decision(db, calls["w2"])
        assert (denied["decision"], denied["reason"], denied["by"]) == (
            "denied", "not this plan", "person")
        refused(shell("approve", calls["w2"]), f"no call '{calls['w2']}' is waiting")
        refused(shell("deny", "w9.1.1", "--reason", "x"), "no call 'w9.1.1' is waiting")

        everything = shell("approve", "--all")
        applied(everything, db, "approval_decided")
        assert f"approved {calls['w3']}" in everything.stderr
        assert decision(db, calls["w3"])["decision"] == "approved"

        wait_for(lambda: session_outcome(db) == "finished", "the session to finish")
        for pid in owner_pids(db):
            wait_gone(pid)

    log = events(db)
    ran = {e.data["call_id"] for e in log if e.type == "tool_called"}
    assert ran == {calls["w1"], calls["w3"]}
    written = {e.data["key"]: e.data["value"] for e in log
               if e.type == "state_set" and e.data.get("tool") == "board_write"}
    assert written == {"plan.w1": "v1 of w1", "plan.w3": "v1 of w3"}
    output = {e.agent: e.data["output"] for e in log if e.type == "agent_finished"}
    assert "not this plan" in output["w2"]  # the model read the reason


def test_a_headless_run_that_asks_is_answered_from_another_process(tmp_path: Path) -> None:
    crew, db, env = tmp_path / "crew.toml", tmp_path / "log.db", cockpit_env(tmp_path)
    with FakeOllamaThread({"m1": ModelScript(turn=writes)}) as fake:
        crew.write_text(gated_crew(fake.url, ["w"]))
        run = subprocess.Popen([sys.executable, "-m", "cockpit", "run", str(crew), "--headless",
                                "--approve", "ask", "--db", str(db)], env=env, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: bool(waiting_calls(db)), "the call to wait for approval")
            assert run.poll() is None
            [(session,)] = query(db, "SELECT id FROM sessions")
            call_id = waiting_calls(db)["w"]
            answered = cockpit("approve", str(session), call_id, "--db", db, env=env)
            applied(answered, db, "approval_decided")
            assert decision(db, call_id)["by"] == "person"
            _, stderr = run.communicate(timeout=PATIENCE)
        finally:
            if run.poll() is None:
                run.kill()
                run.communicate()
    assert run.returncode == 0, stderr
    assert f"{call_id} waits" in stderr
    assert session_outcome(db) == "finished"
    assert [e.data["call_id"] for e in events(db) if e.type == "tool_called"] == [call_id]


def test_a_headless_run_paused_from_a_shell_waits_to_be_resumed(tmp_path: Path) -> None:
    """Headless runs take commands now: a pause by a person does not end the run (nobody
    could resume it before); `cockpit resume SESSION AGENT` lets it finish."""
    crew, db, env = tmp_path / "crew.toml", tmp_path / "log.db", cockpit_env(tmp_path)
    tokens = replies(["a"], 30)
    gate = Gate(5)
    with FakeOllamaThread({"ma": ModelScript(tokens=tokens["a"], delay=0.01,
                                             gate=gate)}) as fake:
        crew.write_text(crew_toml(fake.url, ["a"]))
        run = subprocess.Popen([sys.executable, "-m", "cockpit", "run", str(crew), "--headless",
                                "--db", str(db)], env=env, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: any(e.type == "token" for e in events(db)), "a to stream")
            [(session,)] = query(db, "SELECT id FROM sessions")
            applied(cockpit("pause", str(session), "a", "--db", db, env=env), db,
                    "agent_paused")
            gate.open()
            # the run does not end while a is paused: the resume from the shell applies
            applied(cockpit("resume", str(session), "a", "--db", db, env=env), db,
                    "agent_resumed")
            _, stderr = run.communicate(timeout=PATIENCE)
        finally:
            if run.poll() is None:
                run.kill()
                run.communicate()
    assert run.returncode == 0, stderr
    assert f"cockpit resume {session} a" in stderr  # the pause line says how to go on
    assert session_outcome(db) == "finished"
    assert_complete(db, tokens)


# -- who may command ------------------------------------------------------------------------


def test_the_socket_is_private_to_its_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = replies(["a"], 20)
    gate = Gate(3)
    crew, db, env = tmp_path / "crew.toml", tmp_path / "log.db", cockpit_env(tmp_path)
    with FakeOllamaThread({"ma": ModelScript(tokens=tokens["a"], gate=gate)}) as fake, \
            owners(db):
        crew.write_text(crew_toml(fake.url, ["a"]))
        session = detach(crew, db, env)
        run = Path(env["COCKPIT_RUNTIME_DIR"])
        info = os.lstat(run)  # made by the owner: it did not exist
        assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700
        assert info.st_uid == os.getuid()
        monkeypatch.setenv("COCKPIT_RUNTIME_DIR", str(run))
        path = socket_path(db, session)
        [found] = run.glob("*.sock")
        assert found == path
        info = os.lstat(path)
        assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
        assert stat.S_IMODE(os.lstat(path.with_suffix(".lock")).st_mode) == 0o600
        gate.open()
        wait_for(lambda: session_outcome(db) == "finished", "the session to finish")
        for pid in owner_pids(db):
            wait_gone(pid)
    assert not path.exists()  # the owner removed it on the way out


def test_a_runtime_dir_that_is_not_private_is_refused(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    made = tmp_path / "fresh"
    monkeypatch.setenv("COCKPIT_RUNTIME_DIR", str(made))
    assert runtime_dir() == made
    assert stat.S_IMODE(made.stat().st_mode) == 0o700

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    monkeypatch.setenv("COCKPIT_RUNTIME_DIR", str(shared))
    with pytest.raises(ControlError) as refused_dir:
        runtime_dir()
    message = str(refused_dir.value)
    assert str(shared) in message and "not a private directory" in message
    assert "mode 0700" in message and "COCKPIT_RUNTIME_DIR" in message
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755  # refused, not "fixed"

    link = tmp_path / "link"
    link.symlink_to(made)
    monkeypatch.setenv("COCKPIT_RUNTIME_DIR", str(link))
    with pytest.raises(ControlError, match="not a private directory"):
        runtime_dir()  # a symlink is not trusted either: it could be swapped

    if os.geteuid() != 0:
        return  # only root can give a directory to another user
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, NOBODY, NOBODY)
    monkeypatch.setenv("COCKPIT_RUNTIME_DIR", str(theirs))
    with pytest.raises(ControlError) as refused_dir:
        runtime_dir()
    assert str(theirs) in str(refused_dir.value)
    assert f"owned by uid {os.getuid()}" in str(refused_dir.value)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user can reach and write (tmp_path is root's alone, 0700)."""
    if (why := can_switch_users()) is not None:
        pytest.skip(why)
    path = Path(tempfile.mkdtemp(prefix="cockpit-users-"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def nobody_env(shared: Path, runtime: Path) -> dict[str, str]:
    home = shared / "home-nobody"
    home.mkdir(exist_ok=True)
    os.chown(home, NOBODY, NOBODY)
    return cockpit_env(shared, COCKPIT_RUNTIME_DIR=str(runtime), HOME=str(home))


def private_dir(path: Path, uid: int) -> Path:
    path.mkdir(mode=0o700)
    os.chown(path, uid, uid)
    return path


def test_another_user_cannot_command_the_session(shared_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = replies(["a"], 20)
    gate = Gate(3)
    crew, db = shared_dir / "crew.toml", shared_dir / "log.db"
    env = cockpit_env(shared_dir)
    with FakeOllamaThread({"ma": ModelScript(tokens=tokens["a"], gate=gate)}) as fake, \
            owners(db):
        crew.write_text(crew_toml(fake.url, ["a"]))
        session = detach(crew, db, env)
        wait_for(lambda: text_of(events(db), "a") == "".join(tokens["a"][:3]), "a streaming")
        for path in shared_dir.glob("log.db*"):
            path.chmod(0o644)  # the log is readable by all: the socket must still refuse
        before = events(db)

        def as_nobody(runtime: Path, *args: str) -> subprocess.CompletedProcess[str]:
            return run_as(NOBODY, [sys.executable, "-m", "cockpit", *args, "--db", str(db)],
                          env=nobody_env(shared_dir, runtime), cwd=shared_dir,
                          scratch=shared_dir)

        status = as_nobody(shared_dir / "run-status", "status", session)
        assert status.returncode == 0, status.stderr  # the log is readable: only commands fail

        # Aimed at the owner's runtime dir: not theirs, refused before anything is sent.
        owners_dir = Path(env["COCKPIT_RUNTIME_DIR"])
        done = as_nobody(owners_dir, "pause", session, "a")
        refused(done, str(owners_dir), "not a private directory", f"uid {NOBODY}")

        # Through a symlink in a dir of their own: the owner's 0700 dir stops the connect.
        monkeypatch.setenv("COCKPIT_RUNTIME_DIR", str(owners_dir))
        target = socket_path(db, session)
        mine = private_dir(shared_dir / "run-nobody", NOBODY)
        (mine / target.name).symlink_to(target)
        done = as_nobody(mine, "pause", session, "a")
        refused(done, "permission denied", "belongs to another user")

        assert not [e for e in events(db)[len(before):] if e.type == "agent_paused"]
        gate.open()
        wait_for(lambda: session_outcome(db) == "finished", "the session to finish")
        for pid in owner_pids(db):
            wait_gone(pid)


def test_an_owner_refuses_a_caller_of_another_uid_even_root(
        shared_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root passes every file mode; the owner's SO_PEERCRED check still refuses it."""
    tokens = replies(["a"], 20)
    gate = Gate(3)
    crew, db = shared_dir / "crew.toml", shared_dir / "log.db"
    theirs = shared_dir / "run-nobody"  # the owner makes it: 0700, its own
    env = nobody_env(shared_dir, theirs)
    with FakeOllamaThread({"ma": ModelScript(tokens=tokens["a"], gate=gate)}) as fake, \
            owners(db):
        crew.write_text(crew_toml(fake.url, ["a"]))
        started = run_as(NOBODY, [sys.executable, "-m", "cockpit", "run", str(crew),
                                  "--detach", "--db", str(db)],
                         env=env, cwd=shared_dir, scratch=shared_dir)
        assert started.returncode == 0, started.stderr
        session = started.stdout.splitlines()[0]
        wait_for(lambda: text_of(events(db), "a") == "".join(tokens["a"][:3]), "a streaming")
        assert os.lstat(theirs).st_uid == NOBODY
        [sock] = theirs.glob("*.sock")
        assert os.lstat(sock).st_uid == NOBODY
        (pid,) = owner_pids(db)
        assert os.stat(f"/proc/{pid}").st_uid == NOBODY

        # Straight at the socket: told why, before any request is read, and cut off.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
            raw.settimeout(PATIENCE)
            raw.connect(str(sock))
            with raw.makefile("rb") as stream:
                answer = json.loads(stream.readline())
                assert answer["ok"] is False and answer["kind"] == "denied"
                assert "permission denied" in answer["error"]
                assert f"belongs to uid {NOBODY}, not 0" in answer["error"]
                assert stream.read() == b""  # and it hung up: no request is read

        # `cockpit pause` as root aimed at the owner's runtime dir: not root's, refused first.
        done = cockpit("pause", session, "a", "--db", db,
                       env=cockpit_env(shared_dir, COCKPIT_RUNTIME_DIR=str(theirs)))
        refused(done, str(theirs), "not a private directory", "uid 0")

        # `cockpit pause` as root, through a private dir of root's linking to the socket (a
        # dir of another user's would be refused before any connection).
        mine = private_dir(shared_dir / "run-root", 0)
        monkeypatch.setenv("COCKPIT_RUNTIME_DIR", str(mine))
        (mine / socket_path(db, session).name).symlink_to(sock)
        done = cockpit("pause", session, "a", "--db", db,
                       env=cockpit_env(shared_dir, COCKPIT_RUNTIME_DIR=str(mine)))
        refused(done, "permission denied", f"belongs to uid {NOBODY}, not 0")

        assert not [e for e in events(db) if e.type == "agent_paused"]
        gate.open()
        wait_for(lambda: session_outcome(db) == "finished", "the session to finish")
        wait_gone(pid)
    assert [e.type for e in events(db)].count("agent_finished") == 1
