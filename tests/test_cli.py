"""The command line as a user runs it: subprocesses, real files, the fake server over loopback."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cockpit.core
from tests.fake_ollama import FakeOllamaThread, ModelScript

CORE = Path(cockpit.core.__file__).parent

CREW = """\
name = "cli-crew"
model = "m1"
retries = 1
retry_backoff = 0.01

[state]
topic = "tests"

[[agents]]
name = "first"
task = "Write about {{topic}}."

[[agents]]
name = "second"
after = ["first"]
task = "Improve: {{outputs.first}}"
"""


def cockpit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cockpit", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def test_core_does_not_import_textual() -> None:
    """In a fresh interpreter, the whole engine loads without textual or the UI package."""
    modules = [f"cockpit.core.{'.'.join(p.relative_to(CORE).with_suffix('').parts)}"
               for p in CORE.rglob("*.py") if p.stem != "__init__"] + ["cockpit.headless"]
    code = (f"import sys, importlib; [importlib.import_module(m) for m in {modules!r}]; "
            "print([m for m in ('textual', 'cockpit.ui') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


def test_core_source_never_imports_textual_or_rich() -> None:
    """rich may arrive through httpx's optional CLI, but core's own code never uses it."""
    offenders = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {n}" for n in names
                          if n.split(".")[0] in ("textual", "rich") or n.startswith("cockpit.ui")]
    assert offenders == []


def test_headless_run_then_export_round_trip(tmp_path: Path) -> None:
    crew = tmp_path / "crew.toml"
    crew.write_text(CREW)
    db = tmp_path / "log.db"
    scripts = {"m1": ModelScript(tokens=["Hello", " [bold]x[/]", " world"])}
    with FakeOllamaThread(scripts) as fake:
        run = cockpit("run", str(crew), "--headless", "--db", str(db),
                      env={"OLLAMA_HOST": fake.url})
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""  # progress goes to stderr only
    lines = run.stderr.splitlines()
    assert any("first" in line and "finished" in line and "3 tokens" in line for line in lines)
    assert any("second" in line and "waiting for first" in line for line in lines)
    assert "Hello [bold]x[/] world" not in run.stderr  # one line per event, not the text

    export = cockpit("export", "last", "--db", str(db))
    assert export.returncode == 0, export.stderr
    records = [json.loads(line) for line in export.stdout.splitlines()]
    assert all(set(r) == {"id", "session", "agent", "type", "ts", "data"} for r in records)
    ids = [r["id"] for r in records]
    assert ids == sorted(set(ids))
    assert {r["session"] for r in records} == {records[0]["session"]}
    assert records[0]["type"] == "session_started" and records[0]["agent"] is None
    assert records[-1]["type"] == "session_finished"
    assert all(isinstance(r["ts"], float) for r in records)
    for name in ("first", "second"):
        text = "".join(r["data"]["text"] for r in records
                       if r["agent"] == name and r["type"] == "token")
        finished = [r for r in records if r["agent"] == name and r["type"] == "agent_finished"]
        assert finished[0]["data"]["output"] == text == "Hello [bold]x[/] world"
    board = [{k: r["data"][k] for k in ("key", "value", "by")} for r in records
             if r["type"] == "state_set"]
    assert {"key": "outputs.first", "value": "Hello [bold]x[/] world", "by": "first"} in board

    markdown = cockpit("export", records[0]["session"][:15], "--format", "markdown",
                       "-o", str(tmp_path / "t.md"), "--db", str(db))
    assert markdown.returncode == 0, markdown.stderr
    text = (tmp_path / "t.md").read_text()
    assert "## first (finished)" in text and "Improve: Hello [bold]x[/] world" in text
    assert (tmp_path / "t.md").stat().st_mode & 0o777 == 0o600  # model output: private
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("t.md")] == ["t.md"]

    replay = cockpit("replay", "last", "--headless", "--db", str(db))
    assert replay.returncode == 0, replay.stderr
    assert "first  | Hello [bold]x[/] world" in replay.stdout.splitlines()

    sessions = cockpit("sessions", "--json", "--db", str(db))
    [listed] = json.loads(sessions.stdout)
    assert listed["crew"] == "cli-crew" and listed["outcome"] == "finished"
    assert listed["agents"] == 2 and listed["resumable"] is False


def test_exit_codes(tmp_path: Path) -> None:
    crew = tmp_path / "crew.toml"
    db = str(tmp_path / "log.db")
    crew.write_text(CREW.replace('model = "m1"', 'model = "absent"'))
    with FakeOllamaThread({"m1": ModelScript()}) as fake:
        failed = cockpit("run", str(crew), "--headless", "--db", db,
                         env={"OLLAMA_HOST": fake.url})
    assert failed.returncode == 1
    assert "first    failed    Ollama answered 404: model 'absent' not found" in failed.stderr
    assert "not started: dependency 'first' failed" in failed.stderr

    crew.write_text(CREW.replace("retries = 1", "retries = -1"))
    bad = cockpit("run", str(crew), "--headless", "--db", db)
    assert bad.returncode == 2
    assert f"{crew}:3: retries:" in bad.stderr and "Traceback" not in bad.stderr

    nolog = cockpit("export", "last", "--db", str(tmp_path / "none.db"))
    assert nolog.returncode == 2 and "no such event log" in nolog.stderr


def test_unreachable_host_is_reported_not_raised(tmp_path: Path) -> None:
    crew = tmp_path / "crew.toml"
    crew.write_text(CREW.replace('model = "m1"',
                                 'model = "m1"\nhost = "127.0.0.1:9"\nhost_wait = 0.5'))
    run = cockpit("run", str(crew), "--headless", "--db", str(tmp_path / "log.db"))
    assert run.returncode == 1
    assert "cannot reach Ollama at http://127.0.0.1:9" in run.stderr
    assert "host_wait is 0.5 s" in run.stderr
    assert "Traceback" not in run.stderr


PROBED = """\
name = "probed"
model = "m1"

