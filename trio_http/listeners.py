"""Opening listening sockets: the one place the CLI, :func:`~trio_http.serve` and the workers
get theirs from."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from typing import Any

import trio

__all__ = ["Address", "listener_addresses", "open_listeners"]

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
