"""``trio-http serve``: the built-in endpoints and, with ``--directory``, the file server."""

from __future__ import annotations

import argparse
import ipaddress
import logging
from pathlib import Path

import trio

from ..accesslog import LogFormat
from ..builtin import ResumableUploads, build
from ..cors import CorsPolicy, with_cors
from ..files.access import AccessRules
from ..files.uploads import remove_stale_uploads
from ..request import Handler
from ..server import Server
from .options import (
    add_header_options,
    add_limit_options,
    add_listening_options,
    add_logging_options,
    add_max_body_size,
    config_from_args,
    load_tls,
    positive_seconds,
)
from .process import configure_logging, run_server, run_workers

__all__ = ["add_parser", "main"]

log = logging.getLogger("trio_http")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the server",
        description="Serve the built-in endpoints (/, /echo/{text}, /user-agent) and, with "
        "--directory, the files under DIR at /files/.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serve.set_defaults(command_main=main)
    add_listening_options(serve.add_argument_group("listening"))

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
        "--no-archives",
        action="store_true",
        help="no folder downloads as zip or tar.gz (?download=, 403)",
    )
    files.add_argument(
        "--auth",
        action="append",
        default=[],
        metavar="RULE",
        help="access rule USER:PASSWORD@PATH[:rw][,PATH[:rw]...] or @PATH[:rw] for anyone "
        "(repeatable; without rules everyone may read and write)",
    )
    files.add_argument(
        "--auth-file",
        type=Path,
        metavar="FILE",
        help="access rules, one per line (keeps passwords out of ps)",
    )
    add_max_body_size(files)
    files.add_argument(
        "--upload-expiry",
        type=positive_seconds,
        default=ResumableUploads.expiry,
        metavar="S",
        help="remove unfinished resumable uploads (tus, at /uploads/) not written for S",
    )

    add_limit_options(
        serve.add_argument_group("timeouts and limits (seconds; 0 disables a timeout)")
    )

    output = serve.add_argument_group("responses and logging")
    add_header_options(output)
    output.add_argument("--no-compression", action="store_true", help="never compress responses")
    output.add_argument(
        "--cors",
        action="store_true",
        help="let scripts on any origin read (not change) files (Access-Control-Allow-Origin: *)",
    )
    output.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let scripts on ORIGIN (https://host[:port]) read and change files, with "
        "credentials (repeatable)",
    )
    add_logging_options(output)


def main(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> int:
    directory: Path | None = args.directory
    if directory is not None:
        if not directory.is_dir():
            parser.exit(2, f"trio-http: error: --directory {directory}: not a directory\n")
        directory = args.directory = directory.resolve()
    load_tls(parser, args)
    cors = _cors_policy(parser, args)
    access = _access_rules(parser, args)
    configure_logging(args.log_level)
    if access.enabled and args.ssl_context is None and not _is_loopback(args.host):
        log.warning(
            "--auth without TLS on %s: passwords cross the network in clear text "
            "(use --certfile/--keyfile, or a TLS proxy in front)",
            args.host,
        )
    if args.workers > 1:
        return run_workers(args, argv)
    built = build(
        directory,
        read_only=args.read_only,
        follow_symlinks=args.follow_symlinks,
        allow_hidden=args.show_hidden,
        listings=not args.no_listing,
        access=access,
        archives=not args.no_archives,
        uploads=ResumableUploads(max_size=args.max_body_size, expiry=args.upload_expiry),
        # Pages on --cors-origin origins may change files; --cors (any origin) only reads.
        trusted_origins=cors.origins if cors is not None and cors.origins else (),
    )
    app = built.app
    handler: Handler = app if cors is None else with_cors(app, cors)
    access_format: LogFormat = args.access_log_format
    config = config_from_args(args, compression=not args.no_compression)
    server = Server(handler, config, access_log_format=access_format)
    if directory is None:
        return run_server(server, args, "no --directory: /files routes are off")
    mode = "read-only" if args.read_only else "read-write"

    def after_listening(nursery: trio.Nursery) -> None:
        for task in built.background:
            nursery.start_soon(task)
        if not args.read_only:
            # Uploads a killed server left half-written; in the background, so a large tree
            # does not delay listening.  Live uploads (other workers') hold a lock and stay.
            nursery.start_soon(_remove_stale_uploads, directory)

    what = f"serving {directory} at /files/ ({mode})"
    return run_server(server, args, what, after_listening=after_listening)


def _access_rules(parser: argparse.ArgumentParser, args: argparse.Namespace) -> AccessRules:
    try:
        if args.auth_file is not None:
            return AccessRules.load(args.auth_file, extra=args.auth)
        return AccessRules.parse(args.auth)
    except OSError as exc:
        parser.exit(2, f"trio-http: error: --auth-file: {exc}\n")
    except ValueError as exc:
        parser.exit(2, f"trio-http: error: {exc}\n")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _cors_policy(parser: argparse.ArgumentParser, args: argparse.Namespace) -> CorsPolicy | None:
    if args.cors and args.cors_origin:
        parser.exit(2, "trio-http: error: use --cors (any origin) or --cors-origin, not both\n")
    if args.cors:
        return CorsPolicy()
    if args.cors_origin:
        try:
            return CorsPolicy.for_origins(args.cors_origin)
        except ValueError as exc:
            parser.exit(2, f"trio-http: error: --cors-origin: {exc}\n")
    return None


async def _remove_stale_uploads(directory: Path) -> None:
    # Abandoned on shutdown rather than waited for: a huge tree must not delay the exit.
    await trio.to_thread.run_sync(remove_stale_uploads, directory, abandon_on_cancel=True)
