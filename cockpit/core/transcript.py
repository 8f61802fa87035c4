"""A session as `docker compose logs` would print it: whole lines, each `name | text`.

Agents stream at once and their tokens interleave in the log, so printing tokens as they come
would splice one agent's words into another's line. Each agent's reply text is buffered and
printed a whole line at a time; a partial line waits until the agent's reply ends, something
happens to the agent (a pause, a redirect, a failure, ... which is printed after it), or the
output ends. What happens to an agent, as opposed to what the model says, goes on a *marked*
line (`writer | ── paused by person`) worded by `describe`, and a reply line that begins like a
mark is escaped with a backslash, so a model cannot write a line that passes for one. Thinking
is not printed: it is not the reply.

By message (`--by message`), each reply is printed whole when it ends, as one block: a marked
header line (`writer | ── reply`), then the reply's lines as they are, without a prefix. A reply
line that reads like a marked line (`x | ── ...`) is escaped with a backslash there too.

Every piece of model text, error and name is untrusted and is sanitised line by line
(`split_lines`). Colour, when asked for, is this module's own escape codes around text that has
already been sanitised: a stable colour per agent (by crew order) and dim marked lines.
"""

from __future__ import annotations

import contextlib
import json
import unicodedata
import zlib
from _json import scanstring
from collections.abc import Callable, Collection, Iterable
from typing import Literal

from cockpit.core import events as ev
from cockpit.core.describe import describe
from cockpit.core.logreader import LogError, LogReader
from cockpit.core.logschema import Row, decode
from cockpit.core.text import one_line, split_lines

By = Literal["line", "message"]
"""How reply text is printed: whole lines prefixed `name | `, or each reply as one block."""

MARK = "── "
"""What a marked line's text starts with, after `name | `."""
LOOKALIKES = frozenset("─━—―–")
"""A reply line starting with one of these (after spaces or invisible characters) could pass
for a marked line: it gets a `\\` in front."""
MARK_WIDTH = 2000
"""A marked line is one line, cut at this many characters (a long redirect or error)."""
TAB = 8
"""Tab stops in reply text, counted from the text's start (after `name | `)."""
NAME_WIDTH = 40
"""Names are cut to this (crew names are short; a crafted log's need not be)."""
SESSION = ""
"""The name column of session-level lines (start, resume, end, board writes by a person):
blank, so it cannot be mistaken for an agent, whatever the agents are called."""

COLOURS = ("36", "33", "32", "35", "34", "31", "96", "93", "92", "95", "94", "91")
"""SGR foreground colours, given to agents in crew order, as docker compose does."""
DIM, RESET = "\x1b[2m", "\x1b[0m"
_BREAKS = ("\n", "\u2028", "\u2029")


