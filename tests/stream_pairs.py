"""Client/server stream pairs for connection tests: in memory, or a real TCP socket pair.

The connection picks its transport from the stream it gets (trio_http/transport): an
in-memory stream takes the StreamTransport, an accepted TCP socket the SocketTransport with
its descriptor fast paths, FIONREAD and sendfile.  Tests parametrised over both kinds run the
production path too.
"""

from __future__ import annotations

import trio
import trio.testing

KINDS = ["memory", "socket"]


async def socket_stream_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    """A connected TCP pair on 127.0.0.1: (client end, server end)."""
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    try:
        port = listener.socket.getsockname()[1]
        client = await trio.open_tcp_stream("127.0.0.1", port)
        server = await listener.accept()
    finally:
        await listener.aclose()
    return client, server


async def stream_pair(kind: str) -> tuple[trio.abc.HalfCloseableStream, trio.abc.Stream]:
    """(client end, server end) of the given kind (see :data:`KINDS`)."""
    if kind == "socket":
        return await socket_stream_pair()
    return trio.testing.memory_stream_pair()
