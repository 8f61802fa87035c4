"""Native chat replies in OpenAI's shapes (REFERENCE-2 G.2, G.3): whole ones as a
``chat.completion``, streamed NDJSON lines as server-sent ``chat.completion.chunk`` events."""

from __future__ import annotations

import json
import time
from typing import Any

from cockpit.embedded.http1 import Connection, RequestRecord, Stream
from cockpit.embedded.wire import dumps

SSE = "text/event-stream"


def tool_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Native calls in OpenAI's shape: ``arguments`` becomes a JSON string."""
    return [{"id": c.get("id", ""), "index": c["function"].get("index", i), "type": "function",
             "function": {"name": c["function"]["name"],
                          "arguments": json.dumps(c["function"].get("arguments") or {},
                                                  separators=(",", ":"))}}
            for i, c in enumerate(calls)]


def finish_reason(done_reason: str | None, calls: bool) -> str | None:
    """length wins over tool_calls, which wins over the done reason."""
    if done_reason == "length":
        return "length"
    return "tool_calls" if calls else (done_reason or None)


def usage(r: dict[str, Any]) -> dict[str, int]:
    prompt, completion_ = r.get("prompt_eval_count", 0), r.get("eval_count", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion_,
            "total_tokens": prompt + completion_}


def completion(cid: str, r: dict[str, Any]) -> dict[str, Any]:
    """A native non-streamed chat reply as a ``chat.completion``."""
    msg = r["message"]
    calls = tool_calls(msg.get("tool_calls") or [])
    message: dict[str, Any] = {"role": msg["role"], "content": msg["content"]}
    if msg.get("thinking"):
        message["reasoning"] = msg["thinking"]
    if calls:
        message["tool_calls"] = calls
    return {"id": cid, "object": "chat.completion", "created": int(time.time()),
            "model": r["model"], "system_fingerprint": "fp_ollama",
            "choices": [{"index": 0, "message": message,
                         "finish_reason": finish_reason(r.get("done_reason"), bool(calls))}],
            "usage": usage(r)}


class ChatStream(Stream):
    """Server-sent events made from the native NDJSON lines as they are written (G.3): role
    in the first delta only, reasoning before content, the finish reason in a chunk of its
    own, then usage (if asked) and ``[DONE]``. A mid-stream error ends it without either."""

    def __init__(self, conn: Connection, rec: RequestRecord, cid: str, created: int,
                 include_usage: bool) -> None:
        super().__init__(conn, rec, SSE)
        self.cid, self.created, self.include_usage = cid, created, include_usage
        self.first, self.calls_sent, self.model = True, False, ""

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return b"data: " + dumps({"id": self.cid, "object": "chat.completion.chunk",
                                  "created": self.created, "model": self.model,
                                  "system_fingerprint": "fp_ollama", "choices": choices,
                                  **extra}) + b"\n\n"

    def _delta(self, delta: dict[str, Any], reason: str | None = None) -> bytes:
        if self.first and delta:
            delta, self.first = {"role": "assistant", **delta}, False
        return self._chunk([{"index": 0, "delta": delta, "finish_reason": reason}])

    def send(self, data: bytes) -> None:
        r = json.loads(data)
        self.model = r.get("model", self.model)
        msg, done = r.get("message") or {}, r.get("done") is True
        frames = []
        if msg.get("thinking"):
            frames.append(self._delta({"reasoning": msg["thinking"]}))
        calls = tool_calls(msg.get("tool_calls") or [])
        if msg.get("content") or calls or not (done or msg.get("thinking")):
            delta: dict[str, Any] = {"content": msg.get("content", "")}
            if calls:
                delta["tool_calls"], self.calls_sent = calls, True
            frames.append(self._delta(delta))
        if done:
            frames.append(self._delta({}, finish_reason(r.get("done_reason"),
                                                        self.calls_sent) or "stop"))
            if self.include_usage:
                frames.append(self._chunk([], usage=usage(r)))
            frames.append(b"data: [DONE]\n\n")
        super().send(b"".join(frames))

    def fail(self, data: bytes) -> None:
        super().fail(self._delta({}))
