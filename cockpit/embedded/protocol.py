"""The Ollama-compatible server's public names in one place, for callers that predate the
split into modules: backend.py (the backend interface), http1.py (HTTP/1.1 transport),
api.py (the Ollama API), generation.py (chat and generate), embed.py (/api/embed),
openai*.py (the /v1 layer), slots.py (admission) and thread.py (a server on its own thread)."""

from cockpit.embedded.api import OLLAMA_VERSION, OllamaServer
from cockpit.embedded.backend import (
    Backend,
    BackendError,
    DropConnection,
    Finish,
    Generation,
    ModelEntry,
    Piece,
)
from cockpit.embedded.http1 import RequestRecord
from cockpit.embedded.slots import BUSY
from cockpit.embedded.thread import ServerThread
from cockpit.embedded.wire import rfc3339

__all__ = ["BUSY", "OLLAMA_VERSION", "Backend", "BackendError", "DropConnection", "Finish",
           "Generation", "ModelEntry", "OllamaServer", "Piece", "RequestRecord", "ServerThread",
           "rfc3339"]
