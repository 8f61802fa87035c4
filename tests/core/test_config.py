"""Crew-file validation: every mistake is caught before anything runs, with file, line, field."""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.cli import main
from cockpit.core.config import ConfigError, load_crew, parse_crew, render_template

GOOD = """\
name = "release-notes"
host = "http://127.0.0.1:11434"
model = "llama3.2"
retries = 2
stall_timeout = 30

[state]
topic = "the 2.0 release"

[state.release]
date = "2026-12-01"

[[agents]]
name = "planner"
system = "You plan."
task = "Plan notes about {{topic}} due {{ release.date }}."
options = { temperature = 0.2, seed = 7, num_predict = 400 }

[[agents]]
name = "writer"
model = "qwen2.5:7b"
host = "10.0.0.5"
after = ["planner"]
retries = 0
task = "Write from this plan: {{outputs.planner}}"
"""


def problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_crew(text, "crew.toml")
    return caught.value.problems


def test_a_good_crew_loads_with_defaults_and_overrides() -> None:
    crew = parse_crew(GOOD, "crew.toml")
    planner, writer = crew.agents
    assert crew.model_for(planner) == "llama3.2" and crew.model_for(writer) == "qwen2.5:7b"
    assert crew.host_for(planner) == "http://127.0.0.1:11434"
    assert crew.host_for(writer) == "http://10.0.0.5:11434"  # ollama-python's host rules
    assert crew.retries_for(planner) == 2 and crew.retries_for(writer) == 0
    assert crew.stall_timeout_for(writer) == 30
    assert crew.state == {"topic": "the 2.0 release", "release.date": "2026-12-01"}
    assert planner.options == {"temperature": 0.2, "seed": 7, "num_predict": 400}


@pytest.mark.parametrize(("env", "expected"), [
    ("0.0.0.0:12345", "http://0.0.0.0:12345"),
    (":5555", "http://127.0.0.1:5555"),
    ("https://ollama.example", "https://ollama.example:443"),
    ("", "http://127.0.0.1:11434"),
])
def test_ollama_host_sets_the_default_host(monkeypatch: pytest.MonkeyPatch, env: str,
                                           expected: str) -> None:
    monkeypatch.setenv("OLLAMA_HOST", env)
    crew = parse_crew(GOOD.replace('host = "http://127.0.0.1:11434"\n', ""))
    assert crew.host == expected


@pytest.mark.parametrize(("change", "line", "field", "message"), [
    (('retries = 2', 'retrys = 2'), 4, "retrys", "unknown key 'retrys'"),
    (('system = "You plan."', 'sytem = "You plan."'), 15, "agents[0] (planner).sytem",
     "unknown key"),
    (('after = ["planner"]', 'after = ["planer"]'), 23, "agents[1] (writer).after",
     "no agent named 'planer'"),
    (("{{outputs.planner}}", "{{outputs.nobody}}"), 25, "agents[1] (writer).task",
     "{{outputs.nobody}}: no such key"),
    (("{{topic}}", "{{topik}}"), 16, "agents[0] (planner).task", "{{topik}}: no such key"),
    (("temperature = 0.2", "temprature = 0.2"), 17, "agents[0] (planner).options",
     "unknown Ollama option 'temprature'"),
    (("seed = 7", 'seed = "7"'), 17, "agents[0] (planner).options", "option 'seed' must be int"),
    (('name = "writer"', 'name = "Writer!"'), 20, "agents[1] (Writer!).name",
     "may only use a-z"),
    (("stall_timeout = 30", "stall_timeout = -1"), 5, "stall_timeout", "greater than 0"),
])
def test_each_mistake_names_line_and_field(change: tuple[str, str], line: int, field: str,
                                           message: str) -> None:
    found = problems(GOOD.replace(*change, 1))
    assert len(found) == 1, found
    got_line, got_field, got_message = found[0]
    assert (got_line, got_field) == (line, field)
    assert message in got_message


def test_duplicate_names_point_at_the_second_agent() -> None:
    text = GOOD + '\n[[agents]]\nname = "planner"\ntask = "again"\n'
    assert problems(text) == [(28, "agents[2] (planner).name", "duplicate agent name 'planner'")]


def test_an_output_that_is_not_an_ancestor_is_refused_with_a_hint() -> None:
    text = GOOD.replace('after = ["planner"]\n', "")
    [(line, field, message)] = problems(text)
    assert (line, field) == (24, "agents[1] (writer).task")
    assert "add 'planner' to `after`" in message


def test_dependency_cycles_are_reported_as_a_path() -> None:
    text = GOOD + '\n[[agents]]\nname = "editor"\nafter = ["writer"]\ntask = "x"\n'
    text = text.replace('name = "planner"\n', 'name = "planner"\nafter = ["editor"]\n')
    [(line, field, message)] = problems(text)
    assert field == "agents[0] (planner).after" and line == 15
    assert "planner -> editor -> writer -> planner" in message


