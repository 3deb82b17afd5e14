"""TestClient.websocket: a wsproto client over an in-memory connection to the real server."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import trio
import trio.testing
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Ping
from wsproto.events import Request as WSRequest

from trio_http import App, HTTPError, Request, Response, ServerConfig
from trio_http.asgi import ASGIHost
from trio_http.asgi.types import Receive, Scope, Send
from trio_http.http11 import HTTPConnection
from trio_http.testing import TestClient, TestWebSocket, WebSocketClosed, WebSocketRefused
from trio_http.websocket import WebSocket, WebSocketSettings


@pytest.fixture(autouse=True)
def no_unexpected_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No test here makes the server log an error, but the handler failure some expect."""
    yield
    errors = [
        record.getMessage()
        for record in caplog.get_records("call")
        if record.levelno >= logging.ERROR and "WebSocket handler failed" not in record.getMessage()
    ]
    assert not errors, errors


def make_app(settings: WebSocketSettings | None = None) -> App:
    app = App(websocket_settings=settings)

    @app.websocket("/echo")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        async for message in ws:
            await ws.send(message)

    @app.websocket("/protocols")
    async def protocols(ws: WebSocket) -> None:
        chosen = next((p for p in ws.subprotocols if p in ("chat.v2", "chat.v1")), None)
        await ws.accept(chosen, headers={"x-room": "lobby"})
        await ws.send(f"offered {', '.join(ws.subprotocols) or 'nothing'}")
        await ws.receive()

    @app.websocket("/private")
    async def private(ws: WebSocket) -> Response | None:
        if ws.headers.get("authorization") != "Bearer sesame":
            return Response("who are you?\n", 403, {"x-why": "no token"})
        await ws.accept()
        await ws.send("welcome")
        await ws.receive()
        return None

    @app.websocket("/refuse-silently")
    async def refuse_silently(ws: WebSocket) -> None:
        return None

    @app.websocket("/bye/{code}")
    async def bye(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send("first")
        await ws.send("second")
        await ws.close(int(ws.path_params["code"]), "bye now")

    @app.websocket("/returns")
    async def returns(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send("done")

    @app.websocket("/fails")
    async def fails(ws: WebSocket) -> None:
        await ws.accept()
        await ws.receive()
        raise RuntimeError("the handler broke")

    @app.websocket("/hangs-before-accept")
    async def hangs_before_accept(ws: WebSocket) -> None:
        await trio.sleep_forever()

    @app.websocket("/hangs-after-close")
    async def hangs_after_close(ws: WebSocket) -> None:
        await ws.accept()
        await trio.sleep_forever()  # never receives, so never sees the close: a leak

    @app.websocket("/silent")
    async def silent(ws: WebSocket) -> None:
        await ws.accept()
        await ws.receive()

    @app.websocket("/headers")
    async def headers(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send(f"{ws.headers.get('host')} {ws.headers.get('x-trace')}")
        await ws.receive()

    @app.get("/plain")
    async def plain(request: Request) -> Response:
        return Response("not a WebSocket\n")

    return app


# ------------------------------------------------------------------ messages


async def test_echo_text() -> None:
    async with TestClient(make_app()) as client, client.websocket("/echo") as ws:
        assert isinstance(ws, TestWebSocket)
        await ws.send("hello")
        assert await ws.receive() == "hello"
        await ws.send("héllo ✓")
        assert await ws.receive_text() == "héllo ✓"
    assert ws.close_code == 1000
    assert ws.closed


async def test_echo_binary() -> None:
    async with TestClient(make_app()) as client, client.websocket("/echo") as ws:
        await ws.send(b"\x00\xff binary")
        assert await ws.receive() == b"\x00\xff binary"
        big = bytes(range(256)) * 1024  # 256 KiB: several reads on either side
        await ws.send(big)
        assert await ws.receive_bytes() == big


async def test_messages_keep_their_order_and_kind() -> None:
    async with TestClient(make_app()) as client, client.websocket("/echo") as ws:
        for i in range(50):
            await ws.send(str(i) if i % 2 else str(i).encode())
        received = [await ws.receive() for _ in range(50)]
    assert received == [str(i) if i % 2 else str(i).encode() for i in range(50)]


async def test_compression_is_negotiated_when_offered() -> None:
    async with TestClient(make_app()) as client:
        async with client.websocket("/echo", compression=True) as ws:
            assert ws.extensions == ["permessage-deflate"]
            await ws.send("z" * 100_000)
            assert await ws.receive() == "z" * 100_000
        async with client.websocket("/echo") as ws:
            assert ws.extensions == []


async def test_compression_off_in_the_settings() -> None:
    app = make_app(WebSocketSettings(compression=False))
    async with TestClient(app) as client, client.websocket("/echo", compression=True) as ws:
        assert ws.extensions == []
        await ws.send("plain")
        assert await ws.receive() == "plain"


async def test_async_for_ends_at_the_close() -> None:
    async with TestClient(make_app()) as client, client.websocket("/bye/1000") as ws:
        assert [message async for message in ws] == ["first", "second"]
    assert (ws.close_code, ws.close_reason) == (1000, "bye now")


# ------------------------------------------------------------------ handshake


async def test_subprotocol_and_accept_headers() -> None:
    async with TestClient(make_app()) as client:
        offered = ["chat.v1", "chat.v2"]
        async with client.websocket("/protocols", subprotocols=offered) as ws:
            assert ws.subprotocol == "chat.v1"  # the server picks in the client's order
            assert ws.headers["x-room"] == "lobby"
            assert await ws.receive() == "offered chat.v1, chat.v2"
        async with client.websocket("/protocols") as ws:
            assert ws.subprotocol is None
            assert await ws.receive() == "offered nothing"


async def test_handshake_headers_and_host() -> None:
    async with TestClient(make_app()) as client:
        async with client.websocket("/headers", headers={"x-trace": "abc"}) as ws:
            assert await ws.receive() == "testserver abc"
        async with client.websocket("/headers", headers={"Host": "chat.example"}) as ws:
            assert await ws.receive() == "chat.example None"


async def test_refusal_carries_status_headers_and_body() -> None:
    async with TestClient(make_app()) as client:
        with pytest.raises(WebSocketRefused) as refused:
            async with client.websocket("/private"):
                pytest.fail("the WebSocket should have been refused")
        assert refused.value.status == 403
        assert refused.value.headers["x-why"] == "no token"
        assert refused.value.text == "who are you?\n"
        assert "403" in str(refused.value)
        token = {"authorization": "Bearer sesame"}
        async with client.websocket("/private", headers=token) as ws:
            assert await ws.receive() == "welcome"


async def test_refusals_by_the_server() -> None:
    async with TestClient(make_app()) as client:
        with pytest.raises(WebSocketRefused) as silently:
            async with client.websocket("/refuse-silently"):
                pass
        assert silently.value.status == 403  # returned None without accepting
        with pytest.raises(WebSocketRefused) as missing:
            async with client.websocket("/nowhere"):
                pass
        assert missing.value.status == 404
        with pytest.raises(WebSocketRefused) as not_websocket:
            async with client.websocket("/plain"):
                pass
        assert not_websocket.value.status == 200
        assert not_websocket.value.text == "not a WebSocket\n"
        # The client is still usable for plain requests after all that.
        assert (await client.get("/plain")).status == 200


async def test_origin_allow_list() -> None:
    app = make_app(WebSocketSettings(allowed_origins=("https://chat.example",)))
    async with TestClient(app) as client:
        with pytest.raises(WebSocketRefused) as refused:
            async with client.websocket("/echo", headers={"origin": "https://evil.example"}):
                pass
        assert refused.value.status == 403
        async with client.websocket("/echo", headers={"origin": "https://chat.example"}) as ws:
            await ws.send("ok")
            assert await ws.receive() == "ok"


async def test_plain_get_on_a_websocket_route_gets_426() -> None:
    async with TestClient(make_app()) as client:
        response = await client.get("/echo")
    assert response.status == 426
    assert response.headers["upgrade"] == "websocket"


# ------------------------------------------------------------------ closing


@pytest.mark.parametrize("code", [1000, 1001, 1008, 4000])
async def test_server_close_code_reaches_the_client(code: int) -> None:
    async with TestClient(make_app()) as client, client.websocket(f"/bye/{code}") as ws:
        assert await ws.receive() == "first"
        assert await ws.receive() == "second"  # messages before the close still arrive
        with pytest.raises(WebSocketClosed) as closed:
            await ws.receive()
        assert (closed.value.code, closed.value.reason) == (code, "bye now")
        with pytest.raises(WebSocketClosed):
            await ws.send("too late")
    assert ws.close_code == code


async def test_handler_returning_closes_with_1000() -> None:
    async with TestClient(make_app()) as client, client.websocket("/returns") as ws:
        assert await ws.receive() == "done"
        with pytest.raises(WebSocketClosed) as closed:
            await ws.receive()
    assert closed.value.code == 1000


async def test_handler_raising_closes_with_1011(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="trio_http.error"):
        async with TestClient(make_app()) as client, client.websocket("/fails") as ws:
            await ws.send("break")
            with pytest.raises(WebSocketClosed) as closed:
                await ws.receive()
    assert closed.value.code == 1011
    assert "the handler broke" in caplog.text


async def test_client_close_with_a_code() -> None:
    async with TestClient(make_app()) as client, client.websocket("/echo") as ws:
        await ws.close(4001, "done here")
        assert ws.closed
        assert (ws.close_code, ws.close_reason) == (4001, "done here")  # the server's echo
        await ws.close()  # again: nothing to do
        with pytest.raises(WebSocketClosed):
            await ws.receive()


async def test_server_ping_is_answered(autojump_clock: trio.testing.MockClock) -> None:
    settings = WebSocketSettings(ping_interval=1, ping_timeout=1)
    async with TestClient(make_app(settings)) as client, client.websocket("/echo") as ws:
        await trio.sleep(10)  # ten pings, each answered by the client's reader
        await ws.send("still here")
        assert await ws.receive() == "still here"
    assert ws.close_code == 1000


# ------------------------------------------------------------------ bounded waits


async def test_handshake_without_answer_times_out(autojump_clock: trio.testing.MockClock) -> None:
    async with TestClient(make_app()) as client:
        with pytest.raises(trio.TooSlowError, match="handshake for /hangs-before-accept"):
            async with client.websocket("/hangs-before-accept", timeout=2):
                pass


async def test_receive_without_message_times_out(autojump_clock: trio.testing.MockClock) -> None:
    async with TestClient(make_app()) as client, client.websocket("/silent", timeout=3) as ws:
        with pytest.raises(trio.TooSlowError, match="no WebSocket message from /silent"):
            await ws.receive()
        with pytest.raises(trio.TooSlowError):
            await ws.receive(timeout=0.5)


async def test_handler_left_running_after_the_close_is_reported(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with TestClient(make_app()) as client:
        with pytest.raises(trio.TooSlowError, match="still running"):
            async with client.websocket("/hangs-after-close", timeout=2):
                pass


async def test_failure_in_the_block_is_not_masked() -> None:
    async with TestClient(make_app()) as client:
        with pytest.raises(KeyError, match="boom"):
            async with client.websocket("/silent"):
                raise KeyError("boom")


async def test_several_websockets_at_once() -> None:
    async with (
        TestClient(make_app()) as client,
        client.websocket("/echo") as first,
        client.websocket("/echo") as second,
    ):
        await first.send("one")
        await second.send("two")
        assert await second.receive() == "two"
        assert await first.receive() == "one"


# ------------------------------------------------------------------ ASGI


async def starlette_host() -> ASGIHost:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket as StarletteWebSocket

    async def echo(websocket: StarletteWebSocket) -> None:
        if websocket.query_params.get("token") != "sesame":
            await websocket.close(code=1008)  # before accept: the server answers 403
            return
        protocol = "v1" if "v1" in websocket.scope["subprotocols"] else None
        await websocket.accept(subprotocol=protocol)
        async for text in websocket.iter_text():
            if text == "bye":
                await websocket.close(code=4002, reason="asked to")
                return
            await websocket.send_text(text.upper())
            await websocket.send_bytes(text.encode())

    return ASGIHost(Starlette(routes=[WebSocketRoute("/ws", echo)]))


async def test_asgi_starlette_websocket() -> None:
    async with TestClient(await starlette_host()) as client:
        async with client.websocket("/ws?token=sesame", subprotocols=["v1"]) as ws:
            assert ws.subprotocol == "v1"
            await ws.send("hello")
            assert await ws.receive() == "HELLO"
            assert await ws.receive() == b"hello"
            await ws.send("bye")
            with pytest.raises(WebSocketClosed) as closed:
                await ws.receive()
        assert (closed.value.code, closed.value.reason) == (4002, "asked to")
        with pytest.raises(WebSocketRefused) as refused:
            async with client.websocket("/ws"):
                pass
        assert refused.value.status == 403


async def test_asgi_client_close_reaches_the_app() -> None:
    closed: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "websocket"
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                closed.append(message["code"])
                return
            await send({"type": "websocket.send", "text": message.get("text")})

    async with TestClient(ASGIHost(app)) as client, client.websocket("/") as ws:
        await ws.send("x")
        assert await ws.receive() == "x"
        await ws.close(4003)
    assert closed == [4003]


async def test_asgi_denial_response() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"www-authenticate", b"Bearer")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"log in first\n"})

    async with TestClient(ASGIHost(app)) as client:
        with pytest.raises(WebSocketRefused) as refused:
            async with client.websocket("/"):
                pass
    assert refused.value.status == 401
    assert refused.value.headers["www-authenticate"] == "Bearer"
    assert refused.value.body == b"log in first\n"


# ------------------------------------------------------------------ the server, seen from here
#
# Found while writing the tests above.  (Stalled readers, text sizes in UTF-8 bytes and the
# access-log line are tested in test_websocket_protocol.py.)


async def raw_open(stream: trio.abc.Stream, path: str) -> WSConnection:
    """The client side of a handshake on *stream*, wsproto only (no TestClient)."""
    protocol = WSConnection(ConnectionType.CLIENT)
    await stream.send_all(protocol.send(WSRequest(host="testserver", target=path)))
    with trio.fail_after(5):
        while True:
            protocol.receive_data(bytes(await stream.receive_some()))
            if any(isinstance(event, AcceptConnection) for event in protocol.events()):
                return protocol


# A client that hangs up right after its close frame or a ping, before the server's answer, is
# no server error (WebSocketClosed escaping the reader task logged "handler failed").
@pytest.mark.parametrize("last_frame", ["close", "ping"])
async def test_client_gone_right_after_its_last_frame_is_not_an_error(
    last_frame: str, caplog: pytest.LogCaptureFixture
) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    connection = HTTPConnection(server_stream, make_app(), ServerConfig(access_log=False))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.run)
        protocol = await raw_open(client_stream, "/echo")
        frame = CloseConnection(code=1000) if last_frame == "close" else Ping(b"hi")
        await client_stream.send_all(protocol.send(frame))
        await client_stream.aclose()  # gone before the server could answer
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


# Fails today: serve_websocket re-raises inside its nursery, so the HTTPError reaches the
# connection wrapped in an ExceptionGroup and is answered 500 with a logged traceback.
async def test_http_error_before_accept_refuses_with_its_status() -> None:
    app = App()

    @app.websocket("/members")
    async def members(ws: WebSocket) -> None:
        raise HTTPError(401, "log in first", headers={"www-authenticate": "Bearer"})

    async with TestClient(app) as client:
        with pytest.raises(WebSocketRefused) as refused:
            async with client.websocket("/members"):
                pass
    assert refused.value.status == 401
    assert refused.value.headers["www-authenticate"] == "Bearer"
