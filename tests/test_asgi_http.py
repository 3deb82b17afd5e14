"""ASGI http scope (trio_http.asgi.http and scope): raw ASGI applications, in memory and on
sockets, against asgiref's specs/www "HTTP" section."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import h11
import pytest
import trio
import trio.testing
from stream_pairs import socket_stream_pair

from trio_http import ServerConfig
from trio_http.asgi import ASGIHost, ScopeSettings, TrustedProxies, serve_asgi
from trio_http.asgi.types import Message, Receive, Scope, Send
from trio_http.http11 import HTTPConnection
from trio_http.testing import TestClient

CONFIG = ServerConfig(access_log=False)


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        body += bytes(message.get("body", b""))
        if not message.get("more_body", False):
            return body


async def reply(send: Send, status: int, body: bytes, headers: list[Any] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": body})


# ---------------------------------------------------------------- scope


async def test_the_scope() -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)
        await reply(send, 200, b"")

    settings = ScopeSettings(root_path="/mount", state={"db": "x"})
    async with TestClient(ASGIHost(app, settings), CONFIG) as client:
        await client.get("/caf%C3%A9/a%2Fb?q=1&r", headers=[("X-Twice", "1"), ("x-twice", "2")])
    (scope,) = scopes
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert (scope["http_version"], scope["method"], scope["scheme"]) == ("1.1", "GET", "http")
    assert scope["path"] == "/mount/café/a/b"
    assert scope["raw_path"] == b"/mount/caf%C3%A9/a%2Fb"
    assert scope["query_string"] == b"q=1&r"
    assert scope["root_path"] == "/mount"
    assert [h for h in scope["headers"] if h[0] == b"x-twice"] == [
        (b"x-twice", b"1"),
        (b"x-twice", b"2"),
    ]
    assert all(name == name.lower() for name, _ in scope["headers"])
    assert scope["client"] == ("127.0.0.1", 50000)
    assert scope["state"] == {"db": "x"} and scope["state"] is not settings.state
    assert "http.response.pathsend" in scope["extensions"]


async def test_server_and_client_addresses_on_a_socket() -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)
        await reply(send, 200, b"")

    async with serve_asgi(app, "127.0.0.1", 0, config=CONFIG, lifespan="off") as addresses:
        port = addresses[0][1]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while await stream.receive_some():
            pass
    (scope,) = scopes
    assert scope["server"] == ("127.0.0.1", port)
    assert scope["client"][0] == "127.0.0.1"


async def test_trusted_proxy_headers_set_client_and_scheme() -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)
        await reply(send, 200, b"")

    host = ASGIHost(app, ScopeSettings(proxies=TrustedProxies("127.0.0.1")))
    async with TestClient(host, CONFIG) as client:
        headers = {"x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https"}
        await client.get("/", headers=headers)
    assert scopes[0]["client"] == ("203.0.113.7", 0)
    assert scopes[0]["scheme"] == "https"


# ---------------------------------------------------------------- request body


async def test_the_body_streams_in_pieces_with_more_body() -> None:
    messages: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            messages.append(message)
            if not message.get("more_body"):
                break
        await reply(send, 200, b"ok")

    async def pieces() -> Any:
        yield b"one,"
        yield b"two"

    async with TestClient(ASGIHost(app), CONFIG) as client:
        response = await client.post("/", pieces())
    assert response.status == 200
    assert b"".join(m["body"] for m in messages) == b"one,two"
    assert messages[-1]["more_body"] is False
    assert all(m["more_body"] for m in messages[:-1])


async def test_a_declared_body_ends_with_its_last_bytes() -> None:
    messages: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        messages.append(await receive())
        await reply(send, 200, b"")

    async with TestClient(ASGIHost(app), CONFIG) as client:
        await client.post("/", b"hello")
        await client.get("/")
    assert messages[0] == {"type": "http.request", "body": b"hello", "more_body": False}
    assert messages[1] == {"type": "http.request", "body": b"", "more_body": False}


async def test_100_continue_only_when_the_app_reads() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/read":
            await read_body(receive)
        await reply(send, 200, b"done")

    head = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
    async with TestClient(ASGIHost(app), CONFIG) as client:
        ignored = await client.send_raw(head % b"/ignore", half_close=False)
    assert not ignored.startswith(b"HTTP/1.1 100")
    client_stream, server_stream = await socket_stream_pair()
    connection = HTTPConnection(server_stream, ASGIHost(app), CONFIG)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.run)
        await client_stream.send_all(head % b"/read")
        with trio.fail_after(5):
            assert (await client_stream.receive_some()).startswith(b"HTTP/1.1 100 Continue")
            await client_stream.send_all(b"abc")
            assert b"done" in await client_stream.receive_some()
        await client_stream.aclose()


async def test_a_body_over_the_limit_is_413_and_the_app_sees_a_disconnect() -> None:
    seen: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (message := await receive())["type"] == "http.request":
            if not message["more_body"]:
                break
        seen.append(message)
        await reply(send, 200, b"too late")  # ignored: the server answered

    config = ServerConfig(access_log=False, max_body_size=4)
    async with TestClient(ASGIHost(app), config) as client:

        async def pieces() -> Any:
            for _ in range(3):
                yield b"abc"

        response = await client.post("/", pieces())
    assert response.status == 413
    assert seen == [{"type": "http.disconnect"}]


# ---------------------------------------------------------------- response


async def test_a_whole_response_goes_out_in_one_write_with_its_length() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await reply(send, 201, b"created", [(b"Content-Type", b"text/plain"), (b"X-A", b"1")])

    async with TestClient(ASGIHost(app), CONFIG) as client:
        response = await client.get("/")
    assert (response.status, response.body) == (201, b"created")
    assert response.headers.get("content-length") == "7"
    assert response.headers.get("x-a") == "1"
    assert response.headers.get("content-encoding") is None  # the server never compresses


async def test_a_streamed_response_without_length_is_chunked_and_http10_close_delimited() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"a", b"b", b"c"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async with TestClient(ASGIHost(app), CONFIG) as client:
        response = await client.get("/")
        old = await client.send_raw(b"GET / HTTP/1.0\r\n\r\n")
    assert response.body == b"abc" and response.headers.get("transfer-encoding") == "chunked"
    assert old.startswith(b"HTTP/1.1 200 OK") and old.endswith(b"\r\n\r\nabc")
    assert b"transfer-encoding" not in old.lower()


async def test_head_sends_no_body() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await reply(send, 200, b"body", [(b"content-length", b"4")])

    async with TestClient(ASGIHost(app), CONFIG) as client:
        answer = await client.send_raw(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.endswith(b"\r\n\r\n") and b"content-length: 4" in answer


@pytest.mark.parametrize("declared", [b"3", b"10"])
async def test_a_wrong_content_length_closes_the_connection(declared: bytes) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", declared)],
            }
        )
        await send({"type": "http.response.body", "body": b"hello", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async with TestClient(ASGIHost(app), CONFIG) as client:
        with trio.fail_after(5):
            answer = await client.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", half_close=False)
    _, _, body = answer.partition(b"\r\n\r\n")
    # Never a desynchronised stream: at most the declared bytes, then the connection closes.
    assert len(body) <= int(declared)


async def test_pathsend_sends_the_file(tmp_path: Path) -> None:
    data = bytes(range(256)) * 100
    (tmp_path / "f.bin").write_bytes(data)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert "http.response.pathsend" in scope["extensions"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": str(tmp_path / "f.bin")})

    async with TestClient(ASGIHost(app), CONFIG) as client:
        response = await client.get("/")
    assert response.body == data
    assert response.headers.get("content-length") == str(len(data))
    async with serve_asgi(app, "127.0.0.1", 0, config=CONFIG, lifespan="off") as addresses:
        stream = await trio.open_tcp_stream(*addresses[0])
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = b""
        while chunk := await stream.receive_some():
            received += chunk
    assert received.endswith(data)  # through sendfile on the socket transport


# ---------------------------------------------------------------- errors


async def test_an_exception_before_the_response_is_a_logged_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("app bug")

    async with TestClient(ASGIHost(app), CONFIG) as client:
        response = await client.get("/")
    assert response.status == 500
    assert "app bug" in caplog.text and "Traceback" in caplog.text


async def test_returning_without_a_response_is_500(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        return

    async with TestClient(ASGIHost(app), CONFIG) as client:
        response = await client.get("/")
    assert response.status == 500
    assert "sent no response" in caplog.text


async def test_an_exception_after_the_start_aborts_the_connection() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise ValueError("midway")

    async with TestClient(ASGIHost(app), CONFIG) as client:
        answer = await client.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", half_close=False)
    assert b"part" in answer
    assert not answer.endswith(b"0\r\n\r\n")  # never a chunked body that looks complete


@pytest.mark.parametrize(
    "messages",
    [
        [{"type": "http.response.body", "body": b"x"}],
        [
            {"type": "http.response.start", "status": 200, "headers": []},
            {"type": "http.response.start", "status": 200, "headers": []},
        ],
        [{"type": "websocket.accept"}],
    ],
)
async def test_invalid_message_sequences_are_500_and_logged(
    messages: list[Message], caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for message in messages:
            await send(message)

    async with TestClient(ASGIHost(app), CONFIG) as client:
        response = await client.get("/")
    assert response.status == 500
    assert "RuntimeError" in caplog.text


# ---------------------------------------------------------------- disconnect


async def test_disconnect_while_the_app_waits_in_receive() -> None:
    got: list[Message] = []
    received = trio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        got.append(await receive())  # waits: the client is still there
        received.set()
        with pytest.raises(OSError):
            await reply(send, 200, b"nobody listens")

    client_stream, server_stream = await socket_stream_pair()
    connection = HTTPConnection(server_stream, ASGIHost(app), CONFIG)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.run)
        await client_stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await trio.testing.wait_all_tasks_blocked()
        assert not got
        await client_stream.aclose()
        with trio.fail_after(5):
            await received.wait()
    assert got == [{"type": "http.disconnect"}]


async def test_receive_after_the_response_is_a_disconnect() -> None:
    got: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        await reply(send, 200, b"ok")
        with trio.fail_after(5):
            got.append(await receive())

    async with TestClient(ASGIHost(app), CONFIG) as client:
        assert (await client.get("/")).body == b"ok"
    assert got == [{"type": "http.disconnect"}]


async def test_keep_alive_and_pipelining_across_asgi_requests(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        await reply(send, 200, scope["path"].encode() + b":" + body)

    request = b"POST /%d HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"
    async with TestClient(ASGIHost(app), CONFIG) as client:
        answer = await client.send_raw(b"".join(request % i for i in range(3)))
    conn = h11.Connection(h11.CLIENT)
    for i in range(3):
        conn.send(h11.Request(method="POST", target="/", headers=[("host", "x")]))
        conn.send(h11.EndOfMessage())
        conn.receive_data(answer if i == 0 else b"")
        event = conn.next_event()
        assert isinstance(event, h11.Response) and event.status_code == 200
        data = conn.next_event()
        assert isinstance(data, h11.Data) and bytes(data.data) == b"/%d:x" % i
        assert isinstance(conn.next_event(), h11.EndOfMessage)
        conn.start_next_cycle()
    assert not caplog.records


async def test_the_apps_own_date_server_and_connection_close_are_honoured() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"date", b"Thu, 01 Jan 2026 00:00:00 GMT"), (b"server", b"app/1.0")]
        if scope["path"] == "/close":
            headers.append((b"connection", b"close"))
        await reply(send, 200, b"", headers)

    async with TestClient(ASGIHost(app), ServerConfig(access_log=False)) as client:
        answer = await client.send_raw(b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n", half_close=False)
    head = answer.lower()
    assert head.count(b"\r\ndate:") == 1 and b"date: thu, 01 jan 2026" in head
    assert head.count(b"\r\nserver:") == 1 and b"server: app/1.0" in head
    assert head.count(b"\r\nconnection:") == 1 and b"keep-alive" not in head
    # send_raw returned: the server closed the connection after the app's "Connection: close"


async def test_an_aborted_response_is_logged_with_its_status_and_bytes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from trio_http.accesslog import AccessLogger

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"12345", "more_body": True})
        raise ValueError("midway")

    caplog.set_level(logging.INFO)
    client, server = trio.testing.memory_stream_pair()
    connection = HTTPConnection(
        server, ASGIHost(app), ServerConfig(), access_logger=AccessLogger("json")
    )
    await client.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with trio.fail_after(5):
        await connection.run()
    assert '"status":200,"bytes":5' in caplog.text
    assert "response aborted" in caplog.text and "ValueError: midway" in caplog.text


async def test_serve_asgi_as_a_context_manager_raises_a_failed_startup_as_itself() -> None:
    from trio_http.asgi import LifespanFailed

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    with pytest.raises(LifespanFailed, match="no database"):
        async with serve_asgi(app, "127.0.0.1", 0, config=CONFIG):
            raise AssertionError("must not start")


async def test_the_access_log_names_the_client_the_trusted_proxy_names(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from trio_http.accesslog import AccessLogger

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await reply(send, 200, b"")

    caplog.set_level(logging.INFO, logger="trio_http.access")
    host = ASGIHost(app, ScopeSettings(proxies=TrustedProxies("127.0.0.1")))
    client, server = trio.testing.memory_stream_pair()
    connection = HTTPConnection(
        server, host, ServerConfig(), client=("127.0.0.1", 5000), access_logger=AccessLogger()
    )
    await client.send_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n"
    )
    with trio.fail_after(5):
        await connection.run()
    assert caplog.records[-1].getMessage().startswith("203.0.113.9 - - [")


async def test_stop_now_ends_a_lifespan_shutdown_that_hangs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from trio_http.asgi import ASGIServer

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await trio.sleep_forever()  # never completes its shutdown

    server = ASGIServer(app, ServerConfig(access_log=False, graceful_timeout=1000))
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run, listeners)
        server.shutdown()
        await trio.sleep(1)  # the lifespan shutdown is waiting (for up to 1000 s)
        server.stop_now()
    assert trio.current_time() < 100  # not the 1000 s the shutdown would have had