def test_a_missing_model_is_an_error() -> None:
    [(line, field, message)] = problems(GOOD.replace('model = "llama3.2"\n', ""))
    assert field == "agents[0] (planner).model" and "no model" in message and line == 12


def test_toml_syntax_errors_carry_the_parsers_line() -> None:
    [(line, field, message)] = problems(GOOD.replace('retries = 2', 'retries = = 2'))
    assert line == 4 and field == "" and message.startswith("invalid TOML")


def test_missing_required_fields() -> None:
    found = problems('name = "x"\nmodel = "m"\n[[agents]]\nname = "a"\n')
    assert found == [(3, "agents[0] (a).task", "is required")]
    found = problems('model = "m"\n[[agents]]\nname = "a"\ntask = "t"\n')
    assert found == [(None, "name", "is required")]


def test_error_message_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "crew.toml"
    path.write_text(GOOD.replace("retries = 2", "retrys = 2"))
    with pytest.raises(ConfigError) as caught:
        load_crew(path)
    assert str(caught.value) == f"{path}:4: retrys: unknown key 'retrys' (check the spelling)"


def test_cockpit_check_exits_2_on_errors_and_0_on_a_good_crew(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace('after = ["planner"]', 'after = ["ghost"]'))
    assert main(["check", str(bad)]) == 2
    assert f"{bad}:23: agents[1] (writer).after: no agent named 'ghost'" in capsys.readouterr().err
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    assert main(["check", str(good)]) == 0
    out = capsys.readouterr().out
    assert "crew 'release-notes' is valid: 2 agents" in out
    assert "writer" in out and "after planner" in out
    assert main(["check", str(tmp_path / "missing.toml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_render_template_never_substitutes_an_empty_string() -> None:
    assert render_template("a {{x}} {{ y }}", {"x": "1", "y": [2]}) == "a 1 [2]"
    with pytest.raises(KeyError):
        render_template("{{missing}}", {})


ACTING = """\
name = "acting"
model = "m"
approve = ["board_write", "files.*"]

[[mcp]]
name = "files"
command = "files-server"

[[agents]]
name = "a"
task = "t"
tools = ["board", "mcp:files"]
"""


def test_the_keys_of_agents_that_act_resolve_per_agent() -> None:
    crew = parse_crew(ACTING + 'max_turns = 4\napproval_timeout = 60\nformat = "json"\n'
                      'checks = { min_length = 3, json = true }\n')
    spec = crew.spec("a")
    assert spec.tools == ["board", "mcp:files"] and spec.approve == ["board_write", "files.*"]
    assert (spec.max_turns, spec.approval_timeout, spec.format) == (4, 60, "json")
    assert spec.checks is not None and spec.checks.json_ and spec.checks.min_length == 3
    assert spec.max_wakeups == 5 and spec.check_retries == 1  # the crew's defaults
    # The logged crew (model_dump) validates again, as resume and replay need.
    type(crew).model_validate(crew.model_dump(mode="json"))


@pytest.mark.parametrize(("extra", "field", "message"), [
    ('max_wakeups = -1', "agents[0] (a).max_wakeups", "greater than or equal to 0"),
    ('format = { type = "object", required = 3 }', "agents[0] (a).format",
     "not a valid JSON schema"),
    ('checks = { matches = "(" }', "agents[0] (a).checks.matches", "not a regular expression"),
])
def test_acting_mistakes_name_line_and_field(extra: str, field: str, message: str) -> None:
    [(line, where, text)] = problems(ACTING + extra + "\n")
    assert line == 13 and where == field and message in text


def test_an_unknown_tool_names_its_line() -> None:
    [(line, where, text)] = problems(ACTING.replace('"mcp:files"', '"web"'))
    assert (line, where) == (12, "agents[0] (a).tools") and "unknown tool 'web'" in text


def test_a_tool_of_a_server_that_is_not_declared_is_an_error() -> None:
    [(line, where, text)] = problems(ACTING.replace('"mcp:files"', '"git.log"'))
    assert where == "agents[0] (a).tools" and "no [[mcp]] server named 'git'" in text
    assert line == 12


def test_an_mcp_server_needs_exactly_one_transport() -> None:
    [(line, where, text)] = problems(ACTING.replace('command = "files-server"',
                                                    'command = "x"\nurl = "http://h/mcp"'))
    assert where == "mcp[0]" and "exactly one" in text and line == 5


# -- what `run` would meet later, caught by `check` (issue 12, part 11) --------------------------


@pytest.mark.parametrize(("change", "line", "field", "message"), [
    (('model = "llama3.2"', 'model = ""'), 3, "model", "is empty: name a model"),
    (('model = "qwen2.5:7b"', 'model = "  "'), 21, "agents[1] (writer).model", "is empty"),
    (("temperature = 0.2", "temperature = nan"), 17, "agents[0] (planner).options",
     "option 'temperature' must be a finite number, not nan"),
    (("temperature = 0.2", "temperature = -inf"), 17, "agents[0] (planner).options",
     "must be a finite number, not -inf"),
    (("seed = 7", 'stop = "###"'), 17, "agents[0] (planner).options",
     "option 'stop' must be a list of strings"),
    (("seed = 7", 'stop = ["###", 3]'), 17, "agents[0] (planner).options",
     "option 'stop' must be a list of strings"),
    (("seed = 7", 'stop = [""]'), 17, "agents[0] (planner).options", "an empty string"),
    (('task = "Plan notes about {{topic}} due {{ release.date }}."', 'task = " \\n\\t "'), 16,
     "agents[0] (planner).task", "is empty: say what the agent is to do"),
    (('host = "http://127.0.0.1:11434"', 'host = "embeded"'), 2, "host",
     'did you mean "embedded"'),
    (('host = "10.0.0.5"', 'host = "Embedded"'), 22, "agents[1] (writer).host",
     'did you mean "embedded"'),
    (('host = "http://127.0.0.1:11434"', 'host = "ftp://files:21"'), 2, "host",
     "is not an http:// or https:// URL"),
    (('host = "http://127.0.0.1:11434"', 'host = "http://gpu box:11434"'), 2, "host",
     "has spaces"),
    (('host = "http://127.0.0.1:11434"', 'host = "http://gpu:99999"'), 2, "host",
     "Port out of range"),
    (('host = "http://127.0.0.1:11434"', 'host = "http://"'), 2, "host", "names no host"),
    (('host = "http://127.0.0.1:11434"', 'host = ""'), 2, "host", "is empty"),
    (('host = "10.0.0.5"', 'hosts = ["http://a:1", "ftp://b"]'), 22,
     "agents[1] (writer).hosts", "'ftp://b' is not an http:// or https:// URL"),
    (("temperature = 0.2", "temprature = 0.2"), 17, "agents[0] (planner).options",
     "unknown Ollama option 'temprature'; did you mean 'temperature'?"),
])
def test_what_run_would_hit_is_caught_with_line_and_field(
        change: tuple[str, str], line: int, field: str, message: str) -> None:
    assert change[0] in GOOD
    found = problems(GOOD.replace(*change, 1))
    assert len(found) == 1, found
    assert found[0][:2] == (line, field)
    assert message in found[0][2]


def test_a_host_of_that_name_is_still_a_host() -> None:
    """Near misses of "embedded" are refused; real names and Ollama's short forms are not."""
    for host, url in [("gpu-box", "http://gpu-box:11434"), (":5555", "http://127.0.0.1:5555"),
                      ("HTTPS://ollama.example", "https://ollama.example:443"),
                      ("http://embeded:11434", "http://embeded:11434"), ("embedded", "embedded")]:
        crew = parse_crew(GOOD.replace('"http://127.0.0.1:11434"', f'"{host}"', 1))
        assert crew.host == url


def test_a_bad_ollama_host_is_named_as_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "embeded")
    [(line, field, message)] = problems(GOOD.replace('host = "http://127.0.0.1:11434"\n', ""))
    assert (line, field) == (None, "")
    assert message.startswith("OLLAMA_HOST (the default host): 'embeded': did you mean")
    parse_crew(GOOD)  # a crew that names its host does not use it


def test_non_finite_board_values_are_refused_where_they_are() -> None:
    text = GOOD.replace('date = "2026-12-01"', 'date = "2026-12-01"\nscore = nan\n'
                                                'limits = [1, inf]')
    assert problems(text) == [
        (12, "state.release.score", "nan: the board is JSON, which has no nan or inf"),
        (13, "state.release.limits", "[1, inf]: the board is JSON, which has no nan or inf"),
    ]


def test_unknown_keymap_ids_are_named_with_the_closest_one() -> None:
    text = GOOD.replace("[state]", '[keymap]\n"cockpit.paus" = "space"\n"cockpit.zoom" = " "\n'
                                   '"nothing" = "n"\n"replay.toggle" = "k"\n\n[state]')
    assert problems(text) == [
        (8, "keymap.cockpit.paus", "unknown binding id 'cockpit.paus': did you mean "
                                   "'cockpit.pause'?"),
        (9, "keymap.cockpit.zoom", 'no key: give one or more, comma-separated, as in "space,p"'),
        (10, "keymap.nothing", "unknown binding id 'nothing': `?` in the cockpit lists each "
                               "key's id"),
    ]
    dotted = GOOD.replace("[state]", '[keymap]\ncockpit.pause = "space"\n\n[state]')
    [(line, field, message)] = problems(dotted)
    assert (line, field) == (7, "keymap") and 'quote them, as in "cockpit.pause"' in message
    crew = parse_crew(GOOD.replace("[state]", '[keymap]\n"cockpit.pause" = "space"\n[state]'))
    assert crew.keymap == {"cockpit.pause": "space"}


def read_problem(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_crew(path)
    [(line, field, message)] = caught.value.problems
    assert (line, field) == (None, "")
    return message


def test_a_crew_file_must_be_a_regular_file_of_sane_size(tmp_path: Path) -> None:
    assert read_problem(tmp_path) == "is a directory: a crew file must be a regular file"
    assert read_problem(Path("/dev/zero")) == \
        "is a character device: a crew file must be a regular file"
    big = tmp_path / "big.toml"
    big.write_text(GOOD + "#" * (1 << 20))
    assert read_problem(big) == "is 1.0 MiB: a crew file may be at most 1 MiB of TOML"
    fits = tmp_path / "fits.toml"
    fits.write_text(GOOD + "#" * ((1 << 20) - len(GOOD) - 1) + "\n")
    assert load_crew(fits).name == "release-notes"
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b'name = "x"\n\xff\n')
    assert read_problem(binary).startswith("cannot read: not UTF-8 text")
    crlf = tmp_path / "crlf.toml"
    crlf.write_bytes(GOOD.replace("\n", "\r\n").encode())
    assert load_crew(crlf).state == parse_crew(GOOD).state


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    """Run as the user would, in a process of its own: were the FIFO opened to be read, it
    would wait for a writer forever, and the timeout fails the test instead of hanging it."""
    import os
    import subprocess
    import sys

    fifo = tmp_path / "crew.toml"
    os.mkfifo(fifo)
    link = tmp_path / "link.toml"
    link.symlink_to(fifo)
    for path in (fifo, link):
        done = subprocess.run([sys.executable, "-m", "cockpit", "check", str(path)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2
        assert done.stderr == f"{path}: is a FIFO (named pipe): a crew file must be a " \
                              "regular file\n"


@pytest.mark.parametrize("value", ["[" * 5000 + "]" * 5000, "{a = " * 5000 + "1" + "}" * 5000,
                                   "[" * 40 + "]" * 40])
def test_nesting_too_deep_for_the_parser_is_one_clean_message(value: str) -> None:
    [(line, field, message)] = problems(GOOD + f"\n[state.deep]\nv = {value}\n")
    assert (line, field) == (None, "")
    assert message.startswith("arrays or tables nest too deeply (at most 32 levels")


def chain(n: int, reverse: bool = False) -> str:
    """An n-agent crew where each agent waits for the one before and reads its output."""
    parts = ['name = "chain"\nmodel = "m"\n']
    order = reversed(range(n)) if reverse else range(n)
    for i in order:
        after = f'after = ["a{i - 1}"]\n' if i else ""
        task = f'task = "Go on from {{{{outputs.a{i - 1}}}}}"' if i else 'task = "Start."'
        parts.append(f'\n[[agents]]\nname = "a{i}"\n{after}{task}\n')
    return "".join(parts)


@pytest.mark.parametrize("reverse", [False, True])
def test_a_chain_of_two_thousand_agents_validates(reverse: bool) -> None:
    """Cubic, this took minutes (and, listed last agent first, the recursive cycle search
    overflowed Python's stack): each check is now one pass over the chain."""
    crew = parse_crew(chain(2000, reverse))
    assert len(crew.agents) == 2000
    assert crew.ancestors("a1999") == {f"a{i}" for i in range(1999)}
    assert crew.agent("a1234").after == ["a1233"]


def test_the_long_chains_mistakes_are_still_found() -> None:
    broken = chain(2000).replace("{{outputs.a1499}}", "{{outputs.a1700}}")
    [(line, field, message)] = problems(broken)
    assert field == "agents[1500] (a1500).task" and "add 'a1700' to `after`" in message
    assert broken.splitlines()[line - 1] == 'task = "Go on from {{outputs.a1700}}"'
    looped = chain(2000, reverse=True).replace('name = "a0"\n', 'name = "a0"\nafter = ["a1999"]\n')
    [(_, field, message)] = problems(looped)
    assert field.endswith(".after")
    path = message.removeprefix("dependency cycle: ").split(" -> ")
    assert len(path) == 2001 and path[0] == path[-1]
    assert sorted(path[:-1]) == sorted(f"a{i}" for i in range(2000))
