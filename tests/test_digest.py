"""RFC 9530 digests: field parsing and formatting, verified uploads, digests of responses.

The tests marked "through the server" go through FileServer._store (which passes
``expected=expected_digests(...)``) and ResponseFinalizer.finalize (which calls
``digest_fields``).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
import trio

from trio_http import digests as files_digest
from trio_http.builtin import build_app
from trio_http.compression import CompressionPolicy, negotiate_and_encode
from trio_http.digests import DigestCache, DigestMismatch, digest_fields, expected_digests
from trio_http.errors import HTTPError
from trio_http.files.uploads import TEMP_PREFIX, write_atomically
from trio_http.headers import Headers
from trio_http.protocol.digest import (
    DigestFieldError,
    ExpectedDigest,
    choose_algorithm,
    expected_from_fields,
    format_digest_field,
    parse_dictionary,
    parse_digest_field,
    parse_want_field,
)
from trio_http.response import (
    BaseResponse,
    FileResponse,
    Representation,
    Response,
    StreamingResponse,
)
from trio_http.testing import TestClient

HELLO = b'{"hello": "world"}\n'
#: RFC 9530 Appendix B.1: sha-256 of HELLO.
HELLO_SHA256 = "RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg="
#: RFC 9530 Appendix B.2: sha-256 of the empty content.
EMPTY_SHA256 = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
POLICY = CompressionPolicy()
TEXT = b"".join(b"line %d of a compressible text file\n" % i for i in range(400))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def field(algorithm: str, data: bytes) -> str:
    """The digest field value a correct client would send for *data*."""
    return f"{algorithm}=:{b64(hashlib.new(algorithm.replace('-', ''), data).digest())}:"


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob(f"{TEMP_PREFIX}*"))


def test_protocol_module_loads_no_trio() -> None:
    code = "import sys, trio_http.protocol.digest; print('trio' in sys.modules)"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert output.strip() == "False"


# ---------------------------------------------------------------- parsing and formatting


def test_parse_content_digest_rfc_example() -> None:
    assert parse_digest_field(f"sha-256=:{HELLO_SHA256}:") == {"sha-256": sha256(HELLO)}


def test_parse_several_algorithms_and_whitespace() -> None:
    value = f"sha-512=:{b64(hashlib.sha512(HELLO).digest())}: ,\t sha-256=:{HELLO_SHA256}:"
    assert parse_digest_field(value, "Repr-Digest") == {
        "sha-512": hashlib.sha512(HELLO).digest(),
        "sha-256": sha256(HELLO),
    }


def test_unknown_and_deprecated_algorithms_are_ignored() -> None:
    # Deprecated ones (RFC 9530 §5), legacy integers, unknown keys with parameters or lists.
    value = (
        "md5=:Sd/dVLAcvNLSq16eXua5uQ==:, sha=:07CavjDP4u3/TungoUHJO/Wzr4c=:, unixsum=26869, "
        f'blake3=:AAAA:;x=1, future=("a" 1), flag, sha-256=:{HELLO_SHA256}:'
    )
    assert parse_digest_field(value) == {"sha-256": sha256(HELLO)}
    assert parse_digest_field("md5=:Sd/dVLAcvNLSq16eXua5uQ==:") == {}
    assert parse_digest_field("") == {}


def test_missing_base64_padding_is_accepted() -> None:
    # RFC 8941 §4.2.7: parsers SHOULD NOT fail when "=" padding is not present.
    assert parse_digest_field(f"sha-256=:{HELLO_SHA256.rstrip('=')}:") == {"sha-256": sha256(HELLO)}


def test_a_later_duplicate_wins() -> None:
    # RFC 8941 §4.2.2: a repeated key overwrites the earlier value.
    value = f"sha-256=:{b64(bytes(32))}:, sha-256=:{HELLO_SHA256}:"
    assert parse_digest_field(value) == {"sha-256": sha256(HELLO)}


@pytest.mark.parametrize(
    "value",
    [
        "sha-256=abc",  # a token, not a byte sequence
        "sha-256=12",  # an integer
        "sha-256",  # a bare key is Boolean true
        "sha-256=:not base64!:",
        f"sha-256=:{HELLO_SHA256}",  # unterminated
        f"sha-256=:{HELLO_SHA256}:,",  # trailing comma
        f"sha-256=:{HELLO_SHA256}: sha-512=:AA==:",  # missing comma
        f"SHA-256=:{HELLO_SHA256}:",  # keys are lower case
        "sha-256=:AAAA:",  # 3 bytes: not a SHA-256 output
        f"sha-512=:{HELLO_SHA256}:",  # 32 bytes: not a SHA-512 output
        "sha-256=:A:",  # impossible base64 length
        "=:AAAA:",
        "sha-256=:AA=A:",
    ],
)
def test_malformed_digest_fields_raise(value: str) -> None:
    with pytest.raises(DigestFieldError) as info:
        parse_digest_field(value, "Content-Digest")
    assert "Content-Digest" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_structured_field_items() -> None:
    parsed = parse_dictionary(
        'a=1, b=-2.5, c="x \\"y\\" \\\\", d=tok/en:1, e=?0, f=?1, g=(1 "two" :AQI=:);p, '
        "h;q=0.5;r, i=:AQID:"
    )
    assert parsed == {
        "a": (1, {}),
        "b": (-2.5, {}),
        "c": ('x "y" \\', {}),
        "d": ("tok/en:1", {}),
        "e": (False, {}),
        "f": (True, {}),
        "g": ([(1, {}), ("two", {}), (b"\x01\x02", {})], {"p": True}),
        "h": (True, {"q": 0.5, "r": True}),
        "i": (b"\x01\x02\x03", {}),
    }


@pytest.mark.parametrize(
    "value",
    [
        "a=1234567890123456",  # 16 digits
        "a=1.2345",  # 4 fraction digits
        "a=1.",
        "a=-",
        'a="unterminated',
        'a="bad \\x escape"',
        "a=?2",
        "a=(1 2",
        "a=(1,2)",
        "a=@",
        "a=1;",
        "a=1,,b=2",
        "a=é",
    ],
)
def test_malformed_structured_fields_raise(value: str) -> None:
    with pytest.raises(DigestFieldError):
        parse_dictionary(value)


def test_want_weights() -> None:
    assert parse_want_field("sha-512=3, sha-256=10, unixsum=0") == {
        "sha-512": 3,
        "sha-256": 10,
        "unixsum": 0,
    }
    # Parameters are ignored; unknown algorithms with odd values are ignored too.
    assert parse_want_field("sha-256=5;q=1, weird=?1, big=99") == {"sha-256": 5}


@pytest.mark.parametrize("value", ["sha-256=11", "sha-256=-1", "sha-256", "sha-256=1.5", "x=,"])
def test_malformed_want_fields_raise(value: str) -> None:
    with pytest.raises(DigestFieldError):
        parse_want_field(value, "Want-Repr-Digest")


@pytest.mark.parametrize(
    ("value", "chosen"),
    [
        ("sha-256=1", "sha-256"),
        ("sha-512=3, sha-256=10, unixsum=0", "sha-256"),
        ("sha-512=10, sha-256=1", "sha-512"),
        ("sha-512=5, sha-256=5", "sha-256"),  # a tie: the server's preference
        ("sha=10, sha-256=1", "sha-256"),  # insecure ones are never used
        ("sha=10", "sha-256"),  # only algorithms we lack: ours (RFC 9530 Appendix C.2)
        ("sha=10, sha-256=0", "sha-512"),  # ... but not one marked "not acceptable"
        ("sha=10, sha-256=0, sha-512=0", None),
        ("sha-256=0", None),
        ("unixsum=0", None),
        ("", None),
    ],
)
def test_choose_algorithm(value: str, chosen: str | None) -> None:
    assert choose_algorithm(parse_want_field(value)) == chosen


def test_format_round_trips() -> None:
    digests = {"sha-256": sha256(HELLO), "sha-512": hashlib.sha512(HELLO).digest()}
    value = format_digest_field(digests)
    assert value.startswith(f"sha-256=:{HELLO_SHA256}:, sha-512=:".encode())
    assert parse_digest_field(value.decode()) == digests
    assert format_digest_field([("sha-256", sha256(b""))]) == f"sha-256=:{EMPTY_SHA256}:".encode()


def test_expected_from_fields_keeps_both_fields() -> None:
    expected = expected_from_fields(f"sha-256=:{HELLO_SHA256}:", field("sha-512", HELLO))
    assert expected == (
        ExpectedDigest("Content-Digest", "sha-256", sha256(HELLO)),
        ExpectedDigest("Repr-Digest", "sha-512", hashlib.sha512(HELLO).digest()),
    )


def test_expected_digests_from_headers() -> None:
    assert expected_digests(Headers({"content-type": "text/plain"})) is None
    assert expected_digests(Headers({"content-digest": "md5=:Sd/dVLAcvNLSq16eXua5uQ==:"})) is None
    # Two field lines are one Structured Field (RFC 8941 §4.2).
    headers = Headers([("repr-digest", "md5=:AA==:"), ("repr-digest", field("sha-256", HELLO))])
    assert expected_digests(headers) == (ExpectedDigest("Repr-Digest", "sha-256", sha256(HELLO)),)
    with pytest.raises(HTTPError) as info:
        expected_digests(Headers({"content-digest": "sha-256=nope"}))
    assert info.value.status == 400
    assert "Content-Digest" in (info.value.detail or "")


# ---------------------------------------------------------------- verified uploads


async def chunks(data: bytes, size: int = 100_000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


BIG = bytes(range(256)) * 10_000  # 2.5 MB: several 1 MiB write buffers


@pytest.mark.parametrize("name", ["Content-Digest", "Repr-Digest"])
async def test_write_atomically_accepts_a_matching_digest(tmp_path: Path, name: str) -> None:
    target = tmp_path / "big.bin"
    headers = Headers({name: f"{field('sha-256', BIG)}, {field('sha-512', BIG)}"})
    expected = expected_digests(headers)
    assert expected is not None and len(expected) == 2
    await write_atomically(chunks(BIG), target, expected=expected)
    assert target.read_bytes() == BIG
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["Content-Digest", "Repr-Digest"])
@pytest.mark.parametrize("algorithm", ["sha-256", "sha-512"])
async def test_write_atomically_refuses_a_mismatch(
    tmp_path: Path, name: str, algorithm: str
) -> None:
    target = tmp_path / "big.bin"
    target.write_bytes(b"old content")
    expected = expected_digests(Headers({name: field(algorithm, BIG + b"!")}))
    assert expected is not None
    with pytest.raises(DigestMismatch) as info:
        await write_atomically(chunks(BIG), target, expected=expected)
    assert info.value.status == 400
    assert info.value.detail == f"{name} does not match the body ({algorithm})"
    assert target.read_bytes() == b"old content"
    assert leftovers(tmp_path) == []


async def test_write_atomically_one_wrong_digest_of_two_is_a_mismatch(tmp_path: Path) -> None:
    target = tmp_path / "small.txt"
    headers = Headers(
        {"content-digest": field("sha-256", HELLO), "repr-digest": field("sha-256", b"other")}
    )
    with pytest.raises(DigestMismatch, match="Repr-Digest"):
        await write_atomically(chunks(HELLO), target, expected=expected_digests(headers))
    assert not target.exists()
    assert leftovers(tmp_path) == []


async def test_write_atomically_without_digests_is_unchanged(tmp_path: Path) -> None:
    target = tmp_path / "plain.bin"
    await write_atomically(chunks(BIG), target)
    assert target.read_bytes() == BIG
    await write_atomically(chunks(b""), target, expected=None)
    assert target.read_bytes() == b""


# ---------------------------------------------------------------- digests of responses


def want(**fields: str) -> Headers:
    return Headers({name.replace("_", "-"): value for name, value in fields.items()})


def parse(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, dict[str, bytes]]:
    return {name.decode(): parse_digest_field(value.decode()) for name, value in headers}


async def body_of(response: BaseResponse) -> bytes:
    data = b"".join([chunk async for chunk in response.iter_body()])
    await response.aclose()
    return data


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "text.txt"
    path.write_bytes(TEXT)
    return path


def file_response(path: Path, status: int = 200, **kwargs: object) -> FileResponse:
    headers = {"etag": '"v1"', "content-type": "text/plain"}
    return FileResponse(io.FileIO(path, "r"), status, headers, **kwargs)  # type: ignore[arg-type]


async def test_bytes_body_gets_both_digests() -> None:
    cache = DigestCache(POLICY)
    request = want(want_content_digest="sha-256=1", want_repr_digest="sha-512=1")
    fields = await digest_fields(request, Response(HELLO), cache, method="GET")
    assert fields[0] == (b"content-digest", f"sha-256=:{HELLO_SHA256}:".encode())
    assert parse(fields)["repr-digest"] == {"sha-512": hashlib.sha512(HELLO).digest()}
    big = Response(BIG)  # hashed in a worker thread
    fields = await digest_fields(want(want_repr_digest="sha-256=1"), big, cache, method="GET")
    assert parse(fields) == {"repr-digest": {"sha-256": sha256(BIG)}}


async def test_no_want_fields_no_digest() -> None:
    headers = Headers({"accept": "*/*"})
    assert await digest_fields(headers, Response(HELLO), DigestCache(POLICY), method="GET") == []


async def test_head_content_digest_is_of_empty_content(text_file: Path) -> None:
    # RFC 9530 Appendix B.2: a HEAD's Content-Digest is computed on empty content, its
    # Repr-Digest on the representation a GET would send.
    request = want(want_content_digest="sha-256=1", want_repr_digest="sha-256=1")
    response = file_response(text_file)
    fields = await digest_fields(request, response, DigestCache(POLICY), method="HEAD")
    await response.aclose()
    assert parse(fields) == {
        "content-digest": {"sha-256": sha256(b"")},
        "repr-digest": {"sha-256": sha256(TEXT)},
    }


@pytest.mark.parametrize("status", [204, 304])
async def test_no_digest_without_content(status: int) -> None:
    request = want(want_content_digest="sha-256=1", want_repr_digest="sha-256=1")
    assert (
        await digest_fields(request, Response(status=status), DigestCache(POLICY), method="GET")
        == []
    )


async def test_streams_get_no_digest() -> None:
    async def produce() -> AsyncIterator[bytes]:
        yield b"unknown in advance"

    request = want(want_content_digest="sha-256=1", want_repr_digest="sha-256=1")
    response = StreamingResponse(produce())
    assert await digest_fields(request, response, DigestCache(POLICY), method="GET") == []


async def test_a_digest_the_response_has_is_kept() -> None:
    response = Response(HELLO, headers={"content-digest": "sha-256=:AAAA:"})
    request = want(want_content_digest="sha-256=1", want_repr_digest="sha-256=1")
    fields = await digest_fields(request, response, DigestCache(POLICY), method="GET")
    assert [name for name, _ in fields] == [b"repr-digest"]


async def test_malformed_want_is_ignored() -> None:
    """RFC 8941 §4.2: a field that fails to parse is ignored, whatever the method."""
    request = want(want_repr_digest="sha-256=11")
    for method in ("GET", "PUT"):
        fields = await digest_fields(request, Response(HELLO), DigestCache(POLICY), method=method)
        assert fields == []


async def test_file_200_digest_is_cached_per_etag(
    text_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    original = files_digest._hash_parts

    async def counting(*args: object) -> bytes:
        nonlocal calls
        calls += 1
        return await original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(files_digest, "_hash_parts", counting)
    cache = DigestCache(POLICY)
    request = want(want_content_digest="sha-256=1", want_repr_digest="sha-256=1")
    for _ in range(3):
        response = file_response(text_file)
        fields = await digest_fields(request, response, cache, method="GET")
        assert parse(fields) == {
            "content-digest": {"sha-256": sha256(TEXT)},
            "repr-digest": {"sha-256": sha256(TEXT)},
        }
        assert await body_of(response) == TEXT
    assert calls == 1  # the content and the representation are the same bytes
    assert len(cache) == 1


async def test_concurrent_requests_hash_once(
    text_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    original = files_digest._hash_parts
    release = trio.Event()

    async def slow(*args: object) -> bytes:
        nonlocal calls
        calls += 1
        await release.wait()
        return await original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(files_digest, "_hash_parts", slow)
    cache = DigestCache(POLICY)
    results: list[list[tuple[bytes, bytes]]] = []

    async def one() -> None:
        response = file_response(text_file)
        request = want(want_repr_digest="sha-256=1")
        results.append(await digest_fields(request, response, cache, method="GET"))
        await response.aclose()

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(one)
        await trio.testing.wait_all_tasks_blocked()
        release.set()
    assert calls == 1
    assert all(parse(fields) == {"repr-digest": {"sha-256": sha256(TEXT)}} for fields in results)


def test_cache_is_bounded_lru() -> None:
    cache = DigestCache(POLICY, max_entries=2)
    keys = [(f'"{i}"', "identity", "sha-256", (0, i)) for i in range(3)]
    cache.put(keys[0], b"0")
    cache.put(keys[1], b"1")
    assert cache.get(keys[0]) == b"0"  # now the most recent
    cache.put(keys[2], b"2")
    assert len(cache) == 2
    assert cache.get(keys[1]) is None
    assert cache.get(keys[0]) == b"0" and cache.get(keys[2]) == b"2"


async def test_weak_etag_is_not_cached(text_file: Path) -> None:
    cache = DigestCache(POLICY)
    response = FileResponse(io.FileIO(text_file, "r"), headers={"etag": 'W/"v1"'})
    fields = await digest_fields(want(want_repr_digest="sha-256=1"), response, cache, method="GET")
    await response.aclose()
    assert parse(fields) == {"repr-digest": {"sha-256": sha256(TEXT)}}
    assert len(cache) == 0


async def test_single_range(text_file: Path) -> None:
    size = len(TEXT)
    response = file_response(
        text_file,
        206,
        parts=[(100, 50)],
        representation=Representation("text/plain", size),
    )
    request = want(want_content_digest="sha-256=1", want_repr_digest="sha-512=1")
    fields = await digest_fields(request, response, DigestCache(POLICY), method="GET")
    sent = await body_of(response)
    assert sent == TEXT[100:150]
    assert parse(fields) == {
        "content-digest": {"sha-256": sha256(sent)},
        "repr-digest": {"sha-512": hashlib.sha512(TEXT).digest()},
    }


async def test_multipart_ranges_include_part_heads(text_file: Path) -> None:
    parts: list[bytes | tuple[int, int]] = [
        b"\r\n--B\r\nContent-Range: bytes 0-9/x\r\n\r\n",
        (0, 10),
        b"\r\n--B\r\nContent-Range: bytes 200-219/x\r\n\r\n",
        (200, 20),
        b"\r\n--B--\r\n",
    ]
    response = file_response(
        text_file, 206, parts=parts, representation=Representation("text/plain", len(TEXT))
    )
    request = want(want_content_digest="sha-256=1", want_repr_digest="sha-256=1")
    fields = await digest_fields(request, response, DigestCache(POLICY), method="GET")
    sent = await body_of(response)
    assert parse(fields) == {
        "content-digest": {"sha-256": sha256(sent)},
        "repr-digest": {"sha-256": sha256(TEXT)},
    }


async def test_partial_response_of_unknown_representation_has_no_repr_digest() -> None:
    response = Response(b"part", 206, {"content-range": "bytes 0-3/100"})
    request = want(want_content_digest="sha-256=1", want_repr_digest="sha-256=1")
    fields = await digest_fields(request, response, DigestCache(POLICY), method="GET")
    assert parse(fields) == {"content-digest": {"sha-256": sha256(b"part")}}


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
async def test_compressed_file_variant(text_file: Path, coding: str) -> None:
    policy = CompressionPolicy()
    if coding not in policy.codings:
        pytest.fail(f"{coding} is not installed")  # the test extra installs every coding
    cache = DigestCache(policy)
    request = want(want_content_digest="sha-256=1", want_repr_digest="sha-512=1")
    for _ in range(2):  # computed, then from the cache under the variant's ETag
        response = await negotiate_and_encode(file_response(text_file), coding, policy)
        assert response.headers.get("content-encoding") == coding
        assert response.headers.get("etag") == f'"v1-{coding}"'
        fields = await digest_fields(request, response, cache, method="GET")
        sent = await body_of(response)
        assert parse(fields) == {
            "content-digest": {"sha-256": sha256(sent)},
            "repr-digest": {"sha-512": hashlib.sha512(sent).digest()},
        }
    if coding == "gzip":
        assert gzip.decompress(sent) == TEXT
    assert len(cache) == 2


async def test_compressed_variant_follows_the_policy_level(text_file: Path) -> None:
    policy = CompressionPolicy(level=1)
    response = await negotiate_and_encode(file_response(text_file), "gzip", policy)
    request = want(want_content_digest="sha-256=1")
    fields = await digest_fields(request, response, DigestCache(policy), method="GET")
    sent = await body_of(response)
    assert sent != gzip.compress(TEXT, 6, mtime=0)  # level 1 differs from the default
    assert parse(fields) == {"content-digest": {"sha-256": sha256(sent)}}


async def test_compressed_bytes_body(text_file: Path) -> None:
    policy = CompressionPolicy()
    response = await negotiate_and_encode(Response(TEXT, content_type="text/plain"), "gzip", policy)
    request = want(want_content_digest="sha-256=1")
    fields = await digest_fields(request, response, DigestCache(POLICY), method="GET")
    sent = await body_of(response)
    assert gzip.decompress(sent) == TEXT
    assert parse(fields) == {"content-digest": {"sha-256": sha256(sent)}}


async def test_a_file_that_shrinks_gets_no_digest(text_file: Path) -> None:
    response = file_response(text_file)  # parts measured now
    text_file.write_bytes(b"short")
    cache = DigestCache(POLICY)
    fields = await digest_fields(want(want_repr_digest="sha-256=1"), response, cache, method="GET")
    await response.aclose()
    assert fields == []
    assert len(cache) == 0


# ---------------------------------------------------------------- through the server


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "srv"
    base.mkdir()
    (base / "text.txt").write_bytes(TEXT)
    (base / "hello.json").write_bytes(HELLO)
    return base


@pytest.fixture
async def client(root: Path) -> AsyncIterator[TestClient]:
    async with TestClient(build_app(root)) as test_client:
        yield test_client


async def test_server_put_with_matching_digest(client: TestClient, root: Path) -> None:
    headers = {"content-digest": field("sha-256", BIG), "repr-digest": field("sha-512", BIG)}
    response = await client.put("/files/new.bin", BIG, headers=headers)
    assert response.status == 201
    assert (root / "new.bin").read_bytes() == BIG


@pytest.mark.parametrize("name", ["content-digest", "repr-digest"])
async def test_server_put_with_wrong_digest_changes_nothing(
    client: TestClient, root: Path, name: str
) -> None:
    headers = {name: field("sha-256", b"something else")}
    response = await client.put("/files/hello.json", b"replacement", headers=headers)
    assert response.status == 400
    title = "Content-Digest" if name == "content-digest" else "Repr-Digest"
    assert f"{title} does not match the body (sha-256)" in response.text
    assert (root / "hello.json").read_bytes() == HELLO
    response = await client.post("/files/created.bin", b"x", headers=headers)
    assert response.status == 400
    assert not (root / "created.bin").exists()
    assert leftovers(root) == []


async def test_server_put_with_malformed_digest_is_400(client: TestClient, root: Path) -> None:
    response = await client.put(
        "/files/hello.json", b"replacement", headers={"content-digest": "sha-256=:AAAA:"}
    )
    assert response.status == 400
    assert "Content-Digest" in response.text
    assert (root / "hello.json").read_bytes() == HELLO
    assert leftovers(root) == []


async def test_server_put_with_unknown_algorithm_only_is_accepted(
    client: TestClient, root: Path
) -> None:
    headers = {"content-digest": "md5=:AAAAAAAAAAAAAAAAAAAAAA==:"}
    assert (await client.put("/files/hello.json", b"new", headers=headers)).status == 204
    assert (root / "hello.json").read_bytes() == b"new"


async def test_server_get_want_repr_digest(client: TestClient) -> None:
    response = await client.get("/files/hello.json", headers={"want-repr-digest": "sha-256=1"})
    assert response.status == 200
    assert response.headers.get("repr-digest") == f"sha-256=:{HELLO_SHA256}:"
    assert "content-digest" not in response.headers


async def test_server_head_has_the_get_repr_digest(client: TestClient) -> None:
    headers = {"want-repr-digest": "sha-256=1", "want-content-digest": "sha-256=1"}
    response = await client.head("/files/hello.json", headers=headers)
    assert response.status == 200 and response.body == b""
    assert response.headers.get("repr-digest") == f"sha-256=:{HELLO_SHA256}:"
    assert response.headers.get("content-digest") == f"sha-256=:{EMPTY_SHA256}:"


async def test_server_range_digests(client: TestClient) -> None:
    headers = {
        "want-repr-digest": "sha-256=1",
        "want-content-digest": "sha-512=9, sha-256=1",
        "range": "bytes=10-18",
    }
    response = await client.get("/files/hello.json", headers=headers)
    assert response.status == 206
    assert response.body == HELLO[10:19]
    assert parse_digest_field(response.headers["content-digest"]) == {
        "sha-512": hashlib.sha512(HELLO[10:19]).digest()
    }
    # RFC 9530 Appendix B.3: the same values as the RFC's example.
    assert response.headers.get("repr-digest") == f"sha-256=:{HELLO_SHA256}:"
    assert response.headers.get("content-digest") != response.headers.get("repr-digest")


async def test_server_multipart_range_digest(client: TestClient) -> None:
    headers = {"want-content-digest": "sha-256=1", "range": "bytes=0-4, 100-199"}
    response = await client.get("/files/text.txt", headers=headers)
    assert response.status == 206
    assert response.headers["content-type"].startswith("multipart/byteranges")
    assert parse_digest_field(response.headers["content-digest"]) == {
        "sha-256": sha256(response.body)
    }


async def test_server_gzip_variant_digests_match_what_is_received(client: TestClient) -> None:
    headers = {
        "accept-encoding": "gzip",
        "want-content-digest": "sha-256=1",
        "want-repr-digest": "sha-256=1",
    }
    for _ in range(2):
        response = await client.get("/files/text.txt", headers=headers)
        assert response.status == 200
        assert response.headers.get("content-encoding") == "gzip"
        assert gzip.decompress(response.body) == TEXT
        digests = {"sha-256": sha256(response.body)}
        assert parse_digest_field(response.headers["content-digest"]) == digests
        assert parse_digest_field(response.headers["repr-digest"]) == digests


async def test_server_malformed_want_is_ignored(client: TestClient) -> None:
    response = await client.get("/files/hello.json", headers={"want-repr-digest": "sha-256"})
    assert response.status == 200
    assert "repr-digest" not in response.headers


async def test_server_not_modified_has_no_digest(client: TestClient) -> None:
    first = await client.get("/files/hello.json")
    headers = {"if-none-match": first.headers["etag"], "want-repr-digest": "sha-256=1"}
    response = await client.get("/files/hello.json", headers=headers)
    assert response.status == 304
    assert "repr-digest" not in response.headers


async def test_server_error_response_digest(client: TestClient) -> None:
    # RFC 9530 Appendix B.8: an error's digest is of the error's own representation.
    response = await client.get("/files/missing.txt", headers={"want-repr-digest": "sha-256=1"})
    assert response.status == 404
    assert parse_digest_field(response.headers["repr-digest"]) == {"sha-256": sha256(response.body)}
