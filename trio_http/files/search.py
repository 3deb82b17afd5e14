"""Search by name below a served directory: ``GET /files/dir/?q=TERM``.

:func:`search_tree` walks the tree (blocking, meant for a worker thread) and returns a
:class:`SearchResult`; three pure renderers turn it into HTML, JSON or text like the listings
of :mod:`.listing`; :func:`search_response` is the thin Trio shell that runs the walk in a
thread and picks the rendering by ``Accept``.

A name matches when it contains the term ignoring case: both are NFC-normalised and
case-folded (Unicode §3.13 caseless matching), so ``STRASSE`` finds ``straße.txt`` and a name
stored decomposed (as macOS writes ``é``) matches a term typed composed.

Every entry goes through the same rules as a listing (``FileServer._scan``): upload temporary
files are skipped, each name is checked with :func:`~.paths.resolve_path` (hidden names and
symlinks leading out of the root are neither shown nor descended into), and through
*may_read*, the access rule (a directory that may not be read is not entered either).  A
directory already entered (same ``st_dev, st_ino``) is not entered again, so a symlink loop
ends.

The walk is bounded by :class:`SearchLimits`: matches, directory entries looked at, and
seconds.  A bound reached ends the walk and the answer says so (``truncated``, ``reason``)
with what was found; memory stays within the bounds whatever the tree.
"""

from __future__ import annotations

import html
import json
import os
import stat
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import trio

from ..errors import HTTPError
from ..response import Response
from .display import http_date, human_size, is_utf8, text_line
from .paths import PathPolicy, http_error_for, resolve_path
from .uploads import TEMP_PREFIX

__all__ = [
    "MAX_TERM_LENGTH",
    "Match",
    "SearchLimits",
    "SearchResult",
    "render_search_html",
    "render_search_json",
    "render_search_text",
    "search_response",
    "search_tree",
]

#: Longer terms are refused (400): no file name needs more, and it bounds the work per name.
MAX_TERM_LENGTH = 256

_JSON = "application/json"
_HTML = "text/html; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class SearchLimits:
    """Bounds of one search; the first one reached ends it."""

    max_results: int = 1000
    #: Directory entries read (every name, shown or not): the cost of the walk.
    max_entries: int = 100_000
    max_seconds: float = 2.0

    def __post_init__(self) -> None:
        if self.max_results < 1 or self.max_entries < 1 or not self.max_seconds > 0:
            raise ValueError("search limits must be positive")


@dataclass(frozen=True)
class Match:
    """A name found: *path* relative to the searched directory, ``/``-separated.

    A directory's path ends with ``/``; its *size* is what ``stat`` says and is not shown.
    """

    path: str
    is_dir: bool
    size: int
    mtime: float


@dataclass(frozen=True)
class SearchResult:
    """What a search found in *directory* (the URL path shown, such as ``/docs/``)."""

    directory: str
    term: str
    matches: list[Match] = field(default_factory=list)
    truncated: bool = False
    #: Why the walk stopped early ("stopped after 1000 results"), when *truncated*.
    reason: str | None = None


