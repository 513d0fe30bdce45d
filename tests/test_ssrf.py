"""SSRF: private and loopback addresses refused unless allowed, redirects and allowlists honoured,
and the address checked is the address connected to (no DNS-rebinding window).

Loopback only: a canary on 127.0.0.2 must never see a connection; an allowed target on 127.0.0.3
shows what passing looks like. DNS answers are played by a patched `socket.getaddrinfo` for
names under `.rebind.test`, which never leave the machine.
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
import ssl
from typing import Any, Iterator

import httpx
import pytest

from console.netguard import UrlPolicy, check_url
from console.profile import ApiProfile
from console.settings import resolve
from console.upstream.client import UpstreamClient, make_http_client
from console.upstream.errors import BlockedURLError, ResponseError, TransportError, UpstreamError
from tests.figures import record
from tests.loopback_servers import Target

CHAT = "/v1/chat/completions"
CANARY_IP, TARGET_IP = "127.0.0.2", "127.0.0.3"


@pytest.fixture(scope="module")
def canary() -> Iterator[Target]:
    target = Target(CANARY_IP)
    yield target
    target.close()


@pytest.fixture(scope="module")
def allowed_target() -> Iterator[Target]:
    target = Target(TARGET_IP)
    yield target
    target.close()


@pytest.fixture(autouse=True)
def canary_never_hit(canary) -> Iterator[None]:
    before = canary.hits
    yield
    assert canary.hits == before, "the canary on 127.0.0.2 was reached"


class Resolver:
    """Answer getaddrinfo for `*.rebind.test` from a script (one answer per call, the last repeated)."""

    def __init__(self) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.calls: dict[str, int] = {}
        self._real = socket.getaddrinfo

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if not name.endswith(".rebind.test"):
            return self._real(host, port, *args, **kwargs)
        count = self.calls[name] = self.calls.get(name, 0) + 1
        script = self.answers[name]
        addresses = script[min(count, len(script)) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 0))) for address in addresses]


@pytest.fixture
def dns(monkeypatch) -> Resolver:
    resolver = Resolver()
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    return resolver


def profile(url: str, **fields: Any) -> ApiProfile:
    return ApiProfile.from_dict({"api_url": url, "model": "m", "max_retries": 0, "timeout_s": 10, **fields})


def call(api_url: str, env: dict[str, str] | None = None, http: httpx.AsyncClient | None = None, **fields: Any):
    async def go():
        async with (http or make_http_client()) as client:
            return await UpstreamClient(client, resolve(env or {})).call(profile(api_url, **fields), "p", None)

    return asyncio.run(go())


def refused(api_url: str, error: type[UpstreamError], env: dict[str, str] | None = None, **fields: Any) -> str:
    with pytest.raises(error) as caught:
        call(api_url, env, **fields)
    record("ssrf", refused=1)
    return str(caught.value)


# -- API URLs -------------------------------------------------------------------------------------


def test_an_api_url_on_a_private_address_is_refused_unless_allowed(canary, fake):
    message = refused(canary.url + "/v1" + CHAT, BlockedURLError)
    assert f"private or loopback address ({CANARY_IP})" in message
    assert call(fake.url("g3_stream_dataurl", CHAT), allow_private_api=True).images  # allowed: it works


def test_an_api_url_by_a_name_that_resolves_privately_is_refused(canary, dns):
    dns.answers["gw.rebind.test"] = [[CANARY_IP]]
    message = refused(f"http://gw.rebind.test:{canary.port}/v1" + CHAT, BlockedURLError)
    assert f"({CANARY_IP})" in message


def test_the_api_allowlist_is_honoured(canary, fake):
    env = {"API_URL_HOST_ALLOWLIST": "127.0.0.1"}
    assert call(fake.url("g3_stream_dataurl", CHAT), env).images  # listed: private is fine
    message = refused(canary.url + "/v1" + CHAT, BlockedURLError, env, allow_private_api=True)
    assert "not on the allowlist (127.0.0.1)" in message  # not listed: even the switch does not help


# -- result downloads -----------------------------------------------------------------------------


def test_a_result_url_on_another_private_address_is_refused(canary, fake):
    message = refused(fake.url(f"link_to.ip={CANARY_IP}.port={canary.port}", CHAT), ResponseError,
                      allow_private_api=True)
    assert f"({CANARY_IP})" in message and "allow private downloads" in message


def test_a_redirect_to_a_private_address_is_refused(canary, fake):
    message = refused(fake.url(f"link_to.ip={CANARY_IP}.port={canary.port}.via=redirect", CHAT), ResponseError,
                      allow_private_api=True)
    assert f"({CANARY_IP})" in message
    assert [r.path for r in fake.requests if r.method == "GET"] == ["/files/redirect"]  # the first hop only


def test_downloads_from_the_apis_own_host_pass(fake):
    assert call(fake.url("redirect_url", CHAT), allow_private_api=True).images


def test_private_downloads_pass_when_allowed(allowed_target, fake):
    scenario = fake.url(f"link_to.ip={TARGET_IP}.port={allowed_target.port}", CHAT)
    before = allowed_target.hits
    assert call(scenario, allow_private_api=True, allow_private_downloads=True).images
    assert call(scenario, {"ALLOW_PRIVATE_DOWNLOAD_URL": "1"}, allow_private_api=True).images
    assert allowed_target.hits == before + 2


def test_the_download_allowlist_is_honoured(canary, allowed_target, fake):
    env = {"DOWNLOAD_URL_HOST_ALLOWLIST": TARGET_IP}
    before = allowed_target.hits
    assert call(fake.url(f"link_to.ip={TARGET_IP}.port={allowed_target.port}", CHAT), env,
                allow_private_api=True).images
    assert allowed_target.hits == before + 1
    message = refused(fake.url(f"link_to.ip={CANARY_IP}.port={canary.port}", CHAT), ResponseError, env,
                      allow_private_api=True, allow_private_downloads=True)
    assert "not on the allowlist" in message


# -- the address checked is the address connected to -------------------------------------------------


def rebinding_scenario(fake, canary, dns) -> str:
    """A result on a name that first resolves to the API's own address, then to the canary (same port)."""
    dns.answers["img.rebind.test"] = [["127.0.0.1"], [CANARY_IP]]
    return fake.url(f"link_to.ip=img.rebind.test.port={fake.port}", CHAT)


