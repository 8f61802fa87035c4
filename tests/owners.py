"""Helpers for the tests of session owners as real processes (test_owner.py,
test_shell_commands.py): `cockpit` run as subprocesses, the fake Ollama on a thread of the test
process, the SQLite log read read-only, TUI viewers in real pseudo-terminals.

Every owner a test starts is killed when it ends (`owners`), found by the pids its session's
log records, and only if that pid still runs `cockpit _owner` on that log: nothing outlives a
test, and no unrelated process that reused a pid is touched.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import PATIENCE
from tests.test_signals import Terminal, query
from tests.test_signals import wait_for as _wait_for

__all__ = ["NOBODY", "PATIENCE", "Event", "Gate", "Viewer", "alive", "assert_complete",
           "can_switch_users", "cockpit", "cockpit_env", "crew_toml", "detach", "events",
           "owner_pids", "owners", "query", "replies", "run_as", "session_outcome", "text_of",
           "wait_for", "wait_gone"]


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = PATIENCE) -> None:
    """Poll a condition, no fixed sleeps; fail naming what did not happen."""
    _wait_for(predicate, what, timeout)


class Gate:
    """A `ModelScript.gate`: the fake sends the reply's tokens below `limit`, then holds the
    stream open until the test raises it."""

    def __init__(self, limit: float = 0) -> None:
        self.limit = limit

    def __call__(self, index: int) -> bool:
        return index < self.limit

    def open(self) -> None:
        self.limit = math.inf


def replies(names: list[str], count: int) -> dict[str, list[str]]:
    """Each agent's scripted reply, as the tokens the fake streams: `a0000 `, `a0001 `, ...
    Fixed width, so one token's text is never inside another's."""
    return {name: [f"{name}{i:04d} " for i in range(count)] for name in names}


def crew_toml(host: str, agents: list[str], *, extra: str = "", agent_extra: str = "") -> str:
    """A crew whose agent `x` asks model `mx`, so each agent has its own script. The stall
    watchdog is far off: a gated stream holds for as long as a loaded machine needs."""
    lines = ['name = "owned-crew"', f'host = "{host}"', "retry_backoff = 0.01",
             "stall_timeout = 900", extra]
    for name in agents:
        lines += ["[[agents]]", f'name = "{name}"', f'model = "m{name}"',
                  f'task = "Say what {name} says."', agent_extra]
    return "\n".join(lines) + "\n"


def cockpit_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The environment of a `cockpit` child: its sockets in a runtime dir of this test."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("TEXTUAL", "COCKPIT_"))}
    env["COCKPIT_RUNTIME_DIR"] = str(tmp / "run")
    env.update(extra)
    return env


def cockpit(*args: str | Path, env: dict[str, str],
            **options: Any) -> subprocess.CompletedProcess[str]:
    """`cockpit ARGS` as a subprocess, to its end."""
    return subprocess.run([sys.executable, "-m", "cockpit", *map(str, args)],
                          capture_output=True, text=True, timeout=PATIENCE, env=env, **options)


def detach(crew: Path, db: Path, env: dict[str, str], *args: str) -> str:
    """`cockpit run CREW --detach`: the session id it prints, once the owner runs it."""
    done = cockpit("run", crew, "--detach", "--db", db, *args, env=env, cwd=crew.parent)
    assert done.returncode == 0, done.stderr
    session = done.stdout.splitlines()[0]
    assert f"session {session} runs in the background" in done.stderr, done.stderr
    return session


@dataclass(frozen=True)
class Event:
    id: int
    seq: int
    agent: str | None
    type: str
    data: dict[str, Any]


def events(db: Path, after: int = 0) -> list[Event]:
    """The log's events after row `after`, in id order (read-only, as another process)."""
    return [Event(int(str(i)), int(str(s)), None if a is None else str(a), str(t),
                  json.loads(str(d)))
            for i, s, a, t, d in query(db, "SELECT id, seq, agent, type, data FROM events "
                                           f"WHERE id > {int(after)} ORDER BY id")]


def text_of(log: list[Event], agent: str) -> str:
    """The agent's token texts concatenated in id order."""
    return "".join(e.data["text"] for e in log if e.type == "token" and e.agent == agent)


def session_outcome(db: Path) -> object:
    rows = query(db, "SELECT outcome FROM sessions")
    return rows[0][0] if rows else None


def owner_pids(db: Path) -> set[int]:
    """Every process that owned a session of `db`: the first one and each resume's."""
    pids = {int(str(pid)) for (pid,) in query(db, "SELECT pid FROM sessions") if pid}
    pids |= {int(e.data["pid"]) for e in events(db)
             if e.type in ("session_started", "session_resumed") and "pid" in e.data}
    return pids


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not: nobody may reap an orphan in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _is_owner_of(pid: int, db: Path) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"_owner" in argv and str(db).encode() in argv


