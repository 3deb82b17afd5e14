"""tus 1.0.0 resumable uploads (trio_http/files/tus.py) through the real connection code."""

from __future__ import annotations

import base64
import errno
import fcntl
import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from trio_http import ServerConfig
from trio_http.errors import HTTPError
from trio_http.files import FileServer
from trio_http.files.paths import PathPolicy
from trio_http.files.tus import Authorize, TusServer
from trio_http.files.tus_store import ORPHAN_GRACE, STAGING_NAME, Staging, UploadInfo, WriteState
from trio_http.files.uploads import TEMP_PREFIX, WRITE_BUFFER_SIZE
from trio_http.http11 import HTTPConnection
from trio_http.protocol import tus as proto
from trio_http.protocol.httpdate import format_http_date
from trio_http.request import Request
from trio_http.routing import App
from trio_http.testing import TestClient, TestResponse

TUS = {"tus-resumable": "1.0.0"}
STREAM = {**TUS, "content-type": "application/offset+octet-stream"}
EXPIRY = 3600.0


class WallClock:
    """The wall clock the server reads, moved by the tests."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        import time

        return time.time() + self.offset


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "srv"
    base.mkdir()
    (base / "sub").mkdir()
    (base / "old.txt").write_bytes(b"old")
    return Path(os.path.realpath(base))


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


def make_app(
    root: Path,
    clock: WallClock,
    *,
    allow_hidden: bool = False,
    max_uploads: int = 100,
    max_per_client: int = 20,
    authorize: Authorize | None = None,
) -> tuple[App, TusServer]:
    app = App()
    FileServer(root).install(app)
    policy = PathPolicy(root, allow_hidden=allow_hidden)
    tus = TusServer(
        root,
        policy,
        max_size=64 * 1024 * 1024,
        expiry=EXPIRY,
        max_uploads=max_uploads,
        max_per_client=max_per_client,
        authorize=authorize,
        now=clock,
    )
    tus.install(app)
    return app, tus


@pytest.fixture
async def client(root: Path, clock: WallClock) -> AsyncIterator[TestClient]:
    app, _ = make_app(root, clock)
    async with TestClient(app) as test_client:
        yield test_client


def meta(filename: str | bytes, **more: bytes) -> str:
    raw = filename.encode() if isinstance(filename, str) else filename
    pairs = [f"filename {base64.b64encode(raw).decode()}".strip()]
    pairs += [f"{key} {base64.b64encode(value).decode()}" for key, value in more.items()]
    return ",".join(pairs)


async def create(client: TestClient, name: str, length: int, body: bytes = b"") -> TestResponse:
    headers = {**TUS, "upload-length": str(length), "upload-metadata": meta(name)}
    if body:
        headers["content-type"] = "application/offset+octet-stream"
    return await client.post("/uploads/", body, headers=headers)


async def new_upload(client: TestClient, name: str, length: int) -> str:
    response = await create(client, name, length)
    assert response.status == 201, response.text
    return response.headers["location"]


async def patch(
    client: TestClient, url: str, offset: int, body: bytes, **headers: str
) -> TestResponse:
    extra = {k.replace("_", "-"): v for k, v in headers.items()}
    return await client.request(
        "PATCH", url, headers={**STREAM, "upload-offset": str(offset), **extra}, body=body
    )


async def offset_of(client: TestClient, url: str) -> int:
    response = await client.head(url, headers=TUS)
    assert response.status == 200, response.status
    return int(response.headers["upload-offset"])


def staged(root: Path) -> list[str]:
    folder = root / STAGING_NAME
    return sorted(os.listdir(folder)) if folder.exists() else []


def data_file(root: Path, url: str) -> Path:
    return Path(Staging(root).data_path(url.rsplit("/", 1)[1]))


# ---------------------------------------------------------------- the pure rules


def test_protocol_module_loads_no_trio() -> None:
    code = "import sys, trio_http.protocol.tus; print('trio' in sys.modules)"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert output.strip() == "False"


def test_metadata_parsing() -> None:
    assert proto.parse_metadata(None) == {}
    assert proto.parse_metadata("filename aGk=,flag, empty ") == {
        "filename": b"hi",
        "flag": b"",
        "empty": b"",
    }
    for bad in ("filename aGk=,filename aGk=", "file name aGk=", "filename !!", " aGk="):
        with pytest.raises(HTTPError) as caught:
            proto.parse_metadata(bad)
        assert caught.value.status == 400, bad


def test_checksum_and_sizes_parsing() -> None:
    digest = hashlib.sha256(b"x").digest()
    assert proto.parse_checksum("sha256 " + base64.b64encode(digest).decode()) == (
        "sha256",
        digest,
    )
    for bad in ("md5 AAAA", "sha1 !!!", "sha1 " + base64.b64encode(b"short").decode(), ""):
        with pytest.raises(HTTPError) as caught:
            proto.parse_checksum(bad)
        assert caught.value.status == 400, bad
    assert proto.parse_size(" 12 ", "Upload-Length") == 12
    for bad_size in (None, "-1", "+1", "1e3", "0x10", "1" * 20, ""):
        with pytest.raises(HTTPError):
            proto.parse_size(bad_size, "Upload-Length")


@pytest.mark.parametrize(
    "text, ok",
    [
        ("0123456789abcdef0123456789abcdef", True),
        ("0123456789ABCDEF0123456789ABCDEF", False),
        ("0123456789abcdef", False),
        ("../../etc/passwd", False),
        ("0123456789abcdef0123456789abcdef/..", False),
        ("0123456789abcdef0123456789abcdef\n", False),
    ],
)
def test_upload_ids(text: str, ok: bool) -> None:
    assert proto.is_upload_id(text) is ok


# ---------------------------------------------------------------- discovery and versions


async def test_options_lists_the_server_configuration(client: TestClient) -> None:
    for url in ("/uploads/", "/uploads", "/uploads/0123456789abcdef0123456789abcdef"):
        response = await client.request("OPTIONS", url)  # no Tus-Resumable needed
        assert response.status == 204, url
        assert response.headers["tus-version"] == "1.0.0"
        assert response.headers["tus-resumable"] == "1.0.0"
        assert response.headers["tus-extension"] == (
            "creation,creation-with-upload,termination,expiration,checksum"
        )
        assert response.headers["tus-max-size"] == str(64 * 1024 * 1024)
        assert response.headers["tus-checksum-algorithm"] == "sha1,sha256"


@pytest.mark.parametrize("version", [None, "0.2.2", "2.0.0"])
async def test_unsupported_version_is_412_and_not_processed(
    client: TestClient, root: Path, version: str | None
) -> None:
    url = await new_upload(client, "a.bin", 4)
    headers = {} if version is None else {"tus-resumable": version}
    meta_headers = {"upload-length": "4", "upload-metadata": meta("b.bin")}
    response = await client.post("/uploads/", headers={**headers, **meta_headers})
    assert response.status == 412
    assert response.headers["tus-version"] == "1.0.0"
    assert response.headers["tus-resumable"] == "1.0.0"
    for method in ("HEAD", "DELETE"):
        assert (await client.request(method, url, headers=headers)).status == 412
    stream = {"content-type": "application/offset+octet-stream", "upload-offset": "0"}
    response = await client.request("PATCH", url, headers={**headers, **stream}, body=b"data")
    assert response.status == 412
    assert await offset_of(client, url) == 0
    assert len([n for n in staged(root) if n.endswith(".tus-info")]) == 1


# ---------------------------------------------------------------- creation and upload


async def test_create_head_patch_complete(client: TestClient, root: Path, clock: WallClock) -> None:
    response = await create(client, "docs/new.bin", 10)
    assert response.status == 201
    assert response.headers["tus-resumable"] == "1.0.0"
    url = response.headers["location"]
    assert url.startswith("/uploads/") and proto.is_upload_id(url.rsplit("/", 1)[1])
    assert response.headers["upload-offset"] == "0"
    assert "upload-expires" in response.headers
    head = await client.head(url, headers=TUS)
    assert head.status == 200
    assert head.headers["upload-offset"] == "0"
    assert head.headers["upload-length"] == "10"
    assert head.headers["upload-metadata"] == meta("docs/new.bin")
    assert head.headers["cache-control"] == "no-store"
    assert head.headers["tus-resumable"] == "1.0.0"
    response = await patch(client, url, 0, b"hello")
    assert response.status == 204
    assert response.headers["upload-offset"] == "5"
    assert response.headers["tus-resumable"] == "1.0.0"
    # Upload-Expires: an RFC 9110 date, expiry seconds after the last write.
    expires = response.headers["upload-expires"]
    assert expires in {format_http_date(clock() + EXPIRY + d) for d in (-1, 0)}
    assert not (root / "docs").exists()  # readers never see a part
    assert await offset_of(client, url) == 5
    response = await patch(client, url, 5, b"world")
    assert response.status == 204
    assert response.headers["upload-offset"] == "10"
    assert (root / "docs" / "new.bin").read_bytes() == b"helloworld"
    assert staged(root) == []
    head = await client.head(url, headers=TUS)  # still known: tus 1.0.0, Core Protocol, HEAD
    assert (head.status, head.headers["upload-offset"]) == (200, "10")
    assert (await client.get("/files/docs/new.bin")).body == b"helloworld"


async def test_upload_replaces_an_existing_file(client: TestClient, root: Path) -> None:
    url = await new_upload(client, "old.txt", 3)
    assert (await patch(client, url, 0, b"new")).status == 204
    assert (root / "old.txt").read_bytes() == b"new"


async def test_creation_with_upload(client: TestClient, root: Path) -> None:
    response = await create(client, "whole.txt", 5, b"12345")
    assert response.status == 201
    assert response.headers["upload-offset"] == "5"
    assert (root / "whole.txt").read_bytes() == b"12345"
    response = await create(client, "part.txt", 6, b"abc")
    assert response.status == 201 and response.headers["upload-offset"] == "3"
    url = response.headers["location"]
    assert await offset_of(client, url) == 3
    assert (await patch(client, url, 3, b"def")).status == 204
    assert (root / "part.txt").read_bytes() == b"abcdef"
    assert staged(root) == []


async def test_creation_with_upload_needs_the_content_type(client: TestClient, root: Path) -> None:
    headers = {**TUS, "upload-length": "3", "upload-metadata": meta("x"), "content-type": "text/a"}
    assert (await client.post("/uploads/", b"abc", headers=headers)).status == 415
    assert staged(root) == [] and not (root / "x").exists()


async def test_empty_upload_is_complete_at_once(client: TestClient, root: Path) -> None:
    response = await create(client, "empty.txt", 0)
    assert response.status == 201 and response.headers["upload-offset"] == "0"
    assert (root / "empty.txt").read_bytes() == b""
    assert staged(root) == []


async def test_missing_parents_are_created(client: TestClient, root: Path) -> None:
    url = await new_upload(client, "a/b/c/deep.txt", 2)
    assert (await patch(client, url, 0, b"ok")).status == 204
    assert (root / "a" / "b" / "c" / "deep.txt").read_bytes() == b"ok"


async def test_a_file_in_the_way_of_a_parent_is_422_and_the_upload_stays(
    client: TestClient, root: Path
) -> None:
    url = await new_upload(client, "blocker/x.txt", 2)
    (root / "blocker").write_text("a file")
    # Not 409, which tus clients take for "ask the offset" (then all is in: success).
    assert (await patch(client, url, 0, b"ok")).status == 422
    assert await offset_of(client, url) == 2
    (root / "blocker").unlink()
    # An empty PATCH at the end finishes it once the target can be written.
    assert (await patch(client, url, 2, b"")).status == 204
    assert (root / "blocker" / "x.txt").read_bytes() == b"ok"


async def test_other_file_system_is_copied_then_renamed(
    client: TestClient, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await new_upload(client, "far.bin", 3 * 1024 * 1024)
    real_rename = os.rename

    def cross_device(src: str, dst: str) -> None:
        if src.endswith(".tus-data"):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", cross_device)
    body = os.urandom(3 * 1024 * 1024)
    assert (await patch(client, url, 0, body)).status == 204
    assert (root / "far.bin").read_bytes() == body
    assert staged(root) == []
    temporary = [p for p in root.iterdir() if p.name.startswith(TEMP_PREFIX)]
    assert temporary == [root / STAGING_NAME]  # no copy left beside the target


# ---------------------------------------------------------------- refusals at creation


@pytest.mark.parametrize(
    "headers, status",
    [
        ({"upload-metadata": meta("x")}, 400),  # no Upload-Length
        ({"upload-length": "-1", "upload-metadata": meta("x")}, 400),
        ({"upload-length": "ten", "upload-metadata": meta("x")}, 400),
        ({"upload-defer-length": "1", "upload-metadata": meta("x")}, 400),
        ({"upload-length": "3"}, 400),  # no filename
        ({"upload-length": "3", "upload-metadata": "name " + "eA=="}, 400),
        ({"upload-length": "3", "upload-metadata": "filename !!"}, 400),
        ({"upload-length": "3", "upload-metadata": meta(b"\xff\xfe")}, 400),
        ({"upload-length": "3", "upload-metadata": meta("sub")}, 400),  # a directory
        ({"upload-length": "3", "upload-metadata": meta("sub/")}, 400),
        ({"upload-length": "3", "upload-metadata": meta("")}, 400),
        ({"upload-length": "3", "upload-metadata": meta("a/../b")}, 400),
        ({"upload-length": "3", "upload-metadata": meta("../escape")}, 400),
        ({"upload-length": "3", "upload-metadata": meta("/etc/passwd")}, 400),
        ({"upload-length": "3", "upload-metadata": meta(".hidden")}, 403),
        ({"upload-length": "3", "upload-metadata": meta("sub/.git/config")}, 403),
        ({"upload-length": str(64 * 1024 * 1024 + 1), "upload-metadata": meta("big")}, 413),
        ({"upload-length": "3", "upload-metadata": meta("x"), "upload-concat": "partial"}, 400),
    ],
)
async def test_creation_refused(
    client: TestClient, root: Path, headers: dict[str, str], status: int
) -> None:
    before = sorted(p.name for p in root.rglob("*"))
    response = await client.post("/uploads/", headers={**TUS, **headers})
    assert response.status == status, response.text
    assert response.headers["tus-resumable"] == "1.0.0"
    assert "location" not in response.headers
    assert staged(root) == []
    assert sorted(p.name for p in root.rglob("*")) == before


async def test_escaping_symlink_target_is_refused(
    root: Path, clock: WallClock, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    app, _ = make_app(root, clock)
    async with TestClient(app) as client:
        response = await create(client, "link/x.txt", 1)
        assert response.status == 403
    assert staged(root) == [] and list(outside.iterdir()) == []


async def test_staging_names_are_refused_even_with_hidden_files(
    root: Path, clock: WallClock
) -> None:
    app, _ = make_app(root, clock, allow_hidden=True)
    async with TestClient(app) as client:
        assert (await create(client, ".visible-when-hidden-allowed", 1)).status == 201
        for name in (f"{STAGING_NAME}/x", f"{TEMP_PREFIX}x.part", f"a/{TEMP_PREFIX}b/c"):
            assert (await create(client, name, 1)).status == 404, name


async def test_authorize_refusal_creates_nothing(root: Path, clock: WallClock) -> None:
    seen: list[tuple[str, str]] = []

    async def authorize(request: Request, target: str) -> None:
        seen.append((request.method, target))
        if target.startswith("private/"):
            raise HTTPError(403, "not yours", headers={"www-authenticate": "Basic"})

    app, _ = make_app(root, clock, authorize=authorize)
    async with TestClient(app) as client:
        response = await create(client, "private/x.txt", 1)
        assert response.status == 403 and "not yours" in response.text
        assert staged(root) == [] and not (root / "private").exists()
        url = await new_upload(client, "public/x.txt", 1)
        assert (await patch(client, url, 0, b"!")).status == 204
    assert seen == [("POST", "private/x.txt"), ("POST", "public/x.txt"), ("PATCH", "public/x.txt")]


async def test_at_most_max_uploads_unfinished(root: Path, clock: WallClock) -> None:
    app, _ = make_app(root, clock, max_uploads=2)
    async with TestClient(app) as client:
        first = await new_upload(client, "1", 5)
        await new_upload(client, "2", 5)
        response = await create(client, "3", 5)
        assert response.status == 503
        assert response.headers["retry-after"] == "60"
        assert "unfinished uploads" in response.text
        assert (await client.delete(first, headers=TUS)).status == 204
        assert (await create(client, "3", 5)).status == 201


async def test_one_client_cannot_take_every_place(root: Path, clock: WallClock) -> None:
    """One client's unfinished uploads are capped below the server's (429, RFC 6585)."""
    app, tus = make_app(root, clock, max_uploads=5, max_per_client=2)
    async with TestClient(app) as client:
        first = await new_upload(client, "1", 5)
        await new_upload(client, "2", 5)
        response = await create(client, "3", 5)
        assert response.status == 429 and response.headers["retry-after"] == "60"
        assert "the most one client may keep" in response.text
        # Another client still has its places.
        other = UploadInfo(5, "", "x", clock(), clock() + 60, owner="192.0.2.99")
        tus.staging.create("f" * 32, other)
        assert tus.staging.count("192.0.2.99") == (3, 1)
        assert (await client.delete(first, headers=TUS)).status == 204
        assert (await create(client, "3", 5)).status == 201


# ---------------------------------------------------------------- PATCH rules


async def test_patch_needs_the_offset_stream_type(client: TestClient) -> None:
    url = await new_upload(client, "t.txt", 4)
    for content_type in (None, "application/octet-stream", "text/plain"):
        headers = {**TUS, "upload-offset": "0"}
        if content_type:
            headers["content-type"] = content_type
        response = await client.request("PATCH", url, headers=headers, body=b"data")
        assert response.status == 415, content_type
    assert await offset_of(client, url) == 0
    type_with_parameter = "Application/Offset+Octet-Stream; x=y"
    assert (await patch(client, url, 0, b"da", content_type=type_with_parameter)).status == 204


async def test_wrong_offset_is_409_and_changes_nothing(client: TestClient, root: Path) -> None:
    url = await new_upload(client, "o.txt", 10)
    assert (await patch(client, url, 0, b"abc")).status == 204
    for wrong in (0, 2, 4, 10):
        response = await patch(client, url, wrong, b"xyz")
        assert response.status == 409, wrong
        assert response.headers["upload-offset"] == "3"
    assert (await patch(client, url, 0, b"x", upload_offset="abc")).status == 400
    assert await offset_of(client, url) == 3
    assert data_file(root, url).read_bytes() == b"abc"


async def test_body_past_the_length_is_400_and_appends_nothing(
    client: TestClient, root: Path
) -> None:
    url = await new_upload(client, "l.txt", 6)
    assert (await patch(client, url, 0, b"abc")).status == 204
    assert (await patch(client, url, 3, b"defg")).status == 400  # declared Content-Length

    async def chunks() -> AsyncIterator[bytes]:  # chunked: found out while streaming
        yield b"de"
        yield b"fgh"

    response = await client.request(
        "PATCH", url, headers={**STREAM, "upload-offset": "3"}, body=chunks()
    )
    assert response.status == 400
    assert await offset_of(client, url) == 3
    assert data_file(root, url).read_bytes() == b"abc"
    assert not (root / "l.txt").exists()


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
async def test_checksum_match_and_mismatch(client: TestClient, root: Path, algorithm: str) -> None:
    url = await new_upload(client, "c.txt", 8)

    def checksum(data: bytes) -> str:
        return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"

    assert (await patch(client, url, 0, b"good", upload_checksum=checksum(b"good"))).status == 204
    response = await patch(client, url, 4, b"evil", upload_checksum=checksum(b"good"))
    assert response.status == 460
    assert await offset_of(client, url) == 4
    assert data_file(root, url).read_bytes() == b"good"
    assert staged(root) == sorted(n for n in staged(root) if not n.endswith(".tus-verify"))
    response = await patch(client, url, 4, b"evil", upload_checksum="md5 AAAAAAAAAAAAAAAAAAAAAA==")
    assert response.status == 400
    assert await offset_of(client, url) == 4
    assert (await patch(client, url, 4, b"more", upload_checksum=checksum(b"more"))).status == 204
    assert (root / "c.txt").read_bytes() == b"goodmore"


async def test_get_on_an_upload_is_405(client: TestClient) -> None:
    url = await new_upload(client, "g.txt", 1)
    response = await client.get(url, headers=TUS)
    assert response.status == 405
    assert "PATCH" in response.headers["allow"]


async def test_method_override(client: TestClient, root: Path) -> None:
    url = await new_upload(client, "m.txt", 2)
    headers = {**STREAM, "upload-offset": "0", "x-http-method-override": "PATCH"}
    assert (await client.post(url, b"ok", headers=headers)).status == 204
    assert (root / "m.txt").read_bytes() == b"ok"
    url = await new_upload(client, "n.txt", 2)
    response = await client.post(url, headers={**TUS, "x-http-method-override": "DELETE"})
    assert response.status == 204
    assert (await client.head(url, headers=TUS)).status == 404
    response = await client.post(url, headers={**TUS, "x-http-method-override": "GET"})
    assert response.status == 400


# ---------------------------------------------------------------- termination and ids


async def test_delete(client: TestClient, root: Path) -> None:
    url = await new_upload(client, "d.txt", 10)
    assert (await patch(client, url, 0, b"abc")).status == 204
    response = await client.delete(url, headers=TUS)
    assert response.status == 204 and response.headers["tus-resumable"] == "1.0.0"
    assert staged(root) == []
    for method in ("HEAD", "DELETE"):
        assert (await client.request(method, url, headers=TUS)).status == 404
    assert (await patch(client, url, 3, b"def")).status == 404
    assert not (root / "d.txt").exists()


@pytest.mark.parametrize(
    "upload_id",
    [
        "0123456789abcdef0123456789abcdef",  # well-formed but unknown
        "..%2F..%2Fold.txt",
        "%2e%2e",
        "ABCDEF0123456789ABCDEF0123456789",
        "0123456789abcdef0123456789abcdef.tus-info",
        f"{TEMP_PREFIX}0123456789abcdef0123456789abcdef",
    ],
)
async def test_bad_or_unknown_ids_are_404(client: TestClient, root: Path, upload_id: str) -> None:
    await new_upload(client, "keep.txt", 5)
    before = staged(root)
    for method in ("HEAD", "DELETE"):
        response = await client.request(method, f"/uploads/{upload_id}", headers=TUS)
        assert response.status == 404, (method, upload_id)
    response = await patch(client, f"/uploads/{upload_id}", 0, b"x")
    assert response.status == 404
    assert staged(root) == before and (root / "old.txt").read_bytes() == b"old"


# ---------------------------------------------------------------- durability


async def test_restart_resumes(root: Path, clock: WallClock) -> None:
    body = os.urandom(3 * WRITE_BUFFER_SIZE + 123)
    app, _ = make_app(root, clock)
    async with TestClient(app) as client:
        url = await new_upload(client, "r.bin", len(body))
        assert (await patch(client, url, 0, body[: WRITE_BUFFER_SIZE + 7])).status == 204
    app, _ = make_app(root, clock)  # a new server on the same directory: only disk state
    async with TestClient(app) as client:
        offset = await offset_of(client, url)
        assert offset == WRITE_BUFFER_SIZE + 7
        assert (await patch(client, url, offset, body[offset:])).status == 204
    assert (root / "r.bin").read_bytes() == body
    assert staged(root) == []


async def cut_patch(
    app: App, url: str, offset: int, declared: int, sent: bytes, **headers: str
) -> None:
    """A PATCH whose client goes away after *sent* of *declared* bytes; returns once the
    server's connection is done with it."""
    client_stream, server_stream = trio.testing.memory_stream_pair()
    connection = HTTPConnection(server_stream, app, ServerConfig(access_log=False))
    head = [
        f"PATCH {url} HTTP/1.1",
        "Host: t",
        "Tus-Resumable: 1.0.0",
        "Content-Type: application/offset+octet-stream",
        f"Upload-Offset: {offset}",
        f"Content-Length: {declared}",
        *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items()),
    ]
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(connection.run)
            await client_stream.send_all(("\r\n".join(head) + "\r\n\r\n").encode() + sent)
            await client_stream.aclose()


