"""The quick soak (benchmarks/soak.py --quick) as a test: a simulated night of faults, host
restarts, a locked log and a SIGKILL followed by `cockpit resume`, against the fake Ollama in its
own process. Every agent must finish unattended and no event may be lost (the log checked
against the fake's record of what it sent).

The soak waits on conditions itself (process exits, file contents); the only timed things are
the fault schedule, which is the point of it, and an overall limit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 170  # seconds; the quick soak takes about 70-90


@pytest.mark.slow
def test_quick_soak_finishes_every_agent_and_loses_nothing(tmp_path: Path) -> None:
    work = tmp_path / "soak"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--quick", "--seed", "1",
         "--json", "--workdir", str(work), "--timeout", str(LIMIT - 20)],
        capture_output=True, text=True, timeout=LIMIT, cwd=ROOT)
    assert done.stdout, f"the soak printed no report:\n{done.stderr[-4000:]}"
    report = json.loads(done.stdout)
    summary = json.dumps({k: report[k] for k in (
        "completion", "lost", "retries", "retries_by_reason", "waiting_s", "faults_struck",
        "injected", "planned", "runs", "checks", "problems", "notes")}, indent=1)
    errors = {name: a["error"] for name, a in report["per_agent"].items() if a["error"]}
    assert report["injected_all"], f"the schedule was not fully injected:\n{summary}"
    assert report["completion"] == 1.0, f"agents failed: {errors}\n{summary}"
    assert report["lost"] == 0, summary
    assert all(report["checks"].values()), summary
    assert done.returncode == 0, summary
