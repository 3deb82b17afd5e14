"""The listing page as an app, in headless Chromium against the real ``trio-http serve``.

One server (``--directory``) and one browser serve the module; each test works in its own
folder under the served root.  Uploads go through the page's own file inputs (``send_keys``),
drops through its drop handler; what arrives is compared byte for byte on disk.  The
``prompt`` of "New folder" and the ``confirm`` of a delete are answered with selenium's alert
API.  Screenshots of the light and dark themes (DevTools ``Emulation.setEmulatedMedia``) and
of a phone-sized window go to ``tests/artifacts/listing-{light,dark,phone}.png``.

Chromium and chromedriver are required, as in tests/test_browser.py: without them the tests
fail rather than skip.  Every wait is bounded (WebDriverWait polling, no sleeps).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from blackbox import (
    LISTENING,
    ServerProcess,
    request,
    running_server,
    serve_argv,
    start_process,
)
from chromium import chromium as headless_chromium
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.alert import Alert
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

ARTIFACTS = Path(__file__).parent / "artifacts"
#: Bound on each wait for something to happen in the browser or on disk.
WAIT = 20.0

#: Why a test that needs write controls fails before FileServer passes ``can_write``.
NO_WRITE_CONTROLS = (
    "the listing of a writable server shows no write controls: FileServer._directory must "
    "pass can_write=True to render_html (integration of the listing page, issue 14)"
)


def chromium() -> webdriver.Chrome:
    return headless_chromium(window=(1100, 760), page_load_timeout=WAIT)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("site")


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[ServerProcess]:
    with running_server("--directory", str(site), "--no-access-log") as process:
        yield process


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    instance = chromium()
    try:
        yield instance
    finally:
        instance.quit()


def wait_for(
    browser: webdriver.Chrome, condition: Callable[[], Any], message: str, timeout: float = WAIT
) -> Any:
    """Poll *condition* until it is truthy; fail with *message* (and the page's errors)."""
    try:
        return WebDriverWait(browser, timeout, poll_frequency=0.05).until(
            lambda _: condition(), message
        )
    except TimeoutException:
        errors = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#messages p")]
        raise AssertionError(f"{message} (page errors: {errors})") from None


def open_folder(browser: webdriver.Chrome, server: ServerProcess, folder: str) -> None:
    browser.get(f"{server.url}/files/{folder}")
    # listing.js marks the page once it runs; everything below relies on it.
    wait_for(
        browser,
        lambda: browser.execute_script("return document.documentElement.classList.contains('js')"),
        "the listing's script did not run",
    )


def require_write_controls(browser: webdriver.Chrome) -> None:
    assert browser.find_elements(By.ID, "upload-files"), NO_WRITE_CONTROLS


def row_names(browser: webdriver.Chrome, *, visible_only: bool = False) -> list[str]:
    """The names in the table, read in one script call (the table body is replaced whole
    when the page refreshes it, which would make element references go stale)."""
    names: list[str] = browser.execute_script(
        "return Array.from(document.querySelectorAll('#listing tbody tr[data-name]'))"
        ".filter((row) => !arguments[0] || row.checkVisibility())"
        ".map((row) => row.dataset.name)",
        visible_only,
    )
    return names


def row(browser: webdriver.Chrome, name: str) -> WebElement:
    for element in browser.find_elements(By.CSS_SELECTOR, "#listing tbody tr[data-name]"):
        if element.get_attribute("data-name") == name:
            return element
    raise AssertionError(f"no row for {name!r}; rows: {row_names(browser)}")


def upload_states(browser: webdriver.Chrome) -> dict[str, str]:
    """Each upload's path and state class (waiting, sending, done, failed, cancelled)."""
    states: dict[str, str] = browser.execute_script(
        "return Object.fromEntries(Array.from(document.querySelectorAll('#uploads li'))"
        ".map((item) => [item.dataset.path, item.className]))"
    )
    return states


def wait_for_alert(browser: webdriver.Chrome) -> Alert:
    alert: Alert = WebDriverWait(browser, WAIT).until(expected_conditions.alert_is_present())
    return alert


def arrived(path: Path, data: bytes) -> Callable[[], bool]:
    # Uploads are renamed into place complete, so a file that exists is the whole file.
    return lambda: path.is_file() and path.read_bytes() == data


# ---------------------------------------------------------------------------- uploads


def test_upload_a_file_through_the_file_input(
    site: Path, server: ServerProcess, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    (site / "single").mkdir()
    source = tmp_path / "report #1 (final).bin"  # a space, "#" and "()" to percent-encode
    data = os.urandom(700_000)
    source.write_bytes(data)
    open_folder(browser, server, "single/")
    require_write_controls(browser)
    browser.find_element(By.ID, "upload-files").send_keys(str(source))
    target = site / "single" / source.name
    wait_for(browser, arrived(target, data), f"{target} did not arrive intact")
    wait_for(
        browser,
        lambda: upload_states(browser) == {source.name: "done"},
        "the upload is not shown as done",
    )
    # The table refreshes by itself and shows the new file with its size.
    wait_for(browser, lambda: row_names(browser) == [source.name], "the new file is not listed")
    size = row(browser, source.name).find_element(By.CSS_SELECTOR, "td.size")
    assert size.get_attribute("title") == "700000 bytes"
    assert size.text == "683.6 KiB"
    assert browser.find_elements(By.CSS_SELECTOR, "#messages p") == []


def test_upload_two_files_at_once(
    site: Path, server: ServerProcess, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    (site / "pair").mkdir()
    sources = {tmp_path / "one.txt": b"first file\n", tmp_path / "two.bin": os.urandom(150_000)}
    for path, data in sources.items():
        path.write_bytes(data)
    open_folder(browser, server, "pair/")
    require_write_controls(browser)
    browser.find_element(By.ID, "upload-files").send_keys("\n".join(map(str, sources)))
    for path, data in sources.items():
        target = site / "pair" / path.name
        wait_for(browser, arrived(target, data), f"{target} did not arrive intact")
    wait_for(
        browser,
        lambda: upload_states(browser) == {"one.txt": "done", "two.bin": "done"},
        "both uploads are not shown as done",
    )
    wait_for(browser, lambda: row_names(browser) == ["one.txt", "two.bin"], "not both listed")


def test_upload_a_folder_through_the_folder_input(
    site: Path, server: ServerProcess, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    (site / "folders").mkdir()
    tree = {
        "album/cover.txt": b"cover",
        "album/disc 1/track 01.bin": os.urandom(40_000),
        "album/disc 1/track 02.bin": os.urandom(40_000),
    }
    for relative, data in tree.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(data)
    open_folder(browser, server, "folders/")
    require_write_controls(browser)
    browser.find_element(By.ID, "upload-folder").send_keys(str(tmp_path / "album"))
    for relative, data in tree.items():
        target = site / "folders" / relative
        wait_for(browser, arrived(target, data), f"{target} did not arrive intact")
    wait_for(browser, lambda: row_names(browser) == ["album"], "the folder is not listed")


def test_drop_files_and_a_folder_tree(
    site: Path, server: ServerProcess, browser: webdriver.Chrome
) -> None:
    """Two loose files and a folder tree dropped at once, as Chromium presents a drop.

    A real drag from the desktop cannot be automated, so the page's drop handler gets a
    DataTransfer-shaped object whose items give FileSystemEntry-shaped entries (``fullPath``,
    ``file()``, ``createReader().readEntries()`` in batches), the API Chromium offers.
    """
    (site / "dropped").mkdir()
    open_folder(browser, server, "dropped/")
    require_write_controls(browser)
    browser.execute_script(
        """
        const file = (path, text) => ({
          isFile: true, isDirectory: false, fullPath: path,
          file: (ok) => setTimeout(() => ok(new File([text], path.split("/").pop())), 0),
        });
        // readEntries hands out a folder's children in batches, then an empty one.
        const folder = (path, batches) => ({
          isFile: false, isDirectory: true, fullPath: path,
          createReader: () => {
            const left = [...batches, []];
            return { readEntries: (ok) => setTimeout(() => ok(left.shift()), 0) };
          },
        });
        const tree = folder("/tree", [
          [file("/tree/a.txt", "tree a"), folder("/tree/empty", [])],
          [folder("/tree/sub", [[file("/tree/sub/b.txt", "tree b")]])],
        ]);
        const item = (entry) => ({ kind: "file", webkitGetAsEntry: () => entry });
        const dataTransfer = {
          types: ["Files"],
          items: [item(file("/loose 1.txt", "loose one")), item(file("/loose2.txt", "loose two")),
                  item(tree)],
          files: [],
          dropEffect: "none",
        };
        for (const type of ["dragenter", "dragover", "drop"]) {
          const event = new Event(type, { bubbles: true, cancelable: true });
          Object.defineProperty(event, "dataTransfer", { value: dataTransfer });
          document.body.dispatchEvent(event);
        }
        """
    )
    expected = {
        "loose 1.txt": b"loose one",
        "loose2.txt": b"loose two",
        "tree/a.txt": b"tree a",
        "tree/sub/b.txt": b"tree b",
    }
    for relative, data in expected.items():
        target = site / "dropped" / relative
        wait_for(browser, arrived(target, data), f"{target} did not arrive intact")
    # An empty folder in the drop arrives too (MKCOL).
    wait_for(browser, (site / "dropped" / "tree" / "empty").is_dir, "the empty folder is missing")
    wait_for(
        browser,
        lambda: row_names(browser) == ["tree", "loose 1.txt", "loose2.txt"],
        "the drop is not listed",
    )
    assert "dragging" not in str(browser.find_element(By.TAG_NAME, "body").get_attribute("class"))


def test_a_refused_upload_shows_the_servers_message(
    site: Path, server: ServerProcess, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    (site / "refused" / "clash").mkdir(parents=True)  # a directory has the upload's name
    source = tmp_path / "clash"
    source.write_bytes(b"cannot replace a directory")
    open_folder(browser, server, "refused/")
    require_write_controls(browser)
    browser.find_element(By.ID, "upload-files").send_keys(str(source))
    wait_for(browser, lambda: upload_states(browser) == {"clash": "failed"}, "no failure shown")
    message = browser.find_element(By.CSS_SELECTOR, "#messages p").text
    assert "409" in message and "a directory has that name" in message, message
    assert (site / "refused" / "clash").is_dir()


# ---------------------------------------------------------------------------- tus

#: Records every XMLHttpRequest the page makes (method, URL path, status), in order.
RECORD_REQUESTS = """
window.requests = [];
const open = XMLHttpRequest.prototype.open;
XMLHttpRequest.prototype.open = function (method, url) {
  const entry = { method, path: new URL(url, location.href).pathname, status: null };
  window.requests.push(entry);
  this.addEventListener("loadend", () => { entry.status = this.status; });
  return open.apply(this, arguments);
};
"""

#: Cancels the upload (its own cancel button) as soon as its first PATCH has been answered:
#: by then the page has sent the second PATCH, which the cancel aborts mid-way.
CANCEL_AFTER_FIRST_PATCH = """
const send = XMLHttpRequest.prototype.send;
let armed = true;
XMLHttpRequest.prototype.send = function () {
  if (armed && window.requests.at(-1).method === "PATCH") {
    armed = false;
    const cancel = document.querySelector("#uploads li button.cancel");
    this.addEventListener("load", () => cancel.click());
  }
  return send.apply(this, arguments);
};
"""


def requests_made(browser: webdriver.Chrome) -> list[tuple[str, str, int | None]]:
    made = browser.execute_script("return window.requests")
    return [(r["method"], r["path"], r["status"]) for r in made]


def require_tus(browser: webdriver.Chrome) -> None:
    body = browser.find_element(By.TAG_NAME, "body")
    assert body.get_attribute("data-upload-url") == "/uploads/", (
        "the listing names no tus endpoint: FileServer._directory must pass "
        "upload_url='/uploads/' to render_html when the tus server is installed (issue 15)"
    )


def test_a_large_file_goes_through_tus_and_resumes_after_a_cancel(
    site: Path, server: ServerProcess, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    (site / "large").mkdir()
    source = tmp_path / "big file.bin"
    data = os.urandom(20 * 1024 * 1024)  # three 8 MiB chunks, the last one partial
    source.write_bytes(data)
    target = site / "large" / source.name
    open_folder(browser, server, "large/")
    require_write_controls(browser)
    require_tus(browser)
    browser.execute_script("localStorage.clear();" + RECORD_REQUESTS + CANCEL_AFTER_FIRST_PATCH)
    browser.find_element(By.ID, "upload-files").send_keys(str(source))
    wait_for(
        browser,
        lambda: upload_states(browser) == {source.name: "cancelled"},
        "the upload was not cancelled",
    )
    first = requests_made(browser)
    assert [(method, status) for method, _, status in first] == [
        ("POST", 201),
        ("PATCH", 204),
        ("PATCH", 0),  # aborted
    ], first
    assert first[0][1] == "/uploads/" and first[1][1].startswith("/uploads/"), first
    assert not target.exists()
    # The upload's URL is remembered for this file (path, size, modification time).
    stored = browser.execute_script("return Object.entries(localStorage)")
    assert len(stored) == 1 and stored[0][1].endswith(first[1][1]), stored

    # The same file again: the page asks the server where it stopped and sends the rest.
    browser.execute_script("window.requests = []")
    browser.find_element(By.ID, "upload-files").send_keys(str(source))
    wait_for(browser, arrived(target, data), f"{target} did not arrive intact")
    wait_for(
        browser,
        lambda: upload_states(browser) == {source.name: "done"},
        "the resumed upload is not shown as done",
    )
    second = requests_made(browser)
    methods = [method for method, _, _ in second]
    assert methods[0] == "HEAD" and "POST" not in methods and "PUT" not in methods, second
    assert 1 <= methods.count("PATCH") <= 2, second  # from at least 8 MiB on
    assert all(url == first[1][1] for _, url, _ in second), second
    assert browser.execute_script("return localStorage.length") == 0
    wait_for(browser, lambda: row_names(browser) == [source.name], "the file is not listed")


# ---------------------------------------------------------------------------- folders, deletes


def test_new_folder_through_the_prompt(
    site: Path, server: ServerProcess, browser: webdriver.Chrome
) -> None:
    (site / "making").mkdir()
    open_folder(browser, server, "making/")
    require_write_controls(browser)
    browser.find_element(By.ID, "new-folder").click()
    prompt = wait_for_alert(browser)
    assert "folder" in prompt.text.lower()
    prompt.send_keys("made by prompt")
    prompt.accept()
    wait_for(browser, (site / "making" / "made by prompt").is_dir, "MKCOL made no folder")
    wait_for(browser, lambda: row_names(browser) == ["made by prompt"], "the folder is not listed")
    link = row(browser, "made by prompt").find_element(By.CSS_SELECTOR, "td.name a")
    assert link.get_attribute("href") == f"{server.url}/files/making/made%20by%20prompt/"

    # The same name again: the server's 405 is shown, nothing changes.
    browser.find_element(By.ID, "new-folder").click()
    prompt = wait_for_alert(browser)
    prompt.send_keys("made by prompt")
    prompt.accept()
    wait_for(
        browser,
        lambda: browser.find_elements(By.CSS_SELECTOR, "#messages p"),
        "no error shown for an existing name",
    )
    message = browser.find_element(By.CSS_SELECTOR, "#messages p").text
    assert "405" in message and "exists" in message, message


def test_delete_a_file_after_confirming(
    site: Path, server: ServerProcess, browser: webdriver.Chrome
) -> None:
    folder = site / "deleting"
    folder.mkdir()
    (folder / "victim.txt").write_text("to be deleted")
    (folder / "keep.txt").write_text("to be kept")
    (folder / "subdir").mkdir()
    open_folder(browser, server, "deleting/")
    require_write_controls(browser)
    # Directories get no delete button (the server refuses to delete them).
    assert row(browser, "subdir").find_elements(By.CSS_SELECTOR, "button.delete") == []

    row(browser, "victim.txt").find_element(By.CSS_SELECTOR, "button.delete").click()
    confirm = wait_for_alert(browser)
    assert "victim.txt" in confirm.text
    confirm.dismiss()  # changed our mind: nothing happens
    assert (folder / "victim.txt").exists()
    assert row_names(browser) == ["subdir", "keep.txt", "victim.txt"]

    row(browser, "victim.txt").find_element(By.CSS_SELECTOR, "button.delete").click()
    wait_for_alert(browser).accept()
    wait_for(browser, lambda: not (folder / "victim.txt").exists(), "the file was not deleted")
    wait_for(
        browser, lambda: row_names(browser) == ["subdir", "keep.txt"], "the row is still there"
    )
    assert (folder / "keep.txt").read_text() == "to be kept"


# ---------------------------------------------------------------------------- reading


def test_sort_by_size_through_the_header_link(
    site: Path, server: ServerProcess, browser: webdriver.Chrome
) -> None:
    folder = site / "sorting"
    folder.mkdir()
    for name, size in (("a.txt", 3), ("b.txt", 3000), ("c.txt", 300)):
        (folder / name).write_bytes(b"x" * size)
    (folder / "zz").mkdir()
    open_folder(browser, server, "sorting/")
    assert row_names(browser) == ["zz", "a.txt", "b.txt", "c.txt"]
    browser.find_element(By.CSS_SELECTOR, "th.size a").click()
    wait_for(
        browser,
        lambda: browser.current_url.endswith("/files/sorting/?sort=size&order=desc"),
        "the Size header did not link to ?sort=size&order=desc",
    )
    assert row_names(browser) == ["zz", "b.txt", "c.txt", "a.txt"], (
        "not sorted by size, directories first: FileServer._directory must pass "
        "sort and order from parse_sort(request.query) to render_html"
    )
    assert "\u25bc" in browser.find_element(By.CSS_SELECTOR, "th.size").text
    browser.find_element(By.CSS_SELECTOR, "th.size a").click()
    wait_for(browser, lambda: browser.current_url.endswith("order=asc"), "no toggle to asc")
    assert row_names(browser) == ["zz", "a.txt", "c.txt", "b.txt"]
    assert "\u25b2" in browser.find_element(By.CSS_SELECTOR, "th.size").text


def test_filter_box_hides_rows(
    site: Path, server: ServerProcess, browser: webdriver.Chrome
) -> None:
    folder = site / "filtering"
    folder.mkdir()
    for name in ("Apple.txt", "banana.txt", "cherry.txt", "Bandana"):
        (folder / name).write_text(name)
    open_folder(browser, server, "filtering/")
    box = browser.find_element(By.ID, "filter")
    box.send_keys("AN")  # case-insensitive
    wait_for(
        browser,
        lambda: row_names(browser, visible_only=True) == ["banana.txt", "Bandana"],
        "the filter did not hide the other rows",
    )
    assert not browser.find_element(By.ID, "no-match").is_displayed()
    box.send_keys("zzz")
    wait_for(browser, lambda: row_names(browser, visible_only=True) == [], "rows still shown")
    assert browser.find_element(By.ID, "no-match").is_displayed()
    box.send_keys(Keys.ESCAPE)
    wait_for(browser, lambda: len(row_names(browser, visible_only=True)) == 4, "not all back")
    # The parent row is never filtered away.
    assert browser.find_element(By.CSS_SELECTOR, "tr.parent").is_displayed()


def test_breadcrumbs_link_each_ancestor(
    site: Path, server: ServerProcess, browser: webdriver.Chrome
) -> None:
    (site / "crumbs" / "in between" / "leaf").mkdir(parents=True)
    open_folder(browser, server, "crumbs/in%20between/leaf/")
    links = browser.find_elements(By.CSS_SELECTOR, "h1 .crumbs a")
    assert [(a.text, a.get_attribute("href")) for a in links] == [
        ("/", f"{server.url}/files/"),
        ("crumbs", f"{server.url}/files/crumbs/"),
        ("in between", f"{server.url}/files/crumbs/in%20between/"),
    ]
    assert browser.find_element(By.TAG_NAME, "h1").text == "Index of /crumbs/in between/leaf/"
    links[1].click()
    wait_for(browser, lambda: browser.current_url == f"{server.url}/files/crumbs/", "no link")


def set_color_scheme(browser: webdriver.Chrome, scheme: str) -> None:
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
    )


def background(browser: webdriver.Chrome) -> str:
    return str(browser.execute_script("return getComputedStyle(document.body).backgroundColor"))


def test_light_and_dark_themes_and_a_phone_screenshots(
    site: Path, server: ServerProcess, browser: webdriver.Chrome
) -> None:
    folder = site / "gallery"
    (folder / "Holidays 2024").mkdir(parents=True)
    (folder / "Scans").mkdir()
    for name, size in (
        ("budget.ods", 48_213),
        ("notes <draft>.md", 1_532),
        ("presentation.pdf", 3_405_112),
        ("video.mp4", 734_003_200),
    ):
        with open(folder / name, "wb") as file:
            file.truncate(size)  # sparse: the size shows, the disk stays empty
    open_folder(browser, server, "gallery/")
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        set_color_scheme(browser, "light")
        assert background(browser) == "rgb(255, 255, 255)"
        assert browser.save_screenshot(str(ARTIFACTS / "listing-light.png"))
        set_color_scheme(browser, "dark")
        assert background(browser) == "rgb(21, 24, 28)"
        assert browser.save_screenshot(str(ARTIFACTS / "listing-dark.png"))
        set_color_scheme(browser, "light")
        browser.set_window_size(390, 844)
        open_folder(browser, server, "gallery/")
        # On a phone the page fits the width: nothing to scroll sideways.
        assert browser.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth"
        )
        assert browser.save_screenshot(str(ARTIFACTS / "listing-phone.png"))
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
        browser.set_window_size(1100, 760)


def test_read_only_visitors_get_no_write_controls(site: Path, browser: webdriver.Chrome) -> None:
    (site / "readonly").mkdir()
    (site / "readonly" / "file.txt").write_text("read me")
    with running_server("--directory", str(site), "--read-only", "--no-access-log") as ro:
        open_folder(browser, ro, "readonly/")
        assert row_names(browser) == ["file.txt"]
        for selector in ("#upload-files", "#upload-folder", "#new-folder", "button.delete"):
            assert browser.find_elements(By.CSS_SELECTOR, selector) == [], selector
        assert "MKCOL" not in browser.page_source


def test_the_page_works_under_a_strict_content_security_policy(
    site: Path, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    """``--header 'Content-Security-Policy: default-src 'self''`` forbids inline code: the
    page links its CSS and scripts (served by the file server), so it still works."""
    (site / "csp").mkdir()
    source = tmp_path / "under-csp.txt"
    source.write_bytes(b"allowed\n")
    policy = "Content-Security-Policy: default-src 'self'"
    with running_server("--directory", str(site), "--header", policy, "--no-access-log") as csp:
        open_folder(browser, csp, "csp/")  # fails unless listing.js ran
        require_write_controls(browser)
        # The stylesheet applied (the icon sprite is out of the flow, the table styled).
        position = browser.execute_script(
            "return getComputedStyle(document.querySelector('svg.sprite')).position"
        )
        assert position == "absolute"
        browser.find_element(By.ID, "upload-files").send_keys(str(source))
        target = site / "csp" / source.name
        wait_for(browser, arrived(target, b"allowed\n"), "upload.js did not run under the CSP")


def test_a_tus_upload_survives_the_server_being_killed_and_restarted(
    site: Path, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    """The page retries a piece whose connection died, asks the restarted server where the
    upload stands, and finishes it: no click, nothing lost."""
    (site / "killed").mkdir()
    source = tmp_path / "survivor.bin"
    data = os.urandom(20 * 1024 * 1024)
    source.write_bytes(data)
    target = site / "killed" / source.name
    first = start_process(serve_argv("--directory", str(site), "--no-access-log"))
    restarted: ServerProcess | None = None
    try:
        match = first._stderr.wait_for(LISTENING, WAIT)
        assert match is not None, first.stderr_text()
        first.port = int(match["port"])
        open_folder(browser, first, "killed/")
        require_tus(browser)
        # 4 MiB/s: each 8 MiB piece takes two seconds, so the kill lands mid-PATCH.
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 4 << 20},
        )
        browser.execute_script("localStorage.clear();" + RECORD_REQUESTS)
        browser.find_element(By.ID, "upload-files").send_keys(str(source))
        wait_for(
            browser,
            lambda: ("PATCH", 204) in [(m, s) for m, _, s in requests_made(browser)],
            "the first piece was not stored",
        )
        first.kill()  # SIGKILL, mid-way through the second piece
        restarted = start_process(
            serve_argv("--directory", str(site), "--no-access-log", "--port", str(first.port))
        )
        wait_for(browser, arrived(target, data), f"{target} did not arrive intact", 60)
        wait_for(
            browser,
            lambda: upload_states(browser) == {source.name: "done"},
            "the upload is not shown as done",
        )
        made = [(method, status) for method, _, status in requests_made(browser)]
        assert ("PATCH", 0) in made, made  # the piece the kill cut
        assert made.index(("HEAD", 200)) > made.index(("PATCH", 0)), made
        assert [m for m, _ in made].count("POST") == 1, made
    finally:
        browser.execute_cdp_cmd("Network.disable", {})
        first.kill()
        if restarted is not None:
            assert restarted.stop() == 0


def test_a_large_file_is_sent_whole_when_no_more_resumable_uploads_are_taken(
    site: Path, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    (site / "full").mkdir()
    source = tmp_path / "nine.bin"
    data = os.urandom(9 * 1024 * 1024)  # over the 8 MiB that goes through tus
    source.write_bytes(data)
    with running_server("--directory", str(site), "--no-access-log") as own:
        creation = {"Tus-Resumable": "1.0.0", "Upload-Length": "1"}
        for n in range(20):  # every unfinished upload the server takes from one client
            name = base64.b64encode(f"full/slot-{n}".encode()).decode()
            fields = [*creation.items(), ("Upload-Metadata", f"filename {name}")]
            response = request(own.port, "POST", "/uploads/", fields)
            assert response.status == 201, response.status
        open_folder(browser, own, "full/")
        require_tus(browser)
        browser.execute_script("localStorage.clear();" + RECORD_REQUESTS)
        browser.find_element(By.ID, "upload-files").send_keys(str(source))
        target = site / "full" / source.name
        wait_for(browser, arrived(target, data), f"{target} did not arrive intact")
        made = [(method, status) for method, _, status in requests_made(browser)]
        assert made == [("POST", 429), ("PUT", 201)], made
