"""``trio-http run MODULE:ATTR`` as a user runs it: an ASGI application in the real CLI.

Black-box: every test starts ``python -m trio_http run ...`` in a subprocess (tests/blackbox.py)
on port 0, with a small raw ASGI application written to ``tmp_path`` and found through
``--app-dir``.  Every wait is bounded; nothing sleeps.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from blackbox import HOST, ServerProcess, request, running_server, start_process

pytestmark = pytest.mark.timeout(60)

COMMAND_TIMEOUT = 20.0
#: Bound for a --reload server to restart after a change (watchfiles debounces, then a new
#: interpreter imports the application).
RELOAD_TIMEOUT = 20.0

#: A raw ASGI 3 application: the HTTP side answers with what it saw of the scope, as JSON; the
#: lifespan side writes MARKER (if set) on shutdown.  VERSION and MARKER are filled in.
APP = """
import json

VERSION = {version!r}
MARKER = {marker!r}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({{"type": "lifespan.startup.complete"}})
            else:
                if MARKER:
                    with open(MARKER, "w") as marker:
                        marker.write("shut down")
                await send({{"type": "lifespan.shutdown.complete"}})
                return
    seen = {{
        "version": VERSION,
        "method": scope["method"],
        "path": scope["path"],
        "root_path": scope["root_path"],
        "query_string": scope["query_string"].decode(),
        "scheme": scope["scheme"],
        "client": scope["client"],
    }}
    body = json.dumps(seen).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({{"type": "http.response.start", "status": 200, "headers": headers}})
    await send({{"type": "http.response.body", "body": body}})


def create():
    return app


number = 42
"""

FAILING_STARTUP = """
async def app(scope, receive, send):
    assert scope["type"] == "lifespan"
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
"""

#: Startup waits until the test writes to the FIFO named GATE (no sleeping on either side).
GATED_STARTUP = """
import sys
import trio

GATE = {gate!r}
MARKER = {marker!r}


def wait_for_the_gate():
    with open(GATE) as gate:
        gate.read()


async def app(scope, receive, send):
    assert scope["type"] == "lifespan"
    await receive()
    print("startup begun", file=sys.stderr, flush=True)
    await trio.to_thread.run_sync(wait_for_the_gate, abandon_on_cancel=True)
    await send({{"type": "lifespan.startup.complete"}})
    await receive()
    with open(MARKER, "w") as marker:
        marker.write("shut down")
    await send({{"type": "lifespan.shutdown.complete"}})
