"""The file server through the real connection code (TestClient, in memory)."""

from __future__ import annotations

import errno
import fcntl
import gzip
import json
import logging
import os
import socket
import tempfile
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from trio_http import ServerConfig
from trio_http.builtin import build_app
from trio_http.compression import CompressionPolicy
from trio_http.files import FileServer
from trio_http.files.uploads import TEMP_PREFIX
from trio_http.routing import App
from trio_http.testing import TestClient


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "srv"
    base.mkdir()
    (base / "hello.txt").write_bytes(b"hello world\n")
    (base / "data.bin").write_bytes(bytes(range(256)) * 4)
    (base / "sub").mkdir()
    (base / "sub" / "nested.json").write_text('{"a": 1}')
    (base / ".secret").write_text("no")
    return base


@pytest.fixture
async def client(root: Path) -> AsyncIterator[TestClient]:
    async with TestClient(build_app(root)) as test_client:
        yield test_client


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob(f"{TEMP_PREFIX}*"))


# ---------------------------------------------------------------- reading


async def test_get_file(client: TestClient) -> None:
    response = await client.get("/files/data.bin")
    assert response.status == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-length"] == "1024"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.body == bytes(range(256)) * 4
    assert response.headers["etag"].startswith('"')
    assert response.headers["last-modified"].endswith(" GMT")


async def test_content_type_from_extension(client: TestClient) -> None:
    response = await client.get("/files/sub/nested.json")
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.body) == {"a": 1}


async def test_missing_file_is_404(client: TestClient) -> None:
    assert (await client.get("/files/nope")).status == 404
    assert (await client.get("/files/sub/nope/deeper")).status == 404
    assert (await client.get("/files/hello.txt/x")).status == 404


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/files/..%2F..%2Fetc%2Fpasswd", 400),
        ("/files/sub/..%2F..%2Fx", 400),
        ("/files/%2Fetc%2Fpasswd", 400),
        ("/files/a%00b", 400),
        ("/files/a%5Cb", 400),
        ("/files/.secret", 403),
    ],
)
async def test_unsafe_paths_are_refused(client: TestClient, path: str, status: int) -> None:
    assert (await client.get(path)).status == status
    assert (await client.post(path, b"x")).status == status


async def test_head_matches_get(client: TestClient) -> None:
    get = await client.get("/files/hello.txt")
    head = await client.head("/files/hello.txt")
    assert head.status == 200
    assert head.body == b""
    for name in ("content-length", "content-type", "etag", "last-modified", "accept-ranges"):
        assert head.headers[name] == get.headers[name]


async def test_directory_without_slash_redirects(client: TestClient) -> None:
    response = await client.get("/files/sub?x=1")
    assert response.status == 301
    assert response.headers["location"] == "/files/sub/?x=1"


async def test_prefix_without_slash_redirects(client: TestClient) -> None:
    response = await client.get("/files?x=1&y")
    assert response.status == 301
    assert response.headers["location"] == "/files/?x=1&y"
    assert (await client.get("/files")).headers["location"] == "/files/"
    head = await client.head("/files")
    assert (head.status, head.headers["location"]) == (301, "/files/")
    # The prefix itself is not a file: writing to it is refused like writing to /files/.
    refused = await client.put("/files", b"x")
    assert refused.status == 405
    assert refused.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("prefix", ["/static", "/static/", "/a/b"])
async def test_custom_prefix_without_slash_redirects(root: Path, prefix: str) -> None:
    app = App()
    FileServer(root, listings=False).install(app, prefix)
    base = prefix.rstrip("/")
    async with TestClient(app) as client:
        response = await client.get(f"{base}?q")
        assert response.status == 301
        assert response.headers["location"] == f"{base}/?q"
        assert (await client.get(f"{base}/")).status == 403  # listings are off
        assert (await client.get(f"{base}/hello.txt")).body == b"hello world\n"


async def test_html_listing(client: TestClient, root: Path) -> None:
    (root / "<b>&.txt").write_text("x")
    (root / "a b#c.txt").write_text("x")
    response = await client.get("/files/")
    assert response.status == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert '<a href="sub/">sub/</a>' in page
    assert "&lt;b&gt;&amp;.txt" in page and "<b>&" not in page
    assert 'href="a%20b%23c.txt"' in page
    assert ".secret" not in page
    assert page.index("sub/") < page.index("hello.txt")  # directories first
    assert 'href="../"' not in page  # no parent above the root
    nested = await client.get("/files/sub/")
    assert 'href="../"' in nested.text


