"""Theme files: TOML tables of Textual `Theme` fields, loaded, validated and watched.

The folder is watched, not the file: editors save by renaming a new file over the old one, and a
watch on the file's inode goes deaf after the first save (REFERENCE.md E). A theme that fails to
load is reported and the old one stays, so a half-typed colour never blanks the screen.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path

from textual.theme import Theme

THEME_FIELDS = {field.name for field in dataclasses.fields(Theme)}


class ThemeError(Exception):
    """A theme file that cannot be used; the message names the file."""


def bundled_theme_dir() -> Path:
    """The themes shipped inside the package (`cockpit/themes/`, package data), so a plain
    `pip install .` finds them. A real folder, not a resource stream: it is globbed and watched,
    and cockpit is installed as files, never imported from a zip."""
    return Path(str(resources.files("cockpit") / "themes"))


def theme_dirs() -> list[Path]:
    """Where theme files live: the bundled ones, then the user's config folder."""
    bundled = bundled_theme_dir()
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [bundled, config_home / "cockpit" / "themes"]


def load_theme(path: Path) -> Theme:
    """Parse and validate one theme file; `name` defaults to the file's stem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ThemeError(f"{path}: cannot read: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ThemeError(f"{path}: invalid TOML: {error}") from None
    unknown = sorted(set(data) - THEME_FIELDS)
    if unknown:
        raise ThemeError(f"{path}: unknown theme field(s): {', '.join(unknown)}")
    data.setdefault("name", path.stem)
    if "primary" not in data:
        raise ThemeError(f"{path}: `primary` is required")
    try:
        theme = Theme(**data)
        theme.to_color_system().generate()  # parses every colour now, not at render time
    except Exception as error:  # Textual raises several types for bad colours and values
        raise ThemeError(f"{path}: {error}") from None
    return theme


def load_themes(directories: list[Path]) -> tuple[dict[str, Theme], list[str]]:
    """Every `*.toml` theme in `directories` (later ones win), and the errors met."""
    themes: dict[str, Theme] = {}
    errors: list[str] = []
    for directory in directories:
        for path in sorted(directory.glob("*.toml")) if directory.is_dir() else []:
            try:
                theme = load_theme(path)
            except ThemeError as error:
                errors.append(str(error))
            else:
                themes[theme.name] = theme
    return themes, errors


async def watch_themes(directories: list[Path],
                       changed: Callable[[Path], Awaitable[None]]) -> None:
    """Call `changed(path)` for every theme file added or modified, until cancelled."""
    from watchfiles import Change, awatch

    existing = [str(d) for d in directories if d.is_dir()]
    if not existing:
        return

    def is_theme(change: Change, path: str) -> bool:
        return change != Change.deleted and path.endswith(".toml")

    async for changes in awatch(*existing, watch_filter=is_theme, recursive=False):
        for path in sorted({Path(p) for _, p in changes}):
            if path.exists():
                await changed(path)


def check_theme_name(name: str) -> None:
    """ThemeError unless `name` is a theme the app could use: checked before a session
    starts, so a misspelt `--theme` does not leave a crew running with no window."""
    from textual.theme import BUILTIN_THEMES

    themes, _ = load_themes(theme_dirs())
    if name not in themes and name not in BUILTIN_THEMES:
        choices = ", ".join(sorted(set(themes) | set(BUILTIN_THEMES)))
        raise ThemeError(f"no theme named {name!r}; choose one of: {choices}")
