"""Passwords for the access rules: scrypt hashes (``trio-http hash-password``) and HTTP Basic.

Pure and blocking: :mod:`.access` runs :meth:`ScryptHash.matches` in a worker thread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

__all__ = ["SCRYPT_PREFIX", "ScryptHash", "hash_password", "parse_basic"]

SCRYPT_PREFIX = "$scrypt$"
#: scrypt cost for new hashes: 16 MiB and about 50 ms per check (RFC 7914 §2's interactive
#: recommendation is N=2**14, r=8, p=1).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
#: The most a hash in a rule may ask for, so a rule cannot make every login take gigabytes.
_MAX_N, _MAX_R, _MAX_P = 2**20, 32, 16
_SALT_SIZE, _KEY_SIZE = 16, 32


@dataclass(frozen=True)
class ScryptHash:
    n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    @classmethod
    def parse(cls, text: str) -> ScryptHash:
        """Raises :class:`ValueError` unless *text* is ``$scrypt$n=..,r=..,p=..$salt$hash``."""
        parts = text[len(SCRYPT_PREFIX) :].split("$")
        if len(parts) != 3:
            raise ValueError("an scrypt hash is $scrypt$n=N,r=R,p=P$SALT$HASH")
        params, salt_text, key_text = parts
        try:
            values = dict(item.split("=", 1) for item in params.split(","))
            n, r, p = int(values.pop("n")), int(values.pop("r")), int(values.pop("p"))
        except (ValueError, KeyError):
            raise ValueError("an scrypt hash's parameters are n=N,r=R,p=P") from None
        if values:
            raise ValueError(f"unknown scrypt parameter {next(iter(values))!r}")
        if not (1 < n <= _MAX_N and n & (n - 1) == 0 and 0 < r <= _MAX_R and 0 < p <= _MAX_P):
            raise ValueError(
                f"scrypt parameters out of range (n a power of 2 up to {_MAX_N}, "
                f"r up to {_MAX_R}, p up to {_MAX_P})"
            )
        salt, key = _b64decode(salt_text), _b64decode(key_text)
        if not salt or len(key) < 16:
            raise ValueError("an scrypt hash needs a salt and at least 16 bytes of hash")
        return cls(n, r, p, salt, key)

    def derive(self, password: bytes, salt: bytes | None = None) -> bytes:
        """scrypt of *password* with these parameters (blocking: tens of milliseconds)."""
        return hashlib.scrypt(
            password,
            salt=self.salt if salt is None else salt,
            n=self.n,
            r=self.r,
            p=self.p,
            maxmem=_scrypt_memory(self.n, self.r, self.p),
            dklen=len(self.key),
        )

    def matches(self, password: bytes) -> bool:
        return hmac.compare_digest(self.derive(password), self.key)


def _scrypt_memory(n: int, r: int, p: int) -> int:
    # OpenSSL's own default limit (32 MiB) would refuse the larger allowed parameters.
    return 128 * r * (n + p + 2) + 1024 * 1024


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        raise ValueError("an scrypt hash's salt and hash are base64") from None


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """``$scrypt$n=N,r=R,p=P$<salt>$<hash>`` for *password* (UTF-8), with a random salt.

    Blocking (tens of milliseconds).  Raises :class:`ValueError` for an empty password or
    parameters out of range.
    """
    if not password:
        raise ValueError("the password is empty")
    salt = secrets.token_bytes(_SALT_SIZE)
    spec = f"{SCRYPT_PREFIX}n={n},r={r},p={p}${_b64encode(salt)}$"
    # Parse what we would print, so a hash we make is always one we accept.
    template = ScryptHash.parse(spec + _b64encode(bytes(_KEY_SIZE)))
    return spec + _b64encode(template.derive(password.encode("utf-8")))


def parse_basic(authorization: str) -> tuple[str, str]:
    """(user, password) from ``Basic <base64>``; raises :class:`ValueError` (RFC 7617 §2)."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic":  # auth-scheme is case-insensitive (RFC 9110 §11.1)
        raise ValueError("not Basic")
    token = token.strip()
    if not token:
        raise ValueError("no credentials")
    try:
        raw = base64.b64decode(token.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ValueError("credentials are not base64") from None
    try:
        text = raw.decode("utf-8")  # the charset="UTF-8" we announce (RFC 7617 §2.1)
    except UnicodeDecodeError:
        raise ValueError("credentials are not UTF-8") from None
    user, colon, password = text.partition(":")
    if not colon:
        raise ValueError("no ':' between user and password")
    return user, password
