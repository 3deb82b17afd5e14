"""Hostile clients: fuzzed bytes, request smuggling, traversal, slowloris, connection floods.

1. Property tests (hypothesis): arbitrary bytes and near-valid requests, delivered whole, byte
   by byte or in random pieces (with optional pauses), to an :class:`HTTPConnection`.  The
   server must answer with well-formed HTTP/1.1 responses or close, log no internal error,
   never raise out of ``run()``, never hang, and return once the client half-closes.
2. Known attacks, each with the exact expected outcome: CL.TE, TE.CL, obfuscated
   Transfer-Encoding, bad chunk framing, bad Content-Length, header and request-line tricks,
   case-folded methods, absolute-form targets, file-server traversal.
3. A real-socket flood of stalled and idle connections on 127.0.0.1.
4. Slowloris against the header timeout, on trio's ``MockClock``.

In-memory tests run on the autojump ``MockClock`` (a 10 s timeout costs no real time), except
the file-server tests: the file server reads in worker threads, which an autojump clock does
not wait for.  Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
import resource
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h11
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stream_pairs import KINDS, stream_pair

from trio_http import (
    App,
    BaseResponse,
    Request,
    Response,
    Server,
    ServerConfig,
    StreamingResponse,
)
from trio_http.builtin import build_app
from trio_http.headers import Headers
from trio_http.http11 import HTTPConnection
from trio_http.listeners import Address
from trio_http.request import Handler

Client = trio.abc.HalfCloseableStream

# ---------------------------------------------------------------- the app under attack


@dataclass
class Recorder:
    """Every request that reached the app (method, target), in order."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    def targets(self) -> list[str]:
        return [target for _, target in self.calls]

    def hit(self, fragment: str) -> bool:
        return any(fragment in target for target in self.targets())


def make_app(recorder: Recorder) -> Handler:
    app = App()

    @app.get("/")
    async def root(request: Request) -> Response:
        return Response()

    @app.get("/echo/{text}")
    async def echo(request: Request) -> Response:
        return Response(request.path_params["text"], content_type="text/plain", compress=True)

    @app.get("/header/{name}")
    async def header(request: Request) -> Response:
        return Response(request.headers.get(request.path_params["name"]) or "<missing>")

    @app.post("/upload")
    async def upload(request: Request) -> Response:
        body = await request.body()
        recorder.bodies.append(body)
        return Response(f"{len(body)} bytes", content_type="text/plain")

    @app.post("/ignore")
    async def ignore(request: Request) -> Response:
        return Response("ignored")

    @app.get("/stream")
    async def stream(request: Request) -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            yield b"one,"
            yield b"two"

        return StreamingResponse(parts(), content_type="text/plain")

    async def smuggled(request: Request) -> Response:
        return Response("SMUGGLED")

    app.add_route("/smuggled", smuggled, ["GET", "POST"])

    async def recording(request: Request) -> BaseResponse:
        recorder.calls.append((request.method, request.target))
        return await app(request)

    return recording


# ---------------------------------------------------------------- parsing what the server sent

#: RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF.  We want a
#: reason phrase, always.
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
STATUS_LINE = re.compile(rb"HTTP/1\.1 [1-5][0-9][0-9] [\x21-\x7e][\x20-\x7e]*\r\n")


@dataclass
class Parsed:
    status: int
    reason: bytes
    headers: Headers
    body: bytes
    informational: list[int]

    @property
    def closes(self) -> bool:
        return "close" in [v.lower() for v in self.headers.get_comma_list("connection")]


class Malformed(AssertionError):
    pass


def parse_one(data: bytes, method: bytes) -> tuple[Parsed, bytes]:
    """Parse one response (after any 1xx) to a *method* request; return it and what follows."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    eof_fed = False
    head: h11.Response | None = None
    informational: list[int] = []
    body = bytearray()
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise Malformed(f"unparseable response ({exc}): {data[:300]!r}") from exc
        if event is h11.NEED_DATA:
            if eof_fed:
                raise Malformed(f"truncated response: {data[:300]!r}")
            conn.receive_data(b"")
            eof_fed = True
        elif isinstance(event, h11.InformationalResponse):
            informational.append(event.status_code)
        elif isinstance(event, h11.Response):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            break
        else:
            raise Malformed(f"unexpected {event!r} in {data[:300]!r}")
    assert head is not None
    if not head.reason:
        raise Malformed(f"response without a reason phrase: {data[:120]!r}")
    rest = bytes(conn.trailing_data[0])
    parsed = Parsed(
        head.status_code,
        head.reason,
        Headers.from_raw(list(head.headers)),
        bytes(body),
        informational,
    )
    return parsed, rest


def parse_responses(data: bytes, methods: list[str]) -> list[Parsed]:
    """Split everything the server sent into well-formed responses, strictly.

    A response's framing depends on the request's method (a HEAD response has no body).
    ``methods[i]`` is our best guess for the i-th response: the method of the i-th request a
    handler saw.  A request refused before its handler ran does not appear there, so the other
    framing is tried too (with backtracking) rather than trusting the guess.
    """

    def parse_from(rest: bytes, index: int) -> list[Parsed]:
        if not rest or rest == CONTINUE:
            # (A lone 100 Continue at the end: the client was invited to send its body, then
            # went away, so there is no final response.)
            return []
        if not STATUS_LINE.match(rest):
            raise Malformed(f"bad status line: {rest[:120]!r}")
        guess = b"HEAD" if index < len(methods) and methods[index] == "HEAD" else b"GET"
        error = Malformed("unreachable")
        for method in (guess, b"GET" if guess == b"HEAD" else b"HEAD"):
            try:
                parsed, after = parse_one(rest, method)
                if parsed.closes and after:
                    raise Malformed(f"data after 'Connection: close': {after[:120]!r}")
                return [parsed, *parse_from(after, index + 1)]
            except Malformed as exc:
                error = exc
        raise error

    return parse_from(data, 0)


def case_id(value: object) -> str | None:
    """Readable test ids for byte strings full of CRs, LFs and control characters."""
    if isinstance(value, list):
        return "+".join(case_id(item) or "?" for item in value)
    if not isinstance(value, bytes):
        return None
    for raw, name in ((b"\r\n", b"<CRLF>"), (b"\n", b"<LF>"), (b"\r", b"<CR>"), (b"\t", b"<TAB>")):
        value = value.replace(raw, name)
    value = re.sub(rb"[^\x21-\x7e]", lambda m: b"<%02X>" % m.group()[0], value)
    text = value.decode("ascii")
    return text if len(text) <= 60 else text[:50] + f"...({len(text)})"


# ---------------------------------------------------------------- in-memory conversations

#: No server-side timeouts: a server that waits when it should close shows up as our own
#: (virtual) timeout firing, not as a 408 that hides the problem.
PATIENT = ServerConfig(
    access_log=False,
    keep_alive_timeout=None,
    header_timeout=None,
    body_timeout=None,
    write_timeout=None,
)


#: The kind of stream pair the current test talks over (see the transport_kind fixture).
_kind = "memory"


@pytest.fixture(autouse=True, params=KINDS)
def transport_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test here runs twice: over an in-memory stream and over a real socket pair, so
    the fuzzing reaches the production transport too."""
    global _kind
    _kind = request.param
    yield _kind
    _kind = "memory"


