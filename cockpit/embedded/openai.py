"""Ollama's OpenAI-compatible routes (/v1/chat/completions, /v1/models, /v1/embeddings), as a
layer over the native handlers, the way Ollama's middleware is (REFERENCE-2 G).

A request is rewritten into the native one (openai_request.py) and run by the native handler;
its replies are converted back (openai_reply.py): whole ones when it returns, streamed NDJSON
lines one by one as they are written. So /v1 inherits every native check, error and admission
rule.
"""

from __future__ import annotations

import base64
import json
import random
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from cockpit.embedded import embed
from cockpit.embedded.http1 import Connection, Reply, RequestRecord, Stream
from cockpit.embedded.openai_reply import ChatStream, completion
from cockpit.embedded.openai_request import Invalid, to_native_chat
from cockpit.embedded.wire import dumps, namespace

if TYPE_CHECKING:
    from cockpit.embedded.api import OllamaServer

JSON = "application/json"  # the middleware sets it without a charset
_ERROR_TYPES = {400: "invalid_request_error", 404: "not_found_error"}


def error(status: int, message: str) -> Reply:
    """OpenAI's error shape with the native status; the type follows the status only."""
    kind = _ERROR_TYPES.get(status, "api_error")
    return status, JSON, dumps({"error": {"message": message, "type": kind, "param": None,
                                          "code": None}}) + b"\n"


def _from_native(reply: Reply, convert: Callable[[dict[str, Any]], dict[str, Any]]) -> Reply:
    """A native whole reply in OpenAI's shape: errors keep their status."""
    status, _, body = reply
    if status == 0:
        return reply
    data = json.loads(body)
    if status != 200:
        return error(status, data.get("error") or "")
    return 200, JSON, dumps(convert(data)) + b"\n"


async def route(server: OllamaServer, conn: Connection, rec: RequestRecord, path: str,
                body: dict[str, Any], bad_json: str | None) -> Reply:
    """Answer a /v1 request whose method the route table has already checked."""
    if path == "/v1/models":
        data = [_model(server, server.describe(e)["name"]) for e in server.backend.models()]
        return 200, JSON, dumps({"object": "list", "data": data or None}) + b"\n"
    if path.startswith("/v1/models/"):
        name = unquote(path.removeprefix("/v1/models/"))
        if server.find(name) is None:
            return error(404, f"model '{name}' not found")
        return 200, JSON, dumps(_model(server, name)) + b"\n"
    if bad_json is not None:
        return error(400, bad_json)
    try:
        if path == "/v1/embeddings":
            return await _embeddings(server, body)
        native = to_native_chat(body)
    except Invalid as exc:
        return error(400, str(exc))
    stream, cid = native["stream"], f"chatcmpl-{random.randrange(999)}"
    usage = isinstance(body.get("stream_options"), dict) and bool(
        body["stream_options"].get("include_usage"))
    out = (ChatStream(conn, rec, cid, int(time.time()), usage) if stream
           else Stream(conn, rec))
    name = native["model"]
    reply = await server.generate(out, "chat", native, name, server.find(name) if name else None)
    return _from_native(reply, lambda r: completion(cid, r))


def _model(server: OllamaServer, name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": server.created_s,
            "owned_by": namespace(name)}


async def _embeddings(server: OllamaServer, body: dict[str, Any]) -> Reply:
    encoding = body.get("encoding_format") or ""
    if encoding and str(encoding).lower() not in ("float", "base64"):
        raise Invalid(f"Invalid value for 'encoding_format' = {encoding}. "
                      "Supported values: ['float', 'base64'].")
    texts = body.get("input")
    if texts == "":
        texts = [""]
    if texts is None or texts == []:
        raise Invalid("invalid input")
    model = body.get("model")
    model = model if isinstance(model, str) else ""
    native = {"model": model, "input": texts, "dimensions": body.get("dimensions") or 0}
    b64 = str(encoding).lower() == "base64"

    def listing(r: dict[str, Any]) -> dict[str, Any]:
        data = [{"object": "embedding", "index": i,
                 "embedding": (base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode()
                               if b64 else v)} for i, v in enumerate(r["embeddings"])]
        count = r.get("prompt_eval_count", 0)
        return {"object": "list", "data": data, "model": model,
                "usage": {"prompt_tokens": count, "total_tokens": count}}

    return _from_native(await embed.handle(server, native, model), listing)
