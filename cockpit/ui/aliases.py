"""Short names for a crew's hosts, for places with no room for a URL (a pane's header).

With one host there is nothing to tell apart, so it has no alias and is not shown. With several,
each gets the shortest name that still tells it from the others: its machine's name (the first
label of a DNS name, a whole IP address), with the port only when two share a machine.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from cockpit.core.text import one_line

ALIAS_WIDTH = 16


def _parts(host: str) -> tuple[str, str]:
    """(machine, port) of a host URL; the URL itself when it does not parse."""
    try:
        split = urlsplit(host if "//" in host else f"//{host}")
        name, port = split.hostname or host, split.port
    except ValueError:
        return host, ""
    if not name.replace(".", "").isdigit() and ":" not in name:
        name = name.split(".")[0]  # gpu1.lan -> gpu1; an IP address stays whole
    return name, str(port) if port else ""


def host_aliases(hosts: Iterable[str]) -> dict[str, str]:
    """host -> its alias; "" for a crew's only host: there is nothing to tell apart. A host
    not in the crew (it has none) is shown by its name."""
    unique = sorted(set(hosts))
    if len(unique) < 2:
        return dict.fromkeys(unique, "")
    parts = {host: _parts(host) for host in unique}
    machines = [machine for machine, _ in parts.values()]
    aliases = {}
    for host, (machine, port) in parts.items():
        shared = machines.count(machine) > 1
        if shared and len(set(machines)) == 1:
            alias = f":{port}" if port else host  # one machine, several ports
        elif shared:
            alias = f"{machine}:{port}" if port else host
        else:
            alias = machine
        aliases[host] = one_line(alias, ALIAS_WIDTH)
    return aliases
