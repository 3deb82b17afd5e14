"""How names, sizes and dates are shown (pure: listings, search results, archives)."""

from __future__ import annotations

from ..protocol.httpdate import format_http_date

__all__ = ["http_date", "human_size", "is_utf8", "text_line"]


def http_date(mtime: float) -> str | None:
    """*mtime* as an HTTP date; ``None`` outside years 1-9999 (a file system can hold such
    times: tmpfs, year 10000)."""
    try:
        return format_http_date(mtime)
    except ValueError:
        return None


def text_line(name: str) -> str:
    """*name* for a line of a text listing: CR and LF as ``%0D`` and ``%0A``, so a name with
    a line break cannot read as two."""
    return name.replace("\r", "%0D").replace("\n", "%0A")


def is_utf8(name: str) -> bool:
    """Whether *name* is valid UTF-8 on disk (else ``os`` gave it lone surrogates).

    Such a name can be neither written in a UTF-8 page nor named by a URL, so listings,
    search and archives leave it out.
    """
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def human_size(size: int) -> str:
    """``512 B``, ``683.6 KiB``, ``1.5 GiB`` (binary units, one decimal)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        # Compared as shown: 1,048,575 bytes is "1.0 MiB", not "1024.0 KiB".
        if unit == "B" and value < 1024:
            return f"{value:.0f} {unit}"
        if unit != "B" and round(value, 1) < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
