"""The crew's Ollama hosts as a pool: which host an agent's next request goes to.

With one host there is no choice and nothing is probed: the request goes there and its errors
speak for themselves. With several, each candidate is asked what it has (`/api/tags`) and what it
has loaded (`/api/ps`); the request goes to a host that has the model, preferring one where it
is loaded and where the crew has the fewest requests in flight. A host that cannot be reached
is skipped, so an agent whose host went down mid-reply continues on another one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import ollama

from cockpit.core.model_names import canonical

PROBE_TTL = 10.0
"""Seconds a host's answer (its models, its loaded models) is trusted before asking again."""
PROBE_TIMEOUT = 10.0


class HostUnreachable(Exception):
    """No host of the pool answered. The message names them and why."""


class ModelUnavailable(Exception):
    """Every host that answered lacks the model: no amount of waiting will help."""


def unreachable(error: BaseException) -> bool:
    """Whether an error means the host itself could not be reached (refused, DNS, connect
    timeout), as opposed to an answer from it."""
    return isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | ConnectionError)


@dataclass
class _Probe:
    at: float
    models: frozenset[str]
    loaded: frozenset[str]


class HostPool:
    """Picks hosts and counts the crew's requests in flight on each."""

    def __init__(self, client_for: Callable[[str], ollama.AsyncClient],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client_for = client_for
        self._clock = clock
        self._probes: dict[str, _Probe] = {}
        self.in_flight: dict[str, int] = {}

    def client(self, host: str) -> ollama.AsyncClient:
        return self._client_for(host)

    async def choose(self, model: str, candidates: list[str]) -> tuple[str, str]:
        """(host, why) for the next request of `model`. Raises HostUnreachable when no
        candidate answers, ModelUnavailable when those that answer lack the model."""
        if len(candidates) == 1:
            return candidates[0], ""
        wanted = canonical(model)
        results = await asyncio.gather(*(self._probe(host) for host in candidates),
                                       return_exceptions=True)
        having: list[tuple[bool, int, int, str]] = []
        down: list[str] = []
        for order, (host, result) in enumerate(zip(candidates, results, strict=True)):
            if isinstance(result, BaseException):
                down.append(f"{host} ({_reason(result)})")
            elif wanted in result.models:
                having.append((wanted not in result.loaded, self.in_flight.get(host, 0),
                               order, host))
        if having:
            not_loaded, busy, _, host = min(having)
            why = "the model is loaded there" if not not_loaded else "it has the model"
            return host, f"{why}; {busy} of the crew's requests in flight"
        if down:
            raise HostUnreachable("no host of the pool answered: " + ", ".join(down))
        raise ModelUnavailable(f"model {model!r} is on no host of the pool "
                               f"({', '.join(candidates)}); pull it on one of them")

    def forget(self, host: str) -> None:
        """Drop what `host` said: it failed, so ask it again before sending it more."""
        self._probes.pop(host, None)

    @contextlib.contextmanager
    def request(self, host: str) -> Iterator[None]:
        """Count a request in flight on `host` for as long as the block runs."""
        self.in_flight[host] = self.in_flight.get(host, 0) + 1
        try:
            yield
        finally:
            self.in_flight[host] -= 1

    async def _probe(self, host: str) -> _Probe:
        probe = self._probes.get(host)
        now = self._clock()
        if probe is not None and now - probe.at < PROBE_TTL:
            return probe
        client = self._client_for(host)
        async with asyncio.timeout(PROBE_TIMEOUT):
            tags = await client.list()
            ps = await client.ps()
        probe = _Probe(now, frozenset(canonical(m.model or "") for m in tags.models),
                       frozenset(canonical(m.model or "") for m in ps.models))
        self._probes[host] = probe
        return probe


def _reason(error: BaseException) -> str:
    if unreachable(error):
        return "unreachable"
    if isinstance(error, TimeoutError):
        return "no answer"
    if isinstance(error, ollama.ResponseError):
        return f"answered {error.status_code}"
    return type(error).__name__
