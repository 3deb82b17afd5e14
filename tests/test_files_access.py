"""The access rules on every method of the file server (in memory, real connection code)."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from trio_http.builtin import build_app
from trio_http.files.access import AccessRules
from trio_http.testing import TestClient

RULES = ["me:secret@/:rw", "@/public", "guest:guest@/public:rw,/shared"]


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


ME = basic("me", "secret")
GUEST = basic("guest", "guest")
WRONG = basic("me", "nope")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for name in ("public", "private", "shared"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.txt").write_bytes(name.encode())
    return tmp_path


@pytest.fixture
async def client(root: Path) -> AsyncIterator[TestClient]:
    async with TestClient(build_app(root, access=AccessRules.parse(RULES))) as test_client:
        yield test_client


async def status(client: TestClient, method: str, path: str, headers: dict[str, str]) -> int:
    body = b"new" if method in ("PUT", "POST") else b""
    return (await client.request(method, path, headers=headers, body=body)).status


@pytest.mark.parametrize(
    ("method", "path", "anonymous", "guest", "me"),
    [
        ("GET", "/files/public/a.txt", 200, 200, 200),
        ("HEAD", "/files/public/a.txt", 200, 200, 200),
        ("GET", "/files/private/a.txt", 401, 403, 200),
        ("GET", "/files/shared/a.txt", 401, 200, 200),
        ("PUT", "/files/public/b.txt", 401, 201, 204),  # me replaces what guest made
        ("POST", "/files/private/b.txt", 401, 403, 201),
        ("PUT", "/files/shared/b.txt", 401, 403, 201),
        ("DELETE", "/files/public/a.txt", 401, 204, 404),
        ("MKCOL", "/files/public/new/", 401, 201, 405),
        ("MKCOL", "/files/private/new/", 401, 403, 201),
        ("DELETE", "/files/private/a.txt", 401, 403, 204),
    ],
)
async def test_every_method_under_every_rule(
    client: TestClient, method: str, path: str, anonymous: int, guest: int, me: int
) -> None:
    assert await status(client, method, path, {}) == anonymous
    assert await status(client, method, path, GUEST) == guest
    assert await status(client, method, path, ME) == me


async def test_401_has_the_challenge_and_wrong_passwords_never_pass(client: TestClient) -> None:
    response = await client.get("/files/private/a.txt")
    assert response.status == 401
    assert response.headers["www-authenticate"] == 'Basic realm="trio-http", charset="UTF-8"'
    # Wrong credentials are a 401 even where anonymous visitors may read.
    assert (await client.get("/files/public/a.txt", headers=WRONG)).status == 401


async def test_root_listing_shows_anonymous_visitors_only_the_way_to_what_they_may_read(
    client: TestClient,
) -> None:
    json_accept = {"accept": "application/json"}
    anonymous = await client.get("/files/", headers=json_accept)
    assert anonymous.status == 200
    assert [e["name"] for e in json.loads(anonymous.body)["entries"]] == ["public"]
    guest = await client.get("/files/", headers={**json_accept, **GUEST})
    assert [e["name"] for e in json.loads(guest.body)["entries"]] == ["public", "shared"]
    me = await client.get("/files/", headers={**json_accept, **ME})
    assert [e["name"] for e in json.loads(me.body)["entries"]] == ["private", "public", "shared"]
    # The listing's "log in" link asks the browser for credentials.
    login = await client.get("/files/?login")
    assert login.status == 401 and "www-authenticate" in login.headers
    assert (await client.get("/files/?login", headers=ME)).status == 200


async def test_search_finds_only_what_the_visitor_may_read(client: TestClient) -> None:
    json_accept = {"accept": "application/json"}
    anonymous = await client.get("/files/?q=a.txt", headers=json_accept)
    assert [r["path"] for r in json.loads(anonymous.body)["results"]] == ["public/a.txt"]
    me = await client.get("/files/?q=a.txt", headers={**json_accept, **ME})
    assert len(json.loads(me.body)["results"]) == 3


async def test_dot_segments_cannot_climb_to_a_more_permissive_prefix(client: TestClient) -> None:
    response = await client.get("/files/public/%2E%2E/private/a.txt")
    assert response.status in (400, 404)
    assert response.body != b"private"


async def test_without_rules_everything_is_allowed(root: Path) -> None:
    async with TestClient(build_app(root)) as client:
        assert (await client.get("/files/private/a.txt")).status == 200
        assert (await client.put("/files/private/z.txt", b"z")).status == 201


async def test_archives_hold_only_what_the_visitor_may_read(client: TestClient) -> None:
    anonymous = await client.get("/files/?download=zip")
    assert anonymous.status == 200
    names = zipfile.ZipFile(io.BytesIO(anonymous.body)).namelist()
    assert [n for n in names if n.endswith(".txt")] == [f"{root_name(names)}/public/a.txt"]
    me = await client.get("/files/?download=zip", headers=ME)
    assert len([n for n in zipfile.ZipFile(io.BytesIO(me.body)).namelist() if ".txt" in n]) == 3
    assert (await client.get("/files/private/?download=zip")).status == 401


def root_name(names: list[str]) -> str:
    return names[0].split("/")[0]


async def test_no_archives(root: Path) -> None:
    async with TestClient(build_app(root, archives=False)) as client:
        assert (await client.get("/files/?download=zip")).status == 403
        assert (await client.get("/files/?download=7z")).status == 403
    async with TestClient(build_app(root)) as client:
        assert (await client.get("/files/?download=7z")).status == 400


async def test_symlinks_cannot_lend_one_folders_rule_to_another(root: Path) -> None:
    """``public/privlink -> ../private``: the rule of where a link leads applies too."""
    (root / "public" / "privlink").symlink_to("../private")
    (root / "public" / "privfile.txt").symlink_to("../private/a.txt")
    rules = AccessRules.parse(["me:secret@/:rw,/shared", "@/public:rw"])
    async with TestClient(build_app(root, access=rules)) as client:
        assert (await client.get("/files/public/privlink/a.txt")).status == 401
        assert (await client.get("/files/public/privfile.txt")).status == 401
        assert (await client.get("/files/public/privlink/a.txt", headers=ME)).status == 200
        # Writing through a link into a folder the visitor may only read, or not at all.
        put = await client.put("/files/public/privlink/new.txt", b"x")
        assert put.status == 401 and not (root / "private" / "new.txt").exists()
        assert (await client.request("DELETE", "/files/public/privfile.txt")).status == 401
        assert (root / "private" / "a.txt").exists()
        # Listings, search and archives leave the links out for those who may not follow them.
        listing = await client.get("/files/public/", headers={"accept": "application/json"})
        names = [e["name"] for e in json.loads(listing.body)["entries"]]
        assert names == ["a.txt"], names
        found = await client.get("/files/?q=a.txt", headers={"accept": "application/json"})
        assert [r["path"] for r in json.loads(found.body)["results"]] == ["public/a.txt"]
        archive = await client.get("/files/public/?download=zip")
        members = zipfile.ZipFile(io.BytesIO(archive.body)).namelist()
        assert not [m for m in members if "priv" in m], members
        # Through the link, me may read what me may read.
        mine = await client.get("/files/public/", headers={**ME, "accept": "application/json"})
        assert "privlink" in [e["name"] for e in json.loads(mine.body)["entries"]]


async def test_another_sites_page_may_not_change_files(root: Path) -> None:
    trusted = "https://app.example"
    async with TestClient(build_app(root, trusted_origins=[trusted])) as client:
        evil = {"origin": "http://evil.example", "sec-fetch-site": "cross-site"}
        for method in ("PUT", "POST", "DELETE", "MKCOL"):
            response = await client.request(method, "/files/public/x.txt", headers=evil, body=b"")
            assert response.status == 403, method
            assert b"another site" in response.body
        assert not (root / "public" / "x.txt").exists()
        own = {"origin": "http://testserver", "host": "testserver", "sec-fetch-site": "same-origin"}
        assert (await client.put("/files/public/x.txt", b"ok", headers=own)).status == 201
        app = {"origin": trusted, "sec-fetch-site": "cross-site"}
        assert (await client.put("/files/public/y.txt", b"ok", headers=app)).status == 201
        # Reading is not a change: another site's page may read (CORS decides what it sees).
        assert (await client.get("/files/public/a.txt", headers=evil)).status == 200


async def test_stored_files_are_sandboxed_where_visitors_write_for_others(root: Path) -> None:
    (root / "public" / "page.html").write_text("<script>alert(1)</script>")
    async with TestClient(build_app(root, access=AccessRules.parse(RULES))) as client:
        page = await client.get("/files/public/page.html")
    assert page.headers["content-security-policy"] == "sandbox"
    assert page.headers["x-content-type-options"] == "nosniff"
    async with TestClient(build_app(root, read_only=True)) as client:
        page = await client.get("/files/public/page.html")
    # A read-only site's pages are the operator's own: they keep their scripts.
    assert "content-security-policy" not in page.headers
    assert page.headers["x-content-type-options"] == "nosniff"


async def test_tus_targets_obey_the_rules_through_symlinks_too(root: Path) -> None:
    (root / "public" / "privlink").symlink_to("../private")
    rules = AccessRules.parse(["me:secret@/:rw", "@/public:rw"])
    async with TestClient(build_app(root, access=rules)) as client:

        async def create(target: str, headers: dict[str, str]) -> int:
            name = base64.b64encode(target.encode()).decode()
            fields = {"tus-resumable": "1.0.0", "upload-length": "1"}
            fields["upload-metadata"] = f"filename {name}"
            return (await client.post("/uploads/", b"", headers={**fields, **headers})).status

        assert await create("public/x.txt", {}) == 201
        assert await create("public/privlink/x.txt", {}) == 401
        assert await create("private/x.txt", {}) == 401
        assert await create("public/privlink/x.txt", ME) == 201
