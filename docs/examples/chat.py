"""A chat server: each WebSocket is a task, and messages fan out through trio memory channels.

Every member of a room has a mailbox, a bounded memory channel.  Posting a message puts it in
every mailbox without waiting (``send_nowait``), so nobody waits for the slowest member; each
connection's own task takes messages out of its mailbox and sends them on its WebSocket.
Importing this module starts nothing.

    python docs/examples/chat.py
    open http://127.0.0.1:8000/#lobby in two browser windows
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import trio

import trio_http
from trio_http import App, Request, Response
from trio_http.websocket import WebSocket, WebSocketClosed, WebSocketSettings

#: Messages that may wait in one member's mailbox.  A member whose mailbox is full when a
#: message comes is disconnected (see Room.post).  Room for a burst: when every member posts
#: at once, each mailbox gets one message per member before its task can send them.
BACKLOG = 100
#: A chat message is short: refusing larger ones (1009) also bounds the memory a full mailbox
#: holds, BACKLOG times this per member.  (Give allowed_origins too once members log in with
#: cookies, so that other sites' pages cannot connect as them.)
SETTINGS = WebSocketSettings(max_size=4096)


class Member:
    """One connection in a room: a name and a mailbox (the two ends of a memory channel)."""

    def __init__(self, room: Room, name: str, backlog: int) -> None:
        self.room = room
        self.name = name
        self.outbox, self.mailbox = trio.open_memory_channel[str](backlog)
        self.too_slow = False


class Room:
    """The members of one room; :meth:`post` puts a message in every member's mailbox."""

    def __init__(self, name: str, backlog: int = BACKLOG) -> None:
        self.name = name
        self.backlog = backlog
        self.members: set[Member] = set()

    @contextmanager
    def join(self, name: str) -> Iterator[Member]:
        """A new member, announced on arrival and departure."""
        member = Member(self, name, self.backlog)
        self.members.add(member)
        self.post(f"* {name} joined")
        try:
            yield member
        finally:
            if member in self.members:
                self._remove(member)
                self.post(f"* {name} left")

    def post(self, message: str) -> None:
        """Put *message* in every mailbox, without waiting.

        A member whose mailbox is full is disconnected, not skipped: dropping messages would
        leave holes in its conversation that nobody notices, while a closed WebSocket (1008)
        tells the client to reconnect.  Either way the room's memory stays bounded: BACKLOG
        messages per member, whatever the clients do.
        """
        too_slow = []
        for member in self.members:
            try:
                member.outbox.send_nowait(message)
            except trio.WouldBlock:
                too_slow.append(member)
        for member in too_slow:
            if member in self.members:  # (not already removed by an announcement's post)
                member.too_slow = True
                self._remove(member)
                self.post(f"* {member.name} left (too slow)")

    def _remove(self, member: Member) -> None:
        self.members.discard(member)
        member.outbox.close()  # the member's task sends what is left, then stops


class Chat:
    """The rooms, created on their first member's arrival and dropped after the last leaves."""

    def __init__(self, backlog: int = BACKLOG) -> None:
        self.backlog = backlog
        self.rooms: dict[str, Room] = {}
        self._guests = itertools.count(1)

    @contextmanager
    def join(self, room_name: str, name: str) -> Iterator[Member]:
        room = self.rooms.setdefault(room_name, Room(room_name, self.backlog))
        try:
            with room.join(name) as member:
                yield member
        finally:
            if not room.members and self.rooms.get(room_name) is room:
                del self.rooms[room_name]

    def name_for(self, asked: str) -> str:
        """The name a member asked for (one line, at most 20 characters), or a guest name."""
        name = " ".join(asked.split())[:20]
        return name or f"guest{next(self._guests)}"


def make_app(chat: Chat | None = None) -> App:
    """The page at ``/`` and the rooms at ``/chat/{room}?name=NAME``."""
    chat = chat or Chat()
    app = App(websocket_settings=SETTINGS)

    @app.get("/")
    async def page(request: Request) -> Response:
        return Response(PAGE, content_type="text/html; charset=utf-8")

    @app.websocket("/chat/{room}")
    async def chat_socket(ws: WebSocket) -> None:
        name = chat.name_for(ws.request.query.get("name", [""])[0])
        await ws.accept()
        with chat.join(ws.path_params["room"], name) as member:
            # Two tasks; whichever ends first ends the other: the client leaving, or the room
            # closing this member's mailbox.
            async with trio.open_nursery() as nursery:
                nursery.start_soon(receive_posts, ws, member, nursery.cancel_scope)
                nursery.start_soon(send_mailbox, ws, member, nursery.cancel_scope)
        if member.too_slow:
            await ws.close(1008, "too slow")
        # Returning closes the WebSocket with 1000 (if the client has not closed it already).

    return app


async def receive_posts(ws: WebSocket, member: Member, done: trio.CancelScope) -> None:
    """Post what the client sends (text; binary messages are ignored) until it leaves."""
    async for message in ws:
        if isinstance(message, str) and message.strip():
            member.room.post(f"{member.name}: {message}")
    done.cancel()


async def send_mailbox(ws: WebSocket, member: Member, done: trio.CancelScope) -> None:
    """Send the member's mailbox to the client until the room closes it."""
    try:
        async for message in member.mailbox:
            await ws.send(message)
    except WebSocketClosed:
        pass  # the client left meanwhile
    done.cancel()


PAGE = """<!doctype html>
<meta charset="utf-8">
<title>trio-http chat</title>
<style>
  body { font: 16px system-ui, sans-serif; max-width: 40em; margin: 2em auto; }
  #log { list-style: none; padding: .5em; height: 60vh; overflow-y: auto; border: 1px solid #ccc; }
  #text { width: 80%; }
</style>
<h1>Room <span id="room"></span></h1>
<ul id="log"></ul>
<form id="form"><input id="text" autocomplete="off" autofocus> <button>Send</button></form>
<script>
  const room = decodeURIComponent(location.hash.slice(1)) || "lobby";
  const name = prompt("Your name?") || "";
  document.getElementById("room").textContent = room;
  const log = document.getElementById("log");
  function show(text) {
    const line = document.createElement("li");
    line.textContent = text;  // text, never HTML
    log.append(line);
    line.scrollIntoView();
  }
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/chat/${encodeURIComponent(room)}`
                           + `?name=${encodeURIComponent(name)}`);
  ws.onmessage = (event) => show(event.data);
  ws.onclose = (event) => show(`* disconnected (${event.code} ${event.reason})`);
  document.getElementById("form").onsubmit = (event) => {
    event.preventDefault();
    const text = document.getElementById("text");
    if (text.value) ws.send(text.value);
    text.value = "";
  };
</script>
"""


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the access log
    print("chat on http://127.0.0.1:8000/ (Ctrl-C stops it)")
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(trio_http.serve, make_app(), "127.0.0.1", 8000)


if __name__ == "__main__":
    main()
