"""What a profile's calls may reach: its SSRF policies, and whether it can make requests at all."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..messages import say, told
from ..netguard import DEFAULT_PORTS, UrlPolicy, check_url, pin_key, resolve
from ..profile import ApiProfile
from ..settings import Settings
from . import gemini
from .errors import BlockedURLError, ProfileProblem, UpstreamError
from .payload import endpoint, resolve_mode



def api_policy(profile: ApiProfile, settings: Settings) -> UrlPolicy:
    """Return the network policy for calling this profile's API URL."""
    return UrlPolicy(
        say("upstream.purpose_api_url"),
        allow_private=profile.allow_private_api or settings.allow_private_api_url,
        allowlist=settings.api_url_host_allowlist,
        own=own_address(settings),
        switch_hint=say("upstream.hint_private_api"),
        error=BlockedURLError,
    )


def own_address(settings: Settings) -> tuple[str, int]:
    """Return the console's own listening (host, port), which no call or download may reach."""
    return settings.host, settings.port


async def download_policy(profile: ApiProfile, settings: Settings) -> UrlPolicy:
    """Return the network policy for downloading result images; the API's own host and port always pass."""
    parts = urlsplit(profile.api_url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme, 443)
    except ValueError:
        port = 0  # the API URL itself is refused for that; nothing is trusted
    try:
        api_addresses = frozenset((address, port) for address in await resolve(host, port, BlockedURLError))
    except BlockedURLError:
        api_addresses = frozenset()
    return UrlPolicy(
        say("upstream.purpose_download_url"),
        allow_private=profile.allow_private_downloads or settings.allow_private_download_url,
        allowlist=settings.download_url_host_allowlist,
        trusted_hosts=frozenset({pin_key(host, port)}),
        trusted_addresses=api_addresses,
        own=own_address(settings),
        switch_hint=say("upstream.hint_private_downloads"),
        error=BlockedURLError,
    )


async def check_profile(profile: ApiProfile, settings: Settings) -> str:
    """Return the URL a call would POST to, or raise ProfileProblem saying why no call can be made.

    Every key of a key pool with its own API URL is checked the same way, and must reach the same
    kind of endpoint as the profile's own (a pool spreads one request over several keys).
    """
    url = await _check_one(profile, settings)
    mode = resolve_mode(profile)
    for number, lane in enumerate(profile.lanes()[1:], start=2):
        if lane.api_url == profile.api_url:
            continue
        try:
            if resolve_mode(lane) != mode:
                raise ProfileProblem(say("upstream.lane_mode", lane_mode=resolve_mode(lane), mode=mode))
            await _check_one(lane, settings)
        except ProfileProblem as exc:
            raise ProfileProblem(say("upstream.pool_key", number=number, problem=told(exc))) from None
    return url


async def _check_one(profile: ApiProfile, settings: Settings) -> str:
    if not profile.api_url:
        raise ProfileProblem(say("upstream.no_api_url_fill"))
    if not profile.model:
        raise ProfileProblem(say("upstream.no_model_fill"))
    try:
        mode = resolve_mode(profile)
        if mode == "gemini":
            gemini.image_config(profile.size)  # a size Gemini cannot take refuses the run, not each task
        url = endpoint(profile, mode, True)
        await check_url(url, api_policy(profile, settings))
    except ProfileProblem:
        raise
    except UpstreamError as exc:
        raise ProfileProblem(told(exc)) from None
    return url
