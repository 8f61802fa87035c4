"""Which process owns a session, told apart from a later process that reused its pid.

A pid alone is not an identity: after a crash and a reboot, an unrelated process may get the
same number, and the crashed session would look `running` forever. So a session also records
the host name and the process's start time, and a live pid only counts as the owner when both
match.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

START_SLACK = 5.0
"""Seconds of disagreement allowed between two readings of one process's start time (the
kernel's boot time, which it is computed from, moves a little with clock adjustments)."""


@dataclass(frozen=True)
class Identity:
    pid: int
    hostname: str
    proc_start: float | None


def process_identity() -> Identity:
    """This process."""
    return Identity(os.getpid(), socket.gethostname(), start_time(os.getpid()))


def start_time(pid: int) -> float | None:
    """When process `pid` started, in Unix time, from /proc; None where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rpartition(")")[2].split()
        with open("/proc/stat", encoding="ascii") as kernel:
            boot = next(float(line.split()[1]) for line in kernel if line.startswith("btime"))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def owner_alive(pid: int | None, hostname: str | None = None,
                proc_start: float | None = None) -> bool:
    """Whether the process that recorded (pid, hostname, proc_start) still runs.

    Another machine's process cannot be checked from here, so it counts as alive: better to
    refuse a resume than to run one session twice. A zombie (killed, not yet reaped) is dead.
    """
    if not pid:
        return False
    if hostname and hostname != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if _zombie(pid):
        return False
    if proc_start is not None:
        now = start_time(pid)
        if now is not None and abs(now - proc_start) > START_SLACK:
            return False  # the pid was reused by a process that started at another time
    return True