class Transcript:
    """Events in, whole lines out (without their newline).

    `agents` are the crew's names in crew order (a `session_started` fed in supplies them
    too); `only` keeps just those agents' lines, and no session-level ones; `colour` adds
    ANSI colours; `by` "message" prints each reply as one block when it ends. `feed` returns
    the lines an event completes, `close` what is still partial.
    """

    def __init__(self, agents: Iterable[str] = (), *, only: Collection[str] | None = None,
                 colour: bool = False, by: By = "line") -> None:
        self.only = frozenset(only) if only is not None else None
        self.colour = colour
        self.blocks = by == "message"
        self.agents: list[str] = []
        self._partial: dict[str, list[str]] = {}
        """Each agent's text since its last whole line (by message: since its reply began),
        as the pieces that came."""
        self._cut: set[str] = set()
        """By message: agents whose last block something cut off (a pause, a retry), so their
        next block continues the same reply."""
        self._prefix: dict[str | None, str] = {}
        self.width = 0
        self._learn(agents)

    # -- names ---------------------------------------------------------------------------------

    def _shown(self, agent: str | None) -> bool:
        if self.only is None:
            return True
        return agent is not None and agent in self.only

    def _learn(self, names: Iterable[str]) -> None:
        """Add names (in crew order); the name column widens to the widest shown one."""
        for name in names:
            if name not in self.agents:
                self.agents.append(name)
                if self._shown(name):
                    self._widen(len(one_line(name, NAME_WIDTH)))

    def _widen(self, width: int) -> None:
        if width > self.width:
            self.width = width
            self._prefix.clear()

    def prefix(self, agent: str | None) -> str:
        """`writer  | `: the name, padded to the widest, and the bar (coloured if asked)."""
        cached = self._prefix.get(agent)
        if cached is not None:
            return cached
        if agent is not None and agent not in self.agents:
            self._learn([agent])  # not in the crew the log recorded: still gets a column
        name = SESSION if agent is None else one_line(agent, NAME_WIDTH)
        text = f"{name.ljust(self.width)} |"
        if self.colour and agent is not None:
            text = f"\x1b[{self._colour(agent)}m{text}{RESET}"
        self._prefix[agent] = text = text + " "
        return text

    def _colour(self, agent: str) -> str:
        try:
            index = self.agents.index(agent)
        except ValueError:
            index = zlib.crc32(agent.encode())
        return COLOURS[index % len(COLOURS)]

    # -- lines ---------------------------------------------------------------------------------

    def _reply(self, agent: str, lines: list[str]) -> list[str]:
        prefix = self.prefix(agent)
        bare = prefix[:-1]  # a blank line ends at the bar, without a trailing space
        return [prefix + _shown_line(line) if line else bare for line in lines]

    def marked(self, agent: str | None, text: str) -> str:
        """A marked line: what happened to `agent` (None: the session), sanitised."""
        note = MARK + one_line(text, MARK_WIDTH)
        return self.prefix(agent) + (f"{DIM}{note}{RESET}" if self.colour else note)

    def text(self, agent: str, text: str) -> list[str]:
        """The whole lines a piece of `agent`'s reply completes: `feed` for a token event,
        without the event (the hot path reads the text straight from the log's row)."""
        if self.only is not None and agent not in self.only:
            return []
        pieces = self._partial.setdefault(agent, [])
        pieces.append(text)
        if self.blocks or ("\n" not in text and "\u2028" not in text and "\u2029" not in text):
            return []
        buffered = "".join(pieces)
        cut = max(buffered.rfind(b) for b in _BREAKS) + 1
        self._partial[agent] = [buffered[cut:]] if cut < len(buffered) else []
        return self._reply(agent, split_lines(buffered[:cut])[:-1])

    def flush(self, agent: str, *, cut: bool = True) -> list[str]:
        """`agent`'s partial line, if it has one, as a line (by message: its reply so far, as
        a block; `cut` says the reply is not over, as after a pause)."""
        pieces = self._partial.pop(agent, None)
        if not pieces:
            return []
        lines = split_lines("".join(pieces))
        if not self.blocks:
            return self._reply(agent, lines)
        if len(lines) > 1 and not lines[-1]:
            lines.pop()  # the reply's last newline ends its last line; it is not one more
        header = "reply (continued)" if agent in self._cut else "reply"
        if cut:
            self._cut.add(agent)
        else:
            self._cut.discard(agent)
        return [self.marked(agent, header), *map(_block_line, lines)]

    def rows(self, rows: Iterable[Row],
             take: Callable[[ev.BaseEvent], list[str]] | None = None) -> list[str]:
        """`feed` for raw log rows: a token's text is read from its JSON without building the
        event, which is most of the time a long session takes to print, and thinking (never
        printed) is not read at all. The other rows are decoded and given to `take` (default:
        `feed`)."""
        lines: list[str] = []
        text = self.text
        take = take or self.feed
        for row in rows:
            kind = row[5]
            if kind == "token":
                if row[2] is not None and (done := text(row[2], token_text(row[6]))):
                    lines += done
            elif kind != "thinking":
                lines += take(decode(row))
        return lines

    def close(self) -> list[str]:
        """The end of the output: every partial line, in crew order."""
        lines: list[str] = []
        for agent in [*self.agents, *self._partial]:
            lines += self.flush(agent)
        return lines

    def feed(self, event: ev.BaseEvent) -> list[str]:
        """The whole lines `event` completes (often none: a token without a newline)."""
        agent = event.agent
        if isinstance(event, ev.TokenStreamed):
            return self.text(agent, event.text) if agent is not None else []
        if isinstance(event, ev.SessionStarted):
            self._learn(a["name"] for a in event.config.get("agents", ())
                        if isinstance(a, dict) and isinstance(a.get("name"), str))
        if not self._shown(agent):
            return []
        if isinstance(event, ev.ThinkingStreamed):
            return []
        if isinstance(event, ev.MessageCompleted):
            return self.flush(agent, cut=False) if agent is not None else []  # the reply ended
        note = self.note(event)
        if note is None:
            return []
        if agent is None:
            lines = self.close() if isinstance(event, ev.SessionFinished) else []
        else:
            lines = self.flush(agent)  # what the agent said before comes first
            if isinstance(event, ev.AgentStarted | ev.AgentRedirected | ev.AgentRestarted):
                self._cut.discard(agent)  # what comes next is a new reply, not the cut one
        lines.append(self.marked(agent, note))
        return lines

    def note(self, event: ev.BaseEvent) -> str | None:
        """What a marked line says about `event`; None if it gets no line."""
        if isinstance(event, ev.StateSet):
            if event.by in self.agents:
                return None  # an agent's own writes: its finish, or its tool call's line
            value = json.dumps(event.value, ensure_ascii=False)
            return f"board {event.key} = {one_line(value, 200)} (by {event.by})"
        if event.notable:
            return describe(event)
        return None


