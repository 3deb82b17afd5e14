"""Real tus clients against a real server process: tuspy (the tus project's Python client)
through connections cut mid-PATCH and a server killed with SIGKILL and restarted, and
tus-js-client under Node.

The server is a small script (``SERVER`` below: ``trio_http.serve`` with an App holding a
FileServer and a TusServer) started as its own process group and stopped by its PID, so the
tests do not depend on how the CLI wires tus in.  Between tuspy and the server sits
:class:`CuttingProxy`, a TCP proxy on 127.0.0.1 that forwards bytes and, at byte counts the
test picks, drops the connection or has the server killed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from blackbox import HOST, LISTENING, REPO, ServerProcess, serve_argv, start_process
from tusclient import client as tus_client

from trio_http.files.tus_store import STAGING_NAME
from trio_http.files.uploads import TEMP_PREFIX

MiB = 1024 * 1024
#: The tuspy upload: 1 GiB, as issue 15 asks (about 17 s on two cores with every PATCH
#: fsynced, and 2 GiB of temporary disk); TUS_UPLOAD_SIZE=67108864 for a quick local run.
UPLOAD_SIZE = int(os.environ.get("TUS_UPLOAD_SIZE", 1024 * MiB))
CHUNK_SIZE = 4 * MiB
NODE_DIR = REPO / "tests" / "node"


def start_server(root: Path) -> ServerProcess:
    # The real command a user runs: tus is at /uploads/ of every writable `serve --directory`.
    limit = str(2 * UPLOAD_SIZE)
    server = start_process(
        serve_argv("--directory", str(root), "--max-body-size", limit, "--no-access-log")
    )
    match = server._stderr.wait_for(LISTENING, 30)
    if match is None:
        server.kill()
        raise AssertionError(f"the tus server did not start:\n{server.stderr_text()}")
    server.port = int(match["port"])
    return server


@contextlib.contextmanager
def servers(root: Path) -> Iterator[list[ServerProcess]]:
    """A list holding the running server (the test appends restarted ones); all are killed
    by PID at the end."""
    started = [start_server(root)]
    try:
        yield started
    finally:
        for server in started:
            server.kill()


class CuttingProxy:
    """Forwards 127.0.0.1 connections to ``backend()``'s port; once the bytes sent by clients
    reach each of *events*' offsets, forwards exactly up to it, then runs its action (drop
    the connection, kill the server ...) and drops the connection."""

    def __init__(
        self, backend: Callable[[], int], events: list[tuple[int, Callable[[], None]]]
    ) -> None:
        self.backend = backend
        self.events = sorted(events, key=lambda event: event[0])
        self.fired: list[int] = []
        self.forwarded = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server((HOST, 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        self._sockets: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _drop(sock)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection((HOST, self.backend()), timeout=5)
            except OSError:
                _drop(client)  # the server is down: the client sees a dropped connection
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upload: bool) -> None:
        try:
            while data := source.recv(256 * 1024):
                action = None
                if upload:
                    with self._lock:
                        pending = [offset for offset, _ in self.events if offset not in self.fired]
                        if pending and self.forwarded + len(data) >= pending[0]:
                            data = data[: pending[0] - self.forwarded]
                            self.fired.append(pending[0])
                            action = dict(self.events)[pending[0]]
                        self.forwarded += len(data)
                sink.sendall(data)
                if action is not None:
                    action()
                    break
        except OSError:
            pass
        finally:
            _drop(source)
            _drop(sink)


def _drop(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def make_file(path: Path, size: int) -> str:
    """A file of *size* pseudo-random bytes (cheap to make: a repeated random block shifted
    per MiB, so no two chunks are equal); returns its sha256."""
    block = os.urandom(MiB + 251)
    digest = hashlib.sha256()
    with path.open("wb") as file:
        for index in range(0, size, MiB):
            piece = block[index % 251 : index % 251 + min(MiB, size - index)]
            file.write(piece)
            digest.update(piece)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(4 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


def leftovers(root: Path) -> list[str]:
    """Staging files, and temporary upload files anywhere under *root*."""
    staging = root / STAGING_NAME
    found = sorted(os.listdir(staging)) if staging.exists() else []
    found += [
        str(p.relative_to(root))
        for p in root.rglob(f"{TEMP_PREFIX}*")
        if p.is_file() and p.parent != staging
    ]
    return found


@pytest.mark.timeout(60 + UPLOAD_SIZE // (2 * MiB))  # 92 s for 64 MiB
def test_tuspy_survives_cut_connections_and_a_killed_server(tmp_path: Path) -> None:
    root = tmp_path / "served"
    root.mkdir()
    source = tmp_path / "source.bin"
    expected = make_file(source, UPLOAD_SIZE)
    with servers(root) as running:
        killed = threading.Event()
        restarted = threading.Event()

        def cut() -> None:
            pass  # the proxy drops the connection after the action

        def kill_and_restart() -> None:
            running[-1].kill()  # SIGKILL, mid-PATCH
            killed.set()
            running.append(start_server(root))
            restarted.set()

        third = UPLOAD_SIZE // 5
        events = [
            (1 * third + 12345, cut),  # mid-PATCH: chunk boundaries are multiples of 4 MiB
            (2 * third + 777, cut),
            (3 * third + 4321, cut),
            (4 * third + 99, kill_and_restart),
        ]
        proxy = CuttingProxy(lambda: running[-1].port, events)
        try:
            client = tus_client.TusClient(f"http://{HOST}:{proxy.port}/uploads/")
            uploader = client.uploader(
                str(source),
                chunk_size=CHUNK_SIZE,
                metadata={"filename": "incoming/big.bin"},
                retries=40,
                retry_delay=0.25,  # type: ignore[arg-type,unused-ignore]  # int in tuspy's hints
            )
            uploader.upload()
        finally:
            proxy.close()
        assert [offset for offset, _ in events] == proxy.fired
        # Resumed, not restarted: each interruption costs at most about a chunk again.
        print(f"forwarded {proxy.forwarded} bytes for {UPLOAD_SIZE}")
        assert proxy.forwarded < UPLOAD_SIZE + len(events) * (CHUNK_SIZE + MiB)
        assert killed.is_set() and restarted.is_set() and len(running) == 2
        assert running[0].proc.returncode == -9
        target = root / "incoming" / "big.bin"
        assert target.stat().st_size == UPLOAD_SIZE
        assert sha256_of(target) == expected
        assert leftovers(root) == []


def node_ready() -> str:
    """The node binary; fails (not skips) with what to do when Node or the client is missing."""
    node = shutil.which("node")
    assert node is not None, "Node.js is not installed (./test.sh installs it when root)"
    assert (NODE_DIR / "node_modules" / "tus-js-client").is_dir(), (
        f"tus-js-client is not installed: run 'npm ci --prefix {NODE_DIR}' (./test.sh does)"
    )
    return node


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "flags", [[], ["--during-creation"], ["--interrupt"]], ids=["plain", "creation", "resume"]
)
def test_tus_js_client_uploads(tmp_path: Path, flags: list[str]) -> None:
    node = node_ready()
    root = tmp_path / "served"
    root.mkdir()
    source = tmp_path / "source.bin"
    expected = make_file(source, 6 * MiB + 17)
    with servers(root) as running:
        endpoint = f"http://{HOST}:{running[0].port}/uploads/"
        result = subprocess.run(
            [node, str(NODE_DIR / "upload.mjs"), endpoint, str(source), "from-node/f.bin", *flags],
            capture_output=True,
            text=True,
            timeout=45,
            cwd=NODE_DIR,
        )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "uploaded http://" in result.stdout
    if "--interrupt" in flags:
        assert "interrupted at" in result.stdout
    assert sha256_of(root / "from-node" / "f.bin") == expected
    assert leftovers(root) == []
