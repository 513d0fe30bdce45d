"""An explicit proxy for API calls and result downloads, against proxies the tests run on loopback."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import httpx
import pytest

from console.netguard import UrlPolicy, check_url
from console.profile import ApiProfile, ProfileError
from console.settings import SettingsError, resolve
from console.upstream import BlockedURLError, ResponseError, StatusError, TransportError
from console.upstream.client import UpstreamClient, make_http_client
from console.upstream.debuglog import DebugLog
from console.upstream.payload import Source
from console.upstream.proxy import HttpClients
from testkit.images import JPEG
from tests.proxy_server import HttpProxy, Socks5Proxy, TlsFront, Use

CHAT = "/v1/chat/completions"
SOURCE = Source("cat.jpg", JPEG, "image/jpeg")


@pytest.fixture
def proxy():
    with HttpProxy() as server:
        yield server


@pytest.fixture
def socks():
    with Socks5Proxy() as server:
        yield server


def profile(url: str, **fields: Any) -> ApiProfile:
    return ApiProfile.from_dict({"api_url": url, "api_key": "sk-proxy-test", "model": "grok-imagine-1.0-edit",
                                 "allow_private_api": True, "max_retries": 0, "timeout_s": 20, **fields})


def call(chosen: ApiProfile, *, env: dict[str, str] | None = None, http: httpx.AsyncClient | None = None,
         debug: DebugLog | None = None):
    async def go():
        async with (http or make_http_client()) as client:
            return await UpstreamClient(client, resolve(env or {})).call(chosen, "make it blue", SOURCE, debug=debug)

    return asyncio.run(go())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- what a proxy URL may be --------------------------------------------------------------------


@pytest.mark.parametrize("given, kept", [("", ""), ("direct", "direct"), (" Direct ", "direct"),
                                         ("http://127.0.0.1:7890", "http://127.0.0.1:7890"),
                                         ("https://proxy.example.com", "https://proxy.example.com"),
                                         ("socks5://[::1]:1080/", "socks5://[::1]:1080/"),
                                         ("socks5h://127.0.0.1:1080", "socks5h://127.0.0.1:1080")])
def test_a_profile_takes_a_proxy_url(given, kept):
    assert ApiProfile.from_dict({"proxy_url": given}).proxy_url == kept


@pytest.mark.parametrize("given, said", [
    ("ftp://127.0.0.1:21", "proxy_url must start with http://, https://, socks5:// or socks5h://"),
    ("127.0.0.1:7890", "proxy_url must start with"),
    ("http://", "proxy_url has no host"),
    ("socks5://127.0.0.1", "proxy_url needs a port"),
    ("http://127.0.0.1:99999", "proxy_url has an invalid port"),
    ("http://127.0.0.1:7890/path", "nothing after it"),
    ("http://user:s3cret@127.0.0.1:7890", "cannot hold a user name or password here"),
    ("http://127.0.0.1:7890\u200b", "position 22"),
    (5, "proxy_url must be a string"),
])
def test_a_bad_proxy_url_is_refused_naming_the_field(given, said):
    with pytest.raises(ProfileError) as caught:
        ApiProfile.from_dict({"proxy_url": given})
    assert said in str(caught.value) and "s3cret" not in str(caught.value)


def test_the_server_setting_may_hold_a_login_and_never_echoes_it():
    assert resolve({"PROXY_URL": "http://u:s3cret@127.0.0.1:3128"}).proxy_url == "http://u:s3cret@127.0.0.1:3128"
    assert resolve({}).proxy_url == ""
    for bad, said in (("ftp://u:s3cret@h:1", "must start with"), ("direct", "leave PROXY_URL unset")):
        with pytest.raises(SettingsError) as caught:
            resolve({"PROXY_URL": bad})
        message = str(caught.value)
        assert said in message and "s3cret" not in message and "PROXY_URL=(value hidden)" in message


# -- the traffic goes through the proxy ------------------------------------------------------------


def test_calls_and_result_downloads_go_through_the_profiles_proxy(fake, proxy):
    outcome = call(profile(fake.url("g16_stream_url", CHAT), proxy_url=proxy.url))
    assert [image.data for image in outcome.images] == fake.expected("g16_stream_url")
    netloc = f"127.0.0.1:{fake.port}"
    assert proxy.uses == [Use("POST", netloc), Use("GET", netloc)]  # the call, then the image download
    assert [r.method for r in fake.requests] == ["POST", "GET"]
    assert fake.requests[0].headers["authorization"] == "Bearer sk-proxy-test"


def test_the_server_proxy_is_used_with_its_login_and_the_password_is_never_shown(fake):
    with HttpProxy(login=("team", "s3cret-pw")) as proxy:
        debug = DebugLog(["sk-proxy-test"])
        outcome = call(profile(fake.url("g3_stream_dataurl", CHAT)), env={"PROXY_URL": proxy.url}, debug=debug)
        assert [image.data for image in outcome.images] == fake.expected("g3_stream_dataurl")
        assert proxy.uses == [Use("POST", f"127.0.0.1:{fake.port}", "team:s3cret-pw")]
        assert f"through the proxy http://127.0.0.1:{proxy.port}" in debug.text()
        assert "s3cret-pw" not in debug.text() and "team" not in debug.text()
        with pytest.raises(StatusError) as caught:  # the same proxy without the login: its 407, verbatim
            call(profile(fake.url("g3_stream_dataurl", CHAT), proxy_url=f"http://127.0.0.1:{proxy.port}"))
        assert caught.value.http_status == 407


def test_direct_skips_the_servers_proxy(fake, proxy):
    call(profile(fake.url("g3_stream_dataurl", CHAT), proxy_url="direct"), env={"PROXY_URL": proxy.url})
    assert proxy.uses == [] and len(fake.requests) == 1


def test_environment_proxies_are_never_used(fake, proxy, monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    call(profile(fake.url("g16_stream_url", CHAT)), env=dict(os.environ))
    assert proxy.uses == [] and len(fake.requests) == 2


def test_socks5_gets_the_host_name_and_resolves_it(fake, socks):
    outcome = call(profile(f"http://localhost:{fake.port}/g3_stream_dataurl{CHAT}", proxy_url=socks.url))
    assert [image.data for image in outcome.images] == fake.expected("g3_stream_dataurl")
    assert socks.uses == [Use("SOCKS5", f"localhost:{fake.port}")]


def test_socks5_with_a_login(fake):
    with Socks5Proxy(login=("u1", "pw1")) as socks:
        call(profile(fake.url("g3_stream_dataurl", CHAT)), env={"PROXY_URL": socks.url.replace("socks5", "socks5h")})
        assert socks.uses == [Use("SOCKS5", f"127.0.0.1:{fake.port}", "u1:pw1")]


def test_https_goes_through_a_connect_tunnel_with_the_certificate_checked(fake, proxy, tmp_path):
    front = TlsFront(fake.port, tmp_path)
    try:
        url = f"https://localhost:{front.port}/g3_stream_dataurl{CHAT}"
        trusting = HttpClients(httpx.Limits(max_connections=8), ssl_context=front.client_context())
        outcome = call(profile(url, proxy_url=proxy.url), http=trusting)
        assert [image.data for image in outcome.images] == fake.expected("g3_stream_dataurl")
        assert proxy.uses == [Use("CONNECT", f"localhost:{front.port}")] and len(front.uses) == 1
        assert fake.requests[0].headers["authorization"] == "Bearer sk-proxy-test"  # inside the tunnel
        proxy.reset()
        with pytest.raises(TransportError) as caught:  # the default trust store does not know this certificate
            call(profile(url, proxy_url=proxy.url))
        assert f"through the proxy http://127.0.0.1:{proxy.port}" in str(caught.value)
        assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    finally:
        front.close()


def test_test_connection_goes_through_the_proxy(fake, proxy):
    async def go():
        async with make_http_client() as http:
            return await UpstreamClient(http, resolve({})).models(profile(fake.api_base("g3_stream_dataurl"),
                                                                           proxy_url=proxy.url))

    status, models = asyncio.run(go())
    assert status == 200 and "grok-imagine-1.0-edit" in models
    assert proxy.uses == [Use("GET", f"127.0.0.1:{fake.port}")]


def test_a_proxy_that_is_down_is_named_in_the_error(fake):
    port = free_port()
    with pytest.raises(TransportError) as caught:
        call(profile(fake.url("g3_stream_dataurl", CHAT), proxy_url=f"http://127.0.0.1:{port}"))
    assert f"through the proxy http://127.0.0.1:{port}" in str(caught.value) and fake.requests == []


# -- the network policy still decides what is reached ------------------------------------------------


def test_a_private_link_in_an_answer_is_refused_before_the_proxy_is_asked(fake, proxy):
    segment = f"link_to.ip=127.0.0.2.port={fake.port}"
    with pytest.raises(ResponseError) as caught:
        call(profile(fake.url(segment, CHAT), proxy_url=proxy.url))
    assert "127.0.0.2" in str(caught.value) and "private" in str(caught.value)
    assert proxy.uses == [Use("POST", f"127.0.0.1:{fake.port}")]  # the call only, never the link


def test_a_private_api_url_is_refused_without_the_switch(fake, proxy):
    with pytest.raises(BlockedURLError):
        call(profile(fake.url("g3_stream_dataurl", CHAT), proxy_url=proxy.url, allow_private_api=False))
    assert proxy.uses == [] and fake.requests == []


def test_the_proxy_client_refuses_a_host_the_policy_did_not_check(fake, proxy):
    async def go():
        async with make_http_client() as http:
            client = http.through(proxy.url)
            with pytest.raises(httpx.ConnectError, match="was not checked by the network policy"):
                await client.get(fake.url("g3_stream_dataurl", "/v1/models"))
            await check_url(fake.url("g3_stream_dataurl", "/v1/models"), UrlPolicy("API URL", allow_private=True))
            return (await client.get(fake.url("g3_stream_dataurl", "/v1/models"))).status_code

    assert asyncio.run(go()) == 200
    assert proxy.uses == [Use("GET", f"127.0.0.1:{fake.port}")]


def test_one_client_per_proxy_url_closed_with_the_shared_one(proxy, socks):
    async def go():
        http = make_http_client()
        first, again, other = http.through(proxy.url), http.through(proxy.url), http.through(socks.url)
        assert first is again and first is not other and http.through("") is http
        await http.aclose()
        return first.is_closed and other.is_closed

    assert asyncio.run(go())


def test_the_images_still_match_through_a_proxy_on_a_big_answer(fake, proxy):
    outcome = call(profile(fake.url("big_dataurl.mb=4", CHAT), proxy_url=proxy.url))
    assert outcome.images[0].data == fake.expected("big_dataurl.mb=4")[0]  # 4 MiB relayed intact