async def test_interrupted_patch_keeps_every_byte(root: Path, clock: WallClock) -> None:
    app, _ = make_app(root, clock)
    body = os.urandom(2 * WRITE_BUFFER_SIZE + 5000)
    async with TestClient(app) as client:
        url = await new_upload(client, "i.bin", 3 * WRITE_BUFFER_SIZE)
        # Past one write buffer and a part of the next, which is synced on the way out.
        await cut_patch(app, url, 0, 3 * WRITE_BUFFER_SIZE, body)
        assert await offset_of(client, url) == len(body)
        assert data_file(root, url).read_bytes() == body
        small = b"tiny"
        await cut_patch(app, url, len(body), 3 * WRITE_BUFFER_SIZE - len(body), small)
        assert await offset_of(client, url) == len(body) + 4
        rest = os.urandom(3 * WRITE_BUFFER_SIZE - len(body) - 4)
        assert (await patch(client, url, len(body) + 4, rest)).status == 204
    assert (root / "i.bin").read_bytes() == body + small + rest


async def test_interrupted_patch_with_checksum_keeps_nothing(root: Path, clock: WallClock) -> None:
    app, _ = make_app(root, clock)
    async with TestClient(app) as client:
        url = await new_upload(client, "k.bin", 100)
        digest = base64.b64encode(hashlib.sha1(b"x" * 50).digest()).decode()
        await cut_patch(app, url, 0, 50, b"x" * 20, upload_checksum=f"sha1 {digest}")
        assert await offset_of(client, url) == 0
        assert data_file(root, url).read_bytes() == b""


