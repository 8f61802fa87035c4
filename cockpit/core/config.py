"""Crew file (TOML) -> validated pydantic models.

Everything that can be wrong with a crew is found here, before a single request is sent: a crew
started at 11 PM must not fail at 3 AM because of a typo. Every error names the file, a line and
the field, so the user can go straight to it.
"""

from __future__ import annotations

import difflib
import functools
import math
import os
import re
import stat
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from cockpit.core.keys import BINDING_IDS
from cockpit.core.notify import NotifyConfig
from cockpit.core.spec import (
    DEFAULT_CHECK_RETRIES,
    DEFAULT_MAX_TURNS,
    DEFAULT_MAX_WAKEUPS,
    AgentSpec,
    Checks,
    Format,
    McpServer,
    check_schema,
    mcp_server_of,
    valid_tool_ref,
)

DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_HOST_WAIT = 600.0
"""Ten minutes: an Ollama restart or update takes seconds, and a model reload after a GPU
out-of-memory restart is bounded by Ollama's own OLLAMA_LOAD_TIMEOUT of five minutes; twice
that leaves a margin without letting a crew sit all night on a machine that is gone."""
EMBEDDED_HOST = "embedded"
TEMPLATE_RE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
AGENT_NAME_RE = re.compile(r"^[a-z0-9_-]+$")
MAX_CREW_BYTES = 1 << 20
"""A crew file is a page or two of TOML; one bigger than 1 MiB is the wrong file."""
MAX_DEPTH = 32
"""Levels of nested arrays and tables a crew file may use. A JSON schema in `format` needs a
handful; far deeper nesting only exhausts the parsers' recursion."""

# Ollama's Options and Runner fields (api/types.go). Ollama ignores unknown keys silently, so a
# misspelt option would otherwise have no effect at all; we reject it instead.
OLLAMA_OPTIONS: dict[str, type | tuple[type, ...]] = {
    **dict.fromkeys(
        ["num_keep", "seed", "num_predict", "top_k", "repeat_last_n", "num_ctx", "num_batch",
         "num_gpu", "main_gpu", "num_thread", "draft_num_predict"],
        int,
    ),
    **dict.fromkeys(
        ["top_p", "min_p", "typical_p", "temperature", "repeat_penalty", "presence_penalty",
         "frequency_penalty"],
        (int, float),
    ),
    "use_mmap": bool,
    "stop": list,
}


_NORMAL_HOST = re.compile(r"https?://[a-z0-9.-]+:[0-9]{1,5}")
"""What `_parse_host` returns for a plain host (and returns unchanged when given): a viewer
reading a logged crew then skips importing the ollama client, 0.3 s of its start-up."""


def parse_host(host: str | None) -> str:
    """Normalise a host the way ollama-python's `_parse_host` does.

    `None`/"" -> http://127.0.0.1:11434, "1.2.3.4" -> http://1.2.3.4:11434, ":5" -> port 5 on
    127.0.0.1, "http://x" -> port 80, "https://x" -> port 443. A path is kept.
    """
    if host == EMBEDDED_HOST or (host is not None and _NORMAL_HOST.fullmatch(host)):
        return host  # already in the client's form (a logged crew): no need to import it
    from ollama._client import _parse_host  # the client's own rules, so we agree with it

    return str(_parse_host(host))


