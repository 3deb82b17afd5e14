from __future__ import annotations

from typing import Any, cast

import h11
import pytest

from trio_http.protocol.h11_events import END_OF_MESSAGE, ResponseHeadCache


def fields(*pairs: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return list(pairs)


def test_the_same_head_is_built_once() -> None:
    cache = ResponseHeadCache()
    first = cache.get(200, b"OK", fields((b"content-length", b"0")))
    second = cache.get(200, b"OK", fields((b"content-length", b"0")))
    assert first is second
    assert first.status_code == 200
    assert list(first.headers) == [(b"content-length", b"0")]


@pytest.mark.parametrize(
    ("status", "reason", "pairs"),
    [
        (404, b"Not Found", [(b"content-length", b"0")]),
        (200, b"Fine", [(b"content-length", b"0")]),
        (200, b"OK", [(b"content-length", b"1")]),
        (200, b"OK", [(b"content-length", b"0"), (b"x", b"y")]),
        (200, b"OK", []),
    ],
)
def test_any_difference_is_a_different_event(
    status: int, reason: bytes, pairs: list[tuple[bytes, bytes]]
) -> None:
    cache = ResponseHeadCache()
    base = cache.get(200, b"OK", fields((b"content-length", b"0")))
    other = cache.get(status, reason, list(pairs))
    assert other is not base
    assert (other.status_code, other.reason, list(other.headers)) == (status, reason, pairs)


def test_invalid_heads_raise_every_time_and_are_not_stored() -> None:
    cache = ResponseHeadCache()
    for _ in range(2):
        with pytest.raises(h11.LocalProtocolError):
            cache.get(200, b"OK", fields((b"x", b"bad\r\nvalue")))
    assert len(cache) == 0


def test_the_cache_is_bounded() -> None:
    cache = ResponseHeadCache(max_entries=3)
    for length in range(10):
        cache.get(200, b"OK", fields((b"content-length", b"%d" % length)))
        assert len(cache) <= 3
    event = cache.get(200, b"OK", fields((b"content-length", b"9")))
    assert cache.get(200, b"OK", fields((b"content-length", b"9"))) is event


def test_unhashable_values_are_served_uncached() -> None:
    cache = ResponseHeadCache()
    odd = cast(Any, [(b"x-list", bytearray(b"value"))])
    event = cache.get(200, b"OK", odd)
    assert list(event.headers) == [(b"x-list", b"value")]
    assert len(cache) == 0


def test_shared_events_frame_like_fresh_ones() -> None:
    """A cached event sent on two connections produces exactly what a fresh one would."""
    head = ResponseHeadCache().get(200, b"OK", fields((b"content-length", b"2")))
    outputs = []
    fresh = h11.Response(status_code=200, headers=[(b"content-length", b"2")], reason=b"OK")
    for event in (head, head, fresh):
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        conn.next_event()
        wire = conn.send(event)
        assert wire is not None
        wire += conn.send(h11.Data(data=b"hi")) or b""
        wire += conn.send(END_OF_MESSAGE) or b""
        outputs.append(wire)
    assert outputs[0] == outputs[1] == outputs[2]
    assert outputs[0].endswith(b"\r\n\r\nhi")
