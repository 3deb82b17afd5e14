"""Folder archives: ``GET /files/dir/?download=zip`` and ``?download=tar.gz``.

The archive is produced while it is sent, in constant memory whatever the size of the tree:
a blocking generator walks the tree, reads one file chunk at a time and emits archive bytes;
:class:`_ThreadedChunks` runs each step of it in a worker thread, and only when the connection
asks for the next chunk, so nothing is read further ahead than what the client has accepted.
Closing the response (the client left, the server shuts down) closes the generator, which
closes the file it had open.

What goes in follows the same rules as a listing (``FileServer._scan``): upload temporary
files are skipped, each entry is checked with :func:`~.paths.resolve_path` by the URL a client
would use (hidden names and symlinks leading out of the root are left out), and with
*may_read*, the access rule (a directory that may not be read is not entered either).  A
symlink the policy allows is archived as what it points to, as the server would serve it.
A directory already archived (same ``st_dev, st_ino``) is not entered again, so symlink loops
end and a directory linked twice is archived once.  Names that are not valid UTF-8 are skipped
(no URL can name them, so listings cannot link them either).  Special files (FIFOs, sockets,
devices) are skipped; files that cannot be opened (permission denied, vanished meanwhile) are
skipped with a log line, never a broken archive.  Entries are archived in sorted order, so the
same tree gives the same archive.

Every entry sits below one top folder named after the directory (``photos/...`` in
``photos.zip``), so extracting never scatters files into the current directory.

A file is archived as it was when opened: its size from ``fstat`` on the open descriptor.  One
that grows meanwhile is cut at that size; one that shrinks (or fails to read mid-way) keeps
what was read in a ZIP, whose data descriptor records the real size and CRC, and is padded
with NUL bytes in a tar, whose header already announced the size.  Either way the archive
stays valid and a warning names the file.

ZIP: written by :class:`~.zipwriter.ZipWriter` (entries stored; see there why).  The walk:
:mod:`.treewalk`.

tar.gz: POSIX.1-2001 (pax) headers from :meth:`tarfile.TarInfo.tobuf`, so long and UTF-8 names
and sizes past 8 GiB are represented, data written here, gzip from :mod:`zlib`.  Owner names
and ids are not disclosed (``0``, empty).
"""

from __future__ import annotations

import itertools
import logging
import os
import stat
import tarfile
import tempfile
import time
import unicodedata
import zlib
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from urllib.parse import quote

import trio

from ..errors import HTTPError
from ..response import StreamingResponse
from .display import is_utf8
from .paths import PathPolicy, http_error_for
from .treewalk import READ_SIZE, Found, OpenFile, read_top, walk_tree
from .zipwriter import ZipWriter

__all__ = [
    "FORMATS",
    "archive_chunks",
    "archive_response",
    "content_disposition",
]

log = logging.getLogger("trio_http.error")

#: ``?download=`` value -> (file extension, content type).
FORMATS: dict[str, tuple[str, str]] = {
    "zip": (".zip", "application/zip"),
    "tar.gz": (".tar.gz", "application/gzip"),
}
#: Archive bytes gathered before handing them to the connection: small pieces (headers of
#: small files) are sent together, one worker-thread trip per chunk rather than per piece.
CHUNK_TARGET = 64 * 1024
#: Longest time one worker-thread step keeps producing nothing to send (a tree of entries that
#: are all skipped): then it returns, so a client that left is noticed.
STEP_SECONDS = 0.1
#: Central directory records kept in memory up to this size, then in a temporary file.
CENTRAL_SPOOL_SIZE = 1024 * 1024
#: Level for ``tar.gz``: zlib's default, what ``tar czf`` uses.
GZIP_LEVEL = 6

# ---------------------------------------------------------------- tar (pure)

_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE


def _tar_header(name: str, st: os.stat_result, *, is_dir: bool) -> bytes:
    """A pax header block (plus extended header blocks for long or UTF-8 names, big sizes)."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.size = 0 if is_dir else st.st_size
    info.mode = stat.S_IMODE(st.st_mode)
    # Whole seconds: a fractional mtime would add an extended header (1 KiB) to every entry.
    info.mtime = max(0, int(st.st_mtime))
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")


# ---------------------------------------------------------------- archive bytes (blocking)


def archive_chunks(
    top_st: os.stat_result,
    names: list[str],
    url_dir: str,
    fmt: str,
    *,
    top: str,
    policy: PathPolicy,
    may_read: Callable[[str], bool],
    may_enter: Callable[[str], bool] | None = None,
    zip64_limit: int = 0xFFFFFFFF,
    count_limit: int = 0xFFFF,
    gzip_level: int = GZIP_LEVEL,
) -> Generator[bytes, None, None]:
    """The archive of the directory at *url_dir* in pieces (blocking: each ``next`` reads
    at most one chunk of one file, or one directory listing).  Empty pieces mark skipped
    entries.

    *top_st* and *names* are the directory's ``stat`` and sorted names (:func:`read_top`),
    read by the caller so that an unreadable directory is an error before the response
    starts.  *top* is the folder the entries are put under.  ``close()`` closes whatever file
    is open.  Raises ``ValueError`` for an unknown *fmt*.
    """
    walk = walk_tree(top_st, names, url_dir, policy, may_read, may_enter)
    # The top folder has an entry of its own only if it may be read (not just entered).
    top_entry = Found("", "", top_st) if may_read(url_dir) else None
    label = "/" + url_dir
    if fmt == "zip":
        return _zip_pieces(top_entry, walk, top, label, zip64_limit, count_limit)
    if fmt == "tar.gz":
        return _gzip(_tar_pieces(top_entry, walk, top, label), gzip_level)
    raise ValueError(f"unknown archive format {fmt!r}")


def _zip_pieces(
    top_entry: Found | None,
    walk: Iterator[Found | None],
    top: str,
    label: str,
    zip64_limit: int,
    count_limit: int,
) -> Generator[bytes, None, None]:
    with tempfile.SpooledTemporaryFile(CENTRAL_SPOOL_SIZE) as central:
        writer = ZipWriter(central, zip64_limit=zip64_limit, count_limit=count_limit)
        for found in itertools.chain([top_entry], walk):
            if found is None:
                yield b""
                continue
            name = f"{top}/{found.rel}"
            if found.is_dir:
                yield writer.directory(name, found.st.st_mtime, found.st.st_mode)
                continue
            file = OpenFile.open(found, label)
            if file is None:
                yield b""
                continue
            try:
                st = file.st
                yield writer.start_file(name, st.st_mtime, st.st_mode, st.st_size)
                crc = size = 0
                for chunk in file.chunks(label, found.rel):
                    crc = zlib.crc32(chunk, crc)
                    size += len(chunk)
                    yield chunk
                yield writer.end_file(crc, size)
            finally:
                file.close()
        yield from writer.finish()


def _tar_pieces(
    top_entry: Found | None, walk: Iterator[Found | None], top: str, label: str
) -> Generator[bytes, None, None]:
    written = 0  # bytes of archive, for the final record padding
    for found in itertools.chain([top_entry], walk):
        if found is None:
            yield b""
            continue
        name = f"{top}/{found.rel}"
        if found.is_dir:
            header = _tar_header(name, found.st, is_dir=True)
            written += len(header)
            yield header
            continue
        file = OpenFile.open(found, label)
        if file is None:
            yield b""
            continue
        try:
            header = _tar_header(name, file.st, is_dir=False)
            written += len(header)
            yield header
            size = 0
            for chunk in file.chunks(label, found.rel):
                size += len(chunk)
                yield chunk
            # The header announced st_size: a file that shrank is padded to it.
            missing = file.st.st_size - size
            while missing > 0:
                step = min(missing, READ_SIZE)
                missing -= step
                yield bytes(step)
            written += file.st.st_size
            padding = -file.st.st_size % _BLOCK
            written += padding
            yield bytes(padding)
        finally:
            file.close()
    # End of archive: two zero blocks, then zeros up to a whole record, as tarfile writes it.
    end = 2 * _BLOCK
    end += -(written + end) % _RECORD
    yield bytes(end)


def _gzip(pieces: Generator[bytes, None, None], level: int) -> Generator[bytes, None, None]:
    """*pieces* compressed into a gzip member (RFC 1952; mtime 0, so the output is the same
    for the same input)."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    try:
        for piece in pieces:
            yield compressor.compress(piece) if piece else b""
        yield compressor.flush()
    finally:
        pieces.close()


def _pull(pieces: Generator[bytes, None, None]) -> bytes | None:
    """The next chunk to send: pieces gathered up to :data:`CHUNK_TARGET` bytes, or what
    :data:`STEP_SECONDS` produced (possibly nothing); ``None`` at the end (blocking)."""
    gathered: list[bytes] = []
    length = 0
    deadline = time.monotonic() + STEP_SECONDS
    for piece in pieces:
        if piece:
            gathered.append(piece)
            length += len(piece)
            if length >= CHUNK_TARGET:
                break
        elif time.monotonic() >= deadline:
            break
    else:
        if not gathered:
            return None
    return b"".join(gathered)


