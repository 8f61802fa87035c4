"""What the session tells a person who is not looking at it: the `[notify]` policy.

A crew started at 11 PM ends, fails or waits for an approval while nobody watches the panes.
The viewer then rings the terminal bell and sends a desktop notification, through the
terminal (OSC 9, OSC 777) or `notify-send`. This module decides, without doing any of it:
which of a frame's events are worth a notice (one notice per frame, however many agents ended
in it), the words, the escape sequences, and which channel a terminal offers. Delivery is the
UI's (cockpit/ui/notifier.py). Everything here is pure, so it is tested table by table.

The words come from untrusted places (a crew name, Ollama's error text), and an escape sequence
ends at the first BEL or ESC: a crafted error could otherwise close the notification and type
the rest into the terminal. `clean` strips every control character and the OSC separator `;`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cockpit.core import events as ev
from cockpit.core.text import one_line

Kind = Literal["finished", "failed", "approval", "crew_end"]
Desktop = Literal["auto", "osc9", "osc777", "notify-send", "off"]
Channel = Literal["osc9", "osc777", "notify-send"]
Place = Literal["terminal", "headless", "web"]
"""Where the viewer draws: a real terminal, none (tests, pipes), or a browser (textual-serve),
where the viewer's process is on the server: its escapes and its desktop are not the person's."""

DEFAULT_ON: tuple[Kind, ...] = ("failed", "approval", "crew_end")
"""A finish is what agents are for: in a crew of twelve, twelve notices would drown the ones
that need a person. A failure, a call that waits and the crew's end do."""
BELL = "\a"
TEXT_WIDTH = 200
"""Longest title or body sent (desktop notifications show a line or two anyway)."""
NAMES_SHOWN = 6
"""Agents named in one notice before the rest are counted."""
OSC9_TERMINALS = {"iTerm.app", "WezTerm"}
"""`TERM_PROGRAM` values of terminals that show OSC 9 as a notification."""
OSC777_PROGRAMS = {"ghostty"}


class NotifyConfig(BaseModel):
    """The crew file's `[notify]` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    on: list[Kind] = Field(default_factory=lambda: list(DEFAULT_ON))
    """The events that ring and notify: "finished" (an agent), "failed" (an agent),
    "approval" (a call waits for a decision), "crew_end" (every agent has ended)."""
    bell: bool = Field(default=True, strict=True)
    """Ring the terminal bell (true or false: `"no"` is not a way to say it)."""
    desktop: Desktop = "auto"
    """How to send a desktop notification: "auto" picks what the terminal understands
    (OSC 9 or OSC 777), else `notify-send` on a local desktop, else nothing."""


@dataclass(frozen=True)
class Notice:
    """One notification: what a frame's events amount to."""

    title: str
    body: str
    urgent: bool
    """Something went wrong or waits for a person (a failure, an approval)."""


def names(agents: Sequence[str]) -> str:
    """`a, b, c`, or `a, b, … (+4)` past `NAMES_SHOWN`."""
    shown = [one_line(name, 40) for name in agents[:NAMES_SHOWN]]
    more = len(agents) - len(shown)
    return ", ".join(shown) + (f", … (+{more})" if more else "")


def endings_line(finished: Sequence[str], failed: Sequence[tuple[str, str]]) -> str:
    """The line for agents that ended together: `tips finished`, `note failed: <error>`, or,
    for several, `finished: tips, mistakes · failed: note` (the panes show each error)."""
    if len(finished) + len(failed) == 1:
        if finished:
            return f"{one_line(finished[0], 40)} finished"
        name, error = failed[0]
        return f"{one_line(name, 40)} failed: {one_line(error, 160)}"
    parts = []
    if finished:
        parts.append(f"finished: {names(finished)}")
    if failed:
        parts.append(f"failed: {names([name for name, _ in failed])}")
    return " · ".join(parts)


def approvals_line(asking: Sequence[tuple[str, str]]) -> str:
    """`r asks to run board_write`, or `3 calls ask for approval` (agent, tool pairs)."""
    if len(asking) == 1:
        agent, tool = asking[0]
        return f"{one_line(agent, 40)} asks to run {one_line(tool, 60)}"
    return f"{len(asking)} calls ask for approval"


def crew_end_line(event: ev.SessionFinished) -> str:
    """The crew's end in a few words: who did not finish, if anyone."""
    count = len(event.agents)
    agents = "1 agent" if count == 1 else f"{count} agents"
    if event.outcome == "finished":
        return f"the crew finished ({agents})"
    missed = [name for name, status in event.agents.items() if status != "finished"]
    return f"the crew ended: {len(missed)} of {agents} did not finish ({names(missed)})"


