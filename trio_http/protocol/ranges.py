"""Byte range requests (RFC 9110 §14): parsing Range, and framing multipart/byteranges.

The caller evaluates If-Range first (see :mod:`trio_http.protocol.conditional`), then:

* :func:`parse_range` returns None: ignore Range and answer 200 with the whole representation;
* it raises :class:`RangeNotSatisfiable`: answer 416 with ``Content-Range: bytes */size``;
* it returns one range: answer 206 with ``Content-Range: bytes a-b/size`` and those bytes;
* it returns several: answer 206 with the body planned by :func:`multipart_byteranges`.
"""

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "MULTIPART_BOUNDARY_LENGTH",
    "ByteRange",
    "MultipartPlan",
    "RangeNotSatisfiable",
    "make_boundary",
    "multipart_byteranges",
    "parse_range",
]

# A bytes range-spec (§14.1.2): int-range "first-last" / "first-", or suffix-range "-length".
_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")
# §14.1.2: recipients must anticipate large numerals. 32 significant digits is far beyond any
# file size (2**64 has 20) and keeps int() cheap; a longer position invalidates the header.
_MAX_DIGITS = 32

# RFC 2046 §5.1.1 boundary characters, less the space (legal only before the last one). A
# boundary that is not also an HTTP token must be quoted in the Content-Type parameter.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,./:=?-]{1,70}")
_TOKEN = re.compile(r"[0-9A-Za-z!#$%&'*+.^_`|~-]+")
_FIELD_VALUE_FORBIDDEN = re.compile(r"[\x00\r\n]")

#: Length of the boundaries made by :func:`make_boundary`: 32 hex digits, 128 random bits,
#: so the delimiter cannot plausibly occur in the file's bytes (RFC 2046 §5.1.1).
MULTIPART_BOUNDARY_LENGTH = 32


@dataclass(frozen=True, slots=True)
class ByteRange:
    """The byte positions ``start`` to ``end`` of a representation, both inclusive."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"invalid byte range {self.start}-{self.end}")

    @property
    def length(self) -> int:
        """The number of bytes in the range."""
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        """Return the Content-Range value for this range of a *size*-byte representation,
        e.g. ``bytes 0-99/1234`` (§14.4). Raises ValueError if the range exceeds *size*.
        """
        if self.end >= size:
            raise ValueError(f"byte range {self.start}-{self.end} exceeds size {size}")
        return f"bytes {self.start}-{self.end}/{size}"


class RangeNotSatisfiable(Exception):
    """No range in a Range header is satisfiable: the response is 416 (§15.5.17)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"no satisfiable range in a representation of {size} bytes")
        self.size = size

    @property
    def content_range(self) -> str:
        """The Content-Range value the 416 response should carry, e.g. ``bytes */1234``."""
        return f"bytes */{self.size}"


@dataclass(frozen=True, slots=True)
class MultipartPlan:
    """The framing of a multipart/byteranges body (§14.6).

    The body is, for each ``(header, byte_range)`` in ``parts``, the header bytes followed by
    the representation's bytes in ``byte_range``; then ``trailer``. ``content_length`` is its
    exact length and ``content_type`` the response's Content-Type value.
    """

    parts: tuple[tuple[bytes, ByteRange], ...]
    trailer: bytes
    content_length: int
    content_type: str


def parse_range(value: str, size: int, *, max_ranges: int = 16) -> list[ByteRange] | None:
    """Return the satisfiable byte ranges of a Range header for a *size*-byte representation:
    with overlapping and adjacent ranges merged, each end clamped to ``size - 1``, in the
    order of the request (a merged range where the first of its members was).

    Returns None when the header must be ignored (answer 200 with the whole representation):
    it is not of the ``bytes`` unit, is syntactically invalid, or lists more than
    *max_ranges* ranges. Also returns None for a suffix range (``-n``, n > 0) of an empty
    representation: §14.1.2 deems it satisfiable, but no 206 can describe zero bytes, so the
    whole (empty) representation is the answer.

    Raises RangeNotSatisfiable when the header is valid but no range is satisfiable.
    """
    unit, equals, range_set = value.partition("=")
    # Range units are case-insensitive (§14.1); isascii() stops Unicode case folding from
    # admitting look-alikes.
    if not equals or not unit.isascii() or unit.lower() != "bytes":
        return None

    ranges: list[ByteRange] = []
    count = 0
    empty_suffix = False
    for element in range_set.split(","):
        # range-set is a list (§5.6.1): OWS around commas, and empty elements are allowed.
        element = element.strip(" \t")
        if not element:
            continue
        count += 1
        # §14.2 permits ignoring sets of many small ranges; capping the count also bounds
        # the work done on a hostile header.
        if count > max_ranges:
            return None
        match = _RANGE_SPEC.fullmatch(element)
        if match is None:
            return None
        # Strip insignificant zeros before measuring and converting.
        first_digits, last_digits = (group.lstrip("0") or group[:1] for group in match.groups())
        if len(first_digits) > _MAX_DIGITS or len(last_digits) > _MAX_DIGITS:
            return None
        first = int(first_digits) if first_digits else None
        last = int(last_digits) if last_digits else None
        if first is None:
            if last is None:  # a lone "-"
                return None
            if last == 0:  # a zero-length suffix is unsatisfiable (§14.1.2)
                continue
            if size == 0:
                empty_suffix = True
                continue
            # A suffix longer than the representation selects all of it (§14.1.2).
            ranges.append(ByteRange(max(size - last, 0), size - 1))
        else:
            if last is not None and last < first:  # invalid, not merely unsatisfiable
                return None
            if first < size:
                ranges.append(ByteRange(first, size - 1 if last is None else min(last, size - 1)))
    if count == 0:  # range-set is 1#range-spec
        return None
    if not ranges:
        if empty_suffix:
            return None
        raise RangeNotSatisfiable(size)
    return _coalesce(ranges)


