"""Generate one token with the bundled model: proof that the installed llama.cpp runs on this CPU.

    python scripts/check_engine.py

A llama-cpp-python wheel built with `-march=native` on one machine dies with SIGILL (an
illegal instruction, e.g. AMX tiles) on another, and pip reuses such a wheel from its cache.
`.ci/run` runs this in a child process and rebuilds the wheel portably when it fails.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    from llama_cpp import Llama

    from cockpit.embedded.llama import model_path

    with contextlib.redirect_stderr(io.StringIO()):
        llm = Llama(str(model_path()), n_ctx=64, n_threads=1, verbose=False)
        out = llm("Hello", max_tokens=1)
    print(f"llama.cpp runs: {out['choices'][0]['text']!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
