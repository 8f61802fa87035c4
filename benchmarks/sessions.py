"""Sessions that run apart from their viewers (issue 11): what commanding, attaching and watching
a detached crew cost.

The crew runs in its own owner process (`cockpit run --detach`) against the fake Ollama, which
is a third process, so neither shares a GIL with the benchmark. Measured side by side in one
run, alternating, medians and percentiles (these machines are noisy):

1. Command latency, from issuing a command to its event being committed, 8 agents streaming
   (at 100 tok/s each, then at full speed), the commands rotating over the agents:
   (a) the channel: a `ControlClient` request (pause, then resume) on an open connection,
       from send to answer; the owner answers only after the commit, and the benchmark checks
       that the event is in the log when the answer arrives;
   (b) the shell: the wall time of `cockpit pause|resume SESSION AGENT` until it exits (it
       exits after the commit), beside `python -c pass` and `python -m cockpit --version`,
       which show how much of it is interpreter and import start-up (`pause` takes the light
       path of cockpit/entry.py, and so does `resume SESSION AGENT`).
   Target: p95 < 100 ms.
2. Attaching to a running session of ~100k events: the session is generated through the real
   `EventLog` (8 agents, many turns, merged token events as the runner writes them), then
   continued by a real owner (`cockpit resume ID --detach`, streaming slowly). Timed:
   `AttachedSource.open` and the viewer's read of the history (`LogTail.poll`, then the fold),
   in this process, and `cockpit attach ID` in a pseudo-terminal from launch to the first
   frame that shows every pane caught up. Target < 1 s.
3. What attached viewers cost the crew: 8 agents x 3000 tokens at full speed, detached, with
   no viewer against 2 TUI viewers (`cockpit attach` in ptys), alternating. The workers start
   after a short `gate` agent, which is held paused until the viewers show their panes, so
   the viewers watch the whole crew; the crew's wall time is read from the log, from the
   workers' first `agent_started` to `session_finished`.

    python benchmarks/sessions.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import pty
import random
import re
import select
import signal
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cockpit.core import events as ev  # noqa: E402
from cockpit.core.config import parse_crew  # noqa: E402
from cockpit.core.control import ControlClient  # noqa: E402
from cockpit.core.eventlog import EventLog  # noqa: E402
from cockpit.core.sources import AttachedSource  # noqa: E402
from cockpit.core.state import fold  # noqa: E402
from cockpit.core.tail import LogTail  # noqa: E402

PY = sys.executable
TIMEOUT = 120.0
AGENTS = [f"worker{i}" for i in range(8)]
OWNERS: set[int] = set()
"""Every owner process this benchmark started (read from the sessions table): killed at the end."""


# -- plumbing ------------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], object], what: str, timeout: float = TIMEOUT) -> None:
    """Poll a condition; no fixed sleeps."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.005)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def ms(values: list[float]) -> str:
    return (f"p50 {statistics.median(values) * 1000:6.1f} ms   p95 "
            f"{percentile(values, 0.95) * 1000:6.1f} ms   max {max(values) * 1000:6.1f} ms")


def load() -> str:
    return "load average " + " / ".join(f"{x:.2f}" for x in os.getloadavg())


