"""``trio-http serve``'s file-server options, black-box: the real CLI, raw bytes and curl."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from blackbox import HOST, request, running_server, start_process

from trio_http.cli.addresses import reachable_urls

REACHABLE = re.compile(r"reachable at http://127\.0\.0\.1:(?P<port>\d+)")


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    curl_path = shutil.which("curl")
    assert curl_path, "curl is assumed on every machine (see DEVELOPERS.md)"
    return subprocess.run(
        [curl_path, "--silent", "--show-error", "--max-time", "10", *args],
        capture_output=True,
        timeout=20,
        check=False,
    )


def test_mkcol_with_curl(tmp_path: Path) -> None:
    with running_server("--directory", str(tmp_path), "--no-access-log") as server:
        base = f"http://{HOST}:{server.port}/files"
        made = curl("-X", "MKCOL", "-o", "/dev/null", "-w", "%{http_code}", f"{base}/new/")
        again = curl("-X", "MKCOL", "-o", "/dev/null", "-w", "%{http_code}", f"{base}/new/")
        orphan = curl("-X", "MKCOL", "-o", "/dev/null", "-w", "%{http_code}", f"{base}/a/b/")
    assert (made.stdout, again.stdout, orphan.stdout) == (b"201", b"405", b"409")
    assert (tmp_path / "new").is_dir() and not (tmp_path / "a").exists()


def test_mkcol_refused_when_read_only(tmp_path: Path) -> None:
    with running_server("--directory", str(tmp_path), "--read-only") as server:
        response = request(server.port, "MKCOL", "/files/new/")
    assert response.status == 405
    assert not (tmp_path / "new").exists()


def test_extra_headers_on_every_response(tmp_path: Path) -> None:
    hsts = "Strict-Transport-Security: max-age=63072000"
    csp = "Content-Security-Policy: default-src 'self'"
    with running_server("--directory", str(tmp_path), "--header", hsts, "--header", csp) as server:
        responses = [
            request(server.port, "GET", "/"),
            request(server.port, "GET", "/files/missing"),
            request(server.port, "GET", "/files/"),
        ]
    for response in responses:
        assert response.header("strict-transport-security") == "max-age=63072000"
        assert response.header("content-security-policy") == "default-src 'self'"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("no colon here", "not a header field"),
        ("Content-Length: 3", "Content-Length is set by the server itself"),
        ("Bad Name: x", "not a header field"),
    ],
)
def test_bad_header_option(value: str, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trio_http", "serve", "--header", value],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr


def test_cors_options(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"abc")
    with running_server("--directory", str(tmp_path), "--cors") as server:
        preflight = request(
            server.port,
            "OPTIONS",
            "/files/a.txt",
            [("Origin", "https://x.example"), ("Access-Control-Request-Method", "PUT")],
        )
        get = request(server.port, "GET", "/files/a.txt", [("Origin", "https://x.example")])
    assert preflight.status == 204
    assert preflight.header("access-control-allow-origin") == "*"
    assert get.header("access-control-allow-origin") == "*"
    assert "ETag" in (get.header("access-control-expose-headers") or "")


def test_cors_and_cors_origin_exclude_each_other() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trio_http", "serve", "--cors", "--cors-origin", "https://a.b"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2 and "not both" in result.stderr


def test_healthz_is_logged_only_at_debug(tmp_path: Path) -> None:
    with running_server("--directory", str(tmp_path)) as server:
        health = request(server.port, "GET", "/healthz")
        assert request(server.port, "GET", "/").status == 200
    assert health.status == 200
    assert json.loads(health.body) == {"status": "ok"}
    assert health.header("content-type") == "application/json"
    lines = server.stdout_text().splitlines()
    assert len(lines) == 1 and '"GET / HTTP/1.1"' in lines[0], lines
    with running_server("--log-level", "debug") as server:
        assert request(server.port, "GET", "/healthz").status == 200
    assert "/healthz" in server.stdout_text()


def test_wildcard_address_prints_reachable_urls() -> None:
    server = start_process(
        [sys.executable, "-m", "trio_http", "serve", "--host", "0.0.0.0", "--port", "0"]
    )
    try:
        line = server._stderr.wait_for(REACHABLE, 30)
        assert line is not None, server.stderr_text()
        assert request(int(line["port"]), "GET", "/").status == 200
    finally:
        assert server.stop() == 0


def test_reachable_urls_keeps_specific_addresses_and_expands_wildcards() -> None:
    assert reachable_urls("https", [("127.0.0.1", 8443), ("::1", 8443)]) == [
        "https://127.0.0.1:8443",
        "https://[::1]:8443",
    ]
    urls = reachable_urls("http", [("0.0.0.0", 80)])
    assert urls[0] == "http://127.0.0.1:80"  # loopback first
    assert all(url.startswith("http://") and url.endswith(":80") for url in urls)


def test_curl_upload_with_a_wrong_content_digest_changes_nothing(tmp_path: Path) -> None:
    """Issue 15's check: ``curl -T`` with a wrong ``Content-Digest`` leaves the directory as
    it was; the right one stores the file, and a download can be verified the same way."""
    source = tmp_path / "upload.bin"
    data = bytes(range(256)) * 4096
    source.write_bytes(data)
    served = tmp_path / "served"
    served.mkdir()
    (served / "keep.bin").write_bytes(b"old")
    good = base64.b64encode(hashlib.sha256(data).digest()).decode()
    bad = base64.b64encode(hashlib.sha256(b"something else").digest()).decode()
    with running_server("--directory", str(served), "--no-access-log") as server:
        url = f"http://{HOST}:{server.port}/files/keep.bin"
        code = ["-o", "/dev/null", "-w", "%{http_code}"]
        refused = curl("-T", str(source), "-H", f"Content-Digest: sha-256=:{bad}:", *code, url)
        assert refused.stdout == b"400"
        assert sorted(p.name for p in served.iterdir()) == ["keep.bin"]
        assert (served / "keep.bin").read_bytes() == b"old"
        stored = curl("-T", str(source), "-H", f"Content-Digest: sha-256=:{good}:", *code, url)
        assert stored.stdout == b"204"
        head = curl("-sI", "-H", "Want-Repr-Digest: sha-256=1", url)
    assert (served / "keep.bin").read_bytes() == data
    fields = dict(
        line.split(": ", 1) for line in head.stdout.decode().splitlines()[1:] if ": " in line
    )
    assert {k.lower(): v for k, v in fields.items()}["repr-digest"] == f"sha-256=:{good}:"


def run_serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trio_http", "serve", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_auth_rules_from_the_command_line_and_a_file(tmp_path: Path) -> None:
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "a.txt").write_bytes(b"public")
    (tmp_path / "secret.txt").write_bytes(b"secret")
    rules = tmp_path / "rules.txt"
    rules.write_text("# who may do what\nme:s3cret@/:rw\n\n")
    with running_server(
        "--directory", str(tmp_path), "--auth-file", str(rules), "--auth", "@/public"
    ) as server:
        base = f"http://{HOST}:{server.port}/files"
        anonymous = curl("-o", "/dev/null", "-w", "%{http_code}", f"{base}/secret.txt")
        wrong = curl("-u", "me:nope", "-o", "/dev/null", "-w", "%{http_code}", f"{base}/secret.txt")
        me = curl("-u", "me:s3cret", f"{base}/secret.txt")
        public = curl(f"{base}/public/a.txt")
    assert (anonymous.stdout, wrong.stdout) == (b"401", b"401")
    assert (me.stdout, public.stdout) == (b"secret", b"public")
    # The failed login is in the log, with the user and the address, not the password.
    failed = [line for line in server.stderr_text().splitlines() if "failed login" in line]
    assert len(failed) == 1 and "'me'" in failed[0] and HOST in failed[0], failed
    assert "nope" not in server.stderr_text()
    # Passwords stay out of ps: the command line names the file only.
    assert "s3cret" not in " ".join(server.proc.args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--auth", "me:pw@/a:wr"], "unknown permission"),
        (["--auth", "me:pw"], "access rule"),
        (["--auth-file", "/nonexistent/rules"], "cannot read the auth file"),
    ],
)
def test_bad_auth_rules_stop_the_server_with_one_line(args: list[str], message: str) -> None:
    result = run_serve(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert message in result.stderr.splitlines()[-1]
    assert "pw" not in result.stderr.replace("--auth", "")


def test_auth_without_tls_off_loopback_warns(tmp_path: Path) -> None:
    server = start_process(
        [
            sys.executable,
            "-m",
            "trio_http",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--directory",
            str(tmp_path),
            "--auth",
            "me:pw@/:rw",
        ]
    )
    try:
        line = server._stderr.wait_for(REACHABLE, 30)
        assert line is not None, server.stderr_text()
    finally:
        assert server.stop() == 0
    warnings = [line for line in server.stderr_text().splitlines() if "WARNING" in line]
    assert any("--auth without TLS" in line for line in warnings), server.stderr_text()
    with running_server("--directory", str(tmp_path), "--auth", "me:pw@/:rw") as local:
        pass
    assert "--auth without TLS" not in local.stderr_text()  # loopback: nothing crosses a network
