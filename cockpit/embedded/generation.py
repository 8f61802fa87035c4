"""/api/chat and /api/generate: Ollama's checks on a request, then a backend's pieces as
Ollama's replies (NDJSON chunks, or one aggregated object), with its metrics.

The checks and their exact messages follow ``server/routes.go`` (REFERENCE.md A.4, A.5), so a
backend only ever sees a request a real Ollama would have run.
"""

from __future__ import annotations

import json
import time
from json.encoder import encode_basestring_ascii as _jstr
from typing import Any

from cockpit.embedded.backend import (
    Backend,
    BackendError,
    DropConnection,
    Finish,
    Generation,
    ModelEntry,
)
from cockpit.embedded.http1 import JSON, STREAMED, Reply, Stream
from cockpit.embedded.wire import call_id, dumps, error, qualified, rfc3339

THINK_VALUES = (None, True, False, "low", "medium", "high", "max")


def validate(endpoint: str, body: dict[str, Any], name: str,
             entry: ModelEntry | None) -> Generation | Reply:
    """The request as a Generation, or the error reply Ollama gives for it."""
    chat = endpoint == "chat"
    if not name:
        return error(400, "model is required") if chat else error(404, "model '' not found")
    if entry is None:
        return error(404, f"model '{name}' not found")
    messages, prompt = body.get("messages") or [], body.get("prompt") or ""
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return error(400, "json: cannot unmarshal messages into []api.Message")
    if not isinstance(prompt, str):
        return error(400, "json: cannot unmarshal prompt into string")
    think = body.get("think")
    if think not in THINK_VALUES:
        return error(400, f'invalid think value: "{think}" (must be "high", "medium", '
                          '"low", "max", true, or false)')
    can_think = "thinking" in entry.capabilities
    if think not in (None, False) and not can_think:
        return error(400, f'"{name}" does not support thinking')
    tools = body.get("tools") if chat else None
    if tools is not None and not (isinstance(tools, list)
                                  and all(isinstance(t, dict) for t in tools)):
        return error(400, "json: cannot unmarshal tools into []api.Tool")
    if tools and "tools" not in entry.capabilities:  # `"tools": []` is accepted by any model
        return error(400, f"{qualified(entry.name)} does not support tools")
    options = body.get("options")
    gen = Generation("chat" if chat else "generate", name, entry, messages if chat else [],
                     "" if chat else prompt, body.get("system"),
                     options if isinstance(options, dict) else {},
                     True if think is None and can_think else think, body,
                     tools=tools or [])
    fmt = body.get("format")
    if fmt in (None, "") or is_empty(gen):  # an empty request only loads: no runner, no check
        return gen
    if fmt != "json" and not isinstance(fmt, dict):  # Ollama's runner says so, before any bytes
        raw = json.dumps(json.dumps(fmt, separators=(",", ":")))
        return error(500, f'invalid format: {raw}; expected "json" or a valid JSON Schema object')
    gen.format = fmt
    return gen


def is_empty(gen: Generation) -> bool:
    """Ollama loads (or, with keep_alive 0, unloads) the model for an empty request."""
    return not gen.messages if gen.endpoint == "chat" else not gen.prompt


def load_reply(gen: Generation, unload: bool) -> Reply:
    chat = gen.endpoint == "chat"
    return 200, JSON, dumps({"model": gen.model, "created_at": rfc3339(),
                             **({"message": {"role": "assistant", "content": ""}}
                                if chat else {"response": ""}),
                             "done": True, "done_reason": "unload" if unload else "load"})


async def run(backend: Backend, gen: Generation, out: Stream, stream: bool,
              t0: int) -> Reply:
    """Stream (or aggregate) the backend's pieces. The generator is always aclose()d,
    also when a disconnect cancels this task: that is what stops generation."""
    chat = gen.endpoint == "chat"
    pre = f'{{"model":{_jstr(gen.model)},"created_at":"'  # static parts, built once
    mid = '","message":{"role":"assistant","content":' if chat else '","response":'
    end = '},"done":false}\n' if chat else ',"done":false}\n'
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    finish, pieces, t_first = Finish(), 0, 0
    t_gen = time.perf_counter_ns()
    agen = backend.generate(gen)
    try:
        async for item in agen:
            if isinstance(item, Finish):
                finish = item
                break
            t_first, pieces = t_first or time.perf_counter_ns(), pieces + 1
            tc = [{"id": call_id(), "function": {"index": len(calls) + i, "name": c["name"],
                                                 "arguments": c.get("arguments") or {}}}
                  for i, c in enumerate(item.tool_calls or ())]
            calls += tc
            if not stream:
                texts.append(item.content)
                thoughts.append(item.thinking)
                continue
            out.send((
                pre + rfc3339() + mid + _jstr(item.content)
                + (',"thinking":' + _jstr(item.thinking) if item.thinking else "")
                + (',"tool_calls":' + json.dumps(tc, separators=(",", ":")) if tc else "")
                + end).encode())
            if out.paused:
                await out.drain()
    except DropConnection:
        out.rec.error = "connection dropped by the backend"
        out.drop()
        return STREAMED
    except Exception as exc:  # BackendError, or a backend bug: Ollama's error paths
        status, msg = ((exc.status, exc.message) if isinstance(exc, BackendError)
                       else (500, str(exc) or type(exc).__name__))
        if not out.started:  # nothing written yet: a plain JSON error, even if streaming
            return error(status, msg)
        out.rec.error = msg
        out.fail(dumps({"error": msg}) + b"\n")
        return STREAMED
    finally:
        await agen.aclose()
    t_end = time.perf_counter_ns()
    t_first = t_first or t_end
    evals = pieces if finish.eval_count is None else finish.eval_count
    text, thinking = "".join(texts), "".join(thoughts)
    reply: dict[str, Any] = ({"role": "assistant", "content": text} if chat
                             else {"response": text})
    if thinking:
        reply["thinking"] = thinking
    if calls and not stream:
        reply["tool_calls"] = calls
    final: dict[str, Any] = {"model": gen.model, "created_at": rfc3339(),
                             **({"message": reply} if chat else reply),
                             "done": True, "done_reason": finish.done_reason}
    if not chat:
        final["context"] = (finish.context if finish.context is not None else
                            list(range(1, finish.prompt_eval_count + evals + 1)))
    final |= {"total_duration": t_end - t0, "load_duration": finish.load_duration_ns,
              "prompt_eval_count": finish.prompt_eval_count,
              "prompt_eval_duration": t_first - t_gen, "eval_count": evals,
              "eval_duration": t_end - t_first}
    if not stream:
        return 200, JSON, dumps(final)
    out.send(dumps(final) + b"\n")
    out.end()
    return STREAMED
