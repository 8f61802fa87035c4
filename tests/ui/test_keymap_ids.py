"""The binding ids `cockpit check` accepts in `[keymap]` are the ids the UI declares.

`cockpit/core/keys.py` keeps the list because core may not import Textual; this test reads
the UI's own `Binding`s, so a binding added, renamed or removed without the list failing here
cannot drift apart from what `check` accepts.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from textual.binding import Binding
from textual.dom import DOMNode

import cockpit.ui
from cockpit.arguments import DEFAULT_THEME
from cockpit.core.keys import BINDING_IDS


def declared_ids() -> set[str]:
    """Every `id=` of a Binding in a BINDINGS of an app, screen or widget class of cockpit.ui."""
    ids: set[str] = set()
    for info in pkgutil.walk_packages(cockpit.ui.__path__, "cockpit.ui."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or not issubclass(cls, DOMNode):
                continue
            for binding in cls.__dict__.get("BINDINGS", []):
                if isinstance(binding, Binding) and binding.id:
                    ids.add(binding.id)
    return ids


def test_the_keymap_ids_core_knows_are_the_ones_the_ui_declares() -> None:
    declared = declared_ids()
    assert "cockpit.pause" in declared and "replay.toggle" in declared  # the walk finds them
    assert sorted(declared - BINDING_IDS) == [], "add these to cockpit/core/keys.py"
    assert sorted(BINDING_IDS - declared) == [], "remove these from cockpit/core/keys.py"


def test_help_names_the_default_theme_the_app_uses() -> None:
    from cockpit.ui.app import DEFAULT_THEME as APP_DEFAULT

    assert DEFAULT_THEME == APP_DEFAULT
