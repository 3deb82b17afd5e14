"""Response types: bytes in memory, a stream from an async iterator, ranges of an open file,
and :class:`Upgrade`, which hands the connection to another protocol.

Every response has ``status``, ``headers`` and ``content_length`` (``None`` when not known in
advance, which makes h11 use chunked framing for HTTP/1.1 and close-delimited framing for
HTTP/1.0) and can produce its body with :meth:`BaseResponse.iter_body`.  The connection's
writer (trio_http/http11/writer.py) sends the common cases faster than that generic path: a
:class:`Response` goes out in a single write together with its head, and a
:class:`FileResponse` through the transport's ``send_file`` (``sendfile`` on plain TCP).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import BinaryIO

import trio

from .headers import HeaderInput, Headers

__all__ = [
    "BaseResponse",
    "FileResponse",
    "Representation",
    "Response",
    "StreamingResponse",
    "Upgrade",
    "error_response",
    "reason_phrase",
]

_REASONS: dict[int, bytes] = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}
#: Codes other protocols define on top of HTTP: tus 1.0.0's checksum extension.
_REASONS[460] = b"Checksum Mismatch"

#: How much of a file is read per step when it cannot be sent with ``sendfile``.
FILE_CHUNK_SIZE = 256 * 1024


def reason_phrase(status: int) -> bytes:
    """The standard reason phrase for *status* (``b""`` for an unregistered code)."""
    return _REASONS.get(status, b"")


@dataclass(frozen=True, slots=True)
class Representation:
    """The full representation a ``304`` or ``206`` response is about.

    A ``304`` has no body and a ``206`` only part of one, yet both must carry the ``Vary`` (and
    the ``ETag``) the ``200`` would carry (RFC 9110 §15.4.5, §15.3.7); the server decides those
    from the content type and length of the full representation, given here.
    """

    content_type: str | None
    length: int | None


class BaseResponse:
    """What every response has.  Subclass one of the concrete classes rather than this."""

    __slots__ = ("compress", "headers", "representation", "status")

    def __init__(
        self,
        status: int,
        headers: HeaderInput | Headers | None,
        compress: bool | None,
        content_type: str | None = None,
        representation: Representation | None = None,
    ) -> None:
        if not 200 <= status <= 999:
            raise ValueError(f"a final response needs a status from 200 to 999, not {status}")
        self.status = status
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        if content_type is not None:
            if headers is None:  # fresh and empty: nothing to replace
                self.headers.raw.append((b"content-type", content_type.encode("latin-1")))
            else:
                self.headers.set("content-type", content_type)
        #: ``True``: compress whenever the client accepts a coding; ``False``: never;
        #: ``None``: the server's policy decides from the content type and size.
        self.compress = compress
        #: For a ``304`` or ``206``: the full representation it stands for (see above).
        self.representation = representation

    @property
    def content_length(self) -> int | None:
        raise NotImplementedError

    def iter_body(self) -> AsyncIterator[bytes]:
        """Yield the body.  The connection calls this at most once, then :meth:`aclose`."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release what the response holds (an open file, an iterator).  Idempotent."""


class Response(BaseResponse):
    """A response whose body is in memory (``str`` bodies are encoded as UTF-8).

    ``Content-Length`` is always set from the body, so a handler cannot get it wrong.
    """

    __slots__ = ("body",)

    def __init__(
        self,
        body: bytes | str = b"",
        status: int = 200,
        headers: HeaderInput | Headers | None = None,
        *,
        content_type: str | None = None,
        compress: bool | None = None,
        representation: Representation | None = None,
    ) -> None:
        super().__init__(status, headers, compress, content_type, representation)
        self.body = body.encode("utf-8") if isinstance(body, str) else body

    @property
    def content_length(self) -> int:
        return len(self.body)

    async def iter_body(self) -> AsyncIterator[bytes]:
        if self.body:
            yield self.body


class StreamingResponse(BaseResponse):
    """A response whose body comes from an async iterator of ``bytes``.

    With *content_length* ``None`` the body is sent chunked (HTTP/1.1) or delimited by closing
    the connection (HTTP/1.0).  If the iterator yields a different number of bytes than a
    declared *content_length*, the connection is aborted rather than send a wrong length.  The
    iterator is closed (``aclose``) when sending ends, however it ends.
    """

    __slots__ = ("_content", "_content_length")

    def __init__(
        self,
        content: AsyncIterable[bytes],
        status: int = 200,
        headers: HeaderInput | Headers | None = None,
        *,
        content_type: str | None = None,
        content_length: int | None = None,
        compress: bool | None = None,
    ) -> None:
        super().__init__(status, headers, compress, content_type)
        self._content = content
        self._content_length = content_length

    @property
    def content_length(self) -> int | None:
        return self._content_length

    async def iter_body(self) -> AsyncIterator[bytes]:
        async for chunk in self._content:
            if chunk:
                yield chunk

    async def aclose(self) -> None:
        aclose = getattr(self._content, "aclose", None)
        if aclose is not None:
            await aclose()


