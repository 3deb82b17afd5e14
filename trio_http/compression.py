"""Content codings applied to responses: policy, encoders, and the response transformation.

The connection calls :func:`negotiate_and_encode` once per response.  It decides whether the
response may be compressed at all (:meth:`CompressionPolicy.eligible`), announces that the
representation varies by ``Accept-Encoding`` whenever it might, picks a coding with
:func:`~trio_http.protocol.accept_encoding.choose_coding`, and returns a response whose body
is encoded.

gzip comes from the standard library.  brotli and zstd are used when their optional packages
are installed (``pip install trio-http[compression]``).  Large bodies are compressed in a worker
thread so one big response cannot stall every other connection on the event loop.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

import trio

from .protocol.accept_encoding import choose_coding
from .response import BaseResponse, Response, StreamingResponse

__all__ = ["CompressionPolicy", "available_codings", "encode_eligible", "negotiate_and_encode"]


class Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


def _gzip(level: int) -> Compressor:
    # wbits=31: a gzip wrapper with mtime 0, so equal input gives equal output (stable ETags).
    return zlib.compressobj(level, zlib.DEFLATED, 31)


def _gzip_sized(level: int, size: int) -> Compressor:
    """A gzip compressor for a body of known *size*: window and hash table no larger than it.

    zlib's defaults (32 KiB window, memLevel 8) need about 256 KiB of state, which can cost
    more to allocate and clear than compressing a small body: 1 KiB took 25-76 µs (depending
    on whether malloc had the memory at hand) against 10 µs with a 2 KiB window and memLevel
    5, for the same output size, since the window still covers the whole body.
    Deterministic for a given body, like the default.
    """
    bits = max(size, 1).bit_length()
    window_bits = max(9, min(15, bits))
    mem_level = max(1, min(8, bits - 6))
    return zlib.compressobj(level, zlib.DEFLATED, 16 + window_bits, mem_level)


_ENCODERS: dict[str, Callable[[int], Compressor]] = {"gzip": _gzip}

try:  # optional: pip install trio-http[brotli]
    import brotli  # type: ignore[import-not-found, unused-ignore]

    class _Brotli:
        def __init__(self, level: int) -> None:
            # Brotli's own scale runs to 11; map gzip-like levels onto its fast range.
            self._compressor = brotli.Compressor(quality=min(level, 11))

        def compress(self, data: bytes) -> bytes:
            return bytes(self._compressor.process(data))

        def flush(self) -> bytes:
            return bytes(self._compressor.finish())

    _ENCODERS["br"] = _Brotli
except ImportError:  # pragma: no cover - depends on the environment
    pass

try:  # optional: pip install trio-http[zstd]
    import zstandard  # type: ignore[import-not-found, unused-ignore]

    class _Zstd:
        def __init__(self, level: int) -> None:
            self._compressor = zstandard.ZstdCompressor(level=level).compressobj()

        def compress(self, data: bytes) -> bytes:
            return bytes(self._compressor.compress(data))

        def flush(self) -> bytes:
            return bytes(self._compressor.flush())

    _ENCODERS["zstd"] = _Zstd
except ImportError:  # pragma: no cover - depends on the environment
    pass

#: The server's preference when the client weighs several codings equally.
PREFERENCE = ("zstd", "br", "gzip")


def available_codings() -> tuple[str, ...]:
    """The codings this installation can produce, most preferred first."""
    return tuple(coding for coding in PREFERENCE if coding in _ENCODERS)


_COMPRESSIBLE_PREFIXES = ("text/",)
_COMPRESSIBLE_TYPES = frozenset(
    {
        "application/json",
        "application/javascript",
        "application/xml",
        "application/xhtml+xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/ld+json",
        "application/manifest+json",
        "application/wasm",
        "image/svg+xml",
        "image/x-icon",
        "font/ttf",
        "font/otf",
    }
)


@dataclass(frozen=True)
class CompressionPolicy:
    """Which responses are compressed, and how hard.

    ``min_size`` skips small bodies, where the gzip header and trailer (18 bytes) and the CPU
    cost outweigh the saving.  ``thread_threshold`` is the body size from which compression
    runs in a worker thread instead of on the event loop.  A response's own ``compress``
    attribute overrides the type and size rules (``True`` forces, ``False`` forbids).
    """

    enabled: bool = True
    level: int = 6
    min_size: int = 256
    thread_threshold: int = 64 * 1024
    codings: tuple[str, ...] = field(default_factory=available_codings)

    def eligible(self, response: BaseResponse) -> bool:
        """Whether the representation of *response* may be sent compressed (ignoring what the
        client accepts).  A ``304`` or ``206`` is judged by the full representation it stands
        for, when it says which (``response.representation``); without that it is not."""
        # Cheapest tests first: most responses are decided before any header is looked at.
        if not self.enabled or response.compress is False or not self.codings:
            return False
        representation = response.representation
        if representation is None and response.status in (204, 206, 304):
            return False
        if not response.compress:
            length = response.content_length if representation is None else representation.length
            if length is not None and length < self.min_size:
                return False
        # One pass over the fields rather than a lookup per name (this runs for every response).
        content_type = ""
        for name, value in response.headers.raw:
            if name == b"content-encoding":
                return False
            if name == b"content-range" and representation is None:
                return False
            if name == b"cache-control" and b"no-transform" in value.lower():
                return False
            if name == b"content-type" and not content_type:
                content_type = value.decode("latin-1")
        if response.compress:
            return True
        if representation is not None:
            content_type = representation.content_type or ""
        content_type = content_type.partition(";")[0].strip().lower()
        return content_type.startswith(_COMPRESSIBLE_PREFIXES) or (
            content_type in _COMPRESSIBLE_TYPES or content_type.endswith(("+json", "+xml"))
        )


async def negotiate_and_encode(
    response: BaseResponse, accept_encoding: str | None, policy: CompressionPolicy
) -> BaseResponse:
    """Return *response* encoded with the best coding the client accepts, or unchanged.

    Adds ``Vary: Accept-Encoding`` to every eligible response, compressed or not, so caches
    keep the variants apart.  An encoded response gets ``Content-Encoding``, an ``ETag``
    marked with the coding (the variant is a different representation, RFC 9110 §8.8.3), and
    either the exact compressed ``Content-Length`` (bodies in memory) or none at all (streams
    and files, which are compressed on the fly and so sent chunked).  A ``304`` gets the
    variant's ``ETag`` and nothing else; a ``206`` is a range of the identity representation
    and is sent as it is (RFC 9110 §15.4.5, §15.3.7: both carry the ``Vary`` a 200 would).
    """
    if not policy.eligible(response):
        return response
    return await encode_eligible(response, accept_encoding, policy)


async def encode_eligible(
    response: BaseResponse, accept_encoding: str | None, policy: CompressionPolicy
) -> BaseResponse:
    """:func:`negotiate_and_encode` for a *response* already found ``policy.eligible``."""
    _add_vary(response)
    if response.status == 206:
        return response
    coding = choose_coding(accept_encoding, policy.codings)
    if coding is None:
        return response
    headers = response.headers
    etag = headers.get("etag")
    if etag is not None and etag.endswith('"'):
        headers.set("etag", f'{etag[:-1]}-{coding}"')
    if response.status == 304:
        return response
    headers.set("content-encoding", coding)
    if isinstance(response, Response):
        body = response.body
        if len(body) >= policy.thread_threshold:
            encoded = await trio.to_thread.run_sync(_encode_all, coding, policy.level, body)
        else:
            encoded = _encode_all(coding, policy.level, body)
        return Response(encoded, response.status, headers, compress=False)
    headers.remove("content-length")
    length = response.content_length
    encoder = _ENCODERS[coding]
    if coding == "gzip" and length is not None:
        encoder = functools.partial(_gzip_sized, size=length)  # files: their size is known
    return _EncodedStream(response, encoder, policy)


def _encode_all(coding: str, level: int, data: bytes) -> bytes:
    compressor = _gzip_sized(level, len(data)) if coding == "gzip" else _ENCODERS[coding](level)
    return compressor.compress(data) + compressor.flush()


def _add_vary(response: BaseResponse) -> None:
    raw = response.headers.raw
    if all(name != b"vary" for name, _ in raw):
        raw.append((b"vary", b"Accept-Encoding"))  # the usual case, without parsing
        return
    vary = response.headers.get_comma_list("vary")
    if "*" not in vary and not any(v.lower() == "accept-encoding" for v in vary):
        response.headers.set("vary", ", ".join([*vary, "Accept-Encoding"]))


class _EncodedStream(StreamingResponse):
    """The body of *inner*, compressed as it is produced; closes *inner* when done."""

    __slots__ = ("_inner",)

    def __init__(
        self, inner: BaseResponse, encoder: Callable[[int], Compressor], policy: CompressionPolicy
    ) -> None:
        super().__init__(
            _compress_stream(inner.iter_body(), encoder, policy),
            inner.status,
            inner.headers,
            compress=False,
        )
        self._inner = inner

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            await self._inner.aclose()


async def _compress_stream(
    chunks: AsyncIterator[bytes], encoder: Callable[[int], Compressor], policy: CompressionPolicy
) -> AsyncIterator[bytes]:
    compressor = encoder(policy.level)
    try:
        async for chunk in chunks:
            if len(chunk) >= policy.thread_threshold:
                out = await trio.to_thread.run_sync(compressor.compress, chunk)
            else:
                out = compressor.compress(chunk)
            if out:
                yield out
        yield compressor.flush()
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
