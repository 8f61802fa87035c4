"""`cockpit check --probe`: ask every host of a crew what it has, before the crew runs.

A crew started at 11 PM whose writer names a model nobody pulled fails at 3 AM, when the
planner it waits for has finished. Each host is asked once (`/api/tags`, what `ollama list`
shows); each model an agent needs is then present, or missing with the `ollama pull` that
fixes it. An agent with a pool of hosts needs its model on one host of the pool that answers,
as the run's host choice does. The embedded engine is not asked: it starts with the crew and
serves its one bundled model, so the check is whether it is installed and whether the agents
name that model.
"""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass, field

from cockpit.core.config import EMBEDDED_HOST, CrewConfig, default_host
from cockpit.core.model_names import canonical
from cockpit.core.text import one_line

PROBE_TIMEOUT = 10.0
"""Seconds a host has to answer: a host that is up answers `/api/tags` in milliseconds."""


@dataclass
class Answer:
    """What one host said: its models, or why it could not be asked."""

    host: str
    models: list[str] | None = None
    error: str = ""


@dataclass
class Need:
    """A model some agents need from a pool of hosts (one host, usually)."""

    model: str
    hosts: list[str]
    agents: list[str] = field(default_factory=list)


def needs(crew: CrewConfig) -> list[Need]:
    """Each (model, pool) the crew needs, with the agents that need it, in crew order."""
    found: dict[tuple[str, tuple[str, ...]], Need] = {}
    for agent in crew.agents:
        model, hosts = crew.model_for(agent), crew.hosts_for(agent)
        need = found.setdefault((canonical(model), tuple(hosts)), Need(model, hosts))
        need.agents.append(agent.name)
    return list(found.values())


async def ask(host: str, timeout: float = PROBE_TIMEOUT) -> Answer:
    """The models `host` has, as the run's own client reaches it (ollama.AsyncClient)."""
    import httpx
    import ollama

    from cockpit.core.hosts import unreachable

    client = ollama.AsyncClient(host=host, timeout=httpx.Timeout(timeout))
    try:
        async with asyncio.timeout(timeout):
            listed = await client.list()
    except TimeoutError:
        return Answer(host, error=f"no answer within {timeout:g} s")
    except ollama.ResponseError as error:
        return Answer(host, error=f"answered {error.status_code}: {one_line(error.error, 200)}")
    except Exception as error:  # noqa: BLE001 - whatever stops the request is the answer
        cause = error.__cause__ or error.__context__ or error
        why = "unreachable" if unreachable(error) else type(error).__name__
        return Answer(host, error=f"{why} ({one_line(str(cause) or type(cause).__name__, 200)})")
    finally:
        await client.close()  # type: ignore[no-untyped-call]
    return Answer(host, models=[canonical(m.model or "") for m in listed.models])


def embedded_answer() -> Answer:
    """The embedded engine's one model, or why it cannot start (the extra is missing)."""
    from cockpit.embedded.llama import MODEL_NAME, EngineUnavailable, model_path

    try:
        model_path()
    except EngineUnavailable as error:
        return Answer(EMBEDDED_HOST, error=str(error))
    return Answer(EMBEDDED_HOST, models=[canonical(MODEL_NAME)])


async def probe(crew: CrewConfig, timeout: float = PROBE_TIMEOUT) -> dict[str, Answer]:
    """Every host of the crew, asked at once; in crew order."""
    hosts = list(dict.fromkeys(host for agent in crew.agents for host in crew.hosts_for(agent)))
    remote = [host for host in hosts if host != EMBEDDED_HOST]
    answers = dict(zip(remote, await asyncio.gather(*(ask(h, timeout) for h in remote)),
                       strict=True))
    if EMBEDDED_HOST in hosts:
        answers[EMBEDDED_HOST] = embedded_answer()
    return answers


def pull_command(model: str, host: str) -> str:
    """The shell command that puts `model` on `host` (`ollama` talks to OLLAMA_HOST, else
    the default address)."""
    pull = f"ollama pull {shlex.quote(one_line(model, 200))}"
    return pull if host == default_host() else f"OLLAMA_HOST={shlex.quote(host)} {pull}"


def report(crew: CrewConfig, answers: dict[str, Answer]) -> tuple[list[str], list[str]]:
    """(lines, problems): per host what it has and what the crew needs from it, then each
    problem (a missing model, an unreachable host) on a line of its own."""
    wanted = needs(crew)
    lines: list[str] = [f"probe: {_count(len(answers), 'host')}"]
    problems: list[str] = []
    for host, answer in answers.items():
        have = set(answer.models or [])
        if answer.models is None:
            lines.append(f"  {host}: {answer.error}")
            problems.append(f"{host}: {answer.error}" if host != EMBEDDED_HOST
                            else f"embedded: {answer.error}")
        elif host == EMBEDDED_HOST:
            lines.append(f"  {host}: the bundled engine, started with the crew (nothing to "
                         f"probe); it serves {', '.join(sorted(have))}")
        else:
            listed = ", ".join(sorted(have)) if have else "none"
            lines.append(f"  {host}: {_count(len(have), 'model')} ({one_line(listed, 200)})")
        here = [need for need in wanted if host in need.hosts]
        width = max((len(one_line(need.model, 80)) for need in here), default=0)
        for need in here:
            users = f"({', '.join(need.agents)})"
            name = one_line(need.model, 80).ljust(width)
            if answer.models is None:
                lines.append(f"    {name}  not checked  {users}")
            elif canonical(need.model) in have:
                lines.append(f"    {name}  present  {users}")
            elif host == EMBEDDED_HOST:
                lines.append(f"    {name}  missing  {users}: the embedded engine serves only "
                             f"{', '.join(sorted(have))}")
            else:
                elsewhere = [h for h in need.hosts if canonical(need.model) in
                             set(answers[h].models or [])]
                fix = (f"the pool has it on {', '.join(elsewhere)}" if elsewhere
                       else pull_command(need.model, host))
                lines.append(f"    {name}  missing  {users}: {fix}")
    for need in wanted:
        if not any(canonical(need.model) in set(answers[h].models or []) for h in need.hosts):
            reached = [h for h in need.hosts if answers[h].models is not None]
            if not reached:
                continue  # the unreachable host is the problem, said above
            if reached == [EMBEDDED_HOST]:
                fix = "name the embedded engine's model"
            else:
                fix = pull_command(need.model, next(h for h in reached if h != EMBEDDED_HOST))
            problems.append(f"{one_line(need.model, 80)} is missing for "
                            f"{', '.join(need.agents)}: {fix}")
    if not problems:
        lines.append("probe: every host answered and has the models its agents need")
    return lines, problems


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")
