"""Validators and conditional requests (RFC 9110 §8.8 and §13).

Header values are passed as plain ``str | None``; a field received on several lines must be
combined first by joining the lines with ", " (§5.3). For the date fields that turns several
values into an invalid date, which is then ignored as §13.1.3 and §13.1.4 require.
"""

import enum
import re
from dataclasses import dataclass

from .httpdate import parse_http_date

__all__ = [
    "STRONG_LAST_MODIFIED_AGE",
    "EntityTag",
    "Precondition",
    "etag_matches_strong",
    "etag_matches_weak",
    "evaluate_preconditions",
    "if_range_allows_partial",
    "make_etag",
    "parse_entity_tag",
    "parse_entity_tag_list",
]

# §8.8.3: entity-tag = [ %s"W/" ] DQUOTE *etagc DQUOTE, where etagc is any VCHAR except DQUOTE,
# or obs-text. A comma is an etagc, so a list cannot simply be split on commas.
_ENTITY_TAG = re.compile(r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"')

# §13.2.1: preconditions are ignored for methods that neither select nor modify a
# representation.
_UNCONDITIONAL_METHODS = frozenset({"CONNECT", "OPTIONS", "TRACE"})

# §8.8.2.2 lets an origin server treat a Last-Modified date as strong only if it knows the
# representation did not change twice within that second. Like Apache httpd, we take a file
# untouched for a minute to be stable; the margin also absorbs clock adjustments.
STRONG_LAST_MODIFIED_AGE = 60


@dataclass(frozen=True, slots=True)
class EntityTag:
    """A parsed entity-tag: the characters between the quotes, and the weakness flag."""

    opaque: str
    weak: bool = False

    def __str__(self) -> str:
        return f'{"W/" if self.weak else ""}"{self.opaque}"'

    def matches_strong(self, other: "EntityTag") -> bool:
        """Return whether the tags are equal under strong comparison (§8.8.3.2)."""
        return not self.weak and not other.weak and self.opaque == other.opaque

    def matches_weak(self, other: "EntityTag") -> bool:
        """Return whether the tags are equal under weak comparison (§8.8.3.2)."""
        return self.opaque == other.opaque


class Precondition(enum.Enum):
    """The outcome of :func:`evaluate_preconditions`."""

    PROCEED = "proceed"  # perform the method
    NOT_MODIFIED = "not-modified"  # respond 304 (§15.4.5)
    PRECONDITION_FAILED = "precondition-failed"  # respond 412 (§15.5.13)


def make_etag(inode: int, size: int, mtime_ns: int) -> str:
    """Return a strong entity-tag for a file, e.g. ``"4d2-1f4-17c1a2b3c4d5e6f7"``.

    Nanosecond mtime makes the tag change on rewrites within the same second, where
    Last-Modified cannot; the size and inode catch truncation and replacement by rename.
    """
    return f'"{inode:x}-{size:x}-{mtime_ns:x}"'


def parse_entity_tag(value: str) -> EntityTag | None:
    """Return the single entity-tag in *value* (an ETag or If-Range value), or None if
    *value* is not exactly one entity-tag.
    """
    match = _ENTITY_TAG.fullmatch(value.strip(" \t"))
    if match is None:
        return None
    return EntityTag(match[2], weak=match[1] is not None)


def parse_entity_tag_list(value: str) -> tuple[EntityTag, ...] | None:
    """Return the entity-tags of an If-Match or If-None-Match list (``#entity-tag``), or None
    if *value* is malformed. ``*`` is not a list: callers check for it first.

    An empty list (only OWS and commas) is valid and returns ``()``.
    """
    # A hand-written scan rather than one regex for the whole list: nested quantifiers over
    # separators backtrack quadratically on hostile input.
    tags: list[EntityTag] = []
    pos, end = 0, len(value)
    while True:
        # §5.6.1: OWS around commas, and empty elements, which recipients must accept.
        while pos < end and value[pos] in " \t,":
            pos += 1
        if pos == end:
            return tuple(tags)
        match = _ENTITY_TAG.match(value, pos)
        if match is None:
            return None
        tags.append(EntityTag(match[2], weak=match[1] is not None))
        pos = match.end()
        while pos < end and value[pos] in " \t":
            pos += 1
        if pos < end and value[pos] != ",":  # '"a" "b"' or '"a"x'
            return None


def etag_matches_strong(a: str, b: str) -> bool:
    """Return whether two serialized entity-tags match by strong comparison; False if either
    is malformed.
    """
    tag_a, tag_b = parse_entity_tag(a), parse_entity_tag(b)
    return tag_a is not None and tag_b is not None and tag_a.matches_strong(tag_b)


def etag_matches_weak(a: str, b: str) -> bool:
    """Return whether two serialized entity-tags match by weak comparison; False if either is
    malformed.
    """
    tag_a, tag_b = parse_entity_tag(a), parse_entity_tag(b)
    return tag_a is not None and tag_b is not None and tag_a.matches_weak(tag_b)


def evaluate_preconditions(
    method: str,
    *,
    if_match: str | None,
    if_none_match: str | None,
    if_modified_since: str | None,
    if_unmodified_since: str | None,
    etag: str | None,
    last_modified: int | None,
    exists: bool = True,
) -> Precondition:
    """Evaluate a request's preconditions in the order of RFC 9110 §13.2.2.

    *etag* is the selected representation's ETag value and *last_modified* its modification
    time in whole seconds since the epoch; either may be None if the resource has none.
    Pass ``exists=False`` when the target has no current representation (e.g. a PUT that
    would create it); *etag* and *last_modified* are then disregarded.

    Returns PRECONDITION_FAILED (412), NOT_MODIFIED (304) or PROCEED. The caller stays
    responsible for §13.2.1: preconditions are only evaluated when the response would
    otherwise be 2xx (so a GET of a missing file answers 404 without calling this), and a 412
    may be replaced by a success status when the state change is known to have already
    happened (§13.1.1). If-Range is evaluated separately by :func:`if_range_allows_partial`.
    Raises ValueError if *etag* is not a valid entity-tag.
    """
    if method in _UNCONDITIONAL_METHODS:
        return Precondition.PROCEED
    current_etag: EntityTag | None = None
    if not exists:
        last_modified = None
    elif etag is not None:
        current_etag = parse_entity_tag(etag)
        if current_etag is None:
            raise ValueError(f"invalid entity-tag {etag!r}")
    is_get_or_head = method in ("GET", "HEAD")

    # Step 1: If-Match, strong comparison (§13.1.1).
    if if_match is not None:
        if not _if_match_passes(if_match, current_etag, exists):
            return Precondition.PRECONDITION_FAILED
    # Step 2: If-Unmodified-Since, only without If-Match (§13.1.4). Ignored when the date is
    # invalid or the resource has no modification date (which §13.1.4 permits).
    elif if_unmodified_since is not None and last_modified is not None:
        date = parse_http_date(if_unmodified_since)
        if date is not None and last_modified > date:
            return Precondition.PRECONDITION_FAILED

    # Step 3: If-None-Match, weak comparison (§13.1.2).
    if if_none_match is not None:
        if not _if_none_match_passes(if_none_match, current_etag, exists):
            return Precondition.NOT_MODIFIED if is_get_or_head else Precondition.PRECONDITION_FAILED
    # Step 4: If-Modified-Since, only for GET/HEAD without If-None-Match (§13.1.3). A date
    # later than the server's clock is compared like any other: RFC 9110 no longer calls it
    # invalid (RFC 2616 §14.25 did), and comparing keeps this function free of clock reads.
    # Only the client that sent it is misled, by a 304 for a change made before that date.
    elif is_get_or_head and if_modified_since is not None and last_modified is not None:
        date = parse_http_date(if_modified_since)
        if date is not None and last_modified <= date:
            return Precondition.NOT_MODIFIED

    return Precondition.PROCEED


def if_range_allows_partial(
    if_range: str | None,
    *,
    etag: str | None,
    last_modified: int | None,
    now: float | None = None,
) -> bool:
    """Return whether a Range request may be answered with 206 under its If-Range (§13.1.5);
    False means the Range header must be ignored and the whole representation sent. True
    when *if_range* is None.

    An entity-tag must match *etag* by strong comparison, so a weak tag on either side never
    matches. A date must equal *last_modified* exactly, and must be a strong validator
    (§8.8.2.2): when *now* is given, a Last-Modified less than
    ``STRONG_LAST_MODIFIED_AGE`` seconds before it counts as weak and does not match. Pass
    *now* unless the caller knows its Last-Modified values are strong. A malformed value
    never matches. Raises ValueError if *etag* is not a valid entity-tag.
    """
    if if_range is None:
        return True
    if_range = if_range.strip(" \t")
    # §13.1.5: the field holds an entity-tag or an HTTP-date; only an entity-tag starts with
    # a quote or "W/".
    if if_range.startswith(('"', "W/")):
        if etag is None:
            return False
        current = parse_entity_tag(etag)
        if current is None:
            raise ValueError(f"invalid entity-tag {etag!r}")
        requested = parse_entity_tag(if_range)
        return requested is not None and requested.matches_strong(current)
    if last_modified is None:
        return False
    if now is not None and now < last_modified + STRONG_LAST_MODIFIED_AGE:
        return False
    return parse_http_date(if_range) == last_modified


def _if_match_passes(field: str, etag: EntityTag | None, exists: bool) -> bool:
    # §13.1.1: "*" is true iff a current representation exists; otherwise true iff a listed
    # tag strongly matches. A malformed list matches nothing, so a write is refused rather
    # than performed unconditionally.
    if field.strip(" \t") == "*":
        return exists
    tags = parse_entity_tag_list(field)
    return etag is not None and tags is not None and any(t.matches_strong(etag) for t in tags)


def _if_none_match_passes(field: str, etag: EntityTag | None, exists: bool) -> bool:
    # §13.1.2: "*" is false iff a current representation exists; otherwise false iff a listed
    # tag weakly matches. A malformed list matches nothing: the field still counts as present
    # (so If-Modified-Since stays ignored), but can never produce a 304 or 412.
    if field.strip(" \t") == "*":
        return not exists
    tags = parse_entity_tag_list(field)
    return etag is None or tags is None or not any(t.matches_weak(etag) for t in tags)
