"""The `cockpit` script: the full command line, or a light path for commands from a shell.

`cockpit pause SESSION AGENT` and its kin only send one request over a socket. Importing the
whole CLI first (pydantic models, aiosqlite, the event types) took longer than the command
itself, so those verbs go straight to `interventions`, which imports none of it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

LIGHT = frozenset({"pause", "stop", "restart", "redirect", "set", "approve", "deny"})


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" not in args and "--help" not in args and args and \
            (args[0] in LIGHT or _resumes_an_agent(args)):
        from cockpit.interventions import main as intervene

        return intervene(args)
    from cockpit.cli import main as full

    return full(args)


def _resumes_an_agent(args: list[str]) -> bool:
    """`cockpit resume SESSION AGENT [--db PATH]` resumes a paused agent of a running
    session (a command); with one positional, or other options, it continues a session."""
    if args[0] != "resume":
        return False
    rest = args[1:]
    if "--db" in rest:
        at = rest.index("--db")
        rest = rest[:at] + rest[at + 2:]
    return len(rest) == 2 and not any(arg.startswith("-") for arg in rest)
