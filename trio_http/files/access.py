"""Who may read and write what under the served directory: ``--auth`` rules and HTTP Basic.

Rules use the syntax dufs users know::

    USER:PASSWORD@PATH[:rw][,PATH[:rw]...]     a user's paths
    @PATH[:rw][,PATH[:rw]...]                  everyone's (anonymous) paths

The paths are everything after the **last** ``@`` (percent-encoded); before it,
``USER:PASSWORD`` split at the **first** ``:``, so any password works.  A password starting
with ``$scrypt$`` is a hash (:mod:`.passwords`).  docs/file-server.md has the details.

Reading is ``GET``/``HEAD``, listings, archives, search; ``:rw`` adds writing.

How a permission is decided (:meth:`AccessRules.permission`): within one set of rules (the
anonymous ones, or one user's) the **longest** rule path covering the request path *by whole
segments* decides (``/pub`` covers ``/pub/x``, not ``/public``); a logged-in user gets the
**greater** of their own decision and the anonymous one.  Rules only grant; no rules at all
(:meth:`AccessRules.none`, ``bool(rules)`` false) means everyone reads and writes.

Passwords are compared in constant time, scrypt runs in a worker thread, a successful login
is remembered; a failed login is logged with the user and address, never the password.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
import logging
import os
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote

import trio

from ..errors import HTTPError
from .passwords import SCRYPT_PREFIX, ScryptHash, hash_password, parse_basic

__all__ = [
    "AUTHENTICATE",
    "AccessRules",
    "Permission",
    "Visitor",
    "hash_password",
    "normalize_path",
]

log = logging.getLogger("trio_http.error")
_T = TypeVar("_T")

#: The challenge sent with every 401 (RFC 7617 §2, §2.1 for the charset parameter).
AUTHENTICATE = 'Basic realm="trio-http", charset="UTF-8"'

#: Successful logins remembered; each entry is 32 bytes of key and the user name.
CACHE_SIZE = 256
#: scrypt checks at once (the machine's cores, and 16 MiB each).
_SCRYPT_THREADS = 2


class Permission(enum.IntEnum):
    """What a visitor may do at a path; ordered, so ``max`` combines grants."""

    NONE = 0
    READ = 1
    WRITE = 2


# ---------------------------------------------------------------------------- paths


def normalize_path(path: str) -> str:
    """*path* as ``/a/b``: one leading ``/``, no trailing one (``/`` for the root), no ``//``.

    Accepts the file server's form (``a/b/``, relative, trailing slash for a directory) and
    rule paths (``/a/b``).  Raises :class:`ValueError` for a ``.`` or ``..`` segment or a NUL:
    they are refused rather than resolved, so no path can reach a more permissive prefix.
    """
    if "\x00" in path:
        raise ValueError("path contains a NUL byte")
    segments = [segment for segment in path.split("/") if segment]
    if any(segment in (".", "..") for segment in segments):
        raise ValueError("path has a '.' or '..' segment")
    return "/" + "/".join(segments)


def _prefixes(path: str) -> Iterable[str]:
    """*path* (normalised) and its ancestors, longest first, ending with ``/``."""
    while path != "/":
        yield path
        path = path[: path.rindex("/")] or "/"
    yield "/"


def _decide(grants: dict[str, Permission], path: str) -> Permission:
    """The permission of the longest rule path in *grants* covering *path* (normalised)."""
    for prefix in _prefixes(path):
        permission = grants.get(prefix)
        if permission is not None:
            return permission
    return Permission.NONE


@dataclass
class _Account:
    password: str | ScryptHash
    grants: dict[str, Permission]


def _masked(rule: str) -> str:
    """*rule* as it may appear in an error message: without the password."""
    credentials, at, paths = rule.strip().rpartition("@")
    if not at:  # no paths: all of it may be credentials
        credentials, paths = rule.strip(), ""
    user, colon, _ = credentials.partition(":")
    return f"{user}{':***' if colon else ''}{at}{paths}"


def _parse_paths(text: str) -> dict[str, Permission]:
    grants: dict[str, Permission] = {}
    for item in text.split(","):
        permission = Permission.READ
        if item.endswith(":rw"):
            item, permission = item[:-3], Permission.WRITE
        if ":" in item:
            raise ValueError(
                f"unknown permission in {item!r}: only ':rw' (write a ':' in a path as %3A)"
            )
        if not item.startswith("/"):
            raise ValueError(f"path {item!r} must start with '/'")
        try:
            path = normalize_path(unquote(item, errors="strict"))
        except UnicodeDecodeError:
            raise ValueError(f"path {item!r} is not UTF-8 once percent-decoded") from None
        if grants.get(path, permission) != permission:
            raise ValueError(f"path {path!r} is given twice with different permissions")
        grants[path] = permission
    return grants


def _parse_rule(rule: str) -> tuple[str | None, str | ScryptHash | None, dict[str, Permission]]:
    """(user or None, password or None, grants) of one rule; raises :class:`ValueError`."""
    credentials, at, paths = rule.strip().rpartition("@")
    if not at:
        raise ValueError("expected USER:PASSWORD@PATH[:rw][,...] or @PATH[:rw][,...]")
    grants = _parse_paths(paths)
    if not credentials:
        return None, None, grants
    user, colon, password = credentials.partition(":")
    if not colon:
        raise ValueError("expected USER:PASSWORD before the '@'")
    if not user:
        raise ValueError("the user name is empty")
    if not password:
        raise ValueError("the password is empty")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in credentials):
        raise ValueError("control characters in the user name or password")  # RFC 7617 §2
    if password.startswith(SCRYPT_PREFIX):
        return user, ScryptHash.parse(password), grants
    return user, password, grants


class AccessRules:
    """Parsed ``--auth`` rules; immutable once built, shared by every request.

    Build with :meth:`parse`, :meth:`load` or :meth:`none`.  ``bool(rules)`` (or
    :attr:`enabled`) is ``False`` when there are no rules and everything is allowed.
    """

    def __init__(self) -> None:
        self._anonymous: dict[str, Permission] = {}
        self._accounts: dict[str, _Account] = {}
        self._enabled = False
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._cache_key = secrets.token_bytes(32)
        self._limiter: trio.CapacityLimiter | None = None
        # Checked for an unknown user, so that a user's existence does not show in the time
        # a wrong login takes (the first hashed password's cost, a random salt).
        self._decoy: ScryptHash | None = None

    # -- building

    @classmethod
    def none(cls) -> AccessRules:
        """No rules: everyone reads and writes."""
        return cls()

    @classmethod
    def parse(cls, texts: Iterable[str]) -> AccessRules:
        """Rules from ``--auth`` values.  Raises :class:`ValueError` naming the bad rule.

        A user may appear in several rules (their paths add up) but always with the same
        password; a path given twice for the same visitor must have the same permission.
        """
        rules = cls()
        for text in texts:
            rules._add(text, f"access rule {_masked(text)!r}")
        return rules

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, extra: Iterable[str] = ()) -> AccessRules:
        """Rules from an ``--auth-file``, one per line (blank lines and ``#`` comments are
        skipped), then *extra* rules (``--auth`` values).

        Raises :class:`ValueError` naming the file and line of a bad rule, or the file if it
        cannot be read or is not UTF-8.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ValueError(f"cannot read the auth file {os.fspath(path)!r}: {reason}") from None
        rules = cls()
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if line and not line.startswith("#"):
                rules._add(line, f"{os.fspath(path)}, line {number}")
        for rule in extra:
            rules._add(rule, f"access rule {_masked(rule)!r}")
        return rules

    def _add(self, text: str, where: str) -> None:
        try:
            user, password, grants = _parse_rule(text)
            if user is None:
                self._merge(self._anonymous, grants)
            else:
                assert password is not None
                account = self._accounts.get(user)
                if account is None:
                    self._accounts[user] = _Account(password, {})
                    account = self._accounts[user]
                elif account.password != password:
                    raise ValueError(f"user {user!r} is given two different passwords")
                self._merge(account.grants, grants)
                if isinstance(password, ScryptHash) and self._decoy is None:
                    self._decoy = password
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        self._enabled = True

    @staticmethod
    def _merge(into: dict[str, Permission], grants: dict[str, Permission]) -> None:
        for path, permission in grants.items():
            if into.get(path, permission) != permission:
                raise ValueError(f"path {path!r} is given twice with different permissions")
            into[path] = permission

    # -- deciding

    @property
    def enabled(self) -> bool:
        """Whether there are rules at all (without them everything is allowed)."""
        return self._enabled

    def __bool__(self) -> bool:
        return self._enabled

    @property
    def users(self) -> frozenset[str]:
        return frozenset(self._accounts)

    def permission(self, user: str | None, path: str) -> Permission:
        """What *user* (``None``: anonymous) may do at *path* (decoded, under the root).

        ``WRITE`` for everyone when there are no rules; ``NONE`` for a path with a ``.`` or
        ``..`` segment.  Does not check the user's password: see :meth:`check`.
        """
        if not self._enabled:
            return Permission.WRITE
        try:
            normal = normalize_path(path)
        except ValueError:
            return Permission.NONE
        permission = _decide(self._anonymous, normal)
        account = self._accounts.get(user) if user is not None else None
        if account is not None:
            permission = max(permission, _decide(account.grants, normal))
        return permission

    def reachable(self, user: str | None, path: str) -> bool:
        """Whether *user* may read *path* or some rule lets them read something below it
        (a directory to show in a listing, as the way to what they may read)."""
        if self.permission(user, path) >= Permission.READ:
            return True
        try:
            normal = normalize_path(path)
        except ValueError:
            return False
        below = "/" if normal == "/" else normal + "/"
        grant_sets = [self._anonymous]
        account = self._accounts.get(user) if user is not None else None
        if account is not None:
            grant_sets.append(account.grants)
        return any(prefix.startswith(below) for grants in grant_sets for prefix in grants)

    def _someone_may(self, path: str, needed: Permission) -> bool:
        return any(self.permission(user, path) >= needed for user in self._accounts)

    # -- checking requests

    async def authenticate(self, authorization: str | None, client: str) -> str | None:
        """The user named by an ``Authorization`` header, ``None`` without one (anonymous).

        Raises ``HTTPError(401)`` with ``WWW-Authenticate`` for a header that is not
        ``Basic`` with base64 of UTF-8 ``user:password`` (RFC 7617 §2), or for a wrong user
        or password (logged with the user and *client*, never the password).  Without rules,
        the header is not looked at and ``None`` is returned.
        """
        if not self._enabled or authorization is None:
            return None
        try:
            user, password = parse_basic(authorization)
        except ValueError as exc:
            log.warning("malformed Authorization header from %s: %s", client, exc)
            raise _unauthorized(f"bad Authorization header: {exc}") from None
        if not await self._verify(user, password):
            log.warning("failed login for user %r from %s", user, client)
            raise _unauthorized("wrong user name or password")
        return user

    async def check(
        self, authorization: str | None, path: str, *, write: bool, client: str
    ) -> Visitor:
        """The visitor, if they may read (or with *write*, write) *path*.

        *authorization* is the request's ``Authorization`` header (or ``None``), *path* the
        decoded URL path under the served directory (``a/b``, ``/a/b``, ``a/`` all do),
        *client* the peer's address for the log.  Raises ``HTTPError(400)`` for a path with
        a ``.`` or ``..`` segment; ``401`` (with ``WWW-Authenticate``) for wrong or malformed
        credentials, or for none when anonymous access is not enough but some user's would
        be; ``403`` otherwise when access is not enough.  Without rules: always allowed.
        """
        if not self._enabled:
            return Visitor(self, None)
        try:
            normal = normalize_path(path)
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        user = await self.authenticate(authorization, client)
        needed = Permission.WRITE if write else Permission.READ
        if self.permission(user, normal) >= needed:
            return Visitor(self, user)
        verb = "change" if write else "read"
        if user is None and self._someone_may(normal, needed):
            raise _unauthorized(f"log in to {verb} this")
        raise HTTPError(403, f"you may not {verb} this")

    async def _verify(self, user: str, password: str) -> bool:
        secret = password.encode("utf-8")
        account = self._accounts.get(user)
        if account is None:
            await self._fail_slowly(secret)
            return False
        stored = account.password
        if isinstance(stored, str):
            if hmac.compare_digest(secret, stored.encode("utf-8")):
                return True
            # As slow as an unknown user's failure, so the time tells no user names apart.
            await self._fail_slowly(secret)
            return False
        key = hmac.new(
            self._cache_key, user.encode("utf-8") + b"\x00" + secret, hashlib.sha256
        ).digest()
        if key in self._cache:
            self._cache.move_to_end(key)
            return True
        if not await self._run_scrypt(functools.partial(stored.matches, secret)):
            return False
        self._cache[key] = None
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return True

    async def _fail_slowly(self, secret: bytes) -> None:
        """Spend what checking a hashed password would (an scrypt, if any rule has one)."""
        if self._decoy is not None:
            decoy = self._decoy
            await self._run_scrypt(functools.partial(decoy.derive, secret, os.urandom(16)))
        else:
            hmac.compare_digest(secret, secrets.token_bytes(len(secret)))

    async def _run_scrypt(self, call: Callable[[], _T]) -> _T:
        if self._limiter is None:
            self._limiter = trio.CapacityLimiter(_SCRYPT_THREADS)
        return await trio.to_thread.run_sync(call, limiter=self._limiter)


def _unauthorized(detail: str) -> HTTPError:
    return HTTPError(401, detail, headers={"www-authenticate": AUTHENTICATE})


@dataclass(frozen=True)
class Visitor:
    """Who made a request (``user`` ``None``: anonymous) and what they may touch.

    For the listing page (write controls), archives and search (which entries to include).
    Paths are as for :meth:`AccessRules.permission`.
    """

    rules: AccessRules
    user: str | None

    def permission(self, path: str) -> Permission:
        return self.rules.permission(self.user, path)

    def can_read(self, path: str) -> bool:
        return self.permission(path) >= Permission.READ

    def can_write(self, path: str) -> bool:
        return self.permission(path) >= Permission.WRITE

    def can_reach(self, path: str) -> bool:
        """:meth:`can_read`, or some rule lets this visitor read something below *path*."""
        return self.rules.reachable(self.user, path)
