"""The SSRF policy: which URLs may be called or downloaded (docs/security.md)."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from console.netguard import BlockedURL, UrlPolicy, check_url, host_matches, is_public


def check(url: str, **policy) -> set:
    return asyncio.run(check_url(url, UrlPolicy("API URL", **policy)))


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.1.10", "172.16.0.1", "169.254.169.254",
                                     "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1"])
def test_private_addresses_are_not_public(address):
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses(address):
    assert is_public(ipaddress.ip_address(address))


def test_loopback_blocked_by_default_with_a_hint():
    with pytest.raises(BlockedURL, match=r"private or loopback address \(127\.0\.0\.1\); turn on"):
        check("http://127.0.0.1:8000/v1", switch_hint="turn on it")


def test_localhost_name_is_checked_on_its_resolved_address():
    with pytest.raises(BlockedURL, match="private or loopback"):
        check("http://localhost:8000/v1")


def test_private_allowed_by_switch():
    assert check("http://127.0.0.1:8000/v1", allow_private=True) == {ipaddress.ip_address("127.0.0.1")}


def test_public_ip_literal_passes_without_dns():
    assert check("https://8.8.8.8/v1") == {ipaddress.ip_address("8.8.8.8")}


def test_allowlist_restricts_and_trusts():
    with pytest.raises(BlockedURL, match="not on the allowlist"):
        check("https://8.8.8.8/v1", allowlist=("api.example.com",))
    assert check("http://127.0.0.1/v1", allowlist=("127.0.0.1",))


def test_trusted_host_and_addresses():
    assert check("http://127.0.0.1:9/x", trusted_hosts=frozenset({("127.0.0.1", 9)}))
    assert check("http://localhost:9/x", trusted_addresses=frozenset({(ipaddress.ip_address("127.0.0.1"), 9)}))


@pytest.mark.parametrize("url", ["http://127.0.0.1:10/x", "http://localhost:10/x", "http://127.0.0.1/x"])
def test_the_trusted_host_passes_only_on_its_own_port(url):
    trusted = {"trusted_hosts": frozenset({("127.0.0.1", 9), ("localhost", 9)}),
               "trusted_addresses": frozenset({(ipaddress.ip_address("127.0.0.1"), 9)})}
    with pytest.raises(BlockedURL, match="private or loopback"):
        check(url, **trusted)


@pytest.mark.parametrize("url, own", [
    ("http://127.0.0.1:12607/api/runs", ("127.0.0.1", 12607)),
    ("http://localhost:12607/x", ("127.0.0.1", 12607)),
    ("http://127.0.0.5:12607/x", ("127.0.0.1", 12607)),  # all of 127/8 is this machine
    ("http://[::1]:12607/x", ("127.0.0.1", 12607)),
    ("http://0.0.0.0:12607/x", ("127.0.0.1", 12607)),
    ("http://10.1.2.3:12607/x", ("0.0.0.0", 12607)),  # listening on every address: this one too
    ("http://10.1.2.3:12607/x", ("10.1.2.3", 12607)),
])
def test_the_console_never_calls_its_own_port_whatever_is_allowed(url, own):
    with pytest.raises(BlockedURL, match="points at this console itself"):
        check(url, own=own, allow_private=True, allowlist=("127.0.0.1", "localhost", "127.0.0.5", "::1", "0.0.0.0",
                                                              "10.1.2.3"))


def test_other_ports_and_other_machines_on_the_consoles_port_pass():
    own = ("127.0.0.1", 12607)
    assert check("http://127.0.0.1:12608/x", own=own, allow_private=True)
    assert check("http://10.1.2.3:12607/x", own=own, allow_private=True)  # another machine's 12607
    assert check("https://8.8.8.8:12607/x", own=own)
    assert check("http://10.1.2.3:12607/x", own=("localhost", 12607), allow_private=True)  # not listened on


@pytest.mark.parametrize("url, message", [
    ("file:///etc/passwd", "must use http or https"),
    ("http:///nohost", "has no host"),
    ("http://127.0.0.1:99999/", "invalid port"),
])
def test_malformed_urls(url, message):
    with pytest.raises(BlockedURL, match=message):
        check(url, allow_private=True)


@pytest.mark.parametrize("host, pattern, ok", [
    ("api.example.com", "api.example.com", True),
    ("a.example.com", "*.example.com", True),
    ("example.com", ".example.com", True),
    ("evilexample.com", "*.example.com", False),
    ("API.Example.com.", "api.example.com", True),
])
def test_host_matches(host, pattern, ok):
    assert host_matches(host, pattern) is ok


class CallersError(BlockedURL):
    """A caller's own refusal type, as the upstream client plugs in its BlockedURLError."""


def test_a_policy_raises_the_error_type_it_names():
    with pytest.raises(CallersError, match="private or loopback"):
        check("http://127.0.0.1:8000/v1", error=CallersError)


def test_an_unresolvable_host_is_refused_with_the_policy_error():
    # A label over 63 characters fails IDNA encoding before any DNS query is sent.
    with pytest.raises(CallersError, match="cannot resolve host"):
        check(f"http://{'a' * 64}.test/v1", error=CallersError)


def test_netguard_does_not_import_the_upstream_package():
    # netguard and upstream once imported each other; the policy must stand alone.
    import ast
    from pathlib import Path

    import console.netguard

    tree = ast.parse(Path(console.netguard.__file__).read_text(encoding="utf-8"))
    names = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    names += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert not [name for name in names if "upstream" in name]