@dataclass
class Conversation:
    data: bytes
    closed_by_server: bool
    run_returned: bool
    recorder: Recorder

    def responses(self) -> list[Parsed]:
        return parse_responses(self.data, [method for method, _ in self.recorder.calls])


async def converse(
    data: bytes,
    *,
    handler: Handler | None = None,
    config: ServerConfig = PATIENT,
    patience: float = 30,
) -> Conversation:
    """Send *data* on a fresh connection and read until the server closes (or *patience* s).

    The client keeps its side open, so an EOF proves the server decided to close.  Then the
    client closes and the server's ``run()`` must return.
    """
    recorder = Recorder()
    client, server = await stream_pair(_kind)
    connection = HTTPConnection(
        server, handler or make_app(recorder), config, client=("127.0.0.1", 1234)
    )
    returned = trio.Event()

    async def serve() -> None:
        await connection.run()
        returned.set()

    received = bytearray()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await client.send_all(data)
        closed = False
        with trio.move_on_after(patience):
            while chunk := await client.receive_some():
                received += chunk
            closed = True
        await client.aclose()
        with trio.move_on_after(patience):
            await returned.wait()
        nursery.cancel_scope.cancel()
    return Conversation(bytes(received), closed, returned.is_set(), recorder)


def post(target: bytes, headers: list[bytes], body: bytes) -> bytes:
    head = b"POST " + target + b" HTTP/1.1\r\nHost: x\r\n" + b"".join(h + b"\r\n" for h in headers)
    return head + b"\r\n" + body


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


def assert_refused_and_closed(
    conversation: Conversation, statuses: tuple[int, ...] = (400,)
) -> Parsed:
    """Exactly one response, an error from *statuses*, ``Connection: close``, then EOF."""
    responses = conversation.responses()
    assert len(responses) == 1, [r.status for r in responses]
    (response,) = responses
    assert response.status in statuses, (response.status, response.body)
    assert response.closes
    assert conversation.closed_by_server, "the server kept the connection open"
    assert conversation.run_returned
    assert not conversation.recorder.hit("/smuggled"), conversation.recorder.calls
    return response


# ---------------------------------------------------------------- 1. property tests

FUZZ_CONFIGS = [
    ServerConfig(
        access_log=False,
        max_header_size=2048,
        max_target_length=128,
        max_body_size=64,
        max_drain_size=16,
        keep_alive_timeout=5,
        header_timeout=10,
        body_timeout=7,
        write_timeout=10,
        linger_timeout=2,
    ),
    ServerConfig(access_log=False),
]


class _ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def capture_errors() -> Iterator[_ErrorLog]:
    handler = _ErrorLog()
    logger = logging.getLogger("trio_http")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@dataclass
class FuzzResult:
    received: bytes
    recorder: Recorder
    half_closed_at: float
    returned_at: float


async def fuzz_conversation(
    pieces: list[bytes], pauses: list[float], config: ServerConfig
) -> FuzzResult:
    """Deliver *pieces* (the server sees each on its own), pausing after each, then half-close."""
    recorder = Recorder()
    client, server = await stream_pair(_kind)
    connection = HTTPConnection(server, make_app(recorder), config, client=("127.0.0.1", 1))
    received = bytearray()
    times: dict[str, float] = {}

    async def serve() -> None:
        await connection.run()
        times["returned"] = trio.current_time()

    async def read() -> None:
        while chunk := await client.receive_some():
            received.extend(chunk)

    # Virtual seconds: far beyond every server timeout, reached instantly if anything hangs.
    with trio.fail_after(100_000):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            nursery.start_soon(read)
            for piece, pause in zip(pieces, pauses, strict=True):
                try:
                    await client.send_all(piece)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break  # the server has closed: fine
                await trio.testing.wait_all_tasks_blocked()
                if pause:
                    await trio.sleep(pause)
            times["half_closed"] = trio.current_time()
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await client.send_eof()
    await client.aclose()
    return FuzzResult(bytes(received), recorder, times["half_closed"], times["returned"])


def check_fuzz_run(pieces: list[bytes], pauses: list[float], config: ServerConfig) -> None:
    with capture_errors() as errors:
        # An exception out of connection.run() propagates out of trio.run and fails the test.
        result = trio.run(
            fuzz_conversation,
            pieces,
            pauses,
            config,
            clock=trio.testing.MockClock(autojump_threshold=0),
        )
    assert not errors.records, [record.getMessage() for record in errors.records]
    # After the client half-closes, nothing is left to wait for but the lingering close.
    assert result.returned_at - result.half_closed_at <= config.linger_timeout
    methods = [method for method, _ in result.recorder.calls]
    responses = parse_responses(result.received, methods)
    calls = len(result.recorder.calls)
    # Every handler call is answered, except perhaps the last, cut short by the client leaving
    # mid-body.  (Requests refused before a handler runs add responses of their own.)
    assert len(responses) >= calls - 1, (calls, [r.status for r in responses])
    for response in responses:
        assert response.informational in ([], [100])
        assert response.body != b"SMUGGLED" or b"/smuggled" in b"".join(pieces)


