"""Issue 14's "Done when", tried as a new user would, against the real ``trio-http serve``.

A folder is shared with ``--auth 'me:secret@/:rw' --auth '@/public'``.  ``me`` logs in from
headless Chromium and uploads a folder (a nested folder, a UTF-8 name, a file of a few MiB)
into ``public/`` through the page's folder input, watching each upload's progress bar; the
files must arrive byte for byte.  An anonymous visitor (a second, fresh Chromium) sees only
``public/``, no write controls, and is refused elsewhere; downloads ``public/`` as a zip (by
clicking the page's link) and as a tar.gz, both compared member by member with the
originals; and finds a file by search, where a file outside ``public/`` is found only by
``me``.  Finally a page on another origin reads a listing and a file's ``ETag`` with
``fetch`` from servers started with ``--cors`` and ``--cors-origin``, and fails to without.

How ``me`` logs in, headless: Chromium sends the credentials of a ``http://me:secret@host/``
URL only in answer to a challenge, so the login opens ``/files/public/?login`` with them (the
URL the page's "Log in" link points to, which answers ``401``).  Chromium then sends them by
itself with every later request below ``/files/public/``, as after typing them in its dialog.

Chromium and chromedriver are required (as in tests/test_browser_files.py): without them the
tests fail rather than skip.  Every wait is bounded; nothing sleeps.
"""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from blackbox import ServerProcess, running_server
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from test_browser_files import chromium, open_folder, row_names, upload_states, wait_for

pytestmark = pytest.mark.timeout(90)

RULES = ("--auth", "me:secret@/:rw", "--auth", "@/public")
ME = ("me", "secret")
JSON = {"Accept": "application/json"}
CHALLENGE = 'Basic realm="trio-http", charset="UTF-8"'
#: The big file's size: a few MiB, below the page's tus threshold (8 MiB), so a plain PUT.
BIG = 3 * 1024 * 1024
#: Upload bandwidth in the browser (DevTools throttling), so the big file takes about a
#: second and its progress bar is seen between empty and full.
UPLOAD_BYTES_PER_SECOND = 3 * 1024 * 1024

BIG_NAME = "holiday/photos/day 1/beach.bin"
UTF8_NAME = "\u00dcberblick \u2013 caf\u00e9 \u2615.txt"
#: The folder ``me`` uploads, relative to its parent (as the folder input names the files).
TREE: dict[str, bytes] = {
    "holiday/read me.txt": b"Photos and notes from the trip.\n",
    f"holiday/{UTF8_NAME}": "Caf\u00e9 cr\u00e8me, 3 \u20ac\n".encode(),
    BIG_NAME: os.urandom(BIG),
    "holiday/photos/annual report 2024.pdf": os.urandom(20_000),
}

#: Records, on each upload progress event, every upload row's progress bar after the page
#: has updated it (its own handler was set first, so it runs first).
RECORD_PROGRESS = """
window.progressSeen = {};
const send = XMLHttpRequest.prototype.send;
XMLHttpRequest.prototype.send = function () {
  this.upload.addEventListener("progress", () => {
    for (const item of document.querySelectorAll("#uploads li")) {
      const bar = item.querySelector("progress");
      (window.progressSeen[item.dataset.path] ||= []).push([bar.value, bar.max]);
    }
  });
  return send.apply(this, arguments);
};
"""


# ---------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def fresh_browser() -> Iterator[webdriver.Chrome]:
    """A new Chromium: a new profile, so no credentials remembered from another."""
    instance = chromium()
    try:
        yield instance
    finally:
        instance.quit()


def write_tree(base: Path, tree: dict[str, bytes]) -> None:
    for relative, data in tree.items():
        (base / relative).parent.mkdir(parents=True, exist_ok=True)
        (base / relative).write_bytes(data)


def files_below(base: Path) -> dict[str, bytes]:
    """Every file below *base*, by its ``/``-separated path relative to *base*."""
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()}


def throttle_uploads(browser: webdriver.Chrome, bytes_per_second: int) -> None:
    """DevTools network throttling of what the page sends (``-1``: none)."""
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": bytes_per_second,
        },
    )


def log_in(browser: webdriver.Chrome, server: ServerProcess, folder: str) -> None:
    """Log in as ``me`` through the ``?login`` URL (see the module's docstring)."""
    browser.get(f"http://{ME[0]}:{ME[1]}@127.0.0.1:{server.port}/files/{folder}?login")
    open_folder(browser, server, folder)