def _shown_line(line: str) -> str:
    """A sanitised reply line as printed: tabs expanded (no control character leaves at
    all), and a `\\` in front of one that would pass for a marked line."""
    if "\t" in line:
        line = line.expandtabs(TAB)
    return "\\" + line if _disguised(line) else line


_TOKEN_HEAD = '{"text": "'
"""How the log writer starts a token row's data (`logschema.encode`)."""
_AFTER_HEAD = len(_TOKEN_HEAD)


def token_text(data: str) -> str:
    """A token row's text, read straight from its JSON: our writer puts it first, so the C
    string scanner reads just it (several times faster than decoding the object); any other
    shape is decoded whole."""
    if data.startswith(_TOKEN_HEAD):
        try:  # not contextlib.suppress: this runs for every token, and try costs nothing
            return scanstring(data, _AFTER_HEAD)[0]
        except ValueError:
            pass
    text: str = json.loads(data)["text"]
    return text


def _block_line(line: str) -> str:
    """A sanitised line of a reply block as printed: tabs expanded, and a `\\` in front of
    one that would pass for a marked line (`── x`, `name | ── x`)."""
    if "\t" in line:
        line = line.expandtabs(TAB)
    bar = line.find("|")
    if _disguised(line) or (bar >= 0 and _disguised(line[bar + 1:])):
        return "\\" + line
    return line


def _disguised(line: str) -> bool:
    """Whether the first visible character of `line` is a mark's lookalike."""
    for char in line:
        if char in LOOKALIKES:
            return True
        if not (char.isspace() or unicodedata.category(char) in ("Cf", "Mn", "Me")):
            return False
    return False


def transcript(events: Iterable[ev.BaseEvent], agents: Iterable[str] = (), *,
               only: Collection[str] | None = None, colour: bool = False,
               by: By = "line") -> list[str]:
    """Every line of a transcript of `events`, partial lines included."""
    lines: list[str] = []
    writer = Transcript(agents, only=only, colour=colour, by=by)
    for event in events:
        lines += writer.feed(event)
    return lines + writer.close()


async def agent_names(log: LogReader, session: str) -> list[str]:
    """The session's agents in crew order, as the crew stands now (agents a hot reload added
    included), else as its `session_started` has them."""
    with contextlib.suppress(LogError):
        crew, _ = await log.crew(session)
        return [agent.name for agent in crew.agents]
    first = await log.events(session, 0, 1)
    if not first or not isinstance(first[0], ev.SessionStarted):
        return []
    agents = first[0].config.get("agents", [])
    return [a["name"] for a in agents if isinstance(a, dict) and isinstance(a.get("name"), str)]
