"""Directory listings as HTML or JSON, from entries already read (no I/O here).

Names are HTML-escaped in text and percent-quoted in links, so a file called
``<script>`` or ``a b#?.txt`` shows and links correctly.  Directories come first, then files,
each group sorted by name.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from ..protocol.httpdate import format_http_date

__all__ = ["Entry", "render_html", "render_json", "sort_entries"]


@dataclass(frozen=True)
class Entry:
    name: str
    is_dir: bool
    size: int
    mtime: float


def sort_entries(entries: Iterable[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: (not e.is_dir, e.name.casefold(), e.name))


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}"
    "table{border-collapse:collapse;width:100%}"
    "td,th{padding:.25em .75em;text-align:left;border-bottom:1px solid #ddd}"
    "td.size,th.size{text-align:right}a{text-decoration:none}a:hover{text-decoration:underline}"
)


def render_html(url_path: str, entries: Iterable[Entry], *, has_parent: bool) -> str:
    """An HTML page listing *entries* of the directory at *url_path* (the decoded URL path)."""
    title = html.escape(f"Index of {url_path}")
    rows = []
    if has_parent:
        rows.append('<tr><td><a href="../">../</a></td><td class="size">-</td><td>-</td></tr>')
    for entry in sort_entries(entries):
        name = entry.name + ("/" if entry.is_dir else "")
        size = "-" if entry.is_dir else _human_size(entry.size)
        rows.append(
            f'<tr><td><a href="{html.escape(quote(name), quote=True)}">{html.escape(name)}</a>'
            f'</td><td class="size">{size}</td><td>{format_http_date(entry.mtime)}</td></tr>'
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_STYLE}</style></head>\n<body><h1>{title}</h1>\n"
        '<table><thead><tr><th>Name</th><th class="size">Size</th><th>Modified</th></tr>'
        "</thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table></body></html>\n"
    )


def render_json(url_path: str, entries: Iterable[Entry]) -> str:
    """A JSON document: ``{"path": ..., "entries": [{"name", "type", "size", "mtime"}]}``."""
    return json.dumps(
        {
            "path": url_path,
            "entries": [
                {
                    "name": entry.name,
                    "type": "directory" if entry.is_dir else "file",
                    "size": None if entry.is_dir else entry.size,
                    "mtime": format_http_date(entry.mtime),
                }
                for entry in sort_entries(entries)
            ],
        },
        indent=1,
    )
