"""Directory listings as HTML, JSON or plain text, from entries already read (no I/O here).

The HTML page works without JavaScript: breadcrumbs, column headers that sort through
``?sort=name|size|mtime&order=asc|desc`` links, human-readable sizes (exact bytes in a
``title``), a search form (``?q=``), archive links (``?download=zip|tar.gz``), a light and a
dark theme by ``prefers-color-scheme``.  Its script adds a filter box and local dates, and for a
visitor who may write (``can_write``), uploads (plain ``PUT``, or tus for large files when an
``upload_url`` is given), new folders (``MKCOL``) and deletes; a visitor who may not write gets
none of those controls, nor their script.

The page's CSS, scripts and icons ship in ``assets/`` and are read once, at import.  By default
they are inlined (a page is one response); with *assets_url* the CSS and scripts are linked
there instead (:data:`ASSETS`, which :class:`~.server.FileServer` serves), so the page also
works under a ``Content-Security-Policy`` that forbids inline code.  Nothing is ever fetched
from elsewhere.

Names are HTML-escaped in text and percent-quoted in links, so a file called ``<script>`` or
``a b#?.txt`` shows and links correctly.  Names that are not valid UTF-8 on disk (``os`` gives
them lone surrogates) cannot be written in a UTF-8 page nor linked, so they are left out.
"""

from __future__ import annotations

import hashlib
import html
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from urllib.parse import quote

from .display import http_date, human_size, is_utf8, text_line

__all__ = [
    "ASSETS",
    "ASSETS_VERSION",
    "ORDERS",
    "SORT_KEYS",
    "Entry",
    "parse_sort",
    "render_html",
    "render_json",
    "render_text",
    "sort_entries",
]

SORT_KEYS = ("name", "size", "mtime")
ORDERS = ("asc", "desc")
#: The order a column header first sorts by: names A-Z, but the largest and newest first.
_FIRST_ORDER = {"name": "asc", "size": "desc", "mtime": "desc"}
_COLUMN_TITLES = {"name": "Name", "size": "Size", "mtime": "Modified"}


@dataclass(frozen=True)
class Entry:
    name: str
    is_dir: bool
    size: int
    mtime: float


# ---------------------------------------------------------------------------- sorting


def parse_sort(query: Mapping[str, Sequence[str]]) -> tuple[str, str]:
    """``(key, order)`` from ``?sort=name|size|mtime&order=asc|desc``; never raises.

    A missing or unknown value falls back to ``name`` and ``asc`` (each on its own): a stale
    or hand-edited link still shows the folder.
    """
    key = _first(query, "sort")
    order = _first(query, "order")
    return (key if key in SORT_KEYS else "name", order if order in ORDERS else "asc")


def _first(query: Mapping[str, Sequence[str]], name: str) -> str:
    values = query.get(name)
    return values[0].strip().lower() if values else ""


def _name_key(entry: Entry) -> tuple[str, str]:
    # Case-insensitive, with the exact name breaking ties so the order is total.
    return (entry.name.casefold(), entry.name)


def _size_key(entry: Entry) -> tuple[object, ...]:
    return (entry.size, *_name_key(entry))


def _mtime_key(entry: Entry) -> tuple[object, ...]:
    return (entry.mtime, *_name_key(entry))


_SORT_KEY_FUNCTIONS: dict[str, Callable[[Entry], tuple[object, ...]]] = {
    "name": _name_key,
    "size": _size_key,
    "mtime": _mtime_key,
}


