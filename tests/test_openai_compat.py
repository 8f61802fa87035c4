"""Ollama's OpenAI-compatible API (/v1, REFERENCE-2 G) on our server, checked field by field
over real HTTP with httpx, as current oterm and other OpenAI clients speak it.

The generic tests take the conformance suite's ``target`` fixture, so they run on the scripted
fake and on the llama.cpp engine alike; scripted behaviour (tool calls, thinking, faults) and
the request translation itself are checked against the fake and the pure function below.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jsonschema
import pytest

from cockpit.embedded.api import OllamaServer
from cockpit.embedded.openai_request import Invalid, to_native_chat
from tests import test_protocol_conformance as conformance
from tests.fake_ollama import ModelScript, ScriptedBackend
from tests.test_protocol_conformance import (
    CALL,
    MSGS,
    PERSON,
    PERSON_MSGS,
    TIMEOUT,
    WEATHER,
    EmbeddingScripts,
    Target,
)

target = conformance.target
"""The conformance suite's fixture: each test here runs on the fake and on llama.cpp."""

GREEDY = {"temperature": 0, "seed": 1}
CHUNK_KEYS = ["id", "object", "created", "model", "system_fingerprint", "choices"]


def frames(r: httpx.Response) -> list[Any]:
    """The SSE frames of a response: each ``data: <json>`` (or ``[DONE]``) then a blank line."""
    assert r.headers["content-type"] == "text/event-stream"
    text = r.text
    assert text.endswith("\n\n"), text[-80:]
    out: list[Any] = []
    for frame in text[:-2].split("\n\n"):
        assert frame.startswith("data: ") and "\n" not in frame, frame
        payload = frame.removeprefix("data: ")
        out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def v1_error(status: int, message: str) -> dict[str, Any]:
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


