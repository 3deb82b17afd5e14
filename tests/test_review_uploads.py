"""Review findings on the writing side of the file server: tus uploads, PUT, digests, archives.

Each test names the rule it checks; each failed before its fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_tus import TUS, WallClock, make_app, meta

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
