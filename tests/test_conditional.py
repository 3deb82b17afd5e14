"""Tests for trio_http.conditional (RFC 9110 §8.8 and §13)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_http.protocol.conditional import (
    STRONG_LAST_MODIFIED_AGE,
    EntityTag,
    Precondition,
    etag_matches_strong,
    etag_matches_weak,
    evaluate_preconditions,
    if_range_allows_partial,
    make_etag,
    parse_entity_tag,
    parse_entity_tag_list,
)
from trio_http.protocol.httpdate import format_http_date

PROCEED = Precondition.PROCEED
NOT_MODIFIED = Precondition.NOT_MODIFIED
FAILED = Precondition.PRECONDITION_FAILED

ETAG = '"v1"'
LAST_MODIFIED = 784111777
AT = format_http_date(LAST_MODIFIED)  # Sun, 06 Nov 1994 08:49:37 GMT
BEFORE = format_http_date(LAST_MODIFIED - 1)
AFTER = format_http_date(LAST_MODIFIED + 1)
FUTURE = "Fri, 01 Jan 2100 00:00:00 GMT"


# --- entity-tags ---------------------------------------------------------------------------


def test_make_etag() -> None:
    etag = make_etag(1234, 500, 1_700_000_000_123_456_789)
    assert etag == '"4d2-1f4-17979cfe3d85cd15"'
    assert parse_entity_tag(etag) == EntityTag("4d2-1f4-17979cfe3d85cd15", weak=False)


@pytest.mark.parametrize(
    ("inode", "size", "mtime_ns"),
    [(2, 500, 1_700_000_000_123_456_789), (1, 501, 1_700_000_000_123_456_789), (1, 500, 0)],
)
def test_make_etag_changes_with_each_input(inode: int, size: int, mtime_ns: int) -> None:
    assert make_etag(inode, size, mtime_ns) != make_etag(1, 500, 1_700_000_000_123_456_789)


def test_make_etag_before_the_epoch_is_still_valid() -> None:
    assert parse_entity_tag(make_etag(1, 2, -5)) == EntityTag("1-2--5")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"xyzzy"', EntityTag("xyzzy")),
        ('W/"xyzzy"', EntityTag("xyzzy", weak=True)),
        ('""', EntityTag("")),
        ('W/""', EntityTag("", weak=True)),
        (' "a" ', EntityTag("a")),
        ('"a,b"', EntityTag("a,b")),  # a comma is an etagc
        ('"!#~"', EntityTag("!#~")),
        ('"\x80\xff"', EntityTag("\x80\xff")),  # obs-text
        ('"a', None),
        ("a", None),
        ("*", None),
        ('w/"a"', None),  # %s"W/" is case-sensitive
        ('W/ "a"', None),
        ('"a b"', None),  # SP is not an etagc
        ('"a"b"', None),
        ('"\x7f"', None),  # DEL is not a VCHAR
        ('"\u0101"', None),  # beyond obs-text
        ('"a", "b"', None),
        ("", None),
    ],
)
def test_parse_entity_tag(value: str, expected: EntityTag | None) -> None:
    assert parse_entity_tag(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"a"', ("a",)),
        ('"a","b"', ("a", "b")),
        (' "a" ,\t"b" ', ("a", "b")),
        ('W/"a", "b"', ("W/a", "b")),
        ('"a,b", "c"', ("a,b", "c")),  # commas inside quotes do not split
        ('"a\\"b"', None),  # no quoted-pairs: the second DQUOTE ends the tag
        (',"a",, ,"b",', ("a", "b")),  # empty list elements are allowed (§5.6.1)
        ("", ()),
        (" , ,", ()),
        ('"a" "b"', None),
        ('"a""b"', None),
        ('"a"x', None),
        ('"a", b', None),
        ("a", None),
        ("*", None),
        ('*, "a"', None),
        ('"a", *', None),
        ('"a', None),
    ],
)
def test_parse_entity_tag_list(value: str, expected: tuple[str, ...] | None) -> None:
    tags = parse_entity_tag_list(value)
    if expected is None:
        assert tags is None
    else:
        assert tags is not None
        assert tuple(f"W/{t.opaque}" if t.weak else t.opaque for t in tags) == expected


def test_parse_entity_tag_list_is_linear_on_hostile_input() -> None:
    # A single regex over the list backtracked quadratically here; the scan must not.
    assert parse_entity_tag_list(" ," * 100_000 + "x") is None
    assert parse_entity_tag_list('"a" ,' * 100_000 + '"b') is None


@given(st.lists(st.tuples(st.booleans(), st.from_regex(r"\A[!#-~]*\Z")), max_size=5))
def test_parse_entity_tag_list_round_trip(specs: list[tuple[bool, str]]) -> None:
    tags = [EntityTag(opaque, weak=weak) for weak, opaque in specs]
    assert parse_entity_tag_list(" , ".join(map(str, tags))) == tuple(tags)


@given(st.text())
def test_parsers_never_raise(value: str) -> None:
    parse_entity_tag(value)
    parse_entity_tag_list(value)


# §8.8.3.2's example table.
@pytest.mark.parametrize(
    ("a", "b", "strong", "weak"),
    [
        ('W/"1"', 'W/"1"', False, True),
        ('W/"1"', 'W/"2"', False, False),
        ('W/"1"', '"1"', False, True),
        ('"1"', '"1"', True, True),
        ('"1"', '"2"', False, False),
        ('"1"', "1", False, False),  # malformed never matches
        ("*", "*", False, False),
    ],
)
def test_comparison(a: str, b: str, strong: bool, weak: bool) -> None:
    assert etag_matches_strong(a, b) is strong
    assert etag_matches_strong(b, a) is strong
    assert etag_matches_weak(a, b) is weak
    assert etag_matches_weak(b, a) is weak


def test_entity_tag_str() -> None:
    assert str(EntityTag("x")) == '"x"'
    assert str(EntityTag("x", weak=True)) == 'W/"x"'


# --- evaluate_preconditions ----------------------------------------------------------------


def _evaluate(
    method: str,
    *,
    if_match: str | None = None,
    if_none_match: str | None = None,
    if_modified_since: str | None = None,
    if_unmodified_since: str | None = None,
    etag: str | None = ETAG,
    last_modified: int | None = LAST_MODIFIED,
    exists: bool = True,
) -> Precondition:
    return evaluate_preconditions(
        method,
        if_match=if_match,
        if_none_match=if_none_match,
        if_modified_since=if_modified_since,
        if_unmodified_since=if_unmodified_since,
        etag=etag,
        last_modified=last_modified,
        exists=exists,
    )


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "POST", "DELETE"])
def test_no_preconditions(method: str) -> None:
    assert _evaluate(method) is PROCEED


@pytest.mark.parametrize(
    ("method", "if_match", "exists", "expected"),
    [
        # §13.1.1: strong comparison against the current entity-tag.
        ("PUT", '"v1"', True, PROCEED),
        ("PUT", '"v0", "v1"', True, PROCEED),
        ("PUT", ' , "v1" ,', True, PROCEED),
        ("PUT", '"v2"', True, FAILED),
        ("PUT", 'W/"v1"', True, FAILED),  # weak tags never match strongly
        ("PUT", "", True, FAILED),  # an empty list matches nothing
        ("PUT", '"v1', True, FAILED),  # malformed: refuse rather than write blindly
        ("PUT", "v1", True, FAILED),
        ("GET", '"v2"', True, FAILED),  # If-Match applies to GET too
        ("DELETE", '"v2"', True, FAILED),
        # "*" is true iff a current representation exists.
        ("PUT", "*", True, PROCEED),
        ("PUT", " * ", True, PROCEED),
        ("PUT", "*", False, FAILED),
        ("PUT", '"v1"', False, FAILED),
    ],
)
def test_if_match(method: str, if_match: str, exists: bool, expected: Precondition) -> None:
    assert _evaluate(method, if_match=if_match, exists=exists) is expected


def test_if_match_with_a_weak_current_etag_never_matches() -> None:
    assert _evaluate("PUT", if_match='W/"v1"', etag='W/"v1"') is FAILED
    assert _evaluate("PUT", if_match='"v1"', etag='W/"v1"') is FAILED
    assert _evaluate("PUT", if_match="*", etag='W/"v1"') is PROCEED


def test_if_match_without_a_current_etag() -> None:
    assert _evaluate("PUT", if_match='"v1"', etag=None) is FAILED
    assert _evaluate("PUT", if_match="*", etag=None) is PROCEED


@pytest.mark.parametrize(
    ("method", "if_unmodified_since", "last_modified", "expected"),
    [
        # §13.1.4: true iff Last-Modified is earlier than or equal to the date.
        ("PUT", AT, LAST_MODIFIED, PROCEED),
        ("PUT", AFTER, LAST_MODIFIED, PROCEED),
        ("PUT", BEFORE, LAST_MODIFIED, FAILED),
        ("GET", BEFORE, LAST_MODIFIED, FAILED),
        ("PUT", "Sunday, 06-Nov-94 08:49:36 GMT", LAST_MODIFIED, FAILED),  # obsolete forms
        ("PUT", "Sun Nov  6 08:49:36 1994", LAST_MODIFIED, FAILED),
        # Ignored: an invalid date, a list of dates, no modification date.
        ("PUT", "yesterday", LAST_MODIFIED, PROCEED),
        ("PUT", f"{BEFORE}, {BEFORE}", LAST_MODIFIED, PROCEED),
        ("PUT", BEFORE, None, PROCEED),
    ],
)
def test_if_unmodified_since(
    method: str, if_unmodified_since: str, last_modified: int | None, expected: Precondition
) -> None:
    result = _evaluate(method, if_unmodified_since=if_unmodified_since, last_modified=last_modified)
    assert result is expected


@pytest.mark.parametrize(
    ("method", "if_none_match", "exists", "expected"),
    [
        # §13.1.2: weak comparison; a match is 304 for GET/HEAD and 412 otherwise.
        ("GET", '"v1"', True, NOT_MODIFIED),
        ("HEAD", '"v1"', True, NOT_MODIFIED),
        ("GET", 'W/"v1"', True, NOT_MODIFIED),
        ("GET", '"v0", W/"v1"', True, NOT_MODIFIED),
        ("GET", '"v2"', True, PROCEED),
        ("GET", "", True, PROCEED),
        ("GET", '"v1', True, PROCEED),  # malformed lists match nothing
        ("PUT", '"v1"', True, FAILED),
        ("PUT", 'W/"v1"', True, FAILED),  # weak comparison for every method
        ("POST", '"v1"', True, FAILED),
        ("DELETE", '"v1"', True, FAILED),
        ("PUT", '"v2"', True, PROCEED),
        # "*" is false iff a current representation exists: PUT create-only.
        ("GET", "*", True, NOT_MODIFIED),
        ("PUT", "*", True, FAILED),
        ("PUT", "*", False, PROCEED),
        ("PUT", '"v1"', False, PROCEED),
        ("GET", "*", False, PROCEED),  # (the caller answers 404 before asking)
    ],
)
def test_if_none_match(
    method: str, if_none_match: str, exists: bool, expected: Precondition
) -> None:
    assert _evaluate(method, if_none_match=if_none_match, exists=exists) is expected


def test_if_none_match_with_a_weak_current_etag() -> None:
    assert _evaluate("GET", if_none_match='"v1"', etag='W/"v1"') is NOT_MODIFIED
    assert _evaluate("GET", if_none_match='W/"v1"', etag='W/"v1"') is NOT_MODIFIED


def test_if_none_match_without_a_current_etag() -> None:
    assert _evaluate("GET", if_none_match='"v1"', etag=None) is PROCEED
    assert _evaluate("GET", if_none_match="*", etag=None) is NOT_MODIFIED


@pytest.mark.parametrize(
    ("method", "if_modified_since", "last_modified", "expected"),
    [
        # §13.1.3: false (304) iff Last-Modified is earlier than or equal to the date.
        ("GET", AT, LAST_MODIFIED, NOT_MODIFIED),
        ("HEAD", AT, LAST_MODIFIED, NOT_MODIFIED),
        ("GET", AFTER, LAST_MODIFIED, NOT_MODIFIED),
        ("GET", BEFORE, LAST_MODIFIED, PROCEED),
        ("GET", "Sunday, 06-Nov-94 08:49:37 GMT", LAST_MODIFIED, NOT_MODIFIED),
        ("GET", "Sun Nov  6 08:49:37 1994", LAST_MODIFIED, NOT_MODIFIED),
        # A date later than the server's clock is compared like any other (documented).
        ("GET", FUTURE, LAST_MODIFIED, NOT_MODIFIED),
        # Ignored: not GET/HEAD, an invalid date, a list of dates, no modification date.
        ("PUT", AT, LAST_MODIFIED, PROCEED),
        ("POST", AT, LAST_MODIFIED, PROCEED),
        ("DELETE", AT, LAST_MODIFIED, PROCEED),
        ("GET", "not a date", LAST_MODIFIED, PROCEED),
        ("GET", f"{AT}, {AT}", LAST_MODIFIED, PROCEED),
        ("GET", AT, None, PROCEED),
    ],
)
def test_if_modified_since(
    method: str, if_modified_since: str, last_modified: int | None, expected: Precondition
) -> None:
    result = _evaluate(method, if_modified_since=if_modified_since, last_modified=last_modified)
    assert result is expected


def test_last_modified_is_compared_in_whole_seconds() -> None:
    # The caller truncates its mtime; a date within the same second is "not modified".
    assert _evaluate("GET", if_modified_since=AT, last_modified=LAST_MODIFIED) is NOT_MODIFIED
    assert _evaluate("GET", if_modified_since=BEFORE, last_modified=LAST_MODIFIED) is PROCEED


# The precedence of §13.2.2, one row per interaction. Columns: method, If-Match,
# If-Unmodified-Since, If-None-Match, If-Modified-Since, expected.
PRECEDENCE = [
    # Step 1 before everything: a failing If-Match wins over a matching If-None-Match.
    ("GET", '"v2"', None, '"v1"', None, FAILED),
    ("GET", '"v2"', None, None, AT, FAILED),
    # Step 1 passing skips step 2: If-Unmodified-Since is ignored under If-Match.
    ("PUT", '"v1"', BEFORE, None, None, PROCEED),
    ("PUT", "*", BEFORE, None, None, PROCEED),
    # Step 1 passing continues to step 3.
    ("GET", '"v1"', None, '"v1"', None, NOT_MODIFIED),
    ("PUT", '"v1"', None, '"v1"', None, FAILED),
    ("GET", '"v1"', None, None, AT, NOT_MODIFIED),
    # Step 2 failing wins over step 3 and 4.
    ("GET", None, BEFORE, '"v1"', None, FAILED),
    ("GET", None, BEFORE, None, AT, FAILED),
    # Step 2 passing continues.
    ("GET", None, AT, '"v1"', None, NOT_MODIFIED),
    ("GET", None, AT, None, AT, NOT_MODIFIED),
    ("GET", None, AT, '"v2"', None, PROCEED),
    # Step 3 makes step 4 irrelevant: If-Modified-Since is ignored under If-None-Match,
    # whether or not a tag matches.
    ("GET", None, None, '"v2"', AT, PROCEED),
    ("GET", None, None, '"v1"', BEFORE, NOT_MODIFIED),
    ("GET", None, None, "", AT, PROCEED),
    ("GET", None, None, '"malformed', AT, PROCEED),
    # Step 4 alone.
    ("GET", None, None, None, AT, NOT_MODIFIED),
    ("GET", None, None, None, BEFORE, PROCEED),
    # All four, everything passing.
    ("GET", '"v1"', BEFORE, '"v2"', AT, PROCEED),
    # Invalid dates are ignored rather than failing.
    ("GET", None, "garbage", '"v1"', None, NOT_MODIFIED),
    ("GET", None, "garbage", None, "garbage", PROCEED),
]


@pytest.mark.parametrize(
    ("method", "if_match", "if_unmodified_since", "if_none_match", "if_modified_since", "expected"),
    PRECEDENCE,
)
def test_precedence(
    method: str,
    if_match: str | None,
    if_unmodified_since: str | None,
    if_none_match: str | None,
    if_modified_since: str | None,
    expected: Precondition,
) -> None:
    result = _evaluate(
        method,
        if_match=if_match,
        if_unmodified_since=if_unmodified_since,
        if_none_match=if_none_match,
        if_modified_since=if_modified_since,
    )
    assert result is expected


@pytest.mark.parametrize("method", ["CONNECT", "OPTIONS", "TRACE"])
def test_methods_without_a_representation_ignore_preconditions(method: str) -> None:
    # §13.2.1
    assert _evaluate(method, if_match='"v2"', if_none_match='"v1"') is PROCEED


def test_missing_resource_disregards_validators() -> None:
    # exists=False wins over an etag and date passed by mistake.
    assert _evaluate("PUT", if_match='"v1"', exists=False) is FAILED
    assert _evaluate("PUT", if_unmodified_since=BEFORE, exists=False) is PROCEED
    assert _evaluate("GET", if_modified_since=AT, exists=False) is PROCEED


def test_invalid_current_etag_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="invalid entity-tag"):
        _evaluate("GET", etag="v1")


# --- If-Range ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("if_range", "etag", "last_modified", "expected"),
    [
        (None, ETAG, LAST_MODIFIED, True),
        (None, None, None, True),
        # An entity-tag must match strongly (§13.1.5).
        ('"v1"', ETAG, LAST_MODIFIED, True),
        (' "v1" ', ETAG, LAST_MODIFIED, True),
        ('"v2"', ETAG, LAST_MODIFIED, False),
        ('W/"v1"', ETAG, LAST_MODIFIED, False),
        ('W/"v1"', 'W/"v1"', LAST_MODIFIED, False),
        ('"v1"', 'W/"v1"', LAST_MODIFIED, False),
        ('"v1"', None, LAST_MODIFIED, False),
        ('"v1', ETAG, LAST_MODIFIED, False),
        ('"v1", "v2"', ETAG, LAST_MODIFIED, False),  # one validator, not a list
        # A date must equal Last-Modified exactly.
        (AT, ETAG, LAST_MODIFIED, True),
        (AT, None, LAST_MODIFIED, True),
        ("Sunday, 06-Nov-94 08:49:37 GMT", None, LAST_MODIFIED, True),
        (BEFORE, None, LAST_MODIFIED, False),
        (AFTER, None, LAST_MODIFIED, False),
        (AT, None, None, False),
        ("garbage", ETAG, LAST_MODIFIED, False),
        ("", ETAG, LAST_MODIFIED, False),
    ],
)
def test_if_range(
    if_range: str | None, etag: str | None, last_modified: int | None, expected: bool
) -> None:
    result = if_range_allows_partial(if_range, etag=etag, last_modified=last_modified)
    assert result is expected


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (STRONG_LAST_MODIFIED_AGE, True),
        (10 * 86400, True),
        (STRONG_LAST_MODIFIED_AGE - 0.5, False),
        (0, False),
        (-5, False),  # a modification time in the future cannot be trusted either
    ],
)
def test_if_range_date_must_be_strong(age: float, expected: bool) -> None:
    # §8.8.2.2: a recently modified file's Last-Modified is a weak validator.
    now = LAST_MODIFIED + age
    result = if_range_allows_partial(AT, etag=ETAG, last_modified=LAST_MODIFIED, now=now)
    assert result is expected


def test_if_range_now_does_not_affect_entity_tags() -> None:
    assert if_range_allows_partial(ETAG, etag=ETAG, last_modified=LAST_MODIFIED, now=0)


def test_if_range_invalid_current_etag_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="invalid entity-tag"):
        if_range_allows_partial('"v1"', etag="v1", last_modified=None)