async def post(url: str, path: str, **body: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as http:
        return await http.post(path, json=body)


def check_chunk(chunk: dict[str, Any], model: str) -> None:
    assert list(chunk)[:6] == CHUNK_KEYS
    assert re.fullmatch(r"chatcmpl-\d{1,3}", chunk["id"])
    assert chunk["object"] == "chat.completion.chunk" and chunk["model"] == model
    assert chunk["system_fingerprint"] == "fp_ollama" and type(chunk["created"]) is int


# ----------------------------------------------------------------------------------------
# Every backend
# ----------------------------------------------------------------------------------------


async def test_chat_completion_shape(target: Target) -> None:
    r = await post(target.url, "/v1/chat/completions", model=target.model, messages=MSGS,
                   **GREEDY)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert list(body) == [*CHUNK_KEYS, "usage"]
    assert re.fullmatch(r"chatcmpl-\d{1,3}", body["id"])
    assert body["object"] == "chat.completion" and body["model"] == target.model
    assert body["system_fingerprint"] == "fp_ollama"
    assert type(body["created"]) is int and abs(body["created"] - time.time()) < 3600
    (choice,) = body["choices"]
    assert list(choice) == ["index", "message", "finish_reason"] and choice["index"] == 0
    assert choice["finish_reason"] in ("stop", "length")
    assert list(choice["message"]) == ["role", "content"]  # no reasoning, no tool_calls
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    usage = body["usage"]
    assert list(usage) == ["prompt_tokens", "completion_tokens", "total_tokens"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    native = await post(target.url, "/api/chat", model=target.model, messages=MSGS,
                        stream=False, options=GREEDY)
    assert choice["message"]["content"] == native.json()["message"]["content"]


@pytest.mark.parametrize("include_usage", [True, False])
async def test_chat_completion_stream_shape(target: Target, include_usage: bool) -> None:
    r = await post(target.url, "/v1/chat/completions", model=target.model, messages=MSGS,
                   stream=True, stream_options={"include_usage": include_usage}, **GREEDY)
    assert r.status_code == 200 and r.headers["transfer-encoding"] == "chunked"
    *chunks, done = frames(r)
    assert done == "[DONE]"
    usage = chunks.pop() if include_usage else None
    finish = chunks.pop()
    for chunk in [*chunks, finish, *([usage] if usage else [])]:
        check_chunk(chunk, target.model)
    assert len({(c["id"], c["created"]) for c in [*chunks, finish]}) == 1, "one id, one time"
    assert finish["choices"] == [{"index": 0, "delta": {},
                                  "finish_reason": finish["choices"][0]["finish_reason"]}]
    assert finish["choices"][0]["finish_reason"] in ("stop", "length")
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    assert deltas[0]["role"] == "assistant", "the role comes in the first delta ..."
    assert not any("role" in d for d in deltas[1:]), "... and only there"
    assert all(set(d) <= {"role", "content"} for d in deltas)
    if usage is not None:
        assert usage["choices"] == [] and list(usage) == [*CHUNK_KEYS, "usage"]
        assert usage["usage"]["completion_tokens"] > 0
    whole = await post(target.url, "/v1/chat/completions", model=target.model,
                       messages=MSGS, **GREEDY)
    streamed = "".join(d.get("content", "") for d in deltas)
    assert streamed == whole.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [({"model": "nope", "messages": MSGS}, 404, "model 'nope' not found"),
     ({"model": "nope", "messages": MSGS, "stream": True}, 404, "model 'nope' not found"),
     ({"model": "M", "messages": []}, 400, "[] is too short - 'messages'"),
     ({"model": "M"}, 400, "[] is too short - 'messages'"),
     ({"messages": MSGS}, 400, "model is required"),
     ({"model": "M", "messages": MSGS, "tools": [WEATHER]}, 400,
      "registry.ollama.ai/library/M:latest does not support tools"),
     ({"model": "M", "messages": [{"role": "user", "content": None}]}, 400,
      "invalid message content type: <nil>"),
     ({"model": "M", "messages": MSGS, "reasoning_effort": "lots"}, 400, None)],
)
async def test_chat_completion_errors(target: Target, body: dict[str, Any], status: int,
                                      message: str | None) -> None:
    body = json.loads(json.dumps(body).replace('"M', '"' + target.model))
    r = await post(target.url, "/v1/chat/completions", **body)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"  # an error is never a stream
    got = r.json()
    if message is None:
        message = got["error"]["message"]
        assert message.startswith('invalid reasoning value: "lots"')
    assert got == v1_error(status, message.replace("M:latest", f"{target.model}:latest"))


async def test_bad_json_and_wrong_method(target: Target) -> None:
    async with httpx.AsyncClient(base_url=target.url, timeout=TIMEOUT) as http:
        r = await http.post("/v1/chat/completions", content=b"{nope")
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
        for method, path in (("GET", "/v1/chat/completions"), ("POST", "/v1/models")):
            wrong = await http.request(method, path)
            assert (wrong.status_code, wrong.text) == (405, "405 method not allowed")
        assert (await http.get("/v1/models/")).status_code == 404


async def test_models_list_and_retrieve(target: Target) -> None:
    async with httpx.AsyncClient(base_url=target.url, timeout=TIMEOUT) as http:
        listed = await http.get("/v1/models")
        one = await http.get(f"/v1/models/{target.model}")
        missing = await http.get("/v1/models/nope")
        tags = (await http.get("/api/tags")).json()["models"]
    assert listed.status_code == 200 and listed.headers["content-type"] == "application/json"
    body = listed.json()
    assert list(body) == ["object", "data"] and body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [t["name"] for t in tags]
    item = next(m for m in body["data"] if m["id"] == f"{target.model}:latest")
    assert list(item) == ["id", "object", "created", "owned_by"]
    assert item["object"] == "model" and item["owned_by"] == "library"
    assert type(item["created"]) is int and abs(item["created"] - time.time()) < 3600
    assert one.json() == {**item, "id": target.model}  # the name as asked for
    assert (missing.status_code, missing.json()) == (404, v1_error(404,
                                                                   "model 'nope' not found"))


async def test_embeddings_float_and_base64(target: Target) -> None:
    texts = ["The sky is blue.", "Grass is green."]
    floats = await post(target.url, "/v1/embeddings", model=target.model, input=texts)
    assert floats.status_code == 200 and floats.headers["content-type"] == "application/json"
    body = floats.json()
    assert list(body) == ["object", "data", "model", "usage"]
    assert body["object"] == "list" and body["model"] == target.model
    assert [list(d) for d in body["data"]] == [["object", "index", "embedding"]] * 2
    assert [(d["object"], d["index"]) for d in body["data"]] == [("embedding", 0),
                                                                 ("embedding", 1)]
    tokens = body["usage"]["prompt_tokens"]
    assert tokens > 0 and body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    native = (await post(target.url, "/api/embed", model=target.model, input=texts)).json()
    assert [d["embedding"] for d in body["data"]] == native["embeddings"]
    packed = await post(target.url, "/v1/embeddings", model=target.model, input=texts[0],
                        encoding_format="base64")
    raw = base64.b64decode(packed.json()["data"][0]["embedding"])
    unpacked = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert unpacked == pytest.approx(native["embeddings"][0], abs=1e-6)  # little-endian f32


@pytest.mark.parametrize(
    ("body", "message"),
    [({"input": []}, "invalid input"), ({}, "invalid input"),
     ({"input": "x", "encoding_format": "hex"},
      "Invalid value for 'encoding_format' = hex. Supported values: ['float', 'base64']."),
     ({"input": [1]}, "invalid input type")],
)
async def test_embeddings_errors(target: Target, body: dict[str, Any], message: str) -> None:
    r = await post(target.url, "/v1/embeddings", model=target.model, **body)
    assert (r.status_code, r.json()) == (400, v1_error(400, message))


@pytest.mark.parametrize("kind", ["json_object", "json_schema"])
async def test_response_format(target: Target, kind: str) -> None:
    fmt: dict[str, Any] = {"type": kind}
    if kind == "json_schema":
        fmt["json_schema"] = {"name": "person", "strict": True, "schema": PERSON}
    r = await post(target.url, "/v1/chat/completions", model=target.model, messages=PERSON_MSGS,
                   response_format=fmt, max_tokens=200, **GREEDY)
    choice = r.json()["choices"][0]
    if not target.enforces_format:
        assert target.formats[-1] == ("json" if kind == "json_object" else PERSON)
        return
    assert choice["finish_reason"] == "stop"
    value = json.loads(choice["message"]["content"])
    if kind == "json_schema":
        jsonschema.validate(value, PERSON)


async def test_stream_disconnect_stops_generation(target: Target) -> None:
    options = target.slow_options
    body = {"model": target.slow_model, "messages": target.slow_messages, "stream": True,
            **({"max_tokens": options["num_predict"]} if "num_predict" in options else {}),
            **{k: v for k, v in options.items() if k in ("temperature", "seed")}}
    seen = 0
    async with httpx.AsyncClient(base_url=target.url, timeout=TIMEOUT) as http, \
            http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.headers["content-type"] == "text/event-stream"
        async for line in r.aiter_lines():
            seen += line.startswith("data: {")
            if seen == 3:
                break  # leaving the block closes the connection mid-stream
    rec = [x for x in target.requests if x.path == "/v1/chat/completions"][-1]
    await target.wait_until(lambda: rec.disconnected, TIMEOUT, "server to see the disconnect")
    await target.wait_until(lambda: target.generating() == 0, TIMEOUT, "generation to stop")
    assert not rec.finished and 3 <= rec.chunks_sent < target.slow_tokens


# ----------------------------------------------------------------------------------------
# Scripted: tool calls, thinking, faults
# ----------------------------------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[str]:
    scripts = {
        "m1": ModelScript(),
        "tools": ModelScript(tokens=[], tool_calls=[CALL]),
        "cut": ModelScript(tokens=[], tool_calls=[CALL], done_reason="length"),
        "thinker": ModelScript(thinking=["Let", " me"], tokens=["391"]),
        "broken": ModelScript(error_after=2),
        "down": ModelScript(fail_first=1),
        "plain": ModelScript(capabilities=["completion"]),
    }
    async with OllamaServer(EmbeddingScripts(scripts)) as server:
        yield server.url


TOOL_CALL = {"index": 0, "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Tokyo"}'}}


async def test_tool_calls_whole_and_streamed(fake: str) -> None:
    whole = (await post(fake, "/v1/chat/completions", model="tools", messages=MSGS,
                        tools=[WEATHER])).json()
    (choice,) = whole["choices"]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert list(message) == ["role", "content", "tool_calls"] and message["content"] == ""
    (call,) = message["tool_calls"]
    assert re.fullmatch(r"call_[a-z0-9]{8}", call.pop("id")) and call == TOOL_CALL
    *chunks, done = frames(await post(fake, "/v1/chat/completions", model="tools",
                                      messages=MSGS, tools=[WEATHER], stream=True))
    assert done == "[DONE]"
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[-1] == {} and chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    (delta,) = [d for d in deltas if "tool_calls" in d]
    assert delta["content"] == "" and len(delta["tool_calls"]) == 1, "one call, whole"
    assert delta["tool_calls"][0]["function"]["arguments"] == '{"city":"Tokyo"}'
    cut = (await post(fake, "/v1/chat/completions", model="cut", messages=MSGS,
                      tools=[WEATHER])).json()
    assert cut["choices"][0]["finish_reason"] == "length", "length wins over tool_calls"


async def test_reasoning_whole_and_streamed(fake: str) -> None:
    whole = (await post(fake, "/v1/chat/completions", model="thinker", messages=MSGS)).json()
    assert whole["choices"][0]["message"] == {"role": "assistant", "content": "391",
                                              "reasoning": "Let me"}
    *chunks, _ = frames(await post(fake, "/v1/chat/completions", model="thinker",
                                   messages=MSGS, stream=True))
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas == [{"role": "assistant", "reasoning": "Let"}, {"reasoning": " me"},
                      {"content": "391"}, {}]
    off = (await post(fake, "/v1/chat/completions", model="thinker", messages=MSGS,
                      reasoning_effort="none")).json()
    assert "reasoning" not in off["choices"][0]["message"]


async def test_length_and_max_tokens(fake: str) -> None:
    body = (await post(fake, "/v1/chat/completions", model="m1", messages=MSGS,
                       max_tokens=2)).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["choices"][0]["message"]["content"] == "Hello,"
    assert body["usage"]["completion_tokens"] == 2


async def test_midstream_error_ends_without_finish_or_done(fake: str) -> None:
    r = await post(fake, "/v1/chat/completions", model="broken", messages=MSGS, stream=True)
    assert r.status_code == 200
    chunks = frames(r)
    assert "[DONE]" not in chunks
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": "Hello"}, {"content": ","}, {}]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None]


async def test_prestream_runner_error_is_an_api_error(fake: str) -> None:
    r = await post(fake, "/v1/chat/completions", model="down", messages=MSGS, stream=True)
    assert (r.status_code, r.json()) == (500, v1_error(500,
                                                       "llama runner process has terminated"))


async def test_a_model_that_cannot_embed() -> None:
    backend = EmbeddingScripts({"plain": ModelScript(capabilities=["completion"])})
    async with OllamaServer(backend) as server:
        native = await post(server.url, "/api/embed", model="plain", input="x")
        assert (native.status_code, native.json()) == (
            501, {"error": "this model does not support embeddings"})
        v1 = await post(server.url, "/v1/embeddings", model="plain", input="x")
        assert (v1.status_code, v1.json()) == (501, v1_error(
            501, "this model does not support embeddings"))


async def test_no_models_is_null_data() -> None:
    async with OllamaServer(ScriptedBackend({})) as server, \
            httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as http:
        assert (await http.get("/v1/models")).json() == {"object": "list", "data": None}


# ----------------------------------------------------------------------------------------
# The request translation (FromChatRequest)
# ----------------------------------------------------------------------------------------


def test_options_and_defaults() -> None:
    native = to_native_chat({"model": "m", "messages": MSGS, "max_tokens": 9, "seed": 3,
                             "stop": "END", "frequency_penalty": 0.5, "n": 4})
    assert native == {"model": "m", "messages": MSGS, "stream": False,
                      "options": {"stop": ["END"], "num_predict": 9, "temperature": 1.0,
                                  "seed": 3, "frequency_penalty": 0.5, "top_p": 1.0}}
    listed = to_native_chat({"model": "m", "messages": MSGS, "stop": ["a", 1, "b"],
                             "temperature": 0.2, "top_p": 0.5, "stream": True})
    assert listed["options"] == {"stop": ["a", "b"], "temperature": 0.2, "top_p": 0.5}
    assert listed["stream"] is True


@pytest.mark.parametrize(
    ("response_format", "fmt"),
    [({"type": "json_object"}, "json"), ({"type": " JSON_Object "}, "json"),
     ({"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}}, PERSON),
     ({"type": "json_schema"}, None), ({"type": "text"}, None)],
)
def test_response_format_becomes_format(response_format: dict[str, Any], fmt: Any) -> None:
    native = to_native_chat({"model": "m", "messages": MSGS,
                             "response_format": response_format})
    assert native.get("format") == fmt


@pytest.mark.parametrize(("effort", "think"), [("none", False), ("minimal", "low"),
                                               ("high", "high"), ("xhigh", "max")])
def test_reasoning_effort_becomes_think(effort: str, think: Any) -> None:
    assert to_native_chat({"model": "m", "messages": MSGS,
                           "reasoning_effort": effort})["think"] == think
    assert to_native_chat({"model": "m", "messages": MSGS,
                           "reasoning": {"effort": effort}})["think"] == think


def test_tool_turns_round_trip() -> None:
    messages = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "reasoning": "Look it up",
         "tool_calls": [{"id": "call_1", "type": "function",
                         "function": {"name": "get_weather",
                                      "arguments": '{"city": "Tokyo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "user", "content": [{"type": "text", "text": "And "},
                                     {"type": "text", "text": "tomorrow?"}]},
    ]
    assert to_native_chat({"model": "m", "messages": messages})["messages"] == [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "", "thinking": "Look it up",
         "tool_calls": [{"id": "call_1", "function": {"name": "get_weather",
                                                      "arguments": {"city": "Tokyo"}}}]},
        {"role": "tool", "content": "sunny", "tool_call_id": "call_1",
         "tool_name": "get_weather"},
        {"role": "user", "content": "And "}, {"role": "user", "content": "tomorrow?"},
    ]


@pytest.mark.parametrize(
    ("message", "error"),
    [({"role": "user"}, "invalid message content type: <nil>"),
     ({"role": "user", "content": 3}, "invalid message content type: float64"),
     ({"role": "assistant", "content": "", "tool_calls": [
         {"function": {"name": "f", "arguments": "{oops"}}]}, "invalid tool call arguments"),
     ({"role": "user", "content": [{"type": "image_url",
                                    "image_url": {"url": "https://x/y.png"}}]},
      "image URLs are not currently supported, please use base64 encoded data instead"),
     ({"role": "user", "content": [{"type": "image_url",
                                    "image_url": "data:image/gif;base64,AA=="}]},
      "invalid image input"),
     ({"role": "user", "content": [{"type": "audio"}]}, "invalid message format")],
)
def test_refused_messages(message: dict[str, Any], error: str) -> None:
    with pytest.raises(Invalid, match=re.escape(error)):
        to_native_chat({"model": "m", "messages": [message]})


def test_base64_images_pass_as_native_images() -> None:
    png = base64.b64encode(b"\x89PNG fake").decode()
    (msg,) = to_native_chat({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}]}]}
    )["messages"]
    assert msg == {"role": "user", "content": "", "images": [png]}
