"""What each call used and cost, read from every answer shape through the real fake gateway, and priced."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from console.profile import ApiProfile
from console.settings import resolve
from console.upstream.client import CallOutcome, UpstreamClient, make_http_client
from console.upstream.errors import ResponseError, StatusError, UpstreamError
from console.upstream.payload import Source
from console.upstream.usage import Usage, UsageReader, priced
from testkit.fake_upstream import FakeUpstream
from testkit.images import JPEG

SOURCE = Source("cat.jpg", JPEG, "image/jpeg")
CHAT, RESPONSES, EDITS = "/v1/chat/completions", "/v1/responses", "/v1/images/edits"


class Sleeps(list):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def used(fake: FakeUpstream, segment: str, path: str = CHAT, **fields: Any) -> tuple[list[tuple[int, Usage]], Any]:
    """Make one real call; return every (attempt, usage) reported and the outcome (or the error raised)."""
    profile = ApiProfile.from_dict({"api_url": fake.url(segment, path), "model": "m", "allow_private_api": True,
                                    "max_retries": 2, "timeout_s": 20, **fields})
    seen: list[tuple[int, Usage]] = []

    async def go() -> CallOutcome:
        async with make_http_client() as http:
            client = UpstreamClient(http, resolve({}), sleep=Sleeps())
            request = client.prepare(profile, "make it blue", SOURCE)
            return await client.send(profile, request, on_usage=lambda n, u: seen.append((n, u)))

    try:
        return seen, asyncio.run(go())
    except UpstreamError as exc:
        return seen, exc


OPENROUTER = Usage(input_tokens=1300, output_tokens=1290, images=1, cost=0.0387)


@pytest.mark.parametrize("stream", [True, False])
def test_openrouter_cost_and_tokens_from_the_final_chunk_and_from_json(fake, stream):
    seen, outcome = used(fake, "openrouter", stream=stream)
    assert seen == [(1, OPENROUTER)] and outcome.usage == OPENROUTER and len(outcome.images) == 1


def test_openrouter_tokens_without_cost_leave_the_cost_unreported(fake):
    seen, _ = used(fake, "openrouter.nocost=1")
    assert seen == [(1, Usage(input_tokens=1300, output_tokens=1290, images=1))]


@pytest.mark.parametrize("path,stream", [(CHAT, True), (CHAT, False), (EDITS, False)])
def test_litellm_cost_header(fake, path, stream):
    fields = {"api_mode": "images"} if path == EDITS else {}
    seen, outcome = used(fake, "litellm_cost.cost=0.125", path, stream=stream, **fields)
    assert seen == [(1, Usage(images=1, cost=0.125))] and outcome.images


@pytest.mark.parametrize("stream", [True, False])
def test_openai_images_usage_splits_text_and_image_tokens(fake, stream):
    seen, _ = used(fake, "images_usage", EDITS, api_mode="images", stream=stream)
    assert seen == [(1, Usage(input_tokens=50, input_image_tokens=1190, output_tokens=4160, images=1))]


@pytest.mark.parametrize("stream", [True, False])
def test_responses_usage_splits_text_and_image_tokens(fake, stream):
    seen, _ = used(fake, "responses_usage", RESPONSES, api_mode="responses", stream=stream)
    assert seen == [(1, Usage(input_tokens=310, input_image_tokens=1190, output_tokens=1531, images=1))]


@pytest.mark.parametrize("stream", [True, False])
def test_gemini_usage_metadata_by_modality(fake, stream):
    seen, _ = used(fake, "gemini.gkey=AIza-good", "/v1beta", api_mode="gemini", api_key="AIza-good", stream=stream)
    assert seen == [(1, Usage(input_tokens=7, input_image_tokens=258, output_tokens=1290, images=1))]


@pytest.mark.parametrize("stream", [True, False])
def test_seedream_usage_counts_the_images_it_made(fake, stream):
    seen, outcome = used(fake, "seedream.images=3.fail=1", "/v1/images/generations", api_mode="images",
                         edit_format="json_image", stream=stream)
    assert seen == [(1, Usage(output_tokens=16384, images=2))] and len(outcome.images) == 2


def test_a_paid_failure_that_is_retried_reports_both_attempts(fake):
    seen, outcome = used(fake, "openrouter.fail=1")
    assert [number for number, _ in seen] == [1, 2] and outcome.attempts == 2
    assert seen[0][1] == Usage(input_tokens=1300, output_tokens=1290, cost=0.0387)  # no image came, still paid
    assert seen[1][1] == OPENROUTER


def test_a_refusal_is_paid_and_reported(fake):
    seen, error = used(fake, "gemini_refusal.gkey=AIza-good", "/v1beta", api_mode="gemini", api_key="AIza-good")
    assert isinstance(error, ResponseError)
    assert seen == [(1, Usage(input_tokens=7, input_image_tokens=258, output_tokens=1290, images=0))]


def test_an_error_status_without_a_cost_reports_nothing(fake):
    seen, error = used(fake, "err_text_plain_500", max_retries=0)
    assert isinstance(error, StatusError) and seen == []


def test_a_stream_repeating_running_totals_keeps_the_last():
    reader = UsageReader()
    for total in (10, 20, 30):
        reader.read({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": total}})
    assert reader.usage(1) == Usage(input_tokens=5, output_tokens=30, images=1)


@pytest.mark.parametrize("value", [-1, "x", float("nan"), True, None, "1e400"])
def test_nonsense_counts_and_costs_are_ignored(value):
    reader = UsageReader()
    reader.read({"usage": {"prompt_tokens": value, "cost": value}})
    reader.header({"x-litellm-response-cost": str(value)})
    assert reader.usage() == Usage() and not reader.seen


# -- prices ------------------------------------------------------------------------------------------

PRICES = {"call": 0.01, "image": 0.02, "input_mtok": 5.0, "input_image_mtok": 10.0, "output_mtok": 40.0}


def test_the_gateways_cost_wins_over_prices():
    assert priced(Usage(input_tokens=10, cost=0.5, images=1), PRICES) == (0.5, "gateway")


def test_prices_add_per_call_per_image_and_per_million_tokens():
    usage = Usage(input_tokens=1_000_000, input_image_tokens=500_000, output_tokens=100_000, images=2)
    assert priced(usage, PRICES) == (pytest.approx(0.01 + 0.04 + 5 + 5 + 4), "prices")


def test_a_token_price_without_tokens_reported_leaves_the_cost_unknown():
    assert priced(Usage(images=1), PRICES) == (None, None)
    assert priced(Usage(images=1), {"call": 0.01, "image": 0.02}) == (pytest.approx(0.03), "prices")


def test_image_tokens_not_split_out_are_priced_as_input():
    assert priced(Usage(input_tokens=2_000_000, output_tokens=0, images=0), PRICES) == (pytest.approx(10.01), "prices")


def test_no_prices_no_cost():
    assert priced(Usage(input_tokens=5, images=1), {"currency": "EUR"}) == (None, None)