@pytest.fixture
def canary_on_the_fakes_port(fake) -> Iterator[Target]:
    target = Target(CANARY_IP, fake.port)  # another address, so the same port is free
    yield target
    target.close()


def test_dns_rebinding_between_check_and_connect_cannot_reach_the_canary(fake, canary_on_the_fakes_port, dns):
    outcome = call(rebinding_scenario(fake, canary_on_the_fakes_port, dns), allow_private_api=True)
    assert outcome.images and dns.calls["img.rebind.test"] == 1  # resolved once: checked, then pinned
    assert canary_on_the_fakes_port.hits == 0
    record("ssrf", rebinding_attempts_refused=1)


def test_without_pinning_the_same_rebinding_reaches_the_canary(fake, canary_on_the_fakes_port, dns):
    # The control: a plain httpx client resolves the name again when it connects, and the second
    # answer wins. This is the window the pinned transport closes.
    plain = httpx.AsyncClient(trust_env=False, follow_redirects=False, timeout=None)
    call(rebinding_scenario(fake, canary_on_the_fakes_port, dns), http=plain, allow_private_api=True)
    assert canary_on_the_fakes_port.hits >= 1 and dns.calls["img.rebind.test"] >= 2


def test_a_name_with_a_trusted_and_a_private_address_is_pinned_to_the_trusted_one(fake, canary_on_the_fakes_port, dns):
    # The API's own address lets a download through, but only that address is ever connected to.
    dns.answers["both.rebind.test"] = [[CANARY_IP, "127.0.0.1"]]
    outcome = call(fake.url(f"link_to.ip=both.rebind.test.port={fake.port}", CHAT), allow_private_api=True)
    assert outcome.images and canary_on_the_fakes_port.hits == 0


def test_an_api_name_is_connected_on_the_address_it_was_checked_on(fake, canary_on_the_fakes_port, dns):
    dns.answers["api.rebind.test"] = [["127.0.0.1"], [CANARY_IP]]
    url = f"http://api.rebind.test:{fake.port}/g3_stream_dataurl/v1/chat/completions"
    outcome = call(url, {"API_URL_HOST_ALLOWLIST": "api.rebind.test"})
    assert outcome.images and canary_on_the_fakes_port.hits == 0
    assert fake.requests[-1].headers["host"] == f"api.rebind.test:{fake.port}"  # the name, not the address


def test_when_one_checked_address_refuses_the_next_checked_one_is_tried(fake, dns):
    dns.answers["two.rebind.test"] = [["127.0.0.4", "127.0.0.1"]]  # nothing listens on the first
    url = f"http://two.rebind.test:{fake.port}/g3_stream_dataurl/v1/chat/completions"
    assert call(url, {"API_URL_HOST_ALLOWLIST": "two.rebind.test"}).images
    assert fake.requests[-1].headers["host"] == f"two.rebind.test:{fake.port}"


def test_a_request_whose_host_was_not_checked_is_refused(canary):
    async def go() -> None:
        async with make_http_client() as http:
            await http.get(canary.url + "/x")

    with pytest.raises(httpx.ConnectError, match="not checked by the network policy"):
        asyncio.run(go())