def sort_entries(entries: Iterable[Entry], key: str = "name", order: str = "asc") -> list[Entry]:
    """Directories first, then files, each group sorted by *key* in *order*.

    Ties are broken by name.  A directory has no meaningful size, so by ``size`` directories
    stay sorted by name, A-Z, in either order.  Raises ``ValueError`` for a *key* not in
    :data:`SORT_KEYS` or an *order* not in :data:`ORDERS` (see :func:`parse_sort`).
    """
    if key not in SORT_KEYS or order not in ORDERS:
        raise ValueError(f"cannot sort by {key!r} {order!r}")
    items = list(entries)
    reverse = order == "desc"
    by = _SORT_KEY_FUNCTIONS[key]
    directories = sorted(
        (e for e in items if e.is_dir),
        key=_name_key if key == "size" else by,
        reverse=reverse and key != "size",
    )
    files = sorted((e for e in items if not e.is_dir), key=by, reverse=reverse)
    return directories + files


def _listable(entries: Iterable[Entry], key: str, order: str) -> list[Entry]:
    """Sorted entries whose names a UTF-8 page can hold (see the module docstring)."""
    return [e for e in sort_entries(entries, key, order) if is_utf8(e.name)]


# ---------------------------------------------------------------------------- formatting


def _date_cell(mtime: float) -> str:
    """A ``<time>`` in UTC (the page is the same for every visitor; the script localizes)."""
    date = http_date(mtime)
    if date is None:
        return "-"
    t = time.gmtime(mtime)
    iso = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}"
    shown = iso.replace("T", " ")
    return f'<time datetime="{iso}:{t.tm_sec:02d}Z" title="{date}">{shown}</time>'


# ---------------------------------------------------------------------------- assets


def _asset(name: str) -> str:
    """A file shipped in ``assets/``, checked to be safe to inline in its element."""
    text = (resources.files("trio_http.files") / "assets" / name).read_text(encoding="utf-8")
    # The HTML parser ends a <script> or <style> at the first "</script" or "</style".
    for closing in ("</script", "</style", "<!--"):
        if closing in text.lower():
            raise RuntimeError(f"assets/{name} contains {closing!r} and cannot be inlined")
    return text


_CSS = _asset("listing.css")
_ICONS = _asset("icons.svg").strip()
#: For every visitor: the filter box, local dates.
_SCRIPT = _asset("listing.js")
#: Only for visitors who may write: uploads, new folders, deletes.
_WRITE_SCRIPT = _asset("upload.js")
#: What a page links to when it does not inline: name -> (content, content type).
ASSETS = {
    "listing.css": (_CSS, "text/css; charset=utf-8"),
    "listing.js": (_SCRIPT, "text/javascript; charset=utf-8"),
    "upload.js": (_WRITE_SCRIPT, "text/javascript; charset=utf-8"),
}
#: Changes whenever an asset does: linked as ``?v=``, so the assets can be cached for good.
_ALL_ASSETS = "".join(text for text, _ in ASSETS.values()).encode("utf-8")
ASSETS_VERSION = hashlib.sha256(_ALL_ASSETS).hexdigest()[:12]


def _style(assets_url: str | None) -> str:
    if assets_url is None:
        return f"<style>{_CSS}</style>"
    href = html.escape(f"{assets_url}listing.css?v={ASSETS_VERSION}", quote=True)
    return f'<link rel="stylesheet" href="{href}">'


def _script(name: str, text: str, assets_url: str | None) -> str:
    if assets_url is None:
        return f"<script>{text}</script>"
    src = html.escape(f"{assets_url}{name}?v={ASSETS_VERSION}", quote=True)
    return f'<script src="{src}"></script>'


def _icon(name: str) -> str:
    return f'<svg class="icon" aria-hidden="true"><use href="#i-{name}"></use></svg>'


# ---------------------------------------------------------------------------- HTML


def _breadcrumbs(url_path: str) -> str:
    """``/a/b/`` as links to ``/`` and ``a`` (relative, so any URL prefix works) and ``b``."""
    parts = [part for part in url_path.split("/") if part]
    depth = len(parts)
    crumbs = [f'<a href="{"../" * depth}">/</a>' if depth else "/"]
    for index, part in enumerate(parts):
        up = depth - 1 - index
        label = html.escape(part)
        crumbs.append(f'<a href="{"../" * up}">{label}</a>/' if up else f"{label}/")
    return "".join(crumbs)


