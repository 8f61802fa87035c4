"""The llama.cpp engine's structured output and embeddings, with the bundled SmolLM2-135M:
what the generic conformance tests cannot ask of the scripted fake."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jsonschema
import ollama
import pytest

from cockpit.embedded.api import OllamaServer
from tests.fake_ollama import wait_until

pytestmark = pytest.mark.embedded
TIMEOUT = 60.0
GREEDY = {"temperature": 0, "seed": 1, "num_predict": 300}
REVIEW = {
    "type": "object", "required": ["verdict", "score", "reasons"],
    "properties": {"verdict": {"type": "string", "enum": ["accept", "reject"]},
                   "score": {"type": "integer"},
                   "reasons": {"type": "array", "items": {"type": "string"},
                               "minItems": 1, "maxItems": 3}},
}
ASK = [{"role": "user", "content": "Review this plan: ship on Friday. Answer in JSON."}]


@pytest.fixture
async def engine() -> AsyncIterator[tuple[str, Any]]:
    from cockpit.embedded.llama import LlamaBackend

    backend = LlamaBackend(parallel=1, context=512)  # a small context: quick long inputs
    try:
        async with OllamaServer(backend, parallel=1) as server:
            yield server.url, backend
    finally:
        backend.close()


def client(url: str) -> ollama.AsyncClient:
    return ollama.AsyncClient(host=url, timeout=httpx.Timeout(TIMEOUT))


async def test_schema_constrains_chat_and_generate(engine: tuple[str, Any]) -> None:
    url, _ = engine
    async with client(url) as c:
        chat = await c.chat("smollm2:135m", messages=ASK, format=REVIEW, options=GREEDY)
        parts = [p async for p in await c.chat("smollm2:135m", messages=ASK, format=REVIEW,
                                                options=GREEDY, stream=True)]
        gen = await c.generate("smollm2:135m", "Review: ship on Friday. JSON.", format=REVIEW,
                               options=GREEDY)
    assert chat.done_reason == parts[-1].done_reason == gen.done_reason == "stop"
    for text in (chat.message.content, "".join(p.message.content or "" for p in parts),
                 gen.response):
        jsonschema.validate(json.loads(text or ""), REVIEW)


async def test_json_format_gives_json(engine: tuple[str, Any]) -> None:
    url, _ = engine
    person = [{"role": "user", "content": "Give a JSON object with a name and an age."}]
    async with client(url) as c:
        reply = await c.chat("smollm2:135m", messages=person, format="json", options=GREEDY)
    assert reply.done_reason == "stop"
    json.loads(reply.message.content or "")


async def test_a_schema_llama_cpp_cannot_take_is_ollamas_500(engine: tuple[str, Any]) -> None:
    url, _ = engine
    remote = {"$ref": "https://example.com/schema.json"}  # never fetched: refused
    async with client(url) as c:
        with pytest.raises(ollama.ResponseError) as err:
            await c.chat("smollm2:135m", messages=ASK, format=remote, options=GREEDY)
        assert (err.value.status_code, err.value.error) == (500, "invalid JSON schema in format")
        assert (await c.chat("smollm2:135m", messages=ASK, options=GREEDY)).done


async def test_show_lists_what_the_model_can_do(engine: tuple[str, Any]) -> None:
    url, _ = engine
    async with client(url) as c:
        shown = await c.show("smollm2:135m")
    assert list(shown.capabilities or []) == ["completion", "embedding"]  # no tools


async def test_embeddings_truncate_and_empty_text(engine: tuple[str, Any]) -> None:
    url, backend = engine
    assert backend._embedder is None, "the embedding context is made on first use"
    long = "word " * (backend.context + 500)
    async with client(url) as c:
        cut = await c.embed("smollm2:135m", input=long)
        assert cut.prompt_eval_count == backend.context
        with pytest.raises(ollama.ResponseError) as err:
            await c.embed("smollm2:135m", input=long, truncate=False)
        assert (err.value.status_code, err.value.error) == (
            400, "the input length exceeds the context length")
        both = await c.embed("smollm2:135m", input=["", "x"])
    empty, x = both.embeddings
    assert not any(empty), "no tokens, no vector: zero, as Ollama's normalize leaves it"
    assert math.isclose(math.sqrt(sum(v * v for v in x)), 1.0, rel_tol=1e-6)


async def test_embeddings_take_no_generation_slot(engine: tuple[str, Any]) -> None:
    """With one slot busy streaming, an embedding still comes back at once."""
    url, backend = engine
    count = [{"role": "user", "content": "Count from 1 to 300, separated by commas."},
             {"role": "assistant", "content": "1, 2, 3, 4, 5, 6,"}]  # so it keeps counting
    got: list[str] = []
    async with client(url) as c:
        stream = await c.chat("smollm2:135m", messages=count, stream=True,
                              options={**GREEDY, "num_predict": 2000})

        async def consume() -> None:
            async for part in stream:
                got.append(part.message.content or "")

        task = asyncio.create_task(consume())
        try:
            await wait_until(lambda: len(got) >= 3, TIMEOUT, "the generation to stream")
            vector = await c.embed("smollm2:135m", input="while generating")
            assert backend.running == 1, "the generation was still running"
            assert len(vector.embeddings[0]) > 0
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
