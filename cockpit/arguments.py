"""Arguments every subcommand shares, in a module of their own: the full command line
(cli.py) and the light path of commands from a shell (interventions.py) declare them alike
without one importing the other's weight. Also how `--help` reads: each subcommand says what
it does, shows an example, and gives each option's default."""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import re
import textwrap
from pathlib import Path
from typing import Any

SESSION_HELP = "a session id (or prefix), or 'last'"
DEFAULT_THEME = "cockpit-dark"
"""The app's default theme (cockpit/ui/app.py, which --help does not import)."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples keep the lines they were written with: a paragraph is
    wrapped to the terminal, an indented line (an example) is left as it is. Each option with
    a default says it, and names are not cut at their hyphens."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(
            line if line[:1].isspace() or not line else
            textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent,
                          break_on_hyphens=False)
            for line in text.splitlines())

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = (action.help or "").replace("{themes}", ", ".join(theme_names()))
        default = action.default
        if ("default" in text.lower() or default in (None, False, argparse.SUPPRESS, [])
                or not (action.option_strings or action.nargs in ("?", "*"))):
            return text
        return f"{text} (default: %(default)s)"


def add_command(commands: Any, name: str, *, help: str, description: str,  # noqa: A002
                example: str) -> argparse.ArgumentParser:
    """A subcommand with a description and an example, shown by `cockpit NAME --help`."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=help, description=description, epilog=example,
        formatter_class=HelpFormatter)
    return parser


def add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", type=Path, default=None, metavar="PATH",
        help="event log (default: $COCKPIT_DB, else ~/.local/share/cockpit/cockpit.db)",
    )


def add_theme(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--theme", metavar="NAME", help=THEME_HELP)


THEME_HELP = (f"TUI theme (default: {DEFAULT_THEME}): {{themes}}; or the name of a theme file "
              "in ~/.config/cockpit/themes")
"""`{themes}` is filled in only when help is shown, and without importing Textual, which costs
more than the rest of `cockpit --help`."""


@functools.cache
def theme_names() -> list[str]:
    """The bundled themes (cockpit/themes), the user's, then Textual's own."""
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    ours: set[str] = set()
    for folder in (Path(__file__).parent / "themes", config_home / "cockpit" / "themes"):
        if folder.is_dir():
            ours.update(path.stem for path in folder.glob("*.toml"))
    return sorted(ours) + [name for name in textual_themes() if name not in ours]


def textual_themes() -> list[str]:
    """The names of Textual's BUILTIN_THEMES, read from its source rather than imported."""
    spec = importlib.util.find_spec("textual")  # finds the package without running it
    if spec is None or not spec.origin:
        return []
    try:
        source = (Path(spec.origin).parent / "theme.py").read_text(encoding="utf-8")
    except OSError:
        return []
    table = source.partition("BUILTIN_THEMES")[2]
    return re.findall(r'^    "([\w-]+)": Theme\(', table, flags=re.MULTILINE)