def _header(key: str, sort: str, order: str) -> str:
    """A column header: a plain link that sorts by its column (the other way when active)."""
    title = _COLUMN_TITLES[key]
    if key == sort:
        next_order = "asc" if order == "desc" else "desc"
        arrow = "\u25b2" if order == "asc" else "\u25bc"
        aria = f' aria-sort="{"ascending" if order == "asc" else "descending"}"'
        label = f'{title}<span class="arrow" aria-hidden="true">{arrow}</span>'
    else:
        next_order, aria, label = _FIRST_ORDER[key], "", title
    return f'<th class="{key}"{aria}><a href="?sort={key}&amp;order={next_order}">{label}</a></th>'


def _row(entry: Entry, can_write: bool) -> str:
    name = entry.name + ("/" if entry.is_dir else "")
    shown = html.escape(name)
    link = f'<a href="{html.escape(quote(name), quote=True)}">{shown}</a>'
    if entry.is_dir:
        kind, size = "dir", '<td class="size">-</td>'
    else:
        kind = "file"
        size = f'<td class="size" title="{entry.size} bytes">{human_size(entry.size)}</td>'
    cells = [
        f'<td class="name">{_icon(kind)}{link}</td>',
        size,
        f'<td class="mtime">{_date_cell(entry.mtime)}</td>',
    ]
    if can_write:
        # Files only: the server refuses to delete a directory (409).
        delete = (
            f'<button type="button" class="delete needs-js" title="Delete {shown}" '
            f'aria-label="Delete {shown}">{_icon("delete")}</button>'
            if not entry.is_dir
            else ""
        )
        cells.append(f'<td class="actions">{delete}</td>')
    return (
        f'<tr class="{kind}" data-name="{html.escape(entry.name, quote=True)}">'
        + "".join(cells)
        + "</tr>"
    )


