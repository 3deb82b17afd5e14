"""trio_http.protocol.rules: the rules h11 leaves to us, tested with bytes and no I/O."""

from __future__ import annotations

from dataclasses import dataclass

import h11
import pytest

from trio_http.errors import BodyTooLarge, HTTPError
from trio_http.protocol.rules import (
    Limits,
    RequestFacts,
    UnreadBody,
    check_chunk,
    check_request,
    describe_h11_error,
    is_valid_host,
    must_close,
    skip_empty_lines,
)


@dataclass(frozen=True)
class SmallLimits:
    max_header_size: int = 1024
    max_target_length: int = 100
    max_body_size: int = 1000


LIMITS: Limits = SmallLimits()


def request(
    *headers: tuple[bytes, bytes], target: bytes = b"/", version: bytes = b"1.1"
) -> h11.Request:
    return h11.Request(
        method=b"GET", target=target, headers=[(b"host", b"x"), *headers], http_version=version
    )


@pytest.mark.parametrize(
    "value",
    [b"", b"x", b"example.com", b"example.com:80", b"x:0", b"x:65535", b"127.0.0.1:8080",
     b"[::1]", b"[::1]:443", b"[2001:db8::1]", b"[v1.fe80::a+en1]", b"a%20b", b"xn--bcher-kva.de",
     b"a-b_c~d!$&'()*+,;=", b"localhost:4221", b"x:"],
)  # fmt: skip
def test_valid_hosts(value: bytes) -> None:
    assert is_valid_host(value)


@pytest.mark.parametrize(
    "value",
    [b"a b", b"[::1", b"x:99999", b"user@x", b"x:8o", b"[::1]x", b"[not-ip]", b"x/y",
     b"x?y", b"x#y", b"a%2", b"[::1]:99999", b"x:-1", b'x"', b"\xff"],
)  # fmt: skip
def test_invalid_hosts(value: bytes) -> None:
    assert not is_valid_host(value)


def test_a_plain_request_gives_its_facts() -> None:
    assert check_request(request(), LIMITS) == RequestFacts(False, None, has_body=False)


def test_a_body_is_noted() -> None:
    facts = check_request(request((b"content-length", b"5")), LIMITS)
    assert facts == RequestFacts(False, 5, has_body=True)
    chunked = check_request(request((b"transfer-encoding", b"chunked")), LIMITS)
    assert chunked == RequestFacts(False, None, has_body=True)
    assert check_request(request((b"content-length", b"0")), LIMITS) == RequestFacts(
        False, 0, has_body=False
    )


@pytest.mark.parametrize(
    ("headers", "version", "close"),
    [
        ([], b"1.1", False),
        ([], b"1.0", True),
        ([(b"connection", b"close")], b"1.1", True),
        ([(b"connection", b"keep-alive, Close")], b"1.1", True),
        ([(b"connection", b"x-close")], b"1.1", False),
    ],
)
def test_client_close(headers: list[tuple[bytes, bytes]], version: bytes, close: bool) -> None:
    facts = check_request(request(*headers, version=version), LIMITS)
    assert isinstance(facts, RequestFacts) and facts.client_close is close


@pytest.mark.parametrize(
    ("event", "status", "close"),
    [
        (request(target=b"/" + b"a" * 100), 414, False),
        (request((b"x-big", b"a" * 1024)), 431, False),
        (request((b"expect", b"nope")), 417, True),
        (request((b"content-length", b"3"), (b"transfer-encoding", b"chunked")), 400, True),
        (request((b"content-length", b"1001")), 413, True),
        (h11.Request(method=b"GET", target=b"/", headers=[(b"host", b"a b")]), 400, True),
        (h11.Request(method=b"GET", target=b"/", headers=[(b"host", b"x:99999")]), 400, True),
    ],
)
def test_refusals(event: h11.Request, status: int, close: bool) -> None:
    refusal = check_request(event, LIMITS)
    assert isinstance(refusal, HTTPError)
    assert (refusal.status, refusal.close) == (status, close)


def test_expect_100_continue_is_accepted() -> None:
    assert isinstance(check_request(request((b"expect", b"100-Continue")), LIMITS), RequestFacts)


def test_a_declared_chunk_over_the_limit_is_refused_at_once() -> None:
    error = check_chunk(received=2, rest_of_chunk=999, max_body_size=1000, pending_line=None)
    assert isinstance(error, BodyTooLarge)
    ok = check_chunk(received=2, rest_of_chunk=998, max_body_size=1000, pending_line=None)
    assert ok is None


@pytest.mark.parametrize(
    ("pending", "refused"),
    [(b"5\nhello", True), (b"5;x=y\n", True), (b"\n", True), (b"5\r\nhe", False), (b"5", False),
     (b"", False)],
)  # fmt: skip
def test_a_chunk_line_ending_in_a_bare_lf_is_refused(pending: bytes, refused: bool) -> None:
    error = check_chunk(received=0, rest_of_chunk=0, max_body_size=1000, pending_line=pending)
    assert (error is not None) is refused
    if error is not None:
        assert (error.status, error.close) == (400, True)


def body(
    done: bool = False, waiting_for_continue: bool = False, remaining: int | None = 0
) -> UnreadBody:
    return UnreadBody(done, waiting_for_continue, remaining)


def close(**changes: object) -> bool:
    arguments: dict[str, object] = {
        "close_requested": False,
        "client_close": False,
        "draining": False,
        "requests_served": 1,
        "max_requests": None,
        "body": body(done=True),
        "max_drain_size": 100,
    }
    arguments.update(changes)
    return must_close(**arguments)  # type: ignore[arg-type]


def test_keep_alive_by_default() -> None:
    assert not close()


@pytest.mark.parametrize(
    "changes",
    [
        {"close_requested": True},
        {"client_close": True},
        {"draining": True},
        {"requests_served": 3, "max_requests": 3},
        {"body": body(waiting_for_continue=True, remaining=1)},
        {"body": body(remaining=101)},
        {"body": body(remaining=None)},
    ],
)
def test_reasons_to_close(changes: dict[str, object]) -> None:
    assert close(**changes)


def test_a_small_unread_body_is_drained_rather_than_closed() -> None:
    assert not close(body=body(remaining=100))
    assert not close(requests_served=2, max_requests=3)


def test_h11_errors_are_described_without_the_raw_bytes() -> None:
    error = h11.RemoteProtocolError("illegal header line: bytearray(b'secret\\x00')")
    assert describe_h11_error(error) == "illegal header line"


@pytest.mark.parametrize(
    ("data", "rest"),
    [(b"\r\nGET", b"GET"), (b"\n\r\n\nGET", b"GET"), (b"GET", b"GET"), (b"\r\n", b""),
     (b"\rGET", b"\rGET"), (b"\r", b"\r"), (b"", b"")],
)  # fmt: skip
def test_skip_empty_lines(data: bytes, rest: bytes) -> None:
    assert skip_empty_lines(data) == rest
