"""``trio-http serve``: the command line.

User mistakes (a missing directory, a port in use, a bad option) end with one line on stderr
and a non-zero exit status, never a traceback.  SIGTERM or SIGINT shuts down gracefully; a
second one stops at once.  A clean stop exits with status 0.
"""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from . import __version__
from .accesslog import LogFormat
from .builtin import build_app
from .compression import CompressionPolicy
from .config import ServerConfig
from .files.uploads import remove_stale_uploads
from .listeners import Address, open_listeners
from .server import Server
from .workers import reserve_port, reuse_port_supported, supervise, watch_supervisor

__all__ = ["main"]

log = logging.getLogger("trio_http")

_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """``1048576``, ``512k``, ``100M``, ``1G`` (binary units) -> bytes."""
    value = text.strip().lower().removesuffix("b").removesuffix("i")
    unit = value[-1:] if value[-1:] in _SIZE_UNITS else ""
    number = value[: len(value) - len(unit)]
    try:
        size = int(float(number) * _SIZE_UNITS[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a size: {text!r} (try 1048576, 512K or 1G)"
        ) from None
    if size < 0:
        raise argparse.ArgumentTypeError(f"size must not be negative: {text!r}")
    return size


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seconds must not be negative: {text!r}")
    return value


def _seconds(text: str) -> float | None:
    """A timeout: like _non_negative, with 0 meaning "no timeout"."""
    value = _non_negative(text)
    return None if value == 0 else value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be from 0 to 65535: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    defaults = ServerConfig()
    parser = argparse.ArgumentParser(
        prog="trio-http", description="An HTTP/1.1 server and file server for Trio."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the server",
        description="Serve the built-in endpoints (/, /echo/{text}, /user-agent) and, with "
        "--directory, the files under DIR at /files/.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    net = serve.add_argument_group("listening")
    net.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on ('0.0.0.0': every IPv4 interface; '::': every IPv6 one)",
    )
    net.add_argument("--port", type=_port, default=8000, help="TCP port (0 picks a free one)")
    net.add_argument("--backlog", type=_positive_int, default=1024, help="listen queue length")
    net.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="worker processes sharing the port (SO_REUSEPORT), supervised",
    )
    net.add_argument(
        "--certfile",
        type=Path,
        metavar="FILE",
        help="serve HTTPS with this PEM certificate (chain)",
    )
    net.add_argument("--keyfile", type=Path, metavar="FILE", help="the private key for --certfile")
    # Internal: set by the supervisor for its workers.
    net.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)

    files = serve.add_argument_group("files")
    files.add_argument(
        "--directory",
        type=Path,
        metavar="DIR",
        help="serve and store files under DIR at /files/ (without it: no file routes)",
    )
    files.add_argument("--read-only", action="store_true", help="refuse POST, PUT and DELETE (405)")
    files.add_argument(
        "--follow-symlinks", action="store_true", help="follow symlinks that lead outside DIR"
    )
    files.add_argument(
        "--show-hidden", action="store_true", help="serve and list names starting with '.'"
    )
    files.add_argument("--no-listing", action="store_true", help="no directory listings (403)")
    files.add_argument(
        "--max-body-size",
        type=parse_size,
        default=defaults.max_body_size,
        metavar="SIZE",
        help="largest request body in bytes (K, M, G suffixes)",
    )

    limits = serve.add_argument_group("timeouts and limits (seconds; 0 disables a timeout)")
    limits.add_argument(
        "--timeout-keep-alive",
        type=_seconds,
        default=defaults.keep_alive_timeout,
        metavar="S",
        help="close idle keep-alive connections after S",
    )
    limits.add_argument(
        "--timeout-header",
        type=_seconds,
        default=defaults.header_timeout,
        metavar="S",
        help="time allowed to send a request head (then 408)",
    )
    limits.add_argument(
        "--timeout-body",
        type=_seconds,
        default=defaults.body_timeout,
        metavar="S",
        help="longest pause while sending a request body (then 408)",
    )
    limits.add_argument(
        "--timeout-write",
        type=_seconds,
        default=defaults.write_timeout,
        metavar="S",
        help="longest time a client may stop reading a response",
    )
    limits.add_argument(
        "--graceful-timeout",
        type=_non_negative,
        default=defaults.graceful_timeout,
        metavar="S",
        help="on shutdown, time in-flight requests may take",
    )
    limits.add_argument(
        "--limit-concurrency",
        type=_positive_int,
        default=None,
        metavar="N",
        help="connections served at once; more get 503 (unset: unlimited)",
    )
    limits.add_argument(
        "--limit-max-requests",
        type=_positive_int,
        default=None,
        metavar="N",
        help="requests per connection before it is closed (unset: unlimited)",
    )
    limits.add_argument(
        "--max-header-size",
        type=parse_size,
        default=defaults.max_header_size,
        metavar="SIZE",
        help="largest request head (then 431)",
    )

    output = serve.add_argument_group("responses and logging")
    output.add_argument("--no-date-header", action="store_true", help="do not send Date")
    output.add_argument("--no-server-header", action="store_true", help="do not send Server")
    output.add_argument("--no-compression", action="store_true", help="never compress responses")
    output.add_argument("--no-access-log", action="store_true", help="no access log")
    output.add_argument(
        "--access-log-format",
        choices=["combined", "json"],
        default="combined",
        help="access log line format (on stdout)",
    )
    output.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="level of the error log (on stderr)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        date_header=not args.no_date_header,
        server_header=None if args.no_server_header else "trio-http",
        max_header_size=args.max_header_size,
        max_body_size=args.max_body_size,
        keep_alive_timeout=args.timeout_keep_alive,
        header_timeout=args.timeout_header,
        body_timeout=args.timeout_body,
        write_timeout=args.timeout_write,
        graceful_timeout=args.graceful_timeout,
        limit_concurrency=args.limit_concurrency,
        max_requests_per_connection=args.limit_max_requests,
        compression=CompressionPolicy(enabled=not args.no_compression),
        access_log=not args.no_access_log,
    )