def progress_bars(browser: webdriver.Chrome) -> dict[str, tuple[float, float, str]]:
    """Each upload row's progress bar (value, max) and state text."""
    bars: dict[str, list[Any]] = browser.execute_script(
        "return Object.fromEntries(Array.from(document.querySelectorAll('#uploads li')).map("
        "(item) => [item.dataset.path, [item.querySelector('progress').value,"
        " item.querySelector('progress').max, item.querySelector('.state').textContent]]))"
    )
    return {path: (value, top, state) for path, (value, top, state) in bars.items()}


def write_controls(browser: webdriver.Chrome) -> list[str]:
    """The selectors of the write controls on the page."""
    selectors = ("#upload-files", "#upload-folder", "#new-folder", "button.delete", "#uploads")
    return [s for s in selectors if browser.find_elements(By.CSS_SELECTOR, s)]


def assert_challenged(response: httpx.Response) -> None:
    assert response.status_code == 401, (response.request.url, response.status_code)
    assert response.headers["www-authenticate"] == CHALLENGE


def search(client: httpx.Client, folder: str, term: str) -> list[str]:
    """The paths a JSON search for *term* below ``/files/FOLDER`` finds."""
    response = client.get(f"/files/{folder}", params={"q": term}, headers=JSON)
    assert response.status_code == 200, (response.request.url, response.text)
    result = response.json()
    assert result["truncated"] is False, result
    return [match["path"] for match in result["results"]]


def archive_files_zip(data: bytes) -> tuple[list[str], dict[str, bytes]]:
    """Every member name of a zip, and the files' contents by name."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None  # every CRC matches
        names = archive.namelist()
        files = {n: archive.read(n) for n in names if not n.endswith("/")}
    return names, files


def archive_files_tar(data: bytes) -> tuple[list[str], dict[str, bytes]]:
    """Every member name of a tar.gz, and the regular files' contents by name."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        members = archive.getmembers()
        files: dict[str, bytes] = {}
        for member in members:
            assert member.isfile() or member.isdir(), member
            if member.isfile():
                extracted = archive.extractfile(member)
                assert extracted is not None
                files[member.name] = extracted.read()
    return [m.name for m in members], files


# ---------------------------------------------------------------------------- the story


