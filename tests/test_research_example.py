"""examples/research.toml runs to the end against the scripted research scenario, every board
write approved or denied, the reviewer's verdict corrected once to pass its schema."""

from __future__ import annotations

from pathlib import Path

from cockpit.core import events as ev
from cockpit.core.config import load_crew
from tests.conftest import running, wait_until
from tests.fake_ollama import FakeOllama, ModelScript
from tests.scenarios import research

EXAMPLE = Path(__file__).parent.parent / "examples" / "research.toml"


async def test_the_research_example_runs_with_every_write_decided(db: Path) -> None:
    crew = load_crew(EXAMPLE)
    async with FakeOllama({"qwen2.5:7b": ModelScript(turn=research)}) as fake:
        crew = crew.model_copy(update={"host": fake.url})
        async with running(crew, db) as session:
            decided = 0
            while not session.state.all_ended:
                await wait_until(lambda: bool(session.state.approvals)
                                 or session.state.all_ended, what="an approval or the end")
                for call_id, pending in list(session.state.approvals.items()):
                    if pending.arguments.get("key") == "findings.3":
                        await session.supervisor.decide(call_id, "denied",
                                                        reason="two findings are enough")
                    else:
                        await session.supervisor.decide(call_id, "approved")
                    decided += 1
            state = await session.supervisor.wait()
            logged = await session.logged()
    assert state.outcome == "finished", {n: a.error for n, a in state.agents.items()}
    assert decided == 4  # three findings (one denied) and the draft
    assert "findings.3" not in state.board and state.board["findings.1"].by == "researcher"
    assert state.board["draft"].by == "writer"
    sent = next(e for e in logged if isinstance(e, ev.MessageSent))
    assert (sent.from_, sent.to) == ("writer", "reviewer")
    checks = [e.passed for e in logged if isinstance(e, ev.OutputChecked)]
    assert checks == [False, True]
    assert state.board["outputs.reviewer"].value["verdict"] == "accept"

    import io

    from cockpit.core.eventlog import EventLog
    from cockpit.core.report import write_report

    out = io.StringIO()
    async with EventLog.open(db, create=False) as log:
        await write_report(log, state.session, out)
    report = out.getvalue()
    assert "### reviewer\n\nOutput (verified: it passed its checks)" in report
    assert "### writer\n\nOutput (not verified: it has no checks)" in report
    assert "| writer | 3 | 1 | 0 |" in report  # calls, messages sent, wake-ups
    assert "denied by person (researcher.3.1): two findings are enough" in report
