"""Search by name below a served directory (trio_http/files/search.py)."""

from __future__ import annotations

import html
import itertools
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

import pytest
import trio

from trio_http.errors import HTTPError
from trio_http.files import search as search_module
from trio_http.files.paths import PathPolicy, resolve_path
from trio_http.files.search import (
    Match,
    SearchLimits,
    SearchResult,
    render_search_html,
    render_search_json,
    render_search_text,
    search_response,
    search_tree,
)
from trio_http.files.uploads import TEMP_PREFIX
from trio_http.request import Request
from trio_http.response import Response
from trio_http.routing import App
from trio_http.testing import TestClient

DEFAULT_LIMITS = SearchLimits()


def allow_all(url_path: str) -> bool:
    return True


def make_policy(
    root: Path, *, follow_symlinks: bool = False, allow_hidden: bool = False
) -> PathPolicy:
    return PathPolicy(Path(os.path.realpath(root)), follow_symlinks, allow_hidden)


def find(
    root: Path,
    term: str,
    *,
    url_dir: str = "",
    policy: PathPolicy | None = None,
    may_read: Callable[[str], bool] = allow_all,
    limits: SearchLimits = DEFAULT_LIMITS,
    clock: Callable[[], float] | None = None,
) -> SearchResult:
    policy = policy or make_policy(root)
    directory = resolve_path(policy, url_dir)
    if clock is None:
        return search_tree(
            directory, url_dir, term, policy=policy, may_read=may_read, limits=limits
        )
    return search_tree(
        directory, url_dir, term, policy=policy, may_read=may_read, limits=limits, clock=clock
    )


def paths(result: SearchResult) -> list[str]:
    return [match.path for match in result.matches]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "srv"
    base.mkdir()
    (base / "Report.TXT").write_text("r")
    (base / "notes.md").write_text("n")
    (base / "docs").mkdir()
    (base / "docs" / "old-report.pdf").write_bytes(b"12345")
    (base / "docs" / "deep").mkdir()
    (base / "docs" / "deep" / "REPORTS").mkdir()
    (base / "docs" / "deep" / "REPORTS" / "q1.csv").write_text("q")
    return base


# ---------------------------------------------------------------- matching


def test_case_insensitive_nested_results(root: Path) -> None:
    result = find(root, "rePort")
    assert paths(result) == ["docs/deep/REPORTS/", "docs/old-report.pdf", "Report.TXT"]
    assert not result.truncated and result.reason is None
    assert result.directory == "/" and result.term == "rePort"
    by_path = {m.path: m for m in result.matches}
    assert by_path["docs/old-report.pdf"].size == 5 and not by_path["docs/old-report.pdf"].is_dir
    assert by_path["docs/deep/REPORTS/"].is_dir


def test_paths_are_relative_to_the_searched_directory(root: Path) -> None:
    result = find(root, "q1", url_dir="docs/")
    assert paths(result) == ["deep/REPORTS/q1.csv"]
    assert result.directory == "/docs/"


def test_no_match(root: Path) -> None:
    assert find(root, "nothing-like-this").matches == []


def test_unicode_normalisation_and_case_folding(tmp_path: Path) -> None:
    (tmp_path / "Cafe\u0301 menu.txt").write_text("decomposed, as macOS stores it")
    (tmp_path / "Straße.txt").write_text("ß folds to ss")
    (tmp_path / "ÅNGSTRÖM").mkdir()
    assert paths(find(tmp_path, "CAFÉ")) == ["Cafe\u0301 menu.txt"]  # composed term
    assert paths(find(tmp_path, "cafe\u0301")) == ["Cafe\u0301 menu.txt"]  # decomposed term
    assert paths(find(tmp_path, "STRASSE")) == ["Straße.txt"]
    assert paths(find(tmp_path, "ångström")) == ["ÅNGSTRÖM/"]
    # The link must name the file as stored, not as normalised.
    assert find(tmp_path, "menu").matches[0].path == "Cafe\u0301 menu.txt"


def test_upload_temporaries_are_skipped(root: Path) -> None:
    (root / f"{TEMP_PREFIX}report").write_text("partial")
    hidden_policy = make_policy(root, allow_hidden=True)
    assert f"{TEMP_PREFIX}report" not in paths(find(root, "report", policy=hidden_policy))


# ---------------------------------------------------------------- policy


def test_hidden_names_are_excluded_unless_allowed(root: Path) -> None:
    (root / ".report-secret").write_text("s")
    (root / ".git").mkdir()
    (root / ".git" / "report-inside").write_text("s")
    assert paths(find(root, "report")) == [
        "docs/deep/REPORTS/",
        "docs/old-report.pdf",
        "Report.TXT",
    ]
    shown = paths(find(root, "report", policy=make_policy(root, allow_hidden=True)))
    assert ".report-secret" in shown and ".git/report-inside" in shown


