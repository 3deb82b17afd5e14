"""The access rules applied to requests: to the URL, to where symlinks lead, and to changes
requested by other sites' pages.

:class:`~.access.AccessRules` decides on paths; this applies it to what the file server
serves: a symlink inside the root cannot lend one folder's rule to another (its target's rule
applies too), and a change sent by another site's page (a form, a ``no-cors`` fetch: a
browser sends those with the visitor's credentials and without a preflight) is refused unless
that site is trusted (``--cors-origin``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from ..cors import cross_site_write
from ..errors import HTTPError
from ..request import Request
from .access import AccessRules, Visitor
from .paths import PathPolicy, resolve_path_text

__all__ = ["AccessGuard"]


class AccessGuard:
    """*access* applied under *policy*; *trusted_origins* may change files from their pages."""

    def __init__(
        self, policy: PathPolicy, access: AccessRules, trusted_origins: Iterable[str] = ()
    ) -> None:
        self.policy = policy
        self.access = access
        self.trusted_origins = frozenset(origin.lower() for origin in trusted_origins)
        self._everyone = Visitor(access, None)

    async def visitor(self, request: Request, url_path: str, *, write: bool) -> Visitor:
        """Who is asking, if they may read (*write*: change) *url_path*; else 401 or 403.

        The rules are checked for the URL and, when a symlink inside the root leads
        elsewhere in it, for where it leads too: a link cannot lend one folder's rule to
        another.  A directory the visitor may not read but that leads to something they may
        (``--auth '@/public'`` seen from ``/``) is let through for reading: its listing then
        shows only the way there.  A change requested by another site's page (a form, a
        ``no-cors`` fetch, which browsers send with the visitor's credentials and without a
        preflight) is refused with 403 unless that site is trusted (``--cors-origin``).
        """
        if not write and not self.access.enabled:
            return self._everyone  # no rules: every read is allowed (the file server's hot path)
        headers = request.headers
        if write and cross_site_write(
            headers.get("origin"),
            headers.get("sec-fetch-site"),
            headers.get("host"),
            self.trusted_origins,
        ):
            raise HTTPError(403, "another site's page may not change files here")
        visitor = await self._check(request, url_path, write=write)
        if self.access.enabled:
            real = self._real_url(url_path)
            if real is not None and real.rstrip("/") != url_path.rstrip("/"):
                await self._check(request, real, write=write)
        return visitor

    async def _check(self, request: Request, url_path: str, *, write: bool) -> Visitor:
        client = request.client[0] if request.client else "-"
        authorization = request.headers.get("authorization")
        try:
            return await self.access.check(authorization, url_path, write=write, client=client)
        except HTTPError:
            if write or not (url_path == "" or url_path.endswith("/")):
                raise
            user = await self.access.authenticate(authorization, client)  # wrong ones: 401
            if not self.access.reachable(user, url_path):
                raise
            return Visitor(self.access, user)

    def _real_url(self, url_path: str) -> str | None:
        """Where *url_path* really is, as a URL path under the root (symlinks followed);
        ``None`` outside the root (``--follow-symlinks``) or if it cannot be resolved."""
        try:
            real = resolve_path_text(self.policy, url_path)
        except HTTPError:
            return None
        root = str(self.policy.root)
        if real == root:
            return ""
        if not real.startswith(root + os.sep):
            return None
        relative = real[len(root) + 1 :]
        return relative + "/" if url_path.endswith("/") else relative

    def filters(self, visitor: Visitor) -> tuple[Callable[[str], bool], Callable[[str], bool]]:
        """*visitor*'s ``may_read`` and ``may_enter`` for the entries of a listing, an archive
        or a search, checking where symlinks lead too (blocking: for worker threads)."""
        if not self.access.enabled:
            return visitor.can_read, visitor.can_reach

        def both(allowed: Callable[[str], bool]) -> Callable[[str], bool]:
            def check(url_path: str) -> bool:
                if not allowed(url_path):
                    return False
                real = self._real_url(url_path)
                return real is None or allowed(real)

            return check

        return both(visitor.can_read), both(visitor.can_reach)
