"""How a request to Ollama can fail, and what cockpit does about each kind.

`classify` is the one rule that sorts an error into waiting for the host, retrying, or giving
up; the runner applies it. Kept apart so the rule can be read (and tested) without the loop.
"""

from __future__ import annotations

import json
import random
from typing import Literal

import httpx
import ollama
import pydantic

from cockpit.core.hosts import HostUnreachable, ModelUnavailable, unreachable

MAX_BACKOFF = 30.0
"""The longest pause between two attempts, for retries and for waiting on a host."""


class StallError(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"no new chunk for {seconds:g} s")
        self.seconds = seconds


class StreamEnded(Exception):
    """The stream closed without a `done` chunk."""


Kind = Literal["unreachable", "retry", "fatal"]


def classify(error: BaseException, host: str, received: bool = False) -> tuple[Kind, str]:
    """(kind, message) for an error from a request. Messages are for the user.

    "unreachable": the host could not be reached (refused, DNS, connect timeout, or reset
    before it sent a byte): the agent waits for it, within `host_wait`, without spending
    retries. "retry": the host answered badly or the reply broke off; counts against `retries`.
    "fatal": retrying cannot help (404, 400, ...).
    """
    if isinstance(error, HostUnreachable):
        return "unreachable", str(error)
    if isinstance(error, ModelUnavailable):
        return "fatal", str(error)
    if isinstance(error, ollama.ResponseError):
        status = error.status_code
        if status == -1:
            return "retry", f"Ollama reported an error mid-stream: {error.error}"
        if status in (429, 499) or status >= 500:
            return "retry", f"Ollama answered {status}: {error.error}"
        return "fatal", f"Ollama answered {status}: {error.error}"
    if isinstance(error, StallError):
        return "retry", f"stalled: {error}"
    if unreachable(error):
        detail = str(error) or type(error).__name__
        if "All connection attempts failed" in detail or "refused" in detail.lower():
            detail = "connection refused"
        return "unreachable", f"cannot reach Ollama at {host}: {detail}"
    if isinstance(error, StreamEnded | httpx.TransportError):
        detail = str(error) or type(error).__name__
        if not received and isinstance(error, httpx.RemoteProtocolError | httpx.ReadError):
            return "unreachable", f"Ollama at {host} closed the connection before answering"
        return "retry", f"connection to {host} dropped mid-reply: {detail}"
    if isinstance(error, pydantic.ValidationError | json.JSONDecodeError):
        return "retry", f"unexpected response from {host}: {type(error).__name__}"
    return "fatal", f"{type(error).__name__}: {error}"


def host_wait_delay(attempt: int, first: float) -> float:
    """Capped exponential backoff with jitter for the `attempt`-th try at an unreachable host:
    from `first` (at least 0.1 s: no busy loop) doubling to MAX_BACKOFF, each delay drawn
    from 75-125 % of that so agents waiting on one host do not knock in step."""
    base: float = min(max(first, 0.1) * 2.0 ** min(attempt - 1, 16), MAX_BACKOFF)
    return min(base * random.uniform(0.75, 1.25), MAX_BACKOFF)