def test_a_check_in_one_task_does_not_open_the_door_for_another(allowed_target):
    # Engine tasks start from the loop's own context, never from one another's.
    policy = UrlPolicy("download URL", allow_private=True)

    async def go() -> None:
        async with make_http_client() as http:
            await check_url(allowed_target.url + "/x", policy)  # this task may reach it now…
            assert (await http.get(allowed_target.url + "/x")).status_code == 200
            other = asyncio.get_running_loop().create_task(http.get(allowed_target.url + "/y"), context=contextvars.Context())
            await other  # …a task that did not check it may not

    before = allowed_target.hits
    with pytest.raises(httpx.ConnectError, match="not checked"):
        asyncio.run(go())
    assert allowed_target.hits == before + 1  # the checked request only


def test_a_run_with_a_hostile_result_link_fails_readably_and_the_canary_stays_dark(client, canary, fake, tmp_path):
    from tests.helpers import make_sources, start, wait_idle

    run_id = start(client, fake, make_sources(tmp_path / "src", 2), f"link_to.ip={CANARY_IP}.port={canary.port}")
    tasks = wait_idle(client, run_id)["tasks"]
    assert {t["status"] for t in tasks} == {"failed"}
    assert all(f"({CANARY_IP})" in t["error"] for t in tasks)
    record("ssrf", refused=len(tasks))


def test_transport_errors_name_the_host_not_the_pinned_address(fake):
    # A gateway that is down: the message names the URL's host as the user typed it.
    with pytest.raises(TransportError, match="connection to 127.0.0.1:9 failed"):
        call("http://127.0.0.1:9/v1", allow_private_api=True)


# -- https: the pinned address, the name for SNI and the certificate ---------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory) -> Iterator[tuple[int, ssl.SSLContext]]:
    """An https image server on 127.0.0.1 whose certificate names `tls.rebind.test` (made by openssl)."""
    import shutil
    import subprocess
    import threading
    from http.server import ThreadingHTTPServer

    from tests.loopback_servers import _Handler

    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificate")
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=tls.rebind.test", "-addext", "subjectAltName=DNS:tls.rebind.test,DNS:*.tls.rebind.test"],
                   check=True, capture_output=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    server.socket = served.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    trusting = ssl.create_default_context(cafile=str(cert))
    yield server.server_address[1], trusting
    server.shutdown()
    server.server_close()


def tls_get(url: str, context, *more: str) -> httpx.Response:
    """GET `url` (then `more`) through one PinnedTransport; return the first answer, with the transport on it."""
    from console.upstream.transport import PinnedTransport

    async def go() -> httpx.Response:
        transport = PinnedTransport(httpx.Limits(max_connections=4), ssl_context=context)
        async with httpx.AsyncClient(transport=transport, trust_env=False) as http:
            answers = []
            for each in (url, *more):
                await check_url(each, UrlPolicy("download URL", allow_private=True))
                answers.append(await http.get(each))
                answers[-1].pools = list(transport._tls)
            first = answers[0]
            first.later = answers[1:]
            return first

    return asyncio.run(go())


def test_https_goes_to_the_pinned_address_with_the_name_for_sni_and_the_certificate(tls_server, dns):
    port, context = tls_server
    dns.answers["tls.rebind.test"] = [["127.0.0.1"], [CANARY_IP]]
    answer = tls_get(f"https://tls.rebind.test:{port}/image.png", context)
    assert answer.status_code == 200 and answer.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert dns.calls["tls.rebind.test"] == 1


def test_https_to_a_name_the_certificate_does_not_cover_fails(tls_server, dns):
    port, context = tls_server
    dns.answers["other.rebind.test"] = [["127.0.0.1"]]
    with pytest.raises(httpx.ConnectError, match="certificate"):
        tls_get(f"https://other.rebind.test:{port}/image.png", context)


def test_each_tls_name_gets_its_own_pool_and_idle_ones_are_closed_beyond_the_cap(tls_server, dns, monkeypatch):
    # Two names on one address never share a TLS connection (it was authenticated for one name);
    # past TLS_HOSTS names, the least recently used idle pool is closed.
    import console.upstream.transport as transport

    monkeypatch.setattr(transport, "TLS_HOSTS", 2)
    port, context = tls_server
    names = [f"n{number}.tls.rebind.test" for number in range(4)]
    for name in names:
        dns.answers[name] = [["127.0.0.1"]]
    urls = [f"https://{name}:{port}/i.png" for name in names]
    first = tls_get(urls[0], context, *urls[1:])
    pools = [answer.pools for answer in [first, *first.later]]
    assert pools[1] == names[:2] and pools[-1] == names[2:]
    assert all(answer.status_code == 200 for answer in [first, *first.later])
