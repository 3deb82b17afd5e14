"""Tests for trio_http.httpdate (RFC 9110 §5.6.7)."""

import calendar
import email.utils
import math
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_http.protocol.httpdate import format_http_date, parse_http_date

RFC_EXAMPLE = 784111777  # Sun, 06 Nov 1994 08:49:37 GMT, the example of §5.6.7
FIRST_SECOND = -62135596800  # 0001-01-01T00:00:00Z
LAST_SECOND = 253402300799  # 9999-12-31T23:59:59Z


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return calendar.timegm((year, month, day, hour, minute, second))


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (RFC_EXAMPLE, "Sun, 06 Nov 1994 08:49:37 GMT"),
        (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
        (RFC_EXAMPLE + 0.999, "Sun, 06 Nov 1994 08:49:37 GMT"),  # truncated
        (-0.5, "Wed, 31 Dec 1969 23:59:59 GMT"),  # towards the past, not towards zero
        (_utc(2000, 2, 29, 23, 59, 59), "Tue, 29 Feb 2000 23:59:59 GMT"),
        (_utc(2023, 3, 6, 1, 2, 3), "Mon, 06 Mar 2023 01:02:03 GMT"),
        (FIRST_SECOND, "Mon, 01 Jan 0001 00:00:00 GMT"),
        (LAST_SECOND, "Fri, 31 Dec 9999 23:59:59 GMT"),
    ],
)
def test_format_http_date(timestamp: float, expected: str) -> None:
    assert format_http_date(timestamp) == expected


@pytest.mark.parametrize("day", range(14))
def test_format_http_date_names_agree_with_email_utils(day: int) -> None:
    # Two weeks at a 31-day-and-a-bit stride covers every day and month name.
    timestamp = RFC_EXAMPLE + day * (31 * 86400 + 3661)
    assert format_http_date(timestamp) == email.utils.formatdate(timestamp, usegmt=True)


@pytest.mark.parametrize(
    "timestamp", [LAST_SECOND + 1, FIRST_SECOND - 1, 1e20, -1e20, math.inf, math.nan]
)
def test_format_http_date_out_of_range(timestamp: float) -> None:
    with pytest.raises(ValueError):
        format_http_date(timestamp)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # The three forms of §5.6.7's example.
        ("Sun, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE),
        ("Sunday, 06-Nov-94 08:49:37 GMT", RFC_EXAMPLE),
        ("Sun Nov  6 08:49:37 1994", RFC_EXAMPLE),
        # asctime's date3 also allows a two-digit day with a leading zero.
        ("Sun Nov 06 08:49:37 1994", RFC_EXAMPLE),
        ("Thu Nov 17 08:49:37 1994", RFC_EXAMPLE + 11 * 86400),
        # Field values arrive trimmed, but surrounding OWS costs nothing to tolerate.
        ("  Sun, 06 Nov 1994 08:49:37 GMT\t", RFC_EXAMPLE),
        # The day name is redundant and not cross-checked.
        ("Mon, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE),
        ("Tue, 29 Feb 2000 00:00:00 GMT", _utc(2000, 2, 29)),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0),
        ("Wed, 31 Dec 1969 23:59:59 GMT", -1),
        ("Mon, 01 Jan 0001 00:00:00 GMT", FIRST_SECOND),
        ("Fri, 31 Dec 9999 23:59:59 GMT", LAST_SECOND),
        # A leap second (second = 60) is allowed and denotes the next minute's first second.
        ("Sat, 31 Dec 2016 23:59:60 GMT", _utc(2017, 1, 1)),
    ],
)
def test_parse_http_date(value: str, expected: int) -> None:
    assert parse_http_date(value, now=_utc(2024, 6, 1)) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "garbage",
        "784111777",
        "1994-11-06T08:49:37Z",
        # Names are case-sensitive (%s"..." in the grammar).
        "sun, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 gmt",
        "SUNDAY, 06-Nov-94 08:49:37 GMT",
        # Other zones and missing zones.
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37 +0000",
        "Sun, 06 Nov 1994 08:49:37",
        "Sunday, 06-Nov-94 08:49:37",
        "Sun Nov  6 08:49:37 1994 GMT",
        # Wrong widths: IMF-fixdate wants 2-digit day and 4-digit year, RFC 850 a 2-digit year.
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sun Nov 6 08:49:37 1994",
        "Sun, 06 Nov 1994 8:49:37 GMT",
        # Wrong day-name forms for each format.
        "Sunday, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06-Nov-94 08:49:37 GMT",
        "Sunday Nov  6 08:49:37 1994",
        # Extra or missing spaces and trailing text.
        "Sun,  06 Nov 1994 08:49:37 GMT",
        "Sun,06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT x",
        "Sun, 06 Nov 1994 08:49:37 GMTGMT",
        # A list of dates is not a date (§13.1.3, §13.1.4).
        "Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT",
        # Out-of-range fields.
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 31 Nov 1994 08:49:37 GMT",
        "Sun, 32 Dec 1994 08:49:37 GMT",
        "Thu, 29 Feb 1900 00:00:00 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:37 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sat, 01 Jan 0000 00:00:00 GMT",
        "Sun Nov  0 08:49:37 1994",
        "Sunday, 31-Apr-94 08:49:37 GMT",
        # Non-ASCII digits, which \d would have accepted.
        "Sun, \u0660\u0666 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov \uff11\uff19\uff19\uff14 08:49:37 GMT",
    ],
)
def test_parse_http_date_invalid(value: str) -> None:
    assert parse_http_date(value, now=_utc(2024, 6, 1)) is None