def announce(events: Sequence[ev.BaseEvent], config: NotifyConfig, crew: str) -> Notice | None:
    """The notice for one frame of live events, or None if `config` wants none of them.

    An interrupted session (a person quit) is no news; neither is an agent the person
    stopped. The parts come most urgent first: the crew's end, failures, approvals, finishes.
    """
    wanted = set(config.on)
    finished: list[str] = []
    failed: list[tuple[str, str]] = []
    asking: list[tuple[str, str]] = []
    ended: ev.SessionFinished | None = None
    for event in events:
        if isinstance(event, ev.AgentFinished) and "finished" in wanted:
            finished.append(event.agent or "")
        elif isinstance(event, ev.AgentFailed) and "failed" in wanted:
            failed.append((event.agent or "", event.error))
        elif isinstance(event, ev.ApprovalRequested) and "approval" in wanted:
            asking.append((event.agent or "", event.tool))
        elif isinstance(event, ev.SessionFinished) and "crew_end" in wanted \
                and event.outcome != "interrupted":
            ended = event
    parts = []
    if ended is not None:
        parts.append(crew_end_line(ended))
    if finished or failed:
        parts.append(endings_line(finished, failed))
    if asking:
        parts.append(approvals_line(asking))
    if not parts:
        return None
    urgent = bool(failed or asking) or (ended is not None and ended.outcome != "finished")
    return Notice(title=f"cockpit · {one_line(crew, 60)}", body=" · ".join(parts),
                  urgent=urgent)


# -- channels ---------------------------------------------------------------------------------

def clean(text: str, width: int = TEXT_WIDTH) -> str:
    """`text` safe inside an OSC string: one line, no control character (BEL or ESC would end
    the sequence early; C1's ST too), no `;` (OSC 777's separator, and ConEmu reads `9;N;` as a
    command), at most `width` characters."""
    flat = "".join(ch for ch in one_line(text, width) if ch.isprintable())
    return flat.replace(";", ",")


def osc9(notice: Notice) -> str:
    """iTerm2's notification (also WezTerm, kitty, Windows Terminal): one text, no title."""
    return f"\x1b]9;{clean(f'{notice.title}: {notice.body}')}\a"


def osc777(notice: Notice) -> str:
    """rxvt-unicode's `notify` (also foot, Ghostty, VTE): a title and a body."""
    return f"\x1b]777;notify;{clean(notice.title, 80)};{clean(notice.body)}\a"


def tmux_passthrough(sequence: str) -> str:
    """`sequence` wrapped so tmux hands it to the terminal outside (tmux's `allow-passthrough`
    must be on; else tmux drops it, harmlessly)."""
    return "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"


def notify_send_argv(program: str, notice: Notice) -> list[str]:
    """The `notify-send` command line. `--` ends the options, so a body that starts with `-`
    is text; `&<>` are escaped, since notification servers read the body as markup."""
    body = clean(notice.body).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return [program, "--app-name=cockpit",
            f"--urgency={'critical' if notice.urgent else 'normal'}", "--",
            clean(notice.title, 80), body]


def terminal_channel(env: Mapping[str, str]) -> Channel | None:
    """The desktop notification escape the terminal is known to show, from its environment
    (these variables survive `ssh` only where the terminal forwards them, as iTerm2 does with
    `LC_TERMINAL`)."""
    term = env.get("TERM", "")
    program = env.get("TERM_PROGRAM", "")
    if program in OSC9_TERMINALS or env.get("LC_TERMINAL") == "iTerm2" \
            or "WT_SESSION" in env or "KITTY_WINDOW_ID" in env or term == "xterm-kitty":
        return "osc9"
    if program in OSC777_PROGRAMS or term == "xterm-ghostty" or term.startswith("foot") \
            or term.startswith("rxvt-unicode") or "VTE_VERSION" in env:
        return "osc777"
    return None


def desktop_channel(mode: Desktop, env: Mapping[str, str], *, notify_send: bool,
                    place: Place) -> Channel | None:
    """How `mode` sends a desktop notification here, or None for not at all.

    A browser viewer sends none (its process and desktop are the server's). Escapes need a
    terminal. `auto` takes the terminal's escape, else `notify-send` when it is installed and
    the session has a local display (over ssh it would notify the remote machine).
    """
    if mode == "off" or place == "web":
        return None
    if mode in ("osc9", "osc777"):
        return mode if place == "terminal" else None
    if mode == "notify-send":
        return "notify-send" if notify_send else None
    if place != "terminal":
        return None
    if (channel := terminal_channel(env)) is not None:
        return channel
    local_display = bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")) \
        and not (env.get("SSH_CONNECTION") or env.get("SSH_TTY"))
    return "notify-send" if notify_send and local_display else None
