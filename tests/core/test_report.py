"""The morning report is derived from the log alone, and its figures match the events."""

from __future__ import annotations

import io
from pathlib import Path

from cockpit.core import events as ev
from cockpit.core.eventlog import EventLog
from cockpit.core.report import write_report
from tests.conftest import make_crew, running, wait_until
from tests.fake_ollama import FakeOllama, ModelScript

WORDS = [f"w{i} " for i in range(60)]


def table_row(report: str, agent: str) -> list[str]:
    line = next(line for line in report.splitlines() if line.startswith(f"| {agent} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


async def test_report_figures_match_the_events(db: Path) -> None:
    scripts = {"m1": ModelScript(tokens=WORDS, delay=0.002, fail_first=1, fail_status=503),
               "gone": ModelScript(tokens=["x"], fail_first=99, fail_status=500)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a"}, {"name": "b", "model": "gone"}],
                         retries=1, state={"topic": "reports"})
        async with running(crew, db) as session:
            await wait_until(lambda: session.state.agents["a"].tokens >= 5, what="a streaming")
            await session.supervisor.pause("a")
            await session.supervisor.resume("a")
            await session.supervisor.wait()
    async with EventLog.open(db, create=False) as log:
        session_id = await log.resolve("last")
        events = [e async for e in log.iter_events(session_id)]
        out = io.StringIO()
        await write_report(log, session_id, out)
    report = out.getvalue()

    for name in "ab":
        mine = [e for e in events if e.agent == name]
        row = table_row(report, name)
        tokens = sum(e.chunks for e in mine if isinstance(e, ev.TokenStreamed))
        retries = sum(isinstance(e, ev.Retrying) for e in mine)
        stalls = sum(isinstance(e, ev.Stalled) for e in mine)
        interventions = sum(isinstance(e, ev.AgentPaused | ev.AgentResumed | ev.AgentRedirected
                                       | ev.AgentStopped | ev.AgentRestarted)
                            and getattr(e, "by", "") != "supervisor" for e in mine)
        assert row[0] == name
        assert [int(row[3]), int(row[5]), int(row[6]), int(row[7])] == [
            tokens, retries, stalls, interventions]
    assert table_row(report, "a")[1] == "finished" and table_row(report, "b")[1] == "failed"
    assert int(table_row(report, "a")[3]) == len(WORDS)  # pause and retry lost no token
    assert int(table_row(report, "a")[5]) == 1 and int(table_row(report, "a")[7]) == 2
    error = next(e.error for e in events if isinstance(e, ev.AgentFailed))
    assert f"Error: {error}" in report
    assert "> w0 w1 w2" in report  # the first lines of a's output
    notable = [e for e in events if e.notable]
    timeline = report.split("## Timeline")[1].split("## Final board")[0]
    assert timeline.count("\n| ") - 1 == len(notable)  # one row each (minus the header)
    assert "paused by person" in timeline and "retry 1 in" in timeline
    board = report.split("## Final board")[1]
    assert "| `topic` | reports | crew | 1 |" in board
    assert "| `outputs.a` | w0 w1" in board
