"""Ollama's model-name rule, shared by the client side (choosing a host that has the model) and
the server side (the embedded engine and the test fake answering for it)."""

from __future__ import annotations


def canonical(name: str) -> str:
    """Ollama's default tag: "m1" and "m1:latest" name the same model."""
    name = name.strip()
    return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"
