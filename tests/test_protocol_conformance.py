"""Conformance of our Ollama-compatible server with the real wire protocol (REFERENCE.md A, B).

Generic tests take the ``target`` fixture, parametrised over backends, so the embedded llama.cpp
engine can be added to ``BACKENDS`` later and must pass the same checks. Tests that need
scripted behaviour (faults, queues, exact tokens) use :class:`FakeOllama` directly and live in
the second half. Nothing sleeps: tests wait on conditions with ``wait_until``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import re
import signal
import sys
import types
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import httpx
import jsonschema
import ollama
import pytest

from cockpit.embedded.api import OllamaServer
from cockpit.embedded.backend import Embeddings, Finish, Generation, ModelEntry, Piece
from cockpit.embedded.http1 import RequestRecord
from cockpit.embedded.slots import BUSY
from tests.fake_ollama import (
    FakeOllama,
    FakeOllamaThread,
    ModelScript,
    ScriptedBackend,
    wait_until,
)

MSGS = [{"role": "user", "content": "Say hello."}]
METRICS = ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
           "eval_count", "eval_duration")
CREATED_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
SAME = {"temperature": 0, "seed": 1}  # makes a real model deterministic; the fake ignores it
TIMEOUT = 60.0
"""Seconds before a wait or a request gives up. Generous: it only runs out when a test fails
anyway, and a loaded CI machine (or the real engine loading its model) is slow."""


@dataclass
class Target:
    """A running Ollama-compatible server plus the probes the generic tests need."""

    url: str
    model: str  # answers in a few tokens
    slow_model: str  # streams at least 5 chunks, then keeps going (or stalls) until closed
    slow_tokens: int  # chunks the slow model would send if never interrupted (upper bound)
    slow_messages: list[dict[str, Any]]  # what makes the slow model talk at length
    slow_options: dict[str, Any]
    thinking_model: str | None
    requests: list[RequestRecord]
    connections: Callable[[], int]  # TCP connections accepted so far
    generating: Callable[[], int]  # generations currently running in the backend
    wait_until: Callable[..., Awaitable[None]]
    tools_model: str | None = None  # a model that calls tools, if the backend has one
    enforces_format: bool = False  # whether `format` constrains what the model writes
    formats: list[Any] = field(default_factory=list)  # `format` of each generation, if known


BACKENDS = ["fake", pytest.param("embedded", marks=pytest.mark.embedded)]
COUNT = [{"role": "user", "content": "Count from 1 to 300, separated by commas."},
         {"role": "assistant", "content": "1, 2, 3, 4, 5, 6,"}]
"""Keeps SmolLM2 talking: asked plainly, it greedily answers "1234567890" and stops, which a
disconnect test on a loaded machine could not interrupt in time."""
CALL = {"name": "get_weather", "arguments": {"city": "Tokyo"}}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "required": ["city"],
                   "properties": {"city": {"type": "string", "description": "A city"}}}}}
_clients: list[ollama.AsyncClient] = []


def vector(text: str) -> list[float]:
    """A deterministic, unnormalised 8-dimensional vector for a text (the fake's embedding)."""
    return [(b - 100) / 10 for b in hashlib.sha256(text.encode()).digest()[:8]]


class EmbeddingScripts(ScriptedBackend):
    """The scripted backend, plus embeddings (a hash of each text, for every model whose
    capabilities are derived) and a record of the `format` each generation was given."""

    def __init__(self, scripts: dict[str, ModelScript]) -> None:
        super().__init__(scripts)
        self.formats: list[Any] = []

    def models(self) -> list[ModelEntry]:
        return [e if self.scripts[e.name].capabilities is not None
                else replace(e, capabilities=[*e.capabilities, "embedding"])
                for e in super().models()]

    def generate(self, gen: Generation) -> AsyncGenerator[Piece | Finish, None]:
        self.formats.append(gen.format)
        return super().generate(gen)

    async def embed(self, entry: ModelEntry, inputs: list[str],
                    truncate: bool) -> Embeddings:
        return Embeddings([vector(t) for t in inputs], sum(len(t.split()) for t in inputs))


def connect(url: str, **kwargs: Any) -> ollama.AsyncClient:
    """A real ollama client, closed after the test so no pooled socket leaks."""
    kwargs.setdefault("timeout", httpx.Timeout(TIMEOUT))  # a hung server fails, not hangs
    client = ollama.AsyncClient(host=url, **kwargs)
    _clients.append(client)
    return client


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    while _clients:
        await _clients.pop().close()  # type: ignore[no-untyped-call]


@pytest.fixture(params=BACKENDS)
async def target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    if request.param == "embedded":
        async for running in _embedded_target():
            yield running
        return
    scripts = {
        "m1": ModelScript(),
        "slow": ModelScript(tokens=[f"t{i} " for i in range(100)], stall_after=5),
        "thinker": ModelScript(thinking=["Let", " me", " think"], tokens=["391"]),
        "tools": ModelScript(tokens=[], tool_calls=[CALL]),
    }
    backend = EmbeddingScripts(scripts)
    records: list[RequestRecord] = []
    # parallel=1 is Ollama's default
    async with OllamaServer(backend, parallel=1, on_request=records.append) as server:
        yield Target(server.url, "m1", "slow", 100, MSGS, {}, "thinker", records,
                     lambda: server.connections_accepted, lambda: backend.active, wait_until,
                     tools_model="tools", formats=backend.formats)


async def _embedded_target() -> AsyncIterator[Target]:
    """The real llama.cpp engine (SmolLM2-135M) behind the same protocol layer."""
    from cockpit.embedded.llama import LlamaBackend

    backend = LlamaBackend(parallel=1, name="smollm2")  # untagged, like the fake's models
    records: list[RequestRecord] = []
    server = OllamaServer(backend, parallel=1, on_request=records.append)
    long = 600
    try:
        async with server:
            yield Target(server.url, "smollm2", "smollm2", long, COUNT,
                         {"num_predict": long, **SAME}, None, records,
                         lambda: server.connections_accepted, lambda: backend.running,
                         wait_until, enforces_format=True)
    finally:
        backend.close()


def lines_of(resp: httpx.Response) -> list[str]:
    """NDJSON lines, checking the framing: every line ends with one \\n and none is blank."""
    text = resp.text
    assert text.endswith("\n"), "stream must end with a newline"
    lines = text[:-1].split("\n")
    assert "" not in lines, "blank line in NDJSON stream (crashes ollama-python)"
    for line in lines:
        assert line == json.dumps(json.loads(line), separators=(",", ":")), line
    return lines


def check_chunk(chunk: dict[str, Any], model: str, key: str) -> None:
    assert chunk["model"] == model
    assert CREATED_AT.match(chunk["created_at"]), chunk["created_at"]
    if key == "message":
        assert chunk["message"]["role"] == "assistant"
        assert isinstance(chunk["message"]["content"], str)  # always present, maybe ""
        assert chunk["message"].get("thinking", "x") != ""  # omitted when empty
    else:
        assert isinstance(chunk["response"], str)


def check_final(chunk: dict[str, Any]) -> None:
    assert chunk["done"] is True and chunk["done_reason"] in ("stop", "length")
    for m in METRICS:
        assert type(chunk[m]) is int and chunk[m] >= 0, (m, chunk.get(m))
    assert chunk["total_duration"] >= chunk["prompt_eval_duration"] + chunk["eval_duration"] > 0
    assert chunk["eval_count"] > 0


def chats(t: Target | FakeOllama) -> list[RequestRecord]:
    return [r for r in t.requests if r.path == "/api/chat"]


# ----------------------------------------------------------------------------------------
# Generic conformance (every backend)
# ----------------------------------------------------------------------------------------


async def test_root_get_and_head(target: Target) -> None:
    async with httpx.AsyncClient(base_url=target.url, timeout=TIMEOUT) as http:
        for method in ("HEAD", "GET"):  # on one connection: HEAD must not send a body
            r = await http.request(method, "/")
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/plain")
            assert r.content == (b"Ollama is running" if method == "GET" else b"")


async def test_version(target: Target) -> None:
    async with httpx.AsyncClient(base_url=target.url, timeout=TIMEOUT) as http:
        r = await http.get("/api/version")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json() == {"version": "0.5.1"}


async def test_tags_shape_and_client_list(target: Target) -> None:
    async with httpx.AsyncClient(base_url=target.url, timeout=TIMEOUT) as http:
        body = (await http.get("/api/tags")).json()
    assert set(body) == {"models"}
    item = next(m for m in body["models"] if m["name"] == f"{target.model}:latest")
    assert item["model"] == item["name"]
    assert {"modified_at", "size", "digest", "details"} <= set(item)
    assert isinstance(item["size"], int) and item["digest"]
    details = item["details"]
    assert details["format"] == "gguf" and details["parent_model"] == ""
    assert details["families"] == [details["family"]]
    assert {"parameter_size", "quantization_level"} <= set(details)
    listed = await connect(target.url).list()
    assert f"{target.model}:latest" in [m.model for m in listed.models]


async def test_show(target: Target) -> None:
    async with httpx.AsyncClient(base_url=target.url, timeout=TIMEOUT) as http:
        r = await http.post("/api/show", json={"name": target.model})  # `name` alias
        missing = await http.post("/api/show", json={})
        unknown = await http.post("/api/show", json={"model": "nope"})
    assert r.status_code == 200
    body = r.json()
    for key in ("modelfile", "parameters", "template", "system", "details", "model_info",
                "capabilities", "modified_at"):
        assert key in body, key
    assert "completion" in body["capabilities"]
    assert (missing.status_code, missing.json()) == (400, {"error": "model is required"})
    assert (unknown.status_code, unknown.json()) == (404, {"error": "model 'nope' not found"})
    shown = await connect(target.url).show(target.model)
    assert shown.modelinfo is not None and shown.details is not None
    assert shown.details.format == "gguf"


async def test_ps_lists_model_after_a_request(target: Target) -> None:
    client = connect(target.url)
    await client.chat(target.model, messages=MSGS, stream=False)
    async with httpx.AsyncClient(base_url=target.url, timeout=TIMEOUT) as http:
        body = (await http.get("/api/ps")).json()
    item = next(m for m in body["models"] if m["name"] == f"{target.model}:latest")
    assert {"model", "size", "digest", "details", "expires_at", "size_vram",
            "context_length"} <= set(item)
    assert isinstance(item["context_length"], int) and item["context_length"] > 0
    ps = await client.ps()
    loaded = next(m for m in ps.models if m.model == f"{target.model}:latest")
    assert loaded.expires_at is not None


async def test_stream_chat_wire_format(target: Target) -> None:
    async with httpx.AsyncClient(base_url=target.url, timeout=TIMEOUT) as http:
        r = await http.post("/api/chat", json={"model": target.model, "messages": MSGS})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-ndjson"
    assert r.headers["transfer-encoding"] == "chunked"
    chunks = [json.loads(line) for line in lines_of(r)]
    assert len(chunks) >= 2
    for c in chunks[:-1]:
        assert list(c) == ["model", "created_at", "message", "done"], c  # no metrics
        assert c["done"] is False
        check_chunk(c, target.model, "message")
    final = chunks[-1]
    check_chunk(final, target.model, "message")
    check_final(final)
    assert "".join(c["message"]["content"] for c in chunks)


async def test_stream_chat_with_client_matches_stream_false(target: Target) -> None:
    client = connect(target.url)
    parts = [p async for p in await client.chat(target.model, messages=MSGS, stream=True,
                                                 options=SAME)]
    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
    final = parts[-1]
    assert final.eval_count is not None and final.total_duration is not None
    streamed = "".join(p.message.content or "" for p in parts)
    whole = await client.chat(target.model, messages=MSGS, stream=False, options=SAME)
    assert whole.done and whole.message.content == streamed


async def test_chat_stream_false_is_one_json_object(target: Target) -> None:
    async with httpx.AsyncClient(base_url=target.url, timeout=TIMEOUT) as http:
        r = await http.post("/api/chat", json={"model": target.model, "messages": MSGS,
                                               "stream": False})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert "transfer-encoding" not in r.headers
    body = json.loads(r.text)  # exactly one object
    check_chunk(body, target.model, "message")
    check_final(body)
    assert body["message"]["content"]


async def test_generate_stream_with_context(target: Target) -> None:
    async with httpx.AsyncClient(base_url=target.url, timeout=TIMEOUT) as http:
        r = await http.post("/api/generate", json={"model": target.model, "prompt": "Hi",
                                                   "options": SAME})
    assert r.headers["content-type"] == "application/x-ndjson"
    chunks = [json.loads(line) for line in lines_of(r)]
    for c in chunks[:-1]:
        assert list(c) == ["model", "created_at", "response", "done"], c
        check_chunk(c, target.model, "response")
    final = chunks[-1]
    check_final(final)
    assert final["response"] == "" and "message" not in final
    assert final["context"] and all(type(i) is int for i in final["context"])
    streamed = "".join(c["response"] for c in chunks)
    result = await connect(target.url).generate(target.model, "Hi", options=SAME)
    assert result.response == streamed and result.context


async def test_generate_stream_false(target: Target) -> None:
    async with httpx.AsyncClient(base_url=target.url, timeout=TIMEOUT) as http:
        r = await http.post("/api/generate", json={"model": target.model, "prompt": "Hi",
                                                   "stream": False, "options": SAME})
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    body = r.json()
    check_final(body)
    assert body["response"] and isinstance(body["context"], list)


async def test_thinking_chunks(target: Target) -> None:
    if target.thinking_model is None:
        pytest.skip("backend has no thinking model")
    client = connect(target.url)
    parts = [p async for p in await client.chat(target.thinking_model, messages=MSGS,
                                                 stream=True)]
    kinds = ["t" if p.message.thinking else "c" for p in parts[:-1]]
    assert kinds and kinds[0] == "t" and "c" in kinds
    assert kinds == sorted(kinds, reverse=True), "thinking must precede content"
    assert all(p.message.content == "" for p in parts if p.message.thinking)
    whole = await client.chat(target.thinking_model, messages=MSGS, stream=False)
    assert whole.message.thinking == "".join(p.message.thinking or "" for p in parts)
    off = [p async for p in await client.chat(target.thinking_model, messages=MSGS,
                                               stream=True, think=False)]
    assert not any(p.message.thinking for p in off)
    with pytest.raises(ollama.ResponseError) as err:
        await client.chat(target.model, messages=MSGS, think=True)
    assert err.value.status_code == 400
    assert err.value.error == f'"{target.model}" does not support thinking'


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "error"),
    [
        ("POST", "/api/chat", {"model": "nope", "messages": MSGS}, 404, "model 'nope' not found"),
        ("POST", "/api/generate", {"model": "nope", "prompt": "x"}, 404,
         "model 'nope' not found"),
        ("POST", "/api/chat", {"messages": MSGS}, 400, "model is required"),
        ("POST", "/api/generate", {"prompt": "x"}, 404, "model '' not found"),
        ("POST", "/api/chat", b"{not json", 400, None),
        ("POST", "/api/chat", {"model": "nope", "messages": MSGS, "stream": False}, 404,
         "model 'nope' not found"),
    ],
)
async def test_json_errors(target: Target, method: str, path: str, payload: Any, status: int,
                           error: str | None) -> None:
    kw: dict[str, Any] = {"content": payload} if isinstance(payload, bytes) else {"json": payload}
    async with httpx.AsyncClient(base_url=target.url, timeout=TIMEOUT) as http:
        r = await http.request(method, path, **kw)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    body = r.json()
    assert list(body) == ["error"] and body["error"]
    if error is not None:
        assert body["error"] == error