#: A piece of a :class:`FileResponse` body: literal bytes, or ``(offset, length)`` of the file.
FilePart = bytes | tuple[int, int]


class FileResponse(BaseResponse):
    """Parts of an already-open file, interleaved with literal bytes, sent in constant memory.

    The response owns *file* and closes it in :meth:`aclose`.  *parts* defaults to the whole
    file as measured by ``fstat`` on the open descriptor, so the length sent is the length of
    the file that was opened even if the name is replaced meanwhile.  If the file shrinks while
    it is being sent, :class:`FileChangedError` is raised and the connection is aborted: a
    truncated body with a correct-looking length would be worse.
    """

    __slots__ = ("_content_length", "file", "parts")

    def __init__(
        self,
        file: BinaryIO,
        status: int = 200,
        headers: HeaderInput | Headers | None = None,
        *,
        parts: Sequence[FilePart] | None = None,
        content_type: str | None = None,
        compress: bool | None = None,
        representation: Representation | None = None,
    ) -> None:
        super().__init__(status, headers, compress, content_type, representation)
        self.file = file
        if parts is None:
            parts = [(0, os.fstat(file.fileno()).st_size)]
        self.parts: Sequence[FilePart] = parts
        self._content_length = sum(
            len(part) if isinstance(part, bytes) else part[1] for part in parts
        )

    @property
    def content_length(self) -> int:
        return self._content_length

    async def iter_body(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            if isinstance(part, bytes):
                yield part
                continue
            offset, length = part
            async for chunk in read_file_range(self.file, offset, length):
                yield chunk

    async def aclose(self) -> None:
        self.file.close()


class FileChangedError(Exception):
    """The file being sent shrank after its length was announced."""


async def read_file_range(file: BinaryIO, offset: int, length: int) -> AsyncIterator[bytes]:
    """Yield *length* bytes of *file* from *offset*, read in worker threads (never on the
    event loop); raises :class:`FileChangedError` if the file ends first."""
    while length > 0:
        chunk = await trio.to_thread.run_sync(
            os.pread, file.fileno(), min(length, FILE_CHUNK_SIZE), offset
        )
        if not chunk:
            raise FileChangedError(f"{file.name} shrank while it was being sent")
        offset += len(chunk)
        length -= len(chunk)
        yield chunk


#: What an :class:`Upgrade` runs once the ``101`` is sent: it gets the connection's stream, with
#: any bytes the client sent after its request already put back in front.
UpgradeHandler = Callable[["trio.abc.Stream"], Awaitable[None]]


class Upgrade(BaseResponse):
    """``101 Switching Protocols``: return it to hand the connection to another protocol.

    The connection sends the ``101`` with *headers* (``Upgrade``, ``Connection: upgrade`` and
    what the protocol needs, such as ``Sec-WebSocket-Accept``), then awaits ``handler(stream)``
    with a stream that first yields whatever the client sent after the request head.  The
    connection is closed when *handler* returns.  Only valid for a request that asked to
    upgrade (``Upgrade`` in ``Connection``) and had no body; otherwise the connection answers
    ``500`` and logs why.  To refuse an upgrade, return an ordinary response instead.
    """

    __slots__ = ("handler",)

    def __init__(self, handler: UpgradeHandler, headers: HeaderInput | Headers | None) -> None:
        self.status = 101
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.compress = False
        self.representation = None
        self.handler = handler

    @property
    def content_length(self) -> int | None:
        return None

    async def iter_body(self) -> AsyncIterator[bytes]:
        return
        yield  # an async generator with nothing to yield


def error_response(
    status: int, detail: str | None = None, headers: HeaderInput | Headers | None = None
) -> Response:
    """A short plain-text response such as ``404 Not Found: no such file``."""
    text = f"{status} {reason_phrase(status).decode('ascii')}".rstrip()
    if detail:
        text += f": {detail}"
    return Response(text + "\n", status, headers, content_type="text/plain; charset=utf-8")
