"""Where the event log's file lives, and whether its path still names the file that is open.

SQLite keeps writing to a log file that was deleted, moved away or replaced under the process
(WAL writes on into the orphan, which is gone at close), so the writer must notice for itself
(REFERENCE-2.md L.2). `FileWatch` holds the file open and compares its identity (device, inode)
and link count with what the path names now: one `stat` per check.
"""

from __future__ import annotations

import os
from pathlib import Path


def default_db_path() -> Path:
    """`COCKPIT_DB`, else `$XDG_DATA_HOME/cockpit/cockpit.db` (~/.local/share by default)."""
    env = os.environ.get("COCKPIT_DB")
    if env:
        return Path(env).expanduser()
    return data_dir() / "cockpit.db"


def data_dir() -> Path:
    """`$XDG_DATA_HOME/cockpit` (~/.local/share/cockpit by default)."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "cockpit"


class FileWatch:
    """Tells whether a path still names the file that was at it when `start()` ran."""

    def __init__(self, path: Path) -> None:
        self.path = path.absolute()  # a later chdir must not look like a moved file
        self._fd: int | None = None
        self._identity: tuple[int, int] = (0, 0)

    def start(self) -> None:
        """Hold the file open to tell, later, whether the path still names it.

        Close it (`close()`) only after the SQLite connection: closing any descriptor of a file
        drops every POSIX lock the process holds on it, SQLite's included.
        """
        try:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return  # cannot watch: carry on unwatched rather than refuse to run
        held = os.fstat(self._fd)
        self._identity = (held.st_dev, held.st_ino)

    def moved(self) -> str | None:
        """None while the path names the held file (or nothing is watched); else what happened
        to it. One syscall."""
        if self._fd is None:
            return None
        try:
            here = os.stat(self.path)
        except FileNotFoundError:
            return "deleted" if os.fstat(self._fd).st_nlink == 0 else "moved away"
        except OSError:
            return None  # cannot tell (permissions): the next check may
        return None if (here.st_dev, here.st_ino) == self._identity else "replaced by another file"

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def mcp_log_path(db: Path) -> Path:
    """Where a crew's MCP servers' stderr goes: beside the log, never on the terminal."""
    return db.with_name(db.name + ".mcp.log")
