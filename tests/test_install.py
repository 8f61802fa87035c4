"""Install as users do: a plain, non-editable install into a fresh virtual environment, then the
TUI opened from there in a real pseudo-terminal against the fake Ollama server.

The checkout itself is installed editable (`.ci/run`), which would hide a runtime file that only
exists in the source tree (the themes once lived in `themes/`, outside the package, and a plain
`pip install .` could not open the TUI). So the project is copied (the build writes into its
tree), built into a wheel as `pip install .` does, in pip's isolated build environment (the
installed setuptools may be older than `[build-system]` asks), and the wheel installed into a
new venv.

The venv gets no system site-packages. With `--system-site-packages` the interpreter would run
the outer environment's `__editable__.cockpit-*.pth`, which installs a meta-path finder (or a
path entry) pointing at this checkout. That finder comes after `PathFinder`, so the venv's copy
would still win, but the proof would rest on that ordering. Instead a `.pth` file in the venv
lists the outer site-packages directories as plain paths, after the venv's own: the
dependencies (textual, ollama, ...) import from there, none is downloaded, and `.pth` files
inside those directories are not processed, so the editable hook never loads. This also works
when the tests themselves run inside a venv, whose packages `--system-site-packages` would not
see. The tests then prove where `cockpit` came from: its `__file__`, its metadata, and the
bytecode the TUI process wrote next to the installed `cockpit/ui/app.py`.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shutil
import site
import struct
import subprocess
import sys
import termios
import threading
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PATIENCE
from tests.fake_ollama import FakeOllamaThread, ModelScript

ROOT = Path(__file__).resolve().parent.parent
NOT_SOURCE = shutil.ignore_patterns(".*", "__pycache__", "*.egg-info", "build", "dist", "*.db",
                                    "*.db-*", "venv", "*.gguf")
"""What a fresh clone does not have: VCS data, caches, build output, logs."""
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Z]"
                  r"|\x1b[=>78DEHMNOc]")
"""Terminal control sequences: CSI, OSC, charset selection, single-character escapes."""
BUILD_TIME = 600.0
"""The wheel is built in pip's isolated build environment, which may fetch setuptools."""

pytestmark = pytest.mark.slow


@dataclass
class Venv:
    path: Path
    python: Path
    site_packages: Path

    @property
    def package(self) -> Path:
        return self.site_packages / "cockpit"

    def bin(self, name: str) -> Path:
        return self.path / "bin" / name


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that changes how Python imports (PYTHONPATH,
    PYTHONDONTWRITEBYTECODE, ...) or how the TUI draws (NO_COLOR, TEXTUAL_*)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "TEXTUAL", "VIRTUAL_ENV")) and k != "NO_COLOR"}
    return {**env, **extra}


def run(argv: list[str | Path], *, cwd: Path, timeout: float = PATIENCE,
        ) -> subprocess.CompletedProcess[str]:
    """Run a command to success in the clean environment; its output is in the failure."""
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=cwd,
                          env=clean_env(), timeout=timeout)
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """The project built into a wheel from a copy of the checkout and installed into a new venv
    whose only route to the outer environment is a list of plain site-packages paths."""
    work = tmp_path_factory.mktemp("install")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", work / "wheels",
         source], cwd=work, timeout=BUILD_TIME)
    [wheel] = (work / "wheels").glob("cockpit-*.whl")

    path = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", path], cwd=work)
    python = path / "bin" / "python"
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                  cwd=work).stdout.strip()
    outer = [*site.getsitepackages(),
             *([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])]
    (Path(purelib) / "outer_environment.pth").write_text(
        "".join(f"{p}\n" for p in outer if Path(p).is_dir() and Path(p) != ROOT))
    # --no-compile: any bytecode under the installed package was written by a process that
    # imported that copy. --ignore-installed: the outer (editable) cockpit is not ours to touch.
    run([python, "-m", "pip", "install", "--no-deps", "--ignore-installed", "--no-compile",
         "--no-index", wheel], cwd=work, timeout=BUILD_TIME)
    return Venv(path, python, Path(purelib))


def test_the_venv_imports_the_installed_copy_with_its_data(venv: Venv, tmp_path: Path) -> None:
    probe = """if True:
        import importlib.metadata, json, sys
        import cockpit
        from cockpit.ui.themes import bundled_theme_dir
        dist = importlib.metadata.distribution("cockpit")
        print(json.dumps({
            "file": cockpit.__file__, "themes": str(bundled_theme_dir()),
            "dist": str(dist.locate_file("")), "direct_url": dist.read_text("direct_url.json"),
            "finders": [repr(f) for f in sys.meta_path], "path": sys.path}))
    """
    found = json.loads(run([venv.python, "-c", probe], cwd=tmp_path).stdout)
    assert Path(found["file"]) == venv.package / "__init__.py"
    assert not Path(found["file"]).is_relative_to(ROOT)
    assert Path(found["dist"]) == venv.site_packages
    assert "archive_info" in json.loads(found["direct_url"])  # a wheel, not an editable dir
    assert not any("__editable__" in finder for finder in found["finders"])
    assert str(ROOT) not in found["path"]
    themes = Path(found["themes"])
    assert themes == venv.package / "themes"
    assert {p.name for p in themes.glob("*.toml")} >= {
        "cockpit-dark.toml", "cockpit-light.toml", "cockpit-high-contrast.toml"}
    assert (venv.package / "examples" / "demo.toml").is_file()
    assert (venv.package / "ui" / "app.tcss").is_file()


