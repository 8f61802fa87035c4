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
    if args and args[0] in LIGHT and "-h" not in args and "--help" not in args:
        from cockpit.interventions import main as intervene

        return intervene(args)
    from cockpit.cli import main as full

    return full(args)
