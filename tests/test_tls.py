"""HTTPS: serve() with an SSLContext, the CLI with --certfile/--keyfile, handshake timeout."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing
import trustme
from blackbox import running_server

from trio_http import ServerConfig, serve
from trio_http.builtin import build_app
from trio_http.http11 import HTTPConnection


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def https_get(port: int, target: str, context: ssl.SSLContext) -> bytes:
    with trio.fail_after(10):
        stream = await trio.open_ssl_over_tcp_stream(
            "127.0.0.1", port, ssl_context=context, https_compatible=True
        )
        async with stream:
            await stream.send_all(
                b"GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % target.encode()
            )
            data = b""
            while chunk := await stream.receive_some():
                data += chunk
            return data


async def test_https_with_serve(
    nursery: trio.Nursery,
    server_context: ssl.SSLContext,
    client_context: ssl.SSLContext,
    tmp_path: Path,
) -> None:
    (tmp_path / "f.bin").write_bytes(b"z" * 300_000)
    config = ServerConfig(access_log=False)
    start = partial(
        serve, build_app(tmp_path), "127.0.0.1", 0, config=config, ssl_context=server_context
    )
    (host, port), *_ = await nursery.start(start)
    assert host == "127.0.0.1" and port > 0
    data = await https_get(port, "/echo/secure", client_context)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.endswith(b"secure")
    # Files fall back from sendfile to ordinary writes over TLS.
    data = await https_get(port, "/files/f.bin", client_context)
    assert data.endswith(b"\r\n\r\n" + b"z" * 300_000)
    nursery.cancel_scope.cancel()


async def test_handshake_that_never_comes_is_dropped(
    server_context: ssl.SSLContext, autojump_clock: trio.testing.MockClock
) -> None:
    client, server = trio.testing.memory_stream_pair()
    tls = trio.SSLStream(server, server_context, server_side=True, https_compatible=True)
    connection = HTTPConnection(tls, build_app(), ServerConfig(access_log=False, header_timeout=7))
    start = trio.current_time()
    with trio.fail_after(60):
        await connection.run()  # returns by itself: nobody ever said hello
    assert trio.current_time() - start == pytest.approx(7, abs=0.01)
    await client.aclose()


@pytest.fixture
def cert_files(ca: trustme.CA, tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile, cafile = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(cafile))
    yield certfile, keyfile, cafile


def test_cli_serves_https_to_curl(cert_files: tuple[Path, Path, Path]) -> None:
    certfile, keyfile, cafile = cert_files
    args = ("--certfile", str(certfile), "--keyfile", str(keyfile), "--no-access-log")
    with running_server(*args) as server:
        assert "listening on https://" in server.stderr_text()
        result = subprocess.run(
            ["curl", "-sS", "--cacert", str(cafile), f"https://localhost:{server.port}/echo/tls"],
            capture_output=True,
            timeout=20,
            check=True,
        )
        assert result.stdout == b"tls"


def test_cli_refuses_certfile_without_keyfile(cert_files: tuple[Path, Path, Path]) -> None:
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "trio_http", "serve", "--certfile", str(cert_files[0])],
        capture_output=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert b"--certfile and --keyfile go together" in result.stderr
