"""Hostile text through every surface: model tokens, Ollama's error text, the crew's name and
board keys and values from the crew file carry terminal escapes (OSC 52, `ESC [6n`, a title,
CSI, 8-bit CSI, BEL, other C0, C1, bidi overrides, a lone ESC) and Rich markup. One real session
against the fake Ollama is logged by `cockpit run --headless`, then every command that prints
it runs as a user runs it (a subprocess, bytes captured); the headless runner's agent text (what
`cockpit demo --headless` prints) and the TUI, live and replaying, are driven in-process. No
ESC, BEL, C1 control or bidi control leaves on any of them; markup shows as text; the JSONL
export keeps the exact text, with every such character as a `\\u` escape."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cockpit.core.config import load_crew
from tests.conftest import PATIENCE, wait_until
from tests.fake_ollama import FakeOllama, FakeOllamaThread, ModelScript

ESCAPES = [  # (what, the sequence, what a terminal surface shows of it)
    ("osc52 clipboard", "\x1b]52;c;aGk=\x07", ""),
    ("dsr (terminal answers)", "\x1b[6n", ""),
    ("osc0 title", "\x1b]0;pwned\x1b\\", ""),
    ("csi clear", "\x1b[2J\x1b[H", ""),
    ("8-bit csi", "\x9b6n", ""),
    ("bel", "\x07", ""),
    ("other c0", "\x00\x08\x0b\x0c\r\x0e\x1f\x7f", ""),
    ("c1", "\x85\x9d0;t\x9c\x90", "0;t"),  # 8-bit OSC: the controls go, its text is inert
    ("bidi", "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c\u200e\u200f", ""),
    ("lone esc", "\x1b", ""),
    ("osc8 link", "\x1b]8;;http://evil\x07here\x1b]8;;\x07", "here"),
    ("unterminated osc", "\x1b]52;c;bm8=", None),  # None: it takes the rest of its line
]
MARKUP = ["[bold red]x[/]", "[link=https://evil]y[/link]", "[@click=app.quit]z[/]"]
READABLE = "日本語 ✓ é 🙂"
"""Printable text outside ASCII: it must stay readable UTF-8, in the JSONL too."""

HOSTILE = " ".join(seq for _, seq, after in ESCAPES if after is not None)
TOKENS = [f"{what}: {seq} {MARKUP[i % 3]}\n" for i, (what, seq, _) in enumerate(ESCAPES)]
TOKENS += ["split \x1b", "]52;c;", "aGk=\x07 across \x9b", "6n tokens\n", READABLE, " \x1b"]
"""What the model streams: each sequence whole on its own line, then sequences cut across
tokens, then readable text and a lone ESC at the very end."""
SHOWN = [f"{what}: {after} {MARKUP[i % 3]}" if after is not None else f"{what}: "
         for i, (what, _, after) in enumerate(ESCAPES)] + ["split  across  tokens"]
"""The talker's whole lines as a terminal surface shows them (the last, partial, aside)."""

ERROR = f"bad {HOSTILE} model [bold]m[/]"
NAME = f"crew {HOSTILE} [bold red]c[/]"
CREW = f"""\
name = {json.dumps(NAME)}
model = "m1"
retries = 2
retry_backoff = 0.01

[state]
{json.dumps("key" + HOSTILE)} = {json.dumps("value" + HOSTILE + MARKUP[1])}

[[agents]]
name = "talker"
task = "Talk."

[[agents]]
name = "retrier"
model = "m2"
task = "Talk after a 500."

[[agents]]
name = "erring"
model = "m3"
task = "Talk after an error line."

[[agents]]
name = "failer"
model = "m4"
task = "Fail."
"""
"""The crew: its name and board carry the sequences (TOML writes them as \\u escapes), one
agent streams them, and three hear them from Ollama: a 500 and a mid-stream error line (each
retried) and a 400 (the agent fails with it)."""


def scripts() -> dict[str, ModelScript]:
    return {"m1": ModelScript(tokens=TOKENS),
            "m2": ModelScript(tokens=["fine"], fail_first=1, fail_status=500, fail_message=ERROR),
            "m3": ModelScript(tokens=["ok ", "then"], error_after=1, faults_for=1,
                              error_message=ERROR),
            "m4": ModelScript(fail_first=1, fail_status=400, fail_message=ERROR)}


BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c\u200e\u200f\u2028\u2029")


def leaks(text: str, allowed: str = "\n") -> list[str]:
    """What must never reach a terminal: any C0 or C1 control (ESC, BEL, U+0080-U+009F...)
    but those `allowed`, DEL, and bidirectional controls."""
    return sorted({f"U+{ord(c):04X}" for c in text
                   if (unicodedata.category(c) == "Cc" and c not in allowed) or c in BIDI})


def shown(raw: bytes) -> str:
    """A surface's bytes as the terminal decodes them (strictly: they must be UTF-8)."""
    text = raw.decode("utf-8")
    assert b"\x1b" not in raw and b"\x07" not in raw
    return text


def cockpit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "cockpit", *args], capture_output=True,
                          timeout=PATIENCE, env={**os.environ, **(env or {})})


@dataclass
class Logged:
    tmp: Path
    crew: Path
    db: Path
    run: subprocess.CompletedProcess[bytes]


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Logged:
    """The hostile session, run by `cockpit run --headless` against the fake Ollama."""
    tmp = tmp_path_factory.mktemp("hostile")
    crew, db = tmp / "crew.toml", tmp / "log.db"
    crew.write_text(CREW)
    with FakeOllamaThread(scripts()) as fake:
        run = cockpit("run", str(crew), "--headless", "--db", str(db),
                      env={"OLLAMA_HOST": fake.url})
    assert run.returncode == 1, run.stderr.decode(errors="replace")  # failer failed
    return Logged(tmp, crew, db, run)


def records(logged: Logged) -> list[dict[str, Any]]:
    done = cockpit("export", "last", "--db", str(logged.db))
    assert done.returncode == 0
    return [json.loads(line) for line in done.stdout.decode().splitlines()]


def test_the_session_really_holds_the_hostile_text(logged: Logged) -> None:
    """Every surface below is fed the real thing: the log kept it all, exactly."""
    events = records(logged)
    streamed = "".join(str(e["data"]["text"]) for e in events
                       if e["type"] == "token" and e["agent"] == "talker")
    assert streamed == "".join(TOKENS)
    data = [e["data"] for e in events]
    assert data[0]["crew"] == NAME
    failed = [d["error"] for e, d in zip(events, data, strict=True) if e["type"] == "agent_failed"]
    assert failed == [f"Ollama answered 400: {ERROR}"]
    retries = [d["reason"] for e, d in zip(events, data, strict=True) if e["type"] == "retrying"]
    assert len(retries) == 2 and all(ERROR in str(reason) for reason in retries)
    assert data[0]["config"]["state"] == {"key" + HOSTILE: "value" + HOSTILE + MARKUP[1]}


# -- the command line ------------------------------------------------------------------------

Surface = Callable[[Logged], bytes]


def command(*args: str) -> Surface:
    """A command's stdout and stderr, which must both succeed (exit 0)."""
    def run(logged: Logged) -> bytes:
        argv = [a.format(db=logged.db, crew=logged.crew, tmp=logged.tmp) for a in args]
        done = cockpit(*argv, "--db", str(logged.db))
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return done.stdout + done.stderr
    return run


def written(*args: str) -> Surface:
    """A command that writes a file with `-o`: the file (it must be 0600) and what it said."""
    def run(logged: Logged) -> bytes:
        out = logged.tmp / f"out-{'-'.join(a.strip('-') for a in args)}"
        out.unlink(missing_ok=True)
        said = command(*args, "-o", str(out))(logged)
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        return out.read_bytes() + said
    return run


def refused_check(logged: Logged) -> bytes:
    """`cockpit check` of a crew file whose errors quote hostile text: exit 2, one message."""
    crew = logged.tmp / "bad.toml"
    crew.write_text(CREW.replace('name = "talker"', f"name = {json.dumps('t' + HOSTILE)}")
                    .replace('retries = 2', f"{json.dumps('x' + HOSTILE)} = 1"))
    done = cockpit("check", str(crew))
    assert done.returncode == 2 and done.stdout == b"" and b"Traceback" not in done.stderr
    return done.stderr


