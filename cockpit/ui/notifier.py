"""Rings the bell and sends desktop notifications for a viewer, as the crew's `[notify]` says.

What to say is decided in core (cockpit/core/notify.py); this delivers it: escapes through
Textual's driver (as `App.bell` and `App.copy_to_clipboard` write theirs, in order with the
screen's own output), or `notify-send` as a subprocess that the event loop never waits for.

Only news is announced. Every viewer announces on its own terminal, and a viewer that attaches
to a running session is first fed its whole history: the events the log held when the viewer
came (`start`) are shown, never announced. Replays announce nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from cockpit.core import events as ev
from cockpit.core.logreader import LogError
from cockpit.core.notify import (
    BELL,
    Notice,
    Place,
    announce,
    desktop_channel,
    notify_send_argv,
    osc9,
    osc777,
    tmux_passthrough,
)

if TYPE_CHECKING:
    from cockpit.core.logreader import LogReader
    from cockpit.ui.app import CockpitApp

NOTIFY_SEND_TIMEOUT = 5.0
"""Seconds a `notify-send` may take (it hangs when no notification server answers on D-Bus)."""
MAX_IN_FLIGHT = 3
"""`notify-send`s running at once; beyond, a notice goes to the terminal only."""


class Notifier:
    """Announces the live events of one viewer's frames.

    `write` is the terminal port: by default Textual's driver, skipped when there is no
    terminal (headless) or it is a browser's. `env` is where the terminal is recognised and
    `notify-send` is looked for (its PATH) and run with.
    """

    def __init__(self, app: CockpitApp, *, write: Callable[[str], None] | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.app = app
        self._write = write
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.history_end = 0
        """The id of the last event the log held when the viewer came: history up to it."""
        self._running: set[asyncio.Task[None]] = set()

    async def start(self, log: LogReader) -> None:
        """Mark what the log already holds of the session as history (before the source
        feeds anything). A session that starts here has none."""
        session = self.app.source.session
        if session is None or self.app.source.plays:
            return
        try:
            last = await log.events_before(session, None, 1)
        except (LogError, sqlite3.Error):
            return  # the source reads the same log, and says what is wrong with it
        self.history_end = (last[-1].id or 0) if last else 0

    def is_news(self, event: ev.BaseEvent) -> bool:
        """`event` happened after the viewer came (a live event has no log id yet, or one
        past the history)."""
        return event.id is None or event.id > self.history_end

    def frame(self, events: Sequence[ev.BaseEvent]) -> None:
        """Announce what a frame's news amounts to, once, however many agents it ended."""
        if self.app.source.plays:
            return
        news = [event for event in events if self.is_news(event)]
        notice = announce(news, self.app.crew.notify, self.app.crew.name) if news else None
        if notice is not None:
            self.deliver(notice)

    @property
    def place(self) -> Place:
        if self._write is not None:
            return "terminal"
        if self.app.is_web:
            return "web"
        return "headless" if self.app.is_headless or self.app._driver is None else "terminal"

    def deliver(self, notice: Notice) -> None:
        """The bell and the notification in one write to the terminal, or `notify-send`."""
        config = self.app.crew.notify
        place = self.place
        program = shutil.which("notify-send", path=self.env.get("PATH"))
        channel = desktop_channel(config.desktop, self.env, notify_send=program is not None,
                                  place=place)
        out = BELL if config.bell and place == "terminal" else ""
        if channel in ("osc9", "osc777"):
            sequence = osc9(notice) if channel == "osc9" else osc777(notice)
            out += tmux_passthrough(sequence) if self.env.get("TMUX") else sequence
        if out:
            self.write(out)
        if channel == "notify-send" and program is not None:
            self._notify_send(notify_send_argv(program, notice))

    def write(self, text: str) -> None:
        if self._write is not None:
            self._write(text)
        elif self.place == "terminal" and (driver := self.app._driver) is not None:
            driver.write(text)

    def _notify_send(self, argv: list[str]) -> None:
        if len(self._running) >= MAX_IN_FLIGHT:
            return
        task = asyncio.get_running_loop().create_task(self._run(argv), name="notify-send")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, argv: list[str]) -> None:
        """Run `argv` (no shell) and reap it; kill it past the timeout. Failing to notify
        is never an error for the viewer."""
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL, env=dict(self.env), start_new_session=True)
        except OSError:
            return
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), NOTIFY_SEND_TIMEOUT)
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

    async def aclose(self) -> None:
        """The viewer is leaving: end the `notify-send`s still running."""
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
