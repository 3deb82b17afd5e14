"""Raw ASGI app (no framework) with the same endpoints as trio-http, for the peer servers.

Endpoints:
    GET  /              -> 200, empty body
    GET  /echo/{text}   -> 200 text/plain, body = text (gzip if the client accepts it)
    GET  /files/{name}  -> file bytes from $BENCH_DATA_DIR, application/octet-stream
    POST /files/{name}  -> streams the request body into $BENCH_DATA_DIR/{name}, 201
    WS   /ws            -> WebSocket echo: every text or binary message is sent back as is

Run with e.g. ``uvicorn asgi_app:app``, ``hypercorn --worker-class trio asgi_app:app`` or
``trio-http run asgi_app:app`` from this directory.  A file is sent with the
``http.response.pathsend`` extension when the server offers it in the scope's
``extensions`` (trio-http: ``sendfile``); otherwise it is read with plain blocking I/O in
64 KiB chunks, as is an upload written: the app has to run on both asyncio (uvicorn) and
trio (hypercorn, trio-http), and the benchmark files sit in the page cache, so a read or
write never waits on the disk for long.
"""

from __future__ import annotations

import gzip
import os
import stat
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CHUNK_SIZE = 64 * 1024
GZIP_LEVEL = 6
DATA_DIR = Path(os.environ.get("BENCH_DATA_DIR", ".")).resolve()


def _accepts_gzip(headers: list[tuple[bytes, bytes]]) -> bool:
    for key, value in headers:
        if key.lower() != b"accept-encoding":
            continue
        for item in value.decode("latin-1").split(","):
            token, _, params = item.strip().partition(";")
            if token.strip().lower() not in ("gzip", "*"):
                continue
            q = params.strip().removeprefix("q=").strip() if "q=" in params else "1"
            try:
                if float(q) > 0:
                    return True
            except ValueError:
                continue
    return False


def _file_path(name: str) -> Path | None:
    if not name or "/" in name or "\\" in name or "\0" in name or name in (".", ".."):
        return None
    return DATA_DIR / name


async def _respond(
    send: Send,
    status: int,
    body: bytes = b"",
    content_type: bytes = b"text/plain; charset=utf-8",
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if body:
        headers.append((b"content-type", content_type))
    headers.extend(extra or [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _echo(scope: Scope, send: Send, text: str) -> None:
    body = text.encode("utf-8")
    extra = [(b"vary", b"Accept-Encoding")]
    if _accepts_gzip(scope["headers"]):
        body = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
        extra.append((b"content-encoding", b"gzip"))
    await _respond(send, 200, body, extra=extra)


def _file_headers(size: int) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-length", str(size).encode()),
        (b"content-type", b"application/octet-stream"),
    ]


async def _send_file(scope: Scope, send: Send, path: Path) -> None:
    if "http.response.pathsend" in (scope.get("extensions") or {}):
        # The server opens and sends the file: a stat for the length is all the app needs
        # (what a framework's file response does, e.g. Starlette's FileResponse).
        try:
            info = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            info = None
        if info is None or not stat.S_ISREG(info.st_mode):
            await _respond(send, 404, b"Not Found")
            return
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": _file_headers(info.st_size),
        }
        await send(start)
        await send({"type": "http.response.pathsend", "path": str(path)})
        return
    try:
        f = path.open("rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        await _respond(send, 404, b"Not Found")
        return
    with f:
        size = os.fstat(f.fileno()).st_size
        headers = _file_headers(size)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        remaining = size
        while remaining > 0:
            chunk = f.read(min(CHUNK_SIZE, remaining))
            if not chunk:  # file shrank underneath us; the connection will be cut short
                break
            remaining -= len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": remaining > 0})
        if remaining:
            await send({"type": "http.response.body", "body": b""})


async def _receive_file(receive: Receive, send: Send, path: Path) -> None:
    partial = path.with_name(path.name + ".part")
    with partial.open("wb") as f:
        more_body = True
        while more_body:
            message = await receive()
            if message["type"] == "http.disconnect":
                f.close()
                partial.unlink(missing_ok=True)
                return
            f.write(message.get("body", b""))
            more_body = bool(message.get("more_body", False))
    partial.replace(path)
    await _respond(send, 201)


async def _websocket_echo(receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.receive":
            text = message.get("text")
            if text is not None:
                await send({"type": "websocket.send", "text": text})
            else:
                await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
        elif message["type"] == "websocket.disconnect":
            return


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] == "websocket":
        if scope["path"] == "/ws":
            await _websocket_echo(receive, send)
        else:
            await send({"type": "websocket.close", "code": 1008})  # a 403 before accepting
        return
    if scope["type"] != "http":
        return
    method: str = scope["method"]
    path: str = scope["path"]
    if path == "/":
        if method in ("GET", "HEAD"):
            await _respond(send, 200)
        else:
            await _respond(send, 405, b"Method Not Allowed", extra=[(b"allow", b"GET, HEAD")])
    elif path.startswith("/echo/"):
        await _echo(scope, send, path.removeprefix("/echo/"))
    elif path.startswith("/files/"):
        file_path = _file_path(path.removeprefix("/files/"))
        if file_path is None:
            await _respond(send, 404, b"Not Found")
        elif method == "GET":
            await _send_file(scope, send, file_path)
        elif method in ("POST", "PUT"):
            await _receive_file(receive, send, file_path)
        else:
            await _respond(send, 405, b"Method Not Allowed", extra=[(b"allow", b"GET, POST")])
    else:
        await _respond(send, 404, b"Not Found")