@pytest.mark.parametrize(
    ("method", "path", "status", "text"),
    [("GET", "/api/chat", 405, "405 method not allowed"),
     ("POST", "/api/tags", 405, "405 method not allowed"),
     ("GET", "/api/nope", 404, "404 page not found"),
     ("POST", "/v1/whatever", 404, "404 page not found")],
)
async def test_text_errors(target: Target, method: str, path: str, status: int,
                           text: str) -> None:
    async with httpx.AsyncClient(base_url=target.url, timeout=TIMEOUT) as http:
        r = await http.request(method, path)
    assert (r.status_code, r.text) == (status, text)
    assert r.headers["content-type"].startswith("text/plain")


async def test_client_raises_response_error_for_unknown_model(target: Target) -> None:
    client = connect(target.url)
    for stream in (True, False):
        with pytest.raises(ollama.ResponseError) as err:
            result = await client.chat("nope", messages=MSGS, stream=stream)
            if stream:
                async for _ in result:  # type: ignore[union-attr]
                    pass
        assert (err.value.status_code, err.value.error) == (404, "model 'nope' not found")


async def test_latest_tag_is_the_same_model_and_name_is_echoed(target: Target) -> None:
    client = connect(target.url)
    tagged = await client.chat(f"{target.model}:latest", messages=MSGS, stream=False,
                               options=SAME)
    plain = await client.chat(target.model, messages=MSGS, stream=False, options=SAME)
    assert tagged.model == f"{target.model}:latest" and plain.model == target.model
    assert tagged.message.content == plain.message.content


