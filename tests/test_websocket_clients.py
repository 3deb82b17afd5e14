"""Real WebSocket clients against trio-http on 127.0.0.1.

- the ``websockets`` library (its asyncio client, in a worker thread with its own event loop,
  since the server runs under Trio here): text, binary, fragmented and compressed messages,
  ping, close codes both ways;
- ``trio-websocket`` as a Trio client: echo, subprotocol, ping, close codes both ways;
- a Starlette application through :func:`trio_http.asgi.serve_asgi`: echo with a subprotocol,
  a close before accepting (HTTP 403) and a denial response of its own;
- headless Chromium (selenium, as tests/test_browser.py) on a page trio-http serves, which
  opens a WebSocket and reports its echoes in the DOM; the screenshot is written to
  ``tests/artifacts/websocket.png``.

Every wait is bounded: the clients' own timeouts in threads, ``trio.fail_after`` in Trio.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket
from test_browser import chromium
from trio_websocket import ConnectionClosed, open_websocket_url
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.typing import Subprotocol

import trio_http
from trio_http import App, Response, ServerConfig
from trio_http.asgi import serve_asgi
from trio_http.websocket import WebSocket, WebSocketClosed, WebSocketSettings

ARTIFACTS = Path(__file__).parent / "artifacts"
PAGE = Path(__file__).parent / "browser" / "ws_page.html"
#: Bound on a whole client session run in a thread.
SESSION_TIMEOUT = 20.0

# ------------------------------------------------------------------------------ the server


@dataclass
class Seen:
    """What the server's handlers saw."""

    messages: list[str | bytes] = field(default_factory=list)
    #: (code, reason) of each close the server received from a client.
    peer_closes: list[tuple[int, str]] = field(default_factory=list)
    #: (code, reason) of each close the server started, once the handshake completed.
    own_closes: list[tuple[int | None, str]] = field(default_factory=list)
    subprotocols: list[str | None] = field(default_factory=list)
    #: Handlers that returned so far (each puts one item on the channel).
    returned: tuple[trio.MemorySendChannel[None], trio.MemoryReceiveChannel[None]] = field(
        default_factory=lambda: trio.open_memory_channel[None](1000)
    )

    async def handlers_returned(self, count: int) -> None:
        """Wait (bounded) until *count* handlers have returned."""
        with trio.fail_after(5):
            for _ in range(count):
                await self.returned[1].receive()


def echo_app(settings: WebSocketSettings | None = None) -> tuple[App, Seen]:
    """``/ws`` echoes (accepting the first offered subprotocol); "close-me" makes the server
    close with 4000 "bye".  ``GET /`` is the browser page."""
    app = App(websocket_settings=settings or WebSocketSettings())
    seen = Seen()

    @app.get("/")
    async def page(request: trio_http.Request) -> Response:
        return Response(PAGE.read_bytes(), content_type="text/html; charset=utf-8")

    @app.websocket("/ws")
    async def echo(ws: WebSocket) -> None:
        choice = ws.subprotocols[0] if ws.subprotocols else None
        await ws.accept(subprotocol=choice)
        seen.subprotocols.append(ws.subprotocol)
        try:
            while True:
                message = await ws.receive()
                if message == "close-me":
                    await ws.close(4000, "bye")
                    seen.own_closes.append((ws.close_code, ws.close_reason))
                    return
                seen.messages.append(message)
                await ws.send(message)
        except WebSocketClosed as exc:
            seen.peer_closes.append((exc.code, exc.reason))
        finally:
            seen.returned[0].send_nowait(None)

    return app, seen


async def in_thread(session: Any) -> Any:
    """Run the asyncio coroutine function *session* in a worker thread's event loop."""

    def run() -> Any:
        async def bounded() -> Any:
            async with asyncio.timeout(SESSION_TIMEOUT):
                return await session()

        return asyncio.run(bounded())

    return await trio.to_thread.run_sync(run)


CONFIG = ServerConfig(access_log=False)

# ------------------------------------------------------------------------------ websockets


