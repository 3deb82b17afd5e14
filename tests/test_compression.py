import gzip
from collections.abc import AsyncIterator

import brotli
import pytest
import zstandard

from trio_http.compression import CompressionPolicy, available_codings, negotiate_and_encode
from trio_http.response import BaseResponse, Response, StreamingResponse

TEXT = b"The quick brown fox jumps over the lazy dog. " * 40
POLICY = CompressionPolicy()


def decode(coding: str, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.decompress(data)
    if coding == "br":
        return bytes(brotli.decompress(data))
    return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(data))


async def body_of(response: BaseResponse) -> bytes:
    return b"".join([chunk async for chunk in response.iter_body()])


def test_all_codings_available_with_extras() -> None:
    assert available_codings() == ("zstd", "br", "gzip")


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
async def test_bytes_body_round_trips_with_exact_length(coding: str) -> None:
    response = Response(TEXT, content_type="text/plain", headers={"etag": '"v1"'})
    encoded = await negotiate_and_encode(response, coding, POLICY)
    assert isinstance(encoded, Response)
    assert encoded.headers["content-encoding"] == coding
    assert encoded.headers["vary"] == "Accept-Encoding"
    assert encoded.headers["etag"] == f'"v1-{coding}"'
    assert encoded.content_length == len(encoded.body) < len(TEXT)
    assert decode(coding, encoded.body) == TEXT


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
async def test_stream_is_compressed_on_the_fly(coding: str) -> None:
    async def parts() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield TEXT

    response = StreamingResponse(
        parts(), content_type="application/json", content_length=10 * len(TEXT)
    )
    encoded = await negotiate_and_encode(response, coding, POLICY)
    assert encoded.content_length is None  # now chunked
    assert "content-length" not in encoded.headers
    assert decode(coding, await body_of(encoded)) == TEXT * 10


async def test_large_body_is_compressed_in_a_thread_with_same_result() -> None:
    big = TEXT * 2000
    small_threshold = CompressionPolicy(thread_threshold=1)
    in_thread = await negotiate_and_encode(
        Response(big, content_type="text/plain"), "gzip", small_threshold
    )
    inline = await negotiate_and_encode(Response(big, content_type="text/plain"), "gzip", POLICY)
    assert isinstance(in_thread, Response) and isinstance(inline, Response)
    assert gzip.decompress(in_thread.body) == big
    assert in_thread.body == inline.body  # deterministic (mtime 0)


@pytest.mark.parametrize(
    ("response", "eligible"),
    [
        (Response(TEXT, content_type="text/html"), True),
        (Response(TEXT, content_type="application/json; charset=utf-8"), True),
        (Response(TEXT, content_type="application/vnd.api+json"), True),
        (Response(TEXT, content_type="image/svg+xml"), True),
        (Response(TEXT, content_type="image/png"), False),
        (Response(TEXT, content_type="application/octet-stream"), False),
        (Response(TEXT), False),  # no type: do not guess
        (Response(b"tiny", content_type="text/plain"), False),  # under min_size
        (Response(b"tiny", content_type="text/plain", compress=True), True),  # forced
        (Response(TEXT, content_type="text/plain", compress=False), False),
        (Response(TEXT, 206, {"content-range": "bytes 0-1/2"}, content_type="text/plain"), False),
        (Response(TEXT, 204, content_type="text/plain"), False),
        (Response(TEXT, headers={"content-encoding": "br"}, content_type="text/plain"), False),
        (
            Response(TEXT, headers={"cache-control": "no-transform"}, content_type="text/plain"),
            False,
        ),
        (
            Response(
                TEXT,
                headers=[("cache-control", "max-age=60"), ("cache-control", "No-Transform")],
                content_type="text/plain",
            ),
            False,
        ),
    ],
)
def test_eligibility(response: Response, eligible: bool) -> None:
    assert POLICY.eligible(response) is eligible


def test_disabled_policy_never_compresses() -> None:
    policy = CompressionPolicy(enabled=False)
    assert not policy.eligible(Response(TEXT, content_type="text/plain", compress=True))


async def test_not_accepted_still_gets_vary_and_keeps_body() -> None:
    response = Response(TEXT, content_type="text/plain", headers={"vary": "Cookie"})
    result = await negotiate_and_encode(response, "identity", POLICY)
    assert result is response
    assert response.headers["vary"] == "Cookie, Accept-Encoding"
    assert "content-encoding" not in response.headers


async def test_vary_is_added_once() -> None:
    response = Response(TEXT, content_type="text/plain")
    await negotiate_and_encode(response, "identity", POLICY)
    await negotiate_and_encode(response, "identity", POLICY)
    assert response.headers.get_list("vary") == ["Accept-Encoding"]


async def test_ineligible_response_is_untouched() -> None:
    response = Response(TEXT, content_type="image/png")
    assert await negotiate_and_encode(response, "gzip", POLICY) is response
    assert "vary" not in response.headers


async def test_server_preference_breaks_ties() -> None:
    response = Response(TEXT, content_type="text/plain")
    encoded = await negotiate_and_encode(response, "gzip, deflate, br, zstd", POLICY)
    assert encoded.headers["content-encoding"] == "zstd"
    gzip_only = CompressionPolicy(codings=("gzip",))
    encoded = await negotiate_and_encode(
        Response(TEXT, content_type="text/plain"), "br, gzip", gzip_only
    )
    assert encoded.headers["content-encoding"] == "gzip"


@pytest.mark.parametrize("size", [0, 1, 100, 511, 512, 513, 1024, 5000, 40_000, 200_000])
def test_sized_gzip_round_trips_and_is_no_larger(size: int) -> None:
    """The small-state compressor for known sizes loses nothing against zlib's defaults."""
    import random
    import zlib

    from trio_http.compression import _gzip_sized

    rng = random.Random(size)
    data = bytes(rng.choice(b"abcdefgh  \n") for _ in range(size))
    sized = _gzip_sized(6, size)
    encoded = sized.compress(data) + sized.flush()
    assert gzip.decompress(encoded) == data
    assert len(encoded) <= len(zlib.compress(data, 6, wbits=31)) + 8
    again = _gzip_sized(6, size)
    assert again.compress(data) + again.flush() == encoded  # deterministic (stable ETags)
