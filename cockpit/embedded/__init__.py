"""An Ollama-compatible loopback server: one protocol layer, several backends."""
