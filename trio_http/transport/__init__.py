"""Transports: the bytes under an HTTP connection, behind one interface.

- :class:`SocketTransport`: plain TCP, with the non-blocking fast paths, ``FIONREAD`` and
  ``sendfile``;
- :class:`StreamTransport`: any other trio stream (TLS, in-memory).

A new transport (a QUIC stream, a Unix socket with its own tricks) is a new module here.
"""

from __future__ import annotations

import os

import trio

from .base import Deadline, Transport, Waiting, network_errors
from .socket import SocketTransport
from .stream import StreamTransport

__all__ = [
    "Deadline",
    "SocketTransport",
    "StreamTransport",
    "Transport",
    "Waiting",
    "network_errors",
    "transport_for",
]


def transport_for(
    stream: trio.abc.Stream, *, write_timeout: float | None, linger_timeout: float
) -> Transport:
    """The fastest transport that can carry *stream*."""
    if type(stream) is trio.SocketStream and hasattr(os, "sendfile"):
        return SocketTransport(stream, write_timeout=write_timeout, linger_timeout=linger_timeout)
    return StreamTransport(stream, write_timeout=write_timeout, linger_timeout=linger_timeout)