async def test_websockets_library_messages_of_every_kind() -> None:
    app, seen = echo_app()
    big = "compress me, please " * 50_000  # 1 MB of text, a few KB deflated
    binary = bytes(range(256)) * 1000

    async def session(url: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with connect(url, proxy=None, open_timeout=5, close_timeout=5, max_size=None) as ws:
            assert ws.response is not None
            out["extensions"] = ws.response.headers.get("Sec-WebSocket-Extensions")
            out["negotiated"] = [type(e).__name__ for e in ws.protocol.extensions]
            await ws.send("héllo ✓")
            out["text"] = await ws.recv()
            await ws.send(binary)
            out["binary"] = await ws.recv()
            await ws.send(["frag", "men", "ted ✓"])  # one message in three frames
            out["fragmented"] = await ws.recv()
            await ws.send([b"\x00", b"\x01", b"\x02"])
            out["fragmented_binary"] = await ws.recv()
            await ws.send(big)
            out["big"] = await ws.recv()
            pong = await ws.ping(b"are you there")
            out["pong_latency"] = await pong
            await ws.close(1000, "all done")
            out["close"] = (ws.close_code, ws.close_reason)
        return out

    async with trio_http.serve(app, "127.0.0.1", 0, config=CONFIG) as addresses:
        url = f"ws://127.0.0.1:{addresses[0][1]}/ws"
        out = await in_thread(functools.partial(session, url))
    assert (out["extensions"] or "").startswith("permessage-deflate")
    assert out["negotiated"] == ["PerMessageDeflate"]
    assert out["text"] == "héllo ✓"
    assert out["binary"] == binary
    assert out["fragmented"] == "fragmented ✓"
    assert out["fragmented_binary"] == b"\x00\x01\x02"
    assert out["big"] == big
    assert out["pong_latency"] >= 0
    assert out["close"] == (1000, "all done")
    assert seen.messages == ["héllo ✓", binary, "fragmented ✓", b"\x00\x01\x02", big]
    assert seen.peer_closes == [(1000, "all done")]


async def test_websockets_library_close_codes_both_ways() -> None:
    app, seen = echo_app()

    async def client_closes(url: str) -> tuple[int | None, str | None]:
        async with connect(url, proxy=None, open_timeout=5, close_timeout=5) as ws:
            await ws.send("hi")
            await ws.recv()
            await ws.close(4001, "client bye")
            return ws.close_code, ws.close_reason

    async def server_closes(url: str) -> tuple[int, str, int | None]:
        async with connect(url, proxy=None, open_timeout=5, close_timeout=5) as ws:
            await ws.send("close-me")
            try:
                await ws.recv()
            except ConnectionClosedError as exc:
                assert exc.rcvd is not None
                return exc.rcvd.code, exc.rcvd.reason, ws.close_code
            raise AssertionError("the server did not close")

    async with trio_http.serve(app, "127.0.0.1", 0, config=CONFIG) as addresses:
        url = f"ws://127.0.0.1:{addresses[0][1]}/ws"
        assert await in_thread(functools.partial(client_closes, url)) == (4001, "client bye")
        assert await in_thread(functools.partial(server_closes, url)) == (4000, "bye", 4000)
        await seen.handlers_returned(2)  # (after the close handshakes completed)
    assert seen.peer_closes == [(4001, "client bye")]
    assert seen.own_closes == [(4000, "bye")]


# ------------------------------------------------------------------------------ trio-websocket


async def test_trio_websocket_client() -> None:
    app, seen = echo_app()
    async with trio_http.serve(app, "127.0.0.1", 0, config=CONFIG) as addresses:
        url = f"ws://127.0.0.1:{addresses[0][1]}/ws"
        with trio.fail_after(10):
            async with open_websocket_url(
                url, subprotocols=["chat", "other"], connect_timeout=5, disconnect_timeout=5
            ) as ws:
                assert ws.subprotocol == "chat"
                await ws.send_message("from trio")
                assert await ws.get_message() == "from trio"
                await ws.send_message(b"\x00binary\xff")
                assert await ws.get_message() == b"\x00binary\xff"
                await ws.ping(b"trio ping")  # returns once the matching pong arrived
                await ws.aclose(code=4002, reason="trio bye")
            async with open_websocket_url(url, connect_timeout=5, disconnect_timeout=5) as ws:
                await ws.send_message("close-me")
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.get_message()
                reason = closed.value.reason
                assert reason is not None and (reason.code, reason.reason) == (4000, "bye")
            await seen.handlers_returned(2)
    assert seen.subprotocols == ["chat", None]
    assert seen.messages == ["from trio", b"\x00binary\xff"]
    assert seen.peer_closes == [(4002, "trio bye")]
    assert seen.own_closes == [(4000, "bye")]


# ------------------------------------------------------------------------------ Starlette


def starlette_app(disconnects: trio.MemorySendChannel[int]) -> Starlette:
    async def echo(websocket: StarletteWebSocket) -> None:
        offered = websocket.scope["subprotocols"]
        await websocket.accept(subprotocol="chat" if "chat" in offered else None)
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                disconnects.send_nowait(message["code"])
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])

    async def deny(websocket: StarletteWebSocket) -> None:
        await websocket.close(code=1008)  # before accepting: an HTTP 403

    async def deny_with_response(websocket: StarletteWebSocket) -> None:
        await websocket.send_denial_response(PlainTextResponse("members only", 401))

    return Starlette(
        routes=[
            WebSocketRoute("/echo", echo),
            WebSocketRoute("/deny", deny),
            WebSocketRoute("/denied", deny_with_response),
        ]
    )


