"""Command line: parse options, prepare the data dir, check the port, serve the app."""

from __future__ import annotations

import argparse
import errno
import logging
import secrets
import signal
import socket
import sys
import threading
import time
import webbrowser
from typing import Sequence
from urllib.parse import urlencode

from . import __version__, datadir, diskfault, logs, ports
from .httpserver import CappedServer
from .panel import EventBuffer, StatusReporter, collect
from .settings import Settings, SettingsError, data_dir, describe, is_exposed, resolve
from .web import RequestHandler, create_app

log = logging.getLogger("console")
TOKEN_BYTES = 24  # 32 URL-safe characters


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line; every flag has an environment twin (see --help)."""
    parser = argparse.ArgumentParser(
        description="Image Batch Console: batch image generation and editing through OpenAI-compatible APIs.",
        epilog=describe(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", help="address to listen on (HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (PORT, default 12607)")
    parser.add_argument("--data-dir", help="data directory (APP_DATA_DIR)")
    parser.add_argument("--no-browser", action="store_true", help="do not open the page (OPEN_BROWSER=0)")
    parser.add_argument("--status-ui", choices=("cli", "none"), help="terminal status panel (STATUS_UI)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    """Resolve settings: table defaults, then environment, then command-line flags."""
    return resolve(overrides={
        "host": args.host,
        "port": args.port,
        "data_dir": args.data_dir,
        "open_browser": False if args.no_browser else None,
        "status_ui": args.status_ui,
    })


def main(argv: Sequence[str] | None = None) -> int:
    """Run the console until interrupted; return the process exit code."""
    args = parse_args(argv)
    try:
        settings = settings_from(args)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    folder = data_dir(settings)
    try:
        diskfault.check_at_start(folder)
    except diskfault.StorageFault as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = with_access_token(settings.replace(data_dir=str(folder)))
    events = EventBuffer()
    logs.setup(folder, [events], terminal=settings.status_ui != "cli" or not sys.stderr.isatty())
    try:
        lock = datadir.prepare(folder)  # 0700/0600, one server per folder, no partial files
    except datadir.DataDirBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        listener = socket.create_server((settings.host, settings.port), family=_family(settings.host), backlog=128)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(ports.explain(settings.host, settings.port), file=sys.stderr)
            return 2
        print(f"error: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    # The port really listened on (PORT=0 picks one): the upstream client never calls it.
    settings = settings.replace(port=listener.getsockname()[1])
    app = create_app(settings=settings)
    # Bind ourselves so "port in use" gets our explanation, not werkzeug's exit(1).
    server = CappedServer(settings.host, settings.port, app, fd=listener.fileno(),
                          max_threads=settings.max_request_threads, header_timeout_s=settings.request_header_timeout_s,
                          request_handler=RequestHandler)  # no Server banner naming versions
    url = f"http://{_url_host(settings.host)}:{settings.port}/"
    if settings.access_token:  # the only place the token is shown: never logged
        url += "?" + urlencode({"token": settings.access_token})
    print(f"Image Batch Console {__version__} on {url} (data: {folder})", flush=True)
    if is_exposed(settings.host):
        print(f"Listening on {settings.host or 'every address'}: every request needs the access token in this URL "
              "(from another machine, put this machine's address in place of the host).", flush=True)
    if settings.open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    started = time.time()
    reporter = StatusReporter(settings.status_ui, lambda: collect(app, url, started, events))
    reporter.start()
    signal.signal(signal.SIGTERM, lambda signum, frame: _stop_soon(server))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        reporter.stop()
        server.server_close()
        app.extensions["console.engine"].close()  # stops runs: their tasks become "stopped"
        lock.release()
    return 0


def with_access_token(settings: Settings) -> Settings:
    """Return the settings with an access token when the host is not loopback and none was given."""
    if settings.access_token or not is_exposed(settings.host):
        return settings
    return settings.replace(access_token=secrets.token_urlsafe(TOKEN_BYTES))


def _stop_soon(server: CappedServer) -> None:
    """Stop serving in order (SIGTERM): the serving loop returns at its next poll and the cleanup runs.

    Raising in the main thread instead would land wherever it happens to be, and a lock left held
    there can hang the cleanup; `shutdown` waits for the loop, so it runs on a thread of its own.
    """
    threading.Thread(target=server.shutdown, name="sigterm", daemon=True).start()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