async def test_empty_messages_just_loads_the_model(target: Target) -> None:
    async with httpx.AsyncClient(base_url=target.url, timeout=TIMEOUT) as http:
        r = await http.post("/api/chat", json={"model": target.model, "messages": []})
    body = r.json()
    assert r.status_code == 200 and body["done"] is True and body["done_reason"] == "load"
    assert body["message"] == {"role": "assistant", "content": ""}


async def test_keep_alive_reuses_one_connection(target: Target) -> None:
    before = target.connections()
    async with httpx.AsyncClient(base_url=target.url, timeout=TIMEOUT) as http:
        for _ in range(3):
            r = await http.post("/api/chat", json={"model": target.model, "messages": MSGS})
            assert r.status_code == 200 and lines_of(r)
        await http.get("/api/tags")
    assert target.connections() - before == 1
    assert len({r.connection for r in target.requests[-4:]}) == 1


async def test_chunked_request_body(target: Target) -> None:
    payload = json.dumps({"model": target.model, "messages": MSGS, "stream": False}).encode()

    async def body() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 7):
            yield payload[i:i + 7]

    async with httpx.AsyncClient(base_url=target.url, timeout=TIMEOUT) as http:
        r = await http.post("/api/chat", content=body())
        assert r.request.headers["transfer-encoding"] == "chunked"
        assert r.status_code == 200 and r.json()["done"] is True
        r2 = await http.get("/api/version")  # the connection is still in sync
        assert r2.json() == {"version": "0.5.1"}