def test_share_a_folder_upload_from_the_browser_download_and_search(tmp_path: Path) -> None:
    root, source, downloads = tmp_path / "share", tmp_path / "source", tmp_path / "downloads"
    for folder in (root / "public", root / "private", source, downloads):
        folder.mkdir(parents=True)
    write_tree(source, TREE)
    write_tree(root, {"private/report-secret.txt": b"not for everyone", "top.txt": b"root"})
    # What public/ holds once the folder is uploaded, by path below the served root.
    published = {f"public/{relative}": data for relative, data in TREE.items()}

    with running_server("--directory", str(root), *RULES, "--no-access-log") as server:
        # 1. me logs in and uploads the folder into public/, watching the progress bars.
        with fresh_browser() as browser:
            log_in(browser, server, "public/")
            assert browser.find_elements(By.ID, "login") == [], "'Log in' shown to me"
            assert "#upload-folder" in write_controls(browser), "me may not upload"
            throttle_uploads(browser, UPLOAD_BYTES_PER_SECOND)
            browser.execute_script(RECORD_PROGRESS)
            browser.find_element(By.ID, "upload-folder").send_keys(str(source / "holiday"))
            wait_for(
                browser,
                lambda: upload_states(browser) == dict.fromkeys(TREE, "done"),
                "not every upload is shown as done",
            )
            for relative, (value, top, state) in progress_bars(browser).items():
                assert value == top == len(TREE[relative]) and state == "Done", relative
            seen = browser.execute_script("return window.progressSeen")[BIG_NAME]
            assert any(0 < value < top for value, top in seen), f"no progress shown: {seen}"
            assert files_below(root / "public") == TREE
            wait_for(browser, lambda: row_names(browser) == ["holiday"], "the folder not listed")
            assert browser.find_elements(By.CSS_SELECTOR, "#messages p") == []

        with fresh_browser() as browser, httpx.Client(base_url=server.url, timeout=10) as client:
            # 2. An anonymous visitor sees public/ only, and cannot write.
            open_folder(browser, server, "")
            assert row_names(browser) == ["public"]
            assert client.get("/files/", headers=JSON).json()["entries"][0]["name"] == "public"
            assert len(client.get("/files/", headers=JSON).json()["entries"]) == 1
            for path in ("private/", "private/report-secret.txt", "top.txt", "?login"):
                assert_challenged(client.get(f"/files/{path}"))
            open_folder(browser, server, "public/holiday/")
            assert row_names(browser) == ["photos", "read me.txt", UTF8_NAME]
            assert write_controls(browser) == []
            assert browser.find_element(By.ID, "login").get_attribute("href") == (
                f"{server.url}/files/public/holiday/?login"
            )
            for method in ("PUT", "POST"):
                response = client.request(method, "/files/public/new.txt", content=b"anonymous")
                assert_challenged(response)
            assert_challenged(client.request("MKCOL", "/files/public/new/"))
            assert_challenged(client.delete("/files/public/holiday/read%20me.txt"))
            assert files_below(root / "public") == TREE

            # 3. public/ as a zip (the page's link, in the browser) and as a tar.gz.
            browser.execute_cdp_cmd(
                "Browser.setDownloadBehavior",
                {"behavior": "allow", "downloadPath": str(downloads)},
            )
            open_folder(browser, server, "public/")
            browser.find_element(By.CSS_SELECTOR, 'a[href="?download=zip"]').click()
            zipped = downloads / "public.zip"
            wait_for(
                browser,
                lambda: zipped.is_file() and not list(downloads.glob("*.crdownload")),
                "the zip was not downloaded",
            )
            names, files = archive_files_zip(zipped.read_bytes())
            assert files == published
            assert all(name.startswith("public/") for name in names), names
            response = client.get("/files/public/", params={"download": "tar.gz"})
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/gzip"
            names, files = archive_files_tar(response.content)
            assert files == published
            assert all(name == "public" or name.startswith("public/") for name in names), names
            # The served root as an archive: only what the visitor may read, below a folder
            # named after the served directory.
            response = client.get("/files/", params={"download": "zip"})
            assert response.status_code == 200
            names, files = archive_files_zip(response.content)
            assert files == {f"share/{path}": data for path, data in published.items()}
            assert not [name for name in names if "private" in name or "top.txt" in name]

            # 4. Search: from the page's box, then as JSON; private names only for me.
            open_folder(browser, server, "public/")
            box = browser.find_element(By.ID, "filter")
            box.send_keys("REPORT", Keys.ENTER)
            wait_for(browser, lambda: "?q=REPORT" in browser.current_url, "no search page")
            links = [a.get_attribute("href") for a in browser.find_elements(By.TAG_NAME, "a")]
            found = f"{server.url}/files/public/{quote('holiday/photos/annual report 2024.pdf')}"
            assert found in links, links
            assert search(client, "public/", "report") == ["holiday/photos/annual report 2024.pdf"]
            assert search(client, "public/", "CAF\u00c9") == [f"holiday/{UTF8_NAME}"]
            assert search(client, "", "report") == ["public/holiday/photos/annual report 2024.pdf"]
            assert_challenged(client.get("/files/private/", params={"q": "report"}))
            client.auth = ME
            assert search(client, "", "report") == [
                "private/report-secret.txt",
                "public/holiday/photos/annual report 2024.pdf",
            ]


# ---------------------------------------------------------------------------- CORS

#: Run in a page on another origin: fetch a listing as JSON, a file, part of a file (its
#: Content-Range) and, with an Authorization header (so after a preflight), a listing only
#: ``me`` may read; what the script could read, or the error it got.
CROSS_ORIGIN_FETCH = """
const [base, done] = arguments;
(async () => {
  try {
    const listing = await fetch(`${base}/files/public/`, {headers: {Accept: "application/json"}});
    const entries = (await listing.json()).entries.map((entry) => entry.name);
    const file = await fetch(`${base}/files/public/hello.txt`);
    const part = await fetch(`${base}/files/public/hello.txt`, {headers: {Range: "bytes=0-4"}});
    const mine = await fetch(`${base}/files/private/`, {
      headers: {Accept: "application/json", Authorization: `Basic ${btoa("me:secret")}`},
    });
    done({
      listing: [listing.status, entries],
      file: [file.status, file.headers.get("ETag"), await file.text()],
      part: [part.status, part.headers.get("Content-Range"), await part.text()],
      mine: [mine.status, (await mine.json()).entries.map((entry) => entry.name)],
    });
  } catch (error) {
    done({error: `${error.name}: ${error.message}`});
  }
})();
"""

#: What the script reads from a server that lets its origin read.
READABLE = {
    "listing": [200, ["hello.txt"]],
    "part": [206, "bytes 0-4/12", "hello"],
    "mine": [200, ["secret.txt"]],
}


