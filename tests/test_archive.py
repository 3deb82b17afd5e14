"""Folder archives (trio_http/files/archive.py): contents checked byte for byte with zipfile
and tarfile, the path policy and access filter, ZIP64, memory bounds, closing early, and the
response through a real connection."""

from __future__ import annotations

import io
import logging
import os
import random
import struct
import tarfile
import time
import zipfile
import zlib
from collections import deque
from collections.abc import AsyncGenerator, Callable
from pathlib import Path

import h11
import pytest
import trio

from trio_http import App, Request, ServerConfig, serve
from trio_http.errors import HTTPError
from trio_http.files import archive
from trio_http.files.archive import (
    CHUNK_TARGET,
    archive_chunks,
    archive_response,
    ascii_fallback,
    content_disposition,
)
from trio_http.files.paths import PathPolicy, resolve_path
from trio_http.files.treewalk import READ_SIZE, read_top
from trio_http.files.uploads import TEMP_PREFIX
from trio_http.files.zipwriter import ZipWriter
from trio_http.response import BaseResponse, StreamingResponse
from trio_http.testing import TestClient

UNICODE_NAME = "ünïcødé 文件.txt"
LONG_NAME = "l" * 150 + ".txt"
BIG = random.Random(7).randbytes(2 * READ_SIZE + 12345)  # spans several reads

#: What :func:`make_tree` archives by default: path below the top folder -> content
#: (``None`` for a directory).
VISIBLE: dict[str, bytes | None] = {
    "docs/": None,
    "docs/a.txt": b"hello\n",
    "docs/empty.txt": b"",
    "docs/nested/": None,
    "docs/nested/deep/": None,
    "docs/nested/deep/big.bin": BIG,
    f"docs/nested/{LONG_NAME}": b"long\n",
    f"docs/{UNICODE_NAME}": "ünïcødé\n".encode(),
    "empty/": None,
    "inside-link.txt": b"hello\n",  # a symlink to docs/a.txt: archived as what it points to
    "top.txt": b"top\n",
}
#: What allow_hidden adds.
HIDDEN: dict[str, bytes | None] = {
    ".hidden.txt": b"secret\n",
    ".hiddendir/": None,
    ".hiddendir/inner.txt": b"inner\n",
    "docs/.hidden.txt": b"hidden below\n",
}


def make_tree(base: Path) -> Path:
    """A served root with nested, empty, UTF-8, long, hidden and special entries, symlinks
    inside, out of the root and in a loop, and an upload in progress."""
    root = base / "root"
    outside = base / "outside"
    outside.mkdir()
    (outside / "escaped.txt").write_bytes(b"escaped\n")
    for rel, content in {**VISIBLE, **HIDDEN}.items():
        if rel == "inside-link.txt":
            continue
        path = root / rel
        if content is None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    os.symlink("docs/a.txt", root / "inside-link.txt")
    os.symlink(outside, root / "escape")  # leads out of the root
    os.symlink("..", root / "docs" / "loop")  # back to the root: a loop
    os.symlink("missing", root / "broken")
    os.mkfifo(root / "docs" / "fifo")
    (root / f"{TEMP_PREFIX}abc.part").write_bytes(b"partial upload")
    # Distinct modification times, in the past, to check that they are kept.
    for index, rel in enumerate(sorted({**VISIBLE, **HIDDEN})):
        if rel != "inside-link.txt":
            stamp = 1_600_000_000 + index * 3600
            os.utime(root / rel, (stamp, stamp))
    return root


def build(
    directory: Path,
    url_dir: str,
    fmt: str,
    policy: PathPolicy,
    may_read: Callable[[str], bool] = lambda path: True,
    **options: object,
) -> bytes:
    top_st, names = read_top(os.fspath(directory))
    pieces = archive_chunks(
        top_st,
        names,
        url_dir,
        fmt,
        top="root",
        policy=policy,
        may_read=may_read,
        **options,  # type: ignore[arg-type]
    )
    return b"".join(pieces)


