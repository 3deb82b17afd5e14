"""The least an idle WebSocket can cost on Trio: a reference for the ws-idle scenario.

Not a server to use.  It keeps only what any Trio host of an ASGI WebSocket must hold: a task
per connection (``trio.serve_tcp``), its socket, a wsproto ``Connection``, the ``websocket``
scope, and the application's coroutines (bench/asgi_app.py, as for the real servers), waiting
in ``receive()``.  Everything a real server adds is left out: an HTTP parser and its checks,
limits, pings, timeouts, the close handshake's bounds, logging, statistics, shutdown.  What
trio-http costs above this figure is what those features and its layers cost (see
docs/performance.md, "Memory per idle WebSocket").

    python bench/ws_floor.py --port 8000
"""

from __future__ import annotations

import argparse
import os
from collections.abc import MutableMapping
from contextlib import suppress
from functools import partial
from typing import Any

import trio
from asgi_app import app
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.utilities import generate_accept_token


async def serve_websocket(stream: trio.SocketStream) -> None:
    """A WebSocket on *stream*: the handshake read by hand, then the application."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(4096)
        if not chunk or len(data) > 16384:
            return
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    request_line, *lines = head.split(b"\r\n")
    headers = [(n.strip().lower(), v.strip()) for n, v in (line.split(b":", 1) for line in lines)]
    key = dict(headers).get(b"sec-websocket-key")
    if key is None:  # not a WebSocket: the runner asking whether we are up
        await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        return
    path = request_line.split(b" ")[1].decode("latin-1")
    scope: dict[str, Any] = {
        "type": "websocket", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "scheme": "ws", "path": path, "raw_path": path.encode("latin-1"), "query_string": b"",
        "root_path": "", "headers": headers, "client": None, "server": None,
        "subprotocols": [], "state": {}, "extensions": {},
    }  # fmt: skip
    protocol = Connection(ConnectionType.SERVER, trailing_data=rest)  # (None: closed)
    fd = stream.socket.fileno()
    parts: list[Any] = []
    connected = False

    async def receive() -> dict[str, Any]:
        nonlocal connected
        if not connected:
            connected = True
            return {"type": "websocket.connect"}
        while True:
            for event in protocol.events():
                if isinstance(event, (TextMessage, BytesMessage)):
                    parts.append(event.data)
                    if event.message_finished:
                        kind = "text" if isinstance(event, TextMessage) else "bytes"
                        message = parts[0][:0].join(parts)
                        parts.clear()
                        return {"type": "websocket.receive", kind: message}
                elif isinstance(event, Ping):
                    await stream.send_all(protocol.send(event.response()))
                elif isinstance(event, CloseConnection):
                    await stream.send_all(protocol.send(event.response()))
                    return {"type": "websocket.disconnect", "code": event.code}
            await trio.lowlevel.wait_readable(fd)
            received = os.read(fd, 256 * 1024)
            if not received:
                return {"type": "websocket.disconnect", "code": 1006}
            protocol.receive_data(received)

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "websocket.accept":
            await stream.send_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                + generate_accept_token(key)
                + b"\r\n\r\n"
            )
        elif message["type"] == "websocket.send":
            text = message.get("text")
            event = TextMessage(text) if text is not None else BytesMessage(message["bytes"])
            await stream.send_all(protocol.send(event))

    with suppress(trio.BrokenResourceError, OSError):  # the client went away
        await app(scope, receive, send)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--backlog", type=int, default=4096)
    args = parser.parse_args()
    serve = partial(trio.serve_tcp, host=args.host, backlog=args.backlog)
    trio.run(serve, serve_websocket, args.port)


if __name__ == "__main__":
    main()