SURFACES: dict[str, Surface] = {
    "run --headless": lambda logged: logged.run.stdout + logged.run.stderr,
    "export markdown": command("export", "last", "--format", "markdown"),
    "export markdown -o": written("export", "last", "--format", "markdown"),
    "export jsonl": command("export", "last"),
    "export jsonl -o": written("export", "last", "--format", "jsonl"),
    "report": command("report", "last"),
    "report -o": written("report", "last"),
    "sessions": command("sessions"),
    "sessions --json": command("sessions", "--json"),
    "status": command("status", "last"),
    "status --json": command("status", "last", "--json"),
    "check": command("check", "{crew}"),
    "check, refused": refused_check,
    "logs": command("logs", "last"),
    "logs --by message": command("logs", "last", "--by", "message"),
    "replay --headless": command("replay", "last", "--headless"),
    "replay --headless --by message": command("replay", "last", "--headless", "--by", "message"),
}


@pytest.mark.parametrize("surface", SURFACES)
def test_no_control_character_leaves(logged: Logged, surface: str) -> None:
    text = shown(SURFACES[surface](logged))
    assert text.strip()
    assert leaks(text) == []


@pytest.mark.parametrize("surface", ["logs", "logs --by message", "replay --headless",
                                     "export markdown", "report"])
def test_markup_is_shown_as_text(logged: Logged, surface: str) -> None:
    text = shown(SURFACES[surface](logged))
    assert all(markup in text for markup in MARKUP)
    assert "[bold red]c[/]" in text and "model [bold]m[/]" in text  # the name, the error


def test_the_transcripts_keep_the_words_in_whole_lines(logged: Logged) -> None:
    lines = shown(SURFACES["replay --headless"](logged)).splitlines()
    talker = [line for line in lines if line.startswith("talker  | ") and "──" not in line]
    assert talker == [f"talker  | {line}" for line in [*SHOWN, f"{READABLE} "]]
    assert "failer  | ── failed: Ollama answered 400: bad " in "\n".join(lines)
    assert shown(SURFACES["logs"](logged)) == shown(SURFACES["replay --headless"](logged))
    blocks = shown(SURFACES["replay --headless --by message"](logged)).splitlines()
    start = blocks.index("talker  | ── reply")
    assert blocks[start + 1:start + len(SHOWN) + 3] == [
        *SHOWN, f"{READABLE} ", "talker  | ── finished"]
    assert shown(SURFACES["logs --by message"](logged)).splitlines() == blocks


def test_jsonl_escapes_every_control_and_round_trips_exactly(logged: Logged) -> None:
    raw = SURFACES["export jsonl"](logged)
    text = shown(raw)
    assert leaks(text) == []
    assert READABLE in text  # printable non-ASCII stays readable
    for escape in ("\\u001b", "\\u0007", "\\u0085", "\\u009b", "\\u202e", "\\u2066", "\\u061c",
                   "\\u007f"):
        assert escape in text
    events = [json.loads(line) for line in text.splitlines()]
    streamed = "".join(e["data"]["text"] for e in events
                       if e["type"] == "token" and e["agent"] == "talker")
    assert streamed == "".join(TOKENS)
    finished = next(e for e in events if e["type"] == "agent_finished" and e["agent"] == "talker")
    assert finished["data"]["output"] == "".join(TOKENS)
    assert text == shown(SURFACES["export jsonl -o"](logged)).split("cockpit: wrote")[0]


def test_an_existing_output_file_keeps_a_narrower_mode_and_is_kept_on_error(
        logged: Logged) -> None:
    out = logged.tmp / "kept.md"
    out.write_text("what was there")
    out.chmod(0o400)
    done = cockpit("report", "last", "-o", str(out), "--db", str(logged.db))
    assert done.returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o400 and out.read_text().startswith("# Report")
    out.chmod(0o644)
    failed = cockpit("report", "no-such-session", "-o", str(out), "--db", str(logged.db))
    assert failed.returncode == 2 and b"no session" in failed.stderr
    assert out.read_text().startswith("# Report")  # an error costs nothing that was there
    assert sorted(p.name for p in logged.tmp.iterdir() if "kept" in p.name) == ["kept.md"]
    nowhere = cockpit("report", "last", "-o", str(logged.tmp / "absent" / "r.md"),
                      "--db", str(logged.db))
    assert nowhere.returncode == 2 and b"Traceback" not in nowhere.stderr
    assert nowhere.stderr.decode().startswith("cockpit: cannot write ")