def zip_contents(data: bytes) -> dict[str, bytes | None]:
    """Every entry of a ZIP below its top folder, checked with zipfile (CRC included) and
    against its data descriptor."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        infos = zf.infolist()
        names = [info.filename for info in infos]
        assert len(names) == len(set(names))
        contents: dict[str, bytes | None] = {}
        for info in infos:
            assert info.filename.startswith("root/")
            rel = info.filename.removeprefix("root/")
            contents[rel] = None if info.is_dir() else zf.read(info)
            check_local_entry(data, info)
    contents.pop("", None)
    return contents


def check_local_entry(data: bytes, info: zipfile.ZipInfo) -> None:
    """The local header names the entry, and a file's data descriptor holds its CRC and
    sizes: 8-byte sizes exactly when the local header has a ZIP64 field (APPNOTE 4.3.9)."""
    offset = info.header_offset
    (sig, _, flags, method, _, _, _, _, _, name_len, extra_len) = struct.unpack_from(
        "<4sHHHHHIIIHH", data, offset
    )
    assert sig == b"PK\x03\x04" and method == 0
    name = data[offset + 30 : offset + 30 + name_len]
    assert name == info.filename.encode("utf-8")
    assert bool(flags & 0x800) == (not info.filename.isascii())
    extra = data[offset + 30 + name_len : offset + 30 + name_len + extra_len]
    if info.is_dir():
        assert not flags & 0x8
        return
    assert flags & 0x8
    zip64 = _has_extra(extra, 0x0001)
    descriptor = offset + 30 + name_len + extra_len + info.file_size
    if zip64:
        sig, crc, csize, usize = struct.unpack_from("<4sIQQ", data, descriptor)
    else:
        sig, crc, csize, usize = struct.unpack_from("<4sIII", data, descriptor)
    assert (sig, crc, csize, usize) == (b"PK\x07\x08", info.CRC, info.file_size, info.file_size)


def _has_extra(extra: bytes, tag: int) -> bool:
    while extra:
        field, size = struct.unpack_from("<HH", extra)
        if field == tag:
            return True
        extra = extra[4 + size :]
    return False


def tar_contents(data: bytes) -> dict[str, bytes | None]:
    contents: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        for member in tf:
            assert member.name == "root" or member.name.startswith("root/")
            rel = member.name.removeprefix("root").removeprefix("/")
            if member.isdir():
                contents[rel + "/" if rel else ""] = None
            else:
                assert member.isfile()
                file = tf.extractfile(member)
                assert file is not None
                contents[rel] = file.read()
    contents.pop("", None)
    return contents


def contents_of(data: bytes, fmt: str) -> dict[str, bytes | None]:
    return zip_contents(data) if fmt == "zip" else tar_contents(data)


def docs_expected() -> dict[str, bytes | None]:
    """What an archive of docs/ holds, below its top folder."""
    expected = {
        rel.removeprefix("docs/"): content
        for rel, content in VISIBLE.items()
        if rel.startswith("docs/") and rel != "docs/"
    }
    # docs/loop leads back to the root, inside the root and not archived yet: it is archived
    # once, as loop/, without its docs/ (the directory being archived: the loop ends there).
    expected["loop/"] = None
    for rel, content in VISIBLE.items():
        if not rel.startswith("docs/"):
            expected["loop/" + rel] = content
    return expected


FORMATS = ["zip", "tar.gz"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_tree(tmp_path)


# ------------------------------------------------------------------ contents and policy


@pytest.mark.parametrize("fmt", FORMATS)
def test_tree_byte_for_byte(root: Path, fmt: str) -> None:
    """Nested and empty directories, UTF-8 and long names, links inside the root; no hidden
    names, no link out of the root, no FIFO, no upload in progress, the loop ends."""
    data = build(root, "", fmt, PathPolicy(root))
    assert contents_of(data, fmt) == VISIBLE


@pytest.mark.parametrize("fmt", FORMATS)
def test_hidden_included_with_allow_hidden(root: Path, fmt: str) -> None:
    data = build(root, "", fmt, PathPolicy(root, allow_hidden=True))
    # The upload in progress stays out even so.
    assert contents_of(data, fmt) == {**VISIBLE, **HIDDEN}


@pytest.mark.parametrize("fmt", FORMATS)
def test_escaping_symlink_followed_only_when_allowed(root: Path, fmt: str) -> None:
    data = build(root, "", fmt, PathPolicy(root, follow_symlinks=True))
    assert contents_of(data, fmt) == {
        **VISIBLE,
        "escape/": None,
        "escape/escaped.txt": b"escaped\n",
    }


@pytest.mark.parametrize("fmt", FORMATS)
def test_subdirectory_uses_url_paths(root: Path, fmt: str) -> None:
    asked: list[str] = []

    def may_read(path: str) -> bool:
        asked.append(path)
        return True

    policy = PathPolicy(root)
    data = build(resolve_path(policy, "docs/"), "docs/", fmt, policy, may_read)
    assert contents_of(data, fmt) == docs_expected()
    assert "docs/nested/deep/" in asked and "docs/a.txt" in asked
    assert "docs/loop/docs/" in asked and "docs/loop/docs/a.txt" not in asked


@pytest.mark.parametrize("fmt", FORMATS)
def test_may_read_filters_files_and_directories(root: Path, fmt: str) -> None:
    def may_read(path: str) -> bool:
        return not path.startswith("docs/nested/") and not path.endswith("a.txt")

    data = build(root, "", fmt, PathPolicy(root), may_read)
    assert contents_of(data, fmt) == {
        rel: content
        for rel, content in VISIBLE.items()
        if not rel.startswith("docs/nested/") and not rel.endswith("a.txt")
    }


@pytest.mark.parametrize("fmt", FORMATS)
def test_may_enter_reaches_readable_entries_below_unreadable_ones(root: Path, fmt: str) -> None:
    def may_read(path: str) -> bool:
        return path.startswith("docs/nested/deep/")

    def may_enter(path: str) -> bool:
        return may_read(path) or "docs/nested/deep/".startswith(path)

    data = build(root, "", fmt, PathPolicy(root), may_read, may_enter=may_enter)
    # No entry for root/, docs/ or docs/nested/ themselves: only what may be read.
    assert contents_of(data, fmt) == {"docs/nested/deep/": None, "docs/nested/deep/big.bin": BIG}


def test_zip_metadata(root: Path) -> None:
    data = build(root, "", "zip", PathPolicy(root))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for rel in ("docs/a.txt", "docs/nested/", "empty/"):
            info = zf.getinfo("root/" + rel)
            st = os.stat(root / rel)
            assert info.date_time == _dos_rounded(st.st_mtime)
            assert info.external_attr >> 16 == st.st_mode
            assert info.create_system == 3  # Unix
            assert info.compress_type == zipfile.ZIP_STORED
    # Extended timestamp: exact seconds, UTC.
    assert int(os.stat(root / "docs/a.txt").st_mtime) in _timestamps(data)


def _dos_rounded(mtime: float) -> tuple[int, int, int, int, int, int]:
    t = time.localtime(mtime)
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec // 2 * 2)


def _timestamps(data: bytes) -> set[int]:
    found = set()
    start = 0
    while (index := data.find(struct.pack("<HHB", 0x5455, 5, 1), start)) >= 0:
        found.add(struct.unpack_from("<I", data, index + 5)[0])
        start = index + 1
    return found


def test_tar_metadata(root: Path) -> None:
    data = build(root, "", "tar.gz", PathPolicy(root))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        member = tf.getmember(f"root/docs/{UNICODE_NAME}")
        st = os.stat(root / "docs" / UNICODE_NAME)
        assert member.mtime == int(st.st_mtime)
        assert member.mode == st.st_mode & 0o7777
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert tf.getmember(f"root/docs/nested/{LONG_NAME}").size == 5
    raw = zlib.decompress(data, 31)
    assert len(raw) % tarfile.RECORDSIZE == 0  # padded to a whole record, as tar writes it
    assert raw[-1024:] == bytes(1024)


def test_same_tree_same_archive(root: Path) -> None:
    policy = PathPolicy(root)
    for fmt in FORMATS:
        assert build(root, "", fmt, policy) == build(root, "", fmt, policy)


@pytest.mark.parametrize("fmt", FORMATS)
def test_unopenable_file_skipped_with_a_log_line(
    root: Path, fmt: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_open = os.open
    refused = os.fspath(root / "docs" / "a.txt")

    def fake_open(path: str, flags: int, *args: int) -> int:
        if path == refused:
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", fake_open)
    with caplog.at_level(logging.WARNING, "trio_http.error"):
        data = build(root, "", fmt, PathPolicy(root))
    expected = dict(VISIBLE)
    del expected["docs/a.txt"]
    del expected["inside-link.txt"]  # opened by its real path: docs/a.txt
    assert contents_of(data, fmt) == expected
    assert "skipped docs/a.txt: Permission denied" in caplog.text


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("change", ["shrink", "grow"])
def test_file_changing_size_keeps_the_archive_valid(
    root: Path,
    fmt: str,
    change: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The size is the one fstat gave when the file was opened: a tar pads a file that shrank
    (its header announced the size), a ZIP records what was read; a file that grew is cut."""
    target = root / "docs" / "nested" / "deep" / "big.bin"
    target_ino = os.stat(target).st_ino
    real_fstat = os.fstat
    changed = False

    def fstat(fd: int) -> os.stat_result:
        nonlocal changed
        st = real_fstat(fd)
        if st.st_ino == target_ino and not changed:
            changed = True  # right after the archive measured it
            if change == "shrink":
                os.truncate(target, 1000)
            else:
                with open(target, "ab") as file:
                    file.write(b"more")
        return st

    monkeypatch.setattr(os, "fstat", fstat)
    with caplog.at_level(logging.WARNING, "trio_http.error"):
        data = build(root, "", fmt, PathPolicy(root))
    assert changed
    got = contents_of(data, fmt)["docs/nested/deep/big.bin"]
    if change == "grow":
        assert got == BIG
        assert "grew while it was archived" in caplog.text
    elif fmt == "zip":
        assert got == BIG[:1000]
        assert "shrank while it was archived" in caplog.text
    else:
        assert got == BIG[:1000] + bytes(len(BIG) - 1000)
        assert "shrank while it was archived" in caplog.text


