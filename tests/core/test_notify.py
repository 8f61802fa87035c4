"""The `[notify]` policy, table by table: which events make a notice and its words, the escape
sequences (hostile text cannot end them early), the channel each terminal gets, and the crew
file's `[notify]` table with its errors."""

from __future__ import annotations

from typing import Any

import pytest

from cockpit.core import events as ev
from cockpit.core.config import ConfigError, parse_crew
from cockpit.core.notify import (
    Notice,
    NotifyConfig,
    announce,
    desktop_channel,
    endings_line,
    notify_send_argv,
    osc9,
    osc777,
    terminal_channel,
    tmux_passthrough,
)

CREW = """\
name = "night"
model = "m"
{notify}
[[agents]]
name = "a"
task = "t"
"""


def finished(agent: str) -> ev.AgentFinished:
    return ev.AgentFinished(agent=agent, output="done")


def failed(agent: str, error: str = "model 'x' not found") -> ev.AgentFailed:
    return ev.AgentFailed(agent=agent, error=error)


def asking(agent: str, tool: str = "board_write") -> ev.ApprovalRequested:
    return ev.ApprovalRequested(agent=agent, call_id=f"{agent}.1", tool=tool, arguments={})


def crew_end(outcome: str, **agents: str) -> ev.SessionFinished:
    return ev.SessionFinished(outcome=outcome, agents=agents)  # type: ignore[arg-type]


DEFAULT = NotifyConfig()
EVERYTHING = NotifyConfig(on=["finished", "failed", "approval", "crew_end"])


@pytest.mark.parametrize(("events", "config", "body", "urgent"), [
    ([finished("a")], DEFAULT, None, None),  # a finish is not news by default
    ([finished("a")], EVERYTHING, "a finished", False),
    ([failed("a")], DEFAULT, "a failed: model 'x' not found", True),
    ([finished("tips"), finished("mistakes"), failed("note")], EVERYTHING,
     "finished: tips, mistakes · failed: note", True),
    ([finished("tips"), failed("note")], DEFAULT, "note failed: model 'x' not found", True),
    ([asking("r")], DEFAULT, "r asks to run board_write", True),
    ([asking("r"), asking("s", "files.write")], DEFAULT, "2 calls ask for approval", True),
    ([crew_end("finished", a="finished", b="finished")], DEFAULT,
     "the crew finished (2 agents)", False),
    ([crew_end("failed", a="finished", b="failed", c="stopped")], DEFAULT,
     "the crew ended: 2 of 3 agents did not finish (b, c)", True),
    ([crew_end("interrupted", a="streaming")], EVERYTHING, None, None),  # the person quit
    ([finished("a"), crew_end("finished", a="finished")], EVERYTHING,
     "the crew finished (1 agent) · a finished", False),
    ([failed("b"), asking("a"), crew_end("failed", a="finished", b="failed")], DEFAULT,
     "the crew ended: 1 of 2 agents did not finish (b) · b failed: model 'x' not found · "
     "a asks to run board_write", True),
    ([failed("a"), asking("a")], NotifyConfig(on=["approval"]), "a asks to run board_write",
     True),
    ([failed("a"), crew_end("failed", a="failed")], NotifyConfig(on=[]), None, None),
    ([ev.AgentStopped(agent="a", by="person"), ev.TokenStreamed(agent="a", text="hi")],
     EVERYTHING, None, None),
    ([finished(f"agent{i}") for i in range(9)], EVERYTHING,
     "finished: agent0, agent1, agent2, agent3, agent4, agent5, … (+3)", False),
])
def test_a_frame_of_events_makes_one_notice_or_none(events: list[ev.BaseEvent],
                                                     config: NotifyConfig, body: str | None,
                                                     urgent: bool | None) -> None:
    notice = announce(events, config, "night")
    if body is None:
        assert notice is None
        return
    assert notice is not None
    assert (notice.title, notice.body, notice.urgent) == ("cockpit · night", body, urgent)


def test_endings_line_names_one_agent_or_lists_several() -> None:
    assert endings_line(["a"], []) == "a finished"
    assert endings_line([], [("n", "boom\nagain")]) == "n failed: boom again"
    assert endings_line(["a", "b"], [("n", "x"), ("m", "y")]) == "finished: a, b · failed: n, m"


HOSTILE = "bad\x1b]0;owned\x07 \x1b[2J; rm -rf ~ \x9c\x1b\\end\u202e"
NOTICE = Notice(title="cockpit · cr\x07ew;", body=HOSTILE, urgent=True)


def test_the_escapes_carry_the_text_without_a_way_out() -> None:
    assert osc9(NOTICE) == "\x1b]9;cockpit · crew,: bad , rm -rf ~ end\a"
    assert osc777(NOTICE) == "\x1b]777;notify;cockpit · crew,;bad , rm -rf ~ end\a"
    long = Notice("t", "x" * 1000, False)
    assert len(osc9(long)) < 220


