"""Tests for trio_http.ranges (RFC 9110 §14)."""

import email.parser
import email.policy
import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_http.protocol.ranges import (
    MULTIPART_BOUNDARY_LENGTH,
    ByteRange,
    MultipartPlan,
    RangeNotSatisfiable,
    make_boundary,
    multipart_byteranges,
    parse_range,
)

Spans = list[tuple[int, int]]


def _spans(ranges: list[ByteRange] | None) -> Spans | None:
    return None if ranges is None else [(r.start, r.end) for r in ranges]


# --- ByteRange and RangeNotSatisfiable -----------------------------------------------------


def test_byte_range() -> None:
    byte_range = ByteRange(0, 99)
    assert byte_range.length == 100
    assert byte_range.content_range(1234) == "bytes 0-99/1234"
    assert ByteRange(5, 5).length == 1
    assert ByteRange(1233, 1233).content_range(1234) == "bytes 1233-1233/1234"


@pytest.mark.parametrize(("start", "end"), [(5, 4), (-1, 3), (-2, -1)])
def test_byte_range_rejects_impossible_ranges(start: int, end: int) -> None:
    with pytest.raises(ValueError):
        ByteRange(start, end)


def test_content_range_rejects_a_range_past_the_end() -> None:
    with pytest.raises(ValueError):
        ByteRange(0, 100).content_range(100)


def test_range_not_satisfiable_content_range() -> None:
    assert RangeNotSatisfiable(1234).content_range == "bytes */1234"
    assert RangeNotSatisfiable(0).content_range == "bytes */0"


# --- parse_range ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # §14.1.2's examples, for a representation of length 10000.
        ("bytes=0-499", [(0, 499)]),
        ("bytes=500-999", [(500, 999)]),
        ("bytes=-500", [(9500, 9999)]),
        ("bytes=9500-", [(9500, 9999)]),
        ("bytes=0-0,-1", [(0, 0), (9999, 9999)]),
        ("bytes= 0-999, 4500-5499, -1000", [(0, 999), (4500, 5499), (9000, 9999)]),
        ("bytes=500-600,601-999", [(500, 999)]),
        ("bytes=500-700,601-999", [(500, 999)]),
        # Whole and single-byte ranges.
        ("bytes=0-", [(0, 9999)]),
        ("bytes=0-9999", [(0, 9999)]),
        ("bytes=9999-9999", [(9999, 9999)]),
        ("bytes=-1", [(9999, 9999)]),
        ("bytes=-10000", [(0, 9999)]),
        # A last-pos past the end is clamped; a suffix longer than the file is all of it.
        ("bytes=0-10000", [(0, 9999)]),
        ("bytes=9000-99999999999999999999", [(9000, 9999)]),
        ("bytes=-10001", [(0, 9999)]),
        ("bytes=-99999999999999999999999999999999", [(0, 9999)]),
        # Leading zeros are just digits.
        ("bytes=000-0001", [(0, 1)]),
        ("bytes=" + "0" * 100 + "5-", [(5, 9999)]),
        ("bytes=-" + "0" * 100 + "1", [(9999, 9999)]),
        # The unit is case-insensitive (§14.1).
        ("Bytes=0-1", [(0, 1)]),
        ("BYTES=0-1", [(0, 1)]),
        # List syntax (§5.6.1): OWS around commas, empty elements.
        ("bytes=0-1,\t5-6", [(0, 1), (5, 6)]),
        ("bytes=0-1 , 5-6", [(0, 1), (5, 6)]),
        ("bytes=0-1,,5-6", [(0, 1), (5, 6)]),
        ("bytes=,0-1", [(0, 1)]),
        ("bytes=0-1,", [(0, 1)]),
        ("bytes= , ,0-1, ,", [(0, 1)]),
        # Unsatisfiable members are dropped when others are satisfiable.
        ("bytes=0-1,10000-", [(0, 1)]),
        ("bytes=-0,0-1", [(0, 1)]),
        ("bytes=20000-30000,-1", [(9999, 9999)]),
        # Overlapping and adjacent ranges are coalesced, whatever their order; the rest keep
        # the order of the request (RFC 9110 §15.3.7.2), a coalesced range the position of
        # its first member.
        ("bytes=5-6,0-1", [(5, 6), (0, 1)]),
        ("bytes=0-5,3-8", [(0, 8)]),
        ("bytes=3-8,0-5", [(0, 8)]),
        ("bytes=0-1,2-3", [(0, 3)]),
        ("bytes=0-9,2-3", [(0, 9)]),
        ("bytes=2-3,0-9", [(0, 9)]),
        ("bytes=-1,0-0", [(9999, 9999), (0, 0)]),
        ("bytes=9000-,-500", [(9000, 9999)]),
        ("bytes=0-,0-,0-,0-", [(0, 9999)]),
        ("bytes=0-0,2-2,1-1", [(0, 2)]),
        ("bytes=8-9,0-1,4-5", [(8, 9), (0, 1), (4, 5)]),
        ("bytes=0-1,3-4,2-2", [(0, 4)]),
        ("bytes=8-9,0-1,7-7", [(7, 9), (0, 1)]),
        ("bytes=0-1,8-9,7-7", [(0, 1), (7, 9)]),
        ("bytes=5-6,8-9,0-0,6-8", [(5, 9), (0, 0)]),
        ("bytes=0-0,5-6,8-9,6-8", [(0, 0), (5, 9)]),
        ("bytes=4-5,0-1,2-3", [(0, 5)]),
        ("bytes=20-29,0-9,10-19,40-49", [(0, 29), (40, 49)]),
        ("bytes=40-49,30-39,20-29", [(20, 49)]),
        ("bytes=40-49,20-29,0-9", [(40, 49), (20, 29), (0, 9)]),
    ],
)
def test_parse_range(value: str, expected: Spans) -> None:
    assert _spans(parse_range(value, 10000)) == expected