async def test_unverified_bytes_of_a_killed_server_are_cut_back(
    root: Path, clock: WallClock
) -> None:
    """A server killed mid-PATCH with a checksum leaves its marker: the bytes do not count."""
    app, _ = make_app(root, clock)
    async with TestClient(app) as client:
        url = await new_upload(client, "v.bin", 10)
        assert (await patch(client, url, 0, b"abc")).status == 204
        upload_id = url.rsplit("/", 1)[1]
        Staging(root).begin_verify(upload_id, 3)  # as a checksummed PATCH does, then dies
        with data_file(root, url).open("ab") as file:
            file.write(b"unverified")
        assert await offset_of(client, url) == 3
        assert (await patch(client, url, 3, b"defghij")).status == 204
    assert (root / "v.bin").read_bytes() == b"abcdefghij"
    assert staged(root) == []


async def test_concurrent_patch_takes_over_and_never_interleaves(
    root: Path, clock: WallClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, tus = make_app(root, clock)
    first = os.urandom(WRITE_BUFFER_SIZE + 1000)
    wrote = trio.Event()
    write = Staging.write

    def write_and_tell(state: WriteState, data: bytearray) -> None:
        write(state, data)
        trio.from_thread.run_sync(wrote.set)

    monkeypatch.setattr(Staging, "write", staticmethod(write_and_tell))
    async with TestClient(app) as client, TestClient(app) as other:
        url = await new_upload(client, "cc.bin", 4 * WRITE_BUFFER_SIZE)
        released = trio.Event()

        async def slow_body() -> AsyncIterator[bytes]:
            yield first
            await released.wait()  # the rest never comes
            yield b"late"

        async def first_patch() -> None:
            response = await client.request(
                "PATCH", url, headers={**STREAM, "upload-offset": "0"}, body=slow_body()
            )
            results.append(response.status)

        results: list[int] = []
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(first_patch)
                await wrote.wait()  # the first PATCH is writing (one buffer is out)
                response = await patch(other, url, 0, b"second")
                # The first let go and synced all it had; the second's offset is stale.
                assert response.status == 409
                assert response.headers["upload-offset"] == str(len(first))
                released.set()
        assert results == [409]
        assert not tus.writers.active
        assert await offset_of(other, url) == len(first)
        assert data_file(root, url).read_bytes() == first


async def test_another_process_writing_is_423(client: TestClient, root: Path) -> None:
    url = await new_upload(client, "p.bin", 10)
    fd = os.open(data_file(root, url), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a second open file, as another worker's would be
        assert (await patch(client, url, 0, b"abc")).status == 423
        assert (await client.delete(url, headers=TUS)).status == 423
        assert (await client.head(url, headers=TUS)).status == 200
    finally:
        os.close(fd)
    assert (await patch(client, url, 0, b"abc")).status == 204


def test_remove_stale_uploads_leaves_tus_files_alone(root: Path) -> None:
    from trio_http.files.uploads import remove_stale_uploads

    staging = Staging(root)
    staging.create("0123456789abcdef0123456789abcdef", UploadInfo(5, "", "x", 0.0, 1.0))
    before = staged(root)
    assert len(before) == 2
    assert remove_stale_uploads(root) == 0
    assert staged(root) == before


# ---------------------------------------------------------------- expiry


async def test_expired_upload_is_410_and_removed(
    client: TestClient, root: Path, clock: WallClock
) -> None:
    url = await new_upload(client, "e.txt", 10)
    assert (await patch(client, url, 0, b"abc")).status == 204
    clock.offset = EXPIRY - 60
    assert await offset_of(client, url) == 3  # not yet
    clock.offset = EXPIRY + 1
    assert (await client.head(url, headers=TUS)).status == 410
    assert staged(root) == []
    assert (await client.head(url, headers=TUS)).status == 404


async def test_writing_moves_the_expiry(client: TestClient, root: Path, clock: WallClock) -> None:
    url = await new_upload(client, "w.txt", 10)
    data = data_file(root, url)
    old = data.stat().st_mtime - EXPIRY / 2
    os.utime(data, (old, old))
    info = data.with_suffix(".tus-info")
    os.utime(info, (old, old))
    clock.offset = EXPIRY / 2 + 10
    # Created (in the info) "now", so not expired; then written: a fresh expiry.
    assert (await patch(client, url, 0, b"abc")).status == 204
    assert await offset_of(client, url) == 3


async def test_expire_periodically_sweeps_at_start_and_then(
    root: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = WallClock()
    _, tus = make_app(root, clock)
    staging = Staging(root)
    long_ago = clock() - EXPIRY - 5
    stale, fresh, later = "a" * 32, "b" * 32, "c" * 32
    staging.create(stale, UploadInfo(10, "", "s1", long_ago, long_ago + EXPIRY))
    os.utime(staging.data_path(stale), (long_ago, long_ago))
    staging.create(fresh, UploadInfo(10, "", "s2", clock(), clock() + EXPIRY))
    staging.create(later, UploadInfo(10, "", "s3", clock(), clock() + EXPIRY))
    # An orphan (data without info, a creation cut short) old enough to go.
    orphan = Path(staging.data_path("f" * 32))
    orphan.write_bytes(b"x")
    os.utime(orphan, (long_ago - ORPHAN_GRACE, long_ago - ORPHAN_GRACE))
    done, swept = trio.open_memory_channel[int](10)
    sweep = tus.sweep

    async def counted_sweep() -> int:
        removed = await sweep()
        await done.send(removed)
        return removed

    monkeypatch.setattr(tus, "sweep", counted_sweep)
    # No fail_after: under the autojump clock, a deadline would fire while a sweep waits for
    # its worker thread (pytest-timeout bounds the test).
    async with trio.open_nursery() as nursery:
        await nursery.start(tus.expire_periodically)
        assert await swept.receive() == 1  # at start
        assert not Path(staging.data_path(stale)).exists() and not orphan.exists()
        assert staging.load(fresh) is not None
        # Written a while ago (so its time moves): kept while the other ages out.
        clock.offset = EXPIRY + 1
        os.utime(staging.data_path(later), (clock() - 10, clock() - 10))
        assert await swept.receive() == 1  # after sweep_interval of (mock) time
        nursery.cancel_scope.cancel()
    assert staging.load(fresh) is None and staging.load(later) is not None
    assert sorted(staged(root)) == sorted(
        Path(staging.data_path(later)).name[: -len(".tus-data")] + suffix
        for suffix in (".tus-data", ".tus-info")
    )
    assert tus.sweep_interval == EXPIRY / 2


async def test_oversized_metadata_and_names_are_refused_not_failed(client: TestClient) -> None:
    """A 4xx with a message, never 201 then 404, never a 500."""
    huge = {**TUS, "upload-length": "1", "upload-metadata": meta("a.txt", note=b"x" * 20000)}
    response = await client.post("/uploads/", b"", headers=huge)
    assert response.status == 400 and b"Upload-Metadata is longer" in response.body
    for name in ("d/" + "n" * 256 + "/x", "é" * 2100, "a/" * 2100 + "x"):
        too_long = await create(client, name, 1)
        assert too_long.status == 414, (name[:20], too_long.status, too_long.text)
    reserved = await create(client, ".trio-http-upload-tus/x", 1)
    assert reserved.status == 404