"""


def write_app(
    directory: Path, name: str = "web", *, version: str = "v1", marker: Path | None = None
) -> None:
    source = APP.format(version=version, marker=str(marker) if marker else "")
    (directory / f"{name}.py").write_text(source, encoding="utf-8")


def write_module(directory: Path, name: str, source: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")


def run_argv(target: str, *args: str, env: dict[str, str] | None = None) -> list[str]:
    """``trio-http run TARGET --host 127.0.0.1 --port 0 *args``, under ``env`` if given."""
    command = [sys.executable, "-m", "trio_http", "run", target, "--host", HOST, "--port", "0"]
    prefix = ["env", *(f"{name}={value}" for name, value in env.items())] if env else []
    return [*prefix, *command, *args]


def run_command(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m trio_http run *args`` for a command that exits by itself."""
    return subprocess.run(
        [sys.executable, "-m", "trio_http", "run", *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
        check=False,
    )


def get_json(port: int, target: str = "/", headers: list[tuple[str, str]] | None = None) -> Any:
    response = request(port, "GET", target, headers or [])
    assert response.status == 200, response.raw
    return json.loads(response.body)


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("trio-http: error: "), stderr
    return lines[0]


# ------------------------------------------------------------------ serving


def test_serves_an_asgi_app_from_app_dir(tmp_path: Path) -> None:
    write_app(tmp_path)
    with running_server(argv=run_argv("web:app", "--app-dir", str(tmp_path))) as server:
        seen = get_json(server.port, "/hello/world?x=1", [("Accept-Encoding", "gzip")])
        response = request(server.port, "GET", "/", [("Accept-Encoding", "gzip, br")])
    assert seen == {
        "version": "v1",
        "method": "GET",
        "path": "/hello/world",
        "root_path": "",
        "query_string": "x=1",
        "scheme": "http",
        "client": [HOST, seen["client"][1]],
    }
    assert response.header("Content-Encoding") is None  # the server never compresses ASGI
    stderr = server.stderr_text()
    listening = [line for line in stderr.splitlines() if "listening on" in line]
    assert len(listening) == 1, stderr
    assert listening[0].endswith(
        f"listening on http://{HOST}:{server.port}, serving web:app (ASGI)"
    )
    assert '"GET /hello/world?x=1 HTTP/1.1" 200' in server.stdout_text()  # the access log


def test_factory(tmp_path: Path) -> None:
    write_app(tmp_path, version="from a factory")
    argv = run_argv("web:create", "--factory", "--app-dir", str(tmp_path))
    with running_server(argv=argv) as server:
        assert get_json(server.port)["version"] == "from a factory"


def test_root_path_reaches_the_scope(tmp_path: Path) -> None:
    write_app(tmp_path)
    argv = run_argv("web:app", "--root-path", "/api", "--app-dir", str(tmp_path))
    with running_server(argv=argv) as server:
        seen = get_json(server.port, "/items")
    assert (seen["root_path"], seen["path"]) == ("/api", "/api/items")


# ------------------------------------------------------------------ loading errors


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("web", "'web' is not in the form MODULE:ATTR (for example main:app)"),
        ("nowhere:app", "could not import module \"nowhere\": No module named 'nowhere'"),
        ("needs_dep:app", "a module it imports is missing: No module named 'not_installed_dep'"),
        ("raises:app", "importing it raised RuntimeError: boom at import"),
        ("web:missing", 'attribute "missing" not found in module "web"'),
        ("web:number", '"web:number" is not an ASGI application (got int)'),
        ("web:create", "is not an ASGI 3 application"),
    ],
)
def test_an_app_that_cannot_be_loaded_is_one_line_and_status_2(
    tmp_path: Path, target: str, message: str
) -> None:
    write_app(tmp_path)
    write_module(tmp_path, "needs_dep", "import not_installed_dep\n")
    write_module(tmp_path, "raises", "raise RuntimeError('boom at import')\n")
    result = run_command(target, "--port", "0", "--app-dir", str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert message in one_error_line(result.stderr)
    assert result.stdout == ""


def test_log_level_debug_shows_the_traceback(tmp_path: Path) -> None:
    write_module(tmp_path, "raises", "raise RuntimeError('boom at import')\n")
    result = run_command("raises:app", "--app-dir", str(tmp_path), "--log-level", "debug")
    assert result.returncode == 2, result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert f'File "{tmp_path / "raises.py"}", line 1' in result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith('trio-http: error: could not import module "raises": '), last


def test_the_app_is_loaded_before_listening(tmp_path: Path) -> None:
    """A broken application on a port in use is reported as the application's fault."""
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_command("nowhere:app", "--app-dir", str(tmp_path), "--port", port)
        assert result.returncode == 2, result.stderr
        assert "could not import" in one_error_line(result.stderr)
        write_app(tmp_path)
        result = run_command("web:app", "--app-dir", str(tmp_path), "--port", port)
    assert result.returncode == 1, result.stderr
    assert one_error_line(result.stderr).endswith("address already in use")


def test_workers_report_a_broken_app_once(tmp_path: Path) -> None:
    result = run_command("nowhere:app", "--app-dir", str(tmp_path), "--workers", "2")
    assert result.returncode == 2, result.stderr
    assert "could not import" in one_error_line(result.stderr)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--root-path", "api"], "--root-path must start with '/': 'api'"),
        (["--forwarded-allow-ips", "proxy.local"], "--forwarded-allow-ips: invalid trusted"),
        (["--reload", "--workers", "2"], "--reload and --workers cannot be used together"),
    ],
)
def test_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    write_app(tmp_path)
    result = run_command("web:app", "--app-dir", str(tmp_path), *args)
    assert result.returncode == 2, result.stderr
    assert message in one_error_line(result.stderr)


# ------------------------------------------------------------------ lifespan and signals


def test_lifespan_startup_failure_exits_3(tmp_path: Path) -> None:
    write_module(tmp_path, "failing", FAILING_STARTUP)
    result = run_command("failing:app", "--port", "0", "--app-dir", str(tmp_path))
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert "listening on" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert errors == ["trio-http: error: application startup failed: database unreachable"]


def test_sigterm_drains_then_runs_the_lifespan_shutdown(tmp_path: Path) -> None:
    marker = tmp_path / "shutdown.marker"
    write_app(tmp_path, marker=marker)
    with running_server(argv=run_argv("web:app", "--app-dir", str(tmp_path))) as server:
        assert get_json(server.port)["path"] == "/"
        assert not marker.exists()
    assert marker.read_text() == "shut down"
    stderr = server.stderr_text()
    order = ["Application startup complete.", "listening on", "SIGTERM: shutting down"]
    order += ["Application shutdown complete.", "stopped"]
    positions = [stderr.find(text) for text in order]
    assert -1 not in positions and positions == sorted(positions), stderr