@contextlib.contextmanager
def fake_ollama(*args: str) -> Iterator[str]:
    """tests/fake_ollama.py as its own process; yields its URL."""
    server = subprocess.Popen([PY, str(ROOT / "tests" / "fake_ollama.py"), *args],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip()
    finally:
        server.terminate()
        server.wait(timeout=TIMEOUT)


def crew_file(path: Path, url: str, gate: bool = False) -> Path:
    lines = [f'name = "bench"\nmodel = "m1"\nhost = "{url}"\nstall_timeout = 600\n']
    if gate:
        lines.append('[[agents]]\nname = "gate"\nmodel = "gate"\ntask = "open"\n')
    for name in AGENTS:
        lines.append(f'[[agents]]\nname = "{name}"\ntask = "go {name}"\n'
                     + ('after = ["gate"]\n' if gate else ""))
    path.write_text("\n".join(lines))
    return path


def cockpit(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([PY, "-m", "cockpit", *args], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"cockpit {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done


def detach(*args: str, db: Path) -> str:
    """`cockpit run|resume ... --detach`: the session id, once it runs. Its owner is noted."""
    session = cockpit(*args, "--detach", "--db", str(db)).stdout.split()[0]
    OWNERS.update(int(pid) for (pid,) in query(db, "SELECT pid FROM sessions") if pid)
    return session


def query(db: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Read the log as another process would: read-only, never in the writer's way."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True,
                                            timeout=TIMEOUT)) as connection:
        return connection.execute(sql, params).fetchall()


def last_id(db: Path) -> int:
    return int(str(query(db, "SELECT coalesce(max(id), 0) FROM events")[0][0]))


def logged(db: Path, after: int, agent: str | None, kind: str) -> bool:
    return bool(query(db, "SELECT 1 FROM events WHERE id > ? AND agent IS ? AND type = ?",
                      after, agent, kind))


def alive(pid: int) -> bool:
    """Owners are not our children (their launcher exited): a zombie counts as gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_owners() -> None:
    for pid in OWNERS:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class Terminal:
    """`cockpit ARGS` with a pty as its controlling terminal (after tests/test_signals.py);
    everything it writes is read on a thread and kept."""

    LEADER = ("import fcntl, os, sys, termios; os.setsid(); "
              "fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
              "os.execv(sys.executable, [sys.executable, '-m', 'cockpit', *sys.argv[1:]])")

    def __init__(self, args: list[str], size: tuple[int, int] = (40, 160)) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTUAL")}
        env.update(TERM="xterm-256color", LINES=str(size[0]), COLUMNS=str(size[1]))
        self.master = master
        self.output = bytearray()
        self.lock = threading.Lock()
        self.started = time.perf_counter()
        try:
            self.process = subprocess.Popen([PY, "-c", self.LEADER, *args], stdin=slave,
                                            stdout=slave, stderr=slave, env=env, cwd=ROOT,
                                            close_fds=True)
        finally:
            os.close(slave)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            select.select([self.master], [], [], 1.0)
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the child is gone
                return
            if not chunk:
                return
            with self.lock:
                self.output += chunk

    def text(self) -> str:
        """What it wrote, escape sequences removed (a word split by one is found whole)."""
        with self.lock:
            raw = bytes(self.output)
        return re.sub(r"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|.)", "",
                      raw.decode("utf-8", "replace"))

    def shows(self, *patterns: str) -> bool:
        """Whether every regular expression in `patterns` matches what it has drawn."""
        if self.process.poll() is not None:
            raise SystemExit(f"the viewer exited {self.process.returncode}: "
                             f"{self.text()[-2000:]}")
        screen = self.text()
        return all(re.search(pattern, screen) for pattern in patterns)

    def close(self) -> None:
        """SIGHUP, as a closed terminal: the viewer detaches and the crew goes on."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGHUP)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.reader.join(timeout=10)
        os.close(self.master)


# -- 1. command latency --------------------------------------------------------------------------


def command_latency(tmp: Path, rounds: int, delay: float) -> dict[str, list[float]]:
    """Each round: channel pause + resume, shell pause + resume, the two start-up baselines,
    on one agent (rotating), while all eight stream."""
    samples: dict[str, list[float]] = {
        k: [] for k in ("channel pause", "channel resume", "pause", "resume", "pass", "version")}
    db = tmp / f"commands-{delay}.db"
    tokens = 50_000 if delay else 2_000_000  # enough to outlast every round
    with fake_ollama("--tokens", str(tokens), "--models", "m1", "--delay", str(delay)) as url:
        session = detach("run", str(crew_file(tmp / "commands.toml", url)), db=db)
        wait_for(lambda: all(logged(db, 0, name, "token") for name in AGENTS),
                 "every agent to stream")
        with asyncio.Runner() as loop:
            client = loop.run(ControlClient.connect(db, session))
            for index in range(rounds):
                agent = AGENTS[index % len(AGENTS)]
                for op, kind in (("pause", "agent_paused"), ("resume", "agent_resumed")):
                    mark = last_id(db)
                    start = time.perf_counter()
                    loop.run(client.call(op, agent=agent))
                    samples[f"channel {op}"].append(time.perf_counter() - start)
                    assert logged(db, mark, agent, kind), f"{kind} not committed on answer"
                    streaming_again(db, agent, mark, op)
                for verb, kind in (("pause", "agent_paused"), ("resume", "agent_resumed")):
                    mark = last_id(db)
                    samples[verb].append(timed([PY, "-m", "cockpit", verb, session, agent,
                                                   "--db", str(db)]))
                    assert logged(db, mark, agent, kind), f"{kind} not committed on exit"
                    streaming_again(db, agent, mark, verb)
                samples["pass"].append(timed([PY, "-c", "pass"]))
                samples["version"].append(timed([PY, "-m", "cockpit", "--version"]))
            loop.run(client.aclose())
        assert not logged(db, 0, None, "session_finished"), "the crew ended before the rounds"
    return samples


def streaming_again(db: Path, agent: str, mark: int, op: str) -> None:
    """After a resume, wait until the agent's tokens flow again (so the next pause meets a
    streaming agent, not one still reconnecting)."""
    if op == "resume":
        wait_for(lambda: logged(db, mark, agent, "token"), f"{agent} to stream again")


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr}")
    return elapsed


# -- 2. attach to a session of 100k events -------------------------------------------------------


async def generate(db: Path, url: str, total: int) -> str:
    """An interrupted session of about `total` events, written through the real EventLog:
    8 agents, replies of ~300 merged token events, each followed by a redirect."""
    session = "bench-attach"
    crew = parse_crew(crew_file(db.with_suffix(".toml"), url).read_text())
    seq, ts = 0, time.time() - total * 0.004
    rng = random.Random(1)
    async with EventLog.open(db) as log:

        def emit(kind: type[ev.BaseEvent], agent: str | None, **data: object) -> None:
            nonlocal seq, ts
            seq += 1
            ts += 0.004
            log.append(kind(session=session, agent=agent, seq=seq, ts=ts, **data))

        emit(ev.SessionStarted, None, crew=crew.name, config=crew.model_dump(mode="json"),
             pid=os.getpid(), version="bench")
        for name in AGENTS:
            emit(ev.AgentStarted, name, model="m1", host=url,
                 messages=[{"role": "user", "content": f"go {name}"}])
        replies: dict[str, list[str]] = {name: [] for name in AGENTS}
        while seq < total - 1:
            name = AGENTS[seq % len(AGENTS)]
            text = "".join(f"w{rng.randrange(1000)} " for _ in range(rng.randint(1, 4)))
            emit(ev.TokenStreamed, name, text=text, chunks=text.count(" "))
            replies[name].append(text)
            if len(replies[name]) == 300:
                emit(ev.MessageCompleted, name, content="".join(replies[name]),
                     done_reason="stop", eval_count=300)
                emit(ev.AgentRedirected, name, instruction="Go on.", by="person")
                replies[name] = []
        emit(ev.SessionFinished, None, outcome="interrupted",
             agents=dict.fromkeys(AGENTS, "interrupted"))
    return session


def attach_time(tmp: Path, runs: int, events: int) -> dict[str, list[float]]:
    """Alternating: the fold in this process and the TUI in a pty, on the session of `events`
    events and on a small one (a crew just started) that shows the start-up's share."""
    samples: dict[str, list[float]] = {}
    db, small_db = tmp / "attach.db", tmp / "small.db"
    with fake_ollama("--tokens", "100000", "--models", "m1", "--delay", "0.05",
                     "--parallel", "16") as url:
        started = time.perf_counter()
        session = asyncio.run(generate(db, url, events))
        mark = last_id(db)
        print(f"  generated {mark:,} events in {time.perf_counter() - started:.1f} s",
              flush=True)
        started = time.perf_counter()
        detach("resume", session, db=db)
        samples["resume"] = [time.perf_counter() - started]
        small = detach("run", str(crew_file(tmp / "small.toml", url)), db=small_db)
        for path in (db, small_db):
            wait_for(lambda p=path: all(logged(p, mark if p == db else 0, name, "token")
                                        for name in AGENTS), "the crews to stream")
        for _ in range(runs):
            for prefix, path, ref in (("", db, session), ("small_", small_db, small)):
                found = {"events": float(last_id(path)), **asyncio.run(open_and_fold(path, ref)),
                         "tui": tui_first_frame(["attach", ref, "--db", str(path)])}
                for key, value in found.items():
                    samples.setdefault(prefix + key, []).append(value)
        assert not logged(db, mark, None, "session_finished"), "the crew ended meanwhile"
    return samples


async def open_and_fold(db: Path, session: str) -> dict[str, float]:
    """`AttachedSource.open` (what `cockpit attach` does before the TUI starts), then the
    viewer's read of the whole history (`LogTail.poll`: read, decode, merge each agent's
    text) and its fold: what a viewer pays before it can draw where the session stands."""
    started = time.perf_counter()
    source = await AttachedSource.open(db, session)
    opened = time.perf_counter()
    assert [agent.name for agent in source.crew.agents] == AGENTS
    async with EventLog.open(db, readonly=True) as log:
        state = fold(await LogTail(log, session).poll())
    assert len(state.agents) == len(AGENTS)
    return {"open": opened - started, "fold": time.perf_counter() - opened}


def tui_first_frame(args: list[str]) -> float:
    """`cockpit ARGS` in a pty: seconds from launch to the first frame that shows every pane
    and has caught up with the log: it shows text the fake streamed since the owner started
    ("tokN"; the generated history has none), which comes after every older event."""
    terminal = Terminal(args)
    try:
        wait_for(lambda: terminal.shows(*AGENTS, "streaming", r"tok\d+ "),
                 "the panes, caught up, on the screen")
        return time.perf_counter() - terminal.started
    finally:
        terminal.close()


# -- 3. what viewers cost the crew ---------------------------------------------------------------


def viewer_cost(tmp: Path, rounds: int, tokens: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {}
    script = tmp / "gate.json"
    script.write_text(json.dumps({"gate": {"tokens": [f"g{i} " for i in range(40)],
                                           "delay": 0.05}}))
    with fake_ollama("--tokens", str(tokens), "--models", "m1", "--script", str(script)) as url:
        crew = crew_file(tmp / "viewers.toml", url, gate=True)
        for index in range(rounds):
            for viewers in (0, 2) if index % 2 == 0 else (2, 0):
                db = tmp / f"viewers-{index}-{viewers}.db"
                for key, value in crew_run(crew, db, viewers).items():
                    samples.setdefault(f"{key}{viewers}", []).append(value)
                count = query(db, "SELECT sum(json_extract(data, '$.chunks')) FROM events "
                                  "WHERE type = 'token' AND agent != 'gate'")[0][0]
                assert count == len(AGENTS) * tokens, count
    return samples


def crew_run(crew: Path, db: Path, viewers: int) -> dict[str, float]:
    """One detached run, `viewers` TUIs attached before the workers start: the crew's wall
    time from the log, and the CPU seconds and bytes drawn while it ran."""
    session = detach("run", str(crew), db=db)
    [(owner,)] = query(db, "SELECT pid FROM sessions")
    found: dict[str, float] = {}
    with asyncio.Runner() as loop:
        client = loop.run(ControlClient.connect(db, session))
        loop.run(client.call("pause", agent="gate"))  # hold the workers back
        terminals = [Terminal(["attach", session, "--db", str(db)]) for _ in range(viewers)]
        try:
            for terminal in terminals:
                wait_for(lambda t=terminal: t.shows(*AGENTS, "paused"), "a viewer's panes")
                found["first_frame"] = time.perf_counter() - terminal.started
            pids = [int(str(owner)), *(t.process.pid for t in terminals)]
            before = [cpu(pid) for pid in pids] + [len(t.output) for t in terminals]
            loop.run(client.call("resume", agent="gate"))
            loop.run(client.aclose())
            wait_for(lambda: logged(db, 0, None, "session_finished"), "the crew to finish")
            after = [cpu(pid) for pid in pids] + [len(t.output) for t in terminals]
        finally:
            for terminal in terminals:
                terminal.close()
    wait_for(lambda: not alive(int(str(owner))), "the owner to end once nobody watches")
    [(first, last)] = query(
        db, "SELECT (SELECT min(ts) FROM events WHERE type = 'agent_started' AND agent != "
            "'gate'), (SELECT ts FROM events WHERE type = 'session_finished')")
    spent = [b - a for a, b in zip(before, after, strict=True)]
    found.update(wall=float(str(last)) - float(str(first)), owner_cpu=spent[0],
                 viewer_cpu=sum(spent[1:1 + viewers]), drawn=sum(spent[1 + viewers:]))
    return found


def cpu(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- report --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="10 commands per kind, 3 attaches, 2 rounds of the crew")
    parser.add_argument("--only", choices=("commands", "attach", "viewers"), action="append")
    args = parser.parse_args()
    commands, attaches, rounds = (10, 3, 2) if args.quick else (40, 7, 5)
    parts = args.only or ["commands", "attach", "viewers"]
    os.environ.pop("COCKPIT_DB", None)
    with tempfile.TemporaryDirectory(prefix="cockpit-sessions-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "run").mkdir(mode=0o700)
        os.environ["COCKPIT_RUNTIME_DIR"] = str(tmp / "run")
        print(f"{os.cpu_count()} CPUs, {load()}", flush=True)
        try:
            if "commands" in parts:
                report_commands(tmp, commands)
            if "attach" in parts:
                report_attach(tmp, attaches)
            if "viewers" in parts:
                report_viewers(tmp, rounds)
        finally:
            kill_owners()
        print(f"done, {load()}")


def report_commands(tmp: Path, rounds: int) -> None:
    for label, delay in (("100 tok/s per agent", 0.01), ("full speed", 0.0)):
        found = command_latency(tmp, rounds, delay)
        print(f"1. command to committed event, 8 agents streaming at {label}, "
              f"{rounds} rounds ({load()})")
        for key, what in (("channel pause", "(a) channel, ControlClient pause"),
                          ("channel resume", "    channel, ControlClient resume"),
                          ("pause", "(b) shell, cockpit pause S A"),
                          ("resume", "    shell, cockpit resume S A"),
                          ("pass", "    python -c pass"),
                          ("version", "    python -m cockpit --version")):
            print(f"  {what:<36} {ms(found[key])}", flush=True)


def report_attach(tmp: Path, runs: int) -> None:
    found = attach_time(tmp, runs, 100_000)
    print(f"2. attach to a running session, {runs} alternating runs ({load()})")
    print(f"  cockpit resume ID --detach of the 100k session: {found['resume'][0]:.2f} s")
    for prefix, what in (("", "100k"), ("small_", "small")):
        events = found[prefix + "events"]
        print(f"  {what} session ({min(events):,.0f}-{max(events):,.0f} events)")
        for key, what in (("open", "AttachedSource.open"), ("fold", "history read and folded")):
            print(f"    {what + ', in this process':<46}    median "
                  f"{statistics.median(found[prefix + key]):.3f} s, "
                  f"max {max(found[prefix + key]):.3f} s")
        print(f"    cockpit attach in a pty, launch to panes caught up  median "
              f"{statistics.median(found[prefix + 'tui']):.3f} s, "
              f"max {max(found[prefix + 'tui']):.3f} s (target < 1 s)", flush=True)


def report_viewers(tmp: Path, rounds: int) -> None:
    tokens = 3000
    found = viewer_cost(tmp, rounds, tokens)
    alone, watched = found["wall0"], found["wall2"]
    ratios = [w / a for w, a in zip(watched, alone, strict=True)]
    print(f"3. 8 agents x {tokens} tokens at full speed, detached, {rounds} alternating "
          f"rounds ({load()})")
    for label, key in (("no viewer    ", "0"), ("2 TUI viewers", "2")):
        walls = found["wall" + key]
        print(f"  {label}  crew wall median {statistics.median(walls):.3f} s "
              f"({', '.join(f'{x:.2f}' for x in walls)}); owner CPU "
              f"{statistics.median(found['owner_cpu' + key]):.2f} s")
    print(f"  ratio with viewers / without  median {statistics.median(ratios):.2f} "
          f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})")
    print(f"  the 2 viewers meanwhile: CPU {statistics.median(found['viewer_cpu2']):.2f} s, "
          f"drew {statistics.median(found['drawn2']) / 1e3:.0f} kB; launch to panes shown "
          f"(two at once, small session) median {statistics.median(found['first_frame2']):.2f}"
          " s", flush=True)


if __name__ == "__main__":
    main()