def fold(text: str) -> str:
    """*text* as compared: NFC, case-folded, NFC again (folding can decompose, e.g. ``ǰ``)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())


def check_term(term: str) -> None:
    """Raise ``HTTPError(400)`` for an empty, blank or overlong search term."""
    if not term.strip():
        raise HTTPError(400, "the search term (q) is empty")
    if len(term) > MAX_TERM_LENGTH:
        raise HTTPError(400, f"the search term (q) is longer than {MAX_TERM_LENGTH} characters")


class _Stop(Exception):
    """A bound was reached; *reason* says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def search_tree(
    directory: Path,
    url_dir: str,
    term: str,
    *,
    policy: PathPolicy,
    may_read: Callable[[str], bool],
    may_enter: Callable[[str], bool] | None = None,
    limits: SearchLimits = SearchLimits(),
    clock: Callable[[], float] = time.monotonic,
    cancelled: threading.Event | None = None,
) -> SearchResult:
    """Find the names containing *term* below *directory* (blocking: run it in a thread).

    *directory* is the real path of the directory whose URL path (relative to the root, empty
    or ending in ``/``) is *url_dir*; each entry is checked by the URL a client would use,
    ``url_dir`` plus its path.  *may_read* is asked about each entry's URL path (directories
    with a trailing ``/``): only what it allows is a match.  A directory is entered when
    *may_enter* allows it (by default *may_read*): with access rules, a directory the visitor
    may not read can still lead to one they may (``Visitor.can_reach``).  Breadth first, so a
    search stopped early has found the shallow names.  Matches come sorted by path.

    Raises :class:`OSError` if *directory* itself cannot be read; directories below that
    cannot be read, or that vanish meanwhile, are skipped.  If *cancelled* gets set (the
    client left), the walk stops at the next entry and what it found is thrown away.
    """
    needle = fold(term)
    started = clock()
    matches: list[Match] = []
    entered: set[tuple[int, int]] = set()
    # (real path, path relative to *directory* ending in "/" or empty)
    pending: deque[tuple[str, str]] = deque([(os.fspath(directory), "")])
    root_st = os.stat(directory)
    entered.add((root_st.st_dev, root_st.st_ino))
    seen = 0
    first = True
    try:
        while pending:
            real_dir, rel_dir = pending.popleft()
            try:
                scan = os.scandir(real_dir)
            except OSError:
                if first:
                    raise  # the searched directory itself: the caller answers for it
                continue
            first = False
            with scan:
                for item in scan:
                    if cancelled is not None and cancelled.is_set():
                        raise _Stop("cancelled")
                    if seen >= limits.max_entries:
                        raise _Stop(f"stopped after looking at {limits.max_entries} entries")
                    if clock() - started >= limits.max_seconds:
                        raise _Stop(f"stopped after {limits.max_seconds:g} seconds")
                    seen += 1
                    name = item.name
                    if name.startswith(TEMP_PREFIX) or not is_utf8(name):
                        continue  # an upload in progress; a name no URL can reach
                    rel = rel_dir + name
                    try:
                        real = resolve_path(policy, url_dir + rel)
                        st = os.stat(real)
                    except (HTTPError, OSError):
                        continue  # hidden, escaping, a broken link or loop, or vanished
                    is_dir = stat.S_ISDIR(st.st_mode)
                    if is_dir:
                        rel += "/"
                    readable = may_read(url_dir + rel)
                    if readable and needle in fold(name):
                        if len(matches) >= limits.max_results:
                            # Only once there is one more: exactly max_results is complete.
                            raise _Stop(f"stopped after {limits.max_results} results")
                        matches.append(Match(rel, is_dir, st.st_size, st.st_mtime))
                    if (
                        is_dir
                        and (readable if may_enter is None else may_enter(url_dir + rel))
                        and (st.st_dev, st.st_ino) not in entered
                    ):
                        entered.add((st.st_dev, st.st_ino))
                        pending.append((os.fspath(real), rel))
    except _Stop as stop:
        reason: str | None = stop.reason
    else:
        reason = None
    matches.sort(key=lambda m: (m.path.casefold(), m.path))
    return SearchResult("/" + url_dir, term, matches, reason is not None, reason)


# ---------------------------------------------------------------- rendering (pure)


#: Close to the listing's look (listing.py), with a light and a dark scheme.
_STYLE = (
    ":root{color-scheme:light dark}"
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}"
    "table{border-collapse:collapse;width:100%}"
    "td,th{padding:.25em .75em;text-align:left;border-bottom:1px solid #8884}"
    "td.size,th.size{text-align:right}a{text-decoration:none}a:hover{text-decoration:underline}"
    "p.note{padding:.5em .75em;border-left:4px solid #d90;background:#d901}"
    "form{margin:1em 0}input[type=search]{width:20em;max-width:70%}"
)