async def test_json_listing(client: TestClient) -> None:
    response = await client.get("/files/", headers={"accept": "application/json"})
    listing = json.loads(response.body)
    names = [(e["name"], e["type"]) for e in listing["entries"]]
    assert names[0] == ("sub", "directory")
    assert ("hello.txt", "file") in names
    assert all(name != ".secret" for name, _ in names)


@pytest.mark.parametrize("accept", [None, "text/html", "application/json"])
@pytest.mark.parametrize("accept_encoding", [None, "gzip", "identity"])
async def test_listings_vary_by_accept(
    client: TestClient, accept: str | None, accept_encoding: str | None
) -> None:
    # HTML or JSON is chosen by Accept, so caches must key on it (RFC 9110 §12.5.5); the
    # connection adds Accept-Encoding to compressible responses: one field lists both.
    headers = {"accept": accept, "accept-encoding": accept_encoding}
    sent = {name: value for name, value in headers.items() if value is not None}
    for method in ("GET", "HEAD"):
        response = await client.request(method, "/files/", headers=sent)
        assert response.status == 200
        assert response.headers.get_list("vary") == ["Accept, Accept-Encoding"]


async def test_listing_vary_without_compression(root: Path) -> None:
    config = ServerConfig(access_log=False, compression=CompressionPolicy(enabled=False))
    async with TestClient(build_app(root), config) as client:
        for accept in ("text/html", "application/json"):
            response = await client.get("/files/sub/", headers={"accept": accept})
            assert response.headers.get_list("vary") == ["Accept"]


async def test_listing_disabled(root: Path) -> None:
    async with TestClient(build_app(root, listings=False)) as client:
        assert (await client.get("/files/")).status == 403


async def test_symlink_out_of_root_is_refused_and_not_listed(
    client: TestClient, root: Path, tmp_path: Path
) -> None:
    (tmp_path / "outside.txt").write_text("outside")
    (root / "escape").symlink_to(tmp_path / "outside.txt")
    assert (await client.get("/files/escape")).status == 403
    assert "escape" not in (await client.get("/files/")).text