def wait_gone(pid: int, what: str = "the owner process to end") -> None:
    wait_for(lambda: not alive(pid), what)


@contextlib.contextmanager
def owners(*dbs: Path) -> Iterator[None]:
    """Kill every owner process of these logs when the block ends, whatever happened."""
    try:
        yield
    finally:
        for db in dbs:
            for pid in owner_pids(db):
                if _is_owner_of(pid, db):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)


class Viewer(Terminal):
    """A TUI viewer (`cockpit attach ...`) in a real pty, with the suite's patience."""

    def __init__(self, args: list[str | Path], cwd: Path, env: dict[str, str],
                 size: tuple[int, int] = (40, 160)) -> None:
        extra: dict[str, str] = {key: env[key] for key in ("COCKPIT_RUNTIME_DIR", "OLLAMA_HOST")
                                 if key in env}
        super().__init__([str(a) for a in args], cwd=cwd, size=size, env=extra)

    def mark(self) -> int:
        """Where the screen's output is now: wait for what comes after it."""
        return len(self.snapshot())

    def wait_for_text(self, text: str, since: int = 0, timeout: float = PATIENCE) -> None:
        wanted = text.encode()

        def shown() -> bool:
            if wanted in self.snapshot()[since:]:
                return True
            assert self.process.poll() is None, (f"the viewer exited before showing {text!r}: "
                                                 f"{self.snapshot()[-3000:]!r}")
            return False

        wait_for(shown, f"{text!r} on the viewer's screen")

    def press(self, keys: str, expect: str | None = None) -> None:
        """Type `keys`; with `expect`, wait until that text is drawn after them."""
        mark = self.mark()
        self.write(keys.encode())
        if expect is not None:
            self.wait_for_text(expect, since=mark)


def assert_complete(db: Path, scripts: dict[str, list[str]]) -> list[Event]:
    """The log of a session that ended well: per agent, the token texts in id order are
    exactly its scripted reply (no gap, no duplicate) and so is its one `agent_finished`;
    ids increase strictly and `seq` counts 1, 2, 3... with no gap or duplicate."""
    log = events(db)
    ids = [e.id for e in log]
    assert ids == sorted(set(ids))
    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    for agent, tokens in scripts.items():
        reply = "".join(tokens)
        assert text_of(log, agent) == reply, agent
        finished = [e for e in log if e.type == "agent_finished" and e.agent == agent]
        assert len(finished) == 1, (agent, finished)
        assert finished[0].data["output"] == reply, agent
    assert session_outcome(db) == "finished"
    return log


# -- another user ---------------------------------------------------------------------------

NOBODY = 65534


def run_as(uid: int, argv: list[str], *, env: dict[str, str], cwd: Path,
           scratch: Path) -> subprocess.CompletedProcess[str]:
    """Run `argv` as user and group `uid` (the caller is root), to its end.

    When that user cannot reach this interpreter (pyenv under /root, which is 0700), the
    child gets a private mount namespace in which /root is a 0755 directory holding only
    the interpreter's tree (bind mounts in `scratch`, seen by no other process); everything
    else, /tmp and its sockets included, is the same file system as the caller's."""
    if _reachable(uid):
        return subprocess.run(argv, capture_output=True, text=True, timeout=PATIENCE,
                              env=env, cwd=cwd, user=uid, group=uid, extra_groups=[])
    home = Path.home().resolve()
    needed = {Path(p).resolve() for p in (sys.base_prefix, sys.prefix, Path(__file__).parent)}
    tops = sorted({home / p.relative_to(home).parts[0] for p in needed if p.is_relative_to(home)})
    shadow = scratch / "home"
    shadow.mkdir(mode=0o755, exist_ok=True)
    binds: list[str] = []
    for top in tops:
        (shadow / top.name).mkdir(exist_ok=True)
        binds += [f'mount --rbind "{top}" "{shadow / top.name}"']
    script = "; ".join(["set -e", *binds, f'mount --rbind "{shadow}" "{home}"',
                        f'exec setpriv --reuid {uid} --regid {uid} --clear-groups "$@"'])
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           script, "sh", *argv],
                          capture_output=True, text=True, timeout=PATIENCE, env=env, cwd=cwd)


@functools.cache
def _reachable(uid: int) -> bool:
    try:
        done = subprocess.run([sys.executable, "-c", "import cockpit"], capture_output=True,
                              timeout=PATIENCE, user=uid, group=uid, extra_groups=[],
                              cwd="/")
    except PermissionError:
        return False
    return done.returncode == 0


def can_switch_users() -> str | None:
    """Why the cross-user tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root, to run processes as another user"
    if not _reachable(NOBODY) and not (shutil.which("unshare") and shutil.which("setpriv")):
        return f"uid {NOBODY} cannot run {sys.executable}, and unshare/setpriv are missing"
    return None
