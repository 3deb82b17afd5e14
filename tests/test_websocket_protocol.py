"""WebSockets (RFC 6455, RFC 7692) through the real connection, byte for byte.

Every test here talks raw bytes to an :class:`~trio_http.http11.HTTPConnection` over a stream
pair (in memory, lockstep or a real TCP pair on 127.0.0.1) or to a :class:`~trio_http.Server`
on port 0.  The client side is written here from the RFC, not borrowed from a library: a frame
builder (masking, opcodes, RSV bits, 7/16/64-bit lengths, and deliberately wrong frames) and a
strict reader of the server's frames (which must be unmasked, and whose close codes are
parsed and checked).

1. The opening handshake: 101 with the right ``Sec-WebSocket-Accept``; 426/400/405/403 for
   the handshakes the RFC refuses; subprotocols; extra headers; refusals by the handler; a
   first frame in the handshake's packet.
2. Hostile frames: each violation closes with its RFC 6455 code (1002, 1007, 1009), the
   compression bomb included (with the memory it costs measured); valid traffic survives
   interleaved pings and delivery one byte at a time.
3. Behaviour: keep-alive (on the autojump clock), the close handshake both ways, handler
   return and failure, graceful shutdown, back-pressure both ways, 1,000 WebSockets at once,
   the access log.

Every network wait is bounded by ``trio.fail_after``; nothing sleeps to synchronise.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import resource
import socket
import struct
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing
from stream_pairs import KINDS, socket_stream_pair, stream_pair

from trio_http import App, Request, Response, Server, ServerConfig
from trio_http.accesslog import AccessLogger, escape
from trio_http.http11 import HTTPConnection
from trio_http.websocket import WebSocket, WebSocketClosed, WebSocketSettings

# ------------------------------------------------------------------------------ frames

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
RSV1, RSV2, RSV3 = 4, 2, 1
#: The RFC 6455 §1.3 example: this key must be answered with this accept value.
RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#: What RFC 7692 §7.2.1 strips from the end of a compressed message.
DEFLATE_TAIL = b"\x00\x00\xff\xff"
#: Bound on one network exchange (real seconds, or virtual ones on the autojump clock).
IO_TIMEOUT = 5.0


def mask(payload: bytes, key: bytes) -> bytes:
    """*payload* XOR-ed with the 4-byte *key* repeated (RFC 6455 §5.3)."""
    if not payload:
        return b""
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return value.to_bytes(len(payload), "big")


def frame_head(
    opcode: int,
    length: int,
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    key: bytes = b"",
    length_bytes: int | None = None,
) -> bytes:
    """A frame header declaring *length*; *length_bytes* (0, 2 or 8) forces the encoding of
    the length (the RFC wants the shortest), else the shortest one is used."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if masked else 0
    if length_bytes is None:
        length_bytes = 0 if length <= 125 else 2 if length <= 0xFFFF else 8
    if length_bytes == 0:
        head = bytes([first, mask_bit | length])
    elif length_bytes == 2:
        head = bytes([first, mask_bit | 126]) + struct.pack("!H", length)
    else:
        head = bytes([first, mask_bit | 127]) + struct.pack("!Q", length)
    return head + (key if masked else b"")


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    length_bytes: int | None = None,
) -> bytes:
    """One client frame: masked with a fresh random key unless *masked* is false."""
    key = os.urandom(4) if masked else b""
    head = frame_head(
        opcode, len(payload), fin=fin, rsv=rsv, masked=masked, key=key, length_bytes=length_bytes
    )
    return head + (mask(payload, key) if masked else payload)


def text(message: str, *, fin: bool = True) -> bytes:
    return frame(OP_TEXT, message.encode(), fin=fin)


def close_payload(code: int | None = None, reason: str = "") -> bytes:
    return b"" if code is None else struct.pack("!H", code) + reason.encode()


def close_frame(code: int | None = None, reason: str = "") -> bytes:
    return frame(OP_CLOSE, close_payload(code, reason))


def deflate(message: bytes, compressor: Any | None = None) -> bytes:
    """*message* compressed as a permessage-deflate payload (RFC 7692 §7.2.1)."""
    compressor = compressor or zlib.compressobj(wbits=-15)
    data: bytes = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(DEFLATE_TAIL)
    return data[: -len(DEFLATE_TAIL)]


@dataclass(frozen=True)
class Frame:
    """A frame the server sent."""

    fin: bool
    rsv: int
    opcode: int
    payload: bytes


def parse_frame(buffer: bytearray) -> tuple[Frame, int] | None:
    """The server frame at the start of *buffer* and its size, or ``None`` if incomplete."""
    if len(buffer) < 2:
        return None
    first, second = buffer[0], buffer[1]
    assert not second & 0x80, f"a server frame must not be masked (RFC 6455 §5.1): {buffer[:2]!r}"
    length, position = second & 0x7F, 2
    if length == 126:
        if len(buffer) < 4:
            return None
        (length,) = struct.unpack("!H", buffer[2:4])
        position = 4
    elif length == 127:
        if len(buffer) < 10:
            return None
        (length,) = struct.unpack("!Q", buffer[2:10])
        position = 10
    if len(buffer) < position + length:
        return None
    payload = bytes(buffer[position : position + length])
    return Frame(bool(first & 0x80), (first >> 4) & 7, first & 0x0F, payload), position + length


def parse_close(payload: bytes) -> tuple[int | None, str]:
    """The code and reason of a close frame's payload (``None``: no code)."""
    if not payload:
        return None, ""
    assert len(payload) >= 2, f"a close payload of one byte: {payload!r}"
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8")


# ------------------------------------------------------------------------------ the client