def _coalesce(ranges: list[ByteRange]) -> list[ByteRange]:
    # Overlapping ranges are how clients amplify a small request into a huge response
    # (§17.15; CVE-2011-3192 against Apache). §15.3.7.2 allows coalescing ranges that overlap
    # or touch regardless of the order they were requested in, so they are merged and every
    # byte is sent at most once. The same section asks for the parts in the order of the
    # request (a client may want later parts first), less those coalesced into others: each
    # merged range takes the place of its first member, the rest keep theirs.
    if len(ranges) == 1:
        return ranges
    by_start = sorted(enumerate(ranges), key=lambda item: item[1].start)
    merged: list[tuple[int, ByteRange]] = []  # (position of the first member, range)
    for position, current in by_start:
        if merged and current.start <= merged[-1][1].end + 1:
            first, previous = merged[-1]
            if current.end > previous.end:
                previous = ByteRange(previous.start, current.end)
            merged[-1] = (min(first, position), previous)
        else:
            merged.append((position, current))
    merged.sort(key=lambda item: item[0])
    return [byte_range for _, byte_range in merged]


def make_boundary() -> str:
    """Return a fresh random multipart boundary of ``MULTIPART_BOUNDARY_LENGTH`` hex digits."""
    return secrets.token_hex(MULTIPART_BOUNDARY_LENGTH // 2)


def multipart_byteranges(
    ranges: Sequence[ByteRange], size: int, content_type: str | None, boundary: str
) -> MultipartPlan:
    """Return the framing of a multipart/byteranges body carrying *ranges* of a *size*-byte
    representation whose own media type is *content_type* (None to omit the parts'
    Content-Type, as for a representation that has none).

    Each part is ``CRLF --boundary CRLF``, Content-Type and Content-Range fields, a blank line
    and the range's bytes; the body ends with ``CRLF --boundary-- CRLF`` (§14.6). That is
    nginx's framing byte for byte (Apache httpd's differs only in field-name case). The CRLF
    before the first delimiter, which RFC 9110's example leaves out, is an empty preamble
    (RFC 2046 §5.1.1): both forms parse the same, and this is the one clients meet most.

    Raises ValueError if *ranges* is empty, a range exceeds *size*, *boundary* is not a valid
    RFC 2046 boundary, or *content_type* cannot be a field value.
    """
    if not ranges:
        raise ValueError("a multipart/byteranges body needs at least one range")
    if _BOUNDARY.fullmatch(boundary) is None:
        raise ValueError(f"invalid multipart boundary {boundary!r}")
    type_field = b""
    if content_type is not None:
        if _FIELD_VALUE_FORBIDDEN.search(content_type):
            raise ValueError(f"invalid Content-Type {content_type!r}")
        type_field = b"Content-Type: " + content_type.encode("ascii") + b"\r\n"

    delimiter = b"--" + boundary.encode("ascii")
    parts: list[tuple[bytes, ByteRange]] = []
    length = 0
    for byte_range in ranges:
        header = b"\r\n%s\r\n%sContent-Range: %s\r\n\r\n" % (
            delimiter,
            type_field,
            byte_range.content_range(size).encode("ascii"),
        )
        parts.append((header, byte_range))
        length += len(header) + byte_range.length
    trailer = b"\r\n" + delimiter + b"--\r\n"
    parameter = boundary if _TOKEN.fullmatch(boundary) else f'"{boundary}"'
    return MultipartPlan(
        parts=tuple(parts),
        trailer=trailer,
        content_length=length + len(trailer),
        content_type=f"multipart/byteranges; boundary={parameter}",
    )