def start_gated(tmp_path: Path) -> tuple[ServerProcess, Path, Path]:
    """A server whose application is starting up; its gate (a FIFO) and shutdown marker."""
    gate, marker = tmp_path / "gate", tmp_path / "shutdown.marker"
    os.mkfifo(gate)
    source = GATED_STARTUP.format(gate=str(gate), marker=str(marker))
    write_module(tmp_path, "gated", source)
    server = start_process(run_argv("gated:app", "--app-dir", str(tmp_path)))
    server.wait_for_stderr("startup begun", timeout=15)
    return server, gate, marker


def test_sigterm_during_startup_shuts_down_once_started(tmp_path: Path) -> None:
    """The application gets its lifespan shutdown after the startup it was in completes."""
    server, gate, marker = start_gated(tmp_path)
    try:
        server.proc.send_signal(signal.SIGTERM)
        server.wait_for_stderr("SIGTERM: shutting down once the application has started")
        gate.write_text("go")  # the startup completes
        status = server.wait(timeout=10)
    finally:
        server.kill()
    assert status == 0, server.stderr_text()
    assert marker.read_text() == "shut down"
    assert "listening on" not in server.stderr_text()
    assert "Traceback" not in server.stderr_text()


def test_second_sigterm_during_startup_stops_at_once(tmp_path: Path) -> None:
    server, _, marker = start_gated(tmp_path)
    try:
        server.proc.send_signal(signal.SIGTERM)
        server.wait_for_stderr("SIGTERM: shutting down once the application has started")
        server.proc.send_signal(signal.SIGTERM)
        status = server.wait(timeout=10)
    finally:
        server.kill()
    assert status == 0, server.stderr_text()
    assert "SIGTERM again: stopping now" in server.stderr_text()
    assert not marker.exists()  # a startup that never completed gets no shutdown
    assert "Traceback" not in server.stderr_text()


def test_workers_serve_and_stop_cleanly(tmp_path: Path) -> None:
    write_app(tmp_path)
    argv = run_argv("web:app", "--app-dir", str(tmp_path), "--workers", "2", "--no-access-log")
    with running_server(argv=argv) as server:
        server.wait_for_stderr(r"(?s)listening on .*listening on ", timeout=15)
        for _ in range(6):
            assert get_json(server.port)["version"] == "v1"
    stderr = server.stderr_text()
    assert stderr.count("Application shutdown complete.") == 2, stderr
    assert "exited with status" not in stderr


# ------------------------------------------------------------------ proxy headers


