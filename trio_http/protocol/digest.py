"""Digest fields (RFC 9530): parse, choose and format ``Content-Digest``, ``Repr-Digest`` and
their preference fields ``Want-Content-Digest`` and ``Want-Repr-Digest``.

All four are Structured Field Dictionaries (RFC 8941 §3.2), parsed here by the algorithm of
RFC 8941 §4.2.2.  Integrity fields map a hashing algorithm to a Byte Sequence (RFC 9530 §2,
§3); preference fields map it to an Integer weight from 0 to 10, where 0 means "not
acceptable" (§4).

Only the "Active" algorithms of the IANA registry are used: ``sha-256`` and ``sha-512``
(§5).  Members naming any other algorithm, unknown or "Deprecated" (``md5``, ``sha``,
``unixsum`` ...), are ignored whatever their value, since "a recipient MAY ignore any or all
digests" (§2, §3) and deprecated ones "MUST NOT be used in a potentially adversarial
setting" (§5).

Malformed input raises :class:`DigestFieldError` (a ``ValueError``): a field that is not a
valid Dictionary, a supported algorithm whose value has the wrong type, a weight outside
0-10, or a digest of the wrong length for its algorithm.  The last is treated as malformed,
not as a mismatch: the value must be "the byte output produced by the digest calculation"
(§2), which for SHA-256 is always 32 bytes (RFC 6234), so no body can match it; rejecting it
before the body is read spares the client the upload.

Pure: no I/O, no trio.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "ALGORITHMS",
    "DigestFieldError",
    "ExpectedDigest",
    "choose_algorithm",
    "compute_digest",
    "expected_from_fields",
    "format_digest_field",
    "new_hash",
    "parse_dictionary",
    "parse_digest_field",
    "parse_want_field",
]

#: RFC 9530 algorithm keys we compute, in the server's order of preference, with the
#: hashlib name and the digest length in bytes.
ALGORITHMS: dict[str, tuple[str, int]] = {"sha-256": ("sha256", 32), "sha-512": ("sha512", 64)}


class DigestFieldError(ValueError):
    """A digest or preference field that cannot be used; ``str()`` says which and why."""


def new_hash(algorithm: str) -> hashlib._Hash:
    """A fresh hash object for *algorithm* (a key of :data:`ALGORITHMS`)."""
    return hashlib.new(ALGORITHMS[algorithm][0])


def compute_digest(algorithm: str, data: bytes) -> bytes:
    """The digest of *data* with *algorithm* (a key of :data:`ALGORITHMS`)."""
    hasher = new_hash(algorithm)
    hasher.update(data)
    return hasher.digest()


def format_digest_field(digests: Mapping[str, bytes] | Iterable[tuple[str, bytes]]) -> bytes:
    """The field value for *digests* (algorithm -> digest): ``sha-256=:<base64>:, ...``."""
    items = digests.items() if isinstance(digests, Mapping) else digests
    return b", ".join(
        algorithm.encode("ascii") + b"=:" + base64.b64encode(value) + b":"
        for algorithm, value in items
    )


# ---------------------------------------------------------------- integrity fields


def parse_digest_field(value: str, field: str = "Content-Digest") -> dict[str, bytes]:
    """The supported digests in a ``Content-Digest`` or ``Repr-Digest`` value.

    Unknown and deprecated algorithms are left out (RFC 9530 §2).  Raises
    :class:`DigestFieldError` if *value* is not a Dictionary, or a supported algorithm's value
    is not a Byte Sequence of its digest length.
    """
    digests: dict[str, bytes] = {}
    for algorithm, (item, _) in parse_dictionary(value, field).items():
        if algorithm not in ALGORITHMS:
            continue
        if not isinstance(item, bytes):
            raise DigestFieldError(f"{field}: the {algorithm} value is not a byte sequence")
        size = ALGORITHMS[algorithm][1]
        if len(item) != size:
            raise DigestFieldError(
                f"{field}: a {algorithm} digest is {size} bytes, not {len(item)}"
            )
        digests[algorithm] = item
    return digests


@dataclass(frozen=True, slots=True)
class ExpectedDigest:
    """A digest a request asserts for its body: *field* (for messages), *algorithm*, *value*."""

    field: str
    algorithm: str
    value: bytes


def expected_from_fields(
    content_digest: str | None, repr_digest: str | None
) -> tuple[ExpectedDigest, ...]:
    """The digests a request's body must have, from its ``Content-Digest`` and
    ``Repr-Digest`` values (``None`` when absent).

    Both are taken over the body as received: the server stores the content as it came,
    without decoding a request ``Content-Encoding``, and then the representation data is
    exactly the content (RFC 9530 §3.1: a request's Repr-Digest is over the enclosed
    representation data).  Raises :class:`DigestFieldError` for a malformed field.
    """
    expected: list[ExpectedDigest] = []
    for field, value in (("Content-Digest", content_digest), ("Repr-Digest", repr_digest)):
        if value is not None:
            for algorithm, digest in parse_digest_field(value, field).items():
                expected.append(ExpectedDigest(field, algorithm, digest))
    return tuple(expected)


# ---------------------------------------------------------------- preference fields


def parse_want_field(value: str, field: str = "Want-Repr-Digest") -> dict[str, int]:
    """The weights in a ``Want-Content-Digest`` or ``Want-Repr-Digest`` value.

    Every algorithm with an Integer weight from 0 to 10 is kept, known or not (a client asking
    only for algorithms we lack still asks for a digest, see :func:`choose_algorithm`); other
    members of unknown algorithms are ignored.  Raises :class:`DigestFieldError` if *value*
    is not a Dictionary or a supported algorithm's weight is not an Integer in 0-10 (§4).
    """
    weights: dict[str, int] = {}
    for algorithm, (item, _) in parse_dictionary(value, field).items():
        if isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 10:
            weights[algorithm] = item
        elif algorithm in ALGORITHMS:
            raise DigestFieldError(
                f"{field}: the {algorithm} weight must be an integer from 0 to 10"
            )
    return weights


def choose_algorithm(weights: Mapping[str, int]) -> str | None:
    """The algorithm to answer a preference field with, or ``None`` for no digest.

    The supported algorithm with the highest positive weight (ties: :data:`ALGORITHMS`
    order).  A client that asks only for algorithms we do not use (``sha=10``) gets our
    preferred one that it did not mark 0: preferences are only a hint (RFC 9530 §4, Appendix
    C.2).  Nothing when every weight is 0 or there are none.
    """
    best, best_weight = None, 0
    for algorithm in ALGORITHMS:
        weight = weights.get(algorithm, 0)
        if weight > best_weight:
            best, best_weight = algorithm, weight
    if best is not None:
        return best
    if any(weight > 0 for weight in weights.values()):
        for algorithm in ALGORITHMS:
            if algorithm not in weights:
                return algorithm
    return None


# ---------------------------------------------------------------- RFC 8941 dictionaries

#: A bare item: Integer, Decimal (float), String or Token (str), Byte Sequence, Boolean.
BareItem = int | float | str | bytes | bool
#: Parameters of an item (RFC 8941 §3.1.2).
Parameters = dict[str, BareItem]
#: A member value: an item, or an inner list of items; each with its parameters.
Member = tuple[BareItem | list[tuple[BareItem, Parameters]], Parameters]

_KEY_START = frozenset(string.ascii_lowercase + "*")
_KEY_CHARS = frozenset(string.ascii_lowercase + string.digits + "_-.*")
_TOKEN_START = frozenset(string.ascii_letters + "*")
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~:/")
_BASE64 = frozenset(string.ascii_letters + string.digits + "+/=")
_DIGITS = frozenset(string.digits)


def parse_dictionary(value: str, field: str = "field") -> dict[str, Member]:
    """Parse a Structured Field Dictionary (RFC 8941 §4.2.2); later duplicates win.

    Several field lines must be joined with ``", "`` first (§4.2).  Raises
    :class:`DigestFieldError` naming *field* on any syntax error.
    """
    return _Parser(value, field).dictionary()


class _Parser:
    __slots__ = ("field", "pos", "text")

    def __init__(self, text: str, field: str) -> None:
        self.text = text
        self.field = field
        self.pos = 0

    def fail(self, what: str) -> DigestFieldError:
        return DigestFieldError(f"malformed {self.field}: {what} at character {self.pos + 1}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip(self, chars: str) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1

    def dictionary(self) -> dict[str, Member]:
        members: dict[str, Member] = {}
        self.skip(" ")
        while self.pos < len(self.text):
            key = self.key()
            if self.peek() == "=":
                self.pos += 1
                members[key] = self.item_or_inner_list()
            else:
                members[key] = (True, self.parameters())
            self.skip(" \t")
            if self.pos == len(self.text):
                break
            if self.peek() != ",":
                raise self.fail("expected ','")
            self.pos += 1
            self.skip(" \t")
            if self.pos == len(self.text):
                raise self.fail("trailing ','")
        return members

    def key(self) -> str:
        start = self.pos
        if self.peek() not in _KEY_START:
            raise self.fail("expected a lower-case key")
        while self.pos < len(self.text) and self.text[self.pos] in _KEY_CHARS:
            self.pos += 1
        return self.text[start : self.pos]

    def item_or_inner_list(self) -> Member:
        if self.peek() != "(":
            return self.bare_item(), self.parameters()
        self.pos += 1
        items: list[tuple[BareItem, Parameters]] = []
        while True:
            self.skip(" ")
            if self.pos == len(self.text):
                raise self.fail("unterminated inner list")
            if self.peek() == ")":
                self.pos += 1
                return items, self.parameters()
            items.append((self.bare_item(), self.parameters()))
            if self.peek() not in (" ", ")"):
                raise self.fail("expected ' ' or ')' in inner list")

    def parameters(self) -> Parameters:
        params: Parameters = {}
        while self.peek() == ";":
            self.pos += 1
            self.skip(" ")
            key = self.key()
            value: BareItem = True
            if self.peek() == "=":
                self.pos += 1
                value = self.bare_item()
            params[key] = value
        return params

    def bare_item(self) -> BareItem:
        char = self.peek()
        if char == "-" or char in _DIGITS:
            return self.number()
        if char == '"':
            return self.string()
        if char == ":":
            return self.byte_sequence()
        if char == "?":
            return self.boolean()
        if char in _TOKEN_START:
            start = self.pos
            while self.pos < len(self.text) and self.text[self.pos] in _TOKEN_CHARS:
                self.pos += 1
            return self.text[start : self.pos]
        raise self.fail("expected an item")

    def number(self) -> int | float:
        start = self.pos
        if self.peek() == "-":
            self.pos += 1
        if self.peek() not in _DIGITS:
            raise self.fail("expected a digit")
        decimal_at = -1
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in _DIGITS:
                self.pos += 1
            elif char == "." and decimal_at < 0:
                decimal_at = self.pos
                self.pos += 1
            else:
                break
        number = self.text[start : self.pos]
        digits = number.lstrip("-")
        if decimal_at < 0:
            if len(digits) > 15:
                raise self.fail("integer longer than 15 digits")
            return int(number)
        whole, _, fraction = digits.partition(".")
        if len(whole) > 12 or not 1 <= len(fraction) <= 3:
            raise self.fail("malformed decimal")
        return float(number)

    def string(self) -> str:
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\":
                escaped = self.peek()
                if escaped not in ('"', "\\"):
                    raise self.fail("bad escape in string")
                out.append(escaped)
                self.pos += 1
            elif char == '"':
                return "".join(out)
            elif not " " <= char <= "~":
                raise self.fail("non-printable character in string")
            else:
                out.append(char)
        raise self.fail("unterminated string")

    def byte_sequence(self) -> bytes:
        self.pos += 1
        end = self.text.find(":", self.pos)
        if end < 0:
            raise self.fail("unterminated byte sequence")
        encoded = self.text[self.pos : end]
        if not _BASE64.issuperset(encoded):
            raise self.fail("invalid base64 in byte sequence")
        # §4.2.7: parsers SHOULD NOT fail when "=" padding is missing.
        if "=" not in encoded:
            encoded += "=" * (-len(encoded) % 4)
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise self.fail("invalid base64 in byte sequence") from None
        self.pos = end + 1
        return decoded

    def boolean(self) -> bool:
        self.pos += 1
        char = self.peek()
        if char not in ("0", "1"):
            raise self.fail("expected ?0 or ?1")
        self.pos += 1
        return char == "1"
