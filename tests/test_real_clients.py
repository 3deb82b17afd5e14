"""Real clients and a real proxy against the real server: urllib, and nginx in front.

nginx is required, not optional: ``./test.sh`` installs it when it is missing (as root), and
these tests fail rather than skip when it is absent, so CI always runs them.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from blackbox import running_server

NGINX_CONFIG = """
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream app {{
        server 127.0.0.1:{port};
        keepalive 4;
    }}
    server {{
        listen unix:{tmp}/nginx.sock;
        client_max_body_size 0;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
        }}
    }}
}}
"""


@pytest.fixture
def files(tmp_path: Path) -> Path:
    root = tmp_path / "files"
    root.mkdir()
    (root / "data.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    (root / "page.html").write_text("<h1>hello</h1>" * 100)
    return root


def test_urllib(files: Path) -> None:
    with running_server("--directory", str(files), "--no-access-log") as server:
        with urllib.request.urlopen(f"{server.url}/echo/urllib", timeout=10) as response:
            assert response.status == 200
            assert response.read() == b"urllib"
        request = urllib.request.Request(f"{server.url}/files/up.txt", data=b"posted", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201
        assert (files / "up.txt").read_bytes() == b"posted"
        request = urllib.request.Request(
            f"{server.url}/files/page.html", headers={"Accept-Encoding": "gzip"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Encoding"] in ("gzip", "br", "zstd")


def start_nginx(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    conf_dir = tmp / "nginx"
    conf_dir.mkdir()
    (conf_dir / "nginx.conf").write_text(NGINX_CONFIG.format(tmp=conf_dir, port=port))
    # /usr/sbin may be off PATH for a non-login shell; the package puts nginx there.
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(binary).exists(), "nginx is required: ./test.sh installs it (apt-get)"
    process = subprocess.Popen(
        [binary, "-c", str(conf_dir / "nginx.conf"), "-p", str(conf_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    sock = conf_dir / "nginx.sock"
    deadline = time.monotonic() + 10
    while not sock.exists():
        assert process.poll() is None, process.stderr.read() if process.stderr else b""
        assert time.monotonic() < deadline, "nginx did not start"
        time.sleep(0.02)
    return process


def curl(sock: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "-sS", "--unix-socket", str(sock), *args],
        capture_output=True,
        timeout=30,
        check=True,
    )


def test_through_nginx_reverse_proxy(tmp_path: Path, files: Path) -> None:
    tmp = tmp_path
    with running_server("--directory", str(files), "--no-access-log") as server:
        process = start_nginx(tmp, server.port)
        sock = tmp / "nginx" / "nginx.sock"
        try:
            assert curl(sock, "http://proxy/echo/via-nginx").stdout == b"via-nginx"
            # Several requests reuse the upstream keep-alive connection.
            out = curl(sock, "http://proxy/echo/a", "http://proxy/echo/b").stdout
            assert out == b"ab"
            # A large download passes through intact.
            body = curl(sock, "http://proxy/files/data.bin").stdout
            digest = hashlib.sha256((files / "data.bin").read_bytes()).digest()
            assert hashlib.sha256(body).digest() == digest
            # Ranges pass through.
            part = curl(sock, "-r", "100-199", "http://proxy/files/data.bin").stdout
            assert part == (files / "data.bin").read_bytes()[100:200]
            # Uploads (streamed by nginx with request buffering off) arrive complete.
            upload = tmp / "upload.bin"
            upload.write_bytes(os.urandom(3 * 1024 * 1024))
            result = curl(
                sock, "-T", str(upload), "-w", "%{http_code}", "http://proxy/files/up.bin"
            )
            assert result.stdout.endswith(b"201")
            assert (files / "up.bin").read_bytes() == upload.read_bytes()
            # Compression survives the proxy.
            compressed = curl(
                sock, "-H", "Accept-Encoding: gzip", "http://proxy/files/page.html"
            ).stdout
            assert gzip.decompress(compressed) == (files / "page.html").read_bytes()
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(10)


def run_curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=30, check=True)


def test_curl_upload_with_expect_100_continue(files: Path, tmp_path: Path) -> None:
    upload = tmp_path / "big.bin"
    upload.write_bytes(os.urandom(2 * 1024 * 1024))  # large enough for curl to send Expect
    with running_server("--directory", str(files), "--no-access-log") as server:
        result = run_curl("-v", "-T", str(upload), f"{server.url}/files/uploaded.bin")
        trace = result.stderr.decode()
        assert "Expect: 100-continue" in trace
        assert "HTTP/1.1 100 Continue" in trace  # sent when the handler starts reading
        assert "HTTP/1.1 201 Created" in trace
        assert (files / "uploaded.bin").read_bytes() == upload.read_bytes()


def test_curl_http10_and_ranges(files: Path) -> None:
    with running_server("--directory", str(files), "--no-access-log") as server:
        result = run_curl("-0", "-v", f"{server.url}/echo/old")
        assert result.stdout == b"old"
        assert "> GET /echo/old HTTP/1.0" in result.stderr.decode()
        assert "connection: close" in result.stderr.decode().lower()
        data = (files / "data.bin").read_bytes()
        assert run_curl("-r", "10-19", f"{server.url}/files/data.bin").stdout == data[10:20]
        assert run_curl("-r", "-5", f"{server.url}/files/data.bin").stdout == data[-5:]
        modified = run_curl(
            "-z",
            "Thu, 01 Jan 2099 00:00:00 GMT",
            "-w",
            "%{http_code}",
            f"{server.url}/files/data.bin",
        )
        assert modified.stdout == b"304"
