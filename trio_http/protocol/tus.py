"""The rules of tus 1.0.0 (resumable uploads) as plain values: parsing and checking headers.

The protocol is https://tus.io/protocols/resumable-upload (version 1.0.0, 2016-03-25);
section names below are that document's.  Everything here takes strings and numbers and
either returns plain values or raises :class:`~trio_http.errors.HTTPError` with the status the
protocol asks for; the trio side (``trio_http/files/tus.py``) does the I/O.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

from ..errors import HTTPError

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "CHECKSUM_MISMATCH",
    "EXTENSIONS",
    "OFFSET_STREAM",
    "TUS_VERSION",
    "Creation",
    "check_capacity",
    "check_content_length",
    "check_patch_of_complete",
    "check_tus_resumable",
    "final_move",
    "head_headers",
    "is_offset_stream",
    "is_upload_id",
    "new_offset_error",
    "options_headers",
    "parse_checksum",
    "parse_creation",
    "parse_metadata",
    "parse_patch",
    "parse_size",
]

#: The one version spoken ("Tus-Resumable", "Tus-Version").
TUS_VERSION = "1.0.0"
#: "Tus-Extension": what this server implements.  Not "creation-defer-length": an upload's
#: length must be known when it is created, so that it can be checked against the limit.
EXTENSIONS = "creation,creation-with-upload,termination,expiration,checksum"
#: "Tus-Checksum-Algorithm" (Checksum extension: sha1 is required); name -> digest size.
CHECKSUM_ALGORITHMS = {"sha1": 20, "sha256": 32}
#: "460 Checksum Mismatch" (Checksum extension).
CHECKSUM_MISMATCH = 460
#: The content type of every PATCH (Core Protocol, PATCH) and of a creation-with-upload body.
OFFSET_STREAM = "application/offset+octet-stream"

#: Upload ids: 128 random bits as 32 lowercase hex digits; nothing else is ever looked up, so
#: an id can never name a path (no dots, no slashes).
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
#: Upload-Offset and Upload-Length are non-negative integers (Core Protocol, Headers); 19
#: digits keep them below 2**63, which every file system call accepts.
_SIZE = re.compile(r"[0-9]{1,19}")
#: The longest name of one file or folder on the usual file systems, in bytes.
NAME_MAX = 255
#: The longest ``Upload-Metadata`` kept: it is stored with the upload (and read back whole
#: with it) and answered on every HEAD.
MAX_METADATA = 16 * 1024
#: Metadata keys: "MUST NOT contain spaces and commas and MUST NOT be empty" (Creation,
#: Upload-Metadata); others are allowed (tus-js-client sends ``rel:path`` as is), but for
#: ``=``: ``, aGk=`` is a value whose key is missing, not a key ``aGk=``.
_KEY = re.compile(r"[^\s,=]+")
_MAX_METADATA_PAIRS = 64


def is_upload_id(text: str) -> bool:
    """Whether *text* has the form of an upload id this server hands out."""
    return _UPLOAD_ID.fullmatch(text) is not None


def check_tus_resumable(value: str | None) -> None:
    """Raise ``412`` unless the request speaks tus 1.0.0.

    Core Protocol, Tus-Resumable: every request but OPTIONS carries the header, and a version
    the server does not support gets ``412 Precondition Failed`` with ``Tus-Version`` and is
    not processed.  A missing header is answered the same way: such a request is no tus one.
    """
    if value is None or value.strip() != TUS_VERSION:
        got = "no Tus-Resumable header" if value is None else f"Tus-Resumable: {value}"
        raise HTTPError(
            412,
            f"this server speaks tus {TUS_VERSION} only ({got})",
            headers={"tus-version": TUS_VERSION},
        )


def parse_size(value: str | None, name: str) -> int:
    """The non-negative integer in header *name*; ``400`` if it is missing or malformed."""
    if value is None:
        raise HTTPError(400, f"{name} is required")
    value = value.strip()
    if _SIZE.fullmatch(value) is None:
        raise HTTPError(400, f"{name} must be a non-negative integer")
    return int(value)


def parse_metadata(value: str | None) -> dict[str, bytes]:
    """The pairs of ``Upload-Metadata`` (Creation extension), values base64-decoded.

    ``key base64value`` pairs separated by commas; a value may be empty, and then the space
    may be left out.  Keys are unique.  Anything else is ``400``.
    """
    if value is None or not value.strip():
        return {}
    if len(value) > MAX_METADATA:
        raise HTTPError(400, f"Upload-Metadata is longer than {MAX_METADATA} characters")
    pairs: dict[str, bytes] = {}
    items = value.split(",")
    if len(items) > _MAX_METADATA_PAIRS:
        raise HTTPError(400, "Upload-Metadata has too many pairs")
    for item in items:
        key, _, encoded = item.strip().partition(" ")
        if _KEY.fullmatch(key) is None:
            raise HTTPError(400, "Upload-Metadata keys must be non-empty, without spaces")
        if key in pairs:
            raise HTTPError(400, f"Upload-Metadata has the key {key!r} twice")
        try:
            pairs[key] = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise HTTPError(400, f"Upload-Metadata value of {key!r} is not base64") from None
    return pairs


def parse_checksum(value: str) -> tuple[str, bytes]:
    """``Upload-Checksum: <algorithm> <base64 digest>`` (Checksum extension) as a pair.

    ``400`` for an algorithm this server does not support (the extension's rule 1) or a
    malformed value.
    """
    algorithm, _, encoded = value.strip().partition(" ")
    size = CHECKSUM_ALGORITHMS.get(algorithm)
    if size is None:
        supported = ",".join(CHECKSUM_ALGORITHMS)
        raise HTTPError(400, f"unsupported checksum algorithm {algorithm!r} (use {supported})")
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise HTTPError(400, "the Upload-Checksum digest is not base64") from None
    if len(digest) != size:
        raise HTTPError(400, f"a {algorithm} digest has {size} bytes, not {len(digest)}")
    return algorithm, digest


def is_offset_stream(content_type: str | None) -> bool:
    """Whether *content_type* is ``application/offset+octet-stream`` (parameters ignored)."""
    if content_type is None:
        return False
    return content_type.partition(";")[0].strip().lower() == OFFSET_STREAM


def parse_patch(header: Callable[[str], str | None]) -> int:
    """A PATCH's ``Upload-Offset`` (Core Protocol, PATCH), read with *header*: ``415``
    without ``Content-Type: application/offset+octet-stream``, ``400`` for a missing or
    malformed offset."""
    if not is_offset_stream(header("content-type")):
        raise HTTPError(415, "PATCH needs Content-Type: application/offset+octet-stream")
    return parse_size(header("upload-offset"), "Upload-Offset")


def check_patch_of_complete(header: Callable[[str], str | None], length: int) -> None:
    """Check a PATCH to an upload already complete, as any PATCH (:func:`parse_patch`):
    ``409`` unless it is at the end (a PATCH sent again after its answer was lost), ``400``
    if it carries bytes."""
    sent = parse_patch(header)
    if sent != length:
        raise new_offset_error(sent, length)
    check_content_length(header("content-length"), sent, length)


@contextmanager
def final_move() -> Iterator[None]:
    """Around putting a complete upload in place: its ``409`` (a file in the way) becomes
    ``422``.  To a tus client 409 means "ask the offset" (Core Protocol, PATCH), which would
    find every byte in and report success; the upload stays, an empty PATCH retries."""
    try:
        yield
    except HTTPError as exc:
        if exc.status != 409:
            raise
        raise HTTPError(422, f"the file cannot be put in place: {exc.detail}") from None


def new_offset_error(sent: int, current: int) -> HTTPError:
    """``409``: the request's ``Upload-Offset`` is not the upload's (Core Protocol, PATCH)."""
    return HTTPError(
        409,
        f"Upload-Offset is {sent} but the upload is at {current}: ask with HEAD and resume there",
        headers={"upload-offset": str(current)},
    )


def check_content_length(declared: str | None, offset: int, length: int) -> None:
    """``400`` if a declared body would run past the upload's length (nothing is written)."""
    if declared is None:
        return
    try:
        size = int(declared)
    except ValueError:
        return  # h11 has already refused a malformed Content-Length
    if offset + size > length:
        raise HTTPError(
            400,
            f"the body ({size} bytes at offset {offset}) goes past Upload-Length ({length})",
        )


class Creation(NamedTuple):
    """What a creation request (``POST``) asks for."""

    length: int
    #: The target: the ``filename`` metadata, a path relative to the served directory.
    target: str
    #: ``Upload-Metadata`` as sent (HEAD answers with it).
    metadata: str


def parse_creation(header: Callable[[str], str | None], max_size: int) -> Creation:
    """Check a creation request's fields (Creation extension), read with *header*.

    ``412`` for another protocol version; ``400`` for ``Upload-Defer-Length`` (not offered:
    the length is what the limit and the disk are checked against), ``Upload-Concat`` (not
    offered), a missing or malformed ``Upload-Length`` or ``Upload-Metadata``, or no UTF-8
    ``filename``; ``413`` for a length over *max_size*; ``414`` for a name in the filename
    longer than file systems allow.
    """
    check_tus_resumable(header("tus-resumable"))
    if header("upload-defer-length") is not None:
        raise HTTPError(400, "Upload-Defer-Length is not supported: send Upload-Length")
    if header("upload-concat") is not None:
        raise HTTPError(400, "the concatenation extension is not supported")
    length = parse_size(header("upload-length"), "Upload-Length")
    if length > max_size:
        raise HTTPError(413, f"Upload-Length is over this server's {max_size} bytes")
    metadata = header("upload-metadata") or ""
    filename = parse_metadata(metadata).get("filename")
    if filename is None:
        raise HTTPError(400, "Upload-Metadata needs 'filename': the path to write")
    try:
        target = filename.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(400, "the filename is not valid UTF-8") from None
    if any(len(part.encode("utf-8")) > NAME_MAX for part in target.split("/")):
        # Refused now, not after the upload when the file cannot be created.
        raise HTTPError(414, "a name in the filename is too long for the file system")
    return Creation(length, target, metadata)


def head_headers(offset: int, length: int, metadata: str, expires: str | None) -> dict[str, str]:
    """The answer to ``HEAD`` (Core Protocol, HEAD): the offset, even of a complete upload, and
    the length; ``Upload-Metadata`` as sent (Creation); ``Upload-Expires`` (Expiration) unless
    the upload is complete and so no longer expires."""
    headers = {"upload-offset": str(offset), "upload-length": str(length)}
    if expires is not None:
        headers["upload-expires"] = expires
    if metadata:
        headers["upload-metadata"] = metadata
    return headers


def check_capacity(total: int, mine: int, *, max_total: int, max_per_client: int) -> None:
    """Refuse a new upload when the server, or this client, keeps as many unfinished ones as
    allowed: ``503`` for the server as a whole (RFC 9110 §15.6.4, a temporary overload), ``429``
    for one client's share (RFC 6585 §4), so one client cannot take every place.  Both say
    when to retry; tus clients and the listing page send the file whole instead."""
    retry = {"retry-after": "60"}
    if total >= max_total:
        message = f"{total} unfinished uploads, the most this server keeps; retry later"
        raise HTTPError(503, message, headers=retry)
    if mine >= max_per_client:
        message = f"you have {mine} unfinished uploads, the most one client may keep"
        raise HTTPError(429, message + ": finish or delete one", headers=retry)


def options_headers(max_size: int) -> dict[str, str]:
    """The answer to ``OPTIONS`` (Core Protocol, OPTIONS; Checksum extension)."""
    return {
        "tus-version": TUS_VERSION,
        "tus-extension": EXTENSIONS,
        "tus-max-size": str(max_size),
        "tus-checksum-algorithm": ",".join(CHECKSUM_ALGORITHMS),
    }
