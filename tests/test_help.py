"""`--help` teaches: every subcommand says what it does and shows an example, options show
their defaults, and `--theme` names the themes, all without importing Textual."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cockpit.arguments import textual_themes, theme_names
from cockpit.cli import build_parser


def subcommands() -> dict[str, argparse.ArgumentParser]:
    [commands] = [a for a in build_parser()._actions
                  if isinstance(a, argparse._SubParsersAction)]
    return {name: parser for name, parser in commands.choices.items() if name != "_owner"}


def test_the_subcommands_of_every_module_are_checked() -> None:
    """cli.py's, logs.py's, serve.py's and interventions.py's; a new one is checked too."""
    assert {"run", "check", "logs", "serve", "pause", "deny", "export"} <= set(subcommands())


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_each_subcommands_help_has_a_description_and_an_example(name: str) -> None:
    parser = subcommands()[name]
    text = parser.format_help()
    assert parser.description and len(parser.description) > 20, name
    assert parser.epilog and parser.epilog.startswith(("example:\n", "examples:\n")), name
    examples = [line.strip() for line in parser.epilog.splitlines()[1:] if line.startswith("  ")]
    assert any(f"cockpit {name} " in f"{line} " for line in examples), examples
    assert parser.description.split()[0] in text and examples[0] in text


def test_defaults_are_shown() -> None:
    helps = {name: parser.format_help() for name, parser in subcommands().items()}
    assert "(default: jsonl)" in " ".join(helps["export"].split())
    assert "(default: 8000)" in " ".join(helps["serve"].split())
    assert "(default: line)" in " ".join(helps["logs"].split())
    assert "Default: ask" in " ".join(helps["run"].split())
    assert "(default: None)" not in "".join(helps.values())  # none for options without one
    assert "(default: False)" not in "".join(helps.values())


def test_theme_help_lists_the_bundled_and_textual_themes(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    from textual.theme import BUILTIN_THEMES

    assert textual_themes() == list(BUILTIN_THEMES)  # read from the source, as imported
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "cockpit" / "themes").mkdir(parents=True)
    (tmp_path / "cockpit" / "themes" / "mine.toml").write_text('primary = "#ff0000"\n')
    names = theme_names.__wrapped__()
    assert names[:4] == ["cockpit-dark", "cockpit-high-contrast", "cockpit-light", "mine"]
    assert names[4:] == list(BUILTIN_THEMES)


def test_top_level_help_runs_without_textual() -> None:
    code = ("import sys; from cockpit.cli import main\n"
            "try:\n    main(['run', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('textual' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.stderr.strip() == "False"
    text = " ".join(done.stdout.split())
    assert "--theme NAME TUI theme (default: cockpit-dark): cockpit-dark," in text
    assert "nord" in text and "catppuccin-latte" in text
    top = subprocess.run([sys.executable, "-m", "cockpit", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert top.returncode == 0
    assert "examples:\n  cockpit demo" in top.stdout
    assert "`cockpit COMMAND --help` describes each command" in top.stdout


def test_the_readmes_links_work_from_a_clone() -> None:
    """Relative links (the design document, the screenshots) name files in the repository."""
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme)
    assert "docs/DESIGN.md" in links
    assert [link for link in links if not (root / link).is_file()] == []
    assert (root / "docs" / "DESIGN.md").read_text(encoding="utf-8").startswith("# cockpit")
