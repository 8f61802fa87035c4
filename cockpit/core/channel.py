"""Where a session's command socket lives, and one request to it from a shell.

Kept apart from control.py (the owner's asyncio server and the viewers' client) and free of
pydantic, aiosqlite and asyncio: `cockpit pause SESSION AGENT` imports only this, the standard
library's `socket`, `json` and `sqlite3`, so a command from a shell costs little more than the
interpreter's start-up (the target is 100 ms from running it to its event committed).

The directory is `$COCKPIT_RUNTIME_DIR`, else `/tmp/cockpit-UID`, created 0700 and checked,
never trusted as found. Not `$XDG_RUNTIME_DIR`: systemd removes it when the user's last login
ends, which would cut a crew that was detached at 11 PM off from every command.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sqlite3
import stat
from pathlib import Path
from typing import Any

SUN_PATH = 107
"""The longest path a Unix socket can have on Linux (`sun_path` less its NUL)."""
REQUEST_TIMEOUT = 600.0
"""A shell command waits this long for its answer (a pause waits for the stream to close)."""


class ControlError(Exception):
    """The channel itself failed: nobody listens, the peer is not allowed, it hung up."""


class NotRunning(ControlError):
    """No owner process answers for the session (it ended, crashed or never started)."""


class Refused(Exception):
    """The owner answered that the request does not apply (`kind` says how: "command" for a
    command that does not apply now, "log" for a log error, "usage" for a bad request)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def runtime_dir() -> Path:
    """The directory the sockets live in, created 0700 and checked to be ours alone."""
    base = os.environ.get("COCKPIT_RUNTIME_DIR")
    path = Path(base) if base else Path("/tmp") / f"cockpit-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError as error:
        raise ControlError(f"cannot use {path} for the session's socket: "
                           f"{error.strerror or error}") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() \
            or info.st_mode & 0o077:
        raise ControlError(f"{path} is not a private directory of this user (it must be a "
                           f"directory owned by uid {os.getuid()} with mode 0700); remove it "
                           "or set COCKPIT_RUNTIME_DIR")
    return path


def socket_path(db: Path, session: str) -> Path:
    """Where session `session` of log `db` is commanded. The log's path is part of the
    name: two logs may hold sessions with the same id."""
    digest = hashlib.sha1(str(Path(db).expanduser().resolve()).encode()).hexdigest()[:10]
    path = runtime_dir() / f"{session}-{digest}.sock"
    if len(os.fsencode(path)) > SUN_PATH:
        raise ControlError(f"{path} is too long for a socket ({SUN_PATH} bytes at most); set "
                           "COCKPIT_RUNTIME_DIR to a shorter directory")
    return path


def resolve_session(db: Path, ref: str) -> str:
    """A session id of log `db` from `last`, an id or a unique prefix of one (read-only).
    ControlError says why not."""
    if not db.exists():
        raise ControlError(f"{db}: no such event log")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True,
                                                timeout=5.0)) as connection:
            if ref == "last":
                rows = connection.execute(
                    "SELECT id FROM sessions ORDER BY started_at DESC, id DESC LIMIT 1").fetchall()
            else:
                pattern = ref.replace("%", "").replace("_", r"\_") + "%"
                rows = connection.execute(
                    "SELECT id FROM sessions WHERE id = ? OR id LIKE ? ESCAPE '\\' LIMIT 3",
                    (ref, pattern)).fetchall()
    except sqlite3.Error as error:
        raise ControlError(f"{db}: not a readable event log ({error})") from None
    ids = [str(row[0]) for row in rows]
    if ref in ids:
        return ref
    if not ids:
        raise ControlError(f"{db}: " + ("no sessions yet" if ref == "last"
                                         else f"no session {ref!r}"))
    if len(ids) > 1:
        raise ControlError(f"{db}: {ref!r} matches several sessions; give more of the id")
    return ids[0]


def unreachable(error: OSError, path: Path, session: str) -> ControlError:
    """What a failed connect to a session's socket means: nobody runs the session, or the
    socket belongs to another user, or something else (said as it is)."""
    if isinstance(error, FileNotFoundError | ConnectionRefusedError):
        return NotRunning(f"session {session} is not running")
    if isinstance(error, PermissionError):
        return ControlError(f"permission denied: {path} belongs to another user")
    return ControlError(f"cannot reach session {session}: {error.strerror or error}")


def request(db: Path, session: str, op: str, timeout: float = REQUEST_TIMEOUT,
            **args: Any) -> Any:
    """Send one request to the session's owner and wait for its answer (given only once the
    event is committed). NotRunning, ControlError or Refused when it is not applied."""
    path = socket_path(db, session)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except OSError as error:
            raise unreachable(error, path, session) from None
        try:
            # If it hung up first, a refusal it sent at once (another uid) is still to be read.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(json.dumps({"id": 1, "op": op, "args": args},
                                        ensure_ascii=False).encode() + b"\n")
            with sock.makefile("rb") as stream:
                line = stream.readline()
        except TimeoutError:
            raise ControlError(f"session {session} did not answer within "
                               f"{timeout:g} s") from None
        except OSError:
            line = b""
    if not line:
        raise ControlError(f"session {session}'s owner hung up before confirming; "
                           f"`cockpit status {session}` shows what was applied")
    answer = json.loads(line)
    if answer.get("ok"):
        return answer.get("result")
    kind = str(answer.get("kind") or "usage")
    message = str(answer.get("error") or "refused")
    if kind == "denied":
        raise ControlError(message)
    raise Refused(message, kind)