async def test_starlette_websocket_through_serve_asgi() -> None:
    disconnects, disconnected = trio.open_memory_channel[int](10)

    async def session(base: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with connect(
            f"{base}/echo",
            proxy=None,
            subprotocols=[Subprotocol("chat")],
            open_timeout=5,
            close_timeout=5,
        ) as ws:
            out["subprotocol"] = ws.subprotocol
            await ws.send("starlette ✓")
            out["text"] = await ws.recv()
            await ws.send(b"\x01\x02")
            out["binary"] = await ws.recv()
            await ws.send(["a", "b"])
            out["fragmented"] = await ws.recv()
            await ws.close(4003, "starlette bye")
        for path in ("/deny", "/denied"):
            try:
                async with connect(f"{base}{path}", proxy=None, open_timeout=5):
                    pass
            except InvalidStatus as exc:
                out[path] = (exc.response.status_code, exc.response.body)
        return out

    app = starlette_app(disconnects)
    async with serve_asgi(app, "127.0.0.1", 0, config=CONFIG, lifespan="off") as addresses:
        base = f"ws://127.0.0.1:{addresses[0][1]}"
        out = await in_thread(functools.partial(session, base))
        with trio.fail_after(5):
            code = await disconnected.receive()
    assert out["subprotocol"] == "chat"
    assert out["text"] == "starlette ✓"
    assert out["binary"] == b"\x01\x02"
    assert out["fragmented"] == "ab"
    assert out["/deny"][0] == 403
    assert out["/denied"] == (401, b"members only")
    assert code == 4003


# ------------------------------------------------------------------------------ Chromium


def drive_browser(url: str) -> dict[str, str]:
    """Load the page in headless Chromium, wait for it to finish, read the DOM back."""
    browser = chromium()
    try:
        browser.set_page_load_timeout(20)
        browser.get(url)
        WebDriverWait(browser, 20).until(
            lambda b: b.find_element(By.ID, "status").text.startswith("done")
        )
        result = {
            name: browser.find_element(By.ID, name).text
            for name in ("status", "protocol", "extensions", "closed")
        }
        result["log"] = "\n".join(li.text for li in browser.find_elements(By.CSS_SELECTOR, "li"))
        ARTIFACTS.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "websocket.png"))
        return result
    finally:
        browser.quit()


async def test_chromium_page_echoes_through_a_websocket() -> None:
    app, seen = echo_app()
    async with trio_http.serve(app, "127.0.0.1", 0, config=CONFIG) as addresses:
        url = f"http://127.0.0.1:{addresses[0][1]}/"
        result = await trio.to_thread.run_sync(drive_browser, url)
        await seen.handlers_returned(1)
    assert result["status"] == "done: 5/5 echoed", result
    assert result["log"].count("echoed") == 5, result["log"]
    assert result["closed"] == "4000 bye"
    assert result["protocol"] == "echo"
    assert result["extensions"].startswith("permessage-deflate"), result
    assert seen.subprotocols == ["echo"]
    assert seen.own_closes == [(4000, "bye")]
    assert seen.messages[2] == "trio-http " * 20000
    assert (ARTIFACTS / "websocket.png").stat().st_size > 0