async def test_pipelined_requests_and_connection_close(target: Target) -> None:
    """Two requests in one write (Expect: 100-continue on the first); the second asks for
    Connection: close, so reading to EOF must yield exactly both responses."""
    host, port = target.url.removeprefix("http://").split(":")
    body = json.dumps({"model": target.model, "messages": MSGS, "stream": False}).encode()
    req = (b"POST /api/chat HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
           b"Content-Length: %d\r\n\r\n%b" % (len(body), body))
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(req + b"GET /api/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        async with asyncio.timeout(TIMEOUT):
            data = await reader.read(-1)  # EOF: the server closed as asked
    finally:
        writer.close()
    assert data.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert data.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert data.endswith(b'\r\n\r\n{"version":"0.5.1"}')
    assert b'"done":true' in data and b"Connection: close\r\n" in data


async def _disconnect_after_three(target: Target, how: str) -> RequestRecord:
    client = connect(target.url)
    got: list[str] = []

    async def consume() -> None:
        stream = await client.chat(target.slow_model, messages=target.slow_messages,
                                   stream=True, options=target.slow_options)
        try:
            async for part in stream:
                got.append(part.message.content or "")
                if len(got) == 3 and how == "aclose":
                    break
                if len(got) == 3:
                    await asyncio.Event().wait()  # parked until cancelled
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    task = asyncio.create_task(consume())
    if how == "cancel":
        await target.wait_until(lambda: len(got) == 3, TIMEOUT, "three chunks")
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert len(got) == 3
    rec = chats(target)[-1]
    await target.wait_until(lambda: rec.disconnected, TIMEOUT, "server to see the disconnect")
    await target.wait_until(lambda: target.generating() == 0, TIMEOUT, "generation to stop")
    return rec


@pytest.mark.parametrize("how", ["aclose", "cancel"])
async def test_client_disconnect_stops_generation_and_frees_slot(target: Target,
                                                                 how: str) -> None:
    rec = await _disconnect_after_three(target, how)
    assert rec.finished is False and rec.status == 200
    assert 3 <= rec.chunks_sent < target.slow_tokens
    sent = rec.chunks_sent
    # parallel=1: the next request to the same model only streams if the slot was freed
    client = connect(target.url)
    async with asyncio.timeout(TIMEOUT):
        stream = await client.chat(target.slow_model, messages=target.slow_messages,
                                   stream=True, options=target.slow_options)
        first = await anext(stream)
        await stream.aclose()  # type: ignore[attr-defined]
    assert first.done is False
    assert rec.chunks_sent == sent, "nothing more was written to the dead connection"


# ----------------------------------------------------------------------------------------
# Capabilities, `format` and embeddings (every backend)
# ----------------------------------------------------------------------------------------

PERSON = {"type": "object", "required": ["name", "age"],
          "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}
PERSON_MSGS = [{"role": "user", "content": "Describe a person as JSON with a name and an age."}]


async def _capabilities(target: Target, model: str) -> list[str]:
    shown = await connect(target.url).show(model)
    return list(shown.capabilities or [])


async def test_show_reports_capabilities_truthfully(target: Target) -> None:
    caps = await _capabilities(target, target.model)
    assert "completion" in caps and "embedding" in caps
    assert "tools" not in caps, "the plain model cannot call tools"
    assert ("thinking" in caps) is (target.thinking_model == target.model)
    if target.tools_model is not None:
        assert "tools" in await _capabilities(target, target.tools_model)
    if target.thinking_model is not None:
        assert "thinking" in await _capabilities(target, target.thinking_model)


@pytest.mark.parametrize("stream", [True, False])
async def test_tools_to_a_model_that_cannot_call_them_is_ollamas_400(target: Target,
                                                                    stream: bool) -> None:
    refusal = f"registry.ollama.ai/library/{target.model}:latest does not support tools"
    async with httpx.AsyncClient(base_url=target.url, timeout=TIMEOUT) as http:
        r = await http.post("/api/chat", json={"model": target.model, "messages": MSGS,
                                               "tools": [WEATHER], "stream": stream})
        assert (r.status_code, r.json()) == (400, {"error": refusal})
        assert r.headers["content-type"] == "application/json; charset=utf-8"  # not a stream
        empty = await http.post("/api/chat", json={"model": target.model, "messages": MSGS,
                                                   "tools": [], "stream": False, "options": SAME})
        assert empty.status_code == 200, "`tools: []` is accepted by every model"
    with pytest.raises(ollama.ResponseError) as err:
        result = await connect(target.url).chat(target.model, messages=MSGS, tools=[WEATHER],
                                                stream=stream)
        if stream:
            async for _ in result:  # type: ignore[union-attr]
                pass
    assert (err.value.status_code, err.value.error) == (400, refusal)
    assert chats(target)[-1].error == refusal


async def test_tools_to_a_model_that_calls_them(target: Target) -> None:
    if target.tools_model is None:
        pytest.skip("backend has no model that calls tools")
    reply = await connect(target.url).chat(target.tools_model, messages=MSGS, tools=[WEATHER],
                                           stream=False)
    assert reply.message.tool_calls is not None
    assert reply.message.tool_calls[0].function.name == "get_weather"


@pytest.mark.parametrize(("fmt", "shown"), [("yaml", r'"\"yaml\""'), (5, '"5"'),
                                            (["a"], r'"[\"a\"]"')])
async def test_invalid_format_is_a_500_before_any_bytes(target: Target, fmt: Any,
                                                        shown: str) -> None:
    message = f'invalid format: {shown}; expected "json" or a valid JSON Schema object'
    async with httpx.AsyncClient(base_url=target.url, timeout=TIMEOUT) as http:
        for path, key in (("/api/chat", "messages"), ("/api/generate", "prompt")):
            r = await http.post(path, json={"model": target.model, "format": fmt,
                                            key: MSGS if key == "messages" else "Hi"})
            assert (r.status_code, r.json()) == (500, {"error": message})
            assert r.headers["content-type"] == "application/json; charset=utf-8"
        empty = await http.post("/api/chat", json={"model": target.model, "messages": [],
                                                   "format": fmt})
        assert empty.json()["done_reason"] == "load", "an empty request only loads"
    # (ollama-python refuses such a format itself, so only a raw client can send one)


@pytest.mark.parametrize("fmt", ["json", PERSON])
async def test_format_reaches_the_backend_and_constrains_the_reply(target: Target,
                                                                   fmt: Any) -> None:
    """The fake records `format`; the llama.cpp engine must write JSON that fits it."""
    options = {**SAME, "num_predict": 200}
    reply = await connect(target.url).chat(target.model, messages=PERSON_MSGS, format=fmt,
                                           options=options, stream=False)
    parts = [p async for p in await connect(target.url).chat(
        target.model, messages=PERSON_MSGS, format=fmt, options=options, stream=True)]
    streamed = "".join(p.message.content or "" for p in parts)
    assert streamed == reply.message.content
    if not target.enforces_format:
        assert target.formats[-2:] == [fmt, fmt]
        return
    assert reply.done_reason == "stop", "cut off by num_predict: not whole JSON"
    value = json.loads(reply.message.content or "")
    if fmt == PERSON:
        jsonschema.validate(value, PERSON)


async def test_embed_normalises_each_vector(target: Target) -> None:
    client = connect(target.url)
    got = await client.embed(target.model, input=["The sky is blue.", "Grass is green."])
    assert len(got.embeddings) == 2
    first, second = got.embeddings
    assert len(first) == len(second) > 0 and first != second
    for v in got.embeddings:
        assert math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-6)
    again = await client.embed(target.model, input="The sky is blue.")
    assert len(again.embeddings) == 1, "always a list of lists, even for one string"
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(again.embeddings[0], first,
                                                                 strict=True))
    assert got.prompt_eval_count and got.total_duration and got.model == target.model
    cut = await client.embed(target.model, input="The sky is blue.", dimensions=4)
    assert len(cut.embeddings[0]) == 4
    assert math.isclose(math.sqrt(sum(x * x for x in cut.embeddings[0])), 1.0, rel_tol=1e-6)
    assert f"{target.model}:latest" in [m.model for m in (await client.ps()).models]


