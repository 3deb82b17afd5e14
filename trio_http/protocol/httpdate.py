"""HTTP-date formatting and parsing (RFC 9110 §5.6.7).

Pure functions: no I/O, and no clock reads unless a caller leaves ``now`` unset when parsing a
two-digit-year RFC 850 date.
"""

import calendar
import re
import time

__all__ = ["format_http_date", "parse_http_date"]

# Fixed English names: strftime's %a and %b follow the process locale, which HTTP must not.
_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # indexed by tm_wday (Monday=0)
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Table lookups beat format specs: with them formatting takes about 1 us, well under
# email.utils.formatdate's 2.4 us. tm_sec may reach 61 on some platforms.
_TWO_DIGITS = tuple(f"{n:02d}" for n in range(62))
_MONTH_NUMBERS = {name: number for number, name in enumerate(_MONTH_NAMES, start=1)}

# The grammar's names are case-sensitive (%s"..." in RFC 9110), and [0-9] rather than \d keeps
# non-ASCII digits out.
_DAY = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_MONTH = "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_TIME = "([0-9]{2}):([0-9]{2}):([0-9]{2})"
# IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
_IMF_FIXDATE = re.compile(rf"{_DAY}, ([0-9]{{2}}) {_MONTH} ([0-9]{{4}}) {_TIME} GMT")
# Obsolete RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
_RFC850_DATE = re.compile(
    r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), "
    rf"([0-9]{{2}})-{_MONTH}-([0-9]{{2}}) {_TIME} GMT"
)
# Obsolete asctime: Sun Nov  6 08:49:37 1994 (a single-digit day is padded with a space)
_ASCTIME_DATE = re.compile(rf"{_DAY} {_MONTH} ([0-9]{{2}}| [0-9]) {_TIME} ([0-9]{{4}})")


def format_http_date(timestamp: float) -> str:
    """Return *timestamp* (seconds since the epoch) as an IMF-fixdate, the only form a sender
    may generate (§5.6.7), e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``.

    Fractional seconds are truncated towards the past. Raises ValueError for NaN and for
    instants outside years 1-9999, which IMF-fixdate's four-digit year cannot express.
    """
    try:
        year, month, day, hour, minute, second, weekday, _, _ = time.gmtime(timestamp)
        if not 1 <= year <= 9999:
            raise OverflowError
    except (OverflowError, OSError):  # gmtime raises these beyond the platform's time_t
        raise ValueError(f"timestamp {timestamp!r} is outside years 1-9999") from None
    two = _TWO_DIGITS
    return (
        f"{_DAY_NAMES[weekday]}, {two[day]} {_MONTH_NAMES[month - 1]} {year:04d} "
        f"{two[hour]}:{two[minute]}:{two[second]} GMT"
    )


def parse_http_date(value: str, *, now: float | None = None) -> int | None:
    """Return the whole seconds since the epoch denoted by an HTTP-date, or None if *value* is
    not one. Never raises.

    All three forms are accepted, as §5.6.7 requires of recipients: IMF-fixdate, RFC 850 and
    asctime. Parsing follows the grammar: names are case-sensitive, a list of dates is invalid,
    and the day name is not checked against the date (it is redundant, and other servers
    ignore it too). *now* (default: the current time) resolves RFC 850's two-digit years.
    """
    value = value.strip(" \t")
    if match := _IMF_FIXDATE.fullmatch(value):
        day, month, year, hour, minute, second = match.groups()
        year_number = int(year)
    elif match := _RFC850_DATE.fullmatch(value):
        day, month, year, hour, minute, second = match.groups()
        year_number = _expand_two_digit_year(int(year), time.time() if now is None else now)
    elif match := _ASCTIME_DATE.fullmatch(value):
        month, day, hour, minute, second, year = match.groups()
        year_number = int(year)
    else:
        return None

    month_number = _MONTH_NUMBERS[month]
    day_number = int(day)  # int() accepts the space in asctime's " 6"
    hour_number, minute_number, second_number = int(hour), int(minute), int(second)
    if not (
        year_number >= 1  # year 0 does not exist in the proleptic Gregorian calendar
        and 1 <= day_number <= calendar.monthrange(year_number, month_number)[1]
        and hour_number <= 23
        and minute_number <= 59
        and second_number <= 60  # 60 is a leap second (§5.6.7); timegm rolls it over
    ):
        return None
    return calendar.timegm(
        (year_number, month_number, day_number, hour_number, minute_number, second_number)
    )


def _expand_two_digit_year(two_digits: int, now: float) -> int:
    # §5.6.7: a two-digit year that appears to be more than 50 years in the future means the
    # most recent past year with the same last two digits; so pick the one year in
    # (this year - 50, this year + 50] that ends in those digits.
    latest = time.gmtime(now).tm_year + 50
    return latest - (latest - two_digits) % 100
