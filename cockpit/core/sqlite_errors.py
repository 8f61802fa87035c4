"""Which sqlite3 errors can pass and which cannot.

The event log retries a commit that failed for a reason that may go away (a lock held by another
process, a full disk, an I/O error) and gives up on one that cannot (a corrupt file, a
constraint, a bug). That decision, and the wording of the cause for a person, lives here so the
writer's retry loop reads as policy, not as a table of SQLite result codes.
"""

from __future__ import annotations

import sqlite3

# SQLite primary result codes (sqlite3.h); extended codes keep them in their low byte.
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_NOMEM, SQLITE_READONLY = 5, 6, 7, 8
SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_PROTOCOL = 10, 13, 14, 15
SQLITE_READONLY_DBMOVED = 1032


def transient_cause(error: BaseException) -> str | None:
    """Why a commit failed, for a person, if the reason can pass (a retry may land it); None
    if it cannot (a corrupt file, a constraint, a bug)."""
    if not isinstance(error, sqlite3.OperationalError):
        return None
    code = getattr(error, "sqlite_errorcode", None)
    if code is None or code == SQLITE_READONLY_DBMOVED:
        return None
    name = getattr(error, "sqlite_errorname", "")
    primary = code & 0xFF
    if primary in (SQLITE_BUSY, SQLITE_LOCKED):
        return f"the event log is locked by another process ({error})"
    if primary == SQLITE_FULL:
        return f"the disk is full ({error})"
    if primary == SQLITE_IOERR:
        return f"I/O error: {error} ({name})"
    if primary == SQLITE_READONLY:
        return f"the event log cannot be written: {error} ({name})"
    if primary in (SQLITE_NOMEM, SQLITE_CANTOPEN, SQLITE_PROTOCOL):
        return f"{error} ({name})"
    return None
