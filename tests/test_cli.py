"""``trio-http`` as a user runs it: options, errors, startup and shutdown, the access log.

Black-box: every test runs the real command in a subprocess (``python -m trio_http``).
Output that a running server writes is checked after it has stopped, when it is complete, so
no test waits for a log line to appear.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from blackbox import (
    HOST,
    connect,
    exchange,
    parse_responses,
    request,
    request_bytes,
    running_server,
    serve_argv,
)

pytestmark = pytest.mark.timeout(60)

COMMAND_TIMEOUT = 20.0
#: Combined Log Format plus the duration in seconds.
COMBINED = re.compile(
    r"(?P<host>\S+) - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "
    r'"(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+) '
    r'"(?P<referer>[^"]*)" "(?P<agent>[^"]*)" (?P<duration>\d+\.\d{6})'
)
#: Control characters (C0, DEL, C1) that must never reach a log unescaped.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m trio_http *args`` for a command that exits by itself."""
    return subprocess.run(
        [sys.executable, "-m", "trio_http", *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def assert_one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


# ------------------------------------------------------------------ options


def test_help() -> None:
    top = run_cli("--help")
    assert top.returncode == 0, top.stderr
    assert "serve" in top.stdout
    serve = run_cli("serve", "--help")
    assert serve.returncode == 0, serve.stderr
    for option in (
        "--host",
        "--port",
        "--directory",
        "--read-only",
        "--no-date-header",
        "--no-server-header",
        "--no-access-log",
        "--access-log-format",
        "--max-body-size",
        "--timeout-keep-alive",
    ):
        assert option in serve.stdout, option


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"trio-http {importlib.metadata.version('trio-http')}"


def test_no_command_is_a_usage_error() -> None:
    result = run_cli()
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "usage:" in result.stderr


def test_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    result = run_cli("serve", "--port", "0", "--directory", str(missing))
    assert result.returncode == 2
    line = assert_one_line_error(result.stderr)
    assert line == f"trio-http: error: --directory {missing}: not a directory"
    assert result.stdout == ""


def test_directory_that_is_a_file(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("x")
    result = run_cli("serve", "--port", "0", "--directory", str(file))
    assert result.returncode == 2
    assert "not a directory" in assert_one_line_error(result.stderr)


def test_port_in_use() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "trio_http", "serve", "--host", HOST, "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    assert result.returncode == 1, result.stderr
    line = assert_one_line_error(result.stderr)
    assert line == f"trio-http: error: cannot listen on {HOST}:{port}: address already in use"
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "abc"], "argument --port: not a port number: 'abc'"),
        (["--port", "70000"], "argument --port: port must be from 0 to 65535: '70000'"),
        (["--max-body-size", "lots"], "argument --max-body-size: not a size: 'lots'"),
        (["--timeout-keep-alive", "-1"], "argument --timeout-keep-alive: seconds must not be"),
        (["--limit-concurrency", "0"], "argument --limit-concurrency: must be at least 1"),
        (["--graceful-timeout", "-3"], "argument --graceful-timeout: seconds must not be"),
        (["--certfile", "/nonexistent.pem"], "--certfile and --keyfile go together"),
        (
            ["--certfile", "/nonexistent.pem", "--keyfile", "/nonexistent.key"],
            "cannot load --certfile/--keyfile: [Errno 2] No such file or directory",
        ),
        (["--access-log-format", "xml"], "argument --access-log-format: invalid choice"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_option_value(args: list[str], message: str) -> None:
    result = run_cli("serve", *args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.splitlines()[-1]
    assert re.match(r"trio-http( serve)?: error: ", last), result.stderr
    assert message in last, last
    assert result.stdout == ""


# ------------------------------------------------------------------ startup and shutdown


def listening_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if "listening on" in line]
    assert len(lines) == 1, stderr
    return lines[0]


def test_startup_line_names_address_and_directory(tmp_path: Path) -> None:
    with running_server("--directory", f"{tmp_path}/") as server:
        line = listening_line(server.stderr_text())
    assert " INFO trio_http: " in line
    assert f"listening on http://{HOST}:{server.port}, " in line
    assert f"serving {tmp_path.resolve()} at /files/ (read-write)" in line


def test_startup_line_read_only_and_without_directory(tmp_path: Path) -> None:
    with running_server("--directory", str(tmp_path), "--read-only") as server:
        pass
    assert "(read-only)" in listening_line(server.stderr_text())
    with running_server() as server:
        pass
    assert "no --directory" in listening_line(server.stderr_text())


def test_relative_directory_is_resolved(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_bytes(b"relative")
    with running_server(argv=[*serve_argv("--directory", "sub/")], cwd=tmp_path) as server:
        assert request(server.port, "GET", "/files/a.txt").body == b"relative"
    assert f"serving {(tmp_path / 'sub').resolve()} at /files/" in server.stderr_text()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(signum: signal.Signals) -> None:
    with running_server("--no-access-log", expect_exit=None) as server:
        assert request(server.port, "GET", "/").status == 200
        server.proc.send_signal(signum)
        status = server.wait(timeout=10)
    assert status == 0, server.stderr_text()
    stderr = server.stderr_text()
    assert f"{signum.name}: shutting down" in stderr
    assert stderr.rstrip().endswith("INFO trio_http: stopped"), stderr
    assert "Traceback" not in stderr


def test_sigterm_closes_idle_keep_alive_connections() -> None:
    """An idle keep-alive connection does not hold up shutdown (no waiting out its timeout)."""
    with running_server("--no-access-log", "--timeout-keep-alive", "60") as server:
        with connect(server.port, timeout=5.0) as conn:
            assert conn.request(request_bytes("GET", "/", server.port)).status == 200
            server.proc.send_signal(signal.SIGTERM)
            conn.assert_eof(timeout=2.0)
        # The client has closed too, so the server has nothing left to linger on.
        assert server.wait(timeout=5.0) == 0


def test_sigterm_lets_an_in_flight_request_finish(tmp_path: Path) -> None:
    """SIGTERM while a handler waits for a request body: the request completes, then the exit.

    ``Expect: 100-continue`` makes the ordering observable: the server sends ``100 Continue``
    only once the handler reads the body, so after it the request is in flight for sure.
    """
    with (
        running_server("--no-access-log", "--directory", str(tmp_path), expect_exit=None) as srv,
        connect(srv.port, timeout=5.0) as conn,
    ):
        headers = [("Content-Length", "4"), ("Expect", "100-continue")]
        conn.send(request_bytes("POST", "/files/late.bin", srv.port, headers))
        assert conn.read_informational() == "HTTP/1.1 100 Continue"
        srv.proc.send_signal(signal.SIGTERM)
        srv.wait_for_stderr("SIGTERM: shutting down")
        conn.send(b"abcd")
        response = conn.read_response()
        assert response.status_line == "HTTP/1.1 201 Created"
        assert response.header("Connection") == "close"
        conn.assert_eof(timeout=1.0)
        conn.close()
        assert srv.wait(timeout=5.0) == 0
    assert (tmp_path / "late.bin").read_bytes() == b"abcd"


# ------------------------------------------------------------------ the access log


def test_access_log_combined() -> None:
    with running_server("--no-date-header") as server:
        headers = [("User-Agent", "agent/1.0"), ("Referer", "http://example.test/page")]
        assert request(server.port, "GET", "/echo/abc", headers).status == 200
        assert request(server.port, "GET", "/nothing-here").status == 404
    lines = server.stdout_text().splitlines()
    assert len(lines) == 2, lines
    first, second = (COMBINED.fullmatch(line) for line in lines)
    assert first is not None, lines[0]
    assert second is not None, lines[1]
    assert first["host"] == HOST
    assert first["request"] == "GET /echo/abc HTTP/1.1"
    assert (first["status"], first["bytes"]) == ("200", "3")
    assert (first["referer"], first["agent"]) == ("http://example.test/page", "agent/1.0")
    assert (second["request"], second["status"]) == ("GET /nothing-here HTTP/1.1", "404")
    assert (second["referer"], second["agent"]) == ("-", "-")
    # Diagnostics go to stderr, access lines only to stdout.
    assert "GET /echo/abc" not in server.stderr_text()


def test_access_log_json() -> None:
    with running_server("--access-log-format", "json") as server:
        response = request(server.port, "GET", "/user-agent", [("User-Agent", "json/2")])
        assert response.status == 200
        with connect(server.port) as conn:
            missing = conn.request(request_bytes("HEAD", "/missing", server.port), head=True)
        assert missing.status == 404
    lines = server.stdout_text().splitlines()
    assert len(lines) == 2, lines
    first, second = (json.loads(line) for line in lines)
    assert first["status"] == 200
    assert first["method"] == "GET"
    assert first["target"] == "/user-agent"
    assert first["http_version"] == "1.1"
    assert first["client"] == HOST
    assert first["user_agent"] == "json/2"
    assert first["bytes"] == len(b"json/2")
    assert isinstance(first["duration"], float | int)
    assert (second["method"], second["target"], second["status"]) == ("HEAD", "/missing", 404)


def test_no_access_log() -> None:
    with running_server("--no-access-log") as server:
        assert request(server.port, "GET", "/").status == 200
        assert request(server.port, "GET", "/missing").status == 404
    assert server.stdout_text() == ""


def test_access_log_escapes_control_characters() -> None:
    """Client text cannot forge log lines or send terminal escapes through the log."""
    agent = 'evil\x1b[31m\t"quoted"\\ \x7f\x85 end'
    with running_server() as server:
        response = request(server.port, "GET", '/echo/a"b\\c', [("User-Agent", agent)])
        assert response.status == 200
        # A raw control character in the target is refused by the parser (400)...
        data = exchange(
            server.port, b"GET /a\x1b[2Jb HTTP/1.1\r\nHost: x\r\n\r\n", read_until_close=True
        )
        assert parse_responses(data)[0].status == 400
        # ...and a bare LF in a header value cannot start a new line anywhere.
        data = exchange(
            server.port,
            b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: a\n127.0.0.1 forged\r\n\r\n",
            read_until_close=True,
        )
        assert parse_responses(data)[0].status == 400
    stdout, stderr = server.stdout_text(), server.stderr_text()
    for text in (stdout, stderr):
        assert not CONTROL.search(text), repr(text)
    lines = stdout.splitlines()
    assert all(COMBINED.fullmatch(line) for line in lines), lines  # no forged lines
    match = COMBINED.fullmatch(lines[0])
    assert match is not None, stdout
    assert match["request"] == "GET /echo/a\\x22b\\x5cc HTTP/1.1"
    assert match["agent"] == "evil\\x1b[31m\\x09\\x22quoted\\x22\\x5c \\x7f\\x85 end"


def test_access_log_json_escapes_control_characters() -> None:
    agent = 'evil\x1b[31m\t"quoted"\\ \x7f\x85 end'
    with running_server("--access-log-format", "json") as server:
        assert request(server.port, "GET", "/", [("User-Agent", agent)]).status == 200
    stdout = server.stdout_text()
    assert not CONTROL.search(stdout), repr(stdout)
    (line,) = stdout.splitlines()
    assert json.loads(line)["user_agent"] == agent


def test_access_log_records_refused_requests() -> None:
    """Requests refused before a handler runs (413, 400) still get an access-log line.

    The access-log formatters take ``request=None`` and write ``"-"`` for it, and Combined Log
    Format servers (Apache, nginx) log such requests; without a line, an operator reading the
    access log cannot see oversized uploads or malformed traffic at all.
    """
    with running_server("--max-body-size", "10") as server:
        too_big = request(server.port, "POST", "/echo/a", [("Content-Length", "30")], b"a" * 30)
        assert too_big.status == 413
        data = exchange(server.port, b"BAD\r\n\r\n", read_until_close=True)
        assert parse_responses(data)[0].status == 400
    lines = server.stdout_text().splitlines()
    statuses = []
    for line in lines:
        match = COMBINED.fullmatch(line)
        assert match is not None, line
        statuses.append(match["status"])
    assert statuses == ["413", "400"], lines


# ------------------------------------------------------------------ --read-only


def test_read_only_refuses_writes(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_bytes(b"keep me")
    with running_server("--no-access-log", "--read-only", "--directory", str(tmp_path)) as srv:
        headers = [("Content-Type", "application/octet-stream"), ("Content-Length", "3")]
        for method, name in [("POST", "new.bin"), ("PUT", "new.bin"), ("DELETE", "keep.txt")]:
            response = request(srv.port, method, f"/files/{name}", headers, b"abc")
            assert response.status_line == "HTTP/1.1 405 Method Not Allowed", method
            allow = response.header("Allow")
            assert allow is not None, response.headers
            allowed = {m.strip() for m in allow.split(",")}
            assert "GET" in allowed, allow
            assert not {"POST", "PUT", "DELETE"} & allowed, allow
        assert request(srv.port, "GET", "/files/keep.txt").body == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    assert (tmp_path / "keep.txt").read_bytes() == b"keep me"


def test_serve_removes_stale_upload_files_at_start(tmp_path: Path) -> None:
    """Uploads a SIGKILLed server left half-written are removed once it runs again."""
    (tmp_path / "sub").mkdir()
    stale = tmp_path / "sub" / ".trio-http-upload-dead.part"
    stale.write_bytes(b"half an upload")
    (tmp_path / "keep.txt").write_text("kept")
    with running_server("--directory", str(tmp_path)) as server:
        server.wait_for_stderr("removed 1 stale upload temporary file")
    assert not stale.exists()
    assert (tmp_path / "keep.txt").read_text() == "kept"
