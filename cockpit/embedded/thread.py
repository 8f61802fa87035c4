"""An Ollama-compatible server on its own event loop in a daemon thread.

For synchronous callers: the CLI's `engine` and `demo`, benchmarks, and snapshot tests, which
must not share pytest-asyncio's loop (REFERENCE.md C.5).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from cockpit.embedded.api import OllamaServer
from cockpit.embedded.backend import Backend


class ServerThread:
    """An OllamaServer on its own loop in a daemon thread; ``start`` returns once it listens
    (or raises its bind error here)."""

    def __init__(self, backend: Backend, **kwargs: Any) -> None:
        self.server = OllamaServer(backend, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> ServerThread:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self.server.start())
            except BaseException as exc:  # surface bind errors in the caller's thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="ollama-server", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            return
        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
