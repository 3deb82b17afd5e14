"""The file server: read, list, write and delete files under one directory.

Reads open the file once and describe *that* open file (``fstat``): its validators, its length,
its ranges.  Writes stream the body into a temporary file in the target directory, ``fsync``
it and rename it over the target, so the target name only ever holds a complete old or a
complete new file; any failure (client gone, body too large, disk full, shutdown) removes the
temporary file.  Every path goes through :func:`~trio_http.files.paths.resolve_path` first,
and every ``OSError`` from a call on a client's path through
:func:`~trio_http.files.paths.http_error_for`, so what a client can name never makes a ``500``.

While a temporary file is written, its writer holds an exclusive ``flock`` on it.  A server
killed outright (``SIGKILL``, a crash) leaves its temporary files behind; at startup,
:meth:`FileServer.remove_stale_uploads` deletes those that no process holds locked.

Blocking file-system calls that can take long (reading a directory, writing, ``fsync``) run in
worker threads; ``stat`` and ``open`` stay on the event loop, where they cost microseconds on
local disks.
"""

from __future__ import annotations

import io
import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

import trio

from ..digests import expected_digests
from ..errors import HTTPError
from ..protocol.conditional import Precondition
from ..request import Request
from ..response import BaseResponse, Response
from ..routing import App
from .access import AUTHENTICATE, AccessRules, Visitor
from .archive import archive_response
from .guard import AccessGuard
from .listing import ASSETS, Entry, parse_sort, render_html, render_json, render_text
from .paths import PathPolicy, http_error_for, resolve_path, resolve_path_text
from .reading import Validators, check_preconditions, file_response
from .search import SearchLimits, search_response
from .uploads import (
    TEMP_PREFIX,
    make_parent_directories,
    remove_directories,
    remove_stale_uploads,
    write_atomically,
)

__all__ = ["FileServer"]

log = logging.getLogger("trio_http.error")

_JSON = "application/json"
_HTML = "text/html; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"
#: Worker threads all searches of one file server may use at once.
SEARCH_THREADS = 2


