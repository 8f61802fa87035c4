"""Tools agents call: the interface every tool has (`base`), the built-in board and message
tools (`builtin`), MCP servers' tools (`mcp`), and how an agent's `tools` list becomes tools
(`registry`)."""
