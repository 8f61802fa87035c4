"""What the engine hands llama.cpp for a request: the model's own chat template applied to the
messages, and Ollama's `format` turned into a grammar that constrains sampling."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from cockpit.embedded.backend import BackendError, Generation

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_grammar import LlamaGrammar


def grammar_for(fmt: str | dict[str, Any] | None) -> LlamaGrammar | None:
    """Ollama's `format` as a llama.cpp grammar: its JSON grammar, or one made from the schema
    (never GBNF from the client: an invalid grammar crashes llama.cpp, REFERENCE-2 J.1)."""
    if fmt is None:
        return None
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    if fmt == "json":
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    try:
        return LlamaGrammar.from_json_schema(json.dumps(fmt), verbose=False)
    except Exception as exc:  # noqa: BLE001 - the converter raises several kinds
        raise BackendError("invalid JSON schema in format", 500) from exc


def prompt_tokens(llm: Llama, gen: Generation) -> list[int]:
    """The chat template applied to the messages. A final assistant message is continued,
    not answered (as Ollama does): its text follows the generation prompt unclosed."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    messages: list[dict[str, Any]] = list(gen.messages)
    if gen.endpoint == "generate":
        messages = [*([{"role": "system", "content": gen.system}] if gen.system else []),
                    {"role": "user", "content": gen.prompt}]
    partial = ""
    if messages and messages[-1].get("role") == "assistant":
        partial = str(messages.pop().get("content") or "")
    metadata = llm.metadata
    template = metadata.get("tokenizer.chat_template")
    if not template:
        raise BackendError("the model has no chat template", 500)
    vocab_token = llm._model.token_get_text  # noqa: SLF001
    formatter = Jinja2ChatFormatter(template, eos_token=vocab_token(llm.token_eos()),
                                    bos_token=vocab_token(llm.token_bos()))
    prompt = formatter(messages=messages).prompt + partial  # type: ignore[arg-type]
    add_bos = metadata.get("tokenizer.ggml.add_bos_token", "true") == "true"
    return llm.tokenize(prompt.encode(), add_bos=add_bos, special=True)