def check_host(host: str) -> str:
    """`host` normalised (`parse_host`), or ValueError saying why Ollama could not be reached
    there: it must be an http(s) URL, or "embedded" for the bundled engine."""
    if host == EMBEDDED_HOST or (_NORMAL_HOST.fullmatch(host)
                                 and int(host.rpartition(":")[2]) <= 65535):
        return host
    text = host.strip()
    if not text:
        raise ValueError('is empty: give an Ollama URL (http://HOST:PORT) or "embedded"')
    if "://" not in text and (text.lower() == EMBEDDED_HOST or difflib.get_close_matches(
            text.lower(), [EMBEDDED_HOST], n=1, cutoff=0.8)):
        raise ValueError(f'{host!r}: did you mean "embedded" (the bundled engine)? For a '
                         f'machine of that name, write "http://{text}:11434"')
    scheme, _, rest = text.partition("://") if "://" in text else ("http", "", text)
    if any(c.isspace() or not c.isprintable() for c in text):
        raise ValueError(f"{host!r} has spaces or control characters: a host is a URL, like "
                         "http://gpu-box:11434")
    if scheme.lower() not in ("http", "https"):
        raise ValueError(f'{host!r} is not an http:// or https:// URL (or "embedded")')
    if not rest or rest[0] in "/?#":
        raise ValueError(f"{host!r} names no host")
    if "://" in text:
        text = f"{scheme.lower()}://{rest}"
    try:
        normal = parse_host(text)
        url = urlsplit(normal)
        url.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as error:
        raise ValueError(f"{host!r} is not a valid URL: {error}") from None
    if not url.hostname:
        raise ValueError(f"{host!r} names no host")
    return normal


def _host_pool(hosts: list[str]) -> list[str]:
    pool = [check_host(host) for host in hosts]
    if len(set(pool)) != len(pool):
        raise ValueError("the same host is listed twice")
    if EMBEDDED_HOST in pool and len(pool) > 1:
        raise ValueError('"embedded" cannot be part of a pool')
    return pool


def default_host() -> str:
    """OLLAMA_HOST if set, else Ollama's default address."""
    env = os.environ.get("OLLAMA_HOST", "").strip()
    try:
        return parse_host(env) if env else DEFAULT_HOST
    except ValueError:  # CrewConfig rejects it, naming OLLAMA_HOST
        return env