@dataclass
class Head:
    """A response head (and its body, framed by Content-Length) as the client read it."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""

    def get(self, name: str) -> str | None:
        values = self.get_all(name)
        assert len(values) <= 1, f"{name} occurs {len(values)} times: {self.headers}"
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]


def handshake_request(
    path: str = "/ws",
    *,
    method: str = "GET",
    version: str | None = "13",
    key: str | None = RFC_KEY,
    upgrade: str | None = "websocket",
    connection: str | None = "Upgrade",
    http_version: str = "1.1",
    extra: list[tuple[str, str]] | None = None,
) -> bytes:
    """An opening handshake; a ``None`` field is left out."""
    lines = [f"{method} {path} HTTP/{http_version}", "Host: 127.0.0.1"]
    for name, value in (
        ("Upgrade", upgrade),
        ("Connection", connection),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", version),
    ):
        if value is not None:
            lines.append(f"{name}: {value}")
    lines += [f"{name}: {value}" for name, value in extra or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class WSClient:
    """The client end of one connection: raw bytes out, parsed heads and frames in."""

    def __init__(self, stream: trio.abc.Stream, finished: trio.Event) -> None:
        self.stream = stream
        #: Set when the server's ``HTTPConnection.run`` has returned.
        self.finished = finished
        self.buffer = bytearray()
        self.inflater: Any = None  # set once permessage-deflate is negotiated
        self.deflater: Any = None

    async def send(self, data: bytes) -> None:
        with trio.fail_after(IO_TIMEOUT):
            await self.stream.send_all(data)

    async def trickle(self, data: bytes) -> None:
        """*data* one byte per send, letting the server run after each."""
        for i in range(len(data)):
            await self.send(data[i : i + 1])
            await trio.testing.wait_all_tasks_blocked()

    async def _fill(self) -> None:
        chunk = await self.stream.receive_some(65536)
        assert chunk, f"the server closed the connection; unparsed: {bytes(self.buffer)!r}"
        self.buffer += chunk

    async def read_head(self, *, bodiless: bool = False) -> Head:
        """The next response head, and its body unless *bodiless* (the answer to HEAD)."""
        with trio.fail_after(IO_TIMEOUT):
            while (end := self.buffer.find(b"\r\n\r\n")) < 0:
                await self._fill()
            lines = self.buffer[:end].decode("latin-1").split("\r\n")
            del self.buffer[: end + 4]
            match = re.fullmatch(r"HTTP/1\.1 (\d{3}) .*", lines[0])
            assert match, f"bad status line {lines[0]!r}"
            headers = [(n, v.strip()) for n, _, v in (line.partition(":") for line in lines[1:])]
            head = Head(int(match[1]), headers)
            if head.status >= 200 and not bodiless:
                length = int(head.get("content-length") or 0)
                while len(self.buffer) < length:
                    await self._fill()
                head.body = bytes(self.buffer[:length])
                del self.buffer[:length]
            return head

    async def handshake(self, request: bytes | None = None, *, then: bytes = b"") -> Head:
        """Send *request* (a plain handshake for ``/ws`` by default) with *then* in the same
        write; the response head."""
        await self.send((request or handshake_request()) + then)
        head = await self.read_head()
        extensions = head.get("sec-websocket-extensions") or ""
        if head.status == 101 and extensions.startswith("permessage-deflate"):
            self.inflater = zlib.decompressobj(wbits=-15)
            self.deflater = zlib.compressobj(wbits=-15)
        return head

    async def open(self, request: bytes | None = None) -> None:
        head = await self.handshake(request)
        assert head.status == 101, f"expected 101, got {head}"

    async def recv_frame(self, timeout: float = IO_TIMEOUT) -> Frame:
        with trio.fail_after(timeout):
            while (parsed := parse_frame(self.buffer)) is None:
                await self._fill()
        found, used = parsed
        del self.buffer[:used]
        return found

    async def recv_message(self) -> str | bytes:
        """The next message (no control frame may come first), reassembled and inflated."""
        parts: list[bytes] = []
        first: Frame | None = None
        while True:
            got = await self.recv_frame()
            assert got.opcode in (OP_TEXT, OP_BINARY, OP_CONT), f"expected data, got {got}"
            assert (got.opcode == OP_CONT) == (first is not None), f"bad fragment {got}"
            first = first or got
            parts.append(got.payload)
            if got.fin:
                break
        data = b"".join(parts)
        if first.rsv & RSV1:
            assert self.inflater is not None, "a compressed frame without permessage-deflate"
            data = self.inflater.decompress(data + DEFLATE_TAIL)
        return data.decode("utf-8") if first.opcode == OP_TEXT else data

    async def send_compressed(self, message: str | bytes) -> None:
        raw = message.encode() if isinstance(message, str) else message
        opcode = OP_TEXT if isinstance(message, str) else OP_BINARY
        await self.send(frame(opcode, deflate(raw, self.deflater), rsv=RSV1))

    async def expect_close(self, code: int | None) -> str:
        """The next frame is a close with *code*; returns its reason."""
        got = await self.recv_frame()
        assert got.opcode == OP_CLOSE, f"expected a close frame ({code}), got {got}"
        assert got.fin and not got.rsv, got
        got_code, reason = parse_close(got.payload)
        assert got_code == code, f"expected close code {code}, got {got_code} ({reason!r})"
        return reason

    async def expect_eof(self) -> None:
        """The server closes the connection (after nothing more) and its run() returns."""
        with trio.fail_after(IO_TIMEOUT):
            while True:
                try:
                    chunk = await self.stream.receive_some(65536)
                except trio.BrokenResourceError:  # a reset from a real socket
                    chunk = b""
                if not chunk:
                    break
                self.buffer += chunk
            assert not self.buffer, f"bytes before EOF: {bytes(self.buffer)[:200]!r}"
            await self.finished.wait()


@contextlib.asynccontextmanager
async def connected(
    app: App,
    kind: str = "memory",
    *,
    config: ServerConfig | None = None,
    pair: tuple[trio.abc.Stream, trio.abc.Stream] | None = None,
) -> AsyncIterator[WSClient]:
    """An :class:`HTTPConnection` serving *app* on the server end of a *kind* pair."""
    client_stream, server_stream = pair or await stream_pair(kind)
    config = config or ServerConfig(access_log=False)
    connection = HTTPConnection(
        server_stream,
        app,
        config,
        client=("127.0.0.1", 40000),
        # As the Server does: an access logger only when the access log is on.
        access_logger=AccessLogger("combined") if config.access_log else None,
    )
    finished = trio.Event()

    async def run() -> None:
        try:
            await connection.run()
        finally:
            finished.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        try:
            yield WSClient(client_stream, finished)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(IO_TIMEOUT) as waited:
                await client_stream.aclose()
                await finished.wait()
            if waited.cancelled_caught:
                nursery.cancel_scope.cancel()
    assert not waited.cancelled_caught, "the server's connection did not end after the client's"


# ------------------------------------------------------------------------------ the apps


def quiet(**overrides: Any) -> WebSocketSettings:
    """Settings without keep-alive pings (unless asked), so frames come only on request."""
    return WebSocketSettings(**{"ping_interval": None, **overrides})


@dataclass
class Seen:
    """What the server-side handler saw."""

    websocket: WebSocket | None = None
    messages: list[str | bytes] = field(default_factory=list)
    #: Set when the handler's ``async for`` over the WebSocket ended by itself.
    ended: trio.Event = field(default_factory=trio.Event)
    #: Set when the handler returned (whatever way).
    returned: trio.Event = field(default_factory=trio.Event)


def echo_app(settings: WebSocketSettings | None = None) -> tuple[App, Seen]:
    """``/ws`` echoes every message back."""
    app = App(websocket_settings=settings or quiet())
    seen = Seen()

    @app.post("/submit")  # so the app knows POST: a POST handshake is then 405, not 501
    async def submit(request: Request) -> Response:
        return Response("ok")

    @app.websocket("/ws")
    async def echo(ws: WebSocket) -> None:
        seen.websocket = ws
        try:
            await ws.accept()
            async for message in ws:
                seen.messages.append(message)
                await ws.send(message)
            seen.ended.set()
        finally:
            seen.returned.set()

    return app, seen


@contextlib.contextmanager
def captured(name: str, level: int = logging.DEBUG) -> Iterator[list[logging.LogRecord]]:
    """Records of logger *name* (a handler on the logger itself: works even if it does not
    propagate, as the CLI configures ``trio_http.access``)."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger(name)
    handler, old_level = Collect(level), logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def caused_by(exc: BaseException | None, kind: type[BaseException]) -> bool:
    """Whether *exc* is a *kind*, or an exception group holding one."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(kind) is not None
    return isinstance(exc, kind)


def errors_in(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.levelno >= logging.ERROR]


# ============================================================================ 1. handshake


@pytest.mark.parametrize("kind", KINDS)
async def test_handshake_answers_101_with_the_rfc_accept_value(kind: str) -> None:
    app, seen = echo_app()
    async with connected(app, kind) as client:
        head = await client.handshake()
        assert head.status == 101
        assert (head.get("upgrade") or "").lower() == "websocket"
        assert (head.get("connection") or "").lower() == "upgrade"
        assert head.get("sec-websocket-accept") == RFC_ACCEPT
        assert head.get("sec-websocket-protocol") is None  # none offered, none chosen
        assert head.get("sec-websocket-extensions") is None  # none offered
        assert head.get("content-length") is None and head.get("transfer-encoding") is None
        await client.send(text("hello"))
        assert await client.recv_message() == "hello"
        await client.send(close_frame(1000))
        await client.expect_close(1000)
        await client.expect_eof()
    assert seen.messages == ["hello"] and seen.ended.is_set()


async def test_handshake_accepts_case_and_token_lists_browsers_send() -> None:
    # Firefox sends "Connection: keep-alive, Upgrade"; tokens are case-insensitive.
    app, _ = echo_app()
    request = handshake_request(upgrade="WebSocket", connection="keep-alive, Upgrade")
    async with connected(app) as client:
        head = await client.handshake(request)
        assert head.status == 101 and head.get("sec-websocket-accept") == RFC_ACCEPT
        await client.send(text("ok"))
        assert await client.recv_message() == "ok"


REFUSED = [
    # (id, request, status, header that must be in the answer)
    ("version-missing", handshake_request(version=None), 426, ("sec-websocket-version", "13")),
    ("version-8", handshake_request(version="8"), 426, ("sec-websocket-version", "13")),
    ("version-14", handshake_request(version="14"), 426, ("sec-websocket-version", "13")),
    ("key-missing", handshake_request(key=None), 400, None),
    ("key-not-base64", handshake_request(key="not a key!!"), 400, None),
    ("key-15-bytes", handshake_request(key="AAAAAAAAAAAAAAAAAAAA"), 400, None),
    ("key-17-bytes", handshake_request(key="AAAAAAAAAAAAAAAAAAAAAAA="), 400, None),
    (
        "plain-get",
        handshake_request(upgrade=None, connection=None, key=None, version=None),
        426,
        ("upgrade", "websocket"),
    ),
    ("no-connection-upgrade", handshake_request(connection=None), 426, ("upgrade", "websocket")),
    ("upgrade-h2c", handshake_request(upgrade="h2c"), 426, ("upgrade", "websocket")),
    ("post", handshake_request(method="POST", extra=[("Content-Length", "0")]), 405, None),
    ("http-1.0", handshake_request(http_version="1.0"), 400, None),
]


async def test_head_handshake_is_405() -> None:
    app, seen = echo_app()
    async with connected(app) as client:
        await client.send(handshake_request(method="HEAD"))
        head = await client.read_head(bodiless=True)
        assert head.status == 405 and head.get("allow") == "GET", head
    assert seen.websocket is None


@pytest.mark.parametrize(
    ("request_bytes", "status", "header"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
async def test_handshake_refusals(
    request_bytes: bytes, status: int, header: tuple[str, str] | None
) -> None:
    app, seen = echo_app()
    async with connected(app) as client:
        head = await client.handshake(request_bytes)
        assert head.status == status, head
        assert head.get("sec-websocket-accept") is None
        if header is not None:
            name, value = header
            assert (head.get(name) or "").lower() == value, head.headers
        if status == 405:
            assert "GET" in (head.get("allow") or ""), head.headers
    assert seen.websocket is None, "the handler ran for a refused handshake"


@pytest.mark.parametrize(
    ("origin", "status"),
    [("https://good.example", 101), ("https://evil.example", 403), (None, 403)],
    ids=["allowed", "other", "missing"],
)
async def test_origin_allow_list(origin: str | None, status: int) -> None:
    app, seen = echo_app(quiet(allowed_origins=("https://good.example",)))
    extra = [("Origin", origin)] if origin else []
    async with connected(app) as client:
        head = await client.handshake(handshake_request(extra=extra))
        assert head.status == status, head
        if status == 101:
            await client.send(text("from a good origin"))
            assert await client.recv_message() == "from a good origin"
        else:
            assert seen.websocket is None


def subprotocol_app(choice: str | None) -> tuple[App, list[WebSocket]]:
    app = App(websocket_settings=quiet())
    sockets: list[WebSocket] = []

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        sockets.append(ws)
        await ws.accept(subprotocol=choice)
        await ws.send(f"subprotocol={ws.subprotocol}")

    return app, sockets


async def test_subprotocol_negotiated_from_the_offer() -> None:
    app, sockets = subprotocol_app("superchat")
    offer = handshake_request(extra=[("Sec-WebSocket-Protocol", "chat, superchat")])
    async with connected(app) as client:
        head = await client.handshake(offer)
        assert head.status == 101
        assert head.get_all("sec-websocket-protocol") == ["superchat"]
        assert await client.recv_message() == "subprotocol=superchat"
        await client.expect_close(1000)
    assert sockets[0].subprotocols == ("chat", "superchat")


async def test_subprotocol_not_offered_is_a_500_before_the_101() -> None:
    app, _ = subprotocol_app("mqtt")
    offer = handshake_request(extra=[("Sec-WebSocket-Protocol", "chat")])
    with captured("trio_http.error") as errors:
        async with connected(app) as client:
            head = await client.handshake(offer)
            assert head.status == 500, head
            assert head.get("sec-websocket-protocol") is None
    raised = [r.exc_info[1] for r in errors if r.exc_info]
    assert any(caused_by(exc, ValueError) for exc in raised), [r.getMessage() for r in errors]


async def test_accept_sends_extra_headers() -> None:
    app = App(websocket_settings=quiet())

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        await ws.accept(headers={"x-session": "abc123", "set-cookie": "sid=1; HttpOnly"})
        await ws.send("hi")

    async with connected(app) as client:
        head = await client.handshake()
        assert head.status == 101
        assert head.get("x-session") == "abc123"
        assert head.get("set-cookie") == "sid=1; HttpOnly"
        assert head.get("sec-websocket-accept") == RFC_ACCEPT
        assert await client.recv_message() == "hi"


async def test_handler_refuses_with_its_own_response() -> None:
    app = App(websocket_settings=quiet())

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> Response:
        return Response("log in first", status=401, headers={"www-authenticate": "Bearer"})

    async with connected(app) as client:
        head = await client.handshake()
        assert head.status == 401
        assert head.body == b"log in first"
        assert head.get("www-authenticate") == "Bearer"
        assert head.get("sec-websocket-accept") is None


async def test_handler_returning_none_without_accepting_is_403() -> None:
    app = App(websocket_settings=quiet())

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        return None

    async with connected(app) as client:
        head = await client.handshake()
        assert head.status == 403
        assert head.get("sec-websocket-accept") is None


@pytest.mark.parametrize("kind", KINDS)
async def test_frames_in_the_handshake_packet_are_not_lost(kind: str) -> None:
    app, seen = echo_app()
    first = text("first") + frame(OP_PING, b"p") + frame(OP_BINARY, b"\x00second")
    async with connected(app, kind) as client:
        head = await client.handshake(then=first)
        assert head.status == 101
        frames = [await client.recv_frame() for _ in range(3)]
        # The pong may come before the echoes (the reader answers pings at once).
        assert [(f.opcode, f.payload) for f in frames if f.opcode == OP_PONG] == [(OP_PONG, b"p")]
        echoes = [(f.opcode, f.payload) for f in frames if f.opcode != OP_PONG]
        assert echoes == [(OP_TEXT, b"first"), (OP_BINARY, b"\x00second")]
    assert seen.messages == ["first", b"\x00second"]


# ============================================================================ 2. hostile frames


def violation(*frames: bytes) -> bytes:
    return b"".join(frames)


HOSTILE: list[tuple[str, bytes, int]] = [
    ("unmasked", frame(OP_TEXT, b"hi", masked=False), 1002),
    ("rsv1-without-extension", frame(OP_TEXT, b"hi", rsv=RSV1), 1002),
    ("rsv2", frame(OP_TEXT, b"hi", rsv=RSV2), 1002),
    ("rsv3", frame(OP_BINARY, b"hi", rsv=RSV3), 1002),
    ("ping-126-bytes", frame(OP_PING, b"p" * 126), 1002),
    ("close-126-bytes", frame(OP_CLOSE, close_payload(1000, "r" * 124)), 1002),
    ("fragmented-ping", frame(OP_PING, b"p", fin=False), 1002),
    ("fragmented-close", frame(OP_CLOSE, close_payload(1000), fin=False), 1002),
    ("opcode-3", frame(0x3, b"x"), 1002),
    ("opcode-7", frame(0x7, b"x"), 1002),
    ("opcode-0xb", frame(0xB, b"x"), 1002),
    ("opcode-0xf", frame(0xF, b""), 1002),
    ("continuation-first", frame(OP_CONT, b"orphan"), 1002),
    ("text-inside-fragmented", violation(text("a", fin=False), text("b")), 1002),
    ("binary-inside-fragmented", violation(text("a", fin=False), frame(OP_BINARY, b"b")), 1002),
    ("16-bit-length-for-100", frame(OP_BINARY, b"x" * 100, length_bytes=2), 1002),
    ("64-bit-length-for-1000", frame(OP_BINARY, b"x" * 1000, length_bytes=8), 1002),
    ("64-bit-length-msb", frame_head(OP_BINARY, 1 << 63, key=b"abcd"), 1002),
    ("close-1-byte", frame(OP_CLOSE, b"\x03"), 1002),
    ("close-999", close_frame(999), 1002),
    ("close-0", close_frame(0), 1002),
    ("close-1004", close_frame(1004), 1002),
    ("close-1005-on-wire", close_frame(1005), 1002),
    ("close-1006-on-wire", close_frame(1006), 1002),
    ("close-1015-on-wire", close_frame(1015), 1002),
    ("close-1100", close_frame(1100), 1002),
    ("close-2999", close_frame(2999), 1002),
    ("close-5000", close_frame(5000), 1002),
    ("close-65535", close_frame(65535), 1002),
    ("close-reason-bad-utf8", frame(OP_CLOSE, struct.pack("!H", 1000) + b"\xff"), 1007),
    ("text-bad-utf8", frame(OP_TEXT, b"caf\xff"), 1007),
    ("text-surrogate", frame(OP_TEXT, b"\xed\xa0\x80"), 1007),
    ("text-overlong", frame(OP_TEXT, b"\xc0\xaf"), 1007),
    ("text-above-u10ffff", frame(OP_TEXT, b"\xf4\x90\x80\x80"), 1007),
    ("text-bad-utf8-across-fragments",
     violation(frame(OP_TEXT, b"caf\xe2\x82", fin=False), frame(OP_CONT, b"(")), 1007),
    ("text-truncated-utf8-at-end",
     violation(frame(OP_TEXT, b"ok", fin=False), frame(OP_CONT, b"\xe2\x82")), 1007),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "code"), [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE]
)
async def test_hostile_frame_closes_with_its_code(data: bytes, code: int) -> None:
    app, seen = echo_app()
    async with connected(app) as client:
        await client.open()
        await client.send(text("before"))
        assert await client.recv_message() == "before"
        await client.send(data)
        await client.expect_close(code)
        await client.expect_eof()
    assert seen.messages == ["before"]
    assert seen.ended.is_set(), "the handler's async for did not end"
    assert seen.websocket is not None and seen.websocket.close_code == code


@pytest.mark.parametrize(
    ("code", "reason"),
    [(1000, ""), (1001, "going"), (1003, ""), (1011, "oops"), (3000, "lib"), (4999, "é")],
)
async def test_valid_close_codes_are_answered_with_the_same_code(code: int, reason: str) -> None:
    app, seen = echo_app()
    async with connected(app) as client:
        await client.open()
        await client.send(close_frame(code, reason))
        await client.expect_close(code)
        await client.expect_eof()
    assert seen.ended.is_set()
    assert seen.websocket is not None
    assert (seen.websocket.close_code, seen.websocket.close_reason) == (code, reason)


async def test_empty_close_frame_is_answered() -> None:
    app, seen = echo_app()
    async with connected(app) as client:
        await client.open()
        await client.send(close_frame(None))
        got = await client.recv_frame()
        assert got.opcode == OP_CLOSE
        assert parse_close(got.payload)[0] in (None, 1000)
        await client.expect_eof()
    assert seen.ended.is_set()


# ------------------------------------------------------------------------------ max_size

LIMITED = quiet(max_size=1000)


@pytest.mark.parametrize(
    ("frames", "echo"),
    [
        (frame(OP_BINARY, b"b" * 1000), b"b" * 1000),
        (text("t" * 1000), "t" * 1000),
        (text("a" * 500, fin=False) + frame(OP_CONT, b"b" * 500), "a" * 500 + "b" * 500),
    ],
    ids=["binary-1000", "text-1000", "fragmented-1000"],
)
async def test_message_of_exactly_max_size_is_accepted(frames: bytes, echo: str | bytes) -> None:
    app, _ = echo_app(LIMITED)
    async with connected(app) as client:
        await client.open()
        await client.send(frames)
        assert await client.recv_message() == echo


@pytest.mark.parametrize(
    "frames",
    [
        frame(OP_BINARY, b"b" * 1001),
        text("t" * 1001),
        frame(OP_BINARY, b"a" * 400, fin=False)
        + frame(OP_CONT, b"b" * 400, fin=False)
        + frame(OP_CONT, b"c" * 400),
    ],
    ids=["binary-1001", "text-1001", "fragmented-1200"],
)
async def test_message_over_max_size_closes_1009(frames: bytes) -> None:
    app, seen = echo_app(LIMITED)
    async with connected(app) as client:
        await client.open()
        await client.send(frames)
        await client.expect_close(1009)
        await client.expect_eof()
    assert seen.messages == [] and seen.ended.is_set()


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "deflated"])
async def test_text_max_size_counts_utf8_bytes(compressed: bool) -> None:
    """600 "é" are 1,200 bytes of payload: over a 1,000-byte max_size, whether the message
    comes compressed (deflate.py counts inflated bytes) or not (counting characters would
    let it through, and let 4-byte characters through at four times the limit)."""
    app, seen = echo_app(LIMITED)
    message = "é" * 600
    async with connected(app) as client:
        await client.open(DEFLATE_OFFER)
        if compressed:
            await client.send_compressed(message)
        else:
            await client.send(text(message))
        await client.expect_close(1009)
    assert seen.messages == []


async def test_huge_declared_length_closes_1009_before_the_payload_arrives() -> None:
    # A frame announcing 10 GB: the server must not wait for (or buffer) it all.
    app, _ = echo_app(LIMITED)
    async with connected(app, "socket") as client:
        await client.open()
        key = os.urandom(4)
        await client.send(frame_head(OP_BINARY, 10 * 1024**3, key=key) + mask(b"z" * 4096, key))
        await client.expect_close(1009)


# ------------------------------------------------------------------------------ deflate

DEFLATE_OFFER = handshake_request(
    extra=[("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")]
)


async def test_permessage_deflate_negotiated_both_directions() -> None:
    app, seen = echo_app()
    async with connected(app) as client:
        head = await client.handshake(DEFLATE_OFFER)
        assert head.status == 101
        assert (head.get("sec-websocket-extensions") or "").startswith("permessage-deflate")
        big = "compress me " * 10_000
        await client.send_compressed(big)
        reply = await client.recv_frame()
        assert reply.rsv == RSV1, "the server's reply is not compressed"
        assert len(reply.payload) < len(big) // 10
        assert client.inflater.decompress(reply.payload + DEFLATE_TAIL).decode() == big
        await client.send_compressed(b"\x00\x01" * 500)  # the context carries over
        assert await client.recv_message() == b"\x00\x01" * 500
        await client.send(text("not compressed"))  # RSV1 clear: taken as it is
        assert await client.recv_message() == "not compressed"
    assert seen.messages == [big, b"\x00\x01" * 500, "not compressed"]


async def test_deflate_offer_ignored_when_compression_is_off() -> None:
    app, _ = echo_app(quiet(compression=False))
    async with connected(app) as client:
        head = await client.handshake(DEFLATE_OFFER)
        assert head.status == 101 and head.get("sec-websocket-extensions") is None
        await client.send(frame(OP_TEXT, deflate(b"hi"), rsv=RSV1))
        await client.expect_close(1002)


async def test_corrupt_deflate_data_closes_1007() -> None:
    app, _ = echo_app()
    async with connected(app) as client:
        await client.open(DEFLATE_OFFER)
        await client.send(frame(OP_BINARY, b"\xff\xff\xff\xff garbage", rsv=RSV1))
        await client.expect_close(1007)


async def test_deflate_bomb_closes_1009_without_inflating_it() -> None:
    mib = 1024 * 1024
    bomb = deflate(bytes(10 * mib))  # 10 MB of zeros
    assert len(bomb) < 20_000
    app, seen = echo_app(quiet(max_size=mib))
    async with connected(app) as client:
        await client.open(DEFLATE_OFFER)
        payload = frame(OP_BINARY, bomb, rsv=RSV1)
        tracemalloc.start()
        try:
            started = time.perf_counter()
            await client.send(payload)
            await client.expect_close(1009)
            elapsed = time.perf_counter() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        await client.expect_eof()
    assert seen.messages == []
    assert elapsed < 2.0, f"the 1009 took {elapsed:.2f}s"
    # One step of inflation is bounded by max_size (+1): 1 MiB plus bookkeeping, not 10 MB.
    assert peak < 4 * mib, f"peak traced memory {peak / mib:.1f} MiB for a 1 MiB limit"


async def test_fragmented_deflate_bomb_closes_1009() -> None:
    # Each fragment inflates to less than max_size, the message to more (RFC 7692: only the
    # first frame carries RSV1).
    mib = 1024 * 1024
    compressor = zlib.compressobj(wbits=-15)
    piece = bytes(256 * 1024)
    fragments = [compressor.compress(piece) + compressor.flush(zlib.Z_SYNC_FLUSH) for _ in range(8)]
    fragments[-1] = fragments[-1][: -len(DEFLATE_TAIL)]
    frames = [frame(OP_BINARY, fragments[0], fin=False, rsv=RSV1)]
    frames += [frame(OP_CONT, f, fin=False) for f in fragments[1:-1]]
    frames.append(frame(OP_CONT, fragments[-1]))
    app, seen = echo_app(quiet(max_size=mib))
    async with connected(app) as client:
        await client.open(DEFLATE_OFFER)
        await client.send(b"".join(frames))
        await client.expect_close(1009)
    assert seen.messages == []


# ------------------------------------------------------------------------------ fragmentation


async def test_fragments_with_interleaved_pings_are_reassembled_and_pings_answered() -> None:
    app, seen = echo_app()
    async with connected(app) as client:
        await client.open()
        await client.send(
            text("Hel", fin=False)
            + frame(OP_PING, b"ping-1")
            + frame(OP_CONT, b"lo, ", fin=False)
            + frame(OP_PING, b"")
            + frame(OP_CONT, b"", fin=False)  # an empty fragment is allowed
            + frame(OP_PONG, b"unsolicited")  # ignored (RFC 6455 §5.5.3)
            + frame(OP_PING, bytes(range(125)))
            + frame(OP_CONT, "wörld".encode())
        )
        pongs = [await client.recv_frame() for _ in range(3)]
        assert [(p.opcode, p.payload) for p in pongs] == [
            (OP_PONG, b"ping-1"),
            (OP_PONG, b""),
            (OP_PONG, bytes(range(125))),
        ]
        assert await client.recv_message() == "Hello, wörld"
        # A fragmented binary message, UTF-8 split inside a character in a text one.
        await client.send(frame(OP_BINARY, b"\x00", fin=False) + frame(OP_CONT, b"\xff"))
        assert await client.recv_message() == b"\x00\xff"
        euro = "€".encode()
        await client.send(frame(OP_TEXT, euro[:1], fin=False) + frame(OP_CONT, euro[1:]))
        assert await client.recv_message() == "€"
    assert seen.messages == ["Hello, wörld", b"\x00\xff", "€"]


@dataclass(frozen=True)
class Pong:
    """An expected pong (with this payload) among the expected echoes."""

    payload: bytes


TRICKLED: list[tuple[str, list[bytes], list[str | bytes | Pong]]] = [
    ("text-7-bit", [text("héllo")], ["héllo"]),
    ("empty-text-and-binary", [text(""), frame(OP_BINARY)], ["", b""]),
    ("binary-16-bit", [frame(OP_BINARY, bytes(range(256)) * 2)], [bytes(range(256)) * 2]),
    # (its 64 KiB middle in one piece: a byte at a time costs ~20 s; the boundaries that
    # matter, in the 14-byte head and at the payload's ends, are all split)
    ("binary-64-bit", [frame(OP_BINARY, b"L" * 65536)], [b"L" * 65536]),
    ("fragmented-with-ping",
     [text("frag", fin=False), frame(OP_PING, b"!"), frame(OP_CONT, "mént".encode())],
     [Pong(b"!"), "fragmént"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("frames", "expected"), [c[1:] for c in TRICKLED], ids=[c[0] for c in TRICKLED]
)
async def test_valid_traffic_split_at_every_byte(
    frames: list[bytes], expected: list[str | bytes | Pong]
) -> None:
    """Handshake, messages and close, delivered one byte per send."""
    app, seen = echo_app()
    async with connected(app) as client:
        await client.trickle(handshake_request())
        head = await client.read_head()
        assert head.status == 101
        for data in frames:
            if len(data) > 4096:
                await client.trickle(data[:64])
                await client.send(data[64:-64])
                await client.trickle(data[-64:])
            else:
                await client.trickle(data)
        for want in expected:
            if isinstance(want, Pong):
                pong = await client.recv_frame()
                assert (pong.opcode, pong.payload) == (OP_PONG, want.payload)
            else:
                assert await client.recv_message() == want
        await client.trickle(close_frame(1000, "bye"))
        assert await client.expect_close(1000) == "bye"
        await client.expect_eof()
    assert seen.ended.is_set()
    assert seen.messages == [m for m in expected if not isinstance(m, Pong)]


async def test_compressed_message_split_at_every_byte() -> None:
    app, seen = echo_app()
    async with connected(app) as client:
        await client.trickle(DEFLATE_OFFER)
        head = await client.read_head()
        assert head.status == 101
        client.inflater = zlib.decompressobj(wbits=-15)
        message = "squeeze " * 200
        await client.trickle(frame(OP_TEXT, deflate(message.encode()), rsv=RSV1))
        assert await client.recv_message() == message
    assert seen.messages == [message]


# ============================================================================ 3. behaviour

# ------------------------------------------------------------------------------ keep-alive


async def test_unanswered_pings_close_1011_and_are_logged(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app, seen = echo_app(WebSocketSettings(ping_interval=1, ping_timeout=1))
    with captured("trio_http.error") as records:
        async with connected(app) as client:
            await client.open()
            opened = trio.current_time()
            ping = await client.recv_frame()
            assert ping.opcode == OP_PING
            assert trio.current_time() - opened == pytest.approx(1, abs=0.01)
            # ... never answered:
            await client.expect_close(1011)
            assert trio.current_time() - opened == pytest.approx(2, abs=0.01)
            await client.expect_eof()
    assert seen.ended.is_set()
    assert any("ping" in r.getMessage() for r in records), [r.getMessage() for r in records]
    assert not errors_in(records)


async def test_answered_pings_keep_the_websocket_open(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app, seen = echo_app(WebSocketSettings(ping_interval=1, ping_timeout=1))
    async with connected(app) as client:
        await client.open()
        opened, pings = trio.current_time(), 0
        while trio.current_time() - opened < 30:
            got = await client.recv_frame()
            assert got.opcode == OP_PING, f"expected only pings, got {got}"
            pings += 1
            await client.send(frame(OP_PONG, got.payload))
        assert pings >= 25
        await client.send(text("still here"))
        while (got := await client.recv_frame()).opcode == OP_PING:
            await client.send(frame(OP_PONG, got.payload))
        assert (got.opcode, got.payload) == (OP_TEXT, b"still here")
        await client.send(close_frame(1000))
        while (got := await client.recv_frame()).opcode == OP_PING:
            pass
        assert got.opcode == OP_CLOSE and parse_close(got.payload)[0] == 1000
    assert seen.messages == ["still here"]


async def test_keepalive_gives_up_on_a_peer_that_stops_reading(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A dead peer (reads nothing, answers nothing) while the handler sends: the ping
    timeout must still end the connection, and the handler's blocked send() with it."""
    settings = WebSocketSettings(ping_interval=1, ping_timeout=1, close_timeout=1)
    app = App(websocket_settings=settings)
    outcome: list[BaseException] = []

    @app.websocket("/ws")
    async def push(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                await ws.send(b"x" * 1000)
        except WebSocketClosed as exc:
            outcome.append(exc)
            raise

    pair = trio.testing.lockstep_stream_pair()  # no buffering: a non-reader blocks the sender
    async with connected(app, pair=pair) as client:
        await client.open()
        with trio.move_on_after(30):  # virtual seconds: 1 interval + 1 timeout + slack
            await client.finished.wait()
        assert client.finished.is_set(), (
            "30 s after a peer stopped reading and answering pings, its WebSocket is still "
            "open: the keep-alive's ping waits behind the handler's blocked send and its "
            "timeout never fires"
        )
    assert outcome and isinstance(outcome[0], WebSocketClosed)


async def test_keepalive_does_not_crash_a_close_in_progress(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The server starts the close handshake; the client answers it late (after a ping is
    due).  The close must complete normally: no ping sent in the closing state, no error."""
    app = App(websocket_settings=WebSocketSettings(ping_interval=1, ping_timeout=10))
    done: list[str] = []

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        await ws.accept()
        await trio.sleep(0.5)
        await ws.close(4000, "bye")
        done.append("close() returned")

    with captured("trio_http.error") as records:
        async with connected(app) as client:
            await client.open()
            assert await client.expect_close(4000) == "bye"
            await trio.sleep(3)  # a slow client (virtual time: past the next ping)
            assert not client.finished.is_set(), (
                f"the server dropped the connection during its own close handshake; "
                f"errors: {errors_in(records)}"
            )
            await client.send(close_frame(4000))
            await client.expect_eof()
    assert done == ["close() returned"]
    assert not errors_in(records), errors_in(records)


# ------------------------------------------------------------------------------ closing


@pytest.mark.parametrize("kind", KINDS)
async def test_client_close_is_answered_and_ends_the_async_for(kind: str) -> None:
    app, seen = echo_app()
    async with connected(app, kind) as client:
        await client.open()
        await client.send(text("one"))
        assert await client.recv_message() == "one"
        await client.send(close_frame(1000, "done"))
        assert await client.expect_close(1000) == "done"
        await client.expect_eof()
    assert seen.ended.is_set() and seen.returned.is_set()
    assert seen.websocket is not None and seen.websocket.close_code == 1000


async def test_client_close_then_hang_up_is_not_a_server_error() -> None:
    """A client that sends its close frame and hangs up without waiting for the answer
    (allowed: it ends the TCP connection, RFC 6455 §7.1.1): the handler's loop ends and
    nothing is logged as a server error."""
    app, seen = echo_app()
    with captured("trio_http.error") as records:
        async with connected(app) as client:
            await client.open()
            await client.send(close_frame(1000))
            await client.stream.aclose()
            with trio.fail_after(IO_TIMEOUT):
                await client.finished.wait()
    assert not errors_in(records), errors_in(records)
    assert seen.returned.is_set()
    assert seen.ended.is_set(), "the handler's async for did not end normally"


@pytest.mark.parametrize("kind", KINDS)
async def test_server_close_reaches_the_client(kind: str) -> None:
    app = App(websocket_settings=quiet())
    closed: list[tuple[int | None, str]] = []

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        await ws.accept()
        await ws.close(4000, "bye")
        closed.append((ws.close_code, ws.close_reason))

    async with connected(app, kind) as client:
        await client.open()
        assert await client.expect_close(4000) == "bye"
        await client.send(close_frame(4000, "bye"))
        await client.expect_eof()
    assert closed == [(4000, "bye")]


async def test_handler_returning_closes_1000() -> None:
    app = App(websocket_settings=quiet())

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send("last words")

    async with connected(app) as client:
        await client.open()
        assert await client.recv_message() == "last words"
        await client.expect_close(1000)
        await client.send(close_frame(1000))
        await client.expect_eof()


async def test_handler_raising_after_accept_closes_1011_and_logs_the_traceback() -> None:
    app = App(websocket_settings=quiet())

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        await ws.accept()
        await ws.receive()
        raise RuntimeError("handler bug")

    with captured("trio_http.error") as records:
        async with connected(app) as client:
            await client.open()
            await client.send(text("trigger"))
            await client.expect_close(1011)
            await client.send(close_frame(1011))
            await client.expect_eof()
    failures = [r for r in records if r.exc_info and caused_by(r.exc_info[1], RuntimeError)]
    assert failures, [r.getMessage() for r in records]
    assert failures[0].levelno == logging.ERROR and "/ws" in failures[0].getMessage()


async def test_client_that_vanishes_ends_the_handler_with_1006() -> None:
    app, seen = echo_app()
    with captured("trio_http.error") as records:
        async with connected(app) as client:
            await client.open()
            await client.stream.aclose()
            with trio.fail_after(IO_TIMEOUT):
                await client.finished.wait()
    assert seen.ended.is_set()
    assert seen.websocket is not None and seen.websocket.close_code == 1006
    assert not errors_in(records)


# ------------------------------------------------------------------------------ shutdown


@contextlib.asynccontextmanager
async def running(app: App, config: ServerConfig) -> AsyncIterator[tuple[Server, int, trio.Event]]:
    """A :class:`Server` on 127.0.0.1:0; yields it, its port and the event set when its
    run() returns."""
    server = Server(app, config)
    stopped = trio.Event()
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1", backlog=2048)

    async def run(*, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await server.run(listeners, task_status=task_status)
        finally:
            stopped.set()

    async with trio.open_nursery() as nursery:
        addresses = await nursery.start(run)
        try:
            yield server, addresses[0][1], stopped
        finally:
            server.shutdown()
            with trio.move_on_after(IO_TIMEOUT):
                await stopped.wait()
            nursery.cancel_scope.cancel()


async def open_client(port: int) -> WSClient:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    return WSClient(stream, trio.Event())


async def test_graceful_shutdown_says_1001_to_open_websockets() -> None:
    app, seen = echo_app()
    config = ServerConfig(access_log=False, graceful_timeout=5)
    async with running(app, config) as (server, port, stopped):
        client = await open_client(port)
        await client.open()
        await client.send(text("hi"))
        assert await client.recv_message() == "hi"
        started = trio.current_time()
        server.shutdown()
        await client.expect_close(1001)
        await client.send(close_frame(1001))
        with trio.fail_after(config.graceful_timeout):
            await stopped.wait()
        assert trio.current_time() - started < 2, "an answered 1001 should not wait it out"
        client.finished.set()
        await client.expect_eof()
    assert seen.ended.is_set()


async def test_graceful_shutdown_ends_an_unresponsive_websocket_in_time() -> None:
    app, _ = echo_app(quiet(close_timeout=60))  # longer than the graceful timeout
    config = ServerConfig(access_log=False, graceful_timeout=1)
    async with running(app, config) as (server, port, stopped):
        client = await open_client(port)
        await client.open()
        started = trio.current_time()
        server.shutdown()
        await client.expect_close(1001)  # ... and never answered
        with trio.fail_after(config.graceful_timeout + 2):
            await stopped.wait()
        assert trio.current_time() - started >= config.graceful_timeout * 0.9
        await client.stream.aclose()


# ------------------------------------------------------------------------------ back-pressure


def parked_app(settings: WebSocketSettings) -> tuple[App, Seen, trio.Event]:
    """``/ws`` accepts, waits for the returned event, then receives everything."""
    app = App(websocket_settings=settings)
    seen = Seen()
    release = trio.Event()

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        seen.websocket = ws
        await ws.accept()
        await release.wait()
        async for message in ws:
            seen.messages.append(message)
        seen.ended.set()

    return app, seen, release


async def test_reading_stops_when_the_handler_does_not_receive() -> None:
    queue_size, total = 4, 50
    app, seen, release = parked_app(quiet(queue_size=queue_size))
    sent = 0
    all_sent = trio.Event()
    async with connected(app, pair=trio.testing.lockstep_stream_pair()) as client:
        await client.open()

        async def sender() -> None:
            nonlocal sent
            for i in range(total):
                await client.stream.send_all(frame(OP_BINARY, i.to_bytes(2, "big") * 100))
                sent += 1
            await client.stream.send_all(close_frame(1000))
            all_sent.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            await trio.testing.wait_all_tasks_blocked()
            # The queue plus the message the reader holds, then the socket is left unread.
            assert seen.websocket is not None
            assert seen.websocket.messages_in <= queue_size + 1, seen.websocket.messages_in
            assert sent <= queue_size + 2, f"the server kept reading: {sent} messages taken"
            assert not all_sent.is_set()
            release.set()
            with trio.fail_after(IO_TIMEOUT):
                await all_sent.wait()
        await client.expect_close(1000)
    assert seen.messages == [i.to_bytes(2, "big") * 100 for i in range(total)]
    assert seen.ended.is_set()


# ------------------------------------------------------------------ who reads the socket


def websocket_tasks() -> list[str]:
    """The names of the running tasks a WebSocket session started (reader, ping, goodbye)."""
    names: list[str] = []

    def walk(task: trio.lowlevel.Task) -> None:
        if task.name.startswith("websocket "):
            names.append(task.name)
        for nursery in task.child_nurseries:
            for child in nursery.child_tasks:
                walk(child)

    root = trio.lowlevel.current_root_task()
    assert root is not None
    walk(root)
    return names


@pytest.mark.parametrize("kind", KINDS)
async def test_an_idle_websocket_has_no_task_of_its_own(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    """The handler's receive() reads the socket itself: no reader task (bench ws-idle)."""
    app, seen = echo_app()
    async with connected(app, kind) as client:
        await client.open()
        await client.send(text("hello"))
        assert await client.recv_message() == "hello"
        await trio.sleep(10)  # past the standby reader's delay: the handler is reading
        assert websocket_tasks() == []
        await client.send(text("again"))
        assert await client.recv_message() == "again"
        await client.send(close_frame(1000))
        await client.expect_close(1000)
    assert seen.messages == ["hello", "again"]


async def test_a_handler_that_does_not_receive_still_answers_pings_and_the_close(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Nobody reads for the standby delay: a standby reader answers for the handler."""
    app, seen, release = parked_app(quiet())
    async with connected(app) as client:
        await client.open()
        sent = trio.current_time()
        await client.send(frame(OP_PING, b"are you there"))
        pong = await client.recv_frame()
        assert (pong.opcode, pong.payload) == (OP_PONG, b"are you there")
        assert trio.current_time() - sent <= 1
        assert websocket_tasks() == ["websocket reader"]
        await client.send(close_frame(1001, "leaving"))
        await client.expect_close(1001)
        release.set()
        await client.expect_eof()
    assert seen.websocket is not None and seen.websocket.close_code == 1001
    assert seen.ended.is_set()


async def test_a_cancelled_receive_loses_no_frame(autojump_clock: trio.testing.MockClock) -> None:
    """receive() may be cancelled while it reads: what was read is kept, the frames of a
    message that straddles the cancellation are joined."""
    app = App(websocket_settings=quiet())
    got: list[str | bytes] = []
    timeouts = 0

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        nonlocal timeouts
        await ws.accept()
        got.append(await ws.receive())
        await ws.send("go")
        while len(got) < 2:
            with trio.move_on_after(1) as waited:
                got.append(await ws.receive())
            timeouts += waited.cancelled_caught
        await ws.close()

    async with connected(app) as client:
        await client.open()
        await client.send(text("ready?"))
        assert await client.recv_message() == "go"
        await client.send(text("first half, ", fin=False))
        await trio.sleep(5)  # the handler's receive() is cancelled several times meanwhile
        await client.send(frame(OP_CONT, b"second half"))
        await client.expect_close(1000)
        await client.send(close_frame(1000))
    assert got == ["ready?", "first half, second half"]
    assert timeouts >= 4


async def test_two_receivers_get_each_message_once() -> None:
    app = App(websocket_settings=quiet())
    got: dict[str, list[str | bytes]] = {"a": [], "b": []}

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        await ws.accept()

        async def receiver(name: str) -> None:
            with contextlib.suppress(WebSocketClosed):
                while True:
                    got[name].append(await ws.receive())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receiver, "a")
            nursery.start_soon(receiver, "b")

    async with connected(app) as client:
        await client.open()
        for i in range(20):
            await client.send(text(str(i)))
            await trio.testing.wait_all_tasks_blocked()
        await client.send(close_frame(1000))
        await client.expect_close(1000)
    assert sorted(got["a"] + got["b"], key=int) == [str(i) for i in range(20)]


async def test_a_ping_waiting_for_its_pong_does_not_read_past_the_queue(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The ping reads while nobody else does, but not past ``queue_size`` waiting messages: a
    client that floods and never answers is closed with 1011, its flood left unread."""
    queue_size = 4
    app, seen, release = parked_app(quiet(queue_size=queue_size, ping_interval=1, ping_timeout=10))
    sent = 0
    async with connected(app, pair=trio.testing.lockstep_stream_pair()) as client:
        await client.open()

        async def flood() -> None:
            nonlocal sent
            for i in range(50):
                await client.stream.send_all(frame(OP_BINARY, i.to_bytes(2, "big")))
                sent += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(flood)
            while (got := await client.recv_frame(timeout=30)).opcode == OP_PING:
                pass  # never answered
            assert got.opcode == OP_CLOSE and parse_close(got.payload)[0] == 1011
            nursery.cancel_scope.cancel()
        assert seen.websocket is not None
        assert seen.websocket.messages_in <= queue_size + 1, seen.websocket.messages_in
        assert sent <= queue_size + 2, f"the server kept reading: {sent} messages taken"
        release.set()


def real_time_from_now(clock: trio.testing.MockClock) -> None:
    """No more jumps: time passes as it really does.  Over real TCP, bytes held back by a full
    window come a moment after the reader asks (the ACK is the kernel's), and an autojump in
    that moment would fire the reader's timeout (a flaky test)."""
    clock.autojump_threshold = math.inf
    clock.rate = 1.0


async def small_buffer_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    """A real socket pair with small kernel buffers (no autotuning), so a stalled side blocks
    after little data."""
    client, server = await socket_stream_pair()
    for end in (client, server):
        end.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        end.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    return client, server


async def test_a_flood_from_the_client_blocks_its_sends_and_memory_stays_bounded() -> None:
    queue_size, size, cap = 16, 64 * 1024, 400  # cap: 25 MiB, far more than the buffers
    app, seen, release = parked_app(quiet(queue_size=queue_size))
    client_end, server_end = await small_buffer_pair()
    sent = 0
    all_sent = trio.Event()
    message = b"m" * size
    async with connected(app, pair=(client_end, server_end)) as client:
        await client.open()

        async def flood() -> None:
            nonlocal sent
            for _ in range(cap):
                await client.stream.send_all(frame(OP_BINARY, message))
                sent += 1
            all_sent.set()

        tracemalloc.start()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(flood)
                with trio.move_on_after(1.5):  # a bounded look at a send that must block
                    await all_sent.wait()
                _, peak = tracemalloc.get_traced_memory()
                stalled_at = sent
                assert not all_sent.is_set(), "the server read a 25 MiB flood it never received"
                release.set()
                with trio.fail_after(20):
                    await all_sent.wait()
        finally:
            tracemalloc.stop()
        await client.send(close_frame(1000))
        await client.expect_close(1000)
    assert stalled_at <= queue_size + 40, f"{stalled_at} messages taken while parked"
    bound = (queue_size + 2) * size + 2 * 1024 * 1024
    assert peak < bound, f"peak {peak / 2**20:.1f} MiB while the handler did not receive"
    assert len(seen.messages) == cap and all(m == message for m in seen.messages)


async def test_send_waits_for_a_client_that_does_not_read() -> None:
    total = 20
    app = App(websocket_settings=quiet())
    progress: list[int] = []

    @app.websocket("/ws")
    async def push(ws: WebSocket) -> None:
        await ws.accept()
        for i in range(total):
            await ws.send(f"message {i}")
            progress.append(i)

    async with connected(app, pair=trio.testing.lockstep_stream_pair()) as client:
        await client.open()
        await trio.testing.wait_all_tasks_blocked()
        assert len(progress) <= 1, "send() returned while the client read nothing"
        for i in range(total):
            assert await client.recv_message() == f"message {i}"
        await client.expect_close(1000)
    assert progress == list(range(total))


async def test_send_over_tcp_blocks_instead_of_buffering() -> None:
    size, cap = 64 * 1024, 400  # 25 MiB to a client that reads nothing
    app = App(websocket_settings=quiet())
    progress: list[int] = []
    done = trio.Event()
    message = b"s" * size

    @app.websocket("/ws")
    async def push(ws: WebSocket) -> None:
        await ws.accept()
        for i in range(cap):
            await ws.send(message)
            progress.append(i)
        done.set()

    async with connected(app, pair=await small_buffer_pair()) as client:
        await client.open()
        tracemalloc.start()
        try:
            with trio.move_on_after(1.5):  # bounded: send() must be blocked by then
                await done.wait()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert not done.is_set(), "25 MiB were 'sent' to a client that read nothing"
        blocked_at = len(progress)
        for _ in range(cap):
            assert await client.recv_message() == message
        await client.expect_close(1000)
    assert blocked_at < 40, f"{blocked_at} messages of 64 KiB accepted by a stalled socket"
    assert peak < 2 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB while send() was blocked"
    assert progress == list(range(cap))


async def test_a_ping_during_a_blocked_send_is_answered_after_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A big message to a client that does not read blocks send(); the client's ping is
    read (by the standby reader) and answered once the message is through, without closing."""
    big = b"b" * (8 * 1024 * 1024)
    app = App(websocket_settings=quiet())
    sent = trio.Event()

    @app.websocket("/ws")
    async def push(ws: WebSocket) -> None:
        await ws.accept()
        assert await ws.receive() == "go"
        await ws.send(big)
        sent.set()
        async for _ in ws:
            pass

    async with connected(app, pair=await small_buffer_pair()) as client:
        await client.open()
        await client.send(text("go"))
        await trio.testing.wait_all_tasks_blocked()
        assert not sent.is_set()
        await client.send(frame(OP_PING, b"still there?"))
        # (Virtual seconds) past the standby delay, so the ping is read, and past close_timeout:
        # the pong waits for the send without a deadline, as the send itself does.
        await trio.sleep(10)
        real_time_from_now(autojump_clock)
        assert await client.recv_message() == big
        pong = await client.recv_frame()
        assert (pong.opcode, pong.payload) == (OP_PONG, b"still there?")
        await client.send(close_frame(1000))
        await client.expect_close(1000)
    assert sent.is_set()


@pytest.mark.parametrize(
    ("field", "value"),
    [("queue_size", 0), ("max_size", 0), ("ping_interval", 0), ("ping_timeout", -1),
     ("close_timeout", 0)],
)  # fmt: skip
def test_settings_that_cannot_work_are_refused(field: str, value: float) -> None:
    """queue_size 0 would mean nobody ever reads; the others a WebSocket closed at once."""
    with pytest.raises(ValueError, match=field):
        changes: dict[str, Any] = {field: value}
        WebSocketSettings(**changes)


# ----------------------------------------------- found by a review of the reader-less session


async def test_a_ping_flood_during_a_blocked_send_owes_one_pong(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """While a send is blocked, only the latest ping is answered (RFC 6455 §5.5.3): one pong
    task at most, not one per ping (20,000 pings made 53 MiB of tasks)."""
    app = App(websocket_settings=quiet())

    @app.websocket("/ws")
    async def push(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send(b"x" * 1000)  # the client does not read: blocked (lockstep)
        async for _ in ws:
            pass

    async with connected(app, pair=trio.testing.lockstep_stream_pair()) as client:
        await client.open()
        await trio.sleep(1)  # past the standby delay: the standby reader reads
        await client.stream.send_all(b"".join(frame(OP_PING, b"p") for _ in range(2000)))
        await trio.testing.wait_all_tasks_blocked()
        assert websocket_tasks().count("websocket pong") <= 1
        assert await client.recv_message() == b"x" * 1000
        pong = await client.recv_frame()
        assert (pong.opcode, pong.payload) == (OP_PONG, b"p")
        await client.send(close_frame(1000))


async def test_concurrent_sends_keep_the_deflate_stream_in_order() -> None:
    """A frame is compressed only on its sender's turn, and the turn passes in order: a
    sender that sends again at once must not go before the one waiting."""
    app = App(websocket_settings=quiet())
    repeated = "hello world, hello world, hello world"

    @app.websocket("/ws")
    async def push(ws: WebSocket) -> None:
        await ws.accept()

        async def other() -> None:
            await ws.send(repeated)  # waits: the big send below is mid-frame

        async with trio.open_nursery() as nursery:
            nursery.start_soon(other)
            await ws.send("z" * 200_000)  # blocked until the client reads it (lockstep)
            await ws.send(repeated)  # at once: compressed after other()'s
        async for _ in ws:
            pass

    deflate_offer = handshake_request(extra=[("Sec-WebSocket-Extensions", "permessage-deflate")])
    async with connected(app, pair=trio.testing.lockstep_stream_pair()) as client:
        head = await client.handshake(deflate_offer)
        assert head.status == 101 and client.inflater is not None
        await trio.testing.wait_all_tasks_blocked()
        got = [await client.recv_message() for _ in range(3)]
        assert got == ["z" * 200_000, repeated, repeated], [g[:40] for g in got]
        await client.send(close_frame(1000))


async def test_one_compressed_read_does_not_inflate_past_the_queue() -> None:
    """Reading stops at queue_size messages even inside one read: 150 compressed MiB in one
    small read are not all inflated (they were: 150 MiB queued with queue_size 4)."""
    mib = 1024 * 1024
    app, seen, release = parked_app(quiet(queue_size=4, max_size=mib))
    deflate_offer = handshake_request(extra=[("Sec-WebSocket-Extensions", "permessage-deflate")])
    async with connected(app) as client:
        assert (await client.handshake(deflate_offer)).status == 101
        deflater = zlib.compressobj(wbits=-15)
        payload = b""
        for _ in range(150):
            data = deflater.compress(b"\0" * mib) + deflater.flush(zlib.Z_SYNC_FLUSH)
            payload += frame(OP_BINARY, data[: -len(DEFLATE_TAIL)], rsv=RSV1)
        await client.send(payload)
        await trio.testing.wait_all_tasks_blocked()
        assert seen.websocket is not None
        assert seen.websocket.messages_in <= 4 + 1, seen.websocket.messages_in
        release.set()
        await client.send(close_frame(1000))
        await client.expect_close(1000)
    assert len(seen.messages) == 150


async def test_a_cancelled_close_still_ends_the_websocket(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A close() its caller cancels still finishes the WebSocket: left "closing", the route
    layer's own close() waited forever."""
    app = App(websocket_settings=quiet(close_timeout=5))

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        await ws.accept()
        with trio.move_on_after(1):  # less time than close_timeout
            await ws.close(1000)

    async with connected(app) as client:
        await client.open()
        await client.expect_close(1000)  # ... and never answered
        with trio.move_on_after(3600):
            await client.finished.wait()
        assert client.finished.is_set()


async def test_a_send_cancelled_mid_frame_closes_the_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A frame cut short cannot be finished: the next frame would land inside it, so the
    connection is closed instead."""
    app = App(websocket_settings=quiet())

    @app.websocket("/ws")
    async def push(ws: WebSocket) -> None:
        await ws.accept()
        with trio.move_on_after(1):
            await ws.send(b"x" * 4_000_000)  # the client reads nothing meanwhile
        with contextlib.suppress(WebSocketClosed):
            await ws.send("after")
        async for _ in ws:
            pass

    async with connected(app, pair=await small_buffer_pair()) as client:
        await client.open()
        await trio.sleep(2)  # the send is cancelled meanwhile
        real_time_from_now(autojump_clock)
        received = 0
        with trio.fail_after(IO_TIMEOUT):
            while chunk := await client.stream.receive_some(65536):
                received += len(chunk)
        assert received < 4_000_000  # cut, and then the end of the connection


# ------------------------------------------------------------------------------ many at once


@contextlib.contextmanager
def enough_file_descriptors(needed: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, max(needed, 4096))
        assert target >= needed, f"RLIMIT_NOFILE hard limit {hard} is below {needed}"
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_a_thousand_concurrent_websockets_each_echo() -> None:
    count = 1000
    app = App(websocket_settings=quiet())
    open_now = peak = 0
    all_open = trio.Event()

    @app.websocket("/ws/{n}")
    async def echo(ws: WebSocket) -> None:
        nonlocal open_now, peak
        await ws.accept()
        open_now += 1
        peak = max(peak, open_now)
        try:
            async for message in ws:
                await ws.send(message)
        finally:
            open_now -= 1

    echoed: list[int] = []
    opened = 0

    async def one(port: int, n: int) -> None:
        nonlocal opened
        client = await open_client(port)
        try:
            await client.open(handshake_request(f"/ws/{n}"))
            opened += 1
            if opened == count:
                all_open.set()
            with trio.fail_after(30):
                await all_open.wait()
            await client.send(text(f"hello {n}"))
            assert await client.recv_message() == f"hello {n}"
            await client.send(close_frame(1000))
            await client.expect_close(1000)
            echoed.append(n)
        finally:
            await client.stream.aclose()

    with enough_file_descriptors(2 * count + 200):
        config = ServerConfig(access_log=False)
        async with running(app, config) as (_, port, _stopped):
            started = time.perf_counter()
            with trio.fail_after(30):
                async with trio.open_nursery() as nursery:
                    for n in range(count):
                        nursery.start_soon(one, port, n)
            elapsed = time.perf_counter() - started
    assert sorted(echoed) == list(range(count))
    assert peak == count, f"only {peak} WebSockets were open at once"
    assert elapsed < 20, f"{count} WebSockets took {elapsed:.1f}s"


# ------------------------------------------------------------------------------ access log

# The request's own access-log line (status 101, its duration) with the WebSocket's fields.
ACCESS_LINE = re.compile(
    r'^127\.0\.0\.1 - - \[[^]]+\] "GET /ws HTTP/1\.1" 101 0 "-" "-" [\d.]+ '
    r"ws_close=(?P<code>\d+) "
    r"ws_in=(?P<in>\d+)/(?P<in_bytes>\d+)B ws_out=(?P<out>\d+)/(?P<out_bytes>\d+)B$"
)


async def test_access_log_line_has_the_close_code_and_message_counts() -> None:
    app, _ = echo_app()
    with captured("trio_http.access", logging.INFO) as records:
        async with connected(app, config=ServerConfig(access_log=True)) as client:
            await client.open()
            for message in ("one", "two", "three"):
                await client.send(text(message))
                assert await client.recv_message() == message
            await client.send(close_frame(4001, "client done"))
            await client.expect_close(4001)
            await client.expect_eof()
    lines = [r.getMessage() for r in records if "ws_close=" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in records]
    match = ACCESS_LINE.search(lines[0])
    assert match, lines[0]
    assert match["code"] == "4001"
    assert (match["in"], match["in_bytes"], match["out"], match["out_bytes"]) == (
        "3",
        "11",
        "3",
        "11",
    )


async def test_access_log_line_for_a_protocol_error() -> None:
    app, _ = echo_app()
    with captured("trio_http.access", logging.INFO) as records:
        async with connected(app, config=ServerConfig(access_log=True)) as client:
            await client.open()
            await client.send(frame(OP_TEXT, b"x", masked=False))
            await client.expect_close(1002)
            await client.expect_eof()
    matches = [m for r in records if (m := ACCESS_LINE.search(r.getMessage()))]
    assert [m["code"] for m in matches] == ["1002"], [r.getMessage() for r in records]


async def test_access_log_line_escapes_the_target() -> None:
    """The access log escapes client text (accesslog.py: no forged fields); a query string
    with a quote and a backslash must not end the quoted field of the WebSocket line."""
    app, _ = echo_app()
    target = '/ws?next="x"\\y'
    with captured("trio_http.access", logging.INFO) as records:
        async with connected(app, config=ServerConfig(access_log=True)) as client:
            await client.open(handshake_request(target))
            await client.send(close_frame(1000))
            await client.expect_close(1000)
            await client.expect_eof()
    lines = [r.getMessage() for r in records if "ws_close=" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in records]
    assert f'"GET {escape(target)} HTTP/1.1" 101 ' in lines[0], lines[0]
    assert lines[0].endswith(" ws_close=1000 ws_in=0/0B ws_out=0/0B"), lines[0]


async def test_no_websocket_access_line_when_the_access_log_is_off() -> None:
    """``ServerConfig(access_log=False)`` (``--no-access-log``) means no access lines, the
    WebSocket's included."""
    app, _ = echo_app()
    with captured("trio_http.access", logging.INFO) as records:
        async with connected(app, config=ServerConfig(access_log=False)) as client:
            await client.open()
            await client.send(close_frame(1000))
            await client.expect_close(1000)
            await client.expect_eof()
    assert [r.getMessage() for r in records] == []
