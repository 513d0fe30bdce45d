"""Guard every request: Host allowlist, access token, cross-site refusal, JSON bodies, CORS, safety headers."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Request, Response, current_app, request

from ..fields import FieldError
from ..messages import say
from ..netguard import DEFAULT_PORTS
from ..settings import Settings
from . import access, services
from .errors import ApiError, answer_as

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SAME_ORIGIN_FETCH = frozenset({"same-origin", "none"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
CORS_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
CORS_MAX_AGE_S = 600
SHOWN_CHARS = 200  # of a client-supplied value quoted in an error message
# The one route that takes multipart bodies (files from the page), and the header it requires with them.
MULTIPART_ROUTES = frozenset({"/api/uploads"})
UPLOAD_HEADER = "X-Console-Upload"
# The page loads only its own scripts, styles and images (plus data: icons), talks only to this
# server and may not be framed: an injected script or a framing page gets nothing to work with.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
    "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
))


class JsonRequest(Request):
    """A request whose get_json() failures are readable API errors instead of a bare 400."""

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        """Parse the body as JSON; a document nested too deeply for the parser is a 400, not a crash."""
        try:
            return super().get_json(force=force, silent=silent, cache=cache)
        except RecursionError:
            if silent:
                return None
            raise ApiError(say("web.json_too_deep"), 400) from None

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        """Raise 415 for a body that is not JSON, 400 for JSON that does not parse."""
        if e is None:
            raise ApiError(say("web.not_json_type", got=self.content_type or "none"), 415)
        raise ApiError(say("web.json_invalid", said=str(e)), 400)


def init_app(app: Flask) -> None:
    """Check every request before its route runs, add the CORS/safety headers after, and answer bad fields as 400."""
    app.request_class = JsonRequest
    app.before_request(_guard)
    app.after_request(_add_headers)
    answer_as(app, FieldError)  # a body field that fails its check: a 400 naming it


def json_body(required: bool = True) -> dict:
    """Return the request's JSON object; raise ApiError 400 for a missing, invalid or non-object body."""
    if not request.get_data(cache=True).strip():
        if required:
            raise ApiError(say("web.body_missing"))
        return {}
    # The guard already refused state-changing bodies that are not application/json.
    data = request.get_json(force=True)
    if not isinstance(data, dict):
        raise ApiError(say("web.body_not_object", kind=type(data).__name__))
    return data


def is_local_request() -> bool:
    """Return True when the client connects from a loopback address."""
    return _loopback_address(request.remote_addr or "")


def _settings() -> Settings:
    return services.settings()


def _guard() -> Response | None:
    settings = _settings()
    _check_host(settings)
    origin = request.headers.get("Origin")
    allowed = origin is not None and _allowed_origin(origin, settings)
    if request.method == "OPTIONS" and allowed and "Access-Control-Request-Method" in request.headers:
        return _preflight()  # a preflight carries no credentials and changes nothing
    if access.required(settings):
        refused = access.check(settings)
        if refused is not None:
            return refused
    if request.method in STATE_CHANGING:
        if not allowed:
            _check_same_origin(origin)
        _check_content_type()
    return None


def _check_host(settings: Settings) -> None:
    # DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 still sends
    # "Host: evil.example", so only names that mean this machine (or were configured) pass.
    header = request.headers.get("Host")
    if header is None:
        return  # HTTP/1.0 without Host: no browser sends that, so no rebinding either
    name = _hostname(request.host)  # werkzeug gives "" for a Host with invalid characters
    if name is None or not _host_allowed(name, settings):
        raise ApiError(say("web.host_not_allowed", host=header[:SHOWN_CHARS]), 403)


