"""SVG snapshots of the cockpit (pytest-textual-snapshot). Synchronous tests: snap_compare runs
the app with asyncio.run, so the fake server lives in a thread (REFERENCE.md C.5).

Update with `pytest tests/ui/test_snapshots.py --snapshot-update` and review the diff."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fake_ollama import FakeOllamaThread
from tests.ui.snapshot_apps import CREW, SCRIPTS, mid_stream, streaming_app, wait_for


@pytest.fixture
def fake() -> Iterator[FakeOllamaThread]:
    with FakeOllamaThread(dict(SCRIPTS)) as server:
        yield server


def test_main_screen_mid_stream(snap_compare: Any, fake: FakeOllamaThread, db: Path) -> None:
    app = streaming_app(fake, db)
    assert snap_compare(app, terminal_size=(160, 48), run_before=wait_for(app, mid_stream(app)))


def test_a_failed_agent(snap_compare: Any, db: Path) -> None:
    with FakeOllamaThread(dict(SCRIPTS)) as fake:
        crew = CREW.replace('model = "qwen2.5:7b"', 'model = "missing:70b"')
        app = streaming_app(fake, db, crew)

        def ready() -> bool:
            agents = app.view.agents
            return bool(agents) and agents["risks"].status == "failed" and \
                agents["features"].tokens == 40

        assert snap_compare(app, terminal_size=(160, 48), run_before=wait_for(app, ready))


def test_inspector(snap_compare: Any, fake: FakeOllamaThread, db: Path) -> None:
    app = streaming_app(fake, db)
    assert snap_compare(app, terminal_size=(160, 48), press=["1", "s"],
                        run_before=wait_for(app, mid_stream(app)))


def test_help(snap_compare: Any, fake: FakeOllamaThread, db: Path) -> None:
    app = streaming_app(fake, db)
    assert snap_compare(app, terminal_size=(160, 48), press=["question_mark"],
                        run_before=wait_for(app, mid_stream(app)))


def test_small_terminal_80x24(snap_compare: Any, fake: FakeOllamaThread, db: Path) -> None:
    app = streaming_app(fake, db)
    assert snap_compare(app, terminal_size=(80, 24), run_before=wait_for(app, mid_stream(app)))