def render_html(
    url_path: str,
    entries: Iterable[Entry],
    *,
    has_parent: bool,
    sort: str = "name",
    order: str = "asc",
    can_write: bool = False,
    archives: bool = False,
    upload_url: str | None = None,
    login: bool = False,
    assets_url: str | None = None,
) -> str:
    """The HTML page listing *entries* of the directory at *url_path*.

    *url_path* is the decoded path of the directory relative to the served root (``/`` or
    ``/a/b/``); the page is served at a URL ending in ``/`` and links relatively.  *sort* and
    *order* as :func:`parse_sort` returns them (``ValueError`` otherwise).  *can_write*: the
    visitor may upload, create folders and delete here (else no such controls nor script).
    *archives*: link ``?download=zip`` and ``?download=tar.gz``.  *upload_url*: the tus
    endpoint (e.g. ``/uploads/``) large uploads go through; without it every upload is a
    ``PUT``.  *login*: link ``?login``, which asks the browser for credentials (for an
    anonymous visitor when access rules are in force).  *assets_url*: link the CSS and
    scripts there (``.../`` serving :data:`ASSETS`) rather than inline them.
    """
    shown = list(_listable(entries, sort, order))
    columns = 4 if can_write else 3
    title = html.escape(f"Index of {url_path}")
    rows = []
    if has_parent:
        rows.append(
            f'<tr class="parent"><td class="name">{_icon("parent")}<a href="../">../</a></td>'
            '<td class="size">-</td><td class="mtime">-</td>'
            + ("<td></td>" if can_write else "")
            + "</tr>"
        )
    rows.extend(_row(entry, can_write) for entry in shown)
    if not shown:
        rows.append(f'<tr><td class="empty" colspan="{columns}">This folder is empty.</td></tr>')
    rows.append(
        f'<tr id="no-match" hidden><td class="empty" colspan="{columns}">'
        "No name here contains that text; press Enter to search below this folder.</td></tr>"
    )
    headers = [_header(key, sort, order) for key in SORT_KEYS]
    if can_write:
        headers.append('<th class="actions"><span hidden>Actions</span></th>')

    tools = [
        '<form method="get" role="search">'
        '<input type="search" id="filter" name="q" placeholder="Filter, or search below"'
        ' aria-label="Filter names here, or press Enter to search below this folder">'
        '<button type="submit">Search</button></form>'
    ]
    if archives:
        tools.append(
            '<span class="group">'
            f'<a class="button" href="?download=zip" download>{_icon("download")}Zip</a>'
            f'<a class="button" href="?download=tar.gz" download>{_icon("download")}tar.gz</a>'
            "</span>"
        )
    if login:
        tools.append('<a class="button" href="?login" id="login">Log in</a>')
    if can_write:
        tools.append(
            '<span class="group needs-js" id="write-controls">'
            f'<label class="button primary">{_icon("upload")}Upload files'
            '<input type="file" id="upload-files" multiple></label>'
            f'<label class="button">{_icon("upload")}Upload folder'
            '<input type="file" id="upload-folder" webkitdirectory multiple></label>'
            f'<button type="button" id="new-folder">{_icon("new-dir")}New folder</button>'
            "</span>"
        )
    data = f' data-path="{html.escape(url_path, quote=True)}"'
    if can_write and upload_url:
        data += f' data-upload-url="{html.escape(upload_url, quote=True)}"'
    write_parts = (
        '<div id="messages" role="alert"></div><ul id="uploads" aria-label="Uploads"></ul>\n'
        if can_write
        else ""
    )
    write_tail = (
        '<p class="hint needs-js">Drop files or folders anywhere on this page to upload them'
        " here.</p>\n"
        '<div id="drop-hint" aria-hidden="true">Drop to upload here</div>\n'
        f"{_script('upload.js', _WRITE_SCRIPT, assets_url)}\n"
        if can_write
        else ""
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        f"<title>{title}</title>\n{_style(assets_url)}</head>\n"
        f"<body{data}>\n{_ICONS}\n"
        f'<h1>Index of <span class="crumbs">{_breadcrumbs(url_path)}</span></h1>\n'
        f'<div class="bar">{"".join(tools)}</div>\n'
        f"{write_parts}"
        f'<table id="listing"><thead><tr>{"".join(headers)}</tr></thead>\n<tbody>\n'
        + "\n".join(rows)
        + "\n</tbody></table>\n"
        f"{write_tail}"
        f"{_script('listing.js', _SCRIPT, assets_url)}\n</body></html>\n"
    )


# ---------------------------------------------------------------------------- JSON, text


def render_json(
    url_path: str, entries: Iterable[Entry], sort: str = "name", order: str = "asc"
) -> str:
    """A JSON document: ``{"path": ..., "entries": [{"name", "type", "size", "mtime"}]}``.

    ``size`` is ``null`` for directories, ``mtime`` an HTTP date (``null`` if the file's time
    is outside years 1-9999).  Entries in the order of :func:`sort_entries`.
    """
    return json.dumps(
        {
            "path": url_path,
            "entries": [
                {
                    "name": entry.name,
                    "type": "directory" if entry.is_dir else "file",
                    "size": None if entry.is_dir else entry.size,
                    "mtime": http_date(entry.mtime),
                }
                for entry in _listable(entries, sort, order)
            ],
        },
        indent=1,
    )


def render_text(entries: Iterable[Entry], sort: str = "name", order: str = "asc") -> str:
    """One name per line (``text/plain``), directories with a ``/`` after the name.

    A line break inside a name (legal on POSIX file systems) would split it in two lines, so
    CR and LF in names are written ``%0D`` and ``%0A``.  Empty for an empty directory.
    """
    lines = [
        text_line(entry.name) + ("/" if entry.is_dir else "")
        for entry in _listable(entries, sort, order)
    ]
    return "".join(line + "\n" for line in lines)