def test_a_page_on_another_origin_reads_listings_under_cors(tmp_path: Path) -> None:
    root, pages = tmp_path / "share", tmp_path / "pages"
    write_tree(root, {"public/hello.txt": b"hello world\n", "private/secret.txt": b"me only"})
    write_tree(pages, {"app.html": b"<!doctype html><title>another site</title><p>app</p>"})
    share = ("--directory", str(root), *RULES, "--no-access-log")
    with contextlib.ExitStack() as stack:
        site = stack.enter_context(running_server("--directory", str(pages), "--no-access-log"))
        servers = {
            "--cors": stack.enter_context(running_server(*share, "--cors")),
            "--cors-origin (this page)": stack.enter_context(
                running_server(*share, "--cors-origin", site.url)
            ),
            "--cors-origin (another)": stack.enter_context(
                running_server(*share, "--cors-origin", "http://other.example")
            ),
            "no CORS": stack.enter_context(running_server(*share)),
        }
        browser = stack.enter_context(fresh_browser())
        browser.set_script_timeout(20)
        browser.get(f"{site.url}/files/app.html")
        assert browser.title == "another site"
        read: dict[str, Any] = {
            name: browser.execute_async_script(CROSS_ORIGIN_FETCH, server.url)
            for name, server in servers.items()
        }
        etag = httpx.get(f"{servers['no CORS'].url}/files/public/hello.txt").headers["etag"]

    for name in ("--cors", "--cors-origin (this page)"):
        assert "error" not in read[name], (name, read[name])
        assert read[name]["file"] == [200, etag, "hello world\n"], (name, read[name])
        assert {key: read[name][key] for key in READABLE} == READABLE, (name, read[name])
    for name in ("--cors-origin (another)", "no CORS"):
        assert read[name] == {"error": "TypeError: Failed to fetch"}, (name, read[name])


#: From a page on another origin: the writes a browser sends without a preflight (a no-cors
#: fetch, a form), and a CORS PUT (which needs one).  Reports what the page could see.
CROSS_SITE_WRITES = """
const [base, done] = arguments;
(async () => {
  const result = {};
  await fetch(`${base}/files/nocors.txt`, {method: "POST", mode: "no-cors", body: "planted"});
  const frame = document.createElement("iframe");
  frame.name = `sink-${document.querySelectorAll("iframe").length}`;
  document.body.append(frame);
  const form = document.createElement("form");
  form.method = "POST";
  form.enctype = "text/plain";
  form.target = frame.name;
  form.action = `${base}/files/form.html`;
  const field = document.createElement("input");
  field.name = "<script>alert(1)</script>";
  form.append(field);
  document.body.append(form);
  const loaded = new Promise((resolve) => { frame.onload = () => resolve("loaded"); });
  form.submit();
  result.form = await Promise.race([
    loaded, new Promise((resolve) => setTimeout(() => resolve("no load event"), 5000)),
  ]);
  try {
    const put = await fetch(`${base}/files/cors-put.txt`, {method: "PUT", body: "by cors"});
    result.put = put.status;
  } catch (error) {
    result.put = String(error);
  }
  done(result);
})();
"""


def test_pages_on_other_sites_cannot_change_files(tmp_path: Path) -> None:
    """The CSRF a form or a no-cors fetch could do is refused; only a --cors-origin writes."""
    pages = tmp_path / "pages"
    write_tree(pages, {"app.html": b"<!doctype html><title>another site</title><p>app</p>"})
    roots = {name: tmp_path / name for name in ("plain", "cors", "trusted")}
    for root in roots.values():
        root.mkdir()
    with contextlib.ExitStack() as stack:
        site = stack.enter_context(running_server("--directory", str(pages), "--no-access-log"))
        servers = {
            "plain": stack.enter_context(running_server("--directory", str(roots["plain"]))),
            "cors": stack.enter_context(
                running_server("--directory", str(roots["cors"]), "--cors")
            ),
            "trusted": stack.enter_context(
                running_server("--directory", str(roots["trusted"]), "--cors-origin", site.url)
            ),
        }
        browser = stack.enter_context(fresh_browser())
        browser.set_script_timeout(20)
        browser.get(f"{site.url}/files/app.html")
        seen = {
            name: browser.execute_async_script(CROSS_SITE_WRITES, server.url)
            for name, server in servers.items()
        }
    assert all(result["form"] == "loaded" for result in seen.values()), seen  # it was sent
    assert files_below(roots["plain"]) == {} and files_below(roots["cors"]) == {}, seen
    assert seen["plain"]["put"] == seen["cors"]["put"] == "TypeError: Failed to fetch"
    # A trusted origin's CORS PUT is a write it may do; its form and no-cors POST are too.
    assert seen["trusted"]["put"] == 201
    assert files_below(roots["trusted"])["cors-put.txt"] == b"by cors"
