import pytest

from trio_http import BodyTooLarge
from trio_http.headers import Headers
from trio_http.request import Request


class Chunks:
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    async def receive_body_chunk(self) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


def test_target_split_and_query() -> None:
    request = Request("GET", "/a%20b/c?x=1&x=2&y=&z=%C3%A9", Headers())
    assert request.path == "/a%20b/c"
    assert request.decoded_path == "/a b/c"
    assert request.query_string == "x=1&x=2&y=&z=%C3%A9"
    assert request.query == {"x": ["1", "2"], "y": [""], "z": ["é"]}


async def test_stream_once_then_body_cached() -> None:
    request = Request("POST", "/", Headers(), body_source=Chunks(b"ab", b"cd"))
    assert await request.body() == b"abcd"
    assert await request.body() == b"abcd"
    with pytest.raises(RuntimeError, match="already been read"):
        async for _ in request.stream():
            pass


async def test_body_max_size() -> None:
    request = Request("POST", "/", Headers(), body_source=Chunks(b"abc", b"def"))
    with pytest.raises(BodyTooLarge) as info:
        await request.body(max_size=4)
    assert info.value.status == 413


async def test_no_body_source_means_empty() -> None:
    assert await Request("GET", "/", Headers()).body() == b""


def test_absolute_form_target() -> None:
    request = Request("GET", "http://example.com:8080/echo/a?x=1", Headers())
    assert (request.path, request.query_string) == ("/echo/a", "x=1")
    assert Request("GET", "http://example.com", Headers()).path == "/"
