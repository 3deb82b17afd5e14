import json

from trio_http.files.listing import Entry, render_html, render_json, sort_entries

ENTRIES = [
    Entry("b.txt", False, 2048, 0.0),
    Entry("A-dir", True, 4096, 0.0),
    Entry("a.txt", False, 5, 86400.0),
    Entry("<x>&\"'.txt", False, 1, 0.0),
]


def test_directories_first_then_names_case_insensitively() -> None:
    names = [e.name for e in sort_entries(ENTRIES)]
    assert names == ["A-dir", "<x>&\"'.txt", "a.txt", "b.txt"]


def test_html_escapes_and_quotes() -> None:
    page = render_html("/files/<dir>/", ENTRIES, has_parent=True)
    assert "<title>Index of /files/&lt;dir&gt;/</title>" in page
    assert '<a href="A-dir/">A-dir/</a>' in page
    assert "&lt;x&gt;&amp;&quot;&#x27;.txt" in page
    assert 'href="%3Cx%3E%26%22%27.txt"' in page
    assert '<a href="../">../</a>' in page
    assert "2.0 KiB" in page and "5 B" in page
    assert "Fri, 02 Jan 1970 00:00:00 GMT" in page


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