def render_search_html(result: SearchResult) -> str:
    """An HTML page of *result*: a table of links relative to the directory's URL.

    The page is served at the directory's URL (``/files/dir/?q=...``), so each match's path,
    percent-quoted, is its link; text is HTML-escaped.  It carries a search form (works
    without JavaScript), a note when the search stopped early, and a link back.
    """
    title = html.escape(f"Search for {result.term} in {result.directory}")
    rows = []
    for match in result.matches:
        size = "-" if match.is_dir else human_size(match.size)
        rows.append(
            f'<tr><td><a href="{html.escape(quote(match.path), quote=True)}">'
            f"{html.escape(match.path)}</a></td>"
            f'<td class="size">{size}</td><td>{http_date(match.mtime) or "-"}</td></tr>'
        )
    count = len(result.matches)
    summary = f"{count} match" if count == 1 else f"{count} matches"
    note = ""
    if result.truncated:
        reason = html.escape(result.reason or "stopped early")
        note = f'<p class="note">The search {reason}: there may be more.</p>\n'
    body = (
        '<table><thead><tr><th>Name</th><th class="size">Size</th><th>Modified</th></tr>'
        "</thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>"
        if rows
        else "<p>No names match.</p>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{title}</title><style>{_STYLE}</style></head>\n<body><h1>{title}</h1>\n"
        f'<p><a href="./">Back to {html.escape(result.directory)}</a></p>\n'
        '<form method="get" action="./" role="search"><input type="search" name="q" '
        f'value="{html.escape(result.term, quote=True)}" aria-label="Search names"> '
        '<button type="submit">Search</button></form>\n'
        f"<p>{summary}</p>\n{note}{body}</body></html>\n"
    )


def render_search_json(result: SearchResult) -> str:
    """``{"path", "query", "truncated", "reason", "results": [{"path", "type", "size",
    "mtime"}]}``, sizes ``null`` for directories, dates as HTTP dates (``null`` outside
    years 1-9999), as the listing."""
    return json.dumps(
        {
            "path": result.directory,
            "query": result.term,
            "truncated": result.truncated,
            "reason": result.reason,
            "results": [
                {
                    "path": match.path,
                    "type": "directory" if match.is_dir else "file",
                    "size": None if match.is_dir else match.size,
                    "mtime": http_date(match.mtime),
                }
                for match in result.matches
            ],
        },
        indent=1,
    )


def render_search_text(result: SearchResult) -> str:
    """One path per line (directories end with ``/``); a last ``# ...`` line if truncated.

    CR and LF in names are written ``%0D`` and ``%0A``, as in the listing's text form: a
    name with a line break would otherwise read as two paths.
    """
    lines = [text_line(match.path) for match in result.matches]
    if result.truncated:
        lines.append(f"# {result.reason or 'stopped early'}; there may be more matches")
    return "".join(line + "\n" for line in lines)


# ---------------------------------------------------------------- the Trio shell


async def search_response(
    directory: Path,
    url_dir: str,
    term: str,
    accept: str | None,
    *,
    policy: PathPolicy,
    may_read: Callable[[str], bool],
    may_enter: Callable[[str], bool] | None = None,
    limits: SearchLimits = SearchLimits(),
    clock: Callable[[], float] = time.monotonic,
    limiter: trio.CapacityLimiter | None = None,
) -> Response:
    """Search below *directory* (URL path *url_dir*) and answer as *accept* asks.

    *limiter*: the worker threads searches may use at once (a server shares one, so many
    searches wait their turn rather than take every thread the other requests need).

    JSON if *accept* names ``application/json``, text if ``text/plain``, HTML otherwise, with
    ``Vary: Accept`` as listings have.  Raises ``HTTPError(400)`` for an empty, blank or
    overlong *term*, and what :func:`~.paths.http_error_for` makes of an error reading
    *directory* itself.  *may_read* and *may_enter* are as for :func:`search_tree`.  The walk
    runs in a worker thread; if this task is cancelled (the client left), the thread is
    abandoned and told to stop at its next entry.
    """
    check_term(term)
    cancelled = threading.Event()

    def walk() -> SearchResult:
        return search_tree(
            directory,
            url_dir,
            term,
            policy=policy,
            may_read=may_read,
            may_enter=may_enter,
            limits=limits,
            clock=clock,
            cancelled=cancelled,
        )

    try:
        result = await trio.to_thread.run_sync(walk, abandon_on_cancel=True, limiter=limiter)
    except OSError as exc:
        raise http_error_for(exc) from None
    finally:
        cancelled.set()
    headers = {"vary": "Accept"}
    accept = accept or ""
    if _JSON in accept:
        return Response(render_search_json(result), headers=headers, content_type=_JSON)
    if "text/plain" in accept:
        return Response(render_search_text(result), headers=headers, content_type=_TEXT)
    return Response(render_search_html(result), headers=headers, content_type=_HTML)
