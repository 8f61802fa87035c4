"""/api/embed: Ollama's checks on an embedding request, then the backend's vectors L2-normalised
(and cut to ``dimensions``) here in the server, as Ollama's ``EmbedHandler`` does (REFERENCE-2
G.5), so every backend's vectors come out the same way.

Embeddings take no generation slot: the embedded engine computes them on a context of their own.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from cockpit.core.model_names import canonical
from cockpit.embedded.backend import BackendError
from cockpit.embedded.http1 import JSON, Reply
from cockpit.embedded.wire import dumps, error, keep_alive_s

if TYPE_CHECKING:
    from cockpit.embedded.api import OllamaServer

UNSUPPORTED = "this model does not support embeddings"
"""What Ollama answers, with 501, when the model it runs cannot embed."""


def inputs_of(body: dict[str, Any]) -> list[str] | Reply:
    """The texts to embed: a string (none if empty) or a list of strings."""
    raw = body.get("input")
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw] if raw else []
    if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        return list(raw)
    return error(400, "invalid input type")


def normalize(vector: list[float]) -> list[float]:
    """Unit length (a zero vector stays zero), as Ollama's ``normalize``."""
    if not all(math.isfinite(x) for x in vector):
        raise BackendError("embedding contains NaN or Inf values", 400)
    scale = 1.0 / max(math.sqrt(sum(x * x for x in vector)), 1e-12)
    return [x * scale for x in vector]


async def handle(server: OllamaServer, body: dict[str, Any], name: str) -> Reply:
    t0 = time.perf_counter_ns()
    if not name:
        return error(404, "model '' not found")
    texts = inputs_of(body)
    if not isinstance(texts, list):
        return texts
    dimensions = body.get("dimensions") or 0
    if not isinstance(dimensions, int) or isinstance(dimensions, bool):
        return error(400, "json: cannot unmarshal dimensions into Go struct field "
                          "EmbedRequest.dimensions of type int")
    entry = server.find(name)
    if entry is None:
        return error(404, f'model "{name}" not found, try pulling it first')
    keep, key = keep_alive_s(body.get("keep_alive")), canonical(entry.name)
    server.touch(key, entry, keep)
    if not texts:
        return 200, JSON, dumps({"model": name, "embeddings": []})
    if "embedding" not in entry.capabilities:
        return error(501, UNSUPPORTED)
    try:
        result = await server.backend.embed(entry, texts, body.get("truncate") is not False)
        vectors = [normalize(v) for v in result.vectors]
        if dimensions > 0:
            vectors = [normalize(v[:dimensions]) if dimensions < len(v) else v
                       for v in vectors]
    except BackendError as exc:
        return error(exc.status, exc.message)
    except Exception as exc:  # a backend bug: an error reply, as for generation
        return error(500, str(exc) or type(exc).__name__)
    finally:
        server.touch(key, entry, keep)
    reply: dict[str, Any] = {"model": name, "embeddings": vectors,
                             "total_duration": time.perf_counter_ns() - t0,
                             "load_duration": result.load_duration_ns,
                             "prompt_eval_count": result.prompt_eval_count}
    return 200, JSON, dumps({k: v for k, v in reply.items() if v != 0})  # Go's omitempty
