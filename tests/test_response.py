import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from trio_http.response import (
    FileChangedError,
    FileResponse,
    Response,
    StreamingResponse,
    error_response,
    reason_phrase,
)


def test_reason_phrases() -> None:
    assert reason_phrase(200) == b"OK"
    assert reason_phrase(404) == b"Not Found"
    assert reason_phrase(201) == b"Created"
    assert reason_phrase(799) == b""


def test_response_encodes_str_and_knows_its_length() -> None:
    response = Response("héllo", content_type="text/plain")
    assert response.body == "héllo".encode()
    assert response.content_length == 6
    assert response.headers["content-type"] == "text/plain"


def test_status_must_be_final() -> None:
    with pytest.raises(ValueError, match="final response"):
        Response(status=100)


def test_error_response_text() -> None:
    response = error_response(404, "no such file", {"x": "1"})
    assert response.status == 404
    assert response.body == b"404 Not Found: no such file\n"
    assert response.headers["x"] == "1"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


async def test_streaming_response_skips_empty_chunks_and_closes() -> None:
    closed = False

    async def parts() -> AsyncIterator[bytes]:
        nonlocal closed
        try:
            yield b"a"
            yield b""
            yield b"b"
        finally:
            closed = True

    response = StreamingResponse(parts())
    assert [chunk async for chunk in response.iter_body()] == [b"a", b"b"]
    await response.aclose()
    assert closed


async def test_file_response_parts(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    with open(path, "rb") as file:
        whole = FileResponse(file)
        assert whole.content_length == 10
        assert b"".join([c async for c in whole.iter_body()]) == b"0123456789"
    file = open(path, "rb")  # noqa: SIM115 - closed by the response
    parts = FileResponse(file, 206, parts=[b"<", (2, 3), b">", (8, 2)])
    assert parts.content_length == 7
    assert b"".join([c async for c in parts.iter_body()]) == b"<234>89"
    await parts.aclose()
    assert file.closed


async def test_file_that_shrinks_raises(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    file = open(path, "rb")  # noqa: SIM115 - closed by the response
    response = FileResponse(file)
    os.truncate(path, 10)
    with pytest.raises(FileChangedError):
        async for _ in response.iter_body():
            pass
    await response.aclose()
