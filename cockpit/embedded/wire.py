"""Ollama's conventions on the wire, shared by its routes: Go's timestamps, compact JSON,
``{"error"}`` bodies, tool-call ids and keep_alive durations (REFERENCE.md A.1, A.2, A.4)."""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

from cockpit.core.model_names import canonical
from cockpit.embedded.http1 import JSON, Reply

_sec_cache: tuple[int, str] = (-1, "")


def rfc3339(ns: int | None = None) -> str:
    """Go's RFC3339Nano in UTC (trailing zeros trimmed); cached per second, it is per-chunk."""
    global _sec_cache
    sec, frac = divmod(time.time_ns() if ns is None else ns, 1_000_000_000)
    cached = _sec_cache  # one read: other ServerThreads may replace it concurrently
    if cached[0] != sec:
        cached = _sec_cache = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    digits = f"{frac:09d}".rstrip("0")
    return f"{cached[1]}.{digits}Z" if digits else f"{cached[1]}Z"


def dumps(obj: Any) -> bytes:
    """Compact JSON, as Go's encoding/json writes it."""
    return json.dumps(obj, separators=(",", ":")).encode()


def error(status: int, message: str) -> Reply:
    """Ollama's error reply: ``{"error": message}`` as application/json."""
    return status, JSON, dumps({"error": message})


def call_id() -> str:
    """``call_`` and 8 characters from [a-z0-9], as ``toolCallId()`` makes them."""
    return "call_" + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789")
                             for _ in range(8))


def keep_alive_s(value: Any) -> float:
    """Seconds from a keep_alive number or Go duration ("5m", "1h30m"); negative = forever."""
    if value is None:
        return 300.0
    if isinstance(value, int | float):
        return float(value)
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}
    parts = re.findall(r"(-?[\d.]+)(ns|us|ms|s|m|h|)", str(value).strip())
    return sum(float(n) * units[u] for n, u in parts) if parts else 300.0


def qualified(name: str) -> str:
    """The full name in Ollama's capability errors: "m1" is registry.ollama.ai/library/m1:latest."""
    parts = canonical(name).split("/")
    defaults = ["registry.ollama.ai", "library"]
    return "/".join(defaults[: max(0, 3 - len(parts))] + parts)


def namespace(name: str) -> str:
    """The namespace part of a model name ("library" unless it says otherwise)."""
    return qualified(name).split("/")[-2]