@pytest.mark.parametrize(
    ("payload", "status", "body"),
    [({"input": []}, 200, {"model": "M", "embeddings": []}),
     ({"input": ""}, 200, {"model": "M", "embeddings": []}),
     ({}, 200, {"model": "M", "embeddings": []}),
     ({"input": ["a", 1]}, 400, {"error": "invalid input type"}),
     ({"input": 5}, 400, {"error": "invalid input type"}),
     ({"model": "nope", "input": "a"}, 404,
      {"error": 'model "nope" not found, try pulling it first'}),
     ({"model": "", "input": "a"}, 404, {"error": "model '' not found"})],
)
async def test_embed_edge_cases(target: Target, payload: dict[str, Any], status: int,
                                body: dict[str, Any]) -> None:
    payload = {"model": target.model, **payload}
    async with httpx.AsyncClient(base_url=target.url, timeout=TIMEOUT) as http:
        r = await http.post("/api/embed", json=payload)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.json() == json.loads(json.dumps(body).replace('"M"', json.dumps(target.model)))


# ----------------------------------------------------------------------------------------
# Fake-specific: scripted faults, queueing and the fake's own tooling
# ----------------------------------------------------------------------------------------

STALL = ModelScript(tokens=["a", "b", "c", "d"], stall_after=1)


