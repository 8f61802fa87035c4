"""What an agent may do, and one agent's settings resolved from its crew.

The crew file's keys for agents that act (`tools`, `[[mcp]]`, `approve`, `format`, `checks`,
...) are declared here, beside `AgentSpec`: the runner is given one `AgentSpec` and never looks
at the crew again, so "agent value, else crew value, else default" is decided in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_MAX_TURNS = 20
"""Model turns in a row that call tools before the agent is stopped with a reason. A 7B model
that has not answered after twenty tool round trips is looping, not working."""
DEFAULT_MAX_WAKEUPS = 5
"""Times a finished agent is woken by a message before further messages are refused (and the
log says so): two agents cannot trade messages all night."""
DEFAULT_CHECK_RETRIES = 1
MCP_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
BUILTIN_TOOLSETS = ("board", "messages")

Format = Literal["json"] | dict[str, Any]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class McpServer(_Strict):
    """One `[[mcp]]` table: a tool server the crew starts (stdio) or reaches (streamable HTTP)."""

    name: str
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    """Added to the few variables the SDK passes on (HOME, PATH, ...): the server sees nothing
    else of cockpit's environment."""
    url: str | None = None
    timeout: float = Field(default=60.0, gt=0)
    """Seconds one call may take before it returns an error to the model."""

    @field_validator("name")
    @classmethod
    def _charset(cls, value: str) -> str:
        if not MCP_NAME_RE.match(value):
            raise ValueError(f"server name {value!r} may only use letters, digits, '_' and '-'")
        return value

    @model_validator(mode="after")
    def _one_transport(self) -> McpServer:
        if (self.command is None) == (self.url is None):
            raise ValueError("set `command` (a stdio server) or `url` (streamable HTTP), "
                             "exactly one")
        if self.url is not None and (self.args or self.env):
            raise ValueError("`args` and `env` apply to a `command`, not to a `url`")
        return self


class Checks(_Strict):
    """What a final answer must satisfy before the agent counts as finished."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    json_schema: dict[str, Any] | None = None
    """The answer parses as JSON and matches this schema."""
    json_: bool = Field(default=False, alias="json")
    """The answer parses as JSON."""
    matches: str | None = None
    """A regular expression the answer must contain a match of."""
    excludes: str | None = None
    """A regular expression the answer must not contain a match of."""
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=1)

    @field_validator("matches", "excludes")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"not a regular expression: {error}") from None
        return value

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_schema(value)
        return value


def check_schema(schema: dict[str, Any]) -> None:
    """Raise ValueError if `schema` is not a JSON schema."""
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as error:
        raise ValueError(f"not a valid JSON schema: {error.message}") from None


def valid_tool_ref(ref: str) -> bool:
    """`board`, `messages`, `mcp:NAME` or `NAME.TOOL`."""
    if ref in BUILTIN_TOOLSETS:
        return True
    if ref.startswith("mcp:"):
        return bool(MCP_NAME_RE.match(ref[4:]))
    server, dot, tool = ref.partition(".")
    return bool(dot and MCP_NAME_RE.match(server) and tool)


def mcp_server_of(ref: str) -> str | None:
    """The `[[mcp]]` name a tool reference needs, or None for a built-in set."""
    if ref in BUILTIN_TOOLSETS:
        return None
    return ref[4:] if ref.startswith("mcp:") else ref.partition(".")[0]


@dataclass(frozen=True)
class AgentSpec:
    """One agent, resolved: everything its runner needs, with the crew's defaults applied."""

    name: str
    model: str
    hosts: list[str]
    retries: int
    stall_timeout: float
    host_wait: float
    backoff: float
    options: dict[str, Any] = field(default_factory=dict)
    tools: list[str] = field(default_factory=list)
    approve: list[str] = field(default_factory=list)
    """Glob patterns of tool names whose calls wait for a decision."""
    approval_timeout: float | None = None
    """Seconds a call waits for a decision before it is denied; None waits for ever."""
    max_turns: int = DEFAULT_MAX_TURNS
    max_wakeups: int = DEFAULT_MAX_WAKEUPS
    format: Format | None = None
    checks: Checks | None = None
    check_retries: int = DEFAULT_CHECK_RETRIES

    @property
    def verified(self) -> bool:
        """Its final answer is checked (a `format` is a check too)."""
        return self.format is not None or self.checks is not None