FORWARDED = [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https")]


@pytest.mark.parametrize(
    ("args", "env", "trusted"),
    [
        pytest.param(["--proxy-headers", "--forwarded-allow-ips", HOST], None, True, id="allowed"),
        pytest.param(
            ["--proxy-headers", "--forwarded-allow-ips", "192.0.2.1,10.0.0.0/8"],
            None,
            False,
            id="not-allowed",
        ),
        pytest.param([], None, True, id="default-trusts-loopback"),
        pytest.param([], {"FORWARDED_ALLOW_IPS": "192.0.2.1"}, False, id="env"),
        pytest.param(["--no-proxy-headers"], None, False, id="off"),
    ],
)
def test_proxy_headers_are_believed_only_from_allowed_peers(
    tmp_path: Path, args: list[str], env: dict[str, str] | None, trusted: bool
) -> None:
    write_app(tmp_path)
    argv = run_argv("web:app", "--app-dir", str(tmp_path), *args, env=env)
    with running_server(argv=argv) as server:
        seen = get_json(server.port, "/", FORWARDED)
    if trusted:
        assert (seen["client"], seen["scheme"]) == (["203.0.113.7", 0], "https")
    else:
        assert seen["client"][0] == HOST
        assert seen["scheme"] == "http"


@pytest.mark.parametrize(
    ("args", "client"),
    [
        pytest.param([], "203.0.113.7", id="x-forwarded-by-default"),
        pytest.param(["--forwarded-headers", "forwarded"], "198.51.100.9", id="forwarded"),
    ],
)
def test_only_the_kind_of_proxy_headers_chosen_is_read(
    tmp_path: Path, args: list[str], client: str
) -> None:
    """A client's own Forwarded, passed on by an nginx that writes X-Forwarded-For, must not
    name the client (and the other way round)."""
    write_app(tmp_path)
    argv = run_argv("web:app", "--app-dir", str(tmp_path), *args)
    both = [("Forwarded", "for=198.51.100.9"), ("X-Forwarded-For", "203.0.113.7")]
    with running_server(argv=argv) as server:
        seen = get_json(server.port, "/", both)
    assert seen["client"] == [client, 0]


# ------------------------------------------------------------------ --reload


def wait_for_restarts(server: ServerProcess, count: int) -> None:
    server.wait_for_stderr(r"(?s)" + r"listening on .*" * count, timeout=RELOAD_TIMEOUT)


@pytest.mark.skipif(
    importlib.util.find_spec("watchfiles") is None, reason="needs watchfiles (the reload extra)"
)
def test_reload_restarts_after_a_change(tmp_path: Path) -> None:
    marker = tmp_path / "shutdown.marker"
    write_app(tmp_path, marker=marker)
    argv = run_argv("web:app", "--app-dir", str(tmp_path), "--reload", "--no-access-log")
    with running_server(argv=argv) as server:
        assert get_json(server.port)["version"] == "v1"
        # A different length too: a rewrite within the same second must not reuse the .pyc.
        write_app(tmp_path, version="version two", marker=marker)
        server.wait_for_stderr(r"web\.py changed: restarting the server", timeout=RELOAD_TIMEOUT)
        wait_for_restarts(server, 2)
        assert get_json(server.port)["version"] == "version two"
        assert marker.read_text() == "shut down"  # the old server's lifespan shutdown ran
        # A change that breaks the application: the server says why and waits for a fix.
        write_module(tmp_path, "web", "def broken(:\n")
        server.wait_for_stderr(r"exited with status 2; restarting on the next change", 20)
        write_app(tmp_path, version="v3", marker=marker)
        wait_for_restarts(server, 3)
        assert get_json(server.port)["version"] == "v3"
    stderr = server.stderr_text()
    assert "SyntaxError" in stderr
    ports = set(re.findall(r"listening on http://127\.0\.0\.1:(\d+)", stderr))
    assert ports == {str(server.port)}, stderr  # the same port throughout


def test_reload_without_watchfiles_says_how_to_get_it(tmp_path: Path) -> None:
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "watchfiles.py").write_text("raise ImportError('hidden by the test')\n")
    write_app(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(hidden)}
    result = run_command("web:app", "--app-dir", str(tmp_path), "--reload", env=env)
    assert result.returncode == 2, result.stderr
    assert one_error_line(result.stderr) == (
        "trio-http: error: --reload needs watchfiles: pip install 'trio-http[reload]'"
    )


def test_a_startup_failure_in_workers_stops_the_supervisor_with_3(tmp_path: Path) -> None:
    """Restarting cannot mend a failed application startup: no crash loop, status 3 at once."""
    write_module(tmp_path, "failing", FAILING_STARTUP)
    result = run_command("failing:app", "--port", "0", "--workers", "2", "--app-dir", str(tmp_path))
    assert result.returncode == 3, result.stderr
    assert "application startup failed: database unreachable" in result.stderr
    assert "keep dying" not in result.stderr


def test_websocket_options_reach_the_server(tmp_path: Path) -> None:
    """--ws-origin allow-list: a handshake from another Origin gets 403, an allowed one 101."""
    (tmp_path / "wsapp.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] == 'websocket':\n"
        "        await receive()\n"
        "        await send({'type': 'websocket.accept'})\n"
        "        await send({'type': 'websocket.close', 'code': 1000})\n"
    )
    argv = run_argv("wsapp:app", "--app-dir", str(tmp_path), "--lifespan", "off")
    argv += ["--ws-origin", "https://good.example", "--ws-max-size", "1K"]
    with running_server(argv=argv) as server:
        for origin, status in (("https://good.example", b"101"), ("https://evil.example", b"403")):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                sock.sendall(
                    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    b"Origin: " + origin.encode() + b"\r\n\r\n"
                )
                assert sock.recv(4096).startswith(b"HTTP/1.1 " + status), origin


def test_a_websocket_limit_that_cannot_work_is_refused_with_status_2(tmp_path: Path) -> None:
    write_app(tmp_path)
    result = run_command("web:app", "--port", "0", "--app-dir", str(tmp_path), "--ws-max-size", "0")
    assert result.returncode == 2, result.stderr
    assert "WebSockets: max_size must be at least 1 byte, not 0" in result.stderr
