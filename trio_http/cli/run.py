"""``trio-http run MODULE:ATTR``: serve an ASGI 3 application, with uvicorn's option names.

The application is imported before anything listens (and, with ``--workers``, in the supervisor
before any worker starts), so a broken application is one error line and status 2, reported
once.  Its lifespan startup runs once listening, before the first connection is accepted; if it
fails, status 3 (as uvicorn).  On SIGTERM/SIGINT the connections drain, then the lifespan
shutdown runs.  Responses are never compressed by the server.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TypeVar

from ..accesslog import LogFormat
from ..asgi.lifespan import LifespanFailed
from ..asgi.loader import AppLoadError, load_app
from ..asgi.proxy import TrustedProxies
from ..asgi.server import ASGIServer
from ..asgi.types import ASGIApp
from ..websocket.settings import WebSocketSettings
from . import reload
from .options import (
    add_header_options,
    add_limit_options,
    add_listening_options,
    add_logging_options,
    add_max_body_size,
    config_from_args,
    load_tls,
    parse_size,
    seconds,
)
from .process import configure_logging, run_server, run_workers

__all__ = ["FORWARDED_ALLOW_IPS", "STARTUP_FAILED", "add_parser", "main"]

log = logging.getLogger("trio_http")

#: Whose proxy headers are believed without --forwarded-allow-ips or $FORWARDED_ALLOW_IPS.
FORWARDED_ALLOW_IPS = "127.0.0.1,::1"
#: The exit status when the application's lifespan startup fails (uvicorn's).
STARTUP_FAILED = 3

_E = TypeVar("_E", bound=BaseException)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser(
        "run",
        help="run an ASGI application",
        description="Serve the ASGI 3 application MODULE:ATTR (for example main:app, the "
        "attribute app of main.py in --app-dir).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    run.set_defaults(command_main=main)
    run.add_argument(
        "app", metavar="MODULE:ATTR", help="the application: ATTR (may be dotted) of MODULE"
    )
    app = run.add_argument_group("application")
    app.add_argument(
        "--app-dir", default=".", metavar="DIR", help="look for MODULE here first (sys.path)"
    )
    app.add_argument(
        "--factory", action="store_true", help="ATTR is a function that returns the application"
    )
    app.add_argument(
        "--root-path",
        default="",
        metavar="PATH",
        help="where the application is mounted behind a proxy: the ASGI root_path "
        "(default: %(default)r)",
    )
    app.add_argument(
        "--lifespan",
        choices=["auto", "on", "off"],
        default="auto",
        help="the ASGI lifespan protocol: auto runs it if the application supports it",
    )
    app.add_argument(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="take the client address and scheme from the headers (--forwarded-headers) "
        "sent by --forwarded-allow-ips",
    )
    app.add_argument(
        "--forwarded-headers",
        choices=["x-forwarded", "forwarded"],
        default="x-forwarded",
        help="the headers your proxies write, the only ones read: X-Forwarded-For and "
        "X-Forwarded-Proto (nginx, as uvicorn reads), or RFC 7239 Forwarded "
        "(default: %(default)s)",
    )
    app.add_argument(
        "--forwarded-allow-ips",
        default=argparse.SUPPRESS,
        metavar="LIST",
        help="comma-separated addresses and networks (10.0.0.0/8) whose proxy headers are "
        f"believed, '*' for any (default: $FORWARDED_ALLOW_IPS, else {FORWARDED_ALLOW_IPS})",
    )
    add_listening_options(run.add_argument_group("listening"))

    development = run.add_argument_group("development")
    development.add_argument(
        "--reload",
        action="store_true",
        help="restart the server when a .py file changes (needs watchfiles)",
    )
    # Internal: set by the --reload supervisor for the server it starts.
    development.add_argument(
        "--no-reload", dest="reload", action="store_false", default=False, help=argparse.SUPPRESS
    )
    development.add_argument(
        "--reload-dir",
        action="append",
        type=Path,
        metavar="DIR",
        help="with --reload, watch DIR instead of --app-dir (repeatable)",
    )

    limits = run.add_argument_group("timeouts and limits (seconds; 0 disables a timeout)")
    add_limit_options(limits)
    add_max_body_size(limits)

    websockets = run.add_argument_group("WebSockets")
    defaults = WebSocketSettings()
    websockets.add_argument(
        "--ws-max-size",
        type=parse_size,
        default=defaults.max_size,
        metavar="SIZE",
        help="largest WebSocket message, after decompression (larger: close 1009)",
    )
    websockets.add_argument(
        "--ws-ping-interval",
        type=seconds,
        default=defaults.ping_interval,
        metavar="S",
        help="ping every WebSocket this often (0: never)",
    )
    websockets.add_argument(
        "--ws-ping-timeout",
        type=seconds,
        default=defaults.ping_timeout,
        metavar="S",
        help="close (1011) a WebSocket whose peer has not answered a ping within S",
    )
    websockets.add_argument(
        "--ws-origin",
        action="append",
        metavar="ORIGIN",
        help="allow WebSockets only from this Origin, e.g. https://example.com (repeatable; "
        "others get 403; unset: any)",
    )

    output = run.add_argument_group("responses and logging")
    add_header_options(output)
    add_logging_options(output)


def _usage_error(message: str) -> int:
    print(f"trio-http: error: {message}", file=sys.stderr)
    return 2


def main(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> int:
    if args.reload and args.workers > 1:
        return _usage_error("--reload and --workers cannot be used together")
    if args.reload and reload.watchfiles_missing():
        return _usage_error(reload.NEEDS_WATCHFILES)
    root_path: str = args.root_path
    if root_path and not root_path.startswith("/"):
        return _usage_error(f"--root-path must start with '/': {root_path!r}")
    proxies = None
    if args.proxy_headers:
        spec = vars(args).get("forwarded_allow_ips")
        if spec is None:
            spec = os.environ.get("FORWARDED_ALLOW_IPS", FORWARDED_ALLOW_IPS)
        try:
            proxies = TrustedProxies(spec, args.forwarded_headers)
        except ValueError as exc:
            return _usage_error(f"--forwarded-allow-ips: {exc}")
    load_tls(parser, args)
    configure_logging(args.log_level)
    if args.reload:
        option = "--reload-dir" if args.reload_dir else "--app-dir"
        directories: list[Path] = args.reload_dir or [Path(args.app_dir)]
        for directory in directories:
            if not directory.is_dir():
                return _usage_error(f"{option} {directory}: not a directory")
        # The supervisor imports nothing: each server it starts loads the application afresh
        # (and reports a broken one itself, then waits for the fix).
        return reload.run_reloader(args, argv, [d.resolve() for d in directories])
    app = _load(args)
    if app is None:
        return 2
    if args.workers > 1:
        return run_workers(args, argv)
    access_format: LogFormat = args.access_log_format
    try:
        websocket = WebSocketSettings(
            max_size=args.ws_max_size,
            ping_interval=args.ws_ping_interval,
            ping_timeout=args.ws_ping_timeout,
            allowed_origins=tuple(args.ws_origin) if args.ws_origin else None,
        )
    except ValueError as exc:
        parser.error(f"WebSockets: {exc}")
    server = ASGIServer(
        app,
        config_from_args(args, compression=False),
        lifespan=args.lifespan,
        root_path=root_path.rstrip("/"),
        proxies=proxies,
        websocket=websocket,
        access_log_format=access_format,
    )
    try:
        return run_server(server, args, f"serving {args.app} (ASGI)")
    except Exception as exc:
        failure = _only(exc, LifespanFailed)
        if failure is None:
            raise
        print(f"trio-http: error: {failure}", file=sys.stderr)
        return STARTUP_FAILED


def _load(args: argparse.Namespace) -> ASGIApp | None:
    """The application, or ``None`` once its AppLoadError is reported (traceback: debug)."""
    try:
        return load_app(args.app, app_dir=args.app_dir, factory=args.factory)
    except AppLoadError as exc:
        log.debug("loading %s failed", args.app, exc_info=exc)
        print(f"trio-http: error: {exc}", file=sys.stderr)
        return None


def _only(exc: BaseException, kind: type[_E]) -> _E | None:
    """*exc* if it is a *kind*, or the first one in an exception group made only of them."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split(kind)
        if matched is not None and rest is None:
            leaf: BaseException = matched
            while isinstance(leaf, BaseExceptionGroup):
                leaf = leaf.exceptions[0]
            assert isinstance(leaf, kind)
            return leaf
    return None