# Near-valid requests: a well-formed message with, usually, one or two of its parts (the
# "slots" below) replaced by a hostile variant.  Hostile choices are per slot, not per byte,
# so most examples are close enough to valid to reach the body parser and the handlers.

# fmt: off
VALID: dict[str, list[bytes]] = {
    "eol": [b"\r\n"],
    "method": [b"GET", b"HEAD", b"POST"],
    "target": [b"/", b"/echo/x", b"/upload", b"/ignore", b"/stream", b"/header/connection"],
    "version": [b"HTTP/1.1"] * 5 + [b"HTTP/1.0"],
    "sp": [b" "],
    "host": [b"Host: x"],
    "content_length": [b"Content-Length: %d"],
    "transfer_encoding": [b"Transfer-Encoding: chunked"],
    "extra": [b"Connection: keep-alive", b"Accept-Encoding: gzip", b"X-Junk: 1",
              b"Expect: 100-continue", b"User-Agent: fuzz/1.0", b"Connection: close"],
    "chunk_ext": [b""],
    "trailer": [b""],
}
HOSTILE: dict[str, list[bytes]] = {
    "eol": [b"\n", b"\r", b"\n\r", b"\r\r\n"],
    "method": [b"PUT", b"DELETE", b"OPTIONS", b"CONNECT", b"get", b"head", b"G ET", b"GET\x00",
               b""],
    "target": [b"*", b"http://x/", b"//", b"/echo/%ff", b"/echo/%", b"/echo/" + b"a" * 200,
               b"/\x00", b"/a b", b"/\x7f", b"x:443", b"", b"/smuggled"],
    "version": [b"HTTP/2.0", b"HTTP/0.9", b"http/1.1", b"HTTP/1.10", b"HTTP/1.1 ", b"HTTP/1",
                b""],
    "sp": [b"  ", b"\t", b""],
    "host": [b"", b"", b"Host: x\r\nHost: y", b"Host : x", b"Host: x y"],
    "content_length": [
        b"content-length:%d", b"Content-Length: +%d", b"Content-Length: -%d",
        b"Content-Length: 0x%d", b"Content-Length: %d, %d",
        b"Content-Length: %d\r\nContent-Length: %d",
        b"Content-Length: %d\r\nContent-Length: 7", b"Content-Length : %d", b"Content-Length: 1%d",
        b"Content-Length: 99999999999999999999", b"Content-Length: 999999999999999999999",
    ],
    "transfer_encoding": [
        b"Transfer-Encoding: xchunked", b"Transfer-Encoding:  chunked",
        b"Transfer-Encoding: CHUNKED",
        b"Transfer-Encoding: chunked, identity", b"Transfer-Encoding:\tchunked",
        b"Transfer-Encoding : chunked", b" Transfer-Encoding: chunked",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", b"Transfer-Encoding: gzip",
        b"X: y\nTransfer-Encoding: chunked", b"Transfer-Encoding\n: chunked",
    ],
    "extra": [b"Expect: nope", b"Upgrade: websocket", b"Connection: upgrade", b"X-Folded: a\r\n b",
              b"NoColon", b": novalue", b"X-Nul: a\x00b", b"X-Bad : x", b"X-High: \xff\xfe",
              b"X-Long: " + b"a" * 3000, b"X-Ctl: \x01"],
    "chunk_size": [b"000%x", b"%x0", b"0" * 21 + b"%x", b"f" * 20, b"-%x", b"0x%x", b" %x", b"%x "],
    "chunk_ext": [b";a=b", b";\x00", b" ;x", b";a\nb"],
    "trailer": [b"Trailer: x\r\n", b" bad trailer\r\n", b"X\x00: y\r\n", b"\n"],
}
FRAMINGS = ["none", "length", "chunked"]
HOSTILE_FRAMINGS = ["both", "smuggle", "length-short", "length-long"]
# fmt: on


@st.composite
def request_messages(draw: st.DrawFn) -> bytes:
    """One request whose head and body agree on the framing, except in its hostile slots."""
    hostile = draw(st.sets(st.sampled_from([*HOSTILE, "framing"]), max_size=2))

    def pick(slot: str) -> bytes:
        return draw(st.sampled_from(HOSTILE[slot] if slot in hostile else VALID[slot]))

    eol = pick("eol")
    request_line = pick("method") + pick("sp") + pick("target") + b" " + pick("version")
    pieces = draw(st.lists(st.binary(min_size=1, max_size=10), max_size=3))
    data = b"".join(pieces)
    lines = [pick("host")]
    framing = draw(st.sampled_from(HOSTILE_FRAMINGS if "framing" in hostile else FRAMINGS))
    body = b""
    if framing.startswith("length") or framing == "both":
        declared = len(data) + {"length-short": -1, "length-long": 3}.get(framing, 0)
        lines.append(pick("content_length").replace(b"%d", b"%d" % max(declared, 0)))
        body = data
    if framing in ("chunked", "both", "smuggle"):
        lines.append(pick("transfer_encoding"))
        chunks = bytearray()
        for piece in pieces:
            size = (
                draw(st.sampled_from(HOSTILE["chunk_size"])) if "chunk_size" in hostile else b"%x"
            )
            chunks += (size.replace(b"%x", b"%x" % len(piece))) + pick("chunk_ext") + eol
            chunks += piece + eol
        body = bytes(chunks) + b"0" + eol + pick("trailer") + eol
    if framing == "smuggle":
        # The chunked body hides a request; a Content-Length covers all of it (CL.TE).
        body += SMUGGLED
        lines.append(b"Content-Length: %d" % len(body))
    lines += [pick("extra") for _ in range(draw(st.integers(0, 2)))]
    lines = draw(st.permutations(lines))
    head = request_line + eol + b"".join(line + eol for line in lines if line) + eol
    return head + body


