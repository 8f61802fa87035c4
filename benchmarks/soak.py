"""Soak: does a crew started at night finish by morning, through everything a night brings?

Six agents with dependencies (two independent, one after each of those, one after both of
those, a final one) run headless against the fake Ollama (tests/fake_ollama.py) in its own
process, for a simulated night compressed in time. Meanwhile:

* the fake injects seeded random faults per request (HTTP 500, 503 busy, stalls, TCP drops,
  mid-stream ``{"error"}`` lines; see ``FaultPlan``) and keeps a record of what it sent;
* it is restarted (down, then back on the same port) with outages from 5 s to 3 min;
* the event log is write-locked for 20 s by another SQLite connection (``BEGIN IMMEDIATE``,
  nothing written);
* the cockpit is SIGKILLed once mid-run, then ``cockpit resume`` continues the session.

Times in the schedule and outage lengths are simulated and divided by ``--compress``; the
lock is held for real seconds (``--lock``, 20 s; 10 s with ``--quick``), and the cockpit's
``stall_timeout`` is real too (2 s): those measure the cockpit, not the night.

Then it checks the log against the fake's record (see ``analyse``) and reports the completion
rate (target 100 %), the retries, the time spent waiting, the faults injected and the events
lost (target 0). Exit status 0 only if every agent finished unattended (no resume beyond the
planned one after the kill), nothing was lost, every check held and the whole schedule was
injected. Everything (crew, log, the fake's record, each process's stderr, report.json) stays
in the work directory; ``--reanalyse DIR`` checks it again without running anything.

    python benchmarks/soak.py                 # an 8 h night in 6 min (x80): ~6-7 min in all
    python benchmarks/soak.py --quick         # CI: a 2 h night in 1 min: ~75 s in all
    python benchmarks/soak.py --night 3600 --compress 30 --seed 7 --json
    python benchmarks/soak.py --quick --without kill     # isolate a problem
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import random
import re
import select
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
FAKE = ROOT / "tests" / "fake_ollama.py"
POLL = 0.02  # the driver's loop: it waits on conditions (exits, files, the clock), polled

# name, after, task. Tasks read upstream outputs, so the board hand-over is checked too.
AGENTS: list[tuple[str, list[str], str]] = [
    ("gather-1", [], "Gather the notes for part one."),
    ("gather-2", [], "Gather the notes for part two."),
    ("draft-1", ["gather-1"], "Draft part one from these notes:\n{{outputs.gather-1}}"),
    ("draft-2", ["gather-2"], "Draft part two from these notes:\n{{outputs.gather-2}}"),
    ("merge", ["draft-1", "draft-2"],
     "Merge the two drafts.\n\n{{outputs.draft-1}}\n\n{{outputs.draft-2}}"),
    ("final", ["merge"], "Polish this:\n{{outputs.merge}}"),
]
STAGES = 4  # the longest chain: gather -> draft -> merge -> final

# Token texts: multi-byte UTF-8, JSON escapes, whitespace, so any mangling shows.
VOCAB = ["the ", "night ", "crew ", "runs ", "until ", "morning", ", ", ". ", "\n", "ü", "é",
         "€ ", "— ", '"quoted" ', "\\", "tab\t", "{json} ", "🦙 ", "日本 ", "a", "b", "c ",
         "model ", "token ", "<tag> ", "&amp; ", "'s "]


@dataclass
class Settings:
    night: float  # simulated seconds
    compress: float
    seed: int
    restarts: int
    lock: float  # real seconds
    faults_per_hour: float  # mid-stream faults per streaming agent per simulated hour
    status_rate: float  # probability per request of a 500 or a 503 (half each)
    token_delay: float  # seconds between chunks on the fake
    stall_timeout: float
    retries: int
    retry_backoff: float
    extra_resumes: int  # resumes the soak may try after an unplanned exit (counted as failures)
    timeout: float  # wall seconds for the whole soak; then everything is killed
    workdir: Path
    quick: bool
    without: frozenset[str] = frozenset()  # schedule kinds left out, to isolate a problem

    @property
    def night_wall(self) -> float:
        return self.night / self.compress

    def wall(self, simulated: float) -> float:
        return simulated / self.compress


def settings_from_args(argv: list[str] | None = None) -> tuple[Settings, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="the CI version: a 2 h night x120 (~1 min), 3 restarts, a 10 s lock")
    p.add_argument("--night", type=float, metavar="SECONDS",
                   help="simulated night (default 28800 = 8 h; quick 7200)")
    p.add_argument("--compress", type=float, metavar="X",
                   help="time compression of the schedule and the outages (default 80; "
                        "quick 120)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--restarts", type=int, metavar="N",
                   help="host restarts (default 6; quick 3), outages 5 s to 3 min simulated")
    p.add_argument("--lock", type=float, metavar="SECONDS",
                   help="real seconds the log is write-locked (default 20; quick 10)")
    p.add_argument("--faults-per-hour", type=float, default=4.0, metavar="F",
                   help="mid-stream faults (stall, drop, error line) per streaming agent per "
                        "simulated hour (default 4)")
    p.add_argument("--status-rate", type=float, default=0.1, metavar="P",
                   help="probability per request of a 500 or a 503 busy, half each (default 0.1)")
    p.add_argument("--token-delay", type=float, default=0.005, metavar="S",
                   help="seconds between the fake's chunks (default 0.005: 200 tokens/s)")
    p.add_argument("--stall-timeout", type=float, default=2.0, metavar="S",
                   help="the crew's stall_timeout, in real seconds (default 2)")
    p.add_argument("--retries", type=int, default=5,
                   help="the crew's retries (default 5). They bound failures in a row: with "
                        "--status-rate 0.1, five in a row without a token is a 1e-5 chance")
    p.add_argument("--retry-backoff", type=float, default=0.05, metavar="S")
    p.add_argument("--extra-resumes", type=int, default=1, metavar="N",
                   help="after an unplanned exit, try `cockpit resume` up to N times to see "
                        "how far it gets (the night still counts as failed; default 1)")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="wall-clock limit for the whole soak (default: 3 nights + 2 min)")
    p.add_argument("--workdir", type=Path, metavar="DIR",
                   help="where the crew, the log, the record and the outputs go "
                        "(default: a new temporary directory, kept)")
    p.add_argument("--without", action="append", default=[], choices=("restart", "lock", "kill"),
                   help="leave these out of the schedule, to isolate a problem (repeatable; "
                        "the report says so)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--reanalyse", type=Path, metavar="DIR",
                   help="run nothing: check an earlier soak's workdir again and report")
    args = p.parse_args(argv)
    night = args.night or (7200.0 if args.quick else 28800.0)
    compress = args.compress or (120.0 if args.quick else 80.0)
    restarts = args.restarts if args.restarts is not None else (3 if args.quick else 6)
    lock = args.lock if args.lock is not None else (10.0 if args.quick else 20.0)
    if night <= 0 or compress <= 0 or restarts < 0 or lock < 0:
        p.error("--night and --compress must be positive, --restarts and --lock not negative")
    workdir = args.workdir or args.reanalyse or Path(tempfile.mkdtemp(prefix="cockpit-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    timeout = args.timeout or 3 * night / compress + lock + 120
    return Settings(night, compress, args.seed, restarts, lock, args.faults_per_hour,
                    args.status_rate, args.token_delay, args.stall_timeout, args.retries,
                    args.retry_backoff, args.extra_resumes, timeout, workdir,
                    args.quick, frozenset(args.without)), args


# -- the night's plan ----------------------------------------------------------------------------


def agent_tokens(name: str, seed: int, count: int) -> list[str]:
    """The deterministic reply of agent `name`: what its (per-agent) model streams."""
    rng = random.Random(f"soak:{seed}:{name}")
    return [f"[{name}:{i}] " if i % 50 == 0 else rng.choice(VOCAB) for i in range(count)]


def tokens_per_agent(s: Settings) -> int:
    """Sized so the fault-free crew streams for ~80 % of the night: the faults, the lock and
    the kill then fall on live streams, and the crew still ends soon after the night."""
    return max(200, int(0.8 * s.night_wall / STAGES / s.token_delay))


@dataclass
class Item:
    kind: str  # "restart", "lock", "kill"
    at: float  # simulated seconds from the start of the run
    seconds: float = 0.0  # outage (simulated) or lock (real)
    done: bool = False
    result: dict[str, Any] = field(default_factory=dict)


def outages(s: Settings, rng: random.Random) -> list[float]:
    """Simulated outage lengths from 5 s to 3 min, both ends included, log-uniform between."""
    lo, hi = 5.0, 180.0
    out = [lo, hi][: s.restarts] if s.restarts >= 2 else []
    out += [math.exp(rng.uniform(math.log(lo), math.log(hi)))
            for _ in range(s.restarts - len(out))]
    rng.shuffle(out)
    return out


def make_schedule(s: Settings) -> list[Item]:
    """Restarts, one lock and one kill at seeded random times in the night, in a random order
    with random gaps, each keeping 2 wall seconds to itself on either side, the kill away from
    the ends, and all over by 70 % of the night: the crew streams for 80 % of it without faults
    (`tokens_per_agent`), so it is still running when the last one comes, however fast the
    cockpit recovers."""
    rng = random.Random(f"soak-schedule:{s.seed}")
    margin = 2.0 * s.compress
    items = [Item("kill", 0.0, 0.0), Item("lock", 0.0, s.lock)]
    items += [Item("restart", 0.0, d) for d in outages(s, rng)]
    items = [item for item in items if item.kind not in s.without]

    def span(item: Item) -> float:  # simulated time it occupies, margins included
        wall = {"restart": s.wall(item.seconds), "lock": item.seconds, "kill": 1.0}[item.kind]
        return wall * s.compress + 2 * margin

    lo, hi = 0.05 * s.night, 0.7 * s.night
    free = hi - lo - sum(span(i) for i in items)
    if free < 0:
        raise SystemExit("soak: the night is too short for this schedule; raise --night or "
                         "lower --compress, --restarts or --lock")
    for _ in range(500):
        rng.shuffle(items)
        cuts = sorted(rng.uniform(0, free) for _ in items)
        t, last = lo, 0.0
        for item, cut in zip(items, cuts, strict=True):
            t += cut - last
            last = cut
            item.at = t + margin
            t += span(item)
        kill = next((i for i in items if i.kind == "kill"), None)
        if kill is None or 0.2 * s.night <= kill.at <= 0.6 * s.night:
            break
    return sorted(items, key=lambda i: i.at)


def fault_flags(s: Settings) -> list[str]:
    tokens_per_hour = 3600.0 / s.compress / s.token_delay  # per streaming agent
    hazard = s.faults_per_hour / tokens_per_hour / 3  # stall, drop and error alike
    return ["--fault-seed", str(s.seed), "--fault-500", str(s.status_rate / 2),
            "--fault-503", str(s.status_rate / 2), "--fault-stall", f"{hazard:.3g}",
            "--fault-drop", f"{hazard:.3g}", "--fault-error", f"{hazard:.3g}"]


def crew_text(s: Settings, url: str, host_wait: float | None) -> str:
    lines = ['name = "soak"', f"host = {json.dumps(url)}", f"retries = {s.retries}",
             f"stall_timeout = {s.stall_timeout}", f"retry_backoff = {s.retry_backoff}"]
    if host_wait is not None:
        lines.append(f"host_wait = {host_wait:g}")
    for name, after, task in AGENTS:
        lines += ["", "[[agents]]", f"name = {json.dumps(name)}",
                  f"model = {json.dumps('soak-' + name)}", f"task = {json.dumps(task)}"]
        if after:
            lines.append(f"after = {json.dumps(after)}")
    return "\n".join(lines) + "\n"


def render(task: str, outputs: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*outputs\.([a-z0-9_-]+)\s*\}\}", lambda m: outputs[m.group(1)], task)


# -- processes -------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, float) and math.isinf(value):
        return None
    return value


def say(message: str) -> None:
    print(f"soak: {message}", file=sys.stderr, flush=True)


@dataclass
class Run:
    """One cockpit process: `run`, or a `resume` of the session."""

    kind: str  # "run", "resume" (after the kill) or "extra-resume" (after an unplanned exit)
    stderr: Path
    started: float  # time.time(), comparable with the fake's record and the log
    ended: float | None = None
    rc: int | None = None
    killed: bool = False
    pid: int = 0
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        assert self.popen is not None, "a run read back from state.json has no process"
        return self.popen


class Soak:
    def __init__(self, s: Settings) -> None:
        self.s = s
        self.dir = s.workdir
        self.db = self.dir / "cockpit.db"
        self.record = self.dir / "record.jsonl"
        self.crew = self.dir / "soak.toml"
        self.tokens = {name: agent_tokens(name, s.seed, tokens_per_agent(s))
                       for name, _, _ in AGENTS}
        self.schedule = make_schedule(s)
        self.runs: list[Run] = []
        self.fake: subprocess.Popen[str] | None = None
        self.session: str | None = None
        self.host_wait: float | None = None
        self.unattended_end: float | None = None  # when the night stopped being unattended
        self.notes: list[str] = []
        self.t0 = 0.0

    # -- set-up --

    def start_fake(self) -> str:
        script = {f"soak-{name}": {"tokens": toks, "delay": self.s.token_delay}
                  for name, toks in self.tokens.items()}
        path = self.dir / "script.json"
        path.write_text(json.dumps(script, ensure_ascii=False), encoding="utf-8")
        self.record.unlink(missing_ok=True)
        cmd = [sys.executable, str(FAKE), "--script", str(path), "--record", str(self.record),
               "--control", *fault_flags(self.s)]
        (self.dir / "fake.cmd").write_text(" ".join(cmd) + "\n")
        self.fake = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=(self.dir / "fake.stderr").open("wb"), text=True,
                                     start_new_session=True)
        assert self.fake.stdout is not None
        ready, _, _ = select.select([self.fake.stdout], [], [], 30)
        url = self.fake.stdout.readline().strip() if ready else ""
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the fake Ollama did not start (see {self.dir}/fake.stderr)")
        return url

    def probe_host_wait(self, url: str) -> float | None:
        """`host_wait` if this cockpit accepts the key (`cockpit check`), else None."""
        longest = max([i.seconds for i in self.schedule if i.kind == "restart"] or [0.0])
        wanted = max(60.0, 5 * self.s.wall(longest))
        probe = self.dir / "probe.toml"
        probe.write_text(crew_text(self.s, url, wanted), encoding="utf-8")
        out = subprocess.run([sys.executable, "-m", "cockpit", "check", str(probe), "--db",
                              str(self.dir / "probe.db")], capture_output=True, text=True,
                             timeout=60, cwd=self.dir)  # the same cockpit the runs get
        if out.returncode == 0:
            return wanted
        if "host_wait" in out.stderr:
            self.notes.append("this cockpit does not accept `host_wait`: the crew goes without "
                              "it, and host outages spend `retries`")
            return None
        raise RuntimeError(f"cockpit check failed on the soak crew:\n{out.stderr}")

    def cockpit(self, kind: str, *args: str) -> Run:
        stderr = self.dir / f"{len(self.runs) + 1}-{kind}.stderr"
        cmd = [sys.executable, "-m", "cockpit", *args, "--headless", "--db", str(self.db)]
        with stderr.open("wb") as err, (self.dir / f"{len(self.runs) + 1}-{kind}.stdout").open(
                "wb") as out:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    cwd=self.dir, start_new_session=True)
        run = Run(kind, stderr, time.time(), pid=proc.pid, popen=proc)
        self.runs.append(run)
        say(f"{self.clock()} started cockpit {args[0]} (pid {proc.pid})")
        return run

    def clock(self) -> str:
        """Wall seconds since the run began, and the simulated time of night."""
        wall = time.monotonic() - self.t0 if self.t0 else 0.0
        sim = wall * self.s.compress
        return f"[{wall:6.1f} s | night {int(sim // 3600):d}:{int(sim % 3600 // 60):02d}]"

    def session_id(self, run: Run, deadline: float) -> str | None:
        """The session id from the `cockpit: session ID, log DB` line, once it is there."""
        pattern = re.compile(rb"cockpit: (?:resuming )?session (\S+), log ")
        while time.monotonic() < deadline:
            found = pattern.search(run.stderr.read_bytes())
            if found:
                return found.group(1).decode()
            if run.proc.poll() is not None:
                return None
            time.sleep(POLL)
        return None

    # -- the night --

    def run(self) -> dict[str, Any]:
        s = self.s
        say(f"workdir {self.dir}")
        try:
            url = self.start_fake()
            self.host_wait = self.probe_host_wait(url)
            self.crew.write_text(crew_text(s, url, self.host_wait), encoding="utf-8")
            say(f"fake Ollama at {url}; {tokens_per_agent(s)} tokens per agent; night "
                f"{s.night / 3600:g} h in {s.night_wall:.0f} s (x{s.compress:g}); schedule: "
                + ", ".join(f"{i.kind}@{i.at / 3600:.2f}h" for i in self.schedule))
            self.t0 = time.monotonic()
            self.night()
        finally:
            self.cleanup()
            self.save_state()
        return analyse(self)

    def save_state(self) -> None:
        """What `analyse` needs besides the log and the record, for `--reanalyse DIR`."""
        state = {
            "settings": jsonable(dataclasses.asdict(self.s)), "session": self.session,
            "host_wait": self.host_wait, "notes": self.notes,
            "unattended_end": self.unattended_end,
            "runs": [{f.name: jsonable(getattr(r, f.name)) for f in dataclasses.fields(r)
                      if f.name != "popen"} for r in self.runs],
            "schedule": [jsonable(dataclasses.asdict(i)) for i in self.schedule],
        }
        (self.dir / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, workdir: Path) -> Soak:
        state = json.loads((workdir / "state.json").read_text(encoding="utf-8"))
        fields = state["settings"]
        fields.update(workdir=workdir, without=frozenset(fields["without"]))
        soak = cls(Settings(**fields))
        soak.session, soak.host_wait = state["session"], state["host_wait"]
        soak.notes, soak.unattended_end = state["notes"], state["unattended_end"]
        soak.runs = [Run(**{**r, "stderr": Path(r["stderr"])}) for r in state["runs"]]
        soak.schedule = [Item(**i) for i in state["schedule"]]
        return soak

    def night(self) -> None:
        s = self.s
        deadline = self.t0 + s.timeout
        current = self.cockpit("run", "run", str(self.crew))
        self.session = self.session_id(current, deadline)
        extra = 0
        lock: sqlite3.Connection | None = None
        lock_item: Item | None = None
        while time.monotonic() < deadline:
            now = time.monotonic() - self.t0
            if lock is not None and lock_item is not None and now >= lock_item.result[
                    "release_at"]:
                self.release_lock(lock, lock_item)
                lock = None
            rc = current.proc.poll()
            if rc is not None:
                current.rc, current.ended = rc, time.time()
                say(f"{self.clock()} cockpit exited {rc}")
                if lock is not None and lock_item is not None:
                    lock_item.result["cockpit_exited"] = rc
                    self.release_lock(lock, lock_item)
                    lock = None
                if rc == 0 or self.session is None:
                    break
                if self.unattended_end is None:
                    self.unattended_end = current.ended
                    self.notes.append(f"cockpit {current.kind} exited {rc} on its own: the "
                                      "night was not completed unattended")
                if extra >= s.extra_resumes:
                    break
                extra += 1
                current = self.cockpit("extra-resume", "resume", self.session)
                continue
            for item in self.schedule:
                if item.done or now < s.wall(item.at):
                    continue
                item.done = True
                item.result["wall"] = now
                if item.kind == "restart":
                    assert self.fake is not None and self.fake.stdin is not None
                    self.fake.stdin.write(f"restart {s.wall(item.seconds):.3f}\n")
                    self.fake.stdin.flush()
                    say(f"{self.clock()} host restart, down {s.wall(item.seconds):.2f} s "
                        f"({item.seconds:.0f} s simulated)")
                elif item.kind == "lock" and self.db.exists():
                    lock, lock_item = self.take_lock(item), item
                elif item.kind == "kill" and self.session is not None:
                    if lock is not None and lock_item is not None:
                        self.release_lock(lock, lock_item)
                        lock = None
                    current.proc.send_signal(signal.SIGKILL)
                    current.rc, current.ended, current.killed = current.proc.wait(), \
                        time.time(), True
                    item.result["killed_at"] = current.ended
                    say(f"{self.clock()} SIGKILLed the cockpit (pid {current.proc.pid})")
                    current = self.cockpit("resume", "resume", self.session)
                    item.result["resume_pid"] = current.proc.pid
                else:
                    item.result["skipped"] = "nothing to do it to yet"
            time.sleep(POLL)
        else:
            self.notes.append(f"timed out after {s.timeout:.0f} s: the cockpit was killed")
            say(f"{self.clock()} timed out")
        if lock is not None and lock_item is not None:
            self.release_lock(lock, lock_item)
        if current.proc.poll() is None:
            current.proc.kill()
            current.rc, current.ended, current.killed = current.proc.wait(), time.time(), True
            if self.unattended_end is None:
                self.unattended_end = current.ended

    def max_id(self) -> int:
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True,
                                                timeout=5)) as db:
            return int(db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0])

    def take_lock(self, item: Item) -> sqlite3.Connection | None:
        """Take the log's write lock without writing: BEGIN IMMEDIATE, then hold it."""
        conn = sqlite3.connect(self.db, timeout=10, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            conn.close()
            item.result["error"] = str(error)
            return None
        item.result.update(taken=time.time(), max_id_at_lock=self.max_id(),
                           release_at=time.monotonic() - self.t0 + item.seconds)
        say(f"{self.clock()} log write-locked for {item.seconds:g} s")
        return conn

    def release_lock(self, conn: sqlite3.Connection | None, item: Item) -> None:
        if conn is None:
            return
        item.result["max_id_at_release"] = self.max_id()
        conn.execute("ROLLBACK")  # nothing was written
        conn.close()
        item.result["released"] = time.time()
        item.result["held"] = item.result["released"] - item.result["taken"]
        item.result["release_at"] = math.inf
        say(f"{self.clock()} log unlocked after {item.result['held']:.1f} s; commits during "
            f"the lock: {item.result['max_id_at_release'] - item.result['max_id_at_lock']}")

    def cleanup(self) -> None:
        for run in self.runs:
            if run.popen is not None and run.popen.poll() is None:
                run.popen.kill()
                run.popen.wait()
        if self.fake is not None:
            with contextlib.suppress(OSError, ValueError):
                assert self.fake.stdin is not None
                self.fake.stdin.write("quit\n")
                self.fake.stdin.close()
            try:
                self.fake.wait(10)
            except subprocess.TimeoutExpired:
                self.fake.kill()
                self.fake.wait()


# -- the check -------------------------------------------------------------------------------


def read_record(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a line cut by a kill, never ours
            out.append(json.loads(line))
    return out


def read_log(db: Path, session: str | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if session is None or not db.exists():
        return [], {}
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT id, agent, seq, ts, type, data FROM events WHERE session = ?"
                            " ORDER BY id", (session,)).fetchall()
        srow = conn.execute("SELECT id, crew, agents, started_at, ended_at, outcome, pid FROM "
                            "sessions WHERE id = ?", (session,)).fetchone()
    events = [{"id": r[0], "agent": r[1], "seq": r[2], "ts": r[3], "type": r[4],
               "data": json.loads(r[5])} for r in rows]
    keys = ("id", "crew", "agents", "started_at", "ended_at", "outcome", "pid")
    return events, dict(zip(keys, srow, strict=True)) if srow else {}


def token_span(tokens: list[str], start: int, end: int) -> int:
    """How many of `tokens` overlap the character range [start, end) of their join."""
    count, pos = 0, 0
    for tok in tokens:
        nxt = pos + len(tok)
        if nxt > start and pos < end:
            count += 1
        if pos >= end:
            break
        pos = nxt
    return max(count, 1 if end > start else 0)


def diff_tokens(tokens: list[str], expected: str, got: str) -> tuple[int, int]:
    """(tokens of `expected` missing from `got`, tokens' worth of text in `got` that is not in
    `expected`), aligning the common prefix and suffix."""
    if got == expected:
        return 0, 0
    p = len(os.path.commonprefix([expected, got]))
    q = 0
    while q < min(len(expected), len(got)) - p and expected[-1 - q] == got[-1 - q]:
        q += 1
    missing = token_span(tokens, p, len(expected) - q) if len(expected) - q > p else 0
    extra_chars = len(got) - q - p
    mean = max(1.0, len(expected) / max(1, len(tokens)))
    return missing, math.ceil(extra_chars / mean) if extra_chars > 0 else 0


IN_FLIGHT = 0.5
"""Seconds: chunks the server wrote this shortly before the cockpit itself hung up (a pause,
by a person or by a stuck log) may still have been in the socket, never read; they are
generated again, and counted as `cut_in_flight`, not as lost. Older ones count as lost."""

RETRY_KINDS = [("host unreachable", r"cannot reach"), ("dropped mid-reply", r"dropped mid-reply"),
               ("503 busy", r"answered 503"), ("5xx", r"answered 5\d\d"),
               ("429/499", r"answered (429|499)"),
               ("mid-stream error", r"error mid-stream"), ("stall", r"stalled"),
               ("other", r"")]


def retry_kind(reason: str) -> str:
    return next(name for name, pattern in RETRY_KINDS if re.search(pattern, reason))


def analyse(soak: Soak) -> dict[str, Any]:
    """Check the log against the fake's record and total the night's figures.

    Lost events, per agent (summed in `lost`):
      * continuity: between two requests of the agent from the same cockpit process, the next
        request's continuation prefix must be exactly the previous prefix plus every chunk the
        server wrote since (tokens the cockpit got but dropped, or text it never got, count;
        when the cockpit itself hung up, chunks written in the last IN_FLIGHT seconds before
        may never have reached it and are counted as `cut_in_flight` instead);
        across the soak's SIGKILL the prefix may be shorter (events not yet committed die with
        the process and are generated again: reported as `regenerated`, not lost; across a
        cockpit that exited on its own they count, as `crash`) but never longer, and every
        prefix must be the start of the agent's reply;
      * the finish: a request whose `done` chunk was written must be followed by the agent's
        `agent_finished` (or by another request, after a kill), and then its prefix plus its
        chunks must be the whole reply;
      * the log: exactly one `agent_finished`, its `output` equal to the reply the fake
        generates, the agent's `token` texts concatenated in id order equal to that output
        (for an agent that did not finish: a prefix of the reply), `message_completed` and
        `outputs.<name>` on the board equal to it too.
    Also checked (listed under `checks`, not counted as lost): ids and seqs strictly
    increasing, one `session_started`, one `session_resumed` per resume, the tasks handed to
    dependants (the board) and the user message the fake received equal to the expected text.
    """
    s = soak.s
    record = read_record(soak.record)
    events, session_row = read_log(soak.db, soak.session)
    requests = [r for r in record if r.get("type") == "request" and r.get("path") == "/api/chat"
                and "n" in r]
    starts = [run.started for run in soak.runs]

    def process_of(at: float) -> int:
        return max([i for i, t in enumerate(starts) if t <= at] or [0])

    expected = {name: "".join(toks) for name, toks in soak.tokens.items()}
    tasks = {name: render(task, expected) for name, _, task in AGENTS}
    checks: dict[str, bool] = {}
    problems: list[str] = []
    agents: dict[str, dict[str, Any]] = {}
    by_agent = {name: [e for e in events if e["agent"] == name] for name, _, _ in AGENTS}
    unattended = soak.unattended_end

    from hashlib import sha256

    def sha(text: str) -> str:
        return sha256(text.encode()).hexdigest()

    for name, _, _ in AGENTS:
        toks, full = soak.tokens[name], expected[name]
        evs = by_agent[name]
        reqs = sorted((r for r in requests if r["model"] == f"soak-{name}"), key=lambda r: r["n"])
        lost: dict[str, int] = {"dropped": 0, "crash": 0, "invented": 0, "corrupt_prefix": 0,
                                "finish": 0, "duplicate_finish": 0, "output": 0, "tokens": 0,
                                "board": 0}
        regenerated = in_flight = 0
        for i, r in enumerate(reqs):
            ok = r["prefix_ok"] and r["prefix_sha"] == sha(full[: r["prefix_len"]])
            if not ok:
                lost["corrupt_prefix"] += 1
                problems.append(f"{name}: request {r['n']} continued a text that is not the "
                                "start of its reply")
            if i == 0:
                if r["prefix_len"] != 0:
                    lost["invented"] += token_span(toks, 0, r["prefix_len"])
                continue
            prev = reqs[i - 1]
            received = prev["prefix_len"] + sum(len(c) for c in prev["chunks"])
            have = r["prefix_len"]
            same = process_of(prev["at"]) == process_of(r["at"])
            if have > received:
                lost["invented"] += token_span(toks, received, have)
                problems.append(f"{name}: request {r['n']} continued {have - received} chars "
                                "the server never sent")
            elif have < received:
                gone, pos = 0, prev["prefix_len"]
                for chunk in prev["chunks"]:
                    pos += len(chunk)
                    gone += pos > have
                times = prev.get("tail_times") or []
                recent = sum(t >= (prev["ended"] or 0) - IN_FLIGHT for t in times[-gone:])
                if not same and soak.runs[process_of(prev["at"])].killed:
                    regenerated += gone  # not yet committed when the soak SIGKILLed it
                elif not same:
                    lost["crash"] += gone  # the cockpit died on its own: its log lost these
                    problems.append(f"{name}: {gone} chunks of request {prev['n']} died with "
                                    "a cockpit that exited on its own")
                elif prev.get("disconnected") and recent == gone:
                    in_flight += gone  # the cockpit hung up (a pause): these never reached it
                else:
                    lost["dropped"] += gone
                    problems.append(f"{name}: {gone} chunks of request {prev['n']} missing "
                                    f"from request {r['n']}'s continuation")
            if prev.get("done") and same:
                lost["finish"] += 1
                problems.append(f"{name}: request {prev['n']} was done, yet the agent asked "
                                "again in the same process")
        finished = [e for e in evs if e["type"] == "agent_finished"]
        logged = "".join(e["data"]["text"] for e in evs if e["type"] == "token")
        output = finished[-1]["data"]["output"] if finished else None
        if len(finished) > 1:
            lost["duplicate_finish"] = len(finished) - 1
            problems.append(f"{name}: {len(finished)} agent_finished events")
        if reqs and reqs[-1].get("done"):
            last = reqs[-1]
            if last["prefix_len"] + sum(len(c) for c in last["chunks"]) != len(full):
                problems.append(f"{name}: the last done request did not end the reply")
            if not finished:
                lost["finish"] += 1
                problems.append(f"{name}: the server finished the reply, the log has no "
                                "agent_finished")
        if output is not None:
            lost["output"] = sum(diff_tokens(toks, full, output))
            if output != full:
                problems.append(f"{name}: agent_finished.output differs from the reply")
            lost["tokens"] = sum(diff_tokens(toks, output, logged))
            if logged != output:
                problems.append(f"{name}: its token events do not add up to its output")
            completed = [e for e in evs if e["type"] == "message_completed"]
            board = [e for e in events if e["type"] == "state_set"
                     and e["data"].get("key") == f"outputs.{name}"]
            if (not completed or completed[-1]["data"]["content"] != output or not board
                    or board[-1]["data"]["value"] != output):
                lost["board"] = 1
                problems.append(f"{name}: message_completed or outputs.{name} differs from "
                                "its output")
        elif not full.startswith(logged):
            lost["tokens"] = sum(diff_tokens(toks, full[: len(logged)], logged))
            problems.append(f"{name}: its token events are not the start of its reply")
        started = [e for e in evs if e["type"] == "agent_started"]
        user = [m["content"] for m in (started[0]["data"]["messages"] if started else [])
                if m["role"] == "user"]
        inputs_ok = (not started or (len(started) == 1 and user == [tasks[name]])) and all(
            r["user_sha"] == sha(tasks[name]) for r in reqs)
        if not inputs_ok:
            problems.append(f"{name}: its task (the board hand-over) is not what was expected")
        status = next((e["type"].removeprefix("agent_") for e in reversed(evs)
                       if e["type"] in ("agent_finished", "agent_failed", "agent_stopped")),
                      "unfinished")
        fin_ts = finished[0]["ts"] if finished else None
        agents[name] = {
            "status": status, "finished_unattended": bool(
                finished and (unattended is None or fin_ts is not None and fin_ts <= unattended)),
            "error": next((e["data"]["error"] for e in reversed(evs)
                           if e["type"] == "agent_failed"), None),
            "requests": len(reqs), "retries": sum(e["type"] == "retrying" for e in evs),
            "chars": len(full), "logged_chars": len(logged),
            "output_ok": None if output is None else output == full, "inputs_ok": inputs_ok,
            "regenerated": regenerated, "cut_in_flight": in_flight,
            "lost": lost, "lost_total": sum(lost.values()),
        }

    # -- global checks --
    ids = [e["id"] for e in events]
    seqs = [e["seq"] for e in events]
    checks["ids strictly increasing"] = all(a < b for a, b in zip(ids, ids[1:], strict=False))
    checks["seqs strictly increasing in id order"] = all(
        a < b for a, b in zip(seqs, seqs[1:], strict=False))
    checks["one session_started"] = sum(e["type"] == "session_started" for e in events) == 1
    resumes = sum(run.kind != "run" and b"resuming session" in run.stderr.read_bytes()
                  for run in soak.runs)
    checks["one session_resumed per resume that started"] = sum(
        e["type"] == "session_resumed" for e in events) == resumes
    checks["one agent_finished per finished agent"] = all(
        a["lost"]["duplicate_finish"] == 0 for a in agents.values())
    checks["outputs equal the replies the server generated"] = all(
        a["output_ok"] is not False for a in agents.values())
    checks["token events add up to the outputs"] = all(
        a["lost"]["tokens"] == 0 for a in agents.values())
    checks["tasks handed downstream intact"] = all(a["inputs_ok"] for a in agents.values())

    # -- figures --
    retrying = [e for e in events if e["type"] == "retrying"]
    by_reason: dict[str, int] = {}
    for e in retrying:
        kind = retry_kind(e["data"].get("reason", ""))
        by_reason[kind] = by_reason.get(kind, 0) + 1
    waiting = waiting_times(events, soak)
    struck: dict[str, int] = {}
    drawn: dict[str, int] = {}
    for r in requests:
        fault = r.get("fault")
        if not fault:
            continue
        kind = fault["kind"]
        drawn[kind] = drawn.get(kind, 0) + 1
        hit = (r.get("status") == int(kind) if kind in ("500", "503")
               else len(r["chunks"]) == fault["after"] and not r.get("done"))
        struck[kind] = struck.get(kind, 0) + hit
    ups = {r["restart"]: r["at"] for r in record if r.get("type") == "up"}
    done_restarts = [i for i in soak.schedule if i.kind == "restart" and i.done]
    restarts = [{"at_night_h": round(i.at / 3600, 2),
                 "down_s": round(ups.get(d["restart"], d["at"]) - d["at"], 3),
                 "simulated_s": round(d["for"] * s.compress)}
                for i, d in zip(done_restarts, (r for r in record if r.get("type") == "down"),
                                strict=False)]
    lock_item = next((i for i in soak.schedule if i.kind == "lock"), None)
    kill_item = next((i for i in soak.schedule if i.kind == "kill"), None)
    lock = dict(lock_item.result) if lock_item else {}
    lock.pop("release_at", None)
    if "held" in lock:
        lock["commits_during_lock"] = lock["max_id_at_release"] - lock["max_id_at_lock"]
        lock["events_delayed"] = sum(  # emitted while locked, so committed after it
            lock["taken"] <= e["ts"] <= lock["released"] for e in events)
        lock["writer_blocked"] = lock["commits_during_lock"] == 0 and (
            lock["events_delayed"] > 0 or bool(lock.get("cockpit_exited")))
        checks["the lock blocked the cockpit's writes"] = lock["writer_blocked"]
    kill: dict[str, Any] = {}
    if kill_item and "killed_at" in kill_item.result:
        t = kill_item.result["killed_at"]
        resumed = [e["ts"] for e in events if e["type"] == "session_resumed" and e["ts"] >= t]
        kill = {"at_night_h": round(kill_item.at / 3600, 2),
                "resumed_after_s": round(resumed[0] - t, 2) if resumed else None,
                "regenerated_tokens": sum(a["regenerated"] for a in agents.values())}
    injected = {i.kind: 0 for i in soak.schedule}
    for i in soak.schedule:
        injected[i.kind] += i.done and "skipped" not in i.result and "error" not in i.result
    planned = {k: sum(i.kind == k for i in soak.schedule) for k in injected}
    n = len(AGENTS)
    done_unattended = sum(a["finished_unattended"] for a in agents.values())
    done_final = sum(a["status"] == "finished" for a in agents.values())
    lost_total = sum(a["lost_total"] for a in agents.values())
    report = {
        "settings": jsonable(dataclasses.asdict(s)),
        "host_wait": soak.host_wait,
        "tokens_per_agent": tokens_per_agent(s),
        "wall_s": round(max([r.ended or 0 for r in soak.runs] or [0])
                        - (soak.runs[0].started if soak.runs else 0), 1),
        "session": soak.session, "outcome": session_row.get("outcome"),
        "completion": done_unattended / n, "agents_finished": done_unattended, "agents": n,
        "agents_finished_after_extra_resumes": done_final,
        "lost": lost_total,
        "retries": len(retrying), "retries_by_reason": by_reason,
        "max_retries_one_agent": max([a["retries"] for a in agents.values()] or [0]),
        "longest_retry_streak": max([int(e["data"].get("attempt", 0)) for e in retrying]
                                    or [0]),
        "waiting_s": waiting,
        "faults_struck": struck, "faults_drawn": drawn,
        "requests": len(requests),
        "restarts": restarts, "lock": lock, "kill": kill,
        "injected": injected, "planned": planned,
        "injected_all": injected == planned,
        "runs": [{"kind": r.kind, "rc": r.rc, "killed_by_soak": r.killed,
                  "seconds": round((r.ended or r.started) - r.started, 1)} for r in soak.runs],
        "checks": checks, "problems": problems, "notes": soak.notes,
        "per_agent": agents, "workdir": str(soak.dir),
    }
    report["ok"] = bool(report["completion"] == 1.0 and lost_total == 0 and not s.without
                        and report["injected_all"] and all(checks.values()))
    return report


def waiting_times(events: list[dict[str, Any]], soak: Soak) -> dict[str, float]:
    """Wall seconds spent not streaming because of faults, by cause (they overlap:
    `retry_to_next_token` runs from an agent's first `retrying` to its next token, so it
    includes any host wait that followed; `host_waiting` sums `host_back.waited`; the lock
    is the time it was held, whether or not the cockpit noticed; `cockpit_dead` runs from the
    SIGKILL to the resumed session's `session_resumed`)."""
    out = {"host_waiting": 0.0, "retry_to_next_token": 0.0, "stalls_detected": 0.0,
           "log_stuck": 0.0, "paused_by_log": 0.0, "lock_held": 0.0, "cockpit_dead": 0.0}
    open_wait: dict[str, float] = {}
    open_retry: dict[str, float] = {}
    open_pause: dict[str, float] = {}
    for e in events:
        agent, kind, ts = e["agent"], e["type"], e["ts"]
        if kind == "host_waiting":
            open_wait.setdefault(agent, ts)
        elif kind == "host_back":
            out["host_waiting"] += float(e["data"].get("waited", 0.0))
            open_wait.pop(agent, None)
        elif kind == "retrying":
            open_retry.setdefault(agent, ts)
        elif kind == "stalled":
            out["stalls_detected"] += float(e["data"].get("seconds", 0.0))
        elif kind == "log_recovered":
            out["log_stuck"] += float(e["data"].get("stuck_for", 0.0))
        elif kind == "agent_paused" and e["data"].get("by") == "log":
            open_pause.setdefault(agent, ts)
        elif kind == "agent_resumed" and agent in open_pause:
            out["paused_by_log"] += ts - open_pause.pop(agent)
        if kind in ("token", "agent_finished", "agent_failed", "agent_stopped"):
            if agent in open_retry:
                out["retry_to_next_token"] += ts - open_retry.pop(agent)
            if agent in open_wait:  # a wait that ended in failure, or unfinished
                out["host_waiting"] += ts - open_wait.pop(agent)
    lock = next((i.result for i in soak.schedule if i.kind == "lock"), {})
    out["lock_held"] = float(lock.get("held", 0.0))
    kill = next((i.result for i in soak.schedule if i.kind == "kill"), {})
    if "killed_at" in kill:
        resumed = [e["ts"] for e in events if e["type"] == "session_resumed"
                   and e["ts"] >= kill["killed_at"]]
        out["cockpit_dead"] = resumed[0] - kill["killed_at"] if resumed else 0.0
    return {k: round(v, 2) for k, v in out.items()}


# -- the report ------------------------------------------------------------------------------


def print_report(r: dict[str, Any], out: IO[str]) -> None:
    s = r["settings"]

    def row(label: str, value: str) -> None:
        out.write(f"  {label:<16} {value}\n")

    out.write(f"cockpit soak: a {s['night'] / 3600:g} h night x{s['compress']:g} "
              f"({r['wall_s']:.0f} s wall), seed {s['seed']}, {r['tokens_per_agent']} tokens "
              f"per agent, session {r['session']}\n")
    row("completion", f"{r['agents_finished']}/{r['agents']} agents finished unattended "
        f"({100 * r['completion']:.0f} %; target 100 %)"
        + (f"; {r['agents_finished_after_extra_resumes']}/{r['agents']} after extra resumes"
           if r["agents_finished_after_extra_resumes"] != r["agents_finished"] else ""))
    row("events lost", f"{r['lost']} (target 0)")
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(r["retries_by_reason"].items()))
    row("retries", f"{r['retries']}" + (f" ({reasons})" if reasons else "")
        + f"; most for one agent {r['max_retries_one_agent']}, longest streak "
        f"{r['longest_retry_streak']} (retries = {s['retries']})")
    w = r["waiting_s"]
    row("time waiting", ", ".join(f"{k.replace('_', ' ')} {v:.1f} s" for k, v in w.items()))
    row("faults", ", ".join(f"{k} {v}" for k, v in sorted(r["faults_struck"].items()))
        + f" struck, in {r['requests']} requests")
    row("restarts", f"{len(r['restarts'])} injected, down "
        + ", ".join(f"{x['down_s']:.2f} s ({x['simulated_s']} s sim)" for x in r["restarts"]))
    lock = r["lock"]
    row("log lock", f"held {lock['held']:.1f} s, commits during it "
        f"{lock['commits_during_lock']}, events emitted during it (committed after) "
        f"{lock['events_delayed']}" + (f"; the cockpit exited {lock['cockpit_exited']} during it"
                                       if lock.get("cockpit_exited") is not None else "")
        if "held" in lock else f"not taken {lock}")
    k = r["kill"]
    resumed = (f"resumed after {k['resumed_after_s']} s" if k and k["resumed_after_s"]
               is not None else "never resumed")
    cut = sum(a["cut_in_flight"] for a in r["per_agent"].values())
    if cut:
        row("cut in flight", f"{cut} chunks the cockpit never read when it hung up (pauses); "
            "generated again")
    row("kill + resume", f"SIGKILL at night {k['at_night_h']} h, {resumed}, "
        f"{k['regenerated_tokens']} uncommitted tokens regenerated" if k else "not injected")
    row("cockpit runs", ", ".join(
        f"{x['kind']} {'killed' if x['killed_by_soak'] else 'exit ' + str(x['rc'])} "
        f"after {x['seconds']} s" for x in r["runs"]))
    row("schedule", ", ".join(f"{k} {r['injected'][k]}/{v}" for k, v in r["planned"].items())
        + " injected" + ("" if r["injected_all"] else " (the rest came after the cockpit ended)"))
    row("host_wait", f"{r['host_wait']:g} s" if r["host_wait"] else "not supported")
    for name, c in r["checks"].items():
        row("check", f"{'ok  ' if c else 'FAIL'} {name}")
    out.write("  per agent:\n")
    for name, a in r["per_agent"].items():
        lost = ", ".join(f"{k} {v}" for k, v in a["lost"].items() if v)
        out.write(f"    {name:<9} {a['status']:<10} requests {a['requests']:>3}, retries "
                  f"{a['retries']:>3}, {a['logged_chars']}/{a['chars']} chars"
                  + (f", lost: {lost}" if lost else "")
                  + (f"\n              {a['error'][:150]}" if a["error"] else "") + "\n")
    if s["without"]:
        out.write(f"  note: run without {', '.join(s['without'])}: not a full soak\n")
    for note in r["notes"]:
        out.write(f"  note: {note}\n")
    for problem in r["problems"][:20]:
        out.write(f"  problem: {problem}\n")
    out.write(f"  artifacts: {r['workdir']}\n")
    out.write(f"  result: {'PASS' if r['ok'] else 'FAIL'}\n")


def main(argv: list[str] | None = None) -> int:
    settings, args = settings_from_args(argv)
    if args.reanalyse:
        soak = Soak.load(args.reanalyse)
        settings = soak.s
        report = analyse(soak)
    else:
        report = Soak(settings).run()
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print_report(report, sys.stdout)
    (settings.workdir / "report.json").write_text(json.dumps(report, indent=2,
                                                             ensure_ascii=False))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
