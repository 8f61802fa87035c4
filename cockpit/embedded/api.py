"""The Ollama API over HTTP/1.1: its routes, model listings and generation admission.

Backends (a scripted fake for tests, the embedded llama.cpp engine) only yield text pieces;
this server owns everything a real Ollama client can observe (REFERENCE.md part A), so one
conformance suite holds every backend to the same wire.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from cockpit.core.model_names import canonical
from cockpit.embedded import embed, generation, openai
from cockpit.embedded.backend import Backend, BackendError, Generation, ModelEntry
from cockpit.embedded.http1 import JSON, TEXT, Connection, HttpServer, Reply, RequestRecord, Stream
from cockpit.embedded.slots import Slots
from cockpit.embedded.wire import dumps, error, keep_alive_s, rfc3339

OLLAMA_VERSION = "0.5.1"
_ROUTES = {"/": ("GET", "HEAD"), "/api/version": ("GET", "HEAD"), "/api/tags": ("GET", "HEAD"),
           "/api/ps": ("GET",), "/api/chat": ("POST",), "/api/generate": ("POST",),
           "/api/show": ("POST",), "/api/embed": ("POST",),
           "/v1/chat/completions": ("POST",), "/v1/embeddings": ("POST",),
           "/v1/models": ("GET",), "/v1/models/:model": ("GET",)}


class OllamaServer(HttpServer):
    """Serves a Backend over loopback HTTP/1.1 exactly as an Ollama client expects."""

    def __init__(self, backend: Backend, *, host: str = "127.0.0.1", port: int = 0,
                 parallel: int = 1, max_queue: int = 512,
                 on_request: Callable[[RequestRecord], None] | None = None) -> None:
        super().__init__(host=host, port=port, on_request=on_request)
        self.backend = backend
        self.slots = Slots(parallel, max_queue)
        started = time.time_ns()
        self.created_at = rfc3339(started)  # every model's modified_at
        self.created_s = started // 1_000_000_000
        self._loaded: dict[str, tuple[ModelEntry, float]] = {}
        self._admitted = 0

    async def __aenter__(self) -> OllamaServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _route(self, conn: Connection, rec: RequestRecord, method: str, path: str,
                     body: dict[str, Any], bad_json: str | None) -> Reply:
        one = path.startswith("/v1/models/") and path.count("/") == 3 and path[11:] != ""
        key = "/v1/models/:model" if one else path
        if key not in _ROUTES:
            return 404, TEXT, b"404 page not found"
        if method not in _ROUTES[key]:
            return 405, TEXT, b"405 method not allowed"
        if path.startswith("/v1/"):
            return await openai.route(self, conn, rec, path, body, bad_json)
        if path == "/":
            return 200, TEXT, b"Ollama is running"
        if path == "/api/version":
            return 200, JSON, dumps({"version": OLLAMA_VERSION})
        if path == "/api/tags":
            models = [self.describe(e) for e in self.backend.models()]
            return 200, JSON, dumps({"models": models})
        if path == "/api/ps":
            return 200, JSON, dumps({"models": self._ps()})
        if bad_json is not None:
            return error(400, bad_json)
        name = rec.model or ""
        if path == "/api/embed":
            return await embed.handle(self, body, name)
        entry = self.find(name)
        if path == "/api/show":
            if not name:
                return error(400, "model is required")
            return (error(404, f"model '{name}' not found") if entry is None
                    else (200, JSON, dumps(self._show(entry))))
        return await self.generate(Stream(conn, rec), path[5:], body, name, entry)

    # -- models ---------------------------------------------------------------------------

    def find(self, name: str) -> ModelEntry | None:
        """The backend's model for a name as a client sends it ("m1" is "m1:latest")."""
        key = canonical(name) if name else ""
        return next((e for e in self.backend.models() if canonical(e.name) == key), None)

    def describe(self, e: ModelEntry) -> dict[str, Any]:
        """A model as /api/tags lists it."""
        name = canonical(e.name)
        return {"name": name, "model": name, "modified_at": self.created_at, "size": e.size,
                "digest": hashlib.sha256(name.encode()).hexdigest(),
                "details": {"parent_model": "", "format": "gguf", "family": e.family,
                            "families": [e.family], "parameter_size": e.parameter_size,
                            "quantization_level": e.quantization_level}}

    def _ps(self) -> list[dict[str, Any]]:
        now = time.time()
        live = sorted(((exp, e) for e, exp in self._loaded.values() if exp > now),
                      key=lambda t: t[0], reverse=True)
        return [{**{k: v for k, v in self.describe(e).items() if k != "modified_at"},
                 "expires_at": rfc3339(int(exp * 1e9)),
                 "size_vram": e.size, "context_length": e.context_length} for exp, e in live]

    def _show(self, e: ModelEntry) -> dict[str, Any]:
        d = self.describe(e)
        return {"modelfile": f"# Modelfile generated by \"ollama show\"\nFROM {d['name']}\n",
                "parameters": "", "template": "{{ .Prompt }}", "system": "",
                "details": d["details"],
                "model_info": {"general.architecture": e.family,
                               f"{e.family}.context_length": e.context_length},
                "capabilities": e.capabilities, "modified_at": self.created_at}

    def touch(self, key: str, entry: ModelEntry, keep: float) -> None:
        """Mark a model loaded until now + keep_alive, for /api/ps (negative: forever)."""
        self._loaded[key] = (entry, time.time() + (keep if keep >= 0 else 1e10))

    # -- generation -----------------------------------------------------------------------

    async def generate(self, out: Stream, endpoint: str, body: dict[str, Any], name: str,
                       entry: ModelEntry | None) -> Reply:
        """/api/chat or /api/generate: validate like Ollama, wait for a slot, then run the
        backend, writing to ``out`` when streaming."""
        t0 = time.perf_counter_ns()
        checked = generation.validate(endpoint, body, name, entry)
        if not isinstance(checked, Generation):
            return checked
        gen = checked
        keep = keep_alive_s(body.get("keep_alive"))
        key = canonical(gen.entry.name)
        if generation.is_empty(gen):
            self.touch(key, gen.entry, keep)
            return generation.load_reply(gen, unload=keep == 0)
        try:
            await self.slots.acquire(key)
        except BackendError as exc:
            return error(exc.status, exc.message)
        self._admitted += 1
        out.rec.admission = self._admitted
        try:
            self.touch(key, gen.entry, keep)
            return await generation.run(self.backend, gen, out, body.get("stream") is not False,
                                        t0)
        finally:
            self.slots.release(key)
            self.touch(key, gen.entry, keep)  # keep_alive counts from the end of the request