@st.composite
def mutated(draw: st.DrawFn, messages: st.SearchStrategy[bytes]) -> bytes:
    """A few messages back to back, with a few bytes inserted, deleted or replaced."""
    data = bytearray(b"".join(draw(st.lists(messages, min_size=1, max_size=3))))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3]))):
        position = draw(st.integers(0, len(data)))
        operation = draw(st.sampled_from(["insert", "delete", "replace", "truncate"]))
        byte = draw(st.sampled_from([b"\r", b"\n", b" ", b"\t", b"\x00", b":", b"0", b"\xff"]))
        if operation == "insert":
            data[position:position] = byte
        elif operation == "delete":
            del data[position : position + 1]
        elif operation == "replace":
            data[position : position + 1] = byte
        else:
            del data[position:]
    return bytes(data)


@st.composite
def deliveries(
    draw: st.DrawFn, payloads: st.SearchStrategy[bytes]
) -> tuple[list[bytes], list[float], ServerConfig]:
    """Split a payload whole, byte by byte or at random points; maybe pause between pieces."""
    data = draw(payloads)
    mode = draw(st.sampled_from(["whole", "bytes", "splits"]))
    if mode == "whole" or len(data) < 2:
        pieces = [data]
    elif mode == "bytes":
        pieces = [data[i : i + 1] for i in range(len(data))]
    else:
        cuts = sorted(draw(st.sets(st.integers(1, len(data) - 1), max_size=8)))
        bounds = [0, *cuts, len(data)]
        pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
    if draw(st.integers(0, 3)) == 0:
        pause = st.sampled_from([0.0, 0.0, 0.0, 1.0, 4.0, 6.0, 11.0])
        pauses = draw(st.lists(pause, min_size=len(pieces), max_size=len(pieces)))
    else:
        pauses = [0.0] * len(pieces)
    return pieces, pauses, draw(st.sampled_from(FUZZ_CONFIGS))


FUZZ_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ_SETTINGS
@given(deliveries(st.binary(max_size=400)))
def test_arbitrary_bytes_never_break_the_connection(
    delivery: tuple[list[bytes], list[float], ServerConfig],
) -> None:
    check_fuzz_run(*delivery)


@FUZZ_SETTINGS
@given(deliveries(mutated(request_messages())))
def test_near_valid_requests_never_break_the_connection(
    delivery: tuple[list[bytes], list[float], ServerConfig],
) -> None:
    check_fuzz_run(*delivery)


@FUZZ_SETTINGS
@given(deliveries(st.lists(request_messages(), min_size=1, max_size=4).map(b"".join)))
def test_pipelined_near_valid_requests_never_break_the_connection(
    delivery: tuple[list[bytes], list[float], ServerConfig],
) -> None:
    check_fuzz_run(*delivery)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n",
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc",
        b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        b"HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /stream HTTP/1.0\r\n\r\n",
    ],
    ids=case_id,
)
@pytest.mark.parametrize("mode", ["whole", "bytes"])
def test_known_inputs_through_the_fuzz_harness(data: bytes, mode: str) -> None:
    """The harness itself on inputs with known outcomes (and a hypothesis-free smoke test)."""
    pieces = [data] if mode == "whole" else [data[i : i + 1] for i in range(len(data))] or [b""]
    check_fuzz_run(pieces, [0.0] * len(pieces), FUZZ_CONFIGS[0])


# ---------------------------------------------------------------- 2. known attacks


async def test_cl_te_is_refused_and_closed(autojump_clock: trio.testing.MockClock) -> None:
    # A front end using Content-Length forwards everything; one using chunked stops at "0".
    body = b"0\r\n\r\n" + SMUGGLED
    conversation = await converse(
        post(b"/upload", [b"Content-Length: %d" % len(body), b"Transfer-Encoding: chunked"], body)
    )
    assert_refused_and_closed(conversation)
    assert conversation.recorder.calls == []


async def test_te_cl_is_refused_and_closed(autojump_clock: trio.testing.MockClock) -> None:
    body = b"%x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n"
    conversation = await converse(
        post(b"/upload", [b"Transfer-Encoding: chunked", b"Content-Length: 4"], body)
    )
    assert_refused_and_closed(conversation)
    assert conversation.recorder.calls == []