@pytest.mark.parametrize(
    ("now_year", "two_digits", "year"),
    [
        # §5.6.7: a year more than 50 years in the future means the most recent past one.
        (2024, 94, 1994),
        (2024, 24, 2024),
        (2024, 0, 2000),
        (2024, 74, 2074),  # exactly 50 years ahead is not "more than 50"
        (2024, 75, 1975),
        (2099, 0, 2100),  # the window crosses the century
        (2099, 49, 2149),
        (2099, 50, 2050),
        (2000, 50, 2050),
        (2000, 51, 1951),
    ],
)
def test_parse_rfc850_two_digit_year(now_year: int, two_digits: int, year: int) -> None:
    value = f"Sunday, 06-Nov-{two_digits:02d} 08:49:37 GMT"
    now = _utc(now_year, 7, 1)
    assert parse_http_date(value, now=now) == _utc(year, 11, 6, 8, 49, 37)


def test_parse_rfc850_defaults_to_the_current_time() -> None:
    value = "Sunday, 06-Nov-94 08:49:37 GMT"
    assert parse_http_date(value) == parse_http_date(value, now=time.time())


@given(st.integers(min_value=FIRST_SECOND, max_value=LAST_SECOND))
def test_format_parse_round_trip(timestamp: int) -> None:
    assert parse_http_date(format_http_date(timestamp)) == timestamp


@given(st.floats(min_value=FIRST_SECOND, max_value=LAST_SECOND))
def test_format_parse_round_trip_floors_fractions(timestamp: float) -> None:
    assert parse_http_date(format_http_date(timestamp)) == math.floor(timestamp)


@given(st.text())
def test_parse_http_date_never_raises(value: str) -> None:
    result = parse_http_date(value)
    assert result is None or isinstance(result, int)


@given(
    st.from_regex(
        r"\A(Mon|Sun|Sunday|Monday),? [0-9 ]{1,2}[ -](Jan|Feb|Nov)[ -][0-9]{2,4} "
        r"[0-9]{2}:[0-9]{2}:[0-9]{2}( GMT| [0-9]{4})?\Z"
    )
)
def test_parse_http_date_near_misses_never_raise(value: str) -> None:
    # Text shaped like a date, so the field-range checks get exercised, not just the regexes.
    result = parse_http_date(value)
    if result is not None:
        assert FIRST_SECOND <= result <= LAST_SECOND + 1
