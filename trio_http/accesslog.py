"""Access-log lines: one per request, in Combined Log Format or JSON.

The formatting functions are pure; :class:`AccessLogger` hands the line to the standard
``logging`` module (logger ``trio_http.access``), so operators route it like any other log.
Client-supplied text is escaped — control characters, quotes and backslashes become ``\\xHH`` —
so a request cannot forge log lines or terminal escape sequences.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Literal

from .request import Request

__all__ = ["AccessLogger", "escape", "format_combined", "format_json"]

LogFormat = Literal["combined", "json"]

_UNSAFE = re.compile(r'[\x00-\x1f\x7f-\x9f"\\]')
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def escape(text: str) -> str:
    """*text* with control characters, ``"`` and ``\\`` written as ``\\xHH``."""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _clf_time(timestamp: float) -> str:
    t = time.gmtime(timestamp)
    return (
        f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )


def _request_line(request: Request | None) -> str:
    if request is None:
        return "-"
    return f"{request.method} {request.target} HTTP/{request.http_version}"


def format_combined(
    request: Request | None,
    status: int,
    size: int,
    duration: float,
    client: tuple[str, int] | None,
    timestamp: float,
) -> str:
    """``host - - [time] "request" status bytes "referer" "user-agent" seconds``.

    Combined Log Format with the duration in seconds appended, as Apache's ``%T``-style
    extensions and most log parsers accept.
    """
    host = client[0] if client else "-"
    referer = user_agent = "-"
    if request is not None:
        referer = request.headers.get("referer") or "-"
        user_agent = request.headers.get("user-agent") or "-"
    line = (
        f'{host} - - [{_clf_time(timestamp)}] "{escape(_request_line(request))}" {status} '
        f'{size} "{escape(referer)}" "{escape(user_agent)}" {duration:.6f}'
    )
    if request is not None and request.log_fields:
        line += "".join(f" {name}={escape(str(v))}" for name, v in request.log_fields.items())
    return line


def format_json(
    request: Request | None,
    status: int,
    size: int,
    duration: float,
    client: tuple[str, int] | None,
    timestamp: float,
) -> str:
    """One JSON object per line (``json.dumps`` escapes control characters itself)."""
    record: dict[str, object] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp)),
        "client": client[0] if client else None,
        "method": request.method if request else None,
        "target": request.target if request else None,
        "http_version": request.http_version if request else None,
        "status": status,
        "bytes": size,
        "duration": round(duration, 6),
        "referer": request.headers.get("referer") if request else None,
        "user_agent": request.headers.get("user-agent") if request else None,
    }
    if request is not None and request.log_fields:
        record.update(request.log_fields)
    return json.dumps(record, ensure_ascii=True, separators=(",", ":"))


class AccessLogger:
    """Writes one line per request to the ``trio_http.access`` logger.

    At INFO, or at the level the handler set in ``request.access_log_level``.
    """

    def __init__(self, log_format: LogFormat = "combined") -> None:
        self._format = format_json if log_format == "json" else format_combined
        self._logger = logging.getLogger("trio_http.access")

    def log(
        self,
        request: Request | None,
        status: int,
        size: int,
        duration: float,
        client: tuple[str, int] | None,
    ) -> None:
        level = logging.INFO if request is None else request.access_log_level
        if self._logger.isEnabledFor(level):
            line = self._format(request, status, size, duration, client, time.time())
            self._logger.log(level, line)
