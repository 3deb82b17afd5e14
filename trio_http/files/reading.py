"""Reading one file: its validators, conditional requests and ranges (RFC 9110 §13, §14).

The file is described by the ``fstat`` of the descriptor that will be sent, so the
validators, the length and the ranges all speak of the same file even if it is replaced
meanwhile.
"""

from __future__ import annotations

import functools
import mimetypes
import os
import re
import time
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import HTTPError
from ..protocol.conditional import (
    Precondition,
    evaluate_preconditions,
    if_range_allows_partial,
    make_etag,
)
from ..protocol.httpdate import format_http_date
from ..protocol.ranges import RangeNotSatisfiable, make_boundary, multipart_byteranges, parse_range
from ..request import Request
from ..response import BaseResponse, FileResponse, Representation, Response

__all__ = ["Validators", "check_preconditions", "content_type_for", "file_response"]

#: Built-in table only: ``mimetypes.guess_type`` would also read the machine's mime.types,
#: which makes the answer depend on where the server runs.
_MIME = mimetypes.MimeTypes()
#: The suffix compression adds to an ETag (see compression.negotiate_and_encode).
_VARIANT_SUFFIX = re.compile(r'-(?:gzip|br|zstd)"')


#: The type of a file compressed as a whole (``mimetypes`` calls the compression an
#: "encoding"), as Python's ``http.server`` maps them.
_COMPRESSED_TYPES = {
    "gzip": "application/gzip",  # RFC 6713
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
}


@functools.lru_cache(maxsize=1024)  # 2 µs per guess, for names that repeat
def content_type_for(name: str) -> str:
    """The ``Content-Type`` of the file *name*, as stored (sent without ``Content-Encoding``).

    For ``backup.tar.gz`` ``mimetypes`` says ``application/x-tar`` compressed with gzip: the
    bytes sent are gzip data, so they are ``application/gzip`` (RFC 9110 §8.3: the type of
    what is sent), not a tar (nor ``text/plain`` for ``notes.txt.gz``).
    """
    content_type, compression = _MIME.guess_type(name, strict=False)
    if compression is not None:
        return _COMPRESSED_TYPES.get(compression, "application/octet-stream")
    return content_type or "application/octet-stream"


#: 0001-01-01T00:00:00Z, the earliest instant an IMF-fixdate can write.
_EARLIEST_HTTP_DATE = -62135596800


@dataclass(frozen=True)
class Validators:
    etag: str
    #: ``None`` when no HTTP date can hold the file's time (before year 1): not sent.
    last_modified: int | None

    @classmethod
    def of(cls, st: os.stat_result, *, now: float | None = None) -> Validators:
        """The validators of the file *st* describes, at *now* (default: the clock).

        A modification time after *now* is replaced by *now* (RFC 9110 §8.8.2.1 MUST): a
        date in the future would mislead caches, and no date could hold year 10000.
        """
        mtime = min(st.st_mtime, time.time() if now is None else now)
        last_modified = int(mtime) if mtime >= _EARLIEST_HTTP_DATE else None
        return cls(make_etag(st.st_ino, st.st_size, st.st_mtime_ns), last_modified)

    def headers(self) -> dict[str, str]:
        if self.last_modified is None:
            return {"etag": self.etag}
        return {"etag": self.etag, "last-modified": _format_mtime(self.last_modified)}


#: Files keep their modification times, so their Last-Modified values repeat.
_format_mtime = functools.lru_cache(maxsize=1024)(format_http_date)


def file_response(
    request: Request, file: BinaryIO, st: os.stat_result, name: str, *, max_ranges: int
) -> BaseResponse:
    """The response for an open regular *file* (*st* its ``fstat``): 200, 206, 304 or 416.

    Evaluates the preconditions (412) and Range/If-Range; takes ownership of *file*.
    """
    validators = Validators.of(st)
    outcome = check_preconditions(request, validators, exists=True)
    content_type = content_type_for(name)
    size = st.st_size
    # What a 304 or 206 stands for: they carry the Vary and ETag its 200 would.
    representation = Representation(content_type, size)
    if outcome is Precondition.NOT_MODIFIED:
        file.close()
        return Response(status=304, headers=validators.headers(), representation=representation)
    headers = validators.headers()
    headers["accept-ranges"] = "bytes"
    # The uploader's content, not the server's page: never sniffed into HTML.
    headers["x-content-type-options"] = "nosniff"
    # Range (and so If-Range) is defined for GET only; any other method, HEAD included,
    # MUST ignore it (RFC 9110 §14.2): a HEAD answers as the HEAD of the 200 would.
    range_header = request.headers.get("range") if request.method == "GET" else None
    if range_header is None or not if_range_allows_partial(
        request.headers.get("if-range"),
        etag=validators.etag,
        last_modified=validators.last_modified,
        # A modification time this recent is a weak validator (RFC 9110 §8.8.2.2).
        now=time.time(),
    ):
        # The whole file as fstat saw it (FileResponse would fstat again without parts).
        headers["content-type"] = content_type
        return FileResponse(file, headers=headers, parts=[(0, size)])
    try:
        ranges = parse_range(range_header, size, max_ranges=max_ranges)
    except RangeNotSatisfiable:
        file.close()
        headers["content-range"] = f"bytes */{size}"
        raise HTTPError(416, "no satisfiable range", headers=headers) from None
    if ranges is None:
        return FileResponse(file, headers=headers, content_type=content_type)
    if len(ranges) == 1:
        (byte_range,) = ranges
        headers["content-range"] = byte_range.content_range(size)
        return FileResponse(
            file,
            206,
            headers,
            parts=[(byte_range.start, byte_range.length)],
            content_type=content_type,
            representation=representation,
        )
    plan = multipart_byteranges(ranges, size, content_type, make_boundary())
    parts: list[bytes | tuple[int, int]] = []
    for part_head, byte_range in plan.parts:
        parts.append(part_head)
        parts.append((byte_range.start, byte_range.length))
    parts.append(plan.trailer)
    return FileResponse(
        file,
        206,
        headers,
        parts=parts,
        content_type=plan.content_type,
        representation=representation,
    )


def check_preconditions(
    request: Request, validators: Validators | None, *, exists: bool
) -> Precondition:
    """Evaluate conditional headers; raise 412, return NOT_MODIFIED or PROCEED."""
    headers = request.headers
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        # A client revalidating a compressed variant sends its ETag ("...-gzip"); the
        # variant is unchanged exactly when the file is (compression is deterministic).
        if_none_match = _VARIANT_SUFFIX.sub('"', if_none_match)
    outcome = evaluate_preconditions(
        request.method,
        if_match=headers.get("if-match"),
        if_none_match=if_none_match,
        if_modified_since=headers.get("if-modified-since"),
        if_unmodified_since=headers.get("if-unmodified-since"),
        etag=validators.etag if validators else None,
        last_modified=validators.last_modified if validators else None,
        exists=exists,
    )
    if outcome is Precondition.PRECONDITION_FAILED:
        raise HTTPError(412, "precondition failed")
    return outcome
