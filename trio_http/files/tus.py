"""Resumable uploads: a tus 1.0.0 server (https://tus.io/protocols/resumable-upload).

:class:`TusServer` serves the creation URL ``{prefix}/`` (``OPTIONS``, ``POST``) and one URL
per upload, ``{prefix}/{id}`` (``HEAD``, ``PATCH``, ``DELETE``, ``OPTIONS``), with the
extensions creation, creation-with-upload, termination, expiration and checksum (sha1,
sha256).  The ``filename`` metadata of a new upload names its target, a path under the served
directory checked like a ``PUT``'s; once the last byte is in, the file is renamed into place.

State is only on disk (:mod:`.tus_store`): every PATCH is ``fsync``-ed before it answers with
the new offset, the bytes of an interrupted PATCH are kept (and synced), and a server restarted,
even after ``SIGKILL``, resumes where the data file ends.  A completed upload is remembered
for a while (:class:`.tus_store.Finished`): HEAD, or a PATCH sent again, learns it is complete.

One request writes an upload at a time (:mod:`.tus_writers`): a newer one takes over, its
``Upload-Offset`` checked against the offset as it now is, so a client whose old connection
died silently (a phone changing cells) need not wait for the body timeout.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from ..errors import HTTPError
from ..protocol.httpdate import format_http_date
from ..protocol.tus import (
    CHECKSUM_MISMATCH,
    TUS_VERSION,
    check_capacity,
    check_content_length,
    check_patch_of_complete,
    check_tus_resumable,
    final_move,
    head_headers,
    is_offset_stream,
    is_upload_id,
    new_offset_error,
    options_headers,
    parse_checksum,
    parse_creation,
    parse_patch,
)
from ..request import Handler, Request
from ..response import BaseResponse, Response
from ..routing import App
from .paths import PathPolicy, http_error_for, resolve_path
from .tus_store import Finished, Staging, UploadInfo, WriteState, storage_error
from .tus_writers import Writers
from .uploads import (
    TEMP_PREFIX,
    WRITE_BUFFER_SIZE,
    make_parent_directories,
    read_chunks,
    write_atomically,
)

__all__ = ["Authorize", "TusServer"]

log = logging.getLogger("trio_http.error")

#: ``authorize(request, target)``: raise ``HTTPError`` (401, 403) if the client may not write
#: *target*, the upload's path relative to the served directory (as the file server's
#: ``{path}`` parameter would hold it).
Authorize = Callable[[Request, str], Awaitable[None]]
_OVERRIDABLE = frozenset({"PATCH", "DELETE", "HEAD", "OPTIONS"})


async def _allow(request: Request, target: str) -> None: ...


class TusServer:
    """Resumable uploads into *root* (see the module docstring).

    *max_size* caps ``Upload-Length`` (``413``); *expiry* is how long an upload may go
    unwritten before it is removed; *max_uploads* caps the unfinished uploads (``503``),
    *max_per_client* those of one client address (``429``);
    *authorize* is asked before an upload is created, written, read or removed.  *now* is
    the wall clock, which expiry times are on (they outlive the process).
    """

    def __init__(
        self,
        root: Path,
        policy: PathPolicy,
        *,
        max_size: int,
        expiry: float = 24 * 3600,
        max_uploads: int = 100,
        max_per_client: int = 20,
        authorize: Authorize | None = None,
        prefix: str = "/uploads",
        now: Callable[[], float] = time.time,
    ) -> None:
        self.staging = Staging(root)
        self.policy = policy
        self.max_size = max_size
        self.expiry = expiry
        self.max_uploads = max_uploads
        self.max_per_client = max_per_client
        self.authorize = authorize or _allow
        self.prefix = prefix.rstrip("/")
        self.now = now
        #: Sweeps for expired uploads this often (the first at start).
        self.sweep_interval = max(1.0, min(expiry / 2, 3600.0))
        self.finished = Finished(expiry)  # completed uploads HEAD and PATCH still know
        self.writers = Writers(self.staging)
        self._creating = trio.Lock()

    def install(self, app: App) -> None:
        """Route ``OPTIONS``/``POST {prefix}/`` (and without the slash) and the upload URLs."""
        collection = _tus(self._collection)
        app.add_route(self.prefix + "/", collection, ["OPTIONS", "POST"])
        if self.prefix:
            app.add_route(self.prefix, collection, ["OPTIONS", "POST"])
        # GET stands for HEAD in the route table; a real GET is refused in _upload.
        methods = ["OPTIONS", "GET", "PATCH", "DELETE", "POST"]
        app.add_route(self.prefix + "/{upload_id}", _tus(self._upload), methods)

    # ------------------------------------------------------------------ expiry

    async def expire_periodically(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Remove expired uploads now (then report started) and every ``sweep_interval``."""
        await self.sweep()
        task_status.started()
        while True:
            await trio.sleep(self.sweep_interval)
            await self.sweep()

    async def sweep(self) -> int:
        """Remove expired uploads and orphaned staging files once; return how many uploads.

        A failing file system is logged, not raised: the next sweep tries again.
        """
        try:
            removed = await trio.to_thread.run_sync(
                self.staging.sweep, self.now(), self.expiry, abandon_on_cancel=True
            )
        except OSError as exc:
            log.warning("tus: could not sweep %s: %s", self.staging.dir, exc)
            return 0
        if removed:
            log.info("tus: removed %d expired upload(s) from %s", removed, self.staging.dir)
        return removed

    # ------------------------------------------------------------------ routes

    async def _collection(self, request: Request) -> BaseResponse:
        return self._options() if request.method == "OPTIONS" else await self._create(request)

    async def _upload(self, request: Request) -> BaseResponse:
        override = request.headers.get("x-http-method-override")
        if override is not None and request.method == "POST":
            # Core Protocol, X-HTTP-Method-Override: for clients that cannot send PATCH or
            # DELETE.  The request then is that method, for authorize too.
            request.method = override.strip().upper()
            if request.method not in _OVERRIDABLE:
                raise HTTPError(400, f"X-HTTP-Method-Override: {override} is not a tus method")
        method = request.method
        if method == "OPTIONS":
            return self._options()
        if method in ("GET", "POST"):
            allow = "HEAD, PATCH, DELETE, OPTIONS"
            raise HTTPError(405, f"{method} is not a tus request", headers={"allow": allow})
        check_tus_resumable(request.headers.get("tus-resumable"))
        upload_id = request.path_params["upload_id"]
        if not is_upload_id(upload_id):
            raise HTTPError(404, "no such upload")
        found = await trio.to_thread.run_sync(self.staging.lookup, upload_id, self.expiry)
        if found is None:  # completed lately (remembered), or no such upload
            return await self._complete(request, upload_id)
        info, offset, expires = found
        await self.authorize(request, info.target)
        if expires <= self.now():
            await trio.to_thread.run_sync(self.staging.discard, upload_id)
            raise HTTPError(410, "the upload expired: start a new one")
        if method == "HEAD":
            expiry = format_http_date(expires)
            return Response(headers=head_headers(offset, info.length, info.metadata, expiry))
        if method == "DELETE":
            async with self.writers.locked(upload_id):
                await trio.to_thread.run_sync(self.staging.remove, upload_id)
            return Response(status=204)
        return await self._patch(request, upload_id, info)

    def _options(self) -> Response:
        return Response(status=204, headers=options_headers(self.max_size))

    async def _complete(self, request: Request, upload_id: str) -> Response:
        """HEAD, PATCH or DELETE of an upload completed lately (see :class:`.Finished`);
        ``404`` if there is none."""
        info = self.finished.get(upload_id, self.now())
        if info is None:
            raise HTTPError(404, "no such upload (finished, removed or never created)")
        await self.authorize(request, info.target)
        if request.method == "DELETE":
            self.finished.forget(upload_id)  # the file stays: it is no longer the upload's
            return Response(status=204)
        if request.method == "PATCH":
            check_patch_of_complete(request.headers.get, info.length)
            return Response(status=204, headers={"upload-offset": str(info.length)})
        return Response(headers=head_headers(info.length, info.length, info.metadata, None))

    # ------------------------------------------------------------------ creation

    async def _create(self, request: Request) -> BaseResponse:
        headers = request.headers
        length, target, raw_metadata = parse_creation(headers.get, self.max_size)
        self._target_path(target, creating=True)
        await self.authorize(request, target)
        declared = headers.get("content-length")
        has_body = headers.get("transfer-encoding") is not None or declared not in (None, "0")
        if has_body:
            if not is_offset_stream(headers.get("content-type")):
                raise HTTPError(415, "a body on POST needs application/offset+octet-stream")
            check_content_length(declared, 0, length)
        upload_id = secrets.token_hex(16)
        created = self.now()
        owner = request.client[0] if request.client else ""
        info = UploadInfo(length, raw_metadata, target, created, created + self.expiry, owner)
        async with self._creating:  # count and create as one step in this process
            total, mine = await trio.to_thread.run_sync(self.staging.count, info.owner)
            check_capacity(
                total, mine, max_total=self.max_uploads, max_per_client=self.max_per_client
            )
            try:
                await trio.to_thread.run_sync(self.staging.create, upload_id, info)
            except OSError as exc:
                raise storage_error(exc) from None
        offset = 0
        try:
            if has_body or length == 0:
                offset = await self._write(request, upload_id, info, 0)
        except BaseException:
            # The client never learnt the upload's URL: nothing can resume it.
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self.staging.discard, upload_id)
            raise
        return Response(
            status=201,
            headers={
                "location": f"{self.prefix}/{upload_id}",
                "upload-offset": str(offset),
                "upload-expires": format_http_date(self.now() + self.expiry),
            },
        )

    def _target_path(self, target: str, *, creating: bool) -> Path:
        """The file *target* names, checked by the path policy (``HTTPError`` if refused)."""
        if not target or target.endswith("/"):
            raise HTTPError(400, "the filename must name a file, not a directory")
        if any(part.startswith(TEMP_PREFIX) for part in target.split("/")):
            raise HTTPError(404, "that name is reserved for uploads in progress")
        path = resolve_path(self.policy, target)
        try:
            is_dir = creating and path.is_dir()
        except OSError as exc:  # a name too long for the file system (414), ...
            raise http_error_for(exc, writing=True) from None
        if is_dir:
            raise HTTPError(400, "the filename names a directory")
        return path

    # ------------------------------------------------------------------ writing

    async def _patch(self, request: Request, upload_id: str, info: UploadInfo) -> BaseResponse:
        try:
            offset = await self._write(request, upload_id, info, parse_patch(request.headers.get))
        except HTTPError as exc:  # gone while this waited: completed by the request it waited for?
            if exc.status != 404:
                raise
            return await self._complete(request, upload_id)
        headers = {
            "upload-offset": str(offset),
            "upload-expires": format_http_date(self.now() + self.expiry),
        }
        return Response(status=204, headers=headers)

    async def _write(self, request: Request, upload_id: str, info: UploadInfo, sent: int) -> int:
        """Append the body at *sent* (``409`` unless that is the offset), finish the upload if
        that completes it, and return the new offset."""
        checksum = request.headers.get("upload-checksum")
        expected = parse_checksum(checksum) if checksum is not None else None
        async with self.writers.locked(upload_id) as (fd, writer):
            current = os.fstat(fd).st_size
            if sent != current:
                raise new_offset_error(sent, current)
            check_content_length(request.headers.get("content-length"), current, info.length)
            state = WriteState(fd, current)
            if expected is not None:
                state.hasher = hashlib.new(expected[0])
                await trio.to_thread.run_sync(self.staging.begin_verify, upload_id, current)
            with writer.scope:
                await self._receive(request, upload_id, state, info.length, expected)
            if writer.scope.cancelled_caught:
                raise HTTPError(409, "a newer request for this upload took over", close=True)
            if state.offset == info.length:
                with final_move():
                    await self._finish(upload_id, info, fd)
            return state.offset

    async def _receive(
        self,
        request: Request,
        upload_id: str,
        state: WriteState,
        length: int,
        expected: tuple[str, bytes] | None,
    ) -> None:
        """Stream the body into the data file; durable on return.

        However it ends, what was received is kept and synced, except for a body with a
        checksum, which is all verified or all cut back (``460`` on a mismatch), and a body
        running past *length* (``400``), which is cut back too.
        """
        pending = bytearray()  # the worker thread consumes it as it writes
        discard = False
        try:
            async for chunk in request.stream():
                if state.offset + len(pending) + len(chunk) > length:
                    discard = True
                    raise HTTPError(400, f"the body goes past Upload-Length ({length})", close=True)
                pending += chunk
                if len(pending) >= WRITE_BUFFER_SIZE:
                    await trio.to_thread.run_sync(Staging.write, state, pending)
            await trio.to_thread.run_sync(Staging.flush, state, pending)
            if expected is not None:
                assert state.hasher is not None
                if not hmac.compare_digest(state.hasher.digest(), expected[1]):
                    discard = True
                    raise HTTPError(CHECKSUM_MISMATCH, f"the body's {expected[0]} does not match")
                await trio.to_thread.run_sync(self.staging.end_verify, upload_id)
        except BaseException:
            with trio.CancelScope(shield=True):
                try:
                    if discard or expected is not None:
                        await trio.to_thread.run_sync(self.staging.roll_back, upload_id, state)
                    else:
                        await trio.to_thread.run_sync(Staging.flush, state, pending)
                except OSError as exc:
                    log.warning("tus: could not save upload %s: %s", upload_id, exc)
            raise

    async def _finish(self, upload_id: str, info: UploadInfo, fd: int) -> None:
        """Move the complete upload onto its target, creating missing folders like ``PUT``.
        Refused: the upload stays, and an empty PATCH at its end retries (final_move)."""
        target = self._target_path(info.target, creating=False)
        await make_parent_directories(target)
        target = self._target_path(info.target, creating=False)  # a symlink may have appeared
        try:
            if not await trio.to_thread.run_sync(self.staging.finish, upload_id, fd, target):
                # Another file system: copied beside the target, then renamed over it.
                await write_atomically(read_chunks(self.staging.data_path(upload_id)), target)
                await trio.to_thread.run_sync(self.staging.remove, upload_id)
        except OSError as exc:
            raise http_error_for(exc, writing=True) from None
        self.finished.add(upload_id, info, self.now())


def _tus(handler: Handler) -> Handler:
    """*handler* with ``Tus-Resumable`` (Core Protocol) and ``Cache-Control: no-store`` (HEAD
    must not be cached; nothing here should be) on every response, errors included."""

    async def handle(request: Request) -> BaseResponse:
        try:
            response = await handler(request)
        except HTTPError as exc:
            exc.headers.setdefault("tus-resumable", TUS_VERSION)
            exc.headers.setdefault("cache-control", "no-store")
            raise
        except OSError as exc:
            raise storage_error(exc) from None
        response.headers.set("tus-resumable", TUS_VERSION)
        response.headers.set("cache-control", "no-store")
        return response

    return handle