@pytest.mark.parametrize(
    "value",
    [
        # Not the bytes unit, or no ranges-specifier at all.
        "",
        "bytes",
        "items=0-1",
        "bytesx=0-1",
        "=0-1",
        "bytes 0-1",
        "bytes =0-1",
        " bytes=0-1",
        "byte=0-1",
        "by\u0167es=0-1",
        # An empty range-set (it is 1#range-spec).
        "bytes=",
        "bytes=,",
        "bytes= , ",
        # Malformed range-specs.
        "bytes=-",
        "bytes=--1",
        "bytes=1--2",
        "bytes=0-1-2",
        "bytes=a-b",
        "bytes=0-b",
        "bytes=+1-2",
        "bytes=1-+2",
        "bytes=-+1",
        "bytes=0x10-",
        "bytes=1.5-2",
        "bytes=1e3-",
        "bytes=0 - 1",
        "bytes=0- 1",
        "bytes=0-1 2-3",
        "bytes=0-1;q=1",
        "bytes=0-1=",
        "bytes==0-1",
        # Non-ASCII digits, which str.isdigit() would have accepted.
        "bytes=\uff11-2",
        "bytes=\u0663-4",
        "bytes=\u00b2-4",
        # last-pos < first-pos makes the header invalid, not merely unsatisfiable.
        "bytes=1-0",
        "bytes=20000-15000",
        "bytes=0-1,5-2",
        "bytes=5-2,0-1",
        # An absurdly long position (§14.1.2: anticipate large numerals).
        "bytes=0-" + "9" * 33,
        "bytes=" + "9" * 33 + "-",
        "bytes=-" + "9" * 33,
        "bytes=0-" + "9" * 5000,
    ],
)
def test_parse_range_ignores_invalid_headers(value: str) -> None:
    assert parse_range(value, 10000) is None


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("bytes=10000-", 10000),
        ("bytes=10000-10001", 10000),
        ("bytes=20000-30000", 10000),
        ("bytes=" + "9" * 32 + "-", 10000),
        ("bytes=-0", 10000),  # a zero-length suffix selects nothing (§14.1.2)
        ("bytes=-000", 10000),
        ("bytes=10000-,-0", 10000),
        ("bytes=1-", 1),
        # Of an empty representation, only a non-zero suffix range is satisfiable.
        ("bytes=0-", 0),
        ("bytes=0-0", 0),
        ("bytes=0-100", 0),
        ("bytes=-0", 0),
    ],
)
def test_parse_range_unsatisfiable(value: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as info:
        parse_range(value, size)
    assert info.value.size == size
    assert info.value.content_range == f"bytes */{size}"


@pytest.mark.parametrize("value", ["bytes=-1", "bytes=-100", "bytes=0-,-5", "bytes=-0,-1"])
def test_parse_range_suffix_of_empty_representation_is_served_whole(value: str) -> None:
    # §14.1.2 deems these satisfiable, yet no 206 can carry zero bytes: answer 200.
    assert parse_range(value, 0) is None


def test_parse_range_invalid_wins_over_unsatisfiable() -> None:
    # The whole header is invalid, wherever the bad member is.
    assert parse_range("bytes=20000-,x", 10000) is None
    assert parse_range("bytes=x,20000-", 10000) is None


@pytest.mark.parametrize(
    ("count", "max_ranges", "ignored"),
    [(16, 16, False), (17, 16, True), (1, 1, False), (2, 1, True), (100, 16, True)],
)
def test_parse_range_max_ranges(count: int, max_ranges: int, ignored: bool) -> None:
    # Disjoint, ascending, individually fine ranges: only the count matters.
    value = "bytes=" + ",".join(f"{10 * i}-{10 * i + 1}" for i in range(count))
    result = parse_range(value, 10000, max_ranges=max_ranges)
    if ignored:
        assert result is None
    else:
        assert result is not None
        assert len(result) == count


def test_parse_range_max_ranges_counts_unsatisfiable_but_not_empty_members() -> None:
    assert parse_range("bytes=0-1,,,,,, ,", 10000, max_ranges=1) is not None
    assert parse_range("bytes=0-1,20000-", 10000, max_ranges=1) is None


def test_parse_range_defuses_overlap_amplification() -> None:
    # CVE-2011-3192: many overlapping ranges made Apache send the file many times over.
    # Whatever is requested, each byte is sent at most once.
    value = "bytes=0-," + ",".join(f"{i}-{i + 5000}" for i in range(15))
    assert _spans(parse_range(value, 10000)) == [(0, 9999)]


# Headers built from the grammar, so that most are valid and the interesting paths are hit.
_number = st.one_of(st.integers(0, 300), st.integers(0, 10**40)).map(str)
_zeros = st.sampled_from(["", "0", "000"])
_range_spec = st.one_of(
    st.tuples(_zeros, _number, _zeros, st.one_of(st.just(""), _number)).map(
        lambda t: f"{t[0]}{t[1]}-{t[2]}{t[3]}"
    ),
    st.tuples(_zeros, _number).map(lambda t: f"-{t[0]}{t[1]}"),
    st.text(alphabet="0123456789-, \tbytes=x", max_size=8),
)
_range_header = st.tuples(
    st.sampled_from(["bytes=", "Bytes=", "bytes = ", "items=", ""]),
    st.lists(_range_spec, max_size=20),
    st.sampled_from([",", ", ", " ,\t", ",,"]),
).map(lambda t: t[0] + t[2].join(t[1]))


def _check_result(value: str, size: int, max_ranges: int) -> list[ByteRange] | None:
    try:
        ranges = parse_range(value, size, max_ranges=max_ranges)
    except RangeNotSatisfiable as exc:
        assert exc.size == size
        return None
    if ranges is not None:
        assert ranges, "an empty list is never returned"
        assert len(ranges) <= max_ranges
        for byte_range in ranges:
            assert 0 <= byte_range.start <= byte_range.end < size
        ascending = sorted(ranges, key=lambda r: r.start)
        for previous, current in itertools.pairwise(ascending):
            # Neither overlapping nor adjacent (those are merged), in whatever order.
            assert previous.end + 1 < current.start
    return ranges


@given(st.one_of(_range_header, st.text()), st.integers(0, 10**6), st.integers(1, 20))
def test_parse_range_properties(value: str, size: int, max_ranges: int) -> None:
    _check_result(value, size, max_ranges)


@given(st.lists(st.tuples(st.integers(0, 120), st.integers(0, 120)), max_size=6))
def test_parse_range_against_a_model(specs: list[tuple[int, int]]) -> None:
    # Each pair is read as an int-range "a-b" when a <= b, else as a suffix range "-b". The
    # result must select exactly the union of the bytes each satisfiable member selects.
    size = 100
    members = [f"{a}-{b}" if a <= b else f"-{b}" for a, b in specs]
    selected: set[int] = set()
    for a, b in specs:
        if a <= b:
            selected.update(range(a, min(b, size - 1) + 1))
        else:
            selected.update(range(max(size - b, 0), size))
    value = "bytes=" + ",".join(members)
    if not members:
        assert parse_range(value, size) is None
    elif not selected:
        with pytest.raises(RangeNotSatisfiable):
            parse_range(value, size)
    else:
        ranges = _check_result(value, size, max_ranges=16)
        assert ranges is not None
        assert {i for r in ranges for i in range(r.start, r.end + 1)} == selected
        # In the order of the request: each range where its first satisfiable member was.
        spans = [
            (a, min(b, size - 1)) if a <= b else (max(size - b, 0), size - 1)
            for a, b in specs
            if (a <= b and a < size) or (a > b and b > 0)
        ]
        first = [
            min(i for i, (start, end) in enumerate(spans) if r.start <= start and end <= r.end)
            for r in ranges
        ]
        assert first == sorted(first)


def test_parse_range_keeps_the_request_order_of_disjoint_ranges() -> None:
    # §15.3.7.2: a client may need later parts first (pages stored in reverse order).
    value = "bytes=" + ",".join(f"{10 * i}-{10 * i + 1}" for i in reversed(range(16)))
    assert _spans(parse_range(value, 10000)) == [(10 * i, 10 * i + 1) for i in reversed(range(16))]


def test_parse_range_disordered_small_ranges_stay_bounded() -> None:
    # The protections do not depend on the order: at most max_ranges parts, each byte once.
    value = "bytes=" + ",".join(f"{i}-{i}" for i in (9, 3, 7, 1, 5, 0, 8, 2, 6, 4))
    assert _spans(parse_range(value, 10000)) == [(0, 9)]
    value = "bytes=" + ",".join(f"{2 * i}-{2 * i}" for i in reversed(range(17)))
    assert parse_range(value, 10000) is None


# --- multipart/byteranges ------------------------------------------------------------------

DATA = b"abcdefghijklmnopqrst"


def _assemble(plan: MultipartPlan, data: bytes) -> bytes:
    body = b"".join(head + data[r.start : r.end + 1] for head, r in plan.parts)
    return body + plan.trailer


def test_multipart_byteranges_exact_bytes() -> None:
    ranges = [ByteRange(0, 4), ByteRange(10, 14)]
    plan = multipart_byteranges(ranges, len(DATA), "text/plain", "BOUNDARY")
    assert plan.content_type == "multipart/byteranges; boundary=BOUNDARY"
    head_0 = b"\r\n--BOUNDARY\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-4/20\r\n\r\n"
    head_1 = b"\r\n--BOUNDARY\r\nContent-Type: text/plain\r\nContent-Range: bytes 10-14/20\r\n\r\n"
    assert plan.parts == ((head_0, ranges[0]), (head_1, ranges[1]))
    assert plan.trailer == b"\r\n--BOUNDARY--\r\n"
    body = _assemble(plan, DATA)
    assert body == (
        b"\r\n--BOUNDARY\r\n"
        b"Content-Type: text/plain\r\n"
        b"Content-Range: bytes 0-4/20\r\n"
        b"\r\n"
        b"abcde"
        b"\r\n--BOUNDARY\r\n"
        b"Content-Type: text/plain\r\n"
        b"Content-Range: bytes 10-14/20\r\n"
        b"\r\n"
        b"klmno"
        b"\r\n--BOUNDARY--\r\n"
    )
    assert plan.content_length == len(body) == 170


def test_multipart_byteranges_without_content_type() -> None:
    plan = multipart_byteranges([ByteRange(19, 19)], len(DATA), None, "b")
    body = _assemble(plan, DATA)
    assert body == b"\r\n--b\r\nContent-Range: bytes 19-19/20\r\n\r\nt\r\n--b--\r\n"
    assert plan.content_length == len(body)


@pytest.mark.parametrize(
    ("boundary", "parameter"),
    [
        ("simple", "simple"),
        ("a'b+c_d-e.f", "a'b+c_d-e.f"),  # bchars that are also tchars
        ("a:b", '"a:b"'),  # bchars that are not must be quoted
        ("(x)/y=z?,", '"(x)/y=z?,"'),
        ("x" * 70, "x" * 70),
    ],
)
def test_multipart_boundary_parameter(boundary: str, parameter: str) -> None:
    plan = multipart_byteranges([ByteRange(0, 0)], 1, "text/plain", boundary)
    assert plan.content_type == f"multipart/byteranges; boundary={parameter}"


@pytest.mark.parametrize("boundary", ["", "x" * 71, "a b", "a\r\nb", 'a"b', "a;b", "\u00e9"])
def test_multipart_rejects_invalid_boundaries(boundary: str) -> None:
    with pytest.raises(ValueError):
        multipart_byteranges([ByteRange(0, 0)], 1, "text/plain", boundary)


@pytest.mark.parametrize("content_type", ["text/plain\r\nX-Injected: 1", "a\nb", "a\x00", "\u00e9"])
def test_multipart_rejects_invalid_content_types(content_type: str) -> None:
    with pytest.raises(ValueError):
        multipart_byteranges([ByteRange(0, 0)], 1, content_type, "b")


def test_multipart_rejects_bad_ranges() -> None:
    with pytest.raises(ValueError):
        multipart_byteranges([], 1, "text/plain", "b")
    with pytest.raises(ValueError):
        multipart_byteranges([ByteRange(0, 1)], 1, "text/plain", "b")


def test_multipart_parses_as_mime() -> None:
    # The stdlib's MIME parser must read back each part's fields and bytes.
    ranges = parse_range("bytes=0-2,5-7,-3", len(DATA))
    assert ranges is not None
    plan = multipart_byteranges(ranges, len(DATA), "application/octet-stream", make_boundary())
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {plan.content_type}\r\n\r\n".encode() + _assemble(plan, DATA)
    )
    parts = list(message.iter_parts())
    assert [part["Content-Range"] for part in parts] == [
        "bytes 0-2/20",
        "bytes 5-7/20",
        "bytes 17-19/20",
    ]
    assert [part.get_payload(decode=True) for part in parts] == [b"abc", b"fgh", b"rst"]
    assert all(part.get_content_type() == "application/octet-stream" for part in parts)


@given(
    st.lists(st.tuples(st.integers(0, 19), st.integers(0, 19)), min_size=1, max_size=8),
    st.one_of(st.none(), st.sampled_from(["text/plain", "image/png; x=y"])),
)
def test_multipart_content_length_matches_body(
    spans: list[tuple[int, int]], content_type: str | None
) -> None:
    ranges = [ByteRange(min(a, b), max(a, b)) for a, b in spans]
    plan = multipart_byteranges(ranges, len(DATA), content_type, make_boundary())
    body = _assemble(plan, DATA)
    assert plan.content_length == len(body)
    assert body.startswith(plan.parts[0][0])
    assert body.endswith(plan.trailer)


def test_make_boundary() -> None:
    boundaries = {make_boundary() for _ in range(100)}
    assert len(boundaries) == 100
    for boundary in boundaries:
        assert re.fullmatch(f"[0-9a-f]{{{MULTIPART_BOUNDARY_LENGTH}}}", boundary)
        # A token, so Content-Type carries it unquoted.
        plan = multipart_byteranges([ByteRange(0, 0)], 1, None, boundary)
        assert plan.content_type == f"multipart/byteranges; boundary={boundary}"
