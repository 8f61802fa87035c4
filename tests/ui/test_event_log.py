"""The event-log screen (`l`) against a live session: every event once, including those that
arrive while it reads its first page from SQLite."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from textual import events
from textual.widgets import DataTable

from cockpit.core import events as ev
from cockpit.ui.app import CockpitApp
from cockpit.ui.screens.event_log import EventLogScreen, merged
from tests.conftest import PATIENCE, wait_until
from tests.fake_ollama import FakeOllama, ModelScript
from tests.ui.test_cockpit import SIZE, app_for

TOKENS = [f"t{i} " for i in range(12)]


def shown_seqs(app: CockpitApp) -> list[int]:
    table = app.screen.query_one(DataTable)
    return [int(str(table.get_row_at(i)[0])) for i in range(table.row_count)]


def event(seq: int) -> ev.BaseEvent:
    return ev.TokenStreamed(session="s", agent="a", seq=seq, ts=0.0, text=str(seq))


def test_merge_keeps_each_event_once_in_order() -> None:
    page = [event(1), event(2), event(3)]
    arrived = [event(3), event(5), event(4), event(5)]  # one the page holds, one twice
    assert [e.seq for e in merged(page, arrived)] == [1, 2, 3, 4, 5]
    assert [e.seq for e in merged([], arrived)] == [3, 4, 5]


async def test_events_that_arrive_while_the_first_page_is_read_are_shown(db: Path) -> None:
    """Another connection holds the log's write lock while `l` opens: the screen's first read
    waits behind the log's flush, and exactly then the log reports itself stuck and the agent
    is paused and, once the lock goes, resumed. Those events reach the UI while the read is
    pending. A screen that subscribed only after reading showed them only if the writer's next
    batch happened to land before its read (it missed one in about a third of the runs)."""
    opened = {"upto": 3}
    script = ModelScript(tokens=TOKENS, gate=lambda i: i < opened["upto"])
    async with FakeOllama({"m1": script}) as fake:
        app = app_for(fake, db, [{"name": "a"}])
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: app.view.agents.get("a") is not None
                             and app.view.agents["a"].tokens == 3, what="3 tokens, then held")
            assert app.log_store is not None and app.session is not None
            await app.log_store.flush()
            lock = sqlite3.connect(db, isolation_level=None, timeout=30,
                                   check_same_thread=False)
            try:  # in a thread: a commit in flight must not wait on a blocked loop
                await asyncio.to_thread(lock.execute, "BEGIN IMMEDIATE")
                opened["upto"] = 4  # one more token: a batch the screen's flush waits for
                await wait_until(lambda: app.view.agents["a"].tokens == 4, what="token 4")
                # Not pilot.press: it waits for the screen to be idle, and it is not, it reads.
                app.post_message(events.Key("l", "l"))
                await wait_until(lambda: isinstance(app.screen, EventLogScreen)  # composed, too
                                 and any(table.loading for table in app.screen.query(DataTable)),
                                 what="the screen reading its first page")
                await wait_until(lambda: app.view.log_stuck is not None,
                                 what="the log to say it is stuck (the UI has the event)")
                assert isinstance(app.screen, EventLogScreen)
                assert app.screen.query_one(DataTable).loading, "the read waits for the log"
            finally:
                lock.rollback()
                lock.close()
            opened["upto"] = len(TOKENS)
            await wait_until(lambda: app.view.agents["a"].status == "finished", what="finished")

            deadline = time.monotonic() + PATIENCE
            while True:  # the log as it is now, against the screen (events may still come)
                await app.log_store.flush()
                logged = await app.log_store.events(app.session, 0, 10_000)
                shown = shown_seqs(app)
                if shown == [e.seq for e in logged] or time.monotonic() > deadline:
                    break
                await pilot.pause()
            types = {e.seq: getattr(e, "type", "") for e in logged}
            missing = sorted(set(types) - set(shown))
            assert not missing, f"not shown: {[(seq, types[seq]) for seq in missing]}"
            assert shown == list(types)  # each once, in order
            assert {"log_stuck", "log_recovered"} <= set(types.values())
