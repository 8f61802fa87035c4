"""`o` opens the focused agent's reply in $PAGER and the TUI comes back: a real pty, a real
pager program (a script that keeps what it was shown), a real replay of a logged session."""

from __future__ import annotations

from pathlib import Path

from tests.fake_ollama import FakeOllamaThread, ModelScript
from tests.owners import cockpit, cockpit_env, crew_toml, wait_for
from tests.test_signals import Terminal

REPLY = [f"pager line {i}\n" for i in range(40)]


def test_o_opens_the_reply_in_the_pager_and_the_app_comes_back(tmp_path: Path) -> None:
    crew, db, env = tmp_path / "crew.toml", tmp_path / "log.db", cockpit_env(tmp_path)
    with FakeOllamaThread({"ma": ModelScript(tokens=REPLY)}) as fake:
        crew.write_text(crew_toml(fake.url, ["a"]))
        done = cockpit("run", crew, "--headless", "--db", db, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    shown = tmp_path / "shown.txt"
    pager = tmp_path / "pager"
    pager.write_text(f'#!/bin/sh\ncp "$1" {shown}\necho "$1" > {shown}.path\n'
                     f'stat -c %a "$1" > {shown}.mode\n')
    pager.chmod(0o755)
    viewer = Terminal(["replay", "last", "--db", str(db), "--speed", "16"], tmp_path,
                      env={"PAGER": str(pager), "COCKPIT_RUNTIME_DIR": env["COCKPIT_RUNTIME_DIR"]})
    try:
        viewer.wait_for_text("pager line 39")
        viewer.write(b"o")
        wait_for(lambda: shown.exists() and Path(f"{shown}.mode").exists()
                 and Path(f"{shown}.mode").read_text().strip() != "", "the pager to run")
        assert shown.read_text() == "".join(REPLY)
        assert Path(f"{shown}.mode").read_text().strip() == "600"  # a private file ...
        given = Path(Path(f"{shown}.path").read_text().strip())
        assert given.name.startswith("cockpit-a-")
        wait_for(lambda: not given.exists(), "the reply's file to be removed")  # ... after
        mark = len(viewer.snapshot())
        viewer.write(b"?")  # the app is back and takes keys
        viewer.wait_for_text("Keys", since=mark)
        mark = len(viewer.snapshot())
        viewer.write(b"q")  # closes the help ...
        viewer.wait_for_text("pager line 39", since=mark)
        viewer.write(b"q")  # ... and leaves the replay
        assert viewer.wait_exit() == 0
    finally:
        viewer.hang_up()
