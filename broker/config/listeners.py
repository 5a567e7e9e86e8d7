"""Listener addresses: `listeners` and `advertised.listeners`.

An entry is `NAME://host:port` or a bare `host:port` (named PLAINTEXT). The
host may be empty (all interfaces when binding; when advertising, the server
substitutes this machine's name), a name, an IPv4 address or a bracketed IPv6
address (`[::1]:9092`). Port 0 asks the OS for a free port. Listener names are
case-insensitive and normalised to upper case; tierbroker speaks PLAINTEXT on
every listener whatever it is called.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

_LISTENER = re.compile(
    r"(?:(?P<name>[A-Za-z0-9_]+)://)?(?P<host>\[[^\]\s]*\]|[^:/\[\]\s]*):(?P<port>[0-9]+)"
)
_WILDCARDS = ("0.0.0.0", "::")


class Listener(NamedTuple):
    """A parsed listener; `host` is "" for all interfaces, IPv6 without brackets."""

    name: str
    host: str
    port: int


def parse_listener(text: str) -> Listener:
    """Parse one entry; raise ValueError(reason) if it is malformed."""
    m = _LISTENER.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"{text} is not NAME://host:port or host:port")
    port = int(m["port"])
    if port > 65535:
        raise ValueError(f"{text}: port must be between 0 and 65535")
    host = m["host"]
    if host.startswith("["):
        host = host[1:-1]
    return Listener((m["name"] or "PLAINTEXT").upper(), host, port)


def parse_listeners(entries: Sequence[str]) -> list[Listener]:
    """Parse a listener list; names must be distinct."""
    listeners = [parse_listener(e) for e in entries]
    names = [l.name for l in listeners]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"listener name {name} appears more than once")
    return listeners


def listener_list(entries: Sequence[str]) -> str | None:
    """Validator for `listeners`."""
    if not entries:
        return "must name at least one listener"
    try:
        parse_listeners(entries)
    except ValueError as e:
        return str(e)
    return None


def advertised_listener_list(entries: Sequence[str]) -> str | None:
    """Validator for `advertised.listeners`: as `listeners`, and no wildcard host,
    since a client cannot connect to "any address"."""
    reason = listener_list(entries)
    if reason is not None:
        return reason
    for listener in parse_listeners(entries):
        if listener.host in _WILDCARDS:
            return f"cannot advertise the wildcard address {listener.host}"
    return None
