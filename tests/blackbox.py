"""Black-box helpers: the real ``trio-http`` CLI in a subprocess, and a strict raw-socket client.

:func:`running_server` starts ``python -m trio_http serve --host 127.0.0.1 --port 0 ...`` in
its own session (so its whole process group can be signalled), reads stdout and stderr in
background threads (so neither pipe can fill up and stall the server), waits for the
``listening on http://127.0.0.1:PORT`` line and yields a :class:`ServerProcess`.  On exit it
sends SIGTERM to the process group, waits with a timeout and checks the exit status; a server
that does not stop is killed and the test fails.

The client side reads responses the way the CodeCrafters checker does: framed *only* by
``Content-Length``.  A response without ``Content-Length`` (or with ``Transfer-Encoding``) is
an assertion error, because such a client could not tell where the body ends.

Every network operation here has a deadline; nothing sleeps.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import trio

__all__ = [
    "HOST",
    "REPO",
    "Connection",
    "RawResponse",
    "ServerProcess",
    "connect",
    "exchange",
    "group_alive",
    "parse_response",
    "parse_responses",
    "read_response_async",
    "request",
    "request_bytes",
    "running_server",
    "start_process",
]

HOST = "127.0.0.1"
#: The repository root (the directory holding ``your_program.sh``).
REPO = Path(__file__).resolve().parent.parent
#: Default bound for one network exchange; the checker allows about 2 s per response.
IO_TIMEOUT = 2.0
#: Bound for a server to print its listening line.
STARTUP_TIMEOUT = 15.0
#: Bound for a server to exit after SIGTERM.
STOP_TIMEOUT = 10.0

LISTENING = re.compile(r"listening on https?://127\.0\.0\.1:(?P<port>\d+)")


# ------------------------------------------------------------------------- subprocesses


class _PipeReader:
    """Drains one pipe into a buffer on a daemon thread; waiters can block on new data."""

    def __init__(self, pipe: IO[bytes], name: str) -> None:
        self._pipe = pipe
        self._data = bytearray()
        self._eof = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"pipe-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        fd = self._pipe.fileno()
        try:
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    chunk = b""
                with self._cond:
                    if not chunk:
                        self._eof = True
                        self._cond.notify_all()
                        return
                    self._data += chunk
                    self._cond.notify_all()
        finally:
            self._pipe.close()

    def text(self) -> str:
        with self._cond:
            return self._data.decode("utf-8", "replace")

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str] | None:
        """The first match of *pattern*, waiting up to *timeout*; ``None`` on EOF or timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                match = pattern.search(self._data.decode("utf-8", "replace"))
                if match is not None or self._eof:
                    return match
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()


