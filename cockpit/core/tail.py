"""Following a session's log as another process writes it: what attached viewers and
`cockpit logs -f` read.

The owner process commits events in batches (eventlog.py); a reader in another process sees
each batch once it is committed (WAL: readers never block the writer, nor it them). A tail
remembers the id of the last row it read and asks for the rows after it, so every event is
seen exactly once and in log order, however the polls and the batches interleave. The owner
is never asked for anything: a viewer that dies, or reads slowly, costs the crew nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

from cockpit.core.events import BaseEvent, ThinkingStreamed, TokenStreamed
from cockpit.core.logreader import LogReader
from cockpit.core.logschema import Row, decode

POLL_EVERY = 0.02
"""Seconds between polls while nothing new arrives: well inside a frame (1/30 s)."""
PAGE = 5000


class LogTail:
    """The events of session `session` after row `after_id`, as they are committed."""

    def __init__(self, log: LogReader, session: str, after_id: int = 0, *,
                 every: float = POLL_EVERY, page: int = PAGE) -> None:
        self.log = log
        self.session = session
        self.after_id = after_id
        """The id of the last row read: the next poll starts after it."""
        self.every = every
        self.page = page
        self._woken = asyncio.Event()

    async def poll(self) -> list[BaseEvent]:
        """Every event committed since the last poll (possibly none), in log order, with each
        agent's streamed text merged (see `merge_text`)."""
        events: list[BaseEvent] = []
        while True:
            rows = await self.log.rows(self.session, self.after_id, self.page)
            if rows:
                self.after_id = rows[-1][0]
                events.extend(merge_text(rows))
            if len(rows) < self.page:
                return events

    def wake(self) -> None:
        """Poll now rather than at the next tick (a command was just committed)."""
        self._woken.set()

    async def follow(self, publish: Callable[[list[BaseEvent]], None],
                     until: Callable[[], bool] = lambda: False) -> None:
        """Hand each poll's events to `publish` until `until()` holds after a poll (or the
        task is cancelled)."""
        while True:
            events = await self.poll()
            if events:
                publish(events)
            if until():
                return
            if not events:
                self._woken.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._woken.wait(), self.every)


STREAMED: dict[str, type[TokenStreamed] | type[ThinkingStreamed]] = {
    "token": TokenStreamed, "thinking": ThinkingStreamed}


def merge_text(rows: list[Row]) -> list[BaseEvent]:
    """Decode a page of rows, merging each agent's consecutive streamed text into one event.

    The contract allows it (token events may merge chunks; their texts, concatenated in order,
    are what the model streamed), and an attached viewer reading a long session's history gets
    a few events per reply instead of one per chunk: no pydantic object per token, one pane
    write per run. An agent's text is cut at its own next event of any other kind (its pause,
    its tool call, a message to it) and before any session-level event, so nothing moves past
    what it came before. A merged event has the first chunk's time and seq (rates stay honest,
    seqs stay in order) and the last one's id.
    """
    events: list[BaseEvent] = []
    runs: dict[tuple[str, str], tuple[int, list[str], int, Row]] = {}
    """(agent, type) -> (index in events, texts, chunks, first row) while a run is open."""

    def close(key: tuple[str, str]) -> None:
        at, texts, chunks, first = runs.pop(key)
        last = last_rows[key]
        events[at] = STREAMED[key[1]].model_construct(
            id=last[0], session=first[1], agent=key[0], seq=first[3], ts=first[4], type=key[1],
            text="".join(texts), chunks=chunks)

    last_rows: dict[tuple[str, str], Row] = {}
    for row in rows:
        agent, kind = row[2], row[5]
        if kind in STREAMED and agent is not None:
            key = (agent, kind)
            data = json.loads(row[6])
            run = runs.get(key)
            if run is None:
                other = (agent, "thinking" if kind == "token" else "token")
                if other in runs:
                    close(other)
                events.append(None)  # type: ignore[arg-type]  # filled by close()
                runs[key] = (len(events) - 1, [data["text"]], int(data.get("chunks", 1)), row)
            else:
                run[1].append(data["text"])
                runs[key] = (run[0], run[1], run[2] + int(data.get("chunks", 1)), run[3])
            last_rows[key] = row
            continue
        event = decode(row)
        target = getattr(event, "to", None)  # a message to an agent is in its pane's flow
        for key in [k for k in runs if agent is None or k[0] in (agent, target)]:
            close(key)
        events.append(event)
    for key in list(runs):
        close(key)
    return events
