import json
import logging

import pytest

from trio_http.accesslog import AccessLogger, escape, format_combined, format_json
from trio_http.headers import Headers
from trio_http.request import Request

REQUEST = Request(
    "GET",
    "/echo/a?b=c",
    Headers({"user-agent": 'curl/8 "evil"\x1b[31m', "referer": "http://x/"}),
)


def test_escape() -> None:
    assert escape('a"b\\c\nd\x1b\x7f') == "a\\x22b\\x5cc\\x0ad\\x1b\\x7f"
    assert escape("plain é") == "plain é"


def test_combined_format() -> None:
    line = format_combined(REQUEST, 200, 3, 0.0012345, ("10.0.0.1", 5000), 0.0)
    assert line == (
        '10.0.0.1 - - [01/Jan/1970:00:00:00 +0000] "GET /echo/a?b=c HTTP/1.1" 200 3 '
        '"http://x/" "curl/8 \\x22evil\\x22\\x1b[31m" 0.001234'
    )


def test_combined_without_request() -> None:
    line = format_combined(None, 400, 20, 0.0, None, 0.0)
    assert line == '- - - [01/Jan/1970:00:00:00 +0000] "-" 400 20 "-" "-" 0.000000'


def test_json_format() -> None:
    record = json.loads(format_json(REQUEST, 404, 10, 0.5, ("::1", 1), 0.0))
    assert record["status"] == 404
    assert record["client"] == "::1"
    assert record["user_agent"] == 'curl/8 "evil"\x1b[31m'
    assert record["time"] == "1970-01-01T00:00:00Z"
    assert "\x1b" not in format_json(REQUEST, 404, 10, 0.5, None, 0.0)


def test_logger_writes_to_trio_http_access(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="trio_http.access")
    AccessLogger("json").log(REQUEST, 200, 1, 0.1, None)
    (record,) = caplog.records
    assert record.name == "trio_http.access"
    assert json.loads(record.getMessage())["status"] == 200