# ------------------------------------------------------------------ ZIP64


@pytest.mark.parametrize("limit", [1000, 200_000])
def test_zip64_code_paths_with_lowered_limit(root: Path, limit: int) -> None:
    """With the ZIP64 limit lowered, every ZIP64 field is exercised on a small archive (sizes,
    offsets, the end records) and zipfile reads it back byte for byte."""
    data = build(root, "", "zip", PathPolicy(root), zip64_limit=limit)
    assert contents_of(data, "zip") == VISIBLE
    assert b"PK\x06\x06" in data[-200:] and b"PK\x06\x07" in data[-200:]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        big = zf.getinfo("root/docs/nested/deep/big.bin")
    offset = big.header_offset
    name_len, extra_len = struct.unpack_from("<HH", data, offset + 26)
    extra = data[offset + 30 + name_len : offset + 30 + name_len + extra_len]
    assert _has_extra(extra, 0x0001)  # the local header announces 8-byte descriptor sizes
    assert struct.unpack_from("<II", data, offset + 18) == (0xFFFFFFFF, 0xFFFFFFFF)


def test_zip64_entry_count_with_lowered_limit() -> None:
    writer = ZipWriter(count_limit=3)
    data = b"".join(writer.directory(f"d{i}/", 1_600_000_000, 0o755) for i in range(3))
    data += b"".join(writer.finish())
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == ["d0/", "d1/", "d2/"]
    assert struct.unpack_from("<HH", data, len(data) - 22 + 8) == (0xFFFF, 0xFFFF)


