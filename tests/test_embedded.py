"""The embedded engine with real tokens: `cockpit demo`, `cockpit engine`, and the engine driven
by the supervisor (pause and resume continue a real model's reply). The wire protocol itself is
checked against this engine in `test_protocol_conformance.py`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest

from cockpit.core import events as ev
from tests.conftest import make_crew, running, wait_until
from tests.test_cli import cockpit

embedded = pytest.mark.embedded


def exported(db: Path) -> list[dict[str, object]]:
    done = cockpit("export", "last", "--db", str(db))
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@embedded
def test_demo_headless_streams_real_text_for_every_agent(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    done = cockpit("demo", "--headless", "--db", str(db))
    assert done.returncode == 0, done.stderr
    assert "session  finished" in done.stderr
    # It is there to be read: the agents' text on stdout, exactly as `cockpit logs` prints it.
    assert done.stdout.strip() and done.stdout == cockpit("logs", "last", "--db", str(db)).stdout
    said = {line.split(" |")[0].strip() for line in done.stdout.splitlines()
            if " | " in line and " | ── " not in line}
    events = exported(db)
    finished = {e["agent"]: e["data"] for e in events if e["type"] == "agent_finished"}
    assert sorted(finished) == ["mistakes", "note", "tips"]
    assert said == set(finished)  # every agent's reply, in whole lines
    for agent, data in finished.items():
        output = data["output"]  # type: ignore[index]
        assert isinstance(output, str) and len(output.split()) >= 10, (agent, output)
        streamed = "".join(e["data"]["text"] for e in events  # type: ignore[index]
                           if e["type"] == "token" and e["agent"] == agent)
        assert streamed == output
    completed = [e["data"] for e in events if e["type"] == "message_completed"]
    assert all(d["eval_count"] > 0 and d["prompt_eval_count"] > 0  # type: ignore[index]
               for d in completed)
    # `note` ran after both and was given their outputs in its prompt.
    started = next(e["data"] for e in events
                   if e["type"] == "agent_started" and e["agent"] == "note")
    prompt = started["messages"][-1]["content"]  # type: ignore[index]
    assert finished["tips"]["output"] in prompt and finished["mistakes"]["output"] in prompt  # type: ignore[index]


def test_demo_without_the_extra_says_how_to_install(tmp_path: Path) -> None:
    """`sys.modules[name] = None` is how Python spells "this package is not installed"."""
    code = ("import sys; sys.modules['llama_cpp'] = None; from cockpit.cli import main; "
            f"sys.exit(main(['demo', '--headless', '--db', {str(tmp_path / 'x.db')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "pip install -e '.[embedded]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "x.db").exists()  # nothing was started


@pytest.fixture
def engine() -> Iterator[str]:
    """`cockpit engine` as a user starts it; yields its URL, then stops it with Ctrl-C."""
    proc = subprocess.Popen([sys.executable, "-m", "cockpit", "engine", "--parallel", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    try:
        assert line.startswith("OLLAMA_HOST=http://127.0.0.1:"), line
        yield line.split("=", 1)[1]
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0


@embedded
def test_engine_command_serves_any_ollama_client(engine: str) -> None:
    client = ollama.Client(host=engine)
    assert [m.model for m in client.list().models] == ["smollm2:135m"]
    reply = client.chat("smollm2:135m",
                        messages=[{"role": "user", "content": "What is the capital of France?"},
                                  {"role": "assistant", "content": "The capital of France is"}],
                        options={"temperature": 0, "seed": 1, "num_predict": 8})
    assert "Paris" in reply.message.content  # continued the assistant message, not restarted
    assert reply.eval_count and reply.eval_count <= 8


@embedded
async def test_pause_and_resume_continue_a_real_reply(tmp_path: Path) -> None:
    from cockpit.embedded.llama import embedded_engine

    with embedded_engine(1) as server:
        crew = make_crew("embedded", [{
            "name": "a", "task": "Count from 1 to 100, separated by commas.",
            "options": {"temperature": 0, "seed": 3, "num_predict": 200}}],
            model="smollm2:135m")
        async with running(crew, tmp_path / "log.db", hosts={"embedded": server.url}) as s:
            await wait_until(lambda: s.state.agents["a"].tokens >= 10, 60, "10 real tokens")
            await s.supervisor.pause("a")
            partial = s.state.agents["a"].partial
            await s.supervisor.resume("a")
            state = await s.supervisor.wait()
            logged = await s.logged()
    output = state.agents["a"].output
    assert output.startswith(partial) and len(output) > len(partial)
    assert "".join(e.text for e in logged if isinstance(e, ev.TokenStreamed)) == output
    assert [e.type for e in logged if e.type.startswith("agent_")] == [  # type: ignore[attr-defined]
        "agent_started", "agent_paused", "agent_resumed", "agent_finished"]
