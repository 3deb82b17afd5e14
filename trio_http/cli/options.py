"""The options ``serve`` and ``run`` share, their value parsers, and the ServerConfig they make.

Each ``add_*`` function adds its options to an argument group the command has made, so every
command keeps its own grouping and order in ``--help`` while the spelling, default and help of
each shared option are written once.
"""

from __future__ import annotations

import argparse
import re
import ssl
from pathlib import Path

from ..compression import CompressionPolicy
from ..config import RESERVED_FIELDS, ServerConfig

__all__ = [
    "add_header_options",
    "add_limit_options",
    "add_listening_options",
    "add_logging_options",
    "add_max_body_size",
    "config_from_args",
    "header_field",
    "load_tls",
    "parse_size",
]

_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_DEFAULTS = ServerConfig()


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


def non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seconds must not be negative: {text!r}")
    return value


def seconds(text: str) -> float | None:
    """A timeout: like non_negative, with 0 meaning "no timeout"."""
    value = non_negative(text)
    return None if value == 0 else value


def positive_seconds(text: str) -> float:
    value = non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"seconds must be more than 0: {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be from 0 to 65535: {text!r}")
    return value


def add_listening_options(group: argparse._ArgumentGroup) -> None:
    """--host, --port, --backlog, --workers, --certfile, --keyfile (and the internal
    --reuse-port)."""
    group.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on ('0.0.0.0': every IPv4 interface; '::': every IPv6 one)",
    )
    group.add_argument("--port", type=port, default=8000, help="TCP port (0 picks a free one)")
    group.add_argument("--backlog", type=positive_int, default=1024, help="listen queue length")
    group.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="worker processes sharing the port (SO_REUSEPORT), supervised",
    )
    group.add_argument(
        "--certfile",
        type=Path,
        metavar="FILE",
        help="serve HTTPS with this PEM certificate (chain)",
    )
    group.add_argument(
        "--keyfile", type=Path, metavar="FILE", help="the private key for --certfile"
    )
    # Internal: set by a supervisor (--workers, --reload) for the processes it starts.
    group.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)


def add_max_body_size(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--max-body-size",
        type=parse_size,
        default=_DEFAULTS.max_body_size,
        metavar="SIZE",
        help="largest request body in bytes (K, M, G suffixes)",
    )


def add_limit_options(group: argparse._ArgumentGroup) -> None:
    """The timeouts, --graceful-timeout, --limit-*, --max-header-size."""
    group.add_argument(
        "--timeout-keep-alive",
        type=seconds,
        default=_DEFAULTS.keep_alive_timeout,
        metavar="S",
        help="close idle keep-alive connections after S",
    )
    group.add_argument(
        "--timeout-header",
        type=seconds,
        default=_DEFAULTS.header_timeout,
        metavar="S",
        help="time allowed to send a request head (then 408)",
    )
    group.add_argument(
        "--timeout-body",
        type=seconds,
        default=_DEFAULTS.body_timeout,
        metavar="S",
        help="longest pause while sending a request body (then 408)",
    )
    group.add_argument(
        "--timeout-write",
        type=seconds,
        default=_DEFAULTS.write_timeout,
        metavar="S",
        help="longest time a client may stop reading a response",
    )
    group.add_argument(
        "--graceful-timeout",
        type=non_negative,
        default=_DEFAULTS.graceful_timeout,
        metavar="S",
        help="on shutdown, time in-flight requests may take",
    )
    group.add_argument(
        "--limit-concurrency",
        type=positive_int,
        default=None,
        metavar="N",
        help="connections served at once; more get 503 (unset: unlimited)",
    )
    group.add_argument(
        "--limit-max-requests",
        type=positive_int,
        default=None,
        metavar="N",
        help="requests per connection before it is closed (unset: unlimited)",
    )
    group.add_argument(
        "--max-header-size",
        type=parse_size,
        default=_DEFAULTS.max_header_size,
        metavar="SIZE",
        help="largest request head (then 431)",
    )


_FIELD_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def header_field(text: str) -> tuple[str, str]:
    """``'Name: value'`` -> ``("name", "value")``, for ``--header``."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not _FIELD_NAME.fullmatch(name):
        raise argparse.ArgumentTypeError(f"not a header field 'Name: value': {text!r}")
    if name.lower() in RESERVED_FIELDS:
        raise argparse.ArgumentTypeError(f"{name} is set by the server itself: {text!r}")
    if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in value):
        raise argparse.ArgumentTypeError(f"control characters in the value: {text!r}")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"the value must be Latin-1: {text!r}") from None
    return name.lower(), value


def add_header_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--no-date-header", action="store_true", help="do not send Date")
    group.add_argument("--no-server-header", action="store_true", help="do not send Server")
    group.add_argument(
        "--header",
        type=header_field,
        action="append",
        default=[],
        dest="headers",
        metavar="'NAME: VALUE'",
        help="add this field to every response that does not set it (repeatable; HSTS, CSP)",
    )


def add_logging_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--no-access-log", action="store_true", help="no access log")
    group.add_argument(
        "--access-log-format",
        choices=["combined", "json"],
        default="combined",
        help="access log line format (on stdout)",
    )
    group.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="level of the error log (on stderr)",
    )


def load_tls(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check --certfile/--keyfile and set ``args.ssl_context`` (``None`` without TLS).

    Loaded in the process that parses the command line, before any worker starts: a bad
    certificate is a usage error, reported once (status 2).
    """
    if (args.certfile is None) != (args.keyfile is None):
        parser.exit(2, "trio-http: error: --certfile and --keyfile go together\n")
    args.ssl_context = None
    if args.certfile is not None:
        try:
            args.ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            args.ssl_context.load_cert_chain(args.certfile, args.keyfile)
        except (OSError, ssl.SSLError) as exc:
            parser.exit(2, f"trio-http: error: cannot load --certfile/--keyfile: {exc}\n")


def config_from_args(args: argparse.Namespace, *, compression: bool) -> ServerConfig:
    """The ServerConfig for the shared options; *compression*: compress responses at all."""
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
        compression=CompressionPolicy(enabled=compression),
        access_log=not args.no_access_log,
        extra_headers=tuple(args.headers),
    )
