"""What the Ollama-compatible server asks of whatever generates tokens.

A backend (the scripted fake in tests, llama.cpp in the embedded engine) knows nothing of HTTP:
it lists its models and turns a validated request into text pieces. Everything a client can
observe on the wire belongs to the server, so every backend behaves the same on the wire.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


@dataclass
class ModelEntry:
    """A model a backend can serve, as listed by /api/tags, /api/ps and /api/show."""

    name: str
    size: int = 0
    family: str = "llama"
    parameter_size: str = ""
    quantization_level: str = "Q4_K_M"
    context_length: int = 4096
    capabilities: list[str] = field(default_factory=lambda: ["completion"])
    """What /api/show reports and the server enforces before a backend sees a request:
    "tools" (else a request with tools is refused), "thinking", "embedding" (/api/embed)."""


@dataclass
class Generation:
    """One chat/generate request, validated, as handed to a backend."""

    endpoint: Literal["chat", "generate"]
    model: str  # the name exactly as the client sent it (echoed on the wire)
    entry: ModelEntry  # the backend's model it resolved to ("m1" and "m1:latest" are one)
    messages: list[dict[str, Any]]
    prompt: str
    system: str | None
    options: dict[str, Any]
    think: bool | str | None  # True when omitted and the model can think, as Ollama does
    body: dict[str, Any]
    format: str | dict[str, Any] | None = None  # "json", a JSON schema, or None: free text
    tools: list[dict[str, Any]] = field(default_factory=list)  # as the request sent them


@dataclass
class Piece:
    """Some generated text; tool_calls are ``{"name", "arguments"}`` dicts (ids are added)."""

    content: str = ""
    thinking: str = ""
    tool_calls: list[dict[str, Any]] | None = None


@dataclass
class Finish:
    """End of generation: counts come from the backend, durations are measured here."""

    done_reason: str = "stop"
    prompt_eval_count: int = 0
    eval_count: int | None = None  # None: the number of pieces streamed
    load_duration_ns: int = 0
    context: list[int] | None = None  # generate only; None: a placeholder of the right length


@dataclass
class Embeddings:
    """Raw vectors, one per input in order; the server normalises them, as Ollama's does."""

    vectors: list[list[float]]
    prompt_eval_count: int = 0
    load_duration_ns: int = 0


class BackendError(Exception):
    """Before the first piece: an HTTP error status; after it: an ``{"error"}`` line."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.message, self.status = message, status


class DropConnection(Exception):  # noqa: N818 - it is an instruction, not an error
    """Fault injection: the server closes the TCP connection without ending the stream."""


class Backend(Protocol):
    """What generates tokens. ``generate`` is an async generator: raising BackendError before
    its first yield becomes an HTTP error, after it an error line. The server aclose()s it
    when the client disconnects, so cleanup (stopping a llama.cpp job) belongs in its
    ``finally``. ``embed`` is only called for models whose capabilities list "embedding"."""

    def models(self) -> list[ModelEntry]: ...
    def generate(self, gen: Generation) -> AsyncGenerator[Piece | Finish, None]: ...
    async def embed(self, entry: ModelEntry, inputs: list[str],
                    truncate: bool) -> Embeddings: ...
