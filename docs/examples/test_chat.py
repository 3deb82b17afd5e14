"""Tests for chat.py: WebSockets in memory with TestClient.websocket.

Run with ``pytest docs/examples/test_chat.py`` (needs pytest-trio).
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
import trio
from chat import BACKLOG, Chat, make_app

from trio_http.testing import TestClient, WebSocketClosed, WebSocketRefused

pytestmark = pytest.mark.trio


async def test_the_page_connects_to_a_room() -> None:
    async with TestClient(make_app()) as client:
        page = await client.get("/")
    assert page.status == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "new WebSocket(" in page.text and "/chat/" in page.text


async def test_members_of_a_room_see_each_other() -> None:
    async with TestClient(make_app()) as client, client.websocket("/chat/lobby?name=ada") as ada:
        assert await ada.receive() == "* ada joined"
        async with client.websocket("/chat/lobby?name=bob") as bob:
            assert await bob.receive() == "* bob joined"
            assert await ada.receive() == "* bob joined"
            await ada.send("hello, bob")
            assert await bob.receive() == "ada: hello, bob"
            assert await ada.receive() == "ada: hello, bob"  # the sender sees it too
            await bob.send("hi ada")
            assert await ada.receive() == "bob: hi ada"
            assert await bob.receive() == "bob: hi ada"


async def test_rooms_are_separate() -> None:
    async with (
        TestClient(make_app()) as client,
        client.websocket("/chat/lobby?name=ada") as ada,
        client.websocket("/chat/kitchen?name=cy") as cy,
    ):
        assert await ada.receive() == "* ada joined"
        assert await cy.receive() == "* cy joined"
        await ada.send("lobby only")
        assert await ada.receive() == "ada: lobby only"  # posted by now
        await cy.send("kitchen only")
        # Had ada's post reached the kitchen, cy would get it first.
        assert await cy.receive() == "cy: kitchen only"
        with pytest.raises(trio.TooSlowError):  # and nothing from the kitchen for ada
            await ada.receive(timeout=0.1)


async def test_leaving_is_announced_and_the_room_dropped() -> None:
    chat = Chat()
    async with TestClient(make_app(chat)) as client:
        async with client.websocket("/chat/lobby?name=ada") as ada:
            await ada.receive()
            async with client.websocket("/chat/lobby?name=bob") as bob:
                await bob.receive()
                assert await ada.receive() == "* bob joined"
            assert await ada.receive() == "* bob left"
            assert {m.name for m in chat.rooms["lobby"].members} == {"ada"}
        assert chat.rooms == {}  # the last member left: the room is gone


async def test_names() -> None:
    async with TestClient(make_app()) as client:
        async with client.websocket("/chat/lobby") as guest:
            assert await guest.receive() == "* guest1 joined"
        long_name = quote("a  very\nlong name that goes on")
        async with client.websocket(f"/chat/lobby?name={long_name}") as member:
            assert await member.receive() == "* a very long name tha joined"
            await member.send(b"binary is ignored")
            await member.send("text is not")
            assert await member.receive() == "a very long name tha: text is not"


async def test_a_slow_member_is_disconnected_not_skipped() -> None:
    chat = Chat()
    async with (
        TestClient(make_app(chat)) as client,
        client.websocket("/chat/lobby?name=ada") as ada,
    ):
        assert await ada.receive() == "* ada joined"  # ada's mailbox is empty now
        room = chat.rooms["lobby"]
        with room.join("quick") as quick:
            assert quick.mailbox.receive_nowait() == "* quick joined"
            # A burst with no checkpoint between posts: ada's task cannot keep up, as if its
            # client had stopped reading; "quick" empties its mailbox after each post.
            heard = []
            for number in range(BACKLOG + 2):
                room.post(f"message {number}")
                while True:
                    try:
                        heard.append(quick.mailbox.receive_nowait())
                    except trio.WouldBlock:
                        break
            assert {m.name for m in room.members} == {"quick"}
        assert heard.count("* ada left (too slow)") == 1
        heard.remove("* ada left (too slow)")
        assert heard == [f"message {n}" for n in range(BACKLOG + 2)]  # quick missed nothing
        # ada gets what its mailbox held (BACKLOG messages, or one more if its task was
        # already waiting for one), then the close: 1008, and no gap in what it got.
        received = [message async for message in ada]
        assert received[0] == "* quick joined"
        assert received[1:] == [f"message {n}" for n in range(len(received) - 1)]
        assert len(received) in (BACKLOG, BACKLOG + 1)
        assert (ada.close_code, ada.close_reason) == (1008, "too slow")
    assert chat.rooms == {}


async def test_oversized_messages_are_refused() -> None:
    async with TestClient(make_app()) as client, client.websocket("/chat/lobby") as member:
        await member.receive()
        await member.send("x" * 5000)
        with pytest.raises(WebSocketClosed) as closed:
            await member.receive()
    assert closed.value.code == 1009


async def test_a_plain_get_of_a_room_is_426() -> None:
    async with TestClient(make_app()) as client:
        response = await client.get("/chat/lobby")
        assert response.status == 426
        with pytest.raises(WebSocketRefused) as refused:
            async with client.websocket("/chat/"):
                pass
        assert refused.value.status == 404


async def test_twenty_members_hear_every_post() -> None:
    chat = Chat()
    names = [f"m{n}" for n in range(20)]
    everyone_in = trio.Event()
    heard: dict[str, set[str]] = {}

    async def member(client: TestClient, name: str) -> None:
        async with client.websocket(f"/chat/crowd?name={name}") as ws:
            while await ws.receive() != f"* {name} joined":
                pass
            if len(chat.rooms["crowd"].members) == len(names):
                everyone_in.set()
            await everyone_in.wait()
            await ws.send(f"hello from {name}")
            heard[name] = set()
            while len(heard[name]) < len(names):
                message = await ws.receive_text()
                if ": hello from " in message:
                    heard[name].add(message)

    async with TestClient(make_app(chat)) as client, trio.open_nursery() as nursery:
        for name in names:
            nursery.start_soon(member, client, name)
    posts = {f"{name}: hello from {name}" for name in names}
    assert heard == {name: posts for name in names}
    assert chat.rooms == {}
