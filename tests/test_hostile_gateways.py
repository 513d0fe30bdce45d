"""Hostile or broken gateways, end to end: a router's cooldown, a URL with a query, unbounded
streams, image URLs on other loopback ports, and connections that never send a request."""

from __future__ import annotations

import asyncio
from typing import Iterator

import pytest

from console.profile import ApiProfile
from console.settings import resolve
from console.upstream.client import UpstreamClient, make_http_client
from console.upstream.errors import ResponseError
from tests.fake_upstream import FakeUpstream
from tests.loopback_servers import Target

CHAT = "/v1/chat/completions"
AZURE_QUERY = "api-version=2025-04-01-preview"


def _client_call(fake: FakeUpstream, api_url: str, settings=None, **fields) -> object:
    """Make one real call through the upstream client (no retry waits)."""
    profile = ApiProfile.from_dict({"api_url": api_url, "model": "gpt-image-1", "allow_private_api": True,
                                    "max_retries": 0, "timeout_s": 20, **fields})

    async def go():
        async with make_http_client() as http:
            return await UpstreamClient(http, settings or resolve({})).call(profile, "make it blue")

    return asyncio.run(go())


# -- a URL with a query string (Azure OpenAI's ?api-version=) -------------------------------------


def test_test_connection_keeps_the_query_after_the_models_path(app, fake):
    api = {"api_url": f"{fake.api_base('g3_stream_dataurl')}?{AZURE_QUERY}", "api_key": "sk-azure",
           "allow_private_api": True}
    answer = app.test_client().post("/api/test-connection", json={"api": api})
    assert answer.status_code == 200 and answer.json["ok"] is True, answer.json
    sent = fake.requests[-1]
    assert (sent.method, sent.path) == ("GET", "/g3_stream_dataurl/v1/models")
    assert sent.query == {"api-version": "2025-04-01-preview"}


def test_a_run_keeps_the_query_after_the_endpoint_path(fake):
    outcome = _client_call(fake, f"{fake.api_base('g3_stream_dataurl')}?{AZURE_QUERY}")
    assert outcome.images
    sent = fake.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/g3_stream_dataurl/v1/chat/completions")
    assert sent.query == {"api-version": "2025-04-01-preview"}


# -- an image URL on another port of the API's host, or on the console's own ---------------------


@pytest.fixture
def neighbour() -> Iterator[Target]:
    """Another service on the fake gateway's host (127.0.0.1), on a port of its own: it must stay dark."""
    target = Target("127.0.0.1")
    yield target
    target.close()


def test_an_image_url_on_another_port_of_the_apis_host_is_refused(fake, neighbour):
    scenario = fake.url(f"link_to.ip=127.0.0.1.port={neighbour.port}", CHAT)
    with pytest.raises(ResponseError, match="private or loopback address"):
        _client_call(fake, scenario, max_retries=0)  # private API URLs allowed, private downloads not
    assert neighbour.hits == 0
    assert _client_call(fake, fake.url("link_to.ip=127.0.0.1", CHAT)).images  # the API's own port passes


def test_an_image_url_on_the_consoles_own_port_is_refused_even_with_private_downloads_on(fake, neighbour):
    settings = resolve({"ALLOW_PRIVATE_DOWNLOAD_URL": "1"}, overrides={"port": neighbour.port})
    scenario = fake.url(f"link_to.ip=127.0.0.1.port={neighbour.port}", CHAT)
    with pytest.raises(ResponseError, match="points at this console itself"):
        _client_call(fake, scenario, settings)
    assert neighbour.hits == 0
    assert _client_call(fake, scenario, resolve({"ALLOW_PRIVATE_DOWNLOAD_URL": "1"})).images  # not ours: allowed
