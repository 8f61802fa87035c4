"""A small harness for Debian's headless chromium over the DevTools protocol (CDP).

aiohttp (a textual-serve dependency) speaks CDP's HTTP and websocket, so no driver package and
no browser download are needed (REFERENCE-2 I.3). The page's terminal is an xterm.js canvas,
opaque to the DOM, so `Page` records what the server sends over the page's websockets: that
is exactly what the app wrote to the terminal, and a test can wait for words to appear in it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
"""Debian's package (`apt-get install chromium`), or None: the browser tests skip."""

RECORDER = """
(() => {
  const Native = window.WebSocket, decoder = new TextDecoder();
  window.__received = "";
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (event) => {
        const data = event.data;
        if (typeof data === "string") window.__received += data;
        else if (data instanceof ArrayBuffer)
          window.__received += decoder.decode(data, {stream: true});
        else if (data instanceof Blob) data.text().then((t) => { window.__received += t; });
      });
    }
  };
})();
"""
"""Installed before the page's scripts run: keeps the text of every websocket message."""

KEYS = {"p": ("KeyP", 80), "1": ("Digit1", 49)}
"""Key -> (DOM code, Windows virtual key code), as CDP wants for a printable key."""


async def poll(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str,
               interval: float = 0.1) -> None:
    """Wait for a condition (never a fixed sleep); fail naming what did not happen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(interval)


class Page:
    """One tab, driven over its CDP websocket. Commands run one at a time, so a reply is the
    next message with the command's id; events in between are dropped (none are enabled)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        call = next(self._ids)
        await self.ws.send_json({"id": call, "method": method, "params": params})
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            reply = message.json()
            if reply.get("id") == call:
                if "error" in reply:
                    raise RuntimeError(f"CDP {method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
        raise RuntimeError(f"CDP websocket closed during {method}")

    async def open(self, url: str) -> None:
        """Navigate to `url`, recording its websockets from the first script on."""
        await self.send("Page.enable")  # else the script below is not installed
        await self.send("Page.addScriptToEvaluateOnNewDocument", source=RECORDER)
        result = await self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise AssertionError(f"{url}: {result['errorText']}")

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def received(self, since: int = 0) -> str:
        """The text the page's websockets received, from offset `since`."""
        text = await self.evaluate(f"(window.__received || '').slice({since})")
        return str(text)

    async def click(self, x: int, y: int) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                            clickCount=1)

    async def press(self, key: str) -> None:
        code, virtual = KEYS[key]
        await self.send("Input.dispatchKeyEvent", type="keyDown", key=key, text=key, code=code,
                        windowsVirtualKeyCode=virtual)
        # no "text" on keyUp: CDP rejects text=null
        await self.send("Input.dispatchKeyEvent", type="keyUp", key=key, code=code,
                        windowsVirtualKeyCode=virtual)

    async def screenshot(self) -> bytes:
        return base64.b64decode((await self.send("Page.captureScreenshot", format="png"))["data"])


@contextlib.asynccontextmanager
async def chromium(profile: Path, timeout: float,
                   size: tuple[int, int] = (1000, 600)) -> AsyncIterator[Page]:
    """Headless chromium with one blank page. It runs in its own process group, killed whole
    on the way out: the renderer, GPU and zygote processes go with it."""
    assert CHROMIUM, "chromium is not installed"
    profile.mkdir(parents=True, exist_ok=True)
    active = profile / "DevToolsActivePort"
    active.unlink(missing_ok=True)  # a reused profile's file names a port long closed
    output = (profile / "chromium.log").open("wb")
    process = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-extensions", "--disable-background-networking", "--mute-audio",
         "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
         "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
         f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=output, stderr=output, start_new_session=True)
    try:
        async def listening() -> bool:
            if process.poll() is not None:
                log = (profile / "chromium.log").read_text(errors="replace")[-2000:]
                raise AssertionError(f"chromium exited with {process.returncode}: {log}")
            return active.exists() and len(active.read_text().split()) >= 2

        await poll(listening, timeout, "chromium's DevTools port")
        port = int(active.read_text().split()[0])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            target = next(t for t in targets if t["type"] == "page")
            async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                yield Page(ws)
    finally:
        kill_group(process)
        output.close()


def kill_group(process: subprocess.Popen[Any], grace: float = 15.0) -> None:
    """End `process` and everything in its process group (started with start_new_session=True,
    so the group id is its pid): SIGTERM first, so apps can close their logs, then SIGKILL for
    whatever is left of the group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=grace)