class FileServer:
    """Serves *root* under a URL prefix; :meth:`install` adds its routes to an :class:`App`."""

    def __init__(
        self,
        root: Path,
        *,
        read_only: bool = False,
        follow_symlinks: bool = False,
        allow_hidden: bool = False,
        listings: bool = True,
        max_ranges: int = 16,
        access: AccessRules | None = None,
        search_limits: SearchLimits | None = None,
        archives: bool = True,
        trusted_origins: Iterable[str] = (),
    ) -> None:
        self.policy = PathPolicy(Path(os.path.realpath(root)), follow_symlinks, allow_hidden)
        self.read_only = read_only
        self.listings = listings
        self.max_ranges = max_ranges
        #: Who may read and write what (``--auth``); no rules: everyone may do everything.
        self.access = access or AccessRules.none()
        #: The access rules applied to requests, symlinks and other sites' pages.
        self.guard = AccessGuard(self.policy, self.access, trusted_origins)
        self.search_limits = search_limits or SearchLimits()
        #: Searches walk at most this many trees at once; others wait their turn.
        self._search_threads = trio.CapacityLimiter(SEARCH_THREADS)
        #: ``?download=zip|tar.gz`` on directories (``--no-archives`` turns them off).
        self.archives = archives
        #: Where the listing page sends large uploads (the tus endpoint), if there is one.
        self.upload_url: str | None = None
        #: Where the listing page's CSS and scripts are served (set by :meth:`install`).
        self.assets_url: str | None = None

    async def visitor(self, request: Request, url_path: str, *, write: bool) -> Visitor:
        """Who is asking, if they may read (*write*: change) *url_path*; else 401 or 403
        (see :meth:`.guard.AccessGuard.visitor`)."""
        return await self.guard.visitor(request, url_path, write=write)

    def install(self, app: App, prefix: str = "/files") -> None:
        """Route ``GET``/``HEAD`` (and unless read-only ``POST``, ``PUT``, ``DELETE``, ``MKCOL``).

        The prefix without its slash (``/files``) redirects to the root directory's URL
        (``/files/``), as every directory URL without a trailing slash does.
        """
        base = prefix.rstrip("/")
        pattern = base + "/{path:path}"
        if base:
            app.add_route(base, _redirect_to_directory, ["GET"])
        # The listing page's CSS and scripts, at exact paths (looked up before the pattern),
        # under a hidden name that no file can be served as.
        self.assets_url = base + "/.trio-http/"
        for name in ASSETS:
            app.add_route(self.assets_url + name, _serve_asset, ["GET"])
        app.add_route(pattern, self.get, ["GET"])
        if self.read_only:
            # Registered, so the answer is 405 with Allow rather than 501 "unknown method".
            app.add_route(pattern, _refuse_write, ["POST", "PUT", "DELETE", "MKCOL"])
        else:
            app.add_route(pattern, self.post, ["POST"])
            app.add_route(pattern, self.put, ["PUT"])
            app.add_route(pattern, self.delete, ["DELETE"])
            app.add_route(pattern, self.mkcol, ["MKCOL"])

    # ------------------------------------------------------------------ reading

    async def get(self, request: Request) -> BaseResponse:
        url_path = request.path_params["path"]
        visitor = await self.guard.visitor(request, url_path, write=False)
        if self.access.enabled and visitor.user is None and "login" in request.query:
            # A browser sends credentials only when asked: the listing's "log in" link.
            raise HTTPError(401, "log in", headers={"www-authenticate": AUTHENTICATE})
        path = resolve_path_text(self.policy, url_path)
        name = os.path.basename(path)  # resolve_path refused upload files already
        try:
            # O_NONBLOCK: opening a FIFO would otherwise wait for a writer, on the event loop.
            # For regular files it changes nothing, and open() costs microseconds there.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise http_error_for(exc) from None
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                file = None
            elif not stat.S_ISREG(st.st_mode):
                raise HTTPError(403, "not a regular file")
            elif url_path.endswith("/"):
                raise HTTPError(404, "no such directory")
            else:
                # Unbuffered: the body is sent with sendfile or pread, never through a buffer.
                file = io.FileIO(fd, "r")
        except BaseException:
            os.close(fd)
            raise
        if file is None:
            os.close(fd)
            return await self._directory(request, Path(path), url_path, visitor)
        try:
            response = file_response(request, file, st, name, max_ranges=self.max_ranges)
        except BaseException:
            file.close()
            raise
        # Where some visitors may write what others (logged in) then open, a stored page's
        # scripts run in no origin: an uploaded page cannot act with another's credentials.
        if self.access.enabled and not self.read_only:
            response.headers.set("content-security-policy", "sandbox")
        return response

    async def _directory(
        self, request: Request, path: Path, url_path: str, visitor: Visitor
    ) -> BaseResponse:
        if url_path and not url_path.endswith("/"):
            return await _redirect_to_directory(request)
        if not self.listings:
            raise HTTPError(403, "directory listings are disabled")
        # No validators of its own, but If-Match and If-None-Match: * still apply (RFC 9110
        # §13.1.1, §13.1.2): 412 (raised), or 304.
        if check_preconditions(request, None, exists=True) is Precondition.NOT_MODIFIED:
            return Response(status=304, headers={"vary": "Accept"})
        download = request.query.get("download")
        if download is not None:
            if not self.archives:
                raise HTTPError(403, "folder archives are disabled")
            may_read, may_enter = self.guard.filters(visitor)
            return await archive_response(
                path,
                url_path,
                download[0],
                policy=self.policy,
                may_read=may_read,
                may_enter=may_enter,
            )
        terms = request.query.get("q")
        if terms is not None:
            may_read, may_enter = self.guard.filters(visitor)
            return await search_response(
                path,
                url_path,
                terms[0],
                request.headers.get("accept"),
                policy=self.policy,
                may_read=may_read,
                may_enter=may_enter,
                limits=self.search_limits,
                limiter=self._search_threads,
            )
        try:
            entries = await trio.to_thread.run_sync(self._scan, path, url_path, visitor)
        except OSError as exc:
            raise http_error_for(exc) from None
        shown = "/" + url_path
        sort, order = parse_sort(request.query)
        # HTML, JSON or text by Accept: each variant says so, for caches (RFC 9110 §12.5.5).
        # The finalizer merges Accept-Encoding into this field when the listing is compressible.
        headers = {"vary": "Accept"}
        accept = request.headers.get("accept") or ""
        if "application/json" in accept:
            body = render_json(shown, entries, sort, order)
            return Response(body, headers=headers, content_type=_JSON)
        if "text/plain" in accept and "text/html" not in accept:  # browsers and */* get HTML
            body = render_text(entries, sort, order)
            return Response(body, headers=headers, content_type=_TEXT)
        page = render_html(
            shown,
            entries,
            has_parent=bool(url_path),
            sort=sort,
            order=order,
            can_write=not self.read_only and visitor.can_write(url_path),
            archives=self.archives,
            upload_url=self.upload_url,
            login=self.access.enabled and visitor.user is None,
            assets_url=self.assets_url,
        )
        return Response(page, headers=headers, content_type=_HTML)

    def _scan(self, path: Path, url_path: str, visitor: Visitor) -> list[Entry]:
        """The entries of *path* that the path policy would let a client open, and that
        *visitor* may read or find something to read in.

        Each is checked by the URL a client would use (*url_path*, ending in ``/`` or empty,
        plus its name): *path* itself may be outside the root, through a followed symlink.
        """
        entries = []
        _, may_enter = self.guard.filters(visitor)
        with os.scandir(path) as scan:
            for item in scan:
                if item.name.startswith(TEMP_PREFIX):
                    continue
                if not may_enter(url_path + item.name):
                    continue
                try:
                    real = resolve_path(self.policy, url_path + item.name)
                    st = os.stat(real)
                except (HTTPError, OSError):
                    continue  # hidden, escaping, or vanished: not listed
                entries.append(Entry(item.name, stat.S_ISDIR(st.st_mode), st.st_size, st.st_mtime))
        return entries

    # ------------------------------------------------------------------ stale uploads

    def remove_stale_uploads(self) -> int:
        """Delete the temporary files of uploads no process is writing; return how many.

        Blocking: run it in a worker thread, once at startup (see :mod:`.uploads`)::

            await trio.to_thread.run_sync(file_server.remove_stale_uploads)
        """
        return remove_stale_uploads(self.policy.root)

    # ------------------------------------------------------------------ writing

    async def post(self, request: Request) -> Response:
        """Create or replace the file: ``201 Created`` (the CodeCrafters contract)."""
        await self._store(request)
        return Response(status=201)

    async def put(self, request: Request) -> Response:
        """Create (``201``) or replace (``204``) the file."""
        created = await self._store(request)
        return Response(status=201 if created else 204)

    async def delete(self, request: Request) -> Response:
        await self.visitor(request, request.path_params["path"], write=True)
        path = resolve_path(self.policy, request.path_params["path"])
        st = self._stat(path, writing=False)
        if st is None:
            raise HTTPError(404, "no such file")
        if stat.S_ISDIR(st.st_mode):
            raise HTTPError(409, "directories cannot be deleted")
        check_preconditions(request, Validators.of(st), exists=True)
        try:
            os.unlink(path)
        except OSError as exc:
            raise http_error_for(exc) from None
        return Response(status=204)

    async def mkcol(self, request: Request) -> Response:
        """Create a directory, as WebDAV's ``MKCOL`` (RFC 4918 §9.3), so ``curl -X MKCOL`` works.

        ``201`` when created; ``405`` when anything already has that name; ``409`` when the
        parent does not exist (MKCOL makes one level, unlike ``PUT``); ``415`` with a body,
        which RFC 4918 leaves undefined and we do not support.
        """
        url_path = request.path_params["path"].rstrip("/")
        await self.visitor(request, url_path, write=True)
        if not url_path:
            raise HTTPError(405, "the root directory exists", headers={"allow": _DIRECTORY_ALLOW})
        if request.headers.get("content-length") not in (None, "0") or request.headers.get(
            "transfer-encoding"
        ):
            raise HTTPError(415, "MKCOL takes no request body", close=True)
        target = resolve_path(self.policy, url_path)
        try:
            os.mkdir(target)
        except FileExistsError:
            raise HTTPError(405, "that name exists", headers={"allow": _DIRECTORY_ALLOW}) from None
        except (FileNotFoundError, NotADirectoryError):
            raise HTTPError(409, "the parent directory does not exist") from None
        except OSError as exc:
            raise http_error_for(exc, writing=True) from None
        # A symlink created meanwhile cannot have redirected mkdir outside the root: mkdir
        # does not follow a final symlink, and the parent is checked again here.
        resolve_path(self.policy, url_path)
        return Response(status=201, headers={"location": request.path.rstrip("/") + "/"})

    @staticmethod
    def _stat(path: Path, *, writing: bool) -> os.stat_result | None:
        """``stat`` *path*; ``None`` if nothing has that name (or a parent is a file)."""
        try:
            return os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise http_error_for(exc, writing=writing) from None

    async def _store(self, request: Request) -> bool:
        """Write the request body to the target atomically; returns whether it was created."""
        url_path = request.path_params["path"]
        await self.visitor(request, url_path, write=True)
        if not url_path or url_path.endswith("/"):
            raise HTTPError(405, "cannot write to a directory", headers={"allow": "GET, HEAD"})
        if request.headers.get("content-range") is not None:
            # RFC 9110 §9.3.4: most likely part of a file sent as if it were the whole.
            raise HTTPError(400, "Content-Range is not supported on uploads: send the whole file")
        target = resolve_path(self.policy, url_path)
        st = self._stat(target, writing=True)
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise HTTPError(409, "a directory has that name")
        check_preconditions(request, Validators.of(st) if st else None, exists=st is not None)
        created = await make_parent_directories(target)
        try:
            # The parent may now exist through a symlink created meanwhile: check again.
            resolve_path(self.policy, url_path)
            await write_atomically(
                request.stream(), target, expected=expected_digests(request.headers)
            )
        except OSError as exc:
            # Disk full (507), a directory created under the target's name meanwhile (409) ...
            remove_directories(created)
            raise http_error_for(exc, writing=True) from None
        except BaseException:
            # A refused body (wrong digest, too large, client gone) leaves the tree as it was.
            remove_directories(created)
            raise
        return st is None


async def _serve_asset(request: Request) -> Response:
    """One of the listing page's assets; its URL carries a version, so it is cached for good."""
    text, content_type = ASSETS[request.path.rpartition("/")[2]]
    headers = {"cache-control": "public, max-age=31536000, immutable"}
    return Response(text, headers=headers, content_type=content_type)


async def _redirect_to_directory(request: Request) -> Response:
    """``301`` to the same URL with a ``/`` after the path, keeping the query.

    Relative links in a listing only work from a URL ending in ``/``.
    """
    location = request.path + "/"
    if request.query_string:
        location += "?" + request.query_string
    return Response(status=301, headers={"location": location})


#: What a directory (or the read-only server) answers to in the Allow field of a 405.
_DIRECTORY_ALLOW = "GET, HEAD"


async def _refuse_write(request: Request) -> Response:
    raise HTTPError(405, "the server is read-only", headers={"allow": _DIRECTORY_ALLOW})
