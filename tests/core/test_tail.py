"""The tail's merging of streamed text: fewer events, the same story.

Rows come from a real log written by a real `EventLog`; the merged events are checked against
the unmerged decode of the same rows.
"""

from __future__ import annotations

from pathlib import Path

from cockpit.core import events as ev
from cockpit.core.eventlog import EventLog
from cockpit.core.logschema import decode
from cockpit.core.state import fold
from cockpit.core.tail import LogTail, merge_text


async def write(db: Path) -> None:
    seq = 0
    async with EventLog.open(db) as log:
        def emit(kind: type[ev.BaseEvent], agent: str | None, **data: object) -> None:
            nonlocal seq
            seq += 1
            log.append(kind(session="s", agent=agent, seq=seq, ts=float(seq), **data))

        emit(ev.SessionStarted, None, crew="c", config={"agents": [{"name": "a"}, {"name": "b"}]},
             pid=1, version="t")
        for name in "ab":
            emit(ev.AgentStarted, name, model="m", host="h", messages=[])
        for i in range(6):
            emit(ev.TokenStreamed, "a", text=f"a{i} ", chunks=1)
            emit(ev.TokenStreamed, "b", text=f"b{i} ", chunks=2)
        emit(ev.ThinkingStreamed, "a", text="hmm ", chunks=1)
        emit(ev.TokenStreamed, "a", text="after-thinking ", chunks=1)
        emit(ev.AgentPaused, "a", by="person")
        emit(ev.TokenStreamed, "b", text="b-more ", chunks=1)
        emit(ev.StateSet, None, key="k", value=1, by="person")
        emit(ev.TokenStreamed, "a", text="a-after-pause ", chunks=1)
        emit(ev.TokenStreamed, "b", text="b-last", chunks=1)


async def test_merged_text_tells_the_same_story_in_fewer_events(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    await write(db)
    async with EventLog.open(db, readonly=True) as log:
        rows = await log.rows("s", 0, 1000)
    plain = [decode(row) for row in rows]
    merged = merge_text(rows)
    assert len(merged) < len(plain)

    def story(events: list[ev.BaseEvent], agent: str) -> list[tuple[str, str]]:
        """An agent's events in order, with consecutive streamed text of one kind joined."""
        out: list[tuple[str, str]] = []
        for event in events:
            if event.agent not in (agent, None):
                continue
            text = getattr(event, "text", None) if event.type in ("token", "thinking") else None
            if text is not None and out and out[-1][0] == event.type:
                out[-1] = (event.type, out[-1][1] + text)
            else:
                out.append((event.type, text or ""))
        return out

    for agent in "ab":
        assert story(merged, agent) == story(plain, agent)
    a, b = fold(plain), fold(merged)
    for name in "ab":
        assert b.agents[name].partial == a.agents[name].partial
        assert b.agents[name].tokens == a.agents[name].tokens
        assert b.agents[name].first_token_at == a.agents[name].first_token_at
    assert merged[-1].id == plain[-1].id or merged[-2].id == plain[-1].id
    # b's first run is one event: a's pause does not cut it; the board write does
    first_b = next(e for e in merged if e.agent == "b" and e.type == "token")
    assert isinstance(first_b, ev.TokenStreamed)
    assert first_b.text == "b0 b1 b2 b3 b4 b5 b-more " and first_b.chunks == 13


async def test_a_tail_in_pages_reads_every_row_once(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    await write(db)
    async with EventLog.open(db, readonly=True) as log:
        whole = fold([decode(row) for row in await log.rows("s", 0, 1000)])
        tail = LogTail(log, "s", page=4)
        paged = fold(await tail.poll())
        assert await tail.poll() == []
    for name in "ab":
        assert paged.agents[name].partial == whole.agents[name].partial
        assert paged.agents[name].tokens == whole.agents[name].tokens
