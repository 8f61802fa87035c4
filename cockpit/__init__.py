"""cockpit: a terminal cockpit for crews of local LLM agents."""

__version__ = "0.1.0"