def test_tmux_passes_the_sequence_on_with_its_escapes_doubled() -> None:
    assert tmux_passthrough("\x1b]9;hi\a") == "\x1bPtmux;\x1b\x1b]9;hi\a\x1b\\"


def test_notify_send_gets_text_as_arguments_never_as_options_or_markup() -> None:
    notice = Notice("cockpit · c", "-x <b>a</b> & b", True)
    assert notify_send_argv("/bin/notify-send", notice) == [
        "/bin/notify-send", "--app-name=cockpit", "--urgency=critical", "--", "cockpit · c",
        "-x &lt;b&gt;a&lt;/b&gt; &amp; b"]


@pytest.mark.parametrize(("env", "channel"), [
    ({"TERM_PROGRAM": "iTerm.app"}, "osc9"),
    ({"LC_TERMINAL": "iTerm2", "TERM": "xterm-256color"}, "osc9"),  # over ssh
    ({"TERM_PROGRAM": "WezTerm"}, "osc9"),
    ({"WT_SESSION": "1"}, "osc9"),
    ({"TERM": "xterm-kitty"}, "osc9"),
    ({"TERM": "tmux-256color", "KITTY_WINDOW_ID": "3"}, "osc9"),
    ({"TERM_PROGRAM": "ghostty"}, "osc777"),
    ({"TERM": "foot"}, "osc777"),
    ({"TERM": "rxvt-unicode-256color"}, "osc777"),
    ({"VTE_VERSION": "7600"}, "osc777"),
    ({"TERM": "xterm-256color"}, None),
    ({}, None),
])
def test_the_terminal_is_recognised_from_its_environment(env: dict[str, str],
                                                         channel: str | None) -> None:
    assert terminal_channel(env) == channel


DESKTOP = {"DISPLAY": ":0"}


@pytest.mark.parametrize(("mode", "env", "notify_send", "place", "channel"), [
    ("auto", {"TERM_PROGRAM": "WezTerm"}, True, "terminal", "osc9"),
    ("auto", DESKTOP, True, "terminal", "notify-send"),
    ("auto", DESKTOP, False, "terminal", None),
    ("auto", {}, True, "terminal", None),  # no display: nowhere to show it
    ("auto", {**DESKTOP, "SSH_CONNECTION": "a b c d"}, True, "terminal", None),
    ("auto", {"TERM_PROGRAM": "WezTerm", **DESKTOP}, True, "headless", None),
    ("auto", {"TERM_PROGRAM": "WezTerm"}, True, "web", None),
    ("osc777", {}, False, "terminal", "osc777"),
    ("osc9", {}, False, "headless", None),
    ("notify-send", {}, True, "headless", "notify-send"),
    ("notify-send", {}, False, "terminal", None),
    ("notify-send", {}, True, "web", None),  # the server's desktop is not the person's
    ("off", {"TERM_PROGRAM": "WezTerm"}, True, "terminal", None),
])
def test_the_desktop_channel_follows_the_mode_and_the_place(
        mode: Any, env: dict[str, str], notify_send: bool, place: Any,
        channel: str | None) -> None:
    assert desktop_channel(mode, env, notify_send=notify_send, place=place) == channel


def test_the_notify_table_has_sensible_defaults_and_takes_its_keys() -> None:
    assert parse_crew(CREW.format(notify=""), "crew.toml").notify == NotifyConfig(
        on=["failed", "approval", "crew_end"], bell=True, desktop="auto")
    crew = parse_crew(CREW.format(notify='[notify]\non = ["finished"]\nbell = false\n'
                                         'desktop = "osc777"\n'), "crew.toml")
    assert crew.notify == NotifyConfig(on=["finished"], bell=False, desktop="osc777")


@pytest.mark.parametrize(("table", "line", "field", "message"), [
    ('[notify]\non = ["failed", "finish"]', 4, "notify.on[1]", "'crew_end'"),
    ('[notify]\ndesktop = "growl"', 4, "notify.desktop", "'notify-send'"),
    ('[notify]\n\nbell = "yes"', 5, "notify.bell", "valid boolean"),
    ('[notify]\nsound = true', 4, "notify.sound", "unknown key 'sound'"),
    ('notify = "all"', 3, "notify", "valid dictionary"),
])
def test_notify_mistakes_name_line_and_field(table: str, line: int, field: str,
                                             message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_crew(CREW.format(notify=table), "crew.toml")
    [(at, name, text)] = caught.value.problems
    assert (at, name) == (line, field)
    assert message in text
    assert str(caught.value).startswith(f"crew.toml:{line}: {field}: ")
