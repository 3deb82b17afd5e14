"""trio_http.listeners: opening listeners, and accepting waiting connections in batches."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_http import listeners as listeners_module
from trio_http.listeners import BatchAcceptListener, accept_in_batches, listener_addresses


async def open_listener() -> tuple[trio.SocketListener, int]:
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    return listener, listener.socket.getsockname()[1]


async def test_waiting_connections_are_accepted_without_a_yield() -> None:
    """trio's accept yields after each connection; a busy server then took ~0.5 s to accept
    64 connections opened at once (the cause of the benchmark's p99)."""
    listener, port = await open_listener()
    clients = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(5)]
    batch = BatchAcceptListener(listener)
    with trio.testing.assert_no_checkpoints():
        accepted = [await batch.accept() for _ in range(5)]
    for client, server in zip(clients, accepted, strict=True):
        await client.send_all(b"ping")
        assert await server.receive_some() == b"ping"
        await client.aclose()
        await server.aclose()
    await batch.aclose()


async def test_a_batch_ends_with_a_yield(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listeners_module, "ACCEPT_BATCH", 2)
    listener, port = await open_listener()
    clients = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(3)]
    batch = BatchAcceptListener(listener)
    with trio.testing.assert_no_checkpoints():
        first = [await batch.accept(), await batch.accept()]
    with trio.testing.assert_checkpoints():
        third = await batch.accept()  # through trio's accept, which yields
    for stream in [*clients, *first, third]:
        await stream.aclose()
    await batch.aclose()


async def test_with_nothing_waiting_accept_waits_for_a_connection() -> None:
    listener, port = await open_listener()
    batch = BatchAcceptListener(listener)
    async with trio.open_nursery() as nursery:
        accepted: list[trio.SocketStream] = []

        async def accept() -> None:
            accepted.append(await batch.accept())

        nursery.start_soon(accept)
        await trio.testing.wait_all_tasks_blocked()
        assert not accepted
        with trio.fail_after(5):
            client = await trio.open_tcp_stream("127.0.0.1", port)
    assert len(accepted) == 1
    await client.aclose()
    await accepted[0].aclose()
    await batch.aclose()


class OtherListener(trio.abc.Listener[trio.abc.Stream]):
    """Not a plain TCP listener (as a TLS listener is not)."""

    async def accept(self) -> trio.abc.Stream:
        raise NotImplementedError

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def test_only_plain_tcp_listeners_are_wrapped_and_addresses_are_kept() -> None:
    listener, port = await open_listener()
    other = OtherListener()
    wrapped = accept_in_batches([listener, other])
    assert isinstance(wrapped[0], BatchAcceptListener) and wrapped[1] is other
    assert listener_addresses([listener]) == [("127.0.0.1", port)]
    await wrapped[0].aclose()
