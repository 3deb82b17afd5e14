"""Two headless Chromium browsers talk through docs/examples/chat.py's page.

The example's app is served by :func:`trio_http.serve` on 127.0.0.1 (port 0); two separate
browsers (two chromedriver sessions, each with its own ``--user-data-dir``) open the same room,
answer the page's name prompt, see each other join, and each sends a message the other sees.
Screenshots: ``tests/artifacts/chat-browser-1.png`` and ``-2.png``.

Every wait is bounded: selenium's WebDriverWait (no sleeps); the server runs under Trio while
the browsers are driven from a worker thread.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast

import trio
from chromium import chromium as headless_chromium
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

import trio_http
from trio_http import App, ServerConfig

ARTIFACTS = Path(__file__).parent / "artifacts"
EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
#: Bound on each wait for something to show up in a browser.
WAIT = 10.0


def chat_app() -> App:
    """A fresh app from docs/examples/chat.py (imported as ``chat``, as test_docs.py does)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    make_app = cast(Callable[[], App], importlib.import_module("chat").make_app)
    return make_app()


def chromium(profile: Path) -> webdriver.Chrome:
    """Headless Chromium with its own profile directory."""
    browser = headless_chromium(window=(800, 600), profile=profile, page_load_timeout=WAIT)
    browser.set_script_timeout(WAIT)
    return browser


def log_lines(browser: webdriver.Chrome) -> list[str]:
    return [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#log li")]


def wait_for_line(browser: webdriver.Chrome, line: str) -> None:
    """Wait (bounded) until *line* is in the page's message list."""
    try:
        WebDriverWait(browser, WAIT).until(lambda b: line in log_lines(b))
    except TimeoutException:
        raise AssertionError(f"{line!r} never appeared; the list: {log_lines(browser)}") from None


def open_room(browser: webdriver.Chrome, url: str, name: str) -> None:
    """Load the page and answer its ``prompt("Your name?")`` with *name*."""
    browser.get(url)
    alert = WebDriverWait(browser, WAIT).until(expected_conditions.alert_is_present())
    alert.send_keys(name)
    alert.accept()


def say(browser: webdriver.Chrome, text: str) -> None:
    """Type *text* in the page's input and press Enter (submits the form)."""
    field = browser.find_element(By.ID, "text")
    field.send_keys(text, Keys.ENTER)


def two_browsers_talk(url: str, profiles: Path) -> tuple[list[str], list[str]]:
    """Ada and Bob chat in one room; both message lists, as the browsers show them."""
    ada = chromium(profiles / "ada")
    bob: webdriver.Chrome | None = None
    try:
        bob = chromium(profiles / "bob")
        open_room(ada, url, "ada")
        wait_for_line(ada, "* ada joined")
        assert ada.find_element(By.ID, "room").text == "lobby"
        open_room(bob, url, "bob")
        wait_for_line(bob, "* bob joined")
        wait_for_line(ada, "* bob joined")

        say(ada, "hello from the first browser")
        wait_for_line(bob, "ada: hello from the first browser")
        wait_for_line(ada, "ada: hello from the first browser")  # the sender sees it too
        say(bob, "and back from the second")
        wait_for_line(ada, "bob: and back from the second")
        wait_for_line(bob, "bob: and back from the second")

        ARTIFACTS.mkdir(exist_ok=True)
        assert ada.save_screenshot(str(ARTIFACTS / "chat-browser-1.png"))
        assert bob.save_screenshot(str(ARTIFACTS / "chat-browser-2.png"))
        seen = log_lines(ada), log_lines(bob)

        bob.quit()  # closing the second browser is announced to the first
        bob = None
        wait_for_line(ada, "* bob left")
        return seen
    finally:
        if bob is not None:
            bob.quit()
        ada.quit()


async def test_two_chromium_browsers_chat_through_the_example(tmp_path: Path) -> None:
    config = ServerConfig(access_log=False)
    async with trio_http.serve(chat_app(), "127.0.0.1", 0, config=config) as addresses:
        url = f"http://127.0.0.1:{addresses[0][1]}/#lobby"
        ada_sees, bob_sees = await trio.to_thread.run_sync(two_browsers_talk, url, tmp_path)
    # Everything, in order: ada was there first, so she saw bob join; bob did not see ada join.
    assert ada_sees == [
        "* ada joined",
        "* bob joined",
        "ada: hello from the first browser",
        "bob: and back from the second",
    ]
    assert bob_sees == [
        "* bob joined",
        "ada: hello from the first browser",
        "bob: and back from the second",
    ]
    for n in (1, 2):
        assert (ARTIFACTS / f"chat-browser-{n}.png").stat().st_size > 0