def test_zip64_more_than_65535_entries() -> None:
    """The real entry-count limit, with the writer alone (65,540 files on disk take longer
    to create than to archive; the walk over real files is tested with a lowered limit)."""
    writer = ZipWriter()
    count = 65_540
    pieces = []
    for index in range(count):
        pieces.append(writer.start_file(f"f{index:05}", 1_600_000_000, 0o644, 1))
        pieces.append(b"x")
        pieces.append(writer.end_file(zlib.crc32(b"x"), 1))
    data = b"".join(pieces) + b"".join(writer.finish())
    eocd = len(data) - 22
    assert data[eocd : eocd + 4] == b"PK\x05\x06"
    assert struct.unpack_from("<HH", data, eocd + 8) == (0xFFFF, 0xFFFF)
    assert data[eocd - 20 : eocd - 16] == b"PK\x06\x07"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        assert len(infos) == count
        assert infos[-1].filename == f"f{count - 1:05}"
        assert zf.read(infos[-1]) == b"x"
        check_local_entry(data, infos[-1])


def test_zip64_entry_count_of_real_files_with_lowered_limit(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    for index in range(300):
        (root / f"f{index:03}").write_bytes(b"%d" % index)
    data = build(root, "", "zip", PathPolicy(root), count_limit=256)
    assert struct.unpack_from("<HH", data, len(data) - 22 + 8) == (0xFFFF, 0xFFFF)
    assert zip_contents(data) == {f"f{index:03}": b"%d" % index for index in range(300)}


def crc32_of_zeros(length: int) -> int:
    """``zlib.crc32(bytes(length))`` in O(log length): the CRC register is linear over GF(2)
    for zero input, so appending n zero bytes is a 32x32 bit matrix to the power n (the
    method of zlib's crc32_combine)."""

    def times(matrix: list[int], vector: int) -> int:
        total = 0
        index = 0
        while vector:
            if vector & 1:
                total ^= matrix[index]
            vector >>= 1
            index += 1
        return total

    def square(matrix: list[int]) -> list[int]:
        return [times(matrix, row) for row in matrix]

    bit = [0xEDB88320] + [1 << i for i in range(31)]  # one zero bit, reflected polynomial
    power = square(square(square(bit)))  # one zero byte
    register = 0xFFFFFFFF
    while length:
        if length & 1:
            register = times(power, register)
        power = square(power)
        length >>= 1
    return register ^ 0xFFFFFFFF


def test_crc32_of_zeros() -> None:
    for length in (0, 1, 7, 1000, 123_457):
        assert crc32_of_zeros(length) == zlib.crc32(bytes(length))


class _SparseView(io.RawIOBase):
    """A read-only file of *size* bytes that holds *head* at its start, *tail* at its end,
    and zeros between: the archive of a sparse file, without keeping 4 GiB."""

    def __init__(self, head: bytes, tail: bytes, size: int) -> None:
        self._head, self._tail, self._size, self._pos = head, tail, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = [offset, self._pos + offset, self._size + offset][whence]
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        start = self._pos
        end = min(self._size, start + len(buffer))
        data = bytearray(max(0, end - start))
        head_end = min(end, len(self._head))
        if start < head_end:
            data[: head_end - start] = self._head[start:head_end]
        tail_start = self._size - len(self._tail)
        if end > tail_start:
            first = max(start, tail_start)
            data[first - start :] = self._tail[first - tail_start : end - tail_start]
        buffer[: len(data)] = data
        self._pos = end
        return len(data)


def test_zip64_past_4_gib_streamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sparse 4.1 GiB file through the real limits, the output parsed on the fly (only its
    start and end are kept): ZIP64 sizes, offsets and end records, as zipfile reads them."""
    read_size = 4 << 20
    monkeypatch.setattr(archive, "READ_SIZE", read_size)  # 3 times faster than 256 KiB here
    root = tmp_path / "root"
    root.mkdir()
    size = (1 << 32) + 100 * (1 << 20)
    with open(root / "big.bin", "wb") as file:
        file.truncate(size)
    (root / "z.txt").write_bytes(b"after the big one\n")
    top_st, names = read_top(os.fspath(root))
    pieces = archive_chunks(
        top_st, names, "", "zip", top="root", policy=PathPolicy(root), may_read=lambda p: True
    )
    head = b""
    last: deque[bytes] = deque(maxlen=16)  # references: nothing copied
    total = 0
    largest = 0
    for piece in pieces:
        total += len(piece)
        largest = max(largest, len(piece))
        if len(head) < 4096:
            head += bytes(piece[: 4096 - len(head)])
        last.append(piece)
    assert total > size and largest <= read_size
    tail = b"".join(last)
    view = _SparseView(head, tail, total)
    with zipfile.ZipFile(io.BufferedReader(view, 65536)) as zf:
        big = zf.getinfo("root/big.bin")
        small = zf.getinfo("root/z.txt")
        assert big.file_size == big.compress_size == size
        assert crc32_of_zeros(size) == big.CRC
        assert small.header_offset > 0xFFFFFFFF  # an offset in a ZIP64 field
        assert zf.read(small) == b"after the big one\n"
    # The data descriptor before z.txt: 8-byte sizes, as announced by the local header.
    descriptor = small.header_offset - 24 - (total - len(tail))
    assert struct.unpack_from("<4sIQQ", tail, descriptor) == (
        b"PK\x07\x08",
        big.CRC,
        size,
        size,
    )
    # Its local header (in the kept start) has the ZIP64 field that announces them.
    offset = big.header_offset
    name_len, extra_len = struct.unpack_from("<HH", head, offset + 26)
    assert _has_extra(head[offset + 30 + name_len : offset + 30 + name_len + extra_len], 1)
    assert b"PK\x06\x06" in tail and b"PK\x06\x07" in tail


# ------------------------------------------------------------------ streaming, memory, closing


def _fd_of(path: Path) -> int | None:
    """The descriptor this process has open on *path*, if any (Linux /proc)."""
    target = os.fspath(path)
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == target:
                return int(name)
        except OSError:
            continue
    return None


def _position(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as info:
        return int(next(line for line in info if line.startswith("pos:")).split()[1])


@pytest.mark.parametrize("fmt", FORMATS)
async def test_streamed_in_bounded_chunks_read_only_as_asked(tmp_path: Path, fmt: str) -> None:
    """Chunks stay small whatever the file size, the file is read no further than the chunks
    taken, and closing the body early closes the file."""
    root = tmp_path / "root"
    root.mkdir()
    big = root / "big.bin"
    big.write_bytes(random.Random(1).randbytes(8 << 20))  # does not compress
    policy = PathPolicy(root)
    response = await archive_response(root, "", fmt, policy=policy, may_read=lambda p: True)
    body = response.iter_body()
    assert isinstance(body, AsyncGenerator)
    taken = 0
    for _ in range(8):
        chunk = await body.__anext__()
        assert len(chunk) <= CHUNK_TARGET + READ_SIZE
        taken += len(chunk)
    fd = _fd_of(big)
    assert fd is not None
    # Read ahead of what was taken: at most the chunk being gathered, one read, and what
    # gzip holds back (its window and pending output).
    assert _position(fd) <= taken + CHUNK_TARGET + READ_SIZE + (128 << 10)
    await body.aclose()
    await response.aclose()
    assert _fd_of(big) is None


async def test_whole_body_chunks_are_bounded(root: Path) -> None:
    response = await archive_response(
        root, "", "zip", policy=PathPolicy(root), may_read=lambda p: True
    )
    chunks = [chunk async for chunk in response.iter_body()]
    await response.aclose()
    assert max(map(len, chunks)) <= CHUNK_TARGET + READ_SIZE
    assert zip_contents(b"".join(chunks)) == VISIBLE


async def test_close_before_start_and_twice(root: Path) -> None:
    response = await archive_response(
        root, "", "tar.gz", policy=PathPolicy(root), may_read=lambda p: True
    )
    await response.aclose()
    await response.aclose()
    assert [chunk async for chunk in response.iter_body()] == []


async def test_bad_format_and_missing_directory(root: Path) -> None:
    policy = PathPolicy(root)
    with pytest.raises(HTTPError) as bad:
        await archive_response(root, "", "rar", policy=policy, may_read=lambda p: True)
    assert bad.value.status == 400
    assert "zip" in str(bad.value.detail) and "tar.gz" in str(bad.value.detail)
    with pytest.raises(HTTPError) as missing:
        await archive_response(root / "nope", "nope/", "zip", policy=policy, may_read=bool)
    assert missing.value.status == 404


def test_skipped_entries_let_a_step_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long run of skipped entries still ends each worker-thread step (empty pieces), so a
    client that left is noticed before the whole tree is walked."""
    root = tmp_path / "root"
    root.mkdir()
    for index in range(50):
        (root / f".hidden{index}").touch()
    top_st, names = read_top(os.fspath(root))
    pieces = archive_chunks(
        top_st, names, "", "zip", top="root", policy=PathPolicy(root), may_read=lambda p: True
    )
    monkeypatch.setattr(archive, "STEP_SECONDS", 0.0)
    first = archive._pull(pieces)  # the top folder's entry
    assert first and first.startswith(b"PK\x03\x04")
    assert archive._pull(pieces) == b""  # the deadline passed at the first skipped entry
    pieces.close()


# ------------------------------------------------------------------ headers


def test_content_disposition() -> None:
    assert content_disposition("photos.zip") == (
        "attachment; filename=\"photos.zip\"; filename*=UTF-8''photos.zip"
    )
    assert content_disposition('Café 文件 "x".tar.gz') == (
        'attachment; filename="Cafe __ _x_.tar.gz"; '
        "filename*=UTF-8''Caf%C3%A9%20%E6%96%87%E4%BB%B6%20%22x%22.tar.gz"
    )
    assert ascii_fallback("a\\b%c") == "a_b_c"


# ------------------------------------------------------------------ through a connection


def _app(root: Path, policy: PathPolicy) -> App:
    app = App()

    async def files(request: Request) -> BaseResponse:
        url_path = request.path_params["path"]
        directory = resolve_path(policy, url_path)
        return await archive_response(
            directory,
            url_path,
            request.query["download"][0],
            policy=policy,
            may_read=lambda path: True,
        )

    app.add_route("/files/{path:path}", files, ["GET"])
    return app


@pytest.mark.parametrize("fmt", FORMATS)
async def test_end_to_end(root: Path, fmt: str) -> None:
    policy = PathPolicy(root)
    async with TestClient(_app(root, policy)) as client:
        with trio.fail_after(20):
            response = await client.get(
                f"/files/docs/?download={fmt}", headers={"accept-encoding": "gzip, br"}
            )
    assert response.status == 200
    headers = response.headers
    assert headers.get("content-type") == (
        "application/zip" if fmt == "zip" else "application/gzip"
    )
    assert headers.get("content-encoding") is None  # not compressed again
    assert headers.get("transfer-encoding") == "chunked"
    extension = ".zip" if fmt == "zip" else ".tar.gz"
    assert headers.get("content-disposition") == (
        f"attachment; filename=\"docs{extension}\"; filename*=UTF-8''docs{extension}"
    )
    # The top folder is named after the directory: rename it to reuse the helpers.
    body = response.body
    if fmt == "zip":
        with zipfile.ZipFile(io.BytesIO(body)) as zf:
            assert {n.split("/")[0] for n in zf.namelist()} == {"docs"}
            got = {
                info.filename.removeprefix("docs/"): None if info.is_dir() else zf.read(info)
                for info in zf.infolist()
            }
    else:
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tf:
            got = {}
            for member in tf:
                rel = member.name.removeprefix("docs").removeprefix("/")
                file = tf.extractfile(member) if member.isfile() else None
                got[rel + "/" if member.isdir() and rel else rel] = file.read() if file else None
    got.pop("", None)
    assert got == docs_expected()


async def test_end_to_end_bad_format(root: Path) -> None:
    async with TestClient(_app(root, PathPolicy(root))) as client:
        with trio.fail_after(5):
            response = await client.get("/files/?download=7z")
    assert response.status == 400
    assert "accepted: zip, tar.gz" in response.text


class _Tracked(StreamingResponse):
    """The archive response, with an event set once the server has closed it."""

    def __init__(self, inner: StreamingResponse) -> None:
        super().__init__(inner.iter_body(), inner.status, inner.headers)
        self.inner = inner
        self.closed = trio.Event()

    async def aclose(self) -> None:
        try:
            await super().aclose()
            await self.inner.aclose()
        finally:
            self.closed.set()


async def test_client_leaving_mid_download_closes_the_file(tmp_path: Path) -> None:
    """Over a socket: a client that reads a little and disconnects makes the server close the
    response, which closes the file; the rest of the file is never read."""
    root = tmp_path / "root"
    root.mkdir()
    big = root / "big.bin"
    with open(big, "wb") as file:
        file.truncate(1 << 30)
    policy = PathPolicy(root)
    responses: list[_Tracked] = []
    app = App()

    async def files(request: Request) -> BaseResponse:
        inner = await archive_response(root, "", "zip", policy=policy, may_read=lambda p: True)
        responses.append(_Tracked(inner))
        return responses[-1]

    app.add_route("/archive", files, ["GET"])
    async with serve(app, "127.0.0.1", 0, config=ServerConfig(access_log=False)) as addresses:
        port = addresses[0][1]
        with trio.fail_after(20):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            conn = h11.Connection(h11.CLIENT)
            request = h11.Request(method="GET", target="/archive", headers=[("host", "t")])
            await stream.send_all(
                (conn.send(request) or b"") + (conn.send(h11.EndOfMessage()) or b"")
            )
            received = 0
            while received < 1 << 20:
                received += len(await stream.receive_some())
            fd = _fd_of(big)
            assert fd is not None
            # The server reads only as the socket takes data (its buffers are a few MiB).
            assert _position(fd) < 256 << 20
            await stream.aclose()
            await responses[0].closed.wait()
            assert _fd_of(big) is None