# -- the demo's headless text: what the agents say, on stdout ---------------------------------


async def test_headless_text_shows_whole_lines_and_nothing_unsafe(tmp_path: Path) -> None:
    """`cockpit demo --headless` prints the agents' text through the headless runner (its
    crew needs the embedded engine, so the runner is driven here with the fake Ollama)."""
    import io

    from cockpit.cli import run_headless

    crew_path, db = tmp_path / "crew.toml", tmp_path / "log.db"
    crew_path.write_text(CREW)
    out, err = io.StringIO(), io.StringIO()
    async with FakeOllama(scripts()) as fake:
        crew = load_crew(crew_path)
        crew = crew.model_copy(update={"host": fake.url})
        code = await run_headless(crew, crew_path, db, stream=err, text=out)
    assert code == 1, err.getvalue()
    assert leaks(out.getvalue()) == [] and leaks(err.getvalue()) == []
    lines = out.getvalue().splitlines()
    talker = [line for line in lines if line.startswith("talker  | ") and "──" not in line]
    assert talker == [f"talker  | {line}" for line in [*SHOWN, f"{READABLE} "]]
    assert "retrier | fine" in lines and "erring  | then" in lines
    assert "failer  | ── failed: Ollama answered 400: bad " in out.getvalue()
    assert all(re.match(r"[a-z]* *\| ", line) for line in lines)  # the transcript, only
    progress = err.getvalue()
    assert "failed    Ollama answered 400: bad " in progress and "clipboard" not in progress


# -- the TUI -----------------------------------------------------------------------------------


@pytest.mark.parametrize("viewer", ["live", "replay"])
async def test_the_tui_shows_it_inert(logged: Logged, tmp_path: Path, viewer: str) -> None:
    """What the panes hold and what is drawn, live and in a replay: no control character,
    markup as text."""
    from cockpit.ui.app import make_app
    from cockpit.ui.replay_app import open_replay

    if viewer == "replay":
        app: Any = await open_replay(logged.db, "last", speed=16)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_until(lambda: app.source.player is not None
                             and app.source.player.cursor == len(app.source.timeline),
                             what="the replay's end")
            await wait_until(lambda: app.view.outcome is not None, what="the last frame")
            texts = await tui_texts(app, pilot)
    else:
        async with FakeOllama(scripts()) as fake:
            crew = load_crew(logged.crew).model_copy(update={"host": fake.url})
            app = make_app(crew, tmp_path / "live.db", watch_themes=False)
            async with app.run_test(size=(160, 48)) as pilot:
                await wait_until(lambda: len(app.view.agents) == 4 and all(
                    a.status.ended for a in app.view.agents.values()), what="every end")
                texts = await tui_texts(app, pilot)
    assert all(markup in texts["talker"] for markup in MARKUP) and READABLE in texts["talker"]
    assert "bad" in texts["failer"] and "model [bold]m[/]" in texts["failer"]
    assert "[bold red]c[/]" in texts["titles"]
    for where, text in texts.items():
        assert leaks(text) == [], (where, text)


async def tui_texts(app: Any, pilot: Any) -> dict[str, str]:
    """Each pane's lines and header, the titles, and the screen as drawn (SVG)."""
    from cockpit.ui.widgets.stream_view import StreamView

    await pilot.pause()
    texts: dict[str, str] = {}
    for name, pane in app.cockpit.panes.items():
        texts[name] = "\n".join(pane.query_one("#body", StreamView).lines)
        texts[f"{name} header"] = str(pane.query_one("#header").render())
    texts["titles"] = f"{app.title}\n{app.sub_title}"
    texts["screen"] = app.export_screenshot()
    return texts