async def _hold(url: str, model: str, text: str, got: list[str]) -> None:
    """Stream one chat and keep it open (the model stalls) until this task is cancelled."""
    client = connect(url)
    stream = await client.chat(model, messages=[{"role": "user", "content": text}], stream=True)
    try:
        async for part in stream:
            got.append(text + ":" + (part.message.content or ""))
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


def _by_text(fake: FakeOllama, text: str) -> RequestRecord:
    return next(r for r in chats(fake) if r.body and r.body["messages"][-1]["content"] == text)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_fifo_order_with_one_slot() -> None:
    async with FakeOllama({"q": STALL}, parallel=1) as fake:
        got: list[str] = []
        tasks: dict[str, asyncio.Task[None]] = {}
        for n, name in enumerate("ABC", start=1):
            tasks[name] = asyncio.create_task(_hold(fake.url, "q", name, got))
            await fake.wait_until(lambda n=n: len(chats(fake)) == n,  # type: ignore[misc]
                                  TIMEOUT, f"{name} arrives")
        await fake.wait_until(lambda: got == ["A:a"], TIMEOUT, "A streams")
        assert [_by_text(fake, x).admission for x in "ABC"] == [1, None, None]
        await _cancel(tasks["A"])
        await fake.wait_until(lambda: "B:a" in got, TIMEOUT, "B streams after A left")
        assert _by_text(fake, "C").admission is None, "C must wait for B"
        await _cancel(tasks["B"])
        await fake.wait_until(lambda: "C:a" in got, TIMEOUT, "C streams after B left")
        await _cancel(tasks["C"])
        assert [_by_text(fake, x).admission for x in "ABC"] == [1, 2, 3]
        assert got == ["A:a", "B:a", "C:a"]


async def test_parallel_slots_run_concurrently() -> None:
    async with FakeOllama({"q": STALL}, parallel=2) as fake:
        got: list[str] = []
        tasks = [asyncio.create_task(_hold(fake.url, "q", x, got)) for x in "AB"]
        await fake.wait_until(lambda: sorted(got) == ["A:a", "B:a"], TIMEOUT, "both stream")
        tasks.append(asyncio.create_task(_hold(fake.url, "q", "C", got)))
        await fake.wait_until(lambda: len(chats(fake)) == 3, TIMEOUT, "C arrives")
        assert _by_text(fake, "C").admission is None
        await _cancel(tasks[0])
        await fake.wait_until(lambda: "C:a" in got, TIMEOUT, "C takes the freed slot")
        for t in tasks:
            await _cancel(t)


async def test_queue_full_is_503_and_leaving_the_queue_frees_a_place() -> None:
    async with FakeOllama({"q": STALL}, parallel=1, max_queue=1) as fake:
        got: list[str] = []
        a = asyncio.create_task(_hold(fake.url, "q", "A", got))
        await fake.wait_until(lambda: got == ["A:a"], TIMEOUT, "A streams")
        b = asyncio.create_task(_hold(fake.url, "q", "B", got))
        await fake.wait_until(lambda: len(chats(fake)) == 2, TIMEOUT, "B queued")
        async with httpx.AsyncClient(base_url=fake.url, timeout=TIMEOUT) as http:
            r = await http.post("/api/chat", json={"model": "q", "messages": MSGS})
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/json; charset=utf-8"
        assert r.json() == {"error": BUSY}
        with pytest.raises(ollama.ResponseError) as err:
            await connect(fake.url).chat("q", messages=MSGS, stream=False)
        assert (err.value.status_code, err.value.error) == (503, BUSY)
        await _cancel(b)  # B leaves the queue ...
        rec_b = _by_text(fake, "B")
        await fake.wait_until(lambda: rec_b.disconnected, TIMEOUT, "B's disconnect seen")
        assert rec_b.admission is None and rec_b.chunks_sent == 0
        d = asyncio.create_task(_hold(fake.url, "q", "D", got))  # ... so D may queue
        await fake.wait_until(lambda: len(chats(fake)) == 5, TIMEOUT, "D arrives")
        assert _by_text(fake, "D").status is None, "D is waiting, not rejected"
        await _cancel(a)
        await fake.wait_until(lambda: "D:a" in got, TIMEOUT, "D streams")
        await _cancel(d)
        assert "B:a" not in got


@pytest.mark.parametrize("stream", [True, False])
async def test_fail_first_is_a_prestream_error_then_retry_works(stream: bool) -> None:
    async with FakeOllama({"m1": ModelScript(fail_first=1)}) as fake:
        async with httpx.AsyncClient(base_url=fake.url, timeout=TIMEOUT) as http:
            r = await http.post("/api/chat", json={"model": "m1", "messages": MSGS,
                                                   "stream": stream})
            assert r.status_code == 500
            assert r.headers["content-type"] == "application/json; charset=utf-8"
            assert r.json() == {"error": "llama runner process has terminated"}
            ok = await http.post("/api/chat", json={"model": "m1", "messages": MSGS,
                                                    "stream": stream})
        assert ok.status_code == 200
        assert chats(fake)[0].error == "llama runner process has terminated"


async def test_fail_status_reaches_the_client() -> None:
    scripts = {"busy": ModelScript(fail_first=5, fail_status=503),
               "limited": ModelScript(fail_first=5, fail_status=429, fail_message="slow down")}
    async with FakeOllama(scripts) as fake:
        client = connect(fake.url)
        for model, status, text in (("busy", 503, BUSY), ("limited", 429, "slow down")):
            with pytest.raises(ollama.ResponseError) as err:
                async for _ in await client.chat(model, messages=MSGS, stream=True):
                    pass
            assert (err.value.status_code, err.value.error) == (status, text)


