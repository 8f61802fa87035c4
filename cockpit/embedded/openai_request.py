"""An OpenAI chat completion request rewritten as the native /api/chat body, as Ollama's
``FromChatRequest`` does (REFERENCE-2 G.1): options and their OpenAI defaults, response_format
as ``format``, reasoning effort as ``think``, and messages with parts, images and tool turns."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

_EFFORT = {"none": False, "minimal": "low", "low": "low", "medium": "medium", "high": "high",
           "max": "max", "xhigh": "max", "ultra": "max"}
_IMAGE_PREFIXES = ("data:;base64,", *(f"data:image/{t};base64," for t in
                                      ("jpeg", "jpg", "png", "webp")))


class Invalid(ValueError):
    """A /v1 request the middleware refuses with 400 before the native handler runs."""


def to_native_chat(body: dict[str, Any]) -> dict[str, Any]:
    """A ChatCompletionRequest as the native /api/chat body (``FromChatRequest``)."""
    messages = body.get("messages")
    if messages is not None and not isinstance(messages, list):
        raise Invalid("json: cannot unmarshal messages into []openai.Message")
    if not messages:
        raise Invalid("[] is too short - 'messages'")
    model = body.get("model", "")
    if not isinstance(model, str):
        raise Invalid("json: cannot unmarshal model into string")
    options: dict[str, Any] = {}
    stop = body.get("stop")
    if isinstance(stop, str):
        options["stop"] = [stop]
    elif isinstance(stop, list):
        options["stop"] = [s for s in stop if isinstance(s, str)]
    if body.get("max_tokens") is not None:
        options["num_predict"] = body["max_tokens"]
    options["temperature"] = 1.0 if body.get("temperature") is None else body["temperature"]
    for key in ("seed", "frequency_penalty", "presence_penalty"):
        if body.get(key) is not None:
            options[key] = body[key]
    options["top_p"] = 1.0 if body.get("top_p") is None else body["top_p"]
    native: dict[str, Any] = {"model": model, "messages": _messages(messages),
                              "options": options, "stream": body.get("stream") is True}
    fmt = body.get("response_format")
    kind = str(fmt.get("type") or "").strip().lower() if isinstance(fmt, dict) else ""
    if kind == "json_object":
        native["format"] = "json"
    elif kind == "json_schema" and isinstance(fmt, dict) and isinstance(fmt.get("json_schema"),
                                                                        dict):
        native["format"] = fmt["json_schema"].get("schema")
    if body.get("tools") is not None:
        native["tools"] = body["tools"]
    reasoning = body.get("reasoning")
    effort = (reasoning.get("effort") if isinstance(reasoning, dict) else None) or body.get(
        "reasoning_effort")
    if effort:
        if effort not in _EFFORT:
            raise Invalid(f'invalid reasoning value: "{effort}" (must be "none", "minimal", '
                          '"low", "medium", "high", "xhigh", "max" or "ultra")')
        native["think"] = _EFFORT[effort]
    return native


def _messages(messages: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for msg in messages:
        if not isinstance(msg, dict):
            raise Invalid("invalid message format")
        role, content, calls = str(msg.get("role") or ""), msg.get("content"), msg.get("tool_calls")
        extra = {"thinking": msg.get("reasoning"), "tool_calls": _calls(calls),
                 "tool_call_id": msg.get("tool_call_id")}
        if role.lower() == "tool":
            extra["tool_name"] = msg.get("name") or _name_of(messages, msg.get("tool_call_id"))
        extra = {k: v for k, v in extra.items() if v}
        if isinstance(content, str):
            out.append({"role": role, "content": content, **extra})
        elif isinstance(content, list):
            out += [_part(role, part) for part in content]
            if out and calls:
                out[-1].update(extra)
        elif calls is None:  # content may only be missing beside tool calls
            raise Invalid(f"invalid message content type: {_go_type(content)}")
        else:
            out.append({"role": role, "content": "", **extra})
    return out


def _part(role: str, part: Any) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text" and isinstance(part.get("text"), str):
        return {"role": role, "content": part["text"]}
    if kind != "image_url":
        raise Invalid("invalid message format")
    url = part.get("image_url")
    url = url.get("url") if isinstance(url, dict) else url
    if not isinstance(url, str):
        raise Invalid("invalid message format")
    if url.startswith(("http://", "https://")):
        raise Invalid("image URLs are not currently supported, please use base64 encoded data "
                      "instead")
    prefix = next((p for p in _IMAGE_PREFIXES if url.startswith(p)), None)
    try:
        if prefix is None:
            raise ValueError
        image = base64.b64decode(url.removeprefix(prefix), validate=True)
    except (ValueError, binascii.Error):
        raise Invalid("invalid image input") from None
    return {"role": role, "content": "", "images": [base64.b64encode(image).decode()]}


def _calls(calls: Any) -> list[dict[str, Any]]:
    native = []
    for call in calls or ():
        fn = call.get("function") if isinstance(call, dict) else None
        try:
            args = json.loads(fn.get("arguments") or "") if isinstance(fn, dict) else None
        except (TypeError, ValueError):
            args = None
        if not isinstance(fn, dict) or not isinstance(args, dict):
            raise Invalid("invalid tool call arguments")
        native.append({**({"id": call["id"]} if call.get("id") else {}),
                       "function": {"name": fn.get("name") or "", "arguments": args}})
    return native


def _name_of(messages: list[Any], call_id: Any) -> str:
    """The tool a result answers, from the call it names (the last one wins)."""
    for msg in reversed(messages):
        for call in (msg.get("tool_calls") or ()) if isinstance(msg, dict) else ():
            if isinstance(call, dict) and call_id and call.get("id") == call_id:
                return str((call.get("function") or {}).get("name") or "")
    return ""


def _go_type(value: Any) -> str:
    return {type(None): "<nil>", bool: "bool", int: "float64", float: "float64",
            dict: "map[string]interface {}"}.get(type(value), type(value).__name__)
