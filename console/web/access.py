"""Require the access token on every request when the server can be reached from other machines.

Bound to a loopback address the console has no login: the Host and cross-site guards keep web
pages out. Bound to anything else (a LAN address, 0.0.0.0) any machine on the network could
drive it, so the start prints a URL carrying a token (`/?token=…`). Opening it trades the token
for an HttpOnly, SameSite=Strict cookie and redirects to the bare page, which then works as
usual; scripts send `Authorization: Bearer <token>`. A request without the token gets a 401.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlencode

from flask import Request, Response, current_app, request

from ..messages import Message, say
from ..settings import Settings

COOKIE_PREFIX = "ibc_token_"  # + the port: consoles on one machine keep their own cookies
QUERY = "token"
HEADER = "Authorization"
BEARER = "Authorization: Bearer <token>"  # the header scripts send, as the 401 names it
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Image Batch Console</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:4em auto;line-height:1.5">
<h1>Image Batch Console</h1>
<p>This console can be reached from the network, so it needs its access link. Open the URL it
printed in the terminal where it started (it ends in <code>/?token=…</code>).</p>
<p lang="zh-CN">此控制台可从网络访问，因此需要访问链接。请打开它启动时在终端中打印的网址（以 <code>/?token=…</code> 结尾）。</p>
</body></html>
"""


def required(settings: Settings) -> bool:
    """Return True when every request must carry the access token."""
    return bool(settings.access_token)


def check(settings: Settings) -> Response | None:
    """Return None when the request carries the token; otherwise the 401 answer (or the cookie hand-over)."""
    token = settings.access_token
    given = request.args.get(QUERY)
    if given is not None and _same(given, token):
        return _hand_over(token) if _is_page(request) else None
    if _same(_bearer(request), token) or _same(request.cookies.get(cookie_name(request), ""), token):
        return None
    return _refuse(settings)


def cookie_name(req: Request) -> str:
    """Return the cookie that holds the token for the port the browser used."""
    host = req.host.rsplit("]", 1)[-1]
    port = host.rpartition(":")[2] if ":" in host else ("443" if req.scheme == "https" else "80")
    return COOKIE_PREFIX + (port if port.isdigit() else "0")


def _hand_over(token: str) -> Response:
    # Drop the token from the address bar (and from the history and any bookmark) once the cookie holds it.
    rest = [(key, value) for key, value in request.args.items(multi=True) if key != QUERY]
    target = request.path + ("?" + urlencode(rest) if rest else "")
    response = current_app.redirect(target, 303)
    _set_cookie(response, token)
    return response


def _set_cookie(response: Response, token: str) -> None:
    response.set_cookie(cookie_name(request), token, httponly=True, samesite="Strict", path="/")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"


def _refuse(settings: Settings) -> Response:
    message = _needs_token(settings)
    if _is_page(request):
        response = current_app.response_class(PAGE, status=401, mimetype="text/html")
    else:
        response = current_app.response_class(
            current_app.json.dumps({"ok": False, "error": message}) + "\n", status=401, mimetype="application/json")
    response.headers["WWW-Authenticate"] = 'Bearer realm="image-batch-console"'
    return response


def _needs_token(settings: Settings) -> Message:
    if settings.host:
        return say("web.token_needed", host=settings.host, header=BEARER)
    return say("web.token_needed_everywhere", header=BEARER)


def _is_page(req: Request) -> bool:
    return req.method == "GET" and not req.path.startswith(("/api/", "/static/"))


def _bearer(req: Request) -> str:
    scheme, _, value = req.headers.get(HEADER, "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _same(given: str, token: str) -> bool:
    return bool(token) and bool(given) and hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                                                               token.encode("utf-8", "surrogatepass"))
