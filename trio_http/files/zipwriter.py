"""Streaming ZIP archives: PKWARE APPNOTE 6.3.10, entries *stored* (no compression):
on two cores deflate would make the CPU, not the network, the limit (about 50 MB/s at level
6), most large files (photos, video, archives) do not compress anyway, and ``tar.gz`` is there
for compressible trees.  Each file's local header has general purpose bit 3 set (CRC and sizes
follow in a data descriptor, since the CRC is only known once the data is sent) and bit 11 for
UTF-8 names; ZIP64 fields and end records are written when sizes, offsets or the entry count
need them.  Readers that use the central directory (``unzip``, 7-Zip, Windows Explorer, macOS
Archive Utility, Python's ``zipfile``, ``bsdtar`` on a file) read it; strictly sequential
readers that refuse stored entries with data descriptors (Java's ``ZipInputStream``) do not.
"""

from __future__ import annotations

import io
import stat
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Spool", "ZipWriter"]

#: Central directory bytes handed out at a time when the archive ends.
CHUNK_TARGET = 64 * 1024

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
