"""ResponseWriter's strategies, seen from the transport: what goes out in which call."""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO, cast

import h11
import pytest

from trio_http.http11.writer import SMALL_FILE, ResponseAborted, ResponseWriter
from trio_http.response import FileChangedError, FileResponse
from trio_http.transport import Transport


class RecordingTransport:
    """The two sending calls of a Transport, recorded; files read as sendfile would."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def send(self, data: bytes | bytearray | memoryview, *, more: bool = False) -> None:
        self.calls.append(("send", bytes(data)))

    async def send_file(self, file: BinaryIO, offset: int, length: int) -> None:
        data = file.read(length) if file.seek(offset) == offset else b""
        if len(data) < length:
            raise FileChangedError("the file shrank")
        self.calls.append(("send_file", data))


def writer_after_a_request() -> tuple[ResponseWriter, RecordingTransport]:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n")
    assert isinstance(conn.next_event(), h11.Request)
    transport = RecordingTransport()
    return ResponseWriter(conn, cast(Transport, transport)), transport


def head(length: int) -> h11.Response:
    return h11.Response(status_code=200, headers=[(b"content-length", b"%d" % length)])


async def test_a_small_file_goes_out_with_its_head_in_one_write(tmp_path: Path) -> None:
    data = bytes(range(256)) * 4
    (tmp_path / "f").write_bytes(data)
    writer, transport = writer_after_a_request()
    with open(tmp_path / "f", "rb", buffering=0) as file:
        sent = await writer.write(head(len(data)), FileResponse(file), head_only=False)
    assert sent == len(data)
    assert [name for name, _ in transport.calls] == ["send"]
    assert transport.calls[0][1].endswith(b"\r\n\r\n" + data)


async def test_a_larger_file_goes_through_send_file(tmp_path: Path) -> None:
    data = b"x" * (SMALL_FILE + 1)
    (tmp_path / "f").write_bytes(data)
    writer, transport = writer_after_a_request()
    with open(tmp_path / "f", "rb", buffering=0) as file:
        await writer.write(head(len(data)), FileResponse(file), head_only=False)
    assert [name for name, _ in transport.calls] == ["send", "send_file"]
    assert transport.calls[1][1] == data


async def test_a_small_file_that_shrank_is_left_to_send_file(tmp_path: Path) -> None:
    """A short read is not sent as if whole: the send_file path reports the change."""
    (tmp_path / "f").write_bytes(b"short")
    writer, transport = writer_after_a_request()
    with open(tmp_path / "f", "rb", buffering=0) as file:
        response = FileResponse(file, parts=[(0, 100)])
        with pytest.raises(ResponseAborted, match="shrank"):
            await writer.write(head(100), response, head_only=False)
    assert [name for name, _ in transport.calls] == ["send"]  # the head only