def test_symlink_out_of_the_root_is_neither_shown_nor_entered(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "report-outside.txt").write_text("x")
    (root / "report-link").symlink_to(outside)
    (root / "report-file-link").symlink_to(outside / "report-outside.txt")
    assert paths(find(root, "report")) == []
    # Following symlinks out of the root is the policy's choice, and search obeys it.
    followed = find(root, "report", policy=make_policy(root, follow_symlinks=True))
    assert paths(followed) == [
        "report-file-link",
        "report-link/",
        "report-link/report-outside.txt",
    ]


def test_symlink_to_a_hidden_name_is_excluded(root: Path) -> None:
    (root / ".private").mkdir()
    (root / ".private" / "report-x").write_text("x")
    (root / "visible").symlink_to(root / ".private")
    assert "visible/report-x" not in paths(find(root, "report"))


def test_symlink_loops_terminate(root: Path) -> None:
    (root / "docs" / "back-to-root").symlink_to(root)  # a cycle through a directory link
    (root / "self").symlink_to(root / "self")  # ELOOP on stat
    (root / "a").symlink_to(root / "b")
    (root / "b").symlink_to(root / "a")
    result = find(root, "report", policy=make_policy(root, follow_symlinks=True))
    # Each directory is entered once: nothing shows again under docs/back-to-root/.
    assert paths(result) == ["docs/deep/REPORTS/", "docs/old-report.pdf", "Report.TXT"]
    assert paths(find(root, "back")) == ["docs/back-to-root/"]


def test_may_read_filters_and_forbidden_directories_are_not_entered(root: Path) -> None:
    asked: list[str] = []

    def may_read(url_path: str) -> bool:
        asked.append(url_path)
        return not url_path.startswith("docs/deep/") and url_path != "notes.md"

    result = find(root, "o", may_read=may_read)
    assert paths(result) == ["docs/", "docs/old-report.pdf", "Report.TXT"]
    assert "docs/deep/" in asked  # asked with the trailing slash of a directory ...
    assert not any(p.startswith("docs/deep/REPORTS") for p in asked)  # ... and not entered


def test_may_enter_opens_a_way_to_readable_names_below(root: Path) -> None:
    def may_read(url_path: str) -> bool:  # like --auth '@/docs/deep/REPORTS'
        return url_path.startswith("docs/deep/REPORTS/")

    def may_enter(url_path: str) -> bool:  # like Visitor.can_reach
        return may_read(url_path) or "docs/deep/REPORTS/".startswith(url_path)

    assert paths(find(root, "q", may_read=may_read)) == []
    policy = make_policy(root)
    result = search_tree(root, "", "", policy=policy, may_read=may_read, may_enter=may_enter)
    # The way there (docs/, docs/deep/) is entered but not shown; notes.md is not readable.
    assert paths(result) == ["docs/deep/REPORTS/", "docs/deep/REPORTS/q1.csv"]


def test_names_that_are_not_utf8_are_skipped(tmp_path: Path) -> None:
    try:
        (tmp_path / os.fsdecode(b"match-\xff.txt")).write_text("x")
    except OSError:
        pytest.fail("this file system refuses non-UTF-8 names; the test needs one that does not")
    (tmp_path / "match-ok.txt").write_text("x")
    assert paths(find(tmp_path, "match")) == ["match-ok.txt"]


def test_may_read_gets_paths_relative_to_the_root(root: Path) -> None:
    asked: list[str] = []

    def may_read(url_path: str) -> bool:
        asked.append(url_path)
        return True

    find(root, "zzz", url_dir="docs/", may_read=may_read)
    assert sorted(asked) == [
        "docs/deep/",
        "docs/deep/REPORTS/",
        "docs/deep/REPORTS/q1.csv",
        "docs/old-report.pdf",
    ]


def test_missing_directory_raises_oserror(tmp_path: Path) -> None:
    policy = make_policy(tmp_path)
    with pytest.raises(FileNotFoundError):
        search_tree(tmp_path / "gone", "gone/", "x", policy=policy, may_read=allow_all)


# ---------------------------------------------------------------- bounds


@pytest.fixture
def many(tmp_path: Path) -> Path:
    for index in range(10):
        (tmp_path / f"match-{index}.txt").write_text("m")
    return tmp_path


def test_result_bound(many: Path) -> None:
    result = find(many, "match", limits=SearchLimits(max_results=3))
    assert len(result.matches) == 3
    assert result.truncated and result.reason == "stopped after 3 results"


def test_exactly_max_results_is_not_truncated(many: Path) -> None:
    result = find(many, "match", limits=SearchLimits(max_results=10))
    assert len(result.matches) == 10 and not result.truncated and result.reason is None