class Terminal:
    """A process on a real pseudo-terminal; a thread collects everything it writes."""

    def __init__(self, argv: list[str | Path], *, cwd: Path, env: dict[str, str],
                 size: tuple[int, int] = (120, 40)) -> None:
        master, child = pty.openpty()
        fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        self.process = subprocess.Popen([str(a) for a in argv], stdin=child, stdout=child,
                                        stderr=child, cwd=cwd, env=env, start_new_session=True)
        os.close(child)  # only the child holds it now: its exit ends our reads
        self.master = master
        self.output = bytearray()
        self.closed = False
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, name="pty reader", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the child closed the terminal
                data = b""
            with self.changed:
                if not data:
                    self.closed = True
                    self.changed.notify_all()
                    return
                self.output += data
                self.changed.notify_all()

    def raw(self) -> str:
        return self.output.decode("utf-8", "replace")

    def text(self) -> str:
        """What was written, without control sequences: each drawn run of text is intact."""
        return ANSI.sub("", self.raw())

    def wait_for(self, predicate: Callable[[Terminal], bool], what: str) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: predicate(self) or self.closed, PATIENCE):
                raise AssertionError(f"timed out after {PATIENCE}s waiting for {what}; "
                                     f"the terminal shows:\n{self.text()[-3000:]}")
            if not predicate(self):
                raise AssertionError(f"the process ended before {what}:\n{self.text()[-3000:]}")

    def press(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:  # a failed test: do not leave the TUI running
            self.process.kill()
        self.process.wait(PATIENCE)
        self.reader.join(PATIENCE)
        os.close(self.master)


def sgr_colour(hex_colour: str, ground: int) -> str:
    """The truecolor SGR parameters for a colour: 38 foreground, 48 background."""
    r, g, b = (int(hex_colour.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4))
    return f"{ground};2;{r};{g};{b}"


def test_the_installed_tui_opens_with_its_theme_and_logs_the_session(
        venv: Venv, tmp_path: Path) -> None:
    crew = tmp_path / "crew.toml"
    crew.write_text('name = "installed-crew"\nmodel = "m1"\n\n'
                    '[[agents]]\nname = "installed-agent"\ntask = "Say hello."\n')
    db = tmp_path / "log.db"
    theme = tomllib.loads((venv.package / "themes" / "cockpit-dark.toml").read_text())
    accent, panel = sgr_colour(theme["accent"], 38), sgr_colour(theme["panel"], 48)
    app_bytecode = venv.package / "ui" / "__pycache__" / f"app.{sys.implementation.cache_tag}.pyc"
    assert not app_bytecode.exists()

    script = ModelScript(tokens=["Hello", " from", " the", " wheel."])
    with FakeOllamaThread({"m1": script}) as fake:
        env = clean_env(TERM="xterm-256color", COLORTERM="truecolor", OLLAMA_HOST=fake.url,
                        XDG_CONFIG_HOME=str(tmp_path / "config"))  # no user themes
        with Terminal([venv.bin("cockpit"), "run", crew, "--db", db], cwd=tmp_path,
                      env=env) as tui:
            tui.wait_for(lambda t: all(s in t.text() for s in (
                "cockpit · installed-crew", "installed-agent", "Hello from the wheel.",
                "1 finished")), "the crew, the agent and its finished reply on screen")
            # The default theme is the bundled cockpit-dark: its accent (the footer's keys) and
            # its panel colour (the header) were drawn; Textual's own themes use neither.
            tui.wait_for(lambda t: accent in t.raw() and panel in t.raw(),
                         "cockpit-dark's colours")
            tui.press("q")  # every agent finished: quits without asking
            assert tui.process.wait(PATIENCE) == 0
    shown = tui.text()
    for problem in ("Theme not loaded", "no theme named", "Traceback", "still running"):
        assert problem not in shown
    assert app_bytecode.exists(), "the TUI did not import the installed copy of cockpit"

    export = run([venv.bin("cockpit"), "export", "last", "--db", db], cwd=tmp_path)
    records = [json.loads(line) for line in export.stdout.splitlines()]
    types = [(r["agent"], r["type"]) for r in records]
    assert types[0] == (None, "session_started") and types[-1] == (None, "session_finished")
    assert records[-1]["data"]["outcome"] == "finished"
    assert ("installed-agent", "agent_finished") in types
    assert "".join(r["data"]["text"] for r in records if r["type"] == "token") == \
        "Hello from the wheel."
