"""Themes: bundled files, Textual's built-ins, live reload of an edited file, broken files."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from cockpit.ui.app import make_app
from cockpit.ui.themes import ThemeError, load_theme, load_themes, theme_dirs
from tests.conftest import PATIENCE, make_crew, wait_until
from tests.fake_ollama import FakeOllama, ModelScript

BUNDLED = theme_dirs()[0]


def test_the_bundled_themes_load() -> None:
    themes, errors = load_themes([BUNDLED])
    assert errors == []
    assert {"cockpit-dark", "cockpit-light", "cockpit-high-contrast"} <= set(themes)
    assert themes["cockpit-light"].dark is False


def test_a_broken_theme_names_the_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('primary = "#12345"\n')
    with pytest.raises(ThemeError, match=str(bad)):
        load_theme(bad)
    bad.write_text('primary = "#123456"\nprimry = "x"\n')
    with pytest.raises(ThemeError, match="unknown theme field.*primry"):
        load_theme(bad)


@pytest.mark.parametrize("name", ["cockpit-light", "nord", "cockpit-high-contrast"])
def test_theme_option_accepts_bundled_and_builtin_names(db: Path, name: str) -> None:
    crew = make_crew("http://127.0.0.1:9", [{"name": "a"}])
    assert make_app(crew, db, theme=name, watch_themes=False).theme == name


def test_an_unknown_theme_is_a_clear_error(db: Path) -> None:
    crew = make_crew("http://127.0.0.1:9", [{"name": "a"}])
    with pytest.raises(ThemeError, match="no theme named 'nope'; choose one of: .*nord"):
        make_app(crew, db, theme="nope", watch_themes=False)


async def test_an_edited_theme_reapplies_live_and_a_broken_edit_keeps_it(
    db: Path, tmp_path: Path
) -> None:
    themes = tmp_path / "themes"
    themes.mkdir()
    shutil.copy(BUNDLED / "cockpit-dark.toml", themes / "mine.toml")
    text = (themes / "mine.toml").read_text().replace('name = "cockpit-dark"', 'name = "mine"')
    (themes / "mine.toml").write_text(text)
    async with FakeOllama({"m1": ModelScript(tokens=["x"], stall_after=0)}) as fake:
        crew = make_crew(fake.url, [{"name": "a"}])
        app = make_app(crew, db, theme="mine", theme_directories=[themes], watch_themes=True)
        async with app.run_test() as pilot:
            await pilot.pause()
            assert app.current_theme.primary == "#5fafff"
            # The watcher starts in a worker with no signal that it is watching; keep saving
            # the edit until it has seen one (each save is a new change to see).
            deadline = time.monotonic() + PATIENCE
            while app.current_theme.primary != "#ff00ff":
                assert time.monotonic() < deadline, "the theme watcher never saw the edit"
                (themes / "mine.toml").write_text(text.replace("#5fafff", "#ff00ff"))
                await pilot.pause(0.05)  # the interval between saves, not a wait for a result
            assert app.get_css_variables()["primary"].lower() == "#ff00ff"
            # An editor's atomic save (write elsewhere, rename over) that breaks the file.
            broken = themes / ".mine.toml.tmp"
            broken.write_text('primary = "not a colour"\n')
            broken.replace(themes / "mine.toml")
            await wait_until(lambda: any("Theme not reloaded" in n.title
                                         for n in app._notifications), what="error notice")
            assert app.current_theme.primary == "#ff00ff"
            assert app.theme == "mine"


async def test_every_intervention_is_in_the_command_palette(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(tokens=["x"], stall_after=0)}) as fake:
        app = make_app(make_crew(fake.url, [{"name": "a"}]), db, watch_themes=False)
        async with app.run_test() as pilot:
            await pilot.pause()
            titles = {command.title for command in app.get_system_commands(app.screen)}
    assert {"Pause/resume", "Pause all", "Redirect", "Stop", "Restart", "State", "Events",
            "Zoom", "Thinking", "Follow"} <= titles
