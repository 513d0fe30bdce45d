"""Decide which URLs the server may call or download from (the SSRF policy of DESIGN §7).

Public addresses pass. Private, loopback, link-local and other non-global addresses pass only
when the user allowed them (profile switch or server setting), when the host is on a configured
allowlist, or, for downloads, when the URL is on the API's own host (a gateway on
127.0.0.1:8000 serves its own images). The check is made on every address the name resolves
to, not on the name alone, and callers repeat it for every redirect.

Residual risk: the name is resolved again when httpx connects, so a DNS server that answers
differently within that instant (rebinding) is not stopped here.

This module imports nothing from `console.upstream`: a refused URL raises `BlockedURL`, or the
subclass a policy names in `error`, so the upstream client gets its own error type without an
import cycle (issue 9).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedURL(Exception):
    """The policy does not allow this URL (or its host cannot be resolved)."""


@dataclass(frozen=True)
class UrlPolicy:
    """What one kind of request (API call or download) may reach."""

    purpose: str  # "API URL" or "download URL", for messages
    allow_private: bool = False
    allowlist: tuple[str, ...] = ()
    trusted_hosts: frozenset[str] = field(default_factory=frozenset)  # names that always pass
    trusted_addresses: frozenset[IPAddress] = field(default_factory=frozenset)
    switch_hint: str = ""  # how the user turns private addresses on
    error: type[BlockedURL] = BlockedURL  # what a refusal raises: callers plug in their own subclass


def host_matches(host: str, pattern: str) -> bool:
    """Return True when `host` equals `pattern` or is under a `*.domain` / `.domain` pattern."""
    host, pattern = host.lower().rstrip("."), pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        pattern = pattern[1:]
    if pattern.startswith("."):
        return host.endswith(pattern) or host == pattern[1:]
    return host == pattern


def is_public(address: IPAddress) -> bool:
    """Return True for a globally routable unicast address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def resolve(host: str, port: int, error: type[BlockedURL] = BlockedURL) -> set[IPAddress]:
    """Return every address `host` resolves to (an IP literal resolves to itself); raise `error` if none."""
    try:
        return {ipaddress.ip_address(host.strip("[]"))}
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise error(f"cannot resolve host {host!r}: {exc}") from None
    return {ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos}


async def check_url(url: str, policy: UrlPolicy) -> set[IPAddress]:
    """Raise `policy.error` unless `policy` allows `url`; return the addresses it resolves to."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise policy.error(f"{policy.purpose} must use http or https: {_short(url)}")
    host = parts.hostname
    if not host:
        raise policy.error(f"{policy.purpose} has no host: {_short(url)}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise policy.error(f"{policy.purpose} has an invalid port: {_short(url)}") from None
    listed = any(host_matches(host, pattern) for pattern in policy.allowlist)
    if policy.allowlist and not listed and host.lower() not in policy.trusted_hosts:
        raise policy.error(f"{policy.purpose} host {host} is not on the allowlist ({', '.join(policy.allowlist)})")
    addresses = await resolve(host, port, policy.error)
    if listed or policy.allow_private or host.lower() in policy.trusted_hosts:
        return addresses
    if addresses & policy.trusted_addresses:
        return addresses
    private = sorted(str(address) for address in addresses if not is_public(address))
    if private:
        hint = f"; {policy.switch_hint}" if policy.switch_hint else ""
        raise policy.error(
            f"{policy.purpose} {_short(url)} points at a private or loopback address ({', '.join(private)}){hint}"
        )
    return addresses


def _short(url: str) -> str:
    return url if len(url) <= 120 else url[:120] + "…"