def configure_logging(level: str) -> None:
    errors = logging.StreamHandler(sys.stderr)
    errors.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("trio_http")
    root.addHandler(errors)
    root.setLevel(level.upper())
    # The access log is data, not diagnostics: plain lines on stdout, whatever --log-level says.
    access = logging.getLogger("trio_http.access")
    access_handler = logging.StreamHandler(sys.stdout)
    access_handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(access_handler)
    access.setLevel(logging.INFO)
    access.propagate = False


async def _watch_signals(server: Server) -> None:
    """First SIGTERM/SIGINT: graceful shutdown.  Second: stop now."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            if server.registry.draining:
                log.info("%s again: stopping now", name)
                server.stop_now()
                return
            log.info(
                "%s: shutting down (in-flight requests get %ss)",
                name,
                server.config.graceful_timeout,
            )
            server.shutdown()


async def _run(server: Server, args: argparse.Namespace, what: str) -> None:
    listeners = await open_listeners(
        args.host,
        args.port,
        backlog=args.backlog,
        ssl_context=args.ssl_context,
        reuse_port=args.reuse_port,
    )
    scheme = "https" if args.ssl_context else "http"
    async with trio.open_nursery() as nursery:
        # Install the signal handlers before announcing that we listen: a supervisor may
        # send SIGTERM as soon as it sees the log line.
        nursery.start_soon(_watch_signals, server)
        nursery.start_soon(watch_supervisor, server.shutdown)
        await trio.lowlevel.checkpoint()

        async def serve_then_stop(*, task_status: trio.TaskStatus[list[Address]]) -> None:
            await server.run(listeners, task_status=task_status)
            nursery.cancel_scope.cancel()

        addresses = await nursery.start(serve_then_stop)
        urls = ", ".join(
            f"{scheme}://[{h}]:{p}" if ":" in h else f"{scheme}://{h}:{p}" for h, p in addresses
        )
        log.info("listening on %s, %s", urls, what)
        if args.directory is not None and not args.read_only:
            # Uploads a killed server left half-written; in the background, so a large tree
            # does not delay listening.  Live uploads (other workers') hold a lock and stay.
            nursery.start_soon(_remove_stale_uploads, args.directory)
    log.info("stopped")


async def _remove_stale_uploads(directory: Path) -> None:
    # Abandoned on shutdown rather than waited for: a huge tree must not delay the exit.
    await trio.to_thread.run_sync(remove_stale_uploads, directory, abandon_on_cancel=True)


def _listen_error(args: argparse.Namespace, exc: OSError) -> int:
    if exc.errno == errno.EADDRINUSE:
        reason = "address already in use"
    elif exc.errno == errno.EACCES:
        reason = "permission denied (ports below 1024 need privileges)"
    else:
        reason = exc.strerror or str(exc)
    print(f"trio-http: error: cannot listen on {args.host}:{args.port}: {reason}", file=sys.stderr)
    return 1


def _run_workers(args: argparse.Namespace, argv: list[str]) -> int:
    """Supervise ``--workers`` processes that share the port (see workers.py)."""
    if not reuse_port_supported():
        print(
            "trio-http: error: --workers needs SO_REUSEPORT, which this system lacks",
            file=sys.stderr,
        )
        return 2
    try:
        reserved = reserve_port(args.host, args.port)
    except OSError as exc:
        return _listen_error(args, exc)
    with reserved:
        port = reserved.getsockname()[1]
        # argparse keeps the last occurrence of an option, so these override the user's.
        command = [sys.executable, "-m", "trio_http", *argv]
        command += ["--port", str(port), "--workers", "1", "--reuse-port"]
        log.info("supervising %d workers on %s:%d", args.workers, args.host, port)
        return trio.run(supervise, command, args.workers)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    directory: Path | None = args.directory
    if directory is not None:
        if not directory.is_dir():
            parser.exit(2, f"trio-http: error: --directory {directory}: not a directory\n")
        directory = args.directory = directory.resolve()
    if (args.certfile is None) != (args.keyfile is None):
        parser.exit(2, "trio-http: error: --certfile and --keyfile go together\n")
    args.ssl_context = None
    if args.certfile is not None:
        # Loaded here, not in the workers: a bad certificate is a usage error, reported once.
        try:
            args.ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            args.ssl_context.load_cert_chain(args.certfile, args.keyfile)
        except (OSError, ssl.SSLError) as exc:
            parser.exit(2, f"trio-http: error: cannot load --certfile/--keyfile: {exc}\n")
    configure_logging(args.log_level)
    if args.workers > 1:
        return _run_workers(args, argv)
    app = build_app(
        directory,
        read_only=args.read_only,
        follow_symlinks=args.follow_symlinks,
        allow_hidden=args.show_hidden,
        listings=not args.no_listing,
    )
    access_format: LogFormat = args.access_log_format
    server = Server(app, config_from_args(args), access_log_format=access_format)
    if directory is None:
        what = "no --directory: /files routes are off"
    else:
        what = f"serving {directory} at /files/ ({'read-only' if args.read_only else 'read-write'})"
    try:
        trio.run(_run, server, args, what)
    except OSError as exc:
        return _listen_error(args, exc)
    except KeyboardInterrupt:  # pragma: no cover - the signal receiver handles SIGINT
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
