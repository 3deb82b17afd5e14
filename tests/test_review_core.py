"""A review of the HTTP/1.1 core against RFC 9110 and RFC 9112: one test per defect found.

Each test failed before its fix; the commit that fixed it says how the defect showed.
"""

from __future__ import annotations

import pytest
import trio

from trio_http import App, Request, Response, ServerConfig
from trio_http.http11.exchange import Exchange
from trio_http.protocol.rules import transfer_coding_error
from trio_http.testing import TestClient


def small_app() -> App:
    app = App()

    @app.get("/hello")
    async def hello(request: Request) -> Response:
        return Response(f"hello {request.http_version}")

    @app.post("/upload")
    async def upload(request: Request) -> Response:
        return Response(f"{len(await request.body())}")

    return app


CONFIG = ServerConfig(access_log=False)


async def exchange(raw: bytes, app: App | None = None) -> bytes:
    async with TestClient(app or small_app(), CONFIG) as client:
        with trio.fail_after(10):
            return await client.send_raw(raw)


# ---------------------------------------------------------------- HTTP version


async def test_a_higher_minor_version_is_served_as_http_1_1() -> None:
    """RFC 9110 §2.5: a recipient SHOULD process a message with a higher minor version of a
    major version it implements as if it were the highest minor version it conforms to
    (HTTP/1.2 is HTTP/1.1, kept alive); only another major version gets 505 (§15.6.6)."""
    get = b"GET /hello HTTP/1.2\r\nHost: x\r\n\r\n"
    answer = await exchange(get + get)
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 2, answer
    assert answer.endswith(b"hello 1.1")
    assert b"connection: close" not in answer.lower()
    other_major = await exchange(b"GET /hello HTTP/2.0\r\nHost: x\r\n\r\n")
    assert other_major.startswith(b"HTTP/1.1 505 ")


# ---------------------------------------------------------------- request-target forms


