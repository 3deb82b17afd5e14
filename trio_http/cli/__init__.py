"""The ``trio-http`` command line: ``serve``, ``run MODULE:ATTR`` and ``hash-password``.

User mistakes (a missing directory, a port in use, a bad option, an application that cannot be
imported) end with one line on stderr and a non-zero exit status, never a traceback.  SIGTERM or
SIGINT shuts down gracefully; a second one stops at once.  A clean stop exits with status 0.

- ``options.py``: the options both commands take, their value parsers, the ServerConfig;
- ``process.py``: logging, signals, running a server with its listening line, ``--workers``;
- ``serve.py``: ``serve``, the built-in endpoints and the file server;
- ``run.py``: ``run``, an ASGI application;
- ``reload.py``: ``run --reload``, restarting the server when a source file changes;
- ``hash_password.py``: ``hash-password``, an scrypt hash for ``--auth`` rules.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from .hash_password import add_parser as add_hash_password_parser
from .run import add_parser as add_run_parser
from .serve import add_parser as add_serve_parser

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trio-http", description="An HTTP/1.1 server and file server for Trio."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_serve_parser(commands)
    add_run_parser(commands)
    add_hash_password_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    status: int = args.command_main(parser, args, argv)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