[[agents]]
name = "first"
task = "t"

[[agents]]
name = "second"
model = "absent"
task = "t"

[[agents]]
name = "pooled"
model = "m2"
hosts = ["{a}", "{b}"]
task = "t"
"""


def test_check_probe_lists_each_hosts_models_and_the_pull_that_fixes_a_missing_one(
        tmp_path: Path) -> None:
    crew = tmp_path / "crew.toml"
    with FakeOllamaThread({"m1": ModelScript()}) as a, \
            FakeOllamaThread({"m2": ModelScript(), "m3:7b": ModelScript()}) as b:
        crew.write_text(PROBED.format(a=a.url, b=b.url))
        missing = cockpit("check", "--probe", str(crew), env={"OLLAMA_HOST": a.url})
        assert missing.returncode == 1, missing.stderr
        lines = missing.stdout.splitlines()
        at = lines.index("probe: 2 hosts")
        assert lines[at + 1:] == [
            f"  {a.url}: 1 model (m1:latest)",
            "    m1      present  (first)",
            "    absent  missing  (second): ollama pull absent",
            f"    m2      missing  (pooled): the pool has it on {b.url}",
            f"  {b.url}: 2 models (m2:latest, m3:7b)",
            "    m2  present  (pooled)",
        ]
        assert missing.stderr == "cockpit: absent is missing for second: ollama pull absent\n"
        assert [r.path for r in a.requests + b.requests] == ["/api/tags", "/api/tags"]

        # A host that is not the one `ollama` talks to by default is named in the command.
        crew.write_text(PROBED.format(a=a.url, b=b.url).replace('model = "absent"',
                                                                f'host = "{b.url}"'))
        other = cockpit("check", "--probe", str(crew), env={"OLLAMA_HOST": a.url})
        assert other.returncode == 1
        assert other.stderr == (f"cockpit: m1 is missing for second: OLLAMA_HOST={b.url} "
                                "ollama pull m1\n")

        crew.write_text(PROBED.format(a=a.url, b=b.url).replace('"absent"', '"m1:latest"'))
        fine = cockpit("check", "--probe", str(crew), env={"OLLAMA_HOST": a.url})
        assert fine.returncode == 0, fine.stderr
        assert fine.stderr == ""
        assert fine.stdout.endswith(
            "probe: every host answered and has the models its agents need\n")
        assert "ollama pull" not in fine.stdout


def test_check_probe_names_a_host_that_does_not_answer(tmp_path: Path) -> None:
    crew = tmp_path / "crew.toml"
    crew.write_text(CREW.replace('model = "m1"', 'model = "m1"\nhost = "127.0.0.1:9"'))
    done = cockpit("check", "--probe", str(crew))
    assert done.returncode == 1
    assert "  http://127.0.0.1:9: unreachable (" in done.stdout
    assert "    m1  not checked  (first, second)" in done.stdout
    assert done.stderr.startswith("cockpit: http://127.0.0.1:9: unreachable (")
    assert "Traceback" not in done.stderr
    plain = cockpit("check", str(crew))  # without --probe, no host is asked
    assert plain.returncode == 0 and "probe:" not in plain.stdout


@pytest.mark.embedded
def test_check_probe_checks_the_embedded_engine_without_starting_it(tmp_path: Path) -> None:
    crew = tmp_path / "crew.toml"
    crew.write_text(CREW.replace('model = "m1"', 'model = "smollm2:135m"\nhost = "embedded"'))
    served = cockpit("check", "--probe", str(crew))
    assert served.returncode == 0, served.stderr
    assert "  embedded: the bundled engine, started with the crew (nothing to probe); it " \
           "serves smollm2:135m" in served.stdout
    assert "    smollm2:135m  present  (first, second)" in served.stdout
    crew.write_text(crew.read_text().replace('"smollm2:135m"', '"llama3.2"'))
    other = cockpit("check", "--probe", str(crew))
    assert other.returncode == 1
    assert "    llama3.2  missing  (first, second): the embedded engine serves only " \
           "smollm2:135m" in other.stdout
    assert other.stderr == ("cockpit: llama3.2 is missing for first, second: name the "
                            "embedded engine's model\n")