def _not_empty(value: str | None, what: str) -> str | None:
    if value is not None and not value.strip():
        raise ValueError(f"is empty: {what}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentConfig(_Strict):
    """One `[[agents]]` table."""

    name: str
    """Unique within the crew; lowercase letters, digits, `_` and `-`."""
    model: str | None = None
    """Overrides the crew's model."""
    host: str | None = None
    """Overrides the crew's host."""
    hosts: list[str] | None = Field(default=None, min_length=1)
    """A pool of hosts for this agent; overrides the crew's host or hosts."""
    host_wait: float | None = Field(default=None, ge=0)
    """Overrides the crew's host_wait."""
    system: str = ""
    """System prompt; may use `{{key}}` to read the board."""
    task: str
    """The user message that starts the agent; may use `{{key}}`."""
    after: list[str] = Field(default_factory=list)
    """Agents that must finish before this one starts."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Ollama options (temperature, seed, num_predict, ...)."""
    retries: int | None = Field(default=None, ge=0)
    """Overrides the crew's retries."""
    stall_timeout: float | None = Field(default=None, gt=0)
    """Overrides the crew's stall_timeout."""
    tools: list[str] = Field(default_factory=list)
    """Tools the agent may call: "board", "messages", "mcp:NAME" (all of a server's tools) or
    "NAME.TOOL" (one of them)."""
    approve: list[str] | None = None
    """Overrides the crew's approve patterns."""
    approval_timeout: float | None = Field(default=None, gt=0)
    """Overrides the crew's approval_timeout."""
    max_turns: int | None = Field(default=None, ge=1)
    """Overrides the crew's max_turns."""
    max_wakeups: int | None = Field(default=None, ge=0)
    """Overrides the crew's max_wakeups."""
    format: Format | None = None
    """Ollama's structured output: "json", or a JSON schema the answer must match."""
    checks: Checks | None = None
    """What the final answer must satisfy (see `Checks`)."""
    check_retries: int | None = Field(default=None, ge=0)
    """Overrides the crew's check_retries."""

    @field_validator("tools")
    @classmethod
    def _tool_refs(cls, value: list[str]) -> list[str]:
        for ref in value:
            if not valid_tool_ref(ref):
                raise ValueError(f"unknown tool {ref!r}: use \"board\", \"messages\", "
                                 "\"mcp:NAME\" or \"NAME.TOOL\"")
        if len(set(value)) != len(value):
            raise ValueError("a tool is listed twice")
        return value

    @field_validator("format")
    @classmethod
    def _format(cls, value: Format | None) -> Format | None:
        if isinstance(value, dict):
            check_schema(value)
        return value

    @field_validator("name")
    @classmethod
    def _name_charset(cls, value: str) -> str:
        if not AGENT_NAME_RE.match(value):
            raise ValueError(f"agent name {value!r} may only use a-z, 0-9, '_' and '-'")
        return value

    @field_validator("host")
    @classmethod
    def _normalise_host(cls, value: str | None) -> str | None:
        return None if value is None else check_host(value)

    @field_validator("hosts")
    @classmethod
    def _normalise_hosts(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _host_pool(value)

    @field_validator("model")
    @classmethod
    def _model_named(cls, value: str | None) -> str | None:
        return _not_empty(value, "name a model (`ollama list` shows them), or leave `model` "
                                 "out to use the crew's")

    @field_validator("task")
    @classmethod
    def _task_given(cls, value: str) -> str:
        _not_empty(value, "say what the agent is to do; the task is its first message")
        return value

    @field_validator("options")
    @classmethod
    def _known_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        for key, value in options.items():
            expected = OLLAMA_OPTIONS.get(key)
            if expected is None:
                close = difflib.get_close_matches(key, list(OLLAMA_OPTIONS), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"unknown Ollama option {key!r}{hint}")
            if key == "stop":
                _check_stop(value)
            elif isinstance(value, bool) and expected is not bool or \
                    not isinstance(value, expected):
                names = expected.__name__ if isinstance(expected, type) else "number"
                raise ValueError(f"option {key!r} must be {names}, not {value!r}")
            elif isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"option {key!r} must be a finite number, not {value!r}")
        return options


def _check_stop(value: Any) -> None:
    """Ollama's `stop` is a list of strings; an empty one matches at once and ends every
    reply before its first word."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f'option \'stop\' must be a list of strings, like stop = ["\\n\\n", '
                         f'"User:"], not {value!r}')
    if "" in value:
        raise ValueError("option 'stop' has an empty string, which would end every reply "
                         "before it starts")


class CrewConfig(_Strict):
    """A whole crew file."""

    name: str
    """Shown in the session list and the title bar."""
    host: str = Field(default_factory=default_host)
    """Ollama address; default OLLAMA_HOST, else http://127.0.0.1:11434. "embedded" for the
    bundled engine."""
    hosts: list[str] | None = Field(default=None, min_length=1)
    """A pool of Ollama hosts: each request goes to one that has the model, preferring one
    where it is loaded and the crew has the fewest requests in flight. Replaces `host`."""
    host_wait: float = Field(default=DEFAULT_HOST_WAIT, ge=0)
    """Seconds an agent waits for an unreachable host (refused, reset, DNS, connect timeout)
    before it fails. These attempts do not count against `retries`."""
    model: str | None = None
    """Default model for agents that name none."""
    retries: int = Field(default=3, ge=0)
    """Retries after a connection error, a 5xx, a 503 busy or a stall."""
    stall_timeout: float = Field(default=60.0, gt=0)
    """Seconds without a new chunk before the reply is cut off and retried."""
    retry_backoff: float = Field(default=1.0, ge=0)
    """First retry delay in seconds; doubles on each further retry, capped at 30 s."""
    state: dict[str, Any] = Field(default_factory=dict)
    """The initial shared board. Nested tables become dotted keys."""
    agents: list[AgentConfig] = Field(min_length=1)
    keymap: dict[str, str] = Field(default_factory=dict)
    """Binding id -> keys, for the TUI."""
    mcp: list[McpServer] = Field(default_factory=list)
    """`[[mcp]]` tool servers, started with the crew."""
    approve: list[str] = Field(default_factory=list)
    """Glob patterns of tool names (`board_write`, `files.*`) whose calls wait for a decision."""
    approval_timeout: float | None = Field(default=None, gt=0)
    """Seconds a call waits for a decision before it is denied with a reason the model sees;
    unset, it waits until someone decides."""
    max_turns: int = Field(default=DEFAULT_MAX_TURNS, ge=1)
    """Tool-calling turns in a row before the agent is stopped with a reason."""
    max_wakeups: int = Field(default=DEFAULT_MAX_WAKEUPS, ge=0)
    """Times a message may wake a finished agent."""
    check_retries: int = Field(default=DEFAULT_CHECK_RETRIES, ge=0)
    """Correction turns an answer that fails its checks is given."""
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    """`[notify]`: which events ring the bell and send a desktop notification, and how."""

    @model_validator(mode="before")
    @classmethod
    def _environment_host(cls, data: Any) -> Any:
        """OLLAMA_HOST is the default host: a bad one is named, not met at 3 AM."""
        env = os.environ.get("OLLAMA_HOST", "").strip()
        if env and isinstance(data, dict) and "host" not in data and "hosts" not in data:
            try:
                check_host(env)
            except ValueError as error:
                raise ValueError(f"OLLAMA_HOST (the default host): {error}") from None
        return data

    @field_validator("host")
    @classmethod
    def _normalise_host(cls, value: str) -> str:
        return check_host(value)

    @field_validator("hosts")
    @classmethod
    def _normalise_hosts(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _host_pool(value)

    @field_validator("model")
    @classmethod
    def _model_named(cls, value: str | None) -> str | None:
        return _not_empty(value, "name a model (`ollama list` shows them)")

    @field_validator("keymap", mode="before")
    @classmethod
    def _quoted_ids(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for keys in value.values():
                if isinstance(keys, dict):  # cockpit.pause = "x" is a table `cockpit`
                    raise ValueError('binding ids have dots: quote them, as in '
                                     '"cockpit.pause" = "space"')
        return value

    def agent(self, name: str) -> AgentConfig:
        # An index by name, built once per `agents` list. It is kept in __dict__, which
        # pydantic neither compares, dumps nor validates (as for a cached_property); a copy
        # with other agents (model_copy(update=...)) sees that it is not for its list.
        index: tuple[list[AgentConfig], dict[str, AgentConfig]] | None = \
            self.__dict__.get("_agents_by_name")
        if index is None or index[0] is not self.agents:
            index = (self.agents, {})
            for agent in self.agents:
                index[1].setdefault(agent.name, agent)
            self.__dict__["_agents_by_name"] = index
        return index[1][name]

    def model_for(self, agent: AgentConfig) -> str:
        model = agent.model or self.model
        assert model is not None, "validated by load_crew"
        return model

    def hosts_for(self, agent: AgentConfig) -> list[str]:
        """The agent's pool, in the order written: its own `hosts` or `host`, else the crew's."""
        if agent.hosts:
            return list(agent.hosts)
        if agent.host:
            return [agent.host]
        return list(self.hosts) if self.hosts else [self.host]

    def host_for(self, agent: AgentConfig) -> str:
        """The agent's first host (its only one, unless it has a pool)."""
        return self.hosts_for(agent)[0]

    def all_hosts(self) -> set[str]:
        """Every host some agent talks to ("embedded" among them if any uses the engine)."""
        return {host for agent in self.agents for host in self.hosts_for(agent)}

    def host_wait_for(self, agent: AgentConfig) -> float:
        return self.host_wait if agent.host_wait is None else agent.host_wait

    def retries_for(self, agent: AgentConfig) -> int:
        return self.retries if agent.retries is None else agent.retries

    def stall_timeout_for(self, agent: AgentConfig) -> float:
        return self.stall_timeout if agent.stall_timeout is None else agent.stall_timeout

    def spec(self, name: str) -> AgentSpec:
        """The agent `name` resolved: its values, else the crew's."""
        agent = self.agent(name)
        return AgentSpec(
            name=name, model=self.model_for(agent), hosts=self.hosts_for(agent),
            retries=self.retries_for(agent), stall_timeout=self.stall_timeout_for(agent),
            host_wait=self.host_wait_for(agent), backoff=self.retry_backoff,
            options=dict(agent.options), tools=list(agent.tools),
            approve=list(self.approve if agent.approve is None else agent.approve),
            approval_timeout=(self.approval_timeout if agent.approval_timeout is None
                              else agent.approval_timeout),
            max_turns=self.max_turns if agent.max_turns is None else agent.max_turns,
            max_wakeups=self.max_wakeups if agent.max_wakeups is None else agent.max_wakeups,
            format=agent.format, checks=agent.checks,
            check_retries=(self.check_retries if agent.check_retries is None
                           else agent.check_retries),
        )

    def mcp_server(self, name: str) -> McpServer:
        for server in self.mcp:
            if server.name == name:
                return server
        raise KeyError(name)

    def ancestors(self, name: str) -> set[str]:
        """Every agent that has finished before `name` starts (transitively); linear in the
        size of the crew."""
        seen: set[str] = set()
        todo = list(self.agent(name).after)
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(self.agent(current).after)
        return seen


class ConfigError(Exception):
    """A crew file problem. `str()` is the full user-facing message, one problem per line."""

    def __init__(self, path: Path | str, problems: list[tuple[int | None, str, str]]) -> None:
        self.path = Path(path)
        self.problems = problems
        lines = []
        for line, field, message in problems:
            where = f"{self.path}:{line}" if line else str(self.path)
            lines.append(f"{where}: {field}: {message}" if field else f"{where}: {message}")
        super().__init__("\n".join(lines))


def template_keys(text: str) -> list[str]:
    """The `{{key}}` names used in a prompt, in order."""
    return [match.group(1) for match in TEMPLATE_RE.finditer(text)]


def render_template(text: str, board: Mapping[str, Any]) -> str:
    """Fill `{{key}}` from the board. A missing key raises KeyError: never an empty string."""

    def value_of(match: re.Match[str]) -> str:
        value = board_lookup(board, match.group(1))
        if isinstance(value, str):
            return value
        import json

        return json.dumps(value, ensure_ascii=False)

    return TEMPLATE_RE.sub(value_of, text)


def board_lookup(board: Mapping[str, Any], key: str) -> Any:
    """The board's value at `key`, or inside a structured value: `outputs.plan.steps` reads
    `steps` of the JSON object `outputs.plan` (list items by index). KeyError if absent."""
    if key in board:
        return board[key]
    head, _, rest = key.rpartition(".")
    while head:
        if head in board:
            value = board[head]
            for part in rest.split("."):
                if isinstance(value, dict) and part in value:
                    value = value[part]
                elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                    value = value[int(part)]
                else:
                    raise KeyError(key)
            return value
        head, _, tail = head.rpartition(".")
        rest = f"{tail}.{rest}"
    raise KeyError(key)


def _scalars(value: Any) -> Iterable[Any]:
    """The numbers, strings, ... inside a board value's lists and tables."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
        else:
            yield item


def flatten_state(state: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`[state.release] version = "2"` becomes the board key `release.version`."""
    flat: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, dict):
            flat.update(flatten_state(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class _LineFinder:
    """Finds the line of a field in TOML source; tomllib does not keep positions.

    The source is cut into sections at each `[table]` / `[[array]]` header. A field is looked up
    as `key =` inside the section (and its sub-tables) that the pydantic location points to.
    """

    HEADER_RE = re.compile(r"^\s*\[(\[?)\s*([^\]]+?)\s*\]")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        # (first line index, table name, is array-of-tables); the top level has name "".
        self.sections: list[tuple[int, str, bool]] = [(0, "", False)]
        for index, line in enumerate(self.lines):
            match = self.HEADER_RE.match(line)
            if match:
                name = match.group(2).replace('"', "").replace("'", "").replace(" ", "")
                self.sections.append((index, name, bool(match.group(1))))
        self.arrays: dict[str, list[int]] = {}  # `[[name]]` -> its sections, in order
        for position, (_, name, array) in enumerate(self.sections):
            if array:
                self.arrays.setdefault(name, []).append(position)

    def _region(self, position: int) -> tuple[int, int, str]:
        """Lines of section `position` plus its sub-tables: (start, end, name)."""
        start, name, _ = self.sections[position]
        end = len(self.lines)
        for index, other, _ in self.sections[position + 1:]:
            if not name or not other.startswith(f"{name}."):
                end = index
                break
        return start, end, name

    def _key(self, key: str, start: int, end: int) -> int | None:
        pattern = re.compile(rf"(^|[{{,])\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for index in range(start, end):
            if pattern.search(self.lines[index]):
                return index + 1
        return None

    def find(self, loc: Iterable[int | str]) -> int | None:
        parts = [str(p) if not isinstance(p, int) else p for p in loc]
        if not parts:
            return None
        if len(parts) > 1 and isinstance(parts[0], str) and isinstance(parts[1], int):
            arrays = self.arrays.get(parts[0], [])
            if parts[1] >= len(arrays):
                return self._key(parts[0], 0, len(self.lines))
            start, end, _ = self._region(arrays[parts[1]])
            keys = [p for p in parts[2:] if isinstance(p, str)]
        else:
            start, end, _ = self._region(0)
            end = self.sections[1][0] if len(self.sections) > 1 else len(self.lines)
            keys = [p for p in parts if isinstance(p, str)]
            if keys and self._key(keys[0], start, end) is None:
                for size in range(len(keys), 0, -1):  # the deepest table: [state.release]
                    table = ".".join(keys[:size])
                    tables = [i for i, (_, name, _) in enumerate(self.sections) if name == table]
                    if tables:
                        start, end, _ = self._region(tables[0])
                        keys = keys[size:]
                        break
        line = start + 1 if start else None
        for key in keys:
            found = self._key(key, start, end)
            if found is None:
                break
            line, start = found, found - 1
        return line


def _field_name(loc: tuple[int | str, ...], data: Mapping[str, Any]) -> str:
    """`('agents', 1, 'after')` -> `agents[1] (writer).after`."""
    parts: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(part, int):
            label = f"[{part}]"
            if i == 1 and loc[0] == "agents":
                agents = data.get("agents")
                if isinstance(agents, list) and part < len(agents):
                    name = agents[part].get("name") if isinstance(agents[part], dict) else None
                    if name:
                        label += f" ({name})"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + part)
    return "".join(parts)


def load_crew(path: Path | str) -> CrewConfig:
    """Read, parse and validate a crew file. Raises ConfigError naming file, line and field."""
    return parse_crew(read_crew_text(path), path)


def read_crew_text(path: Path | str) -> str:
    """A crew file's text, or ConfigError; apart from `load_crew` for the reload, which keeps
    the text to find the lines of problems only the updated crew has."""
    path = Path(path)
    try:
        _regular_file(path, os.stat(path))  # before opening: opening a device can act on it
        # O_NONBLOCK: were it swapped for a FIFO since, the open returns rather than waits
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as file:
            _regular_file(path, os.fstat(file.fileno()))
            data = file.read(MAX_CREW_BYTES + 1)
        if len(data) > MAX_CREW_BYTES:
            raise ConfigError(path, [(None, "", _too_big())])
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(path, [(None, "", "no such file")]) from None
    except UnicodeDecodeError as error:
        raise ConfigError(path, [(None, "", f"cannot read: not UTF-8 text ({error})")]) from None
    except OSError as error:
        raise ConfigError(path, [(None, "", f"cannot read: {error}")]) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # as text mode reads it


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def _regular_file(path: Path, info: os.stat_result) -> None:
    """ConfigError unless `info` is a regular file of a sane size: reading a FIFO would wait
    for a writer forever, and /dev/zero never ends."""
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a file")
        raise ConfigError(path, [(None, "", f"is {kind}: a crew file must be a regular "
                                            "file")])
    if info.st_size > MAX_CREW_BYTES:
        raise ConfigError(path, [(None, "", _too_big(info.st_size))])


_TOO_DEEP = (f"arrays or tables nest too deeply (at most {MAX_DEPTH} levels inside one "
             "another): a crew file needs a few")


def _depth(data: Any) -> int:
    """How many arrays and tables deep `data` nests, without recursion."""
    deepest, todo = 0, [(data, 0)]
    while todo:
        value, depth = todo.pop()
        deepest = max(deepest, depth)
        if isinstance(value, dict):
            todo.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            todo.extend((item, depth + 1) for item in value)
    return deepest


def _too_big(size: int | None = None) -> str:
    what = f"{size / (1 << 20):.1f} MiB" if size else "larger than that"
    return f"is {what}: a crew file may be at most {MAX_CREW_BYTES >> 20} MiB of TOML"


def parse_crew(text: str, path: Path | str = "<crew>") -> CrewConfig:
    """Validate crew TOML text; `path` is only used in messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = re.search(r"\(at line (\d+), column (\d+)\)", str(error))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(error))
        line = int(match.group(1)) if match else None
        raise ConfigError(path, [(line, "", f"invalid TOML: {message}")]) from None
    except RecursionError:  # tomllib recurses once per level of nested arrays/inline tables
        raise ConfigError(path, [(None, "", _TOO_DEEP)]) from None
    if _depth(data) > MAX_DEPTH:
        raise ConfigError(path, [(None, "", _TOO_DEEP)])
    finder = _LineFinder(text)
    try:
        crew = CrewConfig.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            loc = tuple(item["loc"])
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = f"unknown key {loc[-1]!r} (check the spelling)"
            elif item["type"] == "missing":
                message = "is required"
            problems.append((finder.find(loc), _field_name(loc, data), message))
        raise ConfigError(path, problems) from None
    problems = _crew_problems(crew, finder)
    if problems:
        raise ConfigError(path, problems)
    return crew.model_copy(update={"state": flatten_state(crew.state)})


def crew_problems(crew: CrewConfig, text: str = "",
                  positions: Sequence[int | None] | None = None,
                  ) -> list[tuple[int | None, str, str]]:
    """`parse_crew`'s cross-field checks on a crew built in code (the crew as a reload updates
    it). `positions[i]` is where agent i is in the file `text` (None: not in it), so problems
    name the file's line and index."""
    return _crew_problems(crew, _LineFinder(text), positions)


def _crew_problems(crew: CrewConfig, finder: _LineFinder,
                   positions: Sequence[int | None] | None = None,
                   ) -> list[tuple[int | None, str, str]]:
    """Cross-field checks pydantic cannot express: names, dependencies, templates, models,
    keymap ids. Linear in the size of the crew: a 2000-agent chain checks in moments."""
    problems: list[tuple[int | None, str, str]] = []
    first: dict[str, int] = {}  # name -> index of the first agent of that name
    for index, agent in enumerate(crew.agents):
        first.setdefault(agent.name, index)

    def add(index: int, field: str, message: str) -> None:
        at = index if positions is None else positions[index]
        line = None
        if at is not None:
            line = finder.find(("agents", at, field) if field else ("agents", at))
        label = (f"agents[{at}]" if at is not None else "agents") + \
            f" ({crew.agents[index].name})" + (f".{field}" if field else "")
        problems.append((line, label, message))

    servers: dict[str, int] = {}
    for index, server in enumerate(crew.mcp):
        if servers.setdefault(server.name, index) != index:
            problems.append((finder.find(("mcp", index, "name")), f"mcp[{index}].name",
                             f"duplicate server name {server.name!r}"))
    problems += _keymap_problems(crew.keymap, finder)
    for key, value in flatten_state(crew.state).items():
        if any(isinstance(x, float) and not math.isfinite(x) for x in _scalars(value)):
            problems.append((finder.find(("state", *key.split("."))), f"state.{key}",
                             f"{value!r}: the board is JSON, which has no nan or inf"))
    if crew.hosts and "host" in crew.model_fields_set:
        problems.append((finder.find(("hosts",)), "hosts",
                         "set `host` or `hosts`, not both (a pool replaces the single host)"))
    for index, agent in enumerate(crew.agents):
        if agent.host and agent.hosts:
            add(index, "hosts", "set `host` or `hosts`, not both (a pool replaces the single host)")
        if first[agent.name] != index:
            add(index, "name", f"duplicate agent name {agent.name!r}")
        if agent.model is None and crew.model is None:
            add(index, "model", "no model: set `model` here or at the top of the crew file")
        for ref in agent.tools:
            needed = mcp_server_of(ref)
            if needed is not None and needed not in servers:
                add(index, "tools", f"{ref!r}: no [[mcp]] server named {needed!r}")
        for dependency in agent.after:
            if dependency not in first:
                add(index, "after", f"no agent named {dependency!r}")
            elif dependency == agent.name:
                add(index, "after", "an agent cannot wait for itself")
    if problems:
        return problems

    order, cycle = _dependency_order(crew)
    if cycle:
        add(first[cycle[0]], "after", "dependency cycle: " + " -> ".join(cycle))
        return problems

    # Each agent's ancestors as a bitset (bit i: agent i), in one pass in dependency order.
    before: dict[str, int] = {}
    for name in order:
        mask = 0
        for dependency in crew.agent(name).after:
            mask |= before[dependency] | 1 << first[dependency]
        before[name] = mask

    def provided(agent: str, key: str) -> bool:
        other = key.removeprefix("outputs.")
        return other != key and other in first and bool(before[agent] >> first[other] & 1)

    board = set(flatten_state(crew.state))
    for index, agent in enumerate(crew.agents):
        earlier = functools.partial(provided, agent.name)
        for field in ("system", "task"):
            for key in template_keys(getattr(agent, field)):
                if key in board or earlier(key) or _structured_output(crew, key, earlier):
                    continue
                if key.startswith("outputs.") and key.removeprefix("outputs.") in first:
                    other = key.removeprefix("outputs.")
                    message = (f"{{{{{key}}}}} is only on the board after {other!r} finishes; "
                               f"add {other!r} to `after`")
                else:
                    message = f"{{{{{key}}}}}: no such key in [state] or an earlier agent's outputs"
                add(index, field, message)
    return problems


def _keymap_problems(keymap: Mapping[str, str],
                     finder: _LineFinder) -> list[tuple[int | None, str, str]]:
    """`[keymap]` ids the TUI does not have (Textual would ignore them silently), and
    entries that give no key."""
    problems: list[tuple[int | None, str, str]] = []
    for binding, keys in keymap.items():
        label = f"keymap.{binding}" if re.fullmatch(r"[\w.-]+", binding) else \
            f"keymap[{binding!r}]"
        if binding not in BINDING_IDS:
            close = difflib.get_close_matches(binding, sorted(BINDING_IDS), n=1, cutoff=0.7)
            hint = (f"did you mean {close[0]!r}?" if close
                    else "`?` in the cockpit lists each key's id")
            message = f"unknown binding id {binding!r}: {hint}"
        elif not keys.strip():
            message = 'no key: give one or more, comma-separated, as in "space,p"'
        else:
            continue
        problems.append((finder.find(("keymap", binding)), label, message))
    return problems


def _structured_output(crew: CrewConfig, key: str, provided: Callable[[str], bool]) -> bool:
    """`outputs.plan.steps`, where `plan` is an earlier agent with a `format`: its output is
    JSON, and the path is looked up when the template is filled."""
    parts = key.split(".")
    if len(parts) < 3 or parts[0] != "outputs" or not provided(f"outputs.{parts[1]}"):
        return False
    return crew.agent(parts[1]).format is not None


def _dependency_order(crew: CrewConfig) -> tuple[list[str], list[str] | None]:
    """The agents with each one after its dependencies, and a dependency cycle as a path that
    returns to its start (or None). Depth-first without recursion: a chain of thousands of
    agents is deeper than Python's recursion limit."""
    graph: dict[str, list[str]] = {}
    for agent in crew.agents:
        graph.setdefault(agent.name, agent.after)
    state: dict[str, int] = {}  # 1 = on the path, 2 = done
    order: list[str] = []
    for root in graph:
        if root in state:
            continue
        state[root] = 1
        path, pending = [root], [iter(graph[root])]
        while pending:
            for dependency in pending[-1]:
                if dependency not in graph:
                    continue  # reported on its own
                if state.get(dependency) == 1:
                    return order, path[path.index(dependency):] + [dependency]
                if dependency not in state:
                    state[dependency] = 1
                    path.append(dependency)
                    pending.append(iter(graph[dependency]))
                    break
            else:
                done = path.pop()
                pending.pop()
                state[done] = 2
                order.append(done)
    return order, None