@pytest.mark.parametrize(
    ("te_lines", "status"),
    [
        ([b"Transfer-Encoding: xchunked"], 400),  # chunked not last: RFC 9112 §6.3 (4)
        ([b"Transfer-Encoding:  chunked"], 400),  # extra OWS: still chunked, so CL+TE
        ([b"Transfer-Encoding: chunked, identity"], 400),
        ([b"Transfer-Encoding: identity, chunked"], 501),
        ([b"Transfer-Encoding:\tchunked"], 400),
        ([b"Transfer-Encoding: chunked "], 400),
        ([b"Transfer-Encoding: CHUNKED"], 400),
        ([b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"], 501),
        ([b"Transfer-Encoding: chunked", b"Transfer-Encoding: identity"], 400),
        ([b"Transfer-Encoding: identity", b"Transfer-Encoding: chunked"], 501),
        ([b"Transfer-Encoding : chunked"], 400),  # whitespace before the colon
        ([b"Transfer-Encoding\t: chunked"], 400),
        ([b"Transfer-Encoding\n: chunked"], 400),
        ([b"Transfer_Encoding: chunked"], None),  # just another header: CL frames the body
        ([b"X-Pad: x\nTransfer-Encoding: chunked"], 400),  # bare LF: either way, no smuggling
        ([b"Transfer-Encoding: \x0bchunked"], 400),
    ],
    ids=case_id,
)
async def test_obfuscated_transfer_encoding_with_content_length(
    autojump_clock: trio.testing.MockClock, te_lines: list[bytes], status: int | None
) -> None:
    """Every CL/TE disagreement is refused; nothing after it is read as a request."""
    body = b"0\r\n\r\n" + SMUGGLED
    conversation = await converse(
        post(b"/upload", [b"Content-Length: %d" % len(body), *te_lines], body) + SMUGGLED
    )
    if status is None:
        # The header is not Transfer-Encoding: the body is Content-Length bytes, the request is
        # served, and the request after it is the smuggled one the client really sent.
        assert conversation.recorder.bodies == [body]
        assert conversation.recorder.targets() == ["/upload", "/smuggled"]
        return
    assert_refused_and_closed(conversation, (status,))
    assert conversation.recorder.calls == []


@pytest.mark.parametrize(
    ("te_line", "status"),
    [
        # Chunked not the final coding: 400 (RFC 9112 §6.3 (4)); else a coding we do not
        # know, 501 (§6.1).
        (b"Transfer-Encoding: xchunked", 400),
        (b"Transfer-Encoding: chunked, identity", 400),
        (b"Transfer-Encoding: gzip, chunked", 501),
        (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", 501),
    ],
    ids=case_id,
)
async def test_unsupported_transfer_encoding_alone_is_refused_and_closed(
    autojump_clock: trio.testing.MockClock, te_line: bytes, status: int
) -> None:
    conversation = await converse(post(b"/upload", [te_line], b"0\r\n\r\n" + SMUGGLED))
    assert_refused_and_closed(conversation, (status,))
    assert conversation.recorder.calls == []


async def test_obs_folded_transfer_encoding_is_not_chunked(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A folded ``Transfer-Encoding`` line belongs to the previous field (RFC 9112 §5.2)."""
    body = b"0\r\n\r\n" + SMUGGLED
    request = (
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nX-Pad: a\r\n"
        b" Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" % len(body)
    )
    conversation = await converse(request + body + SMUGGLED)
    responses = conversation.responses()
    assert len(responses) == 1
    if responses[0].status == 200:  # unfolded: CL frames the body, all of it
        assert conversation.recorder.bodies == [body]
    else:  # or refused
        assert responses[0].status == 400
    assert conversation.closed_by_server
    assert not conversation.recorder.hit("/smuggled")


async def test_folded_line_first_in_the_head_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    request = (
        b"POST /upload HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: x\r\n"
        b"Content-Length: 5\r\n\r\n0\r\n\r\n"
    )
    assert_refused_and_closed(await converse(request + SMUGGLED))


async def test_obs_fold_is_rejected_or_replaced_by_space(
    autojump_clock: trio.testing.MockClock,
) -> None:
    conversation = await converse(
        b"GET /header/x-folded HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n  \tb\r\n"
        b"Connection: close\r\n\r\n"
    )
    (response,) = conversation.responses()
    assert (response.status, response.body) in ((200, b"a b"), (400, response.body))
    assert conversation.closed_by_server


@pytest.mark.parametrize(
    "chunks",
    [
        b"5\nhello\r\n0\r\n\r\n",  # bare LF after the chunk size
        b"5\r\nhello\n0\r\n\r\n",  # bare LF after the chunk data
        b"5\r\nhello\r\n0\n\n",  # bare LF in the last chunk
        b"5\r\nhello0\r\n\r\n",  # chunk data without CRLF
        b"5\r\nhelloXX\r\n0\r\n\r\n",  # chunk longer than its size
        b"5\r\nhel\r\n0\r\n\r\n",  # shorter: the CRLF is data, then the footer is wrong
        b"000000000000000000005\r\nhello\r\n0\r\n\r\n",  # 21 hex digits
        b"10000000000000000000000\r\nhello\r\n0\r\n\r\n",  # 2**88
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"\r\n5\r\nhello\r\n0\r\n\r\n",
    ],
    ids=case_id,
)
async def test_malformed_chunked_body_is_400_and_closed(
    autojump_clock: trio.testing.MockClock, chunks: bytes
) -> None:
    conversation = await converse(
        post(b"/upload", [b"Transfer-Encoding: chunked"], chunks) + b"\r\n\r\n" + SMUGGLED
    )
    assert_refused_and_closed(conversation)
    assert conversation.recorder.bodies == []


async def test_bare_lf_ending_the_trailer_section_cannot_smuggle(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """``0\\r\\n\\n``: a lone LF may be taken as a line end (RFC 9112 §2.2) or refused; if it is
    taken, what follows is the client's own next request, parsed from the right place."""
    chunks = b"5\r\nhello\r\n0\r\n\n"
    conversation = await converse(
        post(b"/upload", [b"Transfer-Encoding: chunked"], chunks)
        + b"GET /echo/next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    responses = conversation.responses()
    if responses[0].status == 400:
        assert_refused_and_closed(conversation)
    else:
        assert [(r.status, r.body) for r in responses] == [(200, b"5 bytes"), (200, b"next")]
        assert conversation.recorder.bodies == [b"hello"]
    assert conversation.closed_by_server


async def test_huge_chunk_size_within_20_hex_digits_hits_the_body_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = ServerConfig(
        access_log=False,
        max_body_size=10,
        keep_alive_timeout=None,
        header_timeout=None,
        body_timeout=None,
    )
    conversation = await converse(
        post(
            b"/upload", [b"Transfer-Encoding: chunked"], b"f" * 20 + b"\r\n" + b"a" * 20 + SMUGGLED
        ),
        config=config,
    )
    assert_refused_and_closed(conversation, (413,))


async def test_chunk_extension_cannot_hide_a_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Extensions are skipped to the end of the line; a bare LF does not end it."""
    chunks = b"5;ext=\nGET /smuggled HTTP/1.1\r\nhello\r\n0\r\n\r\n"
    conversation = await converse(post(b"/upload", [b"Transfer-Encoding: chunked"], chunks))
    assert_refused_and_closed(conversation)


@pytest.mark.parametrize(
    "content_length",
    [
        b"Content-Length: +5",
        b"Content-Length: 0x5",
        b"Content-Length: -5",
        b"Content-Length: 5.0",
        b"Content-Length: 5e0",
        b"Content-Length: 5 5",
        b"Content-Length: 5, 6",
        b"Content-Length: 5\r\nContent-Length: 6",
        b"Content-Length: 6\r\nContent-Length: 5",
        b"Content-Length: 5\r\nContent-Length: ",
        b"Content-Length: ",
        b"Content-Length: \xd9\xa5",  # ARABIC-INDIC DIGIT FIVE, int() would accept it
        b"Content-Length: \x0b5",
        b"Content-Length: 5\x00",
        b"Content-Length: 123456789012345678901",  # 21 digits
    ],
    ids=case_id,
)
async def test_bad_content_length_is_400_and_closed(
    autojump_clock: trio.testing.MockClock, content_length: bytes
) -> None:
    conversation = await converse(post(b"/upload", [content_length], b"hello" + SMUGGLED))
    assert_refused_and_closed(conversation)
    assert conversation.recorder.calls == []


async def test_huge_content_length_is_413_before_reading(
    autojump_clock: trio.testing.MockClock,
) -> None:
    conversation = await converse(
        post(b"/upload", [b"Content-Length: 99999999999999999999"], b"hello" + SMUGGLED)
    )
    assert_refused_and_closed(conversation, (413,))


@pytest.mark.parametrize(
    "content_length",
    [b"Content-Length: 5, 5", b"Content-Length: 5\r\nContent-Length: 5", b"Content-Length: 005"],
    ids=case_id,
)
async def test_equivalent_content_lengths_are_accepted(
    autojump_clock: trio.testing.MockClock, content_length: bytes
) -> None:
    """RFC 9110 §8.6: identical values may be treated as one.  The body is exactly 5 bytes."""
    conversation = await converse(
        post(b"/upload", [content_length], b"hello")
        + b"GET /echo/next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert [(r.status, r.body) for r in conversation.responses()] == [
        (200, b"5 bytes"),
        (200, b"next"),
    ]
    assert conversation.recorder.bodies == [b"hello"]
    assert conversation.closed_by_server


async def test_body_on_get_is_drained_not_executed(autojump_clock: trio.testing.MockClock) -> None:
    """A GET with a body whose content is a request: the body is read and dropped."""
    conversation = await converse(
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED)
        + SMUGGLED
        + b"GET /echo/second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert [(r.status, r.body) for r in conversation.responses()] == [(200, b""), (200, b"second")]
    assert conversation.recorder.targets() == ["/", "/echo/second"]
    assert conversation.closed_by_server


async def test_chunked_body_on_get_is_not_executed(autojump_clock: trio.testing.MockClock) -> None:
    chunks = b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)
    conversation = await converse(
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunks
        + b"GET /echo/second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    responses = conversation.responses()
    # Drained and the connection kept, or closed after the first response: either way the body
    # is never a request.
    assert [r.status for r in responses] in ([200], [200, 200])
    assert conversation.recorder.targets() == ["/", "/echo/second"][: len(responses)]
    assert conversation.closed_by_server


LAST = b"GET /echo/last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize(
    "refused",
    [
        b"GET /echo/"
        + b"a" * 9000
        + b" HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(SMUGGLED), SMUGGLED),
        b"GET /echo/"
        + b"a" * 9000
        + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED),
        b"POST /upload HTTP/1.1\r\nHost: x\r\nX-Big: "
        + b"b" * 70_000
        + b"\r\nContent-Length: %d\r\n\r\n%s" % (len(SMUGGLED), SMUGGLED),
        b"POST /upload HTTP/1.1\r\nHost: x\r\nExpect: nope\r\nContent-Length: %d\r\n\r\n%s"
        % (len(SMUGGLED), SMUGGLED),
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000000\r\n\r\n" + SMUGGLED,
    ],
    ids=["414-length", "414-chunked", "431", "417", "413"],
)
async def test_refused_request_body_is_not_parsed_as_a_request(
    autojump_clock: trio.testing.MockClock, refused: bytes
) -> None:
    """A request refused before its handler (414, 431, 417, 413) still has a body on the wire:
    it is skipped by its framing, or the connection closes; it is never read as a request.
    A previous request on the connection (with a body of its own) must not confuse that."""
    conversation = await converse(
        post(b"/upload", [b"Content-Length: 5"], b"hello") + refused + LAST
    )
    responses = conversation.responses()
    statuses = [r.status for r in responses]
    assert statuses[0] == 200 and statuses[1] in (413, 414, 417, 431), statuses
    assert statuses[2:] in ([], [200]), statuses  # the body skipped, or the connection closed
    assert not conversation.recorder.hit("/smuggled")
    assert conversation.recorder.targets() == ["/upload", "/echo/last"][: 1 + len(statuses[2:])]
    assert conversation.closed_by_server


async def test_http10_with_transfer_encoding_closes_after_the_message(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """RFC 9112 §6.1: treat the framing as faulty and close after processing the message."""
    conversation = await converse(
        b"POST /upload HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
        b"0\r\n\r\n" + SMUGGLED
    )
    assert_refused_and_closed(conversation)
    conversation = await converse(
        b"POST /upload HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        + SMUGGLED
    )
    (response,) = conversation.responses()
    assert response.status in (200, 400)
    assert response.closes
    assert conversation.closed_by_server
    assert not conversation.recorder.hit("/smuggled")


@pytest.mark.parametrize(
    "header_line",
    [
        b"X-Bad : value",  # space before colon
        b"X-Bad\t: value",
        b"X-Bad: a\x00b",  # NUL in the value
        b"X-Bad: \x00",
        b"X\x00Bad: value",
        b"X-Bad: a\rb",  # bare CR inside a value
        b"X Bad: value",
        b": value",
        b"X-Bad",
        b"(X-Bad): value",
    ],
    ids=case_id,
)
async def test_malformed_header_line_is_400_and_closed(
    autojump_clock: trio.testing.MockClock, header_line: bytes
) -> None:
    request = b"GET / HTTP/1.1\r\nHost: x\r\n" + header_line + b"\r\n\r\n"
    assert_refused_and_closed(await converse(request + SMUGGLED))


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET  / HTTP/1.1",
        b"GET /  HTTP/1.1",
        b"GET\t/ HTTP/1.1",
        b"GET / HTTP/1.1 ",
        b"GET /a\x00b HTTP/1.1",
        b"GET /\xff HTTP/1.1",
        b"GET / http/1.1",
        b"GET / HTTP/1.10",
        b"GET /",
        b" GET / HTTP/1.1",
        b"GET / HTTP/1.1\rX",
    ],
    ids=case_id,
)
async def test_malformed_request_line_is_refused_and_closed(
    autojump_clock: trio.testing.MockClock, request_line: bytes
) -> None:
    request = request_line + b"\r\nHost: x\r\n\r\n"
    assert_refused_and_closed(await converse(request + SMUGGLED), (400, 505))


@pytest.mark.parametrize(
    ("target", "body"),
    [
        (b"http://x/echo/abs", b"abs"),
        (b"http://other.example:8080/echo/abs?q=1", b"abs"),
        (b"HTTP://x/echo/abs", b"abs"),
        (b"http://x", b""),
        (b"http://x/", b""),
        (b"http://x?q=/echo/no", b""),
    ],
    ids=case_id,
)
async def test_absolute_form_target_is_served_by_its_path(
    autojump_clock: trio.testing.MockClock, target: bytes, body: bytes
) -> None:
    """RFC 9112 §3.2.2: a server MUST accept absolute-form.  This server serves it by its path
    (a 400 would be defensible; a 404 for routing "http://x/..." as a path is not)."""
    conversation = await converse(
        b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    (response,) = conversation.responses()
    assert (response.status, response.body) == (200, body)


async def test_asterisk_form_is_not_routed_as_a_path(
    autojump_clock: trio.testing.MockClock,
) -> None:
    conversation = await converse(b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    (response,) = conversation.responses()
    assert response.status in (400, 404, 405, 501)


@pytest.mark.parametrize("method", [b"get", b"Get", b"gET", b"head", b"post"], ids=case_id)
async def test_methods_are_case_sensitive(
    autojump_clock: trio.testing.MockClock, method: bytes
) -> None:
    """RFC 9110 §9.1: ``get`` is not ``GET``; no route serves it, and 501 keeps the connection."""
    conversation = await converse(
        method + b" /echo/lower HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /echo/upper HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    responses = conversation.responses()
    assert [r.status for r in responses] == [501, 200]
    assert b"lower" not in responses[0].body
    assert responses[1].body == b"upper"


async def test_head_request_refused_before_the_handler_still_gets_a_response(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An error for a HEAD request (here: 417 for an unknown expectation) has no body, but it
    must be sent: the client is waiting for it."""
    with capture_errors() as errors:
        conversation = await converse(b"HEAD / HTTP/1.1\r\nHost: x\r\nExpect: nope\r\n\r\n")
    assert conversation.data.startswith(b"HTTP/1.1 417 "), conversation.data
    _, _, body = conversation.data.partition(b"\r\n\r\n")
    assert body == b""
    assert conversation.closed_by_server
    assert not errors.records, [record.getMessage() for record in errors.records]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HEAD / HTTP/2.0\r\nHost: x\r\n\r\n",
        b"HEAD /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=case_id,
)
async def test_head_refused_before_the_handler_gets_a_bodiless_error(
    autojump_clock: trio.testing.MockClock, request_bytes: bytes
) -> None:
    with capture_errors() as errors:
        conversation = await converse(request_bytes)
    assert re.match(rb"HTTP/1\.1 (400|414|505) ", conversation.data), conversation.data
    assert conversation.data.endswith(b"\r\n\r\n")
    assert not errors.records, [record.getMessage() for record in errors.records]


# ---------------------------------------------------------------- the file server


@pytest.fixture
def served(tmp_path: Path) -> Path:
    """``root/`` is served; ``secret.txt`` next to it must never be."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "hello.txt").write_bytes(b"hello from root\n")
    (root / ".hidden").write_bytes(b"TOP-SECRET hidden\n")
    (tmp_path / "secret.txt").write_bytes(b"TOP-SECRET outside\n")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    (root / "linkdir").symlink_to(tmp_path)
    return root


async def test_file_server_serves_inside_the_root(served: Path) -> None:
    conversation = await converse(
        b"GET /files/hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        handler=build_app(served),
        patience=5,
    )
    (response,) = conversation.responses()
    assert (response.status, response.body) == (200, b"hello from root\n")


@pytest.mark.parametrize(
    ("target", "status"),
    [
        (b"/../../etc/passwd", 404),  # not under /files at all
        (b"/files/../../etc/passwd", 400),
        (b"/files/../secret.txt", 400),
        (b"/files/sub/../../secret.txt", 400),
        (b"/files/./hello.txt", 400),
        (b"/files/%2e%2e/secret.txt", 400),
        (b"/files/%2E%2E/secret.txt", 400),
        (b"/files/.%2e/secret.txt", 400),
        (b"/files/..%2fsecret.txt", 400),
        (b"/files/..%2Fsecret.txt", 400),
        (b"/files/%2e%2e%2f%2e%2e%2fetc%2fpasswd", 400),
        (b"/files/..%5csecret.txt", 400),
        (b"/files/..\\secret.txt", 400),
        (b"/files//etc/passwd", 400),
        (b"/files/%2fetc%2fpasswd", 400),
        (b"/files/hello.txt%00.png", 400),
        (b"/files/%252e%252e/secret.txt", 404),  # double encoding stays a literal name
        (b"/files/%c0%ae%c0%ae/secret.txt", 400),  # overlong UTF-8 for "."
        (b"/files/.hidden", 403),
        (b"/files/%2ehidden", 403),
        (b"/files/link.txt", 403),  # a symlink out of the root
        (b"/files/linkdir/secret.txt", 403),
        (b"/files/linkdir/", 403),
        # The same through absolute-form targets, which are served by their path.
        (b"http://x/files/../secret.txt", 400),
        (b"http://x/files/%2e%2e/secret.txt", 400),
        (b"http://x/files//etc/passwd", 400),
        (b"http://x/../secret.txt", 404),
        (b"http://x/files/link.txt", 403),
        (b"http://../files/hello.txt", 200),  # the authority is not part of the path
        (b"file:///etc/passwd", 404),
    ],
    ids=case_id,
)
async def test_file_server_traversal_is_refused(served: Path, target: bytes, status: int) -> None:
    conversation = await converse(
        b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        handler=build_app(served),
        patience=5,
    )
    (response,) = conversation.responses()
    assert response.status == status, (response.status, response.body)
    if status == 200:
        assert response.body == b"hello from root\n"
    assert b"TOP-SECRET" not in conversation.data
    assert b"root:" not in conversation.data


# ---------------------------------------------------------------- 3. a real-socket flood


@contextlib.contextmanager
def enough_file_descriptors(needed: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, max(needed, 4096))
        assert target >= needed, f"RLIMIT_NOFILE hard limit {hard} is below {needed}"
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def read_until_eof(stream: trio.abc.Stream) -> bytes:
    data = bytearray()
    while chunk := await stream.receive_some():
        data += chunk
    return bytes(data)


async def test_stalled_and_idle_connections_do_not_block_a_new_client() -> None:
    stalled_count = idle_count = 200
    # Client and server end of every connection, plus slack for the rest of the process.
    with enough_file_descriptors(2 * (stalled_count + idle_count) + 256):
        recorder = Recorder()
        config = ServerConfig(access_log=False, graceful_timeout=2)
        # What trio_http.serve(app, "127.0.0.1", 0, config=config) does, keeping the Server so
        # that a shutdown that hangs can be aborted (stop_now) and reported instead of hanging
        # the test run: the server shields its connections from our cancellation.
        server = Server(make_app(recorder), config)
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        streams: list[trio.SocketStream] = []
        stopped = trio.Event()
        serve_scope = trio.CancelScope()

        async def run_server(*, task_status: trio.TaskStatus[list[Address]]) -> None:
            with serve_scope:
                await server.run(listeners, task_status=task_status)
            stopped.set()

        try:
            async with trio.open_nursery() as nursery:
                with trio.fail_after(10):
                    addresses: list[Address] = await nursery.start(run_server)
                host, port = addresses[0]
                assert host == "127.0.0.1"
                with trio.fail_after(20):
                    for index in range(stalled_count + idle_count):
                        stream = await trio.open_tcp_stream("127.0.0.1", port)
                        streams.append(stream)
                        if index % 2 == 0:
                            await stream.send_all(b"GET /echo/stalled HTTP/1.1\r\nHost: x\r\nX-")
                with trio.fail_after(5):
                    fresh = await trio.open_tcp_stream("127.0.0.1", port)
                    streams.append(fresh)
                    await fresh.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    answer = await read_until_eof(fresh)
                assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer
                # ... while the server held every stalled and idle connection open.
                assert len(server.registry.connections) >= stalled_count + idle_count
                # A stalled connection is still alive, and served once it finishes its head.
                with trio.fail_after(5):
                    await streams[0].send_all(b"A: b\r\nConnection: close\r\n\r\n")
                    answer = await read_until_eof(streams[0])
                assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer
                assert answer.endswith(b"stalled")
                assert recorder.targets() == ["/", "/echo/stalled"]
                # Close every client, then stop the server: both must be quick.
                with trio.fail_after(5):
                    for stream in streams:
                        await stream.aclose()
                streams.clear()
                serve_scope.cancel()
                with trio.move_on_after(5):
                    await stopped.wait()
                if not stopped.is_set():
                    server.stop_now()
                    pytest.fail("cancelling serve() did not stop the server within 5 s")
                assert not server.registry.connections
        finally:
            for stream in streams:
                await trio.aclose_forcefully(stream)


# ---------------------------------------------------------------- 4. slowloris (MockClock)


async def test_slowloris_gets_408_while_normal_clients_are_served(
    autojump_clock: trio.testing.MockClock,
) -> None:
    header_timeout = 10.0
    config = ServerConfig(access_log=False, header_timeout=header_timeout, linger_timeout=2)
    recorder = Recorder()
    app = make_app(recorder)
    head = b"GET /echo/slow HTTP/1.1\r\nHost: x\r\n" + b"X-Loris: " + b"z" * 200
    slow_results: list[tuple[float, bytes]] = []
    normal_results: list[tuple[float, float, bytes]] = []
    finished: list[HTTPConnection] = []

    async def connect(nursery: trio.Nursery) -> Client:
        client, server = await stream_pair(_kind)
        connection = HTTPConnection(server, app, config, client=("127.0.0.1", 2))

        async def serve() -> None:
            await connection.run()
            finished.append(connection)

        nursery.start_soon(serve)
        return client

    async def loris(nursery: trio.Nursery) -> None:
        client = await connect(nursery)
        started = trio.current_time()
        answer = bytearray()
        answered = trio.Event()

        async def read() -> None:
            while chunk := await client.receive_some():
                answer.extend(chunk)
                answered.set()
            answered.set()

        async with trio.open_nursery() as inner:
            inner.start_soon(read)
            for byte in head:
                try:
                    await client.send_all(bytes([byte]))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break
                with trio.move_on_after(1):
                    await answered.wait()
                if answered.is_set():
                    break
            await answered.wait()
            slow_results.append((trio.current_time() - started, bytes(answer)))
        await client.aclose()

    async def normal(nursery: trio.Nursery, delay: float) -> None:
        await trio.sleep(delay)
        client = await connect(nursery)
        started = trio.current_time()
        await client.send_all(b"GET /echo/fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await read_until_eof(client)
        normal_results.append((delay, trio.current_time() - started, answer))
        await client.aclose()

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(loris, nursery)
            nursery.start_soon(normal, nursery, 0.0)
            nursery.start_soon(normal, nursery, 5.5)
    assert len(slow_results) == 50
    for elapsed, answer in slow_results:
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
        assert b"connection: close" in answer.lower()
        assert elapsed == pytest.approx(header_timeout, abs=0.01)
    assert sorted(delay for delay, _, _ in normal_results) == [0.0, 5.5]
    for _, elapsed, answer in normal_results:
        assert elapsed == 0  # answered at once, though 50 connections are trickling
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert answer.endswith(b"fast")
    assert recorder.targets() == ["/echo/fast", "/echo/fast"]
    assert len(finished) == 52