def test_entry_bound(many: Path) -> None:
    result = find(many, "match", limits=SearchLimits(max_entries=4))
    assert len(result.matches) == 4
    assert result.truncated and result.reason == "stopped after looking at 4 entries"
    complete = find(many, "match", limits=SearchLimits(max_entries=10))
    assert len(complete.matches) == 10 and not complete.truncated


def test_time_bound_with_a_fake_clock(many: Path) -> None:
    ticks = itertools.count()  # one second per call: 0 at the start, then 1, 2, 3, 4 ...
    result = find(
        many, "match", limits=SearchLimits(max_seconds=3.5), clock=lambda: float(next(ticks))
    )
    assert len(result.matches) == 3  # entries seen at 1, 2 and 3 seconds; stopped at 4
    assert result.truncated and result.reason == "stopped after 3.5 seconds"


def test_cancel_flag_stops_the_walk(many: Path) -> None:
    cancelled = threading.Event()
    cancelled.set()
    policy = make_policy(many)
    result = search_tree(many, "", "match", policy=policy, may_read=allow_all, cancelled=cancelled)
    assert result.matches == [] and result.reason == "cancelled"


def test_limits_must_be_positive() -> None:
    for bad in ({"max_results": 0}, {"max_entries": 0}, {"max_seconds": 0.0}):
        with pytest.raises(ValueError):
            SearchLimits(**bad)


# ---------------------------------------------------------------- rendering

NASTY = SearchResult(
    "/a&b/",
    "<script>",
    [
        Match("<script>alert(1)</script>.txt", False, 2048, 0.0),
        Match("sub dir/a#b?c.txt", False, 5, 86400.0),
        Match("<script>/", True, 4096, 0.0),
    ],
)


def test_html_escapes_text_and_quotes_links() -> None:
    page = render_search_html(NASTY)
    assert "<script>" not in page
    assert "<title>Search for &lt;script&gt; in /a&amp;b/</title>" in page
    assert (
        '<a href="%3Cscript%3Ealert%281%29%3C/script%3E.txt">'
        "&lt;script&gt;alert(1)&lt;/script&gt;.txt</a>"
    ) in page
    assert '<a href="sub%20dir/a%23b%3Fc.txt">sub dir/a#b?c.txt</a>' in page
    assert '<a href="%3Cscript%3E/">&lt;script&gt;/</a>' in page
    assert 'value="&lt;script&gt;"' in page  # the search box keeps the term
    assert '<a href="./">Back to /a&amp;b/</a>' in page
    assert "2.0 KiB" in page and "5 B" in page
    assert "Fri, 02 Jan 1970 00:00:00 GMT" in page
    assert "3 matches" in page and 'class="note"' not in page


def test_html_notes_truncation_and_no_matches() -> None:
    stopped = SearchResult("/", "x", [Match("x", False, 1, 0.0)], True, "stopped after 1 results")
    page = render_search_html(stopped)
    assert '<p class="note">The search stopped after 1 results: there may be more.</p>' in page
    assert "1 match<" in page
    empty = render_search_html(SearchResult("/", "x", []))
    assert "No names match." in empty and "<table>" not in empty


def test_json_rendering() -> None:
    document = json.loads(render_search_json(NASTY))
    assert document["path"] == "/a&b/" and document["query"] == "<script>"
    assert document["truncated"] is False and document["reason"] is None
    assert document["results"][1] == {
        "path": "sub dir/a#b?c.txt",
        "type": "file",
        "size": 5,
        "mtime": "Fri, 02 Jan 1970 00:00:00 GMT",
    }
    assert document["results"][2]["type"] == "directory"
    assert document["results"][2]["size"] is None
    stopped = SearchResult("/", "x", [], True, "stopped after 2 seconds")
    assert json.loads(render_search_json(stopped))["reason"] == "stopped after 2 seconds"


def test_text_rendering() -> None:
    assert render_search_text(NASTY) == (
        "<script>alert(1)</script>.txt\nsub dir/a#b?c.txt\n<script>/\n"
    )
    stopped = SearchResult("/", "x", [Match("x/", True, 0, 0.0)], True, "stopped after 1 results")
    lines = render_search_text(stopped).splitlines()
    assert lines[0] == "x/"
    assert lines[-1].startswith("# ") and "stopped after 1 results" in lines[-1]
    assert render_search_text(SearchResult("/", "x", [])) == ""


# ---------------------------------------------------------------- the Trio shell


@pytest.mark.parametrize("term", ["", "   ", "\t", "x" * 257])
async def test_bad_terms_are_400(root: Path, term: str) -> None:
    policy = make_policy(root)
    with pytest.raises(HTTPError) as caught:
        await search_response(root, "", term, None, policy=policy, may_read=allow_all)
    assert caught.value.status == 400 and caught.value.detail