async def test_symlink_followed_when_allowed(root: Path, tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_text("outside")
    (root / "escape").symlink_to(tmp_path / "outside.txt")
    async with TestClient(build_app(root, follow_symlinks=True)) as client:
        assert (await client.get("/files/escape")).body == b"outside"


# ---------------------------------------------------------------- file-system errors

LONG_NAME = "a" * 300  # over NAME_MAX (255)
LONG_PATH = "/".join(["b" * 200] * 21)  # 4.2 KiB, over PATH_MAX (4096), under max_target_length
METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE")


@pytest.mark.parametrize(
    ("url_path", "statuses"),
    [
        # (GET, HEAD, PUT, POST, DELETE)
        pytest.param(LONG_NAME, (414, 414, 414, 414, 414), id="300-char-name"),
        pytest.param(f"sub/{LONG_NAME}", (414, 414, 414, 414, 414), id="300-char-name-in-sub"),
        pytest.param(f"{LONG_NAME}/x", (414, 414, 414, 414, 414), id="300-char-directory"),
        pytest.param(LONG_PATH, (414, 414, 414, 414, 414), id="4KiB-path"),
        pytest.param("hello.txt/x", (404, 404, 409, 409, 404), id="through-a-file"),
        pytest.param("hello.txt/x/y", (404, 404, 409, 409, 404), id="deeper-through-a-file"),
        pytest.param("a%00b", (400, 400, 400, 400, 400), id="NUL"),
        pytest.param("sub/a%00b", (400, 400, 400, 400, 400), id="NUL-in-sub"),
        pytest.param("loop", (403, 403, 403, 403, 403), id="symlink-loop"),
        pytest.param("loop/x", (403, 403, 403, 403, 403), id="below-a-symlink-loop"),
    ],
)
async def test_file_system_errors_from_client_paths_are_4xx(
    client: TestClient,
    root: Path,
    caplog: pytest.LogCaptureFixture,
    url_path: str,
    statuses: tuple[int, ...],
) -> None:
    (root / "loop").symlink_to("loop")
    for method, status in zip(METHODS, statuses, strict=True):
        body = b"x" * 10 if method in ("PUT", "POST") else b""
        response = await client.request(method, f"/files/{url_path}", body=body)
        assert (method, response.status) == (method, status)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []  # no traceback
    assert sorted(p.name for p in root.iterdir()) == [
        ".secret",
        "data.bin",
        "hello.txt",
        "loop",
        "sub",
    ]


@pytest.mark.parametrize(
    ("url_path", "status"),
    [
        pytest.param(f"{LONG_NAME}/", 414, id="300-char-name"),
        pytest.param(f"{LONG_PATH}/", 414, id="4KiB-path"),
        pytest.param("hello.txt/", 404, id="a-file"),
        pytest.param("hello.txt/x/", 404, id="through-a-file"),
        pytest.param("a%00b/", 400, id="NUL"),
        pytest.param("loop/", 403, id="symlink-loop"),
    ],
)
async def test_listing_of_a_refused_path_is_4xx(
    client: TestClient, root: Path, url_path: str, status: int
) -> None:
    (root / "loop").symlink_to("loop")
    for accept in ("text/html", "application/json"):
        response = await client.get(f"/files/{url_path}", headers={"accept": accept})
        assert response.status == status


async def test_listing_a_followed_symlink_out_of_the_root(root: Path, tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "f.txt").write_text("x")
    (tmp_path / "outside" / ".hidden").write_text("x")
    (root / "out").symlink_to(tmp_path / "outside")
    async with TestClient(build_app(root, follow_symlinks=True)) as client:
        response = await client.get("/files/out/")  # was a 500 (ValueError)
        assert response.status == 200
        assert 'href="f.txt"' in response.text
        assert ".hidden" not in response.text
        assert (await client.get("/files/out/f.txt")).body == b"x"


async def test_unreadable_directory_listing_is_403(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(path: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    # Tests may run as root, which chmod cannot stop: refuse at the system call instead.
    monkeypatch.setattr(os, "scandir", refuse)
    assert (await client.get("/files/sub/")).status == 403


async def test_unix_socket_is_refused(
    client: TestClient, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(root)  # a short relative name: sun_path holds 108 bytes
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind("sock")
        assert (await client.get("/files/sock")).status == 403  # open() fails with ENXIO
        assert (await client.head("/files/sock")).status == 403


async def test_unexpected_write_errors_map_to_4xx(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failure = OSError(errno.EISDIR, "Is a directory")

    def replace(source: str, target: object) -> None:
        raise failure

    monkeypatch.setattr(os, "replace", replace)
    async with TestClient(build_app(root)) as client:
        assert (await client.put("/files/raced", b"data")).status == 409
        failure.errno = errno.EFBIG
        assert (await client.put("/files/raced", b"data")).status == 413
        failure.errno = errno.EROFS
        assert (await client.put("/files/raced", b"data")).status == 403
    assert leftovers(root) == []


# ---------------------------------------------------------------- conditional requests


async def test_if_none_match_gives_304(client: TestClient) -> None:
    etag = (await client.get("/files/hello.txt")).headers["etag"]
    response = await client.get("/files/hello.txt", headers={"if-none-match": etag})
    assert response.status == 304
    assert response.body == b""
    assert response.headers["etag"] == etag
    other = await client.get("/files/hello.txt", headers={"if-none-match": '"other"'})
    assert other.status == 200


async def test_if_modified_since(client: TestClient) -> None:
    last_modified = (await client.get("/files/hello.txt")).headers["last-modified"]
    response = await client.get("/files/hello.txt", headers={"if-modified-since": last_modified})
    assert response.status == 304
    old = "Mon, 01 Jan 1990 00:00:00 GMT"
    assert (await client.get("/files/hello.txt", headers={"if-modified-since": old})).status == 200


async def test_if_match_and_if_unmodified_since_give_412(client: TestClient) -> None:
    assert (await client.get("/files/hello.txt", headers={"if-match": '"nope"'})).status == 412
    old = "Mon, 01 Jan 1990 00:00:00 GMT"
    response = await client.get("/files/hello.txt", headers={"if-unmodified-since": old})
    assert response.status == 412


async def test_etag_changes_when_file_changes(client: TestClient, root: Path) -> None:
    before = (await client.get("/files/hello.txt")).headers["etag"]
    await client.put("/files/hello.txt", b"new content")
    after = (await client.get("/files/hello.txt")).headers["etag"]
    assert before != after


# ---------------------------------------------------------------- ranges


async def test_single_range(client: TestClient) -> None:
    response = await client.get("/files/hello.txt", headers={"range": "bytes=0-4"})
    assert response.status == 206
    assert response.body == b"hello"
    assert response.headers["content-range"] == "bytes 0-4/12"
    assert response.headers["content-length"] == "5"


async def test_suffix_and_open_ranges(client: TestClient) -> None:
    suffix = await client.get("/files/hello.txt", headers={"range": "bytes=-6"})
    assert suffix.body == b"world\n"
    open_ended = await client.get("/files/hello.txt", headers={"range": "bytes=6-"})
    assert open_ended.body == b"world\n"


async def test_unsatisfiable_range_is_416(client: TestClient) -> None:
    response = await client.get("/files/hello.txt", headers={"range": "bytes=100-200"})
    assert response.status == 416
    assert response.headers["content-range"] == "bytes */12"


async def test_malformed_range_is_ignored(client: TestClient) -> None:
    response = await client.get("/files/hello.txt", headers={"range": "bytes=x-y"})
    assert response.status == 200
    assert response.body == b"hello world\n"


async def test_multiple_ranges_are_multipart(client: TestClient) -> None:
    response = await client.get("/files/hello.txt", headers={"range": "bytes=0-1,6-7"})
    assert response.status == 206
    content_type = response.headers["content-type"]
    assert content_type.startswith("multipart/byteranges; boundary=")
    boundary = content_type.split("boundary=")[1].encode()
    assert response.headers["content-length"] == str(len(response.body))
    parts = response.body.split(b"--" + boundary)
    assert b"Content-Range: bytes 0-1/12\r\n\r\nhe" in parts[1]
    assert b"Content-Range: bytes 6-7/12\r\n\r\nwo" in parts[2]
    assert parts[-1].startswith(b"--")


@pytest.mark.parametrize(
    "range_headers",
    [
        {"range": "bytes=0-4"},
        {"range": "bytes=0-1,6-7"},
        {"range": "bytes=100-200"},  # unsatisfiable: still not a 416
        {"range": "bytes=0-4", "if-range": '"stale"'},
        {"range": "bytes=0-4", "if-range": "ETAG"},
    ],
)
async def test_head_ignores_range(
    client: TestClient, root: Path, range_headers: dict[str, str]
) -> None:
    # RFC 9110 §14.2: range handling is defined for GET only; a server MUST ignore Range on
    # any other method. HEAD answers as a HEAD of the whole file does.
    (root / "big.txt").write_text("lorem ipsum " * 100)  # compressible: gets Vary too
    for name, size in (("hello.txt", "12"), ("big.txt", "1200")):
        plain = await client.head(f"/files/{name}")
        etag = plain.headers["etag"]
        headers = {k: v.replace("ETAG", etag) for k, v in range_headers.items()}
        head = await client.head(f"/files/{name}", headers=headers)
        assert head.status == 200
        assert head.body == b""
        assert head.headers["content-length"] == size
        assert head.headers["accept-ranges"] == "bytes"
        assert "content-range" not in head.headers
        assert [f for f in head.headers if f[0] != "date"] == [
            f for f in plain.headers if f[0] != "date"
        ]


async def test_multipart_parts_keep_the_request_order(client: TestClient) -> None:
    headers = {"range": "bytes=6-7,0-1,9-9,2-2"}  # 2-2 joins 0-1, in 0-1's place
    response = await client.get("/files/hello.txt", headers=headers)
    assert response.status == 206
    boundary = response.headers["content-type"].split("boundary=")[1].encode()
    parts = response.body.split(b"--" + boundary)[1:-1]
    assert [part.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n") for part in parts] == [
        b"wo",
        b"hel",
        b"l",
    ]
    assert [part.split(b"Content-Range: ")[1].split(b"\r\n")[0] for part in parts] == [
        b"bytes 6-7/12",
        b"bytes 0-2/12",
        b"bytes 9-9/12",
    ]


async def test_if_range_with_stale_etag_gives_whole_file(client: TestClient) -> None:
    headers = {"range": "bytes=0-4", "if-range": '"stale"'}
    response = await client.get("/files/hello.txt", headers=headers)
    assert response.status == 200
    assert response.body == b"hello world\n"
    etag = response.headers["etag"]
    fresh = await client.get("/files/hello.txt", headers={"range": "bytes=0-4", "if-range": etag})
    assert fresh.status == 206


# ---------------------------------------------------------------- compression


async def test_text_file_is_compressed_when_accepted(client: TestClient, root: Path) -> None:
    (root / "big.txt").write_text("lorem ipsum " * 1000)
    plain = await client.get("/files/big.txt")
    assert plain.headers["vary"] == "Accept-Encoding"
    assert "content-encoding" not in plain.headers
    compressed = await client.get("/files/big.txt", headers={"accept-encoding": "gzip"})
    assert compressed.headers["content-encoding"] == "gzip"
    assert compressed.headers["vary"] == "Accept-Encoding"
    assert "content-length" not in compressed.headers  # streamed: chunked
    assert gzip.decompress(compressed.body) == plain.body
    assert compressed.headers["etag"] != plain.headers["etag"]
    ranged = await client.get(
        "/files/big.txt", headers={"accept-encoding": "gzip", "range": "bytes=0-4"}
    )
    assert "content-encoding" not in ranged.headers
    assert ranged.body == b"lorem"


async def test_binary_file_is_not_compressed(client: TestClient) -> None:
    response = await client.get("/files/data.bin", headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in response.headers


# ---------------------------------------------------------------- writing


async def test_post_creates_file_before_responding(client: TestClient, root: Path) -> None:
    response = await client.post("/files/new.bin", b"\x00\x01payload")
    assert response.status == 201
    assert (root / "new.bin").read_bytes() == b"\x00\x01payload"
    assert leftovers(root) == []
    # POST replaces too (the contract's semantics).
    assert (await client.post("/files/new.bin", b"v2")).status == 201
    assert (root / "new.bin").read_bytes() == b"v2"


async def test_put_creates_then_replaces(client: TestClient, root: Path) -> None:
    assert (await client.put("/files/a/b/c.txt", b"one")).status == 201
    assert (root / "a" / "b" / "c.txt").read_bytes() == b"one"
    assert (await client.put("/files/a/b/c.txt", b"two")).status == 204
    assert (root / "a" / "b" / "c.txt").read_bytes() == b"two"


async def test_chunked_upload(client: TestClient, root: Path) -> None:
    async def body() -> AsyncIterator[bytes]:
        for i in range(100):
            yield b"%04d" % i

    assert (await client.put("/files/chunked.txt", body())).status == 201
    assert (root / "chunked.txt").read_bytes() == b"".join(b"%04d" % i for i in range(100))


async def test_conditional_writes(client: TestClient, root: Path) -> None:
    headers = {"if-none-match": "*"}
    assert (await client.put("/files/once.txt", b"1", headers=headers)).status == 201
    assert (await client.put("/files/once.txt", b"2", headers=headers)).status == 412
    assert (root / "once.txt").read_bytes() == b"1"
    etag = (await client.get("/files/once.txt")).headers["etag"]
    assert (await client.put("/files/once.txt", b"3", headers={"if-match": '"x"'})).status == 412
    assert (await client.put("/files/once.txt", b"3", headers={"if-match": etag})).status == 204
    assert (root / "once.txt").read_bytes() == b"3"


async def test_delete(client: TestClient, root: Path) -> None:
    assert (await client.delete("/files/hello.txt")).status == 204
    assert not (root / "hello.txt").exists()
    assert (await client.delete("/files/hello.txt")).status == 404
    assert (await client.delete("/files/sub")).status == 409


async def test_write_into_directory_name_or_under_file_is_409(client: TestClient) -> None:
    assert (await client.put("/files/sub", b"x")).status == 409
    assert (await client.put("/files/hello.txt/x", b"x")).status == 409
    assert (await client.put("/files/sub/", b"x")).status == 405


async def test_read_only_refuses_writes(root: Path) -> None:
    async with TestClient(build_app(root, read_only=True)) as client:
        response = await client.post("/files/x", b"data")
        assert response.status == 405
        assert response.headers["allow"] == "GET, HEAD"
        assert (await client.delete("/files/hello.txt")).status == 405
    assert not (root / "x").exists()


async def test_body_over_limit_leaves_nothing(root: Path) -> None:
    config = ServerConfig(access_log=False, max_body_size=100)
    async with TestClient(build_app(root), config) as client:

        async def body() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"x" * 50

        response = await client.put("/files/big", body())
        assert response.status == 413
    assert not (root / "big").exists()
    assert leftovers(root) == []


async def test_client_vanishing_mid_upload_leaves_old_file(root: Path) -> None:
    (root / "keep.txt").write_bytes(b"old")
    app = build_app(root)
    async with TestClient(app) as client:
        raw = (
            b"PUT /files/keep.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\n\r\n"
            + b"n" * 2_000_000
        )
        assert await client.send_raw(raw) == b""  # no response: the body never completed
    assert (root / "keep.txt").read_bytes() == b"old"
    assert leftovers(root) == []


async def test_disk_full_is_507_and_leaves_nothing(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import trio_http.files.uploads as files

    def full(fd: int, data: bytes | bytearray) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "_write_all", full)
    async with TestClient(build_app(root)) as client:
        response = await client.put("/files/full.bin", b"data")
    assert response.status == 507
    assert not (root / "full.bin").exists()
    assert leftovers(root) == []


async def test_concurrent_writers_one_complete_body_wins(root: Path) -> None:
    app = build_app(root)
    bodies = [bytes([65 + i]) * 300_000 for i in range(4)]

    async def write(body: bytes) -> None:
        async with TestClient(app) as client:
            assert (await client.put("/files/contested", body)).status in (201, 204)

    async with trio.open_nursery() as nursery:
        for body in bodies:
            nursery.start_soon(write, body)
    assert (root / "contested").read_bytes() in bodies
    assert leftovers(root) == []


# ---------------------------------------------------------------- stale uploads


def test_remove_stale_uploads(root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    stale = [
        root / f"{TEMP_PREFIX}aaaaaaaa.part",
        root / "sub" / f"{TEMP_PREFIX}bbbbbbbb.part",
        root / "sub" / "deeper" / "deepest" / f"{TEMP_PREFIX}cccccccc.part",
        root / ".hidden-dir" / f"{TEMP_PREFIX}dddddddd.part",  # written with hidden names on
    ]
    live = root / "sub" / f"{TEMP_PREFIX}live0000.part"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / f"{TEMP_PREFIX}notmine0.part").write_bytes(b"outside the root")
    (tmp_path / "target.part").write_bytes(b"a symlink's target")
    kept = [
        root / "hello.txt",
        root / ".secret",
        root / f"{TEMP_PREFIX}notes.txt",  # the prefix, but not a temporary file's name
        root / "sub" / "upload.part",
        root / "sub" / ".hidden.part",
        live,
        root / f"{TEMP_PREFIX}link0000.part",  # a symlink: not followed, not removed
        root / "outdir",  # a symlink to a directory outside: not descended into
        root / f"{TEMP_PREFIX}dir00000.part",  # a directory
        tmp_path / "elsewhere" / f"{TEMP_PREFIX}notmine0.part",
        tmp_path / "target.part",
    ]
    for path in [*stale, live, root / f"{TEMP_PREFIX}notes.txt"]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half an upload")
    (root / "sub" / "upload.part").write_bytes(b"user data")
    (root / "sub" / ".hidden.part").write_bytes(b"user data")
    (root / f"{TEMP_PREFIX}link0000.part").symlink_to(tmp_path / "target.part")
    (root / "outdir").symlink_to(tmp_path / "elsewhere")
    (root / f"{TEMP_PREFIX}dir00000.part").mkdir()
    server = FileServer(root)
    with open(live, "rb") as upload:  # a live upload in this or another process holds its lock
        fcntl.flock(upload.fileno(), fcntl.LOCK_EX)
        with caplog.at_level(logging.INFO, logger="trio_http.error"):
            assert server.remove_stale_uploads() == 4
    assert [path for path in stale if path.exists()] == []
    assert [path for path in kept if not path.exists() and not path.is_symlink()] == []
    assert (root / "hello.txt").read_bytes() == b"hello world\n"
    assert (tmp_path / "target.part").read_bytes() == b"a symlink's target"
    [record] = [r for r in caplog.records if r.name == "trio_http.error"]
    assert record.levelno == logging.INFO
    assert "4" in record.getMessage()
    # The lock is released (the upload died): now it is stale too.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="trio_http.error"):
        assert server.remove_stale_uploads() == 1
        assert not live.exists()
        assert server.remove_stale_uploads() == 0
    assert len([r for r in caplog.records if r.name == "trio_http.error"]) == 1  # none for 0


async def test_live_upload_survives_remove_stale_uploads(root: Path) -> None:
    app = App()
    server = FileServer(root)
    server.install(app)
    release = trio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b"first half, "
        await release.wait()
        yield b"second half"

    async def upload() -> None:
        async with TestClient(app) as client:
            assert (await client.put("/files/sub/live.txt", body())).status == 201

    async with trio.open_nursery() as nursery:
        nursery.start_soon(upload)
        # The server creates its temporary file after a mkdir in a worker thread: poll for it.
        with trio.fail_after(5):
            while not leftovers(root):  # noqa: ASYNC110 (nothing to wait on in the file system)
                await trio.sleep(0.01)
        assert await trio.to_thread.run_sync(server.remove_stale_uploads) == 0
        assert len(leftovers(root)) == 1
        release.set()
    assert (root / "sub" / "live.txt").read_bytes() == b"first half, second half"
    assert leftovers(root) == []


@pytest.mark.parametrize("race", ["locked", "deleted"])
async def test_upload_retries_when_a_remover_takes_its_fresh_temp_file(
    root: Path, monkeypatch: pytest.MonkeyPatch, race: str
) -> None:
    # Between mkstemp and flock, a remover in another worker may find the new file unlocked
    # and delete it; the upload then starts over with a new temporary file.
    real_mkstemp = tempfile.mkstemp
    calls: list[str] = []

    def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        fd, name = real_mkstemp(*args, **kwargs)
        calls.append(name)
        if len(calls) == 1:
            remover = os.open(name, os.O_RDONLY)
            fcntl.flock(remover, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if race == "deleted":
                os.unlink(name)
                os.close(remover)
            else:  # still holding the lock: it will delete the file once the writer gives up
                holding.append(remover)
        return fd, name

    holding: list[int] = []
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    async with TestClient(build_app(root)) as client:
        assert (await client.put("/files/raced.txt", b"data")).status == 201
    for fd in holding:
        os.unlink(calls[0])
        os.close(fd)
    assert len(calls) == 2
    assert (root / "raced.txt").read_bytes() == b"data"
    assert leftovers(root) == []


async def test_uploaded_file_mode_follows_umask(client: TestClient, root: Path) -> None:
    await client.put("/files/mode.txt", b"x")
    mask = os.umask(0)
    os.umask(mask)
    assert (root / "mode.txt").stat().st_mode & 0o777 == 0o666 & ~mask


async def test_file_server_under_custom_prefix(root: Path) -> None:
    app = App()
    FileServer(root, read_only=True).install(app, "/static")
    async with TestClient(app) as client:
        assert (await client.get("/static/hello.txt")).body == b"hello world\n"


async def test_fifo_is_refused_without_blocking(client: TestClient, root: Path) -> None:
    os.mkfifo(root / "pipe")
    with trio.fail_after(5):  # opening it must not wait for a writer
        assert (await client.get("/files/pipe")).status == 403
        assert (await client.get("/files/hello.txt")).status == 200


async def test_upload_temp_files_are_never_served_or_listed(root: Path) -> None:
    (root / f"{TEMP_PREFIX}abc.part").write_bytes(b"half an upload")
    async with TestClient(build_app(root, allow_hidden=True)) as client:
        assert (await client.get(f"/files/{TEMP_PREFIX}abc.part")).status == 404
        assert TEMP_PREFIX not in (await client.get("/files/")).text
        assert (await client.get("/files/.secret")).status == 200  # hidden files are on


async def test_trailing_slash_on_a_file_is_404(client: TestClient) -> None:
    assert (await client.get("/files/hello.txt/")).status == 404


async def test_compressed_variant_revalidates(client: TestClient, root: Path) -> None:
    (root / "big.txt").write_text("lorem ipsum " * 1000)
    headers = {"accept-encoding": "gzip"}
    first = await client.get("/files/big.txt", headers=headers)
    etag = first.headers["etag"]
    assert etag.endswith('-gzip"')
    again = await client.get("/files/big.txt", headers={**headers, "if-none-match": etag})
    assert again.status == 304


# ---------------------------------------------------------------- MKCOL


async def test_mkcol_creates_one_directory(client: TestClient, root: Path) -> None:
    made = await client.request("MKCOL", "/files/sub/new")
    assert made.status == 201 and made.headers["location"] == "/files/sub/new/"
    assert (root / "sub" / "new").is_dir()
    exists = await client.request("MKCOL", "/files/sub/new/")
    assert exists.status == 405 and exists.headers["allow"] == "GET, HEAD"
    file_name = await client.request("MKCOL", "/files/hello.txt")
    assert file_name.status == 405
    orphan = await client.request("MKCOL", "/files/missing/child/")
    assert orphan.status == 409 and not (root / "missing").exists()
    under_file = await client.request("MKCOL", "/files/hello.txt/child/")
    assert under_file.status == 409


async def test_mkcol_refuses_hidden_names_bodies_and_the_root(
    client: TestClient, root: Path
) -> None:
    assert (await client.request("MKCOL", "/files/.hidden/")).status in (403, 404)
    assert not (root / ".hidden").exists()
    with_body = await client.request("MKCOL", "/files/x/", body=b"<xml/>")
    assert with_body.status == 415 and not (root / "x").exists()
    assert (await client.request("MKCOL", "/files/")).status == 405


async def test_internal_names_are_never_reachable_even_with_hidden_files_shown(
    tmp_path: Path,
) -> None:
    staging = tmp_path / f"{TEMP_PREFIX}tus"
    staging.mkdir()
    (staging / "x.tus-info").write_text("{}")
    async with TestClient(build_app(tmp_path, allow_hidden=True)) as client:
        for method, path in [
            ("GET", f"/files/{TEMP_PREFIX}tus/x.tus-info"),
            ("PUT", f"/files/{TEMP_PREFIX}tus/x.tus-info"),
            ("DELETE", f"/files/{TEMP_PREFIX}tus/x.tus-info"),
            ("MKCOL", f"/files/{TEMP_PREFIX}tus/new/"),
            ("GET", f"/files/{TEMP_PREFIX}tus/"),
        ]:
            response = await client.request(method, path, body=b"x" if method == "PUT" else b"")
            assert response.status == 404, (method, path, response.status)
        listing = await client.get("/files/", headers={"accept": "application/json"})
        assert json.loads(listing.body)["entries"] == []
    assert (staging / "x.tus-info").read_text() == "{}"


async def test_a_refused_upload_leaves_no_new_folders(client: TestClient, root: Path) -> None:
    wrong = {"content-digest": "sha-256=:" + "A" * 43 + "=:"}
    response = await client.put("/files/new/deeper/f.txt", b"data", headers=wrong)
    assert response.status == 400
    assert not (root / "new").exists()
    # Folders that existed stay, and a folder someone filled meanwhile is never removed.
    (root / "sub" / "kept").mkdir()
    response = await client.put("/files/sub/kept/f.txt", b"data", headers=wrong)
    assert response.status == 400 and (root / "sub" / "kept").is_dir()
    # An accepted upload keeps the folders it made.
    assert (await client.put("/files/made/f.txt", b"data")).status == 201
    assert (root / "made" / "f.txt").read_bytes() == b"data"


async def test_searches_share_two_worker_threads(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many searches at once wait their turn rather than take every worker thread."""
    from trio_http.files import search

    release = threading.Event()
    real = search.search_tree

    def slow_search(*args: Any, **kwargs: Any) -> search.SearchResult:
        release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(search, "search_tree", slow_search)
    files = FileServer(root)
    app = App()
    files.install(app)
    statuses: list[int] = []

    async def one() -> None:
        async with TestClient(app) as client:
            statuses.append((await client.get("/files/?q=hello")).status)

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(one)
        await trio.testing.wait_all_tasks_blocked()
        threads = files._search_threads.statistics()
        assert (threads.borrowed_tokens, threads.tasks_waiting) == (2, 3)
        release.set()
    assert statuses == [200] * 5
