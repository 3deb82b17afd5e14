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

ZIP (PKWARE APPNOTE 6.3.10): written by :class:`ZipWriter`, entries *stored* (no compression):
on two cores deflate would make the CPU, not the network, the limit (about 50 MB/s at level
6), most large files (photos, video, archives) do not compress anyway, and ``tar.gz`` is there
for compressible trees.  Each file's local header has general purpose bit 3 set (CRC and sizes
follow in a data descriptor, since the CRC is only known once the data is sent) and bit 11 for
UTF-8 names; ZIP64 fields and end records are written when sizes, offsets or the entry count
need them.  Readers that use the central directory (``unzip``, 7-Zip, Windows Explorer, macOS
Archive Utility, Python's ``zipfile``, ``bsdtar`` on a file) read it; strictly sequential
readers that refuse stored entries with data descriptors (Java's ``ZipInputStream``) do not.

tar.gz: POSIX.1-2001 (pax) headers from :meth:`tarfile.TarInfo.tobuf`, so long and UTF-8 names
and sizes past 8 GiB are represented, data written here, gzip from :mod:`zlib`.  Owner names
and ids are not disclosed (``0``, empty).
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import stat
import struct
import tarfile
import tempfile
import time
import unicodedata
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import trio

from ..errors import HTTPError
from ..response import StreamingResponse
from .paths import PathPolicy, http_error_for, resolve_path_text
from .uploads import TEMP_PREFIX

__all__ = [
    "FORMATS",
    "Spool",
    "ZipWriter",
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
#: File data read per step (as for files sent without sendfile: response.FILE_CHUNK_SIZE).
READ_SIZE = 256 * 1024
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

# ---------------------------------------------------------------- ZIP (pure)

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # APPNOTE 4.3.7
_CENTRAL_HEADER = struct.Struct("<4sHHHHHHIIIHHHHHII")  # APPNOTE 4.3.12
_DESCRIPTOR_32 = struct.Struct("<4sIII")  # APPNOTE 4.3.9
_DESCRIPTOR_64 = struct.Struct("<4sIQQ")
_ZIP64_END = struct.Struct("<4sQHHIIQQQQ")  # APPNOTE 4.3.14
_ZIP64_LOCATOR = struct.Struct("<4sIQI")  # APPNOTE 4.3.15
_END = struct.Struct("<4sHHHHIIH")  # APPNOTE 4.3.16

_FLAG_DATA_DESCRIPTOR = 0x0008  # bit 3, APPNOTE 4.4.4
_FLAG_UTF8 = 0x0800  # bit 11, APPNOTE 4.4.4 and appendix D
_VERSION_DEFAULT = 20  # 2.0: directories, data descriptors (APPNOTE 4.4.3.2)
_VERSION_ZIP64 = 45  # 4.5: ZIP64
_MADE_BY = (3 << 8) | _VERSION_ZIP64  # Unix (external attributes hold st_mode), spec 4.5
_MSDOS_DIRECTORY = 0x10
_ZIP64_EXTRA = 0x0001  # APPNOTE 4.5.3
_TIMESTAMP_EXTRA = 0x5455  # Info-ZIP extended timestamp (APPNOTE 4.6, extrafld.txt)


def _dos_date_time(mtime: float) -> tuple[int, int]:
    """(date, time) in MS-DOS format, local time as Info-ZIP and ``zipfile`` write it
    (APPNOTE 4.4.6), clamped to what it can hold (1980 to 2107)."""
    t = time.localtime(mtime)
    if t.tm_year < 1980:
        return (1 << 5) | 1, 0  # 1980-01-01 00:00
    if t.tm_year > 2107:
        return (127 << 9) | (12 << 5) | 31, (23 << 11) | (59 << 5) | 29
    date = ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday
    return date, (t.tm_hour << 11) | (t.tm_min << 5) | (min(t.tm_sec, 59) // 2)


def _timestamp_extra(mtime: float) -> bytes:
    """The exact UTC modification time, which the DOS fields lack (flags: mtime only)."""
    seconds = int(mtime)
    if not 0 <= seconds < 1 << 31:  # read as signed by some unzip versions
        return b""
    return struct.pack("<HHBI", _TIMESTAMP_EXTRA, 5, 1, seconds)


class Spool(Protocol):
    """Where :class:`ZipWriter` keeps the central directory (``BytesIO``, a temporary file)."""

    def write(self, data: bytes, /) -> int: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class _Pending:
    """What the central directory needs of the entry whose data is being written."""

    name: bytes
    flags: int
    offset: int
    date: int
    time: int
    external: int
    timestamp: bytes
    zip64_local: bool


class ZipWriter:
    """A streaming ZIP writer: returns the bytes to send, never seeks back (pure, no I/O
    except writing central directory records to *central*).

    Per file: :meth:`start_file`, the data (the caller sends it and computes its CRC-32), then
    :meth:`end_file`; per directory: :meth:`directory`; at the end :meth:`finish`.  ZIP64
    fields appear where a size or offset reaches *zip64_limit* and the ZIP64 end records when
    the central directory's size, offset or entry count (*count_limit*) need them; both limits
    are the format's own (0xFFFFFFFF, 0xFFFF: values from which the 32- and 16-bit fields
    hold the "see ZIP64" marker) and lower only to test those paths with small archives.
    *central* receives the central directory records until :meth:`finish` reads them back.
    """

    def __init__(
        self,
        central: Spool | None = None,
        *,
        zip64_limit: int = 0xFFFFFFFF,
        count_limit: int = 0xFFFF,
    ) -> None:
        self._central = central if central is not None else io.BytesIO()
        self._zip64_limit = zip64_limit
        self._count_limit = count_limit
        #: Bytes of archive returned so far: the offset of the next local header.
        self.offset = 0
        self.count = 0
        self._central_size = 0
        self._pending: _Pending | None = None

    def directory(self, name: str, mtime: float, mode: int) -> bytes:
        """The local header of directory *name* (``/`` added if missing); sizes are known."""
        if self._pending is not None:
            raise RuntimeError("end_file() the previous file first")
        if not name.endswith("/"):
            name += "/"
        external = ((stat.S_IFDIR | stat.S_IMODE(mode)) << 16) | _MSDOS_DIRECTORY
        pending = self._local(name, mtime, external, flags=0, zip64_local=False)
        header = self._local_header(pending, crc=0, size=0)
        self._record(pending, crc=0, size=0)
        return header

    def start_file(self, name: str, mtime: float, mode: int, size: int) -> bytes:
        """The local header of file *name*, whose data (of about *size* bytes, which decides
        whether ZIP64 sizes are announced: it must not grow past *zip64_limit*) follows."""
        if self._pending is not None:
            raise RuntimeError("end_file() the previous file first")
        external = (stat.S_IFREG | stat.S_IMODE(mode)) << 16
        # A ZIP64 extra field in the local header is what tells a reader that the data
        # descriptor holds 8-byte sizes (APPNOTE 4.3.9.2).
        pending = self._local(
            name,
            mtime,
            external,
            flags=_FLAG_DATA_DESCRIPTOR,
            zip64_local=size >= self._zip64_limit,
        )
        self._pending = pending
        return self._local_header(pending, crc=0, size=0)

    def end_file(self, crc: int, size: int) -> bytes:
        """The data descriptor of the current file, of which *size* bytes with CRC-32 *crc*
        were sent since :meth:`start_file`."""
        pending = self._pending
        if pending is None:
            raise RuntimeError("no file started")
        self._pending = None
        if pending.zip64_local:
            descriptor = _DESCRIPTOR_64.pack(b"PK\x07\x08", crc, size, size)
        elif size >= self._zip64_limit:
            raise ValueError(f"{pending.name!r} grew past the size announced to start_file()")
        else:
            descriptor = _DESCRIPTOR_32.pack(b"PK\x07\x08", crc, size, size)
        self.offset += size + len(descriptor)
        self._record(pending, crc, size)
        return descriptor

    def finish(self) -> Iterator[bytes]:
        """The central directory, then the end records (ZIP64 ones when needed)."""
        if self._pending is not None:
            raise RuntimeError("end_file() the last file first")
        start = self.offset
        self._central.seek(0)
        while chunk := self._central.read(CHUNK_TARGET):
            yield chunk
        size = self._central_size
        end_offset = start + size
        tail = b""
        if (
            self.count >= self._count_limit
            or size >= self._zip64_limit
            or start >= self._zip64_limit
        ):
            tail += _ZIP64_END.pack(
                b"PK\x06\x06",
                _ZIP64_END.size - 12,  # what follows the size field itself
                _MADE_BY,
                _VERSION_ZIP64,
                0,
                0,
                self.count,
                self.count,
                size,
                start,
            )
            tail += _ZIP64_LOCATOR.pack(b"PK\x06\x07", 0, end_offset, 1)
        count16 = self.count if self.count < self._count_limit else 0xFFFF
        tail += _END.pack(
            b"PK\x05\x06",
            0,
            0,
            count16,
            count16,
            self._field32(size),
            self._field32(start),
            0,
        )
        self.offset = end_offset + len(tail)
        yield tail

    # ---------------------------------------------------------------- helpers

    def _field32(self, value: int) -> int:
        return 0xFFFFFFFF if value >= self._zip64_limit else value

    def _local(
        self, name: str, mtime: float, external: int, *, flags: int, zip64_local: bool
    ) -> _Pending:
        if not name.isascii():
            flags |= _FLAG_UTF8
        date, dos_time = _dos_date_time(mtime)
        return _Pending(
            name.encode("utf-8"),
            flags,
            self.offset,
            date,
            dos_time,
            external,
            _timestamp_extra(mtime),
            zip64_local,
        )

    def _local_header(self, entry: _Pending, *, crc: int, size: int) -> bytes:
        extra = entry.timestamp
        size32 = size
        version = _VERSION_DEFAULT
        if entry.zip64_local:
            # Both sizes MUST be in the local ZIP64 field (APPNOTE 4.5.3); zero, as the
            # data descriptor has them.
            extra = struct.pack("<HHQQ", _ZIP64_EXTRA, 16, size, size) + extra
            size32 = 0xFFFFFFFF
            version = _VERSION_ZIP64
        header = (
            _LOCAL_HEADER.pack(
                b"PK\x03\x04",
                version,
                entry.flags,
                0,  # stored
                entry.time,
                entry.date,
                crc,
                size32,
                size32,
                len(entry.name),
                len(extra),
            )
            + entry.name
            + extra
        )
        self.offset += len(header)
        return header

    def _record(self, entry: _Pending, crc: int, size: int) -> None:
        """Write the central directory record of a finished entry to *central*."""
        # ZIP64 fields, in this fixed order, only for the fields that overflow (APPNOTE 4.5.3).
        zip64 = b""
        size32 = offset32 = 0
        if size >= self._zip64_limit:
            zip64 += struct.pack("<QQ", size, size)  # uncompressed, then compressed
            size32 = 0xFFFFFFFF
        else:
            size32 = size
        if entry.offset >= self._zip64_limit:
            zip64 += struct.pack("<Q", entry.offset)
            offset32 = 0xFFFFFFFF
        else:
            offset32 = entry.offset
        extra = entry.timestamp
        if zip64:
            extra = struct.pack("<HH", _ZIP64_EXTRA, len(zip64)) + zip64 + extra
        version = _VERSION_ZIP64 if zip64 or entry.zip64_local else _VERSION_DEFAULT
        record = (
            _CENTRAL_HEADER.pack(
                b"PK\x01\x02",
                _MADE_BY,
                version,
                entry.flags,
                0,  # stored
                entry.time,
                entry.date,
                crc,
                size32,
                size32,
                len(entry.name),
                len(extra),
                0,  # comment length
                0,  # disk number start
                0,  # internal attributes
                entry.external,
                offset32,
            )
            + entry.name
            + extra
        )
        self._central.write(record)
        self._central_size += len(record)
        self.count += 1


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


# ---------------------------------------------------------------- the walk (blocking)


@dataclass(frozen=True)
class _Found:
    """An entry to archive: *rel* is its path below the archived directory (``/`` after a
    directory, empty for the archived directory itself), *real* the path to open, *st* its
    ``stat`` (a directory's; files are described by ``fstat`` once open)."""

    rel: str
    real: str
    st: os.stat_result

    @property
    def is_dir(self) -> bool:
        return not self.rel or self.rel.endswith("/")


def list_directory(real: str) -> list[str]:
    """The names in directory *real*, sorted (blocking; ``OSError`` passes through)."""
    return sorted(os.listdir(real))


def read_top(real: str) -> tuple[os.stat_result, list[str]]:
    """The ``stat`` and sorted names of the archived directory (blocking; ``OSError``
    passes through)."""
    return os.stat(real), list_directory(real)


def _walk(
    top_st: os.stat_result,
    names: list[str],
    url_dir: str,
    policy: PathPolicy,
    may_read: Callable[[str], bool],
    may_enter: Callable[[str], bool] | None,
) -> Iterator[_Found | None]:
    """The entries to archive below the directory (whose ``stat`` and sorted *names* are
    already read), depth first, each directory before its content.  ``None`` for each entry
    skipped: a point where the caller may stop even if nothing is archived for a while."""
    entered = {_identity(top_st)}
    stack: list[tuple[str, Iterator[str]]] = [("", iter(names))]
    while stack:
        rel_dir, pending = stack[-1]
        name = next(pending, None)
        if name is None:
            stack.pop()
            continue
        if name.startswith(TEMP_PREFIX) or not _utf8(name):
            yield None  # an upload in progress; a name no URL can reach
            continue
        rel = rel_dir + name
        try:
            real = resolve_path_text(policy, url_dir + rel)
            st = os.stat(real)
        except HTTPError:
            yield None  # hidden, or leading out of the root: the policy, not an error
            continue
        except OSError as exc:
            log.info("archive of /%s: skipped %s: %s", url_dir, rel, exc.strerror or exc)
            yield None  # vanished, a broken link or a loop of links
            continue
        if stat.S_ISDIR(st.st_mode):
            rel += "/"
            readable = may_read(url_dir + rel)
            enter = readable if may_enter is None else may_enter(url_dir + rel)
            if not enter or _identity(st) in entered:
                yield None  # not for this visitor; already archived (a link, a loop)
                continue
            entered.add(_identity(st))
            try:
                children = list_directory(real)
            except OSError as exc:
                log.warning("archive of /%s: skipped %s: %s", url_dir, rel, exc.strerror or exc)
                yield None
                continue
            # Not readable but entered: only on the way to what is; no entry of its own.
            yield _Found(rel, real, st) if readable else None
            stack.append((rel, iter(children)))
        elif stat.S_ISREG(st.st_mode) and may_read(url_dir + rel):
            yield _Found(rel, real, st)
        else:
            yield None  # a FIFO, socket or device; or not for this visitor


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _utf8(name: str) -> bool:
    """Whether *name* is valid UTF-8 on disk (else ``os`` gave it lone surrogates)."""
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _OpenFile:
    """A regular file opened for archiving: its descriptor and its ``fstat``."""

    def __init__(self, fd: int, st: os.stat_result) -> None:
        self.fd = fd
        self.st = st

    @classmethod
    def open(cls, found: _Found, label: str) -> _OpenFile | None:
        """Open *found*; ``None`` (logged) if it cannot be opened or is no longer a file."""
        try:
            # O_NONBLOCK: a FIFO swapped in since the walk must not block the thread.
            fd = os.open(found.real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            log.warning("archive of %s: skipped %s: %s", label, found.rel, exc.strerror or exc)
            return None
        try:
            st = os.fstat(fd)
        except OSError as exc:
            os.close(fd)
            log.warning("archive of %s: skipped %s: %s", label, found.rel, exc.strerror or exc)
            return None
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        return cls(fd, st)

    def chunks(self, label: str, rel: str) -> Iterator[bytes]:
        """The file's data up to its size when opened; ends early (logged) if it shrank or
        a read failed."""
        remaining = self.st.st_size
        while remaining > 0:
            try:
                chunk = os.read(self.fd, min(remaining, READ_SIZE))
            except OSError as exc:
                log.warning(
                    "archive of %s: %s could not be read whole: %s",
                    label,
                    rel,
                    exc.strerror or exc,
                )
                return
            if not chunk:
                log.warning("archive of %s: %s shrank while it was archived", label, rel)
                return
            remaining -= len(chunk)
            yield chunk
        try:
            grown = os.fstat(self.fd).st_size > self.st.st_size
        except OSError:
            grown = False
        if grown:
            log.warning(
                "archive of %s: %s grew while it was archived; cut at %d bytes",
                label,
                rel,
                self.st.st_size,
            )

    def close(self) -> None:
        os.close(self.fd)


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
    walk = _walk(top_st, names, url_dir, policy, may_read, may_enter)
    # The top folder has an entry of its own only if it may be read (not just entered).
    top_entry = _Found("", "", top_st) if may_read(url_dir) else None
    label = "/" + url_dir
    if fmt == "zip":
        return _zip_pieces(top_entry, walk, top, label, zip64_limit, count_limit)
    if fmt == "tar.gz":
        return _gzip(_tar_pieces(top_entry, walk, top, label), gzip_level)
    raise ValueError(f"unknown archive format {fmt!r}")


def _zip_pieces(
    top_entry: _Found | None,
    walk: Iterator[_Found | None],
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
            file = _OpenFile.open(found, label)
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
    top_entry: _Found | None, walk: Iterator[_Found | None], top: str, label: str
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
        file = _OpenFile.open(found, label)
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
    return name if name and _utf8(name) else "files"


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
