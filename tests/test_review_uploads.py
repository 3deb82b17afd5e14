"""Review findings on the writing side of the file server: tus uploads, PUT, digests, archives.

Each test names the rule it checks; each failed before its fix.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from test_tus import TUS, WallClock, make_app, meta, new_upload, patch

from trio_http.builtin import build_app
from trio_http.errors import HTTPError
from trio_http.protocol import tus as proto
from trio_http.testing import TestClient

# ---------------------------------------------------------------- tus: Upload-Metadata keys


def test_metadata_keys_are_anything_but_spaces_and_commas() -> None:
    """tus 1.0.0, Creation, Upload-Metadata: "The key MUST NOT contain spaces and commas and
    MUST NOT be empty. The key SHOULD be ASCII encoded": tus-js-client accepts any other
    character in a key (``file:name``, ``meta[tag]``), so the server must too."""
    value = "filename eA==,rel:path eQ==,meta[tag] ,a/b eg=="
    assert proto.parse_metadata(value) == {
        "filename": b"x",
        "rel:path": b"y",
        "meta[tag]": b"",
        "a/b": b"z",
    }
    with pytest.raises(HTTPError) as caught:
        proto.parse_metadata("filename eA==,,x")  # an empty key
    assert caught.value.status == 400


async def test_upload_with_a_non_token_metadata_key_is_created(tmp_path: Path) -> None:
    root = tmp_path
    app, _ = make_app(root, WallClock())
    headers = {**TUS, "upload-length": "1", "upload-metadata": meta("k.txt") + ",rel:path eQ=="}
    async with TestClient(app) as client:
        response = await client.post("/uploads/", b"", headers=headers)
        assert response.status == 201, response.text
        head = await client.head(response.headers["location"], headers=TUS)
        assert head.headers["upload-metadata"] == headers["upload-metadata"]


# ---------------------------------------------------------------- tus: a completed upload


async def test_completed_upload_still_answers_head_and_a_retried_patch(tmp_path: Path) -> None:
    """tus 1.0.0, Core Protocol, HEAD: "The Server MUST always include the Upload-Offset
    header in the response for a HEAD request, even if the offset is 0, or the upload is
    already considered completed."  A client whose last PATCH answer was lost (the
    connection dropped after the server finished) asks with HEAD: it must learn the upload is
    complete, not get 404 (the listing page then reported a failure for a stored file, and
    tus-js-client uploaded the whole file again)."""
    root = tmp_path
    app, _ = make_app(root, WallClock())
    async with TestClient(app) as client:
        url = await new_upload(client, "done.txt", 5)
        assert (await patch(client, url, 0, b"hello")).status == 204
        assert (root / "done.txt").read_bytes() == b"hello"
        head = await client.head(url, headers=TUS)
        assert head.status == 200, head.text
        assert head.headers["upload-offset"] == "5"
        assert head.headers["upload-length"] == "5"
        assert head.headers["cache-control"] == "no-store"
        # The lost PATCH sent again: a wrong offset, 409 with where the upload is.
        again = await patch(client, url, 0, b"hello")
        assert again.status == 409
        assert again.headers["upload-offset"] == "5"
        # At the end with nothing more: 204, complete.
        empty = await patch(client, url, 5, b"")
        assert empty.status == 204 and empty.headers["upload-offset"] == "5"
        # Still 415 without the content type, as for any PATCH.
        plain = await client.request("PATCH", url, headers={**TUS, "upload-offset": "5"}, body=b"")
        assert plain.status == 415
        # Termination forgets it (the stored file stays).
        assert (await client.delete(url, headers=TUS)).status == 204
        assert (await client.head(url, headers=TUS)).status == 404
        assert (root / "done.txt").read_bytes() == b"hello"


async def test_completed_upload_is_forgotten_after_the_expiry(tmp_path: Path) -> None:
    clock = WallClock()
    app, tus = make_app(tmp_path, clock)
    async with TestClient(app) as client:
        url = await new_upload(client, "e.txt", 1)
        assert (await patch(client, url, 0, b"e")).status == 204
        assert (await client.head(url, headers=TUS)).status == 200
        clock.offset += tus.expiry + 1
        assert (await client.head(url, headers=TUS)).status == 404


async def test_completed_uploads_do_not_count_as_unfinished(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, WallClock(), max_uploads=1)
    async with TestClient(app) as client:
        for name in ("one.txt", "two.txt"):
            url = await new_upload(client, name, 1)
            assert (await patch(client, url, 0, b"x")).status == 204


async def test_a_refused_final_move_is_not_answered_as_an_offset_conflict(tmp_path: Path) -> None:
    """tus 1.0.0, Core Protocol, PATCH: 409 is the answer to an Upload-Offset mismatch, and
    clients act on it so: tus-js-client retries a 409, the listing page's upload.js asks the
    offset with HEAD; HEAD then says all bytes are in (offset = length), so both report the
    upload done although the file never reached its place (a file is in the way of a
    folder).  The refusal must be a status clients give up on (a 4xx other than 409/423)."""
    app, _ = make_app(tmp_path, WallClock())
    async with TestClient(app) as client:
        url = await new_upload(client, "blocker/x.txt", 2)
        (tmp_path / "blocker").write_text("a file")
        response = await patch(client, url, 0, b"ok")
        assert 400 <= response.status < 500 and response.status not in (409, 423)
        assert not (tmp_path / "blocker").is_dir()


# ---------------------------------------------------------------- PUT


async def test_put_with_content_range_is_400_and_keeps_the_file(tmp_path: Path) -> None:
    """RFC 9110 §9.3.4: "An origin server that allows PUT on a given target resource MUST send
    a 400 (Bad Request) response to a PUT request that contains a Content-Range header field
    [...], since the content is likely to be partial content that has been mistakenly PUT as a
    full representation."  The 10-byte file was replaced by the 2 bytes of the range."""
    (tmp_path / "f.txt").write_bytes(b"0123456789")
    async with TestClient(build_app(tmp_path)) as client:
        response = await client.put(
            "/files/f.txt", b"AB", headers={"content-range": "bytes 2-3/10"}
        )
        assert response.status == 400
        assert (tmp_path / "f.txt").read_bytes() == b"0123456789"
        response = await client.put(
            "/files/new.txt", b"AB", headers={"content-range": "bytes 0-1/2"}
        )
        assert response.status == 400
        assert not (tmp_path / "new.txt").exists()


# ---------------------------------------------------------------- RFC 9530 preference fields


async def test_a_malformed_want_digest_is_ignored_not_a_400(tmp_path: Path) -> None:
    """RFC 8941 §4.2: when a Structured Field fails to parse, "the entire field value MUST be
    ignored (i.e., treated as if the field were not present)", and §2: a field-specific
    constraint violated (``sha-256`` is a Boolean, not the Integer RFC 9530 §4 asks for)
    "should have the same effect".  RFC 9530 §4: preferences are only a hint.  A GET with such
    a hint must still get its file, not ``400``."""
    (tmp_path / "h.txt").write_bytes(b"hello")
    async with TestClient(build_app(tmp_path)) as client:
        response = await client.get("/files/h.txt", headers={"want-repr-digest": "sha-256"})
        assert response.status == 200 and response.body == b"hello"
        assert "repr-digest" not in response.headers
        # One malformed field does not spoil the other.
        response = await client.get(
            "/files/h.txt",
            headers={"want-content-digest": "sha-256=11", "want-repr-digest": "sha-256=5"},
        )
        assert response.status == 200
        assert response.headers["repr-digest"] == "sha-256=:" + _sha256_b64(b"hello") + ":"
        assert "content-digest" not in response.headers


def _sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()