async def test_longest_allowed_term(root: Path) -> None:
    policy = make_policy(root)
    response = await search_response(root, "", "x" * 256, None, policy=policy, may_read=allow_all)
    assert response.status == 200


async def test_unreadable_directory_is_an_http_error(tmp_path: Path) -> None:
    policy = make_policy(tmp_path)
    with pytest.raises(HTTPError) as caught:
        await search_response(
            tmp_path / "gone", "gone/", "x", None, policy=policy, may_read=allow_all
        )
    assert caught.value.status == 404


async def test_cancelling_abandons_and_stops_the_walk(
    many: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_thread = threading.Event()
    release = threading.Event()
    finished = threading.Event()
    outcome: list[SearchResult] = []
    calls: list[str] = []
    real_search_tree = search_module.search_tree

    def blocking_may_read(url_path: str) -> bool:
        calls.append(url_path)
        in_thread.set()
        release.wait(5)
        return True

    def observed(*args: object, **kwargs: object) -> SearchResult:
        try:
            result = real_search_tree(*args, **kwargs)  # type: ignore[arg-type]
            outcome.append(result)
            return result
        finally:
            finished.set()

    monkeypatch.setattr(search_module, "search_tree", observed)
    policy = make_policy(many)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:

            async def run_search() -> None:
                await search_response(
                    many, "", "match", None, policy=policy, may_read=blocking_may_read
                )
                raise AssertionError("the search was not cancelled")

            nursery.start_soon(run_search)
            await trio.to_thread.run_sync(in_thread.wait, 5)
            # The thread is blocked: cancelling returns at once (abandon_on_cancel) ...
            nursery.cancel_scope.cancel()
        release.set()
        # ... and the abandoned thread stops at its next entry instead of walking on.
        await trio.to_thread.run_sync(finished.wait, 5)
    assert len(calls) == 1
    assert outcome[0].reason == "cancelled"


# ---------------------------------------------------------------- end to end


def search_app(root: Path, *, follow_symlinks: bool = False) -> App:
    """A file route that searches on ?q=, as FileServer._directory will."""
    policy = make_policy(root, follow_symlinks=follow_symlinks)
    app = App()

    def may_read(url_path: str) -> bool:
        return not url_path.startswith("private/")

    async def handler(request: Request) -> Response:
        url_path = request.path_params["path"]
        directory = resolve_path(policy, url_path)
        (term,) = request.query.get("q", [""])
        return await search_response(
            directory,
            url_path,
            term,
            request.headers.get("accept"),
            policy=policy,
            may_read=may_read,
            limits=SearchLimits(max_results=2),
        )

    app.add_route("/files/{path:path}", handler, ["GET"])
    return app


@pytest.fixture
def served(root: Path) -> Path:
    (root / "private").mkdir()
    (root / "private" / "report-secret.txt").write_text("s")
    (root / "docs" / "<script> report #?.txt").write_text("x")
    return root


async def test_end_to_end_json_text_html(served: Path) -> None:
    async with TestClient(search_app(served)) as client:
        with trio.fail_after(5):
            response = await client.get(
                "/files/docs/?q=OLD-Rep", headers={"accept": "application/json"}
            )
            assert response.status == 200
            assert response.headers["content-type"] == "application/json"
            assert response.headers["vary"] == "Accept"
            document = json.loads(response.text)
            assert document["path"] == "/docs/" and document["query"] == "OLD-Rep"
            assert document["truncated"] is False and document["reason"] is None
            assert document["results"] == [
                {
                    "path": "old-report.pdf",
                    "type": "file",
                    "size": 5,
                    "mtime": document["results"][0]["mtime"],
                }
            ]
            text = await client.get("/files/?q=secret", headers={"accept": "text/plain"})
            assert text.status == 200 and text.text == ""  # private/ may not be read
            assert text.headers["content-type"] == "text/plain; charset=utf-8"
            page = await client.get("/files/docs/?q=script")
            assert page.headers["content-type"] == "text/html; charset=utf-8"
            assert '<a href="%3Cscript%3E%20report%20%23%3F.txt">' in page.text
            assert html.escape("<script> report #?.txt") in page.text
            # The link, resolved against the page's URL, names the file as stored.
            assert (served / "docs" / unquote("%3Cscript%3E%20report%20%23%3F.txt")).is_file()


async def test_end_to_end_truncated_and_bad_term(served: Path) -> None:
    async with TestClient(search_app(served)) as client:
        with trio.fail_after(5):
            response = await client.get("/files/?q=report", headers={"accept": "text/plain"})
            lines = response.text.splitlines()
            assert len(lines) == 3
            assert lines[-1] == "# stopped after 2 results; there may be more matches"
            bad = await client.get("/files/?q=%20%20")
            assert bad.status == 400 and b"empty" in bad.body
            long = await client.get("/files/?q=" + "a" * 300)
            assert long.status == 400 and b"256" in long.body