async def test_midstream_error_line() -> None:
    async with FakeOllama({"m1": ModelScript(error_after=2)}) as fake:
        async with httpx.AsyncClient(base_url=fake.url, timeout=TIMEOUT) as http:
            r = await http.post("/api/chat", json={"model": "m1", "messages": MSGS})
        assert r.status_code == 200
        lines = lines_of(r)
        assert [json.loads(x)["message"]["content"] for x in lines[:2]] == ["Hello", ","]
        assert lines[2:] == ['{"error":"an error was encountered while running the model"}']
        got: list[str] = []
        with pytest.raises(ollama.ResponseError) as err:
            async for part in await connect(fake.url).chat(
                    "m1", messages=MSGS, stream=True):
                got.append(part.message.content or "")
        assert got == ["Hello", ","]
        assert err.value.status_code == -1
        assert err.value.error == "an error was encountered while running the model"
        rec = chats(fake)[-1]
        await fake.wait_until(lambda: rec.finished, TIMEOUT, "the record to finish")
        assert rec.error == err.value.error and not rec.disconnected


async def test_drop_mid_stream_raises_httpx_error() -> None:
    async with FakeOllama({"m1": ModelScript(drop_after=2)}) as fake:
        got: list[str] = []
        with pytest.raises(httpx.HTTPError):
            async for part in await connect(fake.url).chat(
                    "m1", messages=MSGS, stream=True):
                got.append(part.message.content or "")
        assert got == ["Hello", ","]
        rec = chats(fake)[-1]
        assert rec.chunks_sent == 2 and not rec.finished and not rec.disconnected
        await fake.wait_until(lambda: fake.backend.active == 0, TIMEOUT, "backend closed")


async def test_drop_once_then_retry_succeeds() -> None:
    async with FakeOllama({"m1": ModelScript(drop_after=1, faults_for=1)}) as fake:
        client = connect(fake.url)
        with pytest.raises(httpx.HTTPError):
            async for _ in await client.chat("m1", messages=MSGS, stream=True):
                pass
        parts = [p async for p in await client.chat("m1", messages=MSGS, stream=True)]
        assert "".join(p.message.content or "" for p in parts) == "Hello, world!"


async def test_disconnect_at_full_speed_stops_generation() -> None:
    tokens = [f"w{i} " for i in range(200_000)]
    async with FakeOllama({"fast": ModelScript(tokens=tokens)}) as fake:
        stream = await connect(fake.url).chat("fast", messages=MSGS, stream=True)
        got = [(await anext(stream)).message.content for _ in range(3)]
        await stream.aclose()  # type: ignore[attr-defined]
        assert got == ["w0 ", "w1 ", "w2 "]
        rec = chats(fake)[-1]
        await fake.wait_until(lambda: rec.disconnected, TIMEOUT, "disconnect seen")
        assert fake.backend.cancelled == 1 and fake.backend.active == 0
        assert 3 <= rec.chunks_sent < len(tokens) and not rec.finished


async def test_stall_then_client_timeout() -> None:
    async with FakeOllama({"m1": ModelScript(stall_after=2)}) as fake:
        # Only the read times out, and not so soon that a loaded machine's pause between the
        # two chunks the model does send passes for the stall.
        client = connect(fake.url, timeout=httpx.Timeout(TIMEOUT, read=1.0))
        with pytest.raises(httpx.ReadTimeout):
            async for _ in await client.chat("m1", messages=MSGS, stream=True):
                pass
        rec = chats(fake)[-1]
        await fake.wait_until(lambda: rec.disconnected, TIMEOUT, "disconnect seen")
        assert rec.chunks_sent == 2 and fake.backend.cancelled == 1


@pytest.mark.parametrize(
    ("partial", "streamed"),
    [("Hel", ["lo", ",", " world", "!"]), ("Hello", [",", " world", "!"]),
     ("Hello, wo", ["rld", "!"]), ("Hello, world!", []),
     ("Goodbye", ["Hello", ",", " world", "!"])],
)
async def test_continues_a_final_assistant_message(partial: str, streamed: list[str]) -> None:
    async with FakeOllama() as fake:
        msgs = [*MSGS, {"role": "assistant", "content": partial}]
        parts = [p async for p in await connect(fake.url).chat(
            "m1", messages=msgs, stream=True)]
        assert [p.message.content for p in parts[:-1]] == streamed
        if partial.startswith("Hello"):
            assert partial + "".join(streamed) == "Hello, world!"


async def test_reply_callable_and_continuation_of_its_answer() -> None:
    def reply(messages: list[dict[str, Any]]) -> list[str]:
        return ["You ", "said: ", messages[-1]["content"]]

    async with FakeOllama({"echo": ModelScript(reply=reply)}) as fake:
        client = connect(fake.url)
        whole = await client.chat("echo", messages=MSGS, stream=False)
        assert whole.message.content == "You said: Say hello."
        cont = await client.chat("echo", messages=[*MSGS, {"role": "assistant",
                                                            "content": "You sa"}], stream=False)
        assert f"You sa{cont.message.content}" == "You said: Say hello."


async def test_num_predict_gives_length() -> None:
    async with FakeOllama() as fake:
        r = await connect(fake.url).chat(
            "m1", messages=MSGS, stream=False, options={"num_predict": 2})
        assert (r.message.content, r.done_reason, r.eval_count) == ("Hello,", "length", 2)


