"""Decide which URLs the server may call or download from (the SSRF policy in docs/security.md).

Public addresses pass. Private, loopback, link-local and other non-global addresses pass only
when the user allowed them (profile switch or server setting), when the host is on a configured
allowlist, or, for downloads, when the URL is on the API's own host and port (a gateway on
127.0.0.1:8000 serves its own images; another port of that host is another service). The check
is made on every address the name resolves to, not on the name alone, and callers repeat it for
every redirect. Whatever is allowed, the console never calls its own port on this machine.

The checked addresses are pinned: `check_url` records them for the current asyncio
task, and the upstream transport (`console.upstream.transport`) connects to those addresses and
nowhere else, so a DNS server that answers differently when the connection is made (rebinding)
cannot send a request to an address the policy never saw. A request whose host was not checked
in the same task is refused.

This module imports nothing from `console.upstream`: a refused URL raises `BlockedURL`, or the
subclass a policy names in `error`, so the upstream client gets its own error type without an
import cycle.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import socket
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping
from urllib.parse import urlsplit

from .masking import mask_url
from .messages import say

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
PinKey = tuple[str, int]
DEFAULT_PORTS = {"http": 80, "https": 443}  # the schemes an API or download URL may use, and their ports
URL_SCHEMES = tuple(DEFAULT_PORTS)
MAX_PINS = 64  # hosts remembered per task; a task checks one API host and a few download hosts

_PINS: contextvars.ContextVar[Mapping[PinKey, tuple[IPAddress, ...]]] = contextvars.ContextVar(
    "netguard_pins", default=MappingProxyType({}))


class BlockedURL(Exception):
    """The policy does not allow this URL (or its host cannot be resolved)."""


@dataclass(frozen=True)
class UrlPolicy:
    """What one kind of request (API call or download) may reach."""

    purpose: str  # "API URL" or "download URL", for messages (a Message, said in the page's language too)
    allow_private: bool = False
    allowlist: tuple[str, ...] = ()
    trusted_hosts: frozenset[PinKey] = field(default_factory=frozenset)  # (name, port) that always pass: `pin_key`
    trusted_addresses: frozenset[tuple[IPAddress, int]] = field(default_factory=frozenset)  # (address, port)
    own: PinKey | None = None  # the console's own (listening host, port): never reached, whatever is allowed
    switch_hint: str = ""  # how the user turns private addresses on (a Message too)
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
    return set(await resolve_ordered(host, port, error))


async def resolve_ordered(host: str, port: int, error: type[BlockedURL] = BlockedURL) -> tuple[IPAddress, ...]:
    """Return the addresses of `host` in the resolver's order of preference, without repeats."""
    try:
        return (ipaddress.ip_address(host.strip("[]")),)
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise error(say("config.host_unresolved", host=host, said=str(exc))) from None
    found = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not found:
        raise error(say("config.host_no_address", host=host))
    return tuple(dict.fromkeys(found))


def pin_key(host: str, port: int) -> PinKey:
    """Return how a checked host and port are remembered (lower case, IDNA, IPv6 without brackets)."""
    name = host.strip("[]").lower()
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    return name, port


def pin(host: str, port: int, addresses: tuple[IPAddress, ...]) -> None:
    """Remember, for the current asyncio task only, the addresses `host:port` was checked on."""
    pins = dict(_PINS.get())
    pins.pop(pin_key(host, port), None)
    pins[pin_key(host, port)] = addresses
    while len(pins) > MAX_PINS:
        del pins[next(iter(pins))]
    _PINS.set(MappingProxyType(pins))  # a new mapping: tasks that copied the old one keep theirs


def pinned(host: str, port: int) -> tuple[IPAddress, ...] | None:
    """Return the addresses `check_url` let this task reach `host:port` on, or None when it was not checked."""
    return _PINS.get().get(pin_key(host, port))


async def check_url(url: str, policy: UrlPolicy) -> set[IPAddress]:
    """Raise `policy.error` unless `policy` allows `url`; return the addresses it resolves to.

    The addresses are pinned for the current task: the transport connects to them and no other.
    """
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise policy.error(say("config.policy_scheme", purpose=policy.purpose, url=_short(url)))
    host = parts.hostname
    if not host:
        raise policy.error(say("config.policy_no_host", purpose=policy.purpose, url=_short(url)))
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise policy.error(say("config.policy_bad_port", purpose=policy.purpose, url=_short(url))) from None
    listed = any(host_matches(host, pattern) for pattern in policy.allowlist)
    trusted = pin_key(host, port) in policy.trusted_hosts
    if policy.allowlist and not listed and not trusted:
        raise policy.error(say("config.policy_not_listed", purpose=policy.purpose, host=host,
                               allowlist=", ".join(policy.allowlist)))
    ordered = await resolve_ordered(host, port, policy.error)
    _refuse_own(url, ordered, port, policy)
    allowed = ordered
    if not (listed or policy.allow_private or trusted):
        # Only public addresses and the API's own are ever connected to: a name that resolves to
        # the API's address and another private one is pinned to the API's alone.
        own_api = {address for address, api_port in policy.trusted_addresses if api_port == port}
        allowed = tuple(a for a in ordered if is_public(a) or a in own_api)
        if len(allowed) < len(ordered) and not set(ordered) & own_api:
            private = sorted(str(address) for address in ordered if address not in allowed)
            shown, addresses = _short(url), ", ".join(private)
            raise policy.error(
                say("config.policy_private_hint", purpose=policy.purpose, url=shown, addresses=addresses,
                    hint=policy.switch_hint) if policy.switch_hint
                else say("config.policy_private", purpose=policy.purpose, url=shown, addresses=addresses)
            )
    pin(host, port, allowed)
    return set(ordered)


def _is_own(address: IPAddress, port: int, own: PinKey | None) -> bool:
    """Return True when `address:port` reaches the console itself: its port on loopback, on any
    address when it listens on every one, or on the address it listens on."""
    if own is None or port != own[1]:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback or address.is_unspecified:
        return True
    try:
        listening = ipaddress.ip_address(own[0].strip("[]"))
    except ValueError:  # every address (""), or a name: loopback for localhost, else maybe any of this machine's
        return own[0].strip().lower() not in ("localhost", "localhost.", "ip6-localhost")
    return listening.is_unspecified or listening == address


def _refuse_own(url: str, addresses: tuple[IPAddress, ...], port: int, policy: UrlPolicy) -> None:
    """Raise `policy.error` when `url` reaches the console itself (its own API, its own files)."""
    if any(_is_own(address, port, policy.own) for address in addresses):
        raise policy.error(say("config.policy_own", purpose=policy.purpose, url=_short(url), port=str(port)))


def _short(url: str) -> str:
    url = mask_url(url)  # a refusal quotes the URL: never a ?key= credential in it
    return url if len(url) <= 120 else url[:120] + "…"
