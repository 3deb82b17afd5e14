"""Opening listening sockets: the one place the CLI, :func:`~trio_http.serve` and the workers
get theirs from."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from typing import Any

import trio

__all__ = [
    "Address",
    "BatchAcceptListener",
    "accept_in_batches",
    "listener_addresses",
    "open_listeners",
]

Address = tuple[str, int]


async def open_listeners(
    host: str | None,
    port: int,
    *,
    backlog: int | None = None,
    ssl_context: ssl.SSLContext | None = None,
    reuse_port: bool = False,
) -> list[trio.abc.Listener[Any]]:
    """TCP listeners on every address of *host* (``None``: every interface), wrapped in TLS
    with *ssl_context*.  With *reuse_port* (a worker of ``--workers``), ``SO_REUSEPORT`` is
    set so several processes share the port.  Raises ``OSError`` if it cannot listen."""
    tcp: list[trio.SocketListener]
    if reuse_port:
        assert host is not None, "workers listen on an explicit host"
        tcp = await _bind_reuse_port(host, port, backlog or 1024)
    else:
        tcp = await trio.open_tcp_listeners(port, host=host, backlog=backlog)
    if ssl_context is None:
        return list(tcp)
    return [trio.SSLListener(listener, ssl_context, https_compatible=True) for listener in tcp]


async def _bind_reuse_port(host: str, port: int, backlog: int) -> list[trio.SocketListener]:
    """Listening sockets on every address of *host*, with ``SO_REUSEPORT`` set."""
    addresses = await trio.socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    sockets: list[trio.socket.SocketType] = []
    try:
        for family, kind, proto, _, address in addresses:
            sock = trio.socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            await sock.bind(address)
            sock.listen(backlog)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return [trio.SocketListener(sock) for sock in sockets]


def listener_addresses(listeners: Sequence[trio.abc.Listener[Any]]) -> list[Address]:
    """The ``(host, port)`` each TCP listener is bound to (TLS listeners included)."""
    addresses = []
    for listener in listeners:
        if isinstance(listener, trio.SSLListener):
            listener = listener.transport_listener
        sock = getattr(listener, "socket", None)
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            host, port = sock.getsockname()[:2]
            addresses.append((str(host), int(port)))
    return addresses


#: Connections accepted one after the other without yielding (see BatchAcceptListener).
ACCEPT_BATCH = 256


class BatchAcceptListener(trio.abc.Listener[trio.SocketStream]):
    """A ``SocketListener`` whose ``accept`` returns a connection already waiting at once.

    trio's ``accept`` yields after every connection, and on a busy server each yield costs a
    whole scheduler round (a request served on every active connection): 64 connections
    opened at once (wrk) had the last one accepted ~0.5 s after the first, which was the
    benchmark's p99 (docs/performance.md: p99 150 -> 43 ms on ``GET /``, uvicorn 34).  Here up
    to ``ACCEPT_BATCH`` waiting connections are taken between two yields; when none is waiting
    (or accept fails), trio's ``accept`` waits and reports errors as before.
    """

    def __init__(self, listener: trio.SocketListener) -> None:
        self.listener = listener
        sock = listener.socket
        # A second descriptor for the listening socket, for plain non-blocking accept() calls.
        self._raw = socket.fromfd(sock.fileno(), sock.family, sock.type, sock.proto)
        self._raw.setblocking(False)
        self._streak = 0

    @property
    def socket(self) -> trio.socket.SocketType:
        return self.listener.socket

    async def accept(self) -> trio.SocketStream:
        if self._streak < ACCEPT_BATCH:
            try:
                client, _ = self._raw.accept()
            except OSError:  # nothing waiting, or an error trio's accept deals with
                pass
            else:
                self._streak += 1
                return trio.SocketStream(trio.socket.from_stdlib_socket(client))
        self._streak = 0
        return await self.listener.accept()

    async def aclose(self) -> None:
        self._raw.close()
        await self.listener.aclose()


def accept_in_batches(
    listeners: Sequence[trio.abc.Listener[Any]],
) -> list[trio.abc.Listener[Any]]:
    """*listeners*, with each plain TCP listener wrapped in a :class:`BatchAcceptListener`."""
    return [
        BatchAcceptListener(listener) if type(listener) is trio.SocketListener else listener
        for listener in listeners
    ]
