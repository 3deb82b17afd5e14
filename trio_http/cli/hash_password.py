"""``trio-http hash-password``: print an scrypt hash to use in an ``--auth`` rule.

On a terminal the password is asked twice, without echo (:mod:`getpass`); otherwise one line
is read from stdin (its line ending removed, nothing else: spaces are part of the password).
The hash goes to stdout alone, so ``HASH=$(trio-http hash-password)`` works.  An empty
password, two entries that differ, or no input end with one line on stderr and status 2.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from ..files.access import hash_password

__all__ = ["add_parser", "main"]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser(
        "hash-password",
        help="print an scrypt hash of a password, for --auth rules",
        description="Read a password (twice, hidden, on a terminal; one line from stdin "
        "otherwise) and print its scrypt hash, to use in place of the password in an --auth "
        "rule or an --auth-file line: USER:HASH@PATH.",
    )
    command.set_defaults(command_main=main)


def _error(message: str) -> int:
    print(f"trio-http: error: {message}", file=sys.stderr)
    return 2


def main(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> int:
    try:
        if sys.stdin.isatty():
            password = getpass.getpass("Password: ")
            if password and getpass.getpass("Password again: ") != password:
                return _error("the two passwords differ")
        else:
            line = sys.stdin.readline()
            if not line:
                return _error("no password on stdin")
            password = line.removesuffix("\n").removesuffix("\r")
    except (EOFError, KeyboardInterrupt):
        print(file=sys.stderr)  # end the prompt's line
        return _error("no password given")
    if not password:
        return _error("the password is empty")
    print(hash_password(password))
    return 0
