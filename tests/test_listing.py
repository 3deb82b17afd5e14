"""The listing renderers, pure: sorting, HTML (with and without write access), JSON, text."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from trio_http.files.listing import (
    Entry,
    parse_sort,
    render_html,
    render_json,
    render_text,
    sort_entries,
)

ENTRIES = [
    Entry("b.txt", False, 2048, 0.0),
    Entry("A-dir", True, 4096, 0.0),
    Entry("a.txt", False, 5, 86400.0),
    Entry("<x>&\"'.txt", False, 1, 0.0),
]

#: Names, sizes and times that order differently by each key.
MIXED = [
    Entry("m.bin", False, 300, 30.0),
    Entry("Z.log", False, 100, 10.0),
    Entry("a.txt", False, 200, 50.0),
    Entry("zdir", True, 4096, 5.0),
    Entry("Bdir", True, 10, 99.0),
]


def without_style(page: str) -> str:
    """The page without its stylesheet, whose selectors name elements too."""
    return re.sub(r"<style>.*?</style>", "<style></style>", page, flags=re.DOTALL)


def names(entries: list[Entry]) -> list[str]:
    return [e.name for e in entries]


# ---------------------------------------------------------------------------- sorting


def test_directories_first_then_names_case_insensitively() -> None:
    assert names(sort_entries(ENTRIES)) == ["A-dir", "<x>&\"'.txt", "a.txt", "b.txt"]


@pytest.mark.parametrize(
    ("key", "order", "expected"),
    [
        ("name", "asc", ["Bdir", "zdir", "a.txt", "m.bin", "Z.log"]),
        ("name", "desc", ["zdir", "Bdir", "Z.log", "m.bin", "a.txt"]),
        # Directories have no meaningful size: by name, A-Z, in either order.
        ("size", "asc", ["Bdir", "zdir", "Z.log", "a.txt", "m.bin"]),
        ("size", "desc", ["Bdir", "zdir", "m.bin", "a.txt", "Z.log"]),
        ("mtime", "asc", ["zdir", "Bdir", "Z.log", "m.bin", "a.txt"]),
        ("mtime", "desc", ["Bdir", "zdir", "a.txt", "m.bin", "Z.log"]),
    ],
)
def test_sort_by_each_key_and_order_directories_first(
    key: str, order: str, expected: list[str]
) -> None:
    assert names(sort_entries(MIXED, key, order)) == expected


def test_ties_are_broken_by_name() -> None:
    same = [Entry("b", False, 1, 0.0), Entry("a", False, 1, 0.0), Entry("B", False, 1, 0.0)]
    assert names(sort_entries(same, "size", "asc")) == ["a", "B", "b"]
    assert names(sort_entries(same, "mtime", "desc")) == ["b", "B", "a"]


def test_sort_entries_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError):
        sort_entries(MIXED, "owner", "asc")
    with pytest.raises(ValueError):
        sort_entries(MIXED, "name", "up")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ("name", "asc")),
        ({"sort": ["size"], "order": ["desc"]}, ("size", "desc")),
        ({"sort": ["mtime"]}, ("mtime", "asc")),
        ({"order": ["desc"]}, ("name", "desc")),
        ({"sort": ["SIZE"], "order": [" Desc "]}, ("size", "desc")),
        ({"sort": ["owner"], "order": ["sideways"]}, ("name", "asc")),
        ({"sort": [""], "order": []}, ("name", "asc")),
        ({"sort": ["size", "name"], "order": ["desc", "asc"]}, ("size", "desc")),
        ({"sort": ["name\x00<script>"]}, ("name", "asc")),
    ],
)
def test_parse_sort_falls_back_rather_than_failing(
    query: dict[str, list[str]], expected: tuple[str, str]
) -> None:
    assert parse_sort(query) == expected


# ---------------------------------------------------------------------------- HTML


def test_html_escapes_and_quotes() -> None:
    page = render_html("/<dir>/", ENTRIES, has_parent=True)
    assert "<title>Index of /&lt;dir&gt;/</title>" in page
    assert '<a href="A-dir/">A-dir/</a>' in page
    assert "&lt;x&gt;&amp;&quot;&#x27;.txt" in page
    assert 'href="%3Cx%3E%26%22%27.txt"' in page
    assert 'data-name="&lt;x&gt;&amp;&quot;&#x27;.txt"' in page
    assert "<x>&" not in page
    assert '<a href="../">../</a>' in page
    assert 'data-path="/&lt;dir&gt;/"' in page


def test_sizes_are_human_with_exact_bytes_in_a_title() -> None:
    page = render_html("/", ENTRIES, has_parent=False)
    assert '<td class="size" title="2048 bytes">2.0 KiB</td>' in page
    assert '<td class="size" title="5 bytes">5 B</td>' in page
    big = render_html("/", [Entry("big", False, 5 * 1024**3 + 1, 0.0)], has_parent=False)
    assert 'title="5368709121 bytes">5.0 GiB<' in big


def test_dates_are_utc_times_with_the_http_date_in_a_title() -> None:
    page = render_html("/", ENTRIES, has_parent=False)
    assert (
        '<time datetime="1970-01-02T00:00:00Z" title="Fri, 02 Jan 1970 00:00:00 GMT">'
        "1970-01-02 00:00</time>"
    ) in page
    # A time no HTTP date can express (a file system can hold one) shows as "-", no error.
    odd = render_html("/", [Entry("future", False, 1, 1e15)], has_parent=False)
    assert '<td class="mtime">-</td>' in odd


def test_breadcrumbs_link_every_ancestor_relatively() -> None:
    page = render_html("/a b/c/d/", [], has_parent=True)
    crumbs = re.search(r'<span class="crumbs">(.*?)</span></h1>', page)
    assert crumbs is not None
    assert crumbs.group(1) == (
        '<a href="../../../">/</a><a href="../../">a b</a>/<a href="../">c</a>/d/'
    )
    root = render_html("/", [], has_parent=False)
    assert '<span class="crumbs">/</span>' in root
    assert 'href="../"' not in root  # nothing above the root
    escaped = render_html("/<i>/", [], has_parent=True)
    assert '<a href="../">/</a>&lt;i&gt;/' in escaped


def test_column_headers_are_sort_links_with_an_arrow_on_the_active_one() -> None:
    page = render_html("/", MIXED, has_parent=False)
    # Default: by name A-Z; clicking Name again reverses, Size and Modified start largest/newest.
    assert (
        '<th class="name" aria-sort="ascending"><a href="?sort=name&amp;order=desc">'
        'Name<span class="arrow" aria-hidden="true">\u25b2</span></a></th>'
    ) in page
    assert '<th class="size"><a href="?sort=size&amp;order=desc">Size</a></th>' in page
    assert '<th class="mtime"><a href="?sort=mtime&amp;order=desc">Modified</a></th>' in page
    by_size = render_html("/", MIXED, has_parent=False, sort="size", order="desc")
    assert (
        '<th class="size" aria-sort="descending"><a href="?sort=size&amp;order=asc">'
        'Size<span class="arrow" aria-hidden="true">\u25bc</span></a></th>'
    ) in by_size
    assert '<th class="name"><a href="?sort=name&amp;order=asc">Name</a></th>' in by_size
    assert without_style(by_size).count("aria-sort") == 1


def row_names(page: str) -> list[str]:
    return re.findall(r'<tr class="(?:dir|file)" data-name="([^"]*)"', page)


def test_rows_follow_the_sort() -> None:
    page = render_html("/", MIXED, has_parent=True, sort="size", order="desc")
    assert row_names(page) == ["Bdir", "zdir", "m.bin", "a.txt", "Z.log"]
    # The parent row stays on top whatever the order.
    assert page.index('<tr class="parent">') < page.index('data-name="Bdir"')


def test_search_form_works_without_javascript() -> None:
    page = render_html("/", ENTRIES, has_parent=False)
    form = re.search(r'<form method="get" role="search">(.*?)</form>', page)
    assert form is not None
    assert 'name="q"' in form.group(1) and 'type="submit"' in form.group(1)


def test_archive_links_only_when_archives() -> None:
    without = render_html("/", ENTRIES, has_parent=False)
    assert "?download=" not in without
    page = render_html("/", ENTRIES, has_parent=False, archives=True)
    assert 'href="?download=zip"' in page
    assert 'href="?download=tar.gz"' in page


WRITE_MARKERS = [
    'type="file"',
    "webkitdirectory",
    'id="new-folder"',
    'class="delete',
    "MKCOL",
    "DELETE",
    "XMLHttpRequest",
    "Tus-Resumable",
    'id="uploads"',
    "data-upload-url",
]


def test_no_write_controls_nor_script_without_write_access() -> None:
    page = without_style(render_html("/", ENTRIES, has_parent=True, upload_url="/uploads/"))
    for marker in WRITE_MARKERS:
        assert marker not in page, marker


def test_write_controls_with_write_access() -> None:
    page = render_html("/", ENTRIES, has_parent=True, can_write=True, upload_url="/uploads/")
    for marker in WRITE_MARKERS:
        assert marker in page, marker
    assert '<input type="file" id="upload-files" multiple>' in page
    assert '<input type="file" id="upload-folder" webkitdirectory multiple>' in page
    assert 'data-upload-url="/uploads/"' in page
    # A delete button for each file; directories cannot be deleted (the server answers 409).
    assert page.count('class="delete needs-js"') == 3
    without_tus = render_html("/", ENTRIES, has_parent=True, can_write=True)
    assert '<body data-path="/">' in without_tus


def test_page_is_self_contained_and_for_phones() -> None:
    page = render_html("/", ENTRIES, has_parent=False, can_write=True, archives=True)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "prefers-color-scheme: dark" in page
    # Nothing fetched from elsewhere: no external stylesheet, script, image or font.
    assert not re.search(r"<(?:link|img)\b|<script\s+src", page, re.IGNORECASE)
    style = re.findall(r"<style>(.*?)</style>", page, re.DOTALL)
    assert len(style) == 1 and "@import" not in style[0] and "url(" not in style[0]
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page.replace("https://tus.io/protocols/resumable-upload", "")


class _Checker(HTMLParser):
    """Fails on unbalanced tags (a stray "</script" in an asset would show up here)."""

    VOID = frozenset({"meta", "input", "br", "img", "link"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack)
        self.stack.pop()


@pytest.mark.parametrize("can_write", [False, True])
def test_page_is_well_formed(can_write: bool) -> None:
    checker = _Checker()
    checker.feed(render_html("/d/", ENTRIES, has_parent=True, can_write=can_write, archives=True))
    checker.close()
    assert checker.stack == []


def test_empty_directory_says_so() -> None:
    page = render_html("/", [], has_parent=False)
    assert "This folder is empty." in page


def test_names_that_are_not_utf8_are_left_out() -> None:
    bad = Entry("caf\udce9.txt", False, 1, 0.0)  # how os gives a Latin-1 name on a UTF-8 system
    page = render_html("/", [bad, *ENTRIES], has_parent=False)
    page.encode("utf-8")
    assert "caf" not in page
    assert render_text([bad]) == ""
    assert json.loads(render_json("/", [bad]))["entries"] == []


# ---------------------------------------------------------------------------- JSON, text


def test_json() -> None:
    document = json.loads(render_json("/files/", ENTRIES))
    assert document["path"] == "/files/"
    assert document["entries"][0] == {
        "name": "A-dir",
        "type": "directory",
        "size": None,
        "mtime": "Thu, 01 Jan 1970 00:00:00 GMT",
    }
    assert {"name": "b.txt", "type": "file", "size": 2048}.items() <= document["entries"][3].items()


def test_json_follows_the_sort() -> None:
    document = json.loads(render_json("/", MIXED, "mtime", "desc"))
    assert [e["name"] for e in document["entries"]] == ["Bdir", "zdir", "a.txt", "m.bin", "Z.log"]
    odd = json.loads(render_json("/", [Entry("future", False, 1, 1e15)]))
    assert odd["entries"][0]["mtime"] is None


def test_text_one_name_per_line_directories_with_a_slash() -> None:
    assert render_text(ENTRIES) == "A-dir/\n<x>&\"'.txt\na.txt\nb.txt\n"
    assert render_text(MIXED, "size", "asc") == "Bdir/\nzdir/\nZ.log\na.txt\nm.bin\n"
    assert render_text([]) == ""


def test_text_keeps_one_line_per_name() -> None:
    tricky = [Entry("two\nlines", False, 1, 0.0), Entry("cr\r", True, 1, 0.0)]
    assert render_text(tricky) == "cr%0D/\ntwo%0Alines\n"