class _ThreadedChunks:
    """An async iterator over the blocking *pieces*, one :func:`_pull` per worker-thread
    trip, only when the next chunk is asked for.  :meth:`aclose` closes *pieces* (and so the
    file it has open) on the event loop: it must work in a cancelled scope, and closing a file
    does not block."""

    def __init__(self, pieces: Generator[bytes, None, None]) -> None:
        self._pieces = pieces
        self._done = False

    def __aiter__(self) -> _ThreadedChunks:
        return self

    async def __anext__(self) -> bytes:
        while not self._done:
            # Not abandoned on cancel: the step finishes (one chunk, bounded) before the
            # generator can be closed; it cannot be closed while a thread runs it.
            chunk = await trio.to_thread.run_sync(_pull, self._pieces)
            if chunk is None:
                break
            if chunk:
                return chunk
        await self.aclose()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self._done = True
        self._pieces.close()


# ---------------------------------------------------------------- the response


def content_disposition(filename: str) -> str:
    """``attachment`` with *filename* as RFC 8187 ``filename*`` (UTF-8, percent-encoded) and
    an ASCII ``filename`` for clients without it (RFC 6266 §4.1, §4.3)."""
    # attr-char (RFC 8187 §3.2.1): ALPHA DIGIT and !#$&+-.^_`|~ are sent as they are.
    encoded = quote(filename, safe="!#$&+-.^_`|~")
    return f"attachment; filename=\"{ascii_fallback(filename)}\"; filename*=UTF-8''{encoded}"


def ascii_fallback(filename: str) -> str:
    """*filename* in printable ASCII for a quoted-string: accents dropped (``é`` -> ``e``),
    other characters, ``"``, ``\\`` and ``%`` (which some browsers decode) as ``_``."""
    stripped = "".join(
        c for c in unicodedata.normalize("NFKD", filename) if not unicodedata.combining(c)
    )
    return "".join(c if " " <= c <= "~" and c not in '"\\%' else "_" for c in stripped)


def _folder_name(url_dir: str, policy: PathPolicy) -> str:
    """The archive's top folder: the directory's last URL segment (the served root's own
    name for the root), never empty."""
    name = url_dir.rstrip("/").rpartition("/")[2] or policy.root.name
    return name if name and is_utf8(name) else "files"


async def archive_response(
    directory: Path,
    url_dir: str,
    fmt: str,
    *,
    policy: PathPolicy,
    may_read: Callable[[str], bool],
    may_enter: Callable[[str], bool] | None = None,
) -> StreamingResponse:
    """A ``200`` streaming the archive of *directory* in format *fmt* (``zip``, ``tar.gz``).

    *directory* is the real path of the directory at *url_dir* (relative to the served root,
    empty or ending in ``/``), already checked by the caller (path policy, access).
    *may_read* is asked about each entry's URL path (directories with a trailing ``/``), and
    *url_dir* itself: only what it allows is archived.  A directory is entered when
    *may_enter* allows it (by default *may_read*): with access rules, a directory the visitor
    may not read can lead to one they may (``Visitor.can_reach``); it gets no entry of its
    own.  The top folder of the archive is the directory's name, and the download's name that
    plus ``.zip`` or ``.tar.gz``.

    The directory's names are read before answering, so raises ``HTTPError(400)`` for an
    unknown *fmt* and :func:`~.paths.http_error_for`'s answer when *directory* cannot be
    read; later errors skip the entry (logged).  The body is sent chunked; closing the
    response closes the file being read.  ``application/zip`` and ``application/gzip`` are
    not in the compression policy's list, so the connection does not compress them again.
    """
    if fmt not in FORMATS:
        accepted = ", ".join(FORMATS)
        raise HTTPError(400, f"unknown archive format {fmt!r}; accepted: {accepted}")
    extension, content_type = FORMATS[fmt]
    try:
        top_st, names = await trio.to_thread.run_sync(read_top, os.fspath(directory))
    except OSError as exc:
        raise http_error_for(exc) from None
    top = _folder_name(url_dir, policy)
    pieces = archive_chunks(
        top_st,
        names,
        url_dir,
        fmt,
        top=top,
        policy=policy,
        may_read=may_read,
        may_enter=may_enter,
    )
    return StreamingResponse(
        _ThreadedChunks(pieces),
        headers={"content-disposition": content_disposition(top + extension)},
        content_type=content_type,
    )