def _host_allowed(name: str, settings: Settings) -> bool:
    if name == "localhost" or _loopback_address(name):
        return True
    configured = settings.host.strip().strip("[]").lower()
    if configured not in WILDCARD_HOSTS and name == _canonical_host(configured):
        return True
    if configured in WILDCARD_HOSTS and access.required(settings) and _ip_literal(name):
        # Listening on every address behind the token: other machines come by this one's IP.
        # Rebinding needs a name the attacker controls, so an address in Host is no such attack.
        return True
    return any(key[1] == name for key in _allowed_keys(settings))


def _check_same_origin(origin: str | None) -> None:
    # CSRF: a browser marks where a request comes from; scripts and curl send neither header.
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site.strip().lower() not in SAME_ORIGIN_FETCH:
        raise ApiError(say("web.cross_site_refused", site=site[:SHOWN_CHARS]), 403)
    if origin is None:
        return
    own = _origin_key(f"{request.scheme}://{request.host}")
    if own is None or _origin_key(origin) != own:
        raise ApiError(say("web.cross_origin_refused", origin=origin[:SHOWN_CHARS]), 403)


def _check_content_type() -> None:
    # Browsers send application/json cross-origin only after a CORS preflight, which we refuse.
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if (request.content_length or 0) > 0 or chunked:
        if request.mimetype != "application/json" and not _multipart_allowed():
            shown = (request.content_type or "none")[:SHOWN_CHARS]
            if request.path in MULTIPART_ROUTES:
                if UPLOAD_HEADER in request.headers:
                    raise ApiError(say("web.upload_type", header=UPLOAD_HEADER, got=shown), 415)
                raise ApiError(say("web.upload_type_no_header", header=UPLOAD_HEADER, got=shown), 415)
            raise ApiError(say("web.not_json_type", got=shown), 415)


def _multipart_allowed() -> bool:
    # Any page can post a multipart form across sites without asking first; a custom header it
    # cannot send without a preflight, which only ALLOWED_ORIGINS pass (same-origin checks ran before).
    return (request.path in MULTIPART_ROUTES and request.mimetype == "multipart/form-data"
            and request.headers.get(UPLOAD_HEADER) == "1")


def _preflight() -> Response:
    response = current_app.response_class(status=204)
    response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
    response.headers["Access-Control-Allow-Headers"] = "Content-Type"
    response.headers["Access-Control-Max-Age"] = str(CORS_MAX_AGE_S)
    # Chrome's Private Network Access asks before a public page may call a loopback server.
    if request.headers.get("Access-Control-Request-Private-Network", "").lower() == "true":
        response.headers["Access-Control-Allow-Private-Network"] = "true"
    return response


def _add_headers(response: Response) -> Response:
    settings = _settings()
    origin = request.headers.get("Origin")
    if origin is not None and _allowed_origin(origin, settings):
        response.headers["Access-Control-Allow-Origin"] = origin
    if settings.allowed_origins:
        response.vary.add("Origin")  # the answer depends on Origin, so caches must not mix them
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # Clickjacking: a framed console page would send same-origin requests for the attacker.
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    return response


def _allowed_origin(origin: str, settings: Settings) -> bool:
    key = _origin_key(origin)
    return key is not None and key in _allowed_keys(settings)


def _allowed_keys(settings: Settings) -> set[tuple[str, str, int]]:
    return {key for key in map(_origin_key, settings.allowed_origins) if key is not None}


def _origin_key(origin: str) -> tuple[str, str, int] | None:
    """Return an origin as (scheme, host, port) with the default port filled in, or None."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, _canonical_host(parts.hostname), port or DEFAULT_PORTS[scheme]


def _hostname(host: str) -> str | None:
    """Return the name in a Host value ("[::1]:8080" → "::1"), or None when it is malformed."""
    if not host:
        return None
    try:
        parts = urlsplit(f"//{host}")
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return None
    return _canonical_host(parts.hostname) if parts.hostname else None


def _canonical_host(name: str) -> str:
    name = name.lower().rstrip(".")
    try:
        return ipaddress.ip_address(name).compressed
    except ValueError:
        return name


def _ip_literal(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _loopback_address(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback
