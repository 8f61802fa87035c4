"""Arguments every subcommand shares, in a module of their own: the full command line
(cli.py) and the light path of commands from a shell (interventions.py) declare them alike
without one importing the other's weight."""

from __future__ import annotations

import argparse
from pathlib import Path

SESSION_HELP = "a session id (or prefix), or 'last'"


def add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", type=Path, default=None, metavar="PATH",
        help="event log (default: $COCKPIT_DB, else ~/.local/share/cockpit/cockpit.db)",
    )