@pytest.mark.parametrize(
    "request_line",
    [b"GET hello HTTP/1.1", b"GET * HTTP/1.1", b"POST * HTTP/1.1", b"GET ?a=1 HTTP/1.1"],
)
async def test_a_target_of_no_valid_form_is_400(request_line: bytes) -> None:
    """RFC 9112 §3.2: a request-target is origin-form (``/...``), absolute-form, authority-form
    (CONNECT only, §3.2.3) or asterisk-form (OPTIONS only, §3.2.4); "recipients of an invalid
    request-line SHOULD respond with ... 400".  (It was routed: 404 for the path "hello".)"""
    answer = await exchange(request_line + b"\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert b"request target" in answer


@pytest.mark.parametrize(
    "request_line",
    [b"GET /hello HTTP/1.1", b"GET http://x/hello HTTP/1.1", b"GET HTTP://x:80/hello HTTP/1.1"],
)
async def test_origin_and_absolute_forms_are_served(request_line: bytes) -> None:
    answer = await exchange(request_line + b"\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer


@pytest.mark.parametrize(
    "request_line", [b"OPTIONS * HTTP/1.1", b"CONNECT x:443 HTTP/1.1", b"BREW urn:pot HTTP/1.1"]
)
async def test_the_forms_of_other_methods_reach_the_application(request_line: bytes) -> None:
    """OPTIONS * and CONNECT's authority-form are valid: the app answers (501, no such route)."""
    answer = await exchange(request_line + b"\r\nHost: x:443\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 501 "), answer


# ---------------------------------------------------------------- Transfer-Encoding


@pytest.mark.parametrize(
    "codings",
    [b"gzip", b"chunked, identity", b"chunked, gzip", b"identity"],
)
async def test_chunked_not_the_final_coding_is_400_and_close(codings: bytes) -> None:
    """RFC 9112 §6.3 (4): with Transfer-Encoding in a request and chunked not the final coding,
    the body length cannot be determined: the server MUST answer 400 and close.  (It was 501,
    h11's answer to any coding it does not know.)"""
    head = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + codings + b"\r\n\r\n"
    answer = await exchange(head + b"3\r\nabc\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert answer.count(b"HTTP/1.1 ") == 1 and b"connection: close" in answer


@pytest.mark.parametrize(
    "fields",
    [b"Transfer-Encoding: gzip, chunked", b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked"],
)
async def test_an_unknown_coding_before_chunked_is_501(fields: bytes) -> None:
    """RFC 9112 §6.1: a coding the server does not understand SHOULD get 501 (when chunked is
    final the framing is known, only the coding is not)."""
    head = b"POST /upload HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n\r\n"
    answer = await exchange(head + b"3\r\nabc\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 501 "), answer
    assert b"connection: close" in answer


async def test_chunked_not_final_in_a_pipelined_request_is_400() -> None:
    """The second head is parsed from h11's buffer (no read of its own): still 400, close."""
    get = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
    post = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n3\r\nabc\r\n"
    answer = await exchange(get + post + get)
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer
    assert answer.count(b"HTTP/1.1 400 ") == 1 and answer.count(b"HTTP/1.1 ") == 2


# ---------------------------------------------------------------- error messages


async def test_a_malformed_chunked_body_is_not_echoed_back() -> None:
    """A 400 for a bad chunked body quoted the client's bytes in the response text (h11's
    message), unlike every 400 for a bad head (rules.describe_h11_error: those bytes go to
    the log, not the client).  Reflected input in an error page is an injection vector."""
    head = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    answer = await exchange(head + b"3\r\nabc<script>0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert b"malformed chunk" in answer
    assert b"<script>" not in answer and b"bytearray" not in answer


# ---------------------------------------------------------------- routing


async def test_get_and_head_are_never_501() -> None:
    """RFC 9110 §9.1: all general-purpose servers MUST support GET and HEAD, and 501 is for a
    method the server does not recognize (§15.6.2).  An app with only POST routes (a webhook
    receiver) answered ``GET /hook`` with 501; it is 405 with ``Allow: POST`` (§15.5.6), and
    404 for a path it does not have."""
    app = App()

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        return Response("ok")

    async with TestClient(app, CONFIG) as client:
        for method in ("GET", "HEAD"):
            exists = await client.request(method, "/hook")
            assert (exists.status, exists.headers.get("allow")) == (405, "POST"), method
            missing = await client.request(method, "/nothing")
            assert missing.status == 404, method
        assert (await client.request("PATCH", "/hook")).status == 501


# ---------------------------------------------------------------- 204 and 304 have no content


def no_content_app() -> App:
    app = App()

    @app.get("/{status}")
    async def answer(request: Request) -> Response:
        return Response("null", int(request.path_params["status"]))

    return app


@pytest.mark.parametrize("status", [204, 304])
async def test_a_204_or_304_with_a_body_is_sent_without_it(status: int) -> None:
    """RFC 9110 §6.4.1, RFC 9112 §6.3 (1): a 204 or 304 ends with its head; it has no content.
    A handler that gave one a body (FastAPI before 0.79 sent ``null`` with every 204) made h11
    refuse the body after the head was framed, and the connection was aborted with nothing
    sent: the client saw an empty reply.  The body is dropped instead; the connection lives."""
    get = b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % status
    answer = await exchange(get + get, no_content_app())
    assert answer.count(b"HTTP/1.1 %d " % status) == 2, answer
    assert b"null" not in answer and b"content-length" not in answer.lower()


class _NoContentExchangeApp:
    """An ASGI-like application: a 204 started with a length, then a body, then the end."""

    def __init__(self, whole: bool) -> None:
        self.whole = whole

    async def serve_exchange(self, exchange: Exchange) -> None:
        fields = [(b"content-length", b"4")]
        if self.whole:
            await exchange.respond(204, fields, b"null", 4)
            return
        await exchange.start(204, fields, 4)
        await exchange.send(b"null")
        await exchange.end()


@pytest.mark.parametrize("whole", [True, False], ids=["respond", "start-send-end"])
async def test_an_exchange_204_with_a_body_is_sent_without_it(whole: bool) -> None:
    get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    async with TestClient(_NoContentExchangeApp(whole), CONFIG) as client:
        with trio.fail_after(10):
            answer = await client.send_raw(get + get)
    assert answer.count(b"HTTP/1.1 204 ") == 2, answer
    assert b"null" not in answer


# ---------------------------------------------------------------- HEAD through an Exchange


class _HeadAwareExchangeApp:
    """Like an ASGI app that answers HEAD with its head alone: no body, no Content-Length."""

    async def serve_exchange(self, exchange: Exchange) -> None:
        body = b"" if exchange.request.method == "HEAD" else b"x" * 100
        await exchange.respond(200, [(b"content-type", b"text/plain")], body)


async def test_an_exchange_head_without_a_length_does_not_claim_zero() -> None:
    """RFC 9110 §8.6: a server MUST NOT send Content-Length in a response to HEAD unless it is
    the length the GET would have had.  An application that answered HEAD with an empty body
    and no length got ``Content-Length: 0`` (the GET has 100 bytes); now no length is given."""
    async with TestClient(_HeadAwareExchangeApp(), CONFIG) as client:
        head = await client.head("/")
        get = await client.get("/")
    assert head.status == 200 and head.headers.get("content-length") != "0"
    assert get.headers.get("content-length") == "100" and get.body == b"x" * 100


# ---------------------------------------------------------------- absolute-form and Host


def host_app() -> App:
    app = App()

    @app.get("/host")
    async def host(request: Request) -> Response:
        return Response(f"{request.headers.get('host')} {request.path}")

    return app


@pytest.mark.parametrize(
    ("request_line", "host"),
    [
        (b"GET http://other.example:8080/host HTTP/1.1", b"other.example:8080"),
        (b"GET HTTPS://[::1]/host?q=1 HTTP/1.1", b"[::1]"),
        (b"GET http://other.example/host HTTP/1.0", b"other.example"),
    ],
)
async def test_an_absolute_form_target_overrides_host(request_line: bytes, host: bytes) -> None:
    """RFC 9112 §3.2.2: an origin server receiving an absolute-form target MUST ignore the Host
    field and use the target's host.  The handler saw the Host field ("x")."""
    answer = await exchange(request_line + b"\r\nHost: x\r\n\r\n", host_app())
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer
    assert answer.endswith(b"\r\n\r\n" + host + b" /host"), answer


@pytest.mark.parametrize("target", [b"http:///host", b"http://user@x/host", b"http://x:99999/"])
async def test_an_absolute_form_target_with_an_invalid_host_is_400(target: bytes) -> None:
    """RFC 9110 §4.2.1 (an http URI has a non-empty host), §4.2.4 (userinfo is an error),
    RFC 9112 §3.2 (an invalid host is 400, as for the Host field)."""
    answer = await exchange(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n", host_app())
    assert answer.startswith(b"HTTP/1.1 400 "), answer


async def test_an_empty_authority_of_another_scheme_is_routed() -> None:
    """Only http and https require a host (RFC 9110 §4.2.1, §4.2.2): file:///x is routed."""
    answer = await exchange(b"GET file:///host HTTP/1.1\r\nHost: x\r\n\r\n", host_app())
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"\r\n\r\n /host"), answer


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"transfer-encoding:gzip\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n", 501),
        (b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
        (b"Transfer-Encoding: gzip\r\n\r\nTransfer-Encoding: chunked\r\n", 400),  # in the body
        (b"X: y\r\n\r\n", 400),  # the field is not in what was read: the MUST wins
    ],
)
def test_transfer_coding_error(head: bytes, status: int) -> None:
    """The rule behind the Transfer-Encoding tests above."""
    error = transfer_coding_error(b"POST / HTTP/1.1\r\nHost: x\r\n" + head)
    assert (error.status, error.close) == (status, True)