async def test_tool_calls() -> None:
    call = {"name": "get_weather", "arguments": {"city": "Tokyo"}}
    async with FakeOllama({"tools": ModelScript(tokens=[], tool_calls=[call])}) as fake:
        async with httpx.AsyncClient(base_url=fake.url, timeout=TIMEOUT) as http:
            r = await http.post("/api/chat", json={"model": "tools", "messages": MSGS})
        chunks = [json.loads(x) for x in lines_of(r)]
        (tc,) = chunks[0]["message"]["tool_calls"]
        assert re.fullmatch(r"call_[a-z0-9]{8}", tc["id"])
        assert tc["function"] == {"index": 0, "name": "get_weather",
                                  "arguments": {"city": "Tokyo"}}
        whole = await connect(fake.url).chat("tools", messages=MSGS,
                                                             stream=False)
        assert whole.message.tool_calls is not None
        assert whole.message.tool_calls[0].function.arguments == {"city": "Tokyo"}


async def test_ps_only_loaded_models_sorted_by_expiry() -> None:
    async with FakeOllama({"a": ModelScript(), "b": ModelScript(), "c": ModelScript()}) as fake:
        client = connect(fake.url)
        assert (await client.ps()).models == []
        await client.chat("a", messages=MSGS, keep_alive="1m")
        await client.chat("b", messages=MSGS, keep_alive="1h")
        assert [m.model for m in (await client.ps()).models] == ["b:latest", "a:latest"]
        await client.chat("b", messages=MSGS, keep_alive=0)  # unloads at once
        assert [m.model for m in (await client.ps()).models] == ["a:latest"]


async def test_stop_ends_active_streams() -> None:
    fake = FakeOllama({"q": STALL})
    await fake.start()
    got: list[str] = []
    task = asyncio.create_task(_hold(fake.url, "q", "A", got))
    await fake.wait_until(lambda: got == ["A:a"], TIMEOUT, "streaming")
    async with asyncio.timeout(TIMEOUT):
        await fake.stop()
    with pytest.raises(httpx.HTTPError):
        await task
    assert fake.backend.active == 0


def test_thread_server_with_sync_client() -> None:
    with FakeOllamaThread({"m1": ModelScript(tokens=["x", "y"])}) as fake:
        with ollama.Client(host=fake.url) as client:
            parts = list(client.chat("m1", messages=MSGS, stream=True))
        assert [p.message.content for p in parts] == ["x", "y", ""]
        (rec,) = fake.chat_requests("m1:latest")  # "m1" and "m1:latest" select the same
        fake.wait_until(lambda: rec.finished, TIMEOUT, "the server to finish its record")
        assert rec.chunks_sent == 3 and fake.chat_requests("m1") == [rec]
    with pytest.raises(ConnectionError), ollama.Client(host=fake.url) as client:
        client.chat("m1", messages=MSGS, stream=False)  # the server is gone


async def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    script = tmp_path / "s.json"
    script.write_text(json.dumps({"b": {"tokens": ["B!"], "thinking": ["hm"]}}))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).with_name("fake_ollama.py")), "--tokens", "3",
        "--models", "a", "--script", str(script), stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            url = (await proc.stdout.readline()).decode().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        client = connect(url)
        assert sorted(m.model or "" for m in (await client.list()).models) == [
            "a:latest", "b:latest"]
        a = await client.chat("a", messages=MSGS, stream=False)
        assert a.message.content == "tok0 tok1 tok2 "
        b = await client.chat("b", messages=MSGS, stream=False)
        assert (b.message.content, b.message.thinking) == ("B!", "hm")
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await proc.wait() == 0


# ----------------------------------------------------------------------------------------
# The protocol layer's contract with backends
# ----------------------------------------------------------------------------------------


class HoldingBackend:
    """Keeps every generator referenced, so only the server's explicit aclose() can end
    them (garbage collection would hide a missing aclose); can raise a plain exception."""

    def __init__(self, crash_after: int | None = None) -> None:
        self.gens: list[AsyncGenerator[Piece | Finish, None]] = []
        self.crash_after = crash_after

    def models(self) -> list[ModelEntry]:
        return [ModelEntry("h")]

    def generate(self, gen: Generation) -> AsyncGenerator[Piece | Finish, None]:
        agen = self._run()
        self.gens.append(agen)
        return agen

    async def _run(self) -> AsyncGenerator[Piece | Finish, None]:
        for i in range(2):
            if i == self.crash_after:
                raise RuntimeError("backend bug")
            yield Piece(content=str(i))
        yield Finish(prompt_eval_count=3)
        await asyncio.Event().wait()  # only reached if someone iterates past Finish


async def test_server_acloses_the_generator_after_finish() -> None:
    backend = HoldingBackend()
    records: list[RequestRecord] = []
    async with OllamaServer(backend, on_request=records.append) as server:
        parts = [p async for p in await connect(server.url).chat("h", messages=MSGS,
                                                                  stream=True)]
        assert [p.message.content for p in parts] == ["0", "1", ""]
        assert parts[-1].eval_count == 2 and parts[-1].prompt_eval_count == 3
        await wait_until(lambda: records[-1].finished, TIMEOUT, "the request to finish")
        frames = [cast(types.AsyncGeneratorType[Any, Any], g).ag_frame for g in backend.gens]
        assert frames == [None], "the generator was left suspended, not aclose()d"


@pytest.mark.parametrize(("crash_after", "status"), [(0, 500), (1, 200)])
async def test_backend_bug_is_reported_like_an_ollama_error(crash_after: int,
                                                            status: int) -> None:
    server = OllamaServer(HoldingBackend(crash_after))
    async with server, httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as http:
        r = await http.post("/api/chat", json={"model": "h", "messages": MSGS})
    assert r.status_code == status
    last = json.loads(lines_of(r)[-1]) if status == 200 else r.json()
    assert last == {"error": "backend bug"}