@dataclass
class ServerProcess:
    """A running server process (the leader of its own process group)."""

    proc: subprocess.Popen[bytes]
    _stdout: _PipeReader
    _stderr: _PipeReader
    port: int = 0
    returncode: int | None = field(default=None, init=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def stdout_text(self) -> str:
        """Everything written to stdout so far (complete once :meth:`stop` returned)."""
        return self._stdout.text()

    def stderr_text(self) -> str:
        """Everything written to stderr so far (complete once :meth:`stop` returned)."""
        return self._stderr.text()

    def wait_for_stdout(self, pattern: str, timeout: float = IO_TIMEOUT) -> re.Match[str]:
        match = self._stdout.wait_for(re.compile(pattern), timeout)
        assert match is not None, f"{pattern!r} not on stdout:\n{self.stdout_text()}"
        return match

    def wait_for_stderr(self, pattern: str, timeout: float = IO_TIMEOUT) -> re.Match[str]:
        match = self._stderr.wait_for(re.compile(pattern), timeout)
        assert match is not None, f"{pattern!r} not on stderr:\n{self.stderr_text()}"
        return match

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit on its own; drain both pipes."""
        try:
            self.returncode = self.proc.wait(timeout)
        finally:
            if self.proc.returncode is not None:
                self._stdout.join(timeout=5)
                self._stderr.join(timeout=5)
        return self.returncode

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM to the process group, wait up to *timeout*; the exit status.

        A process that outlives *timeout* is killed (with its group) and the test fails.
        """
        if self.proc.returncode is None:
            _signal_group(self.pid, signal.SIGTERM)
            try:
                self.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    f"server pid {self.pid} still running {timeout}s after SIGTERM; killed.\n"
                    f"stderr:\n{self.stderr_text()}"
                ) from None
        else:
            self.wait(timeout)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        """SIGKILL to the process group (teardown of a failed test)."""
        _signal_group(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.wait(STOP_TIMEOUT)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def group_alive(pgid: int) -> bool:
    """Whether any process is left in process group *pgid*."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's group
        return True
    return True


def start_process(argv: Sequence[str], *, cwd: Path | None = None) -> ServerProcess:
    """Start *argv* in a new session with both output pipes drained in the background."""
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    return ServerProcess(proc, _PipeReader(proc.stdout, "stdout"), _PipeReader(proc.stderr, "err"))


def serve_argv(*args: str) -> list[str]:
    """The command line of ``trio-http serve`` on 127.0.0.1, a free port, plus *args*."""
    return [sys.executable, "-m", "trio_http", "serve", "--host", HOST, "--port", "0", *args]


@contextlib.contextmanager
def running_server(
    *args: str,
    argv: Sequence[str] | None = None,
    cwd: Path | None = None,
    startup_timeout: float = STARTUP_TIMEOUT,
    expect_exit: int | None = 0,
) -> Iterator[ServerProcess]:
    """``trio-http serve --host 127.0.0.1 --port 0 *args`` (or *argv*), running.

    Yields once the listening line is on stderr, with ``.port`` read from it.  On exit the
    server is stopped (SIGTERM to its group) unless the test already did so, and its exit
    status must be *expect_exit* (``None``: not checked).  If the body raised, the server is
    killed and only the body's exception propagates.
    """
    server = start_process(argv if argv is not None else serve_argv(*args), cwd=cwd)
    try:
        match = server._stderr.wait_for(LISTENING, startup_timeout)
        if match is None:
            server.kill()
            raise AssertionError(
                f"server did not start (exit status {server.proc.returncode}):\n"
                f"stdout:\n{server.stdout_text()}\nstderr:\n{server.stderr_text()}"
            )
        server.port = int(match["port"])
        yield server
    except BaseException:
        server.kill()
        raise
    status = server.stop()
    if expect_exit is not None:
        assert status == expect_exit, (
            f"exit status {status}, expected {expect_exit}; stderr:\n{server.stderr_text()}"
        )


# ------------------------------------------------------------------------- the client


@dataclass
class RawResponse:
    """One response as bytes on the wire, split into its parts."""

    status_line: str
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes

    @property
    def status(self) -> int:
        return int(self.status_line.split(" ")[1])

    def header(self, name: str) -> str | None:
        """The value of header *name* (case-insensitive); fails if it occurs twice."""
        values = self.header_values(name)
        assert len(values) <= 1, f"{name} occurs {len(values)} times: {self.headers}"
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def header_names(self) -> set[str]:
        return {n.lower() for n, _ in self.headers}


def parse_response(buffer: bytes, *, head: bool = False) -> tuple[RawResponse, int] | None:
    """One complete response at the start of *buffer* and its length, or ``None`` if incomplete.

    Framing is by ``Content-Length`` only (as the CodeCrafters checker does); a response
    without it (but a ``204``, which has no body), or with ``Transfer-Encoding``, fails the
    test.  *head*: the response to a HEAD
    request (no body whatever ``Content-Length`` says).
    """
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buffer[:end].decode("latin-1").split("\r\n")
    status_line, header_lines = lines[0], lines[1:]
    assert re.fullmatch(r"HTTP/1\.1 \d{3} .*", status_line), f"bad status line {status_line!r}"
    headers: list[tuple[str, str]] = []
    for line in header_lines:
        name, sep, value = line.partition(":")
        assert sep and name and name == name.strip(), f"bad header line {line!r}"
        headers.append((name, value.strip(" \t")))
    names = [n.lower() for n, _ in headers]
    assert "transfer-encoding" not in names, f"Transfer-Encoding in {status_line!r}: {headers}"
    lengths = [v for n, v in headers if n.lower() == "content-length"]
    status = int(status_line.split(" ")[1])
    if status == 204 or 100 <= status < 200:
        # No body by definition, and no Content-Length allowed (RFC 9110 §8.6).
        assert not lengths, f"Content-Length in {status_line!r}: {headers}"
        lengths = ["0"]
    assert len(lengths) == 1, (
        f"{status_line!r} has {len(lengths)} Content-Length headers (a Content-Length-only "
        f"client needs exactly one): {headers}"
    )
    assert lengths[0].isdigit(), f"bad Content-Length {lengths[0]!r}"
    length = 0 if head else int(lengths[0])
    total = end + 4 + length
    if len(buffer) < total:
        return None
    raw = bytes(buffer[:total])
    return RawResponse(status_line, headers, raw[end + 4 :], raw), total


def parse_responses(data: bytes) -> list[RawResponse]:
    """All responses in *data*, which must hold nothing else."""
    responses: list[RawResponse] = []
    while data:
        parsed = parse_response(data)
        assert parsed is not None, f"incomplete response: {data!r}"
        response, used = parsed
        responses.append(response)
        data = data[used:]
    return responses


class Connection:
    """A blocking client socket with a read buffer; every read has a deadline."""

    def __init__(self, sock: socket.socket, timeout: float = IO_TIMEOUT) -> None:
        self.sock = sock
        self.timeout = timeout
        self._buffer = b""

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    @property
    def local_port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port

    def send(self, data: bytes) -> None:
        """*data* in one ``sendall`` (one write for a request, as the checker does)."""
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def _recv(self, deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no complete answer in time; have {self._buffer!r}")
        self.sock.settimeout(remaining)
        return self.sock.recv(65536)

    def read_response(self, *, head: bool = False, timeout: float | None = None) -> RawResponse:
        """The next response; fails on EOF before it is complete or after *timeout*."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            parsed = parse_response(self._buffer, head=head)
            if parsed is not None:
                response, used = parsed
                self._buffer = self._buffer[used:]
                return response
            chunk = self._recv(deadline)
            assert chunk, f"connection closed mid-response; have {self._buffer!r}"
            self._buffer += chunk

    def read_informational(self, timeout: float | None = None) -> str:
        """The status line of the next head, which must be a ``1xx`` (it has no body)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            chunk = self._recv(deadline)
            assert chunk, f"connection closed before a head; have {self._buffer!r}"
            self._buffer += chunk
        head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
        status_line = head.split(b"\r\n")[0].decode("latin-1")
        assert re.fullmatch(r"HTTP/1\.1 1\d\d .*", status_line), f"not 1xx: {head!r}"
        return status_line

    def request(self, data: bytes, *, head: bool = False) -> RawResponse:
        self.send(data)
        return self.read_response(head=head)

    def read_until_close(self, timeout: float | None = None) -> bytes:
        """All bytes until the server closes; fails if it has not within *timeout*."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        data, self._buffer = self._buffer, b""
        while True:
            try:
                chunk = self._recv(deadline)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk

    def assert_eof(self, timeout: float = 1.0) -> None:
        """The server has closed its side: EOF within *timeout*, with no bytes before it."""
        rest = self.read_until_close(timeout)
        assert rest == b"", f"unexpected bytes before EOF: {rest!r}"


def connect(port: int, timeout: float = IO_TIMEOUT) -> Connection:
    return Connection(socket.create_connection((HOST, port), timeout=timeout), timeout)


def exchange(
    port: int, data: bytes, *, read_until_close: bool, timeout: float = IO_TIMEOUT
) -> bytes:
    """Send *data* on a new connection; the bytes of one response, or of all until EOF."""
    with connect(port, timeout) as conn:
        conn.send(data)
        if read_until_close:
            return conn.read_until_close(timeout)
        return conn.read_response().raw


def request_bytes(
    method: str,
    target: str,
    port: int,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> bytes:
    """A request as the checker writes it: ``Host: localhost:PORT`` first, then *headers*."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: localhost:{port}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def request(
    port: int,
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> RawResponse:
    """One request on a new connection; its response."""
    with connect(port) as conn:
        return conn.request(request_bytes(method, target, port, headers, body))


async def read_response_async(
    stream: trio.abc.ReceiveStream, buffer: bytearray, timeout: float = IO_TIMEOUT
) -> RawResponse:
    """The next response from a trio *stream*; *buffer* keeps bytes read past it."""
    with trio.fail_after(timeout):
        while True:
            parsed = parse_response(bytes(buffer))
            if parsed is not None:
                response, used = parsed
                del buffer[:used]
                return response
            chunk = await stream.receive_some(65536)
            assert chunk, f"connection closed mid-response; have {bytes(buffer)!r}"
            buffer += chunk
