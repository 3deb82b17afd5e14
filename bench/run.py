#!/usr/bin/env python3
"""Benchmark trio-http against hypercorn (trio worker), uvicorn (h11, asyncio) and nginx.

trio-http runs twice: its own file server (``trio-http serve``, server ``trio-http``) and the
raw ASGI app of bench/asgi_app.py (``trio-http run``, server ``trio-http-asgi``), which the
peers serve too; the WebSocket scenarios use that app's ``/ws`` echo endpoint.

Standard library only; the load generators are ``wrk`` and ``curl`` (Debian packages) and
bench/wsload.c, built here with ``cc`` for the WebSocket scenarios.
Run it with the interpreter of the venv that holds the servers (see bench/README.md):

    bench/.venv/bin/python bench/run.py [--quick] [--only SCENARIO] [--servers a,b]
                                        [--baseline GIT_REF]

Every server is pinned to CPU 0 and the load generator (and this runner) to CPU 1.
Results are printed as a Markdown table of medians and saved as JSON in bench/results/.
With --baseline, the trio-http of that commit (exported to bench/.ab/<sha>) is measured
alternately with the working tree's, as one more server named trio-http@<short sha>.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import gzip
import hashlib
import http.client
import importlib.metadata
import importlib.util
import io
import json
import os
import platform
import random
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
AB_DIR = BENCH_DIR / ".ab"  # exported baseline commits (--baseline), gitignored by its own file
HOST = "127.0.0.1"
SERVER_CPU = 0
CLIENT_CPU = 1
ALL_CPUS = frozenset(os.sched_getaffinity(0))  # before main() pins the runner to CLIENT_CPU
KEEP_ALIVE_S = 300  # generous keep-alive timeout for every server, so idle connections survive
INSTALL_HINT = "apt-get update && apt-get install -y wrk nginx curl gcc"
REQUIREMENTS_HINT = "pip install -r bench/requirements.txt"
TRIO_HTTP = "trio-http"  # trio-http's own server (trio-http serve)
TRIO_HTTP_ASGI = "trio-http-asgi"  # trio-http hosting bench/asgi_app.py (trio-http run)
WSLOAD_SOURCE = BENCH_DIR / "wsload.c"  # the WebSocket load generator
WSLOAD = BENCH_DIR / ".build" / "wsload"  # built from it by the runner (gitignored)
WS_PATH = "/ws"  # the echo endpoint of asgi_app.py
WS_BULK_CONNECTIONS = 8  # connections of the 1 MiB WebSocket echo scenario
Runs = dict[str, float]


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Config:
    duration: int  # seconds per wrk measurement
    warmup: int  # seconds of wrk warm-up per server and scenario (0: a few requests only)
    repeat: int
    connections: int
    idle_connections: int
    upload_mib: int
    data_dir: Path
    python: str
    pin: bool

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def upload_source(self) -> Path:
        return self.data_dir / f"upload-src-{self.upload_mib}m.bin"


@dataclass(frozen=True)
class Metric:
    key: str
    unit: str
    higher_is_better: bool

    @property
    def label(self) -> str:
        return f"{self.unit} {'↑' if self.higher_is_better else '↓'}"


REQS = Metric("rps", "req/s", True)
P50 = Metric("p50_ms", "p50 ms", False)
P99 = Metric("p99_ms", "p99 ms", False)
#: Server CPU time (user + system, /proc/PID/stat) per request or message: unlike req/s it
#: hardly moves when other work shares the machine, so it is the figure for a busy-machine A/B.
CPU_PER_REQ = Metric("cpu_us_per_req", "server CPU µs/req", False)
CPU_PER_MSG = Metric("cpu_us_per_msg", "server CPU µs/msg", False)
WRK_METRICS = (REQS, P50, P99, CPU_PER_REQ)  # every wrk scenario: throughput, latency, cost
MSGS = Metric("msgs_per_s", "msg/s", True)
WS_METRICS = (MSGS, P50, P99, CPU_PER_MSG)  # WebSocket echoes: p50/p99 of the round trip
MBPS = Metric("mbps", "MB/s", True)
PEAK_RSS = Metric("peak_rss_mib", "peak RSS MiB", False)
RSS_GROWTH = Metric("rss_growth_mib", "RSS growth MiB", False)
KIB_PER_CONN = Metric("kib_per_conn", "KiB/idle conn", False)
REQS_PER_CPU = Metric("rps_per_cpu_s", "req per server CPU-s", True)
#: Requests (or WebSockets) timed while the idle ones are held (a median of 5 ranged from 0.9
#: to 1.4 ms between runs of one server).
HELD_SAMPLES = 50
HELD_LATENCY = Metric("latency_ms", "ms/request with idle conns held", False)
KIB_PER_WS = Metric("kib_per_ws", "KiB/idle WebSocket", False)
WS_HELD_LATENCY = Metric("ws_latency_ms", "ms/new WebSocket + echo with idle ones held", False)


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


@dataclass(frozen=True)
class ServerSpec:
    name: str
    module: str | None  # Python module that must be importable, None for nginx
    static_only: bool  # only serves the static-file scenarios
    command: Callable[[Config, int, Path], list[str]]
    # Put first on the server's PYTHONPATH (before bench/): where its trio_http comes from.
    pythonpath: tuple[Path, ...] = ()
    commit: str | None = None  # the git commit it runs, for a baseline (--baseline)
    asgi: bool = False  # serves bench/asgi_app.py: compared with trio-http-asgi
    websocket: bool = False  # takes part in the WebSocket scenarios (the app's /ws)
    websocket_only: bool = False  # takes part in nothing else
    reference: bool = False  # a yardstick rather than a server: only when named in --servers

    @property
    def is_trio_http(self) -> bool:
        """trio-http itself or a baseline version of it (trio-http@<sha>)."""
        return self.name == TRIO_HTTP or self.name.startswith(TRIO_HTTP + "@")


def trio_http_command(cfg: Config, port: int, tmp: Path) -> list[str]:
    return [
        cfg.python, "-m", "trio_http", "serve", "--host", HOST, "--port", str(port),
        "--directory", str(cfg.files_dir), "--no-access-log", "--log-level", "warning",
        "--backlog", "4096", "--timeout-keep-alive", str(KEEP_ALIVE_S),
    ]  # fmt: skip


def trio_http_asgi_command(cfg: Config, port: int, tmp: Path) -> list[str]:
    return [
        cfg.python, "-m", "trio_http", "run", "asgi_app:app", "--app-dir", str(BENCH_DIR),
        "--host", HOST, "--port", str(port), "--no-access-log", "--log-level", "warning",
        "--backlog", "4096", "--timeout-keep-alive", str(KEEP_ALIVE_S),
    ]  # fmt: skip


def hypercorn_command(cfg: Config, port: int, tmp: Path) -> list[str]:
    # workers = 0 serves from the hypercorn process itself (no supervisor process), like
    # uvicorn's default. keep_alive_max_requests would otherwise reconnect every 1000 requests.
    conf = tmp / f"hypercorn-{port}.toml"
    conf.write_text(
        f'bind = ["{HOST}:{port}"]\nworker_class = "trio"\nworkers = 0\nbacklog = 4096\n'
        f"keep_alive_timeout = {KEEP_ALIVE_S}\nkeep_alive_max_requests = 1000000000\n"
        'loglevel = "WARNING"\n'
    )
    return [cfg.python, "-m", "hypercorn", "--config", str(conf), "asgi_app:app"]


def uvicorn_command(cfg: Config, port: int, tmp: Path, ws: str = "wsproto") -> list[str]:
    return [
        cfg.python, "-m", "uvicorn", "asgi_app:app", "--host", HOST, "--port", str(port),
        "--http", "h11", "--loop", "asyncio", "--ws", ws, "--no-access-log",
        "--log-level", "warning", "--backlog", "4096", "--timeout-keep-alive", str(KEEP_ALIVE_S),
    ]  # fmt: skip


def uvicorn_websockets_command(cfg: Config, port: int, tmp: Path) -> list[str]:
    return uvicorn_command(cfg, port, tmp, ws="websockets")


def ws_floor_command(cfg: Config, port: int, tmp: Path) -> list[str]:
    return [cfg.python, str(BENCH_DIR / "ws_floor.py"), "--host", HOST, "--port", str(port)]


def nginx_command(cfg: Config, port: int, tmp: Path) -> list[str]:
    prefix = tmp / f"nginx-{port}"
    prefix.mkdir()
    temp_paths = "\n".join(
        f"    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = prefix / "nginx.conf"
    conf.write_text(f"""daemon off;
master_process off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 20000; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout {KEEP_ALIVE_S}s;
    keepalive_requests 1000000000;
    default_type application/octet-stream;
{temp_paths}
    server {{
        listen {HOST}:{port} backlog=4096;
        location = / {{ return 200 ""; }}
        location /files/ {{ alias {cfg.files_dir}/; }}
    }}
}}
""")
    return ["nginx", "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]


SERVERS = {
    spec.name: spec
    for spec in (
        # The working tree of this checkout, whatever the venv has installed.
        ServerSpec(TRIO_HTTP, "trio_http", False, trio_http_command, (REPO_DIR,)),
        ServerSpec(
            TRIO_HTTP_ASGI,
            "trio_http",
            False,
            trio_http_asgi_command,
            (REPO_DIR,),
            asgi=True,
            websocket=True,
        ),
        ServerSpec("hypercorn", "hypercorn", False, hypercorn_command, asgi=True, websocket=True),
        ServerSpec("uvicorn", "uvicorn", False, uvicorn_command, asgi=True, websocket=True),
        ServerSpec(
            "uvicorn-websockets",
            "websockets",
            False,
            uvicorn_websockets_command,
            asgi=True,
            websocket=True,
            websocket_only=True,
        ),
        ServerSpec("nginx", None, True, nginx_command),
        # The least a Trio task per WebSocket can cost (bench/ws_floor.py): for ws-idle.
        ServerSpec(
            "trio-floor",
            "wsproto",
            False,
            ws_floor_command,
            websocket=True,
            websocket_only=True,
            reference=True,
        ),
    )
}


def git(*args: str) -> str:
    out = subprocess.run(["git", "-C", str(REPO_DIR), *args], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"git {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout.strip()


def export_commit(ref: str) -> tuple[str, Path]:
    """Export commit *ref* of this repository to bench/.ab/<sha> (once; reused afterwards).

    ``git archive`` rather than a worktree: it only reads the repository, so nothing needs
    cleaning up in .git.  Returns the full sha and the directory to put on PYTHONPATH.
    """
    sha = git("rev-parse", "--verify", "--end-of-options", f"{ref}^{{commit}}")
    AB_DIR.mkdir(exist_ok=True)
    ignore = AB_DIR / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# exported baseline commits (bench/run.py --baseline)\n*\n")
    tree = AB_DIR / sha
    if not tree.is_dir():
        archive = subprocess.run(
            ["git", "-C", str(REPO_DIR), "archive", "--format=tar", sha],
            capture_output=True,
            check=True,
        ).stdout
        partial = Path(tempfile.mkdtemp(prefix=f".{sha[:12]}-", dir=AB_DIR))
        partial.chmod(0o755)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(partial, filter="data")
            else:  # pragma: no cover - Python without extraction filters
                tar.extractall(partial)
        try:
            partial.rename(tree)  # complete or absent, even if interrupted
        except OSError:  # another run exported it meanwhile
            shutil.rmtree(partial, ignore_errors=True)
    root = tree / "src" if (tree / "src" / "trio_http").is_dir() else tree
    if not (root / "trio_http" / "__main__.py").is_file():
        raise RuntimeError(f"commit {sha[:12]} has no runnable trio_http package")
    return sha, root


def baseline_spec(ref: str) -> ServerSpec:
    """A trio-http server running commit *ref*: the same venv and command, another tree."""
    sha, root = export_commit(ref)
    name = f"{TRIO_HTTP}@{git('rev-parse', '--short', sha)}"
    return ServerSpec(name, "trio_http", False, trio_http_command, (root,), sha)


def working_tree_commit() -> str:
    """HEAD of this checkout, noting uncommitted changes to trio_http/ (what trio-http runs)."""
    try:
        head = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--", "trio_http")
    except (OSError, RuntimeError):
        return "unknown"
    return f"{head} + uncommitted changes" if dirty else head


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def pinned(cpu: int, cmd: list[str], cfg: Config) -> list[str]:
    return ["taskset", "-c", str(cpu), *cmd] if cfg.pin else cmd


def unpinned(cmd: list[str], cfg: Config) -> list[str]:
    """*cmd* free to run on every CPU (the runner itself is pinned, and children inherit it)."""
    every = ",".join(str(cpu) for cpu in sorted(ALL_CPUS))
    return ["taskset", "-c", every, *cmd] if cfg.pin else cmd


def start_server(
    spec: ServerSpec,
    cfg: Config,
    tmp: Path,
    running: list[Server],
    extra_args: tuple[str, ...] = (),
    pin: bool = True,
) -> Server:
    port = free_port()
    log = tmp / f"{spec.name}-{port}.log"
    pythonpath = os.pathsep.join(str(path) for path in (*spec.pythonpath, BENCH_DIR))
    env = {**os.environ, "BENCH_DATA_DIR": str(cfg.files_dir), "PYTHONPATH": pythonpath}
    command = [*spec.command(cfg, port, tmp), *extra_args]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            pinned(SERVER_CPU, command, cfg) if pin else unpinned(command, cfg),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            cwd=BENCH_DIR, env=env, start_new_session=True,  # own process group = its PID
        )  # fmt: skip
    server = Server(spec.name, port, proc, log)
    running.append(server)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{spec.name} exited ({proc.returncode}):\n{tail(log)}")
        with contextlib.suppress(OSError):
            if http_get(server, "/")[0] == 200:
                return server
        time.sleep(0.05)
    raise RuntimeError(f"{spec.name} did not answer on port {port} within 30 s:\n{tail(log)}")


def stop_server(server: Server, running: list[Server]) -> None:
    """Stop the server's whole process group: SIGTERM, then SIGKILL after 5 s."""
    if server in running:
        running.remove(server)
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.proc.wait(timeout=wait)
            with contextlib.suppress(ProcessLookupError):  # leftover children
                os.killpg(server.proc.pid, signal.SIGKILL)
            return


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --------------------------------------------------------------------------- measuring memory


def process_group(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()  # state ppid pgrp ...
        if int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


def status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def process_tree(root: int) -> list[int]:
    """*root* and all its descendants (workers run in sessions of their own, so a process
    group would miss them)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(server: Server) -> float:
    """User + system CPU time so far of the server's whole process tree."""
    ticks = 0
    for pid in process_tree(server.proc.pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_kib(server: Server) -> int:
    return sum(status_kib(pid, "VmRSS") for pid in process_group(server.proc.pid))


class PeakRss:
    """Peak RSS of a server's process tree while the block runs: polls VmRSS every 5 ms and,
    where the peak could be reset (``clear_refs``), also reads the kernel's VmHWM."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._hwm_reset = False

    def _poll(self) -> None:
        while not self._stop.wait(0.005):
            self.peak_kib = max(self.peak_kib, rss_kib(self.server))

    def __enter__(self) -> PeakRss:
        try:
            for pid in process_group(self.server.proc.pid):
                Path(f"/proc/{pid}/clear_refs").write_text("5")
            self._hwm_reset = True
        except OSError:
            pass
        self.peak_kib = rss_kib(self.server)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._hwm_reset:
            hwm = sum(status_kib(pid, "VmHWM") for pid in process_group(self.server.proc.pid))
            self.peak_kib = max(self.peak_kib, hwm)


# --------------------------------------------------------------------------- clients


def http_get(
    server: Server, path: str, headers: dict[str, str] | None = None, timeout: float = 5.0
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(HOST, server.port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def parse_wrk(output: str) -> Runs:
    """Requests/sec, latency percentiles (ms) and error counts from wrk's text output."""
    match = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if not match:
        raise RuntimeError(f"could not parse wrk output:\n{output}")
    runs: Runs = {"rps": float(match[1])}
    for pct, value, unit in re.findall(
        r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M
    ):
        runs[f"p{pct}_ms"] = float(value) * _UNITS[unit]
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    runs["errors"] = float(sum(map(int, socket_errors.groups()))) if socket_errors else 0.0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    runs["non_2xx"] = float(non2xx[1]) if non2xx else 0.0
    return runs


def run_wrk(
    cfg: Config,
    url: str,
    connections: int,
    duration: int,
    headers: tuple[str, ...],
    pin: bool = True,
) -> Runs:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    for header in headers:
        cmd += ["-H", header]
    cmd = pinned(CLIENT_CPU, [*cmd, url], cfg) if pin else unpinned([*cmd, url], cfg)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return parse_wrk(out.stdout)


def run_curl(cfg: Config, args: list[str]) -> tuple[int, float, float]:
    """Run curl; return (HTTP status, bytes transferred, seconds)."""
    cmd = ["curl", "-sS", "-o", "/dev/null", "--max-time", "600", *args]
    out = subprocess.run(pinned(CLIENT_CPU, cmd, cfg), capture_output=True, text=True, check=True)
    code, size, seconds = out.stdout.split()
    return int(code), float(size), float(seconds)


def raw_request(port: int) -> bytes:
    return f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()


def read_head(sock: socket.socket) -> bytes:
    """Read one response to ``GET /`` (empty body: the head is the whole response)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed before the response ended")
        data += chunk
    return data


def timed_request(port: int) -> float:
    start = time.perf_counter()
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(raw_request(port))
        if not read_head(sock).startswith(b"HTTP/1.1 200"):
            raise RuntimeError("unexpected response while idle connections were held")
    return (time.perf_counter() - start) * 1000


@contextlib.contextmanager
def idle_connections(port: int, count: int, batch: int = 100) -> Iterator[list[socket.socket]]:
    """Open *count* connections, make one request on each so they sit in keep-alive, hold them."""
    socks: list[socket.socket] = []
    try:
        for start in range(0, count, batch):
            fresh = []
            for _ in range(min(batch, count - start)):
                sock = socket.create_connection((HOST, port), timeout=30)
                socks.append(sock)
                sock.sendall(raw_request(port))
                fresh.append(sock)
            for sock in fresh:
                if not read_head(sock).startswith(b"HTTP/1.1 200"):
                    raise RuntimeError("unexpected response on an idle connection")
        yield socks
    finally:
        for sock in socks:
            sock.close()


def still_alive(socks: list[socket.socket], port: int, sample: int = 100) -> float:
    """Fraction of a sample of the held connections that still answer a request."""
    step = max(1, len(socks) // sample)
    picked = socks[::step]
    alive = 0
    for sock in picked:
        with contextlib.suppress(OSError, ConnectionError):
            sock.sendall(raw_request(port))
            if read_head(sock).startswith(b"HTTP/1.1 200"):
                alive += 1
    return alive / len(picked)


class WebSocketClient:
    """A minimal blocking WebSocket client (RFC 6455) for checks and timed handshakes: no
    extensions, masked frames, pings answered, fragments joined."""

    GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, port: int, path: str = WS_PATH, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buffer = b""
        key = base64.b64encode(os.urandom(16))
        try:
            self.sock.sendall(
                b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n" % (path.encode(), HOST.encode(), port, key)
            )
            while b"\r\n\r\n" not in self.buffer:
                self._recv()
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            if not lines[0].startswith("HTTP/1.1 101"):
                raise RuntimeError(f"WebSocket handshake answered {lines[0]!r}")
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines[1:])
            }
            accept = base64.b64encode(hashlib.sha1(key + self.GUID).digest()).decode()
            if headers.get("sec-websocket-accept") != accept:
                raise RuntimeError("WebSocket handshake: wrong Sec-WebSocket-Accept")
            if "sec-websocket-extensions" in headers:
                raise RuntimeError("WebSocket handshake: an extension nobody asked for")
        except BaseException:
            self.sock.close()
            raise

    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("WebSocket connection closed by the server")
        self.buffer += chunk

    def _take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._recv()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def send(self, opcode: int, payload: bytes) -> None:
        size = len(payload)
        if size < 126:
            head = bytes((0x80 | opcode, 0x80 | size))
        elif size < 65536:
            head = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
        else:
            head = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
        mask = os.urandom(4)
        key = int.from_bytes((mask * (size // 4 + 1))[:size], "big")
        masked = (int.from_bytes(payload, "big") ^ key).to_bytes(size, "big")
        self.sock.sendall(head + mask + masked)

    def receive(self) -> tuple[int, bytes]:
        """The next data message: (opcode, payload); 8 (close) with its payload at the end."""
        message_opcode, parts = 0, []
        while True:
            first, second = self._take(2)
            size = second & 0x7F
            if size >= 126:
                size = int.from_bytes(self._take(2 if size == 126 else 8), "big")
            if second & 0x80:
                raise RuntimeError("the server masked a frame")
            if first & 0x70:
                raise RuntimeError("a frame with reserved bits set (compression?)")
            opcode, payload = first & 0x0F, self._take(size)
            if opcode == 0x9:
                self.send(0xA, payload)
            elif opcode == 0x8:
                return opcode, payload
            elif opcode != 0xA:
                message_opcode = opcode or message_opcode
                parts.append(payload)
                if first & 0x80:
                    return message_opcode, b"".join(parts)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.send(0x8, (1000).to_bytes(2, "big"))
        self.sock.close()


def ws_echo(port: int, opcode: int, payload: bytes) -> str | None:
    """Echo *payload* once on a new WebSocket: an error message, or None."""
    client = WebSocketClient(port)
    try:
        client.send(opcode, payload)
        got_opcode, got = client.receive()
    finally:
        client.close()
    kind = {1: "text", 2: "binary"}.get(opcode, str(opcode))
    if got_opcode != opcode or got != payload:
        return (
            f"WebSocket {kind} echo of {len(payload)} bytes: got opcode {got_opcode}, {got[:40]!r}"
        )
    return None


def timed_ws_echo(port: int) -> float:
    start = time.perf_counter()
    if error := ws_echo(port, 0x1, b"idle-websocket-1"):
        raise RuntimeError(error)
    return (time.perf_counter() - start) * 1000


def build_wsload() -> Path:
    """Compile bench/wsload.c into bench/.build/wsload if the binary is missing or older."""
    if WSLOAD.exists() and WSLOAD.stat().st_mtime >= WSLOAD_SOURCE.stat().st_mtime:
        return WSLOAD
    WSLOAD.parent.mkdir(exist_ok=True)
    cc = os.environ.get("CC", "cc")
    cmd = [cc, "-O2", "-Wall", "-Wextra", "-o", str(WSLOAD), str(WSLOAD_SOURCE)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"building wsload failed: {' '.join(cmd)}\n{out.stderr}")
    return WSLOAD


def run_wsload_echo(
    cfg: Config, server: Server, connections: int, size: int, binary: bool, duration: int
) -> Runs:
    """One closed-loop echo run of wsload; adds the server's CPU use (CPU-s per second) and
    names wsload's own (``client_cpu``: near 1.0, the generator is the limit)."""
    cmd = [str(WSLOAD), "echo", "-p", str(server.port), "-u", WS_PATH, "-c", str(connections)]
    cmd += ["-d", str(duration), "-s", str(size), *(["-b"] if binary else [])]
    cpu_before, start = cpu_seconds(server), time.monotonic()
    out = subprocess.run(
        pinned(CLIENT_CPU, cmd, cfg), capture_output=True, text=True, timeout=duration + 120
    )
    wall = time.monotonic() - start
    lines = out.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"wsload failed ({out.returncode}): {out.stderr.strip()}")
    raw = json.loads(lines[-1])
    runs: Runs = {key: float(value) for key, value in raw.items()}
    runs["mbps"] = runs.pop("mb_per_s")
    runs["client_cpu"] = runs.pop("cpu")
    used = cpu_seconds(server) - cpu_before
    runs["server_cpu"] = used / wall
    # Includes opening and closing the connections: small beside the messages of a run.
    runs["cpu_us_per_msg"] = used / runs["messages"] * 1e6 if runs["messages"] else 0.0
    return runs


def read_json_line(proc: subprocess.Popen[str], timeout: float) -> dict[str, float]:
    """The next line wsload prints, as JSON, waiting at most *timeout* seconds."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise RuntimeError(f"wsload said nothing within {timeout:.0f} s")
    line = proc.stdout.readline()
    if not line:
        stderr = proc.stderr.read() if proc.stderr else ""
        raise RuntimeError(f"wsload exited ({proc.wait()}): {stderr.strip()}")
    parsed: dict[str, float] = json.loads(line)
    return parsed


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    metrics: tuple[Metric, ...]
    measure: Callable[[Config, Server, int], Runs]  # (config, server, run index) -> values
    check: Callable[[Server], str | None] = lambda server: None  # an error message, or None
    warmup: Callable[[Config, Server], None] | None = None
    static: bool = False  # nginx takes part
    fresh_server_per_run: bool = False  # restart the servers for every run (memory scenarios)
    tools: tuple[str, ...] = ("wrk",)
    trio_http_only: bool = False  # no peers (the workers scenarios)
    websocket: bool = False  # only the servers of the app's /ws endpoint
    server_args: tuple[str, ...] = ()  # appended to the server's command line
    pin_server: bool = True  # False: the server may use every CPU


_WORDS = ("lorem", "ipsum", "dolor", "sit", "amet", "elit", "sed", "do", "tempor", "magna")
_rng = random.Random(1)
ECHO_1K = "-".join(_rng.choice(_WORDS) for _ in range(400))[:1024]  # URL-safe, compressible


def check_response(
    path: str,
    *,
    status: int = 200,
    body: bytes | None = None,
    length: int | None = None,
    headers: dict[str, str] | None = None,
    gzipped: bool = False,
) -> Callable[[Server], str | None]:
    def check(server: Server) -> str | None:
        got_status, got_headers, got_body = http_get(server, path, headers, timeout=30)
        if got_status != status:
            return f"GET {path[:40]}: status {got_status}, expected {status}"
        if gzipped:
            if got_headers.get("content-encoding") != "gzip":
                return f"GET {path[:40]}: no Content-Encoding: gzip"
            got_body = gzip.decompress(got_body)
        if body is not None and got_body != body:
            return f"GET {path[:40]}: unexpected body {got_body[:40]!r}"
        if length is not None and len(got_body) != length:
            return f"GET {path[:40]}: body of {len(got_body)} bytes, expected {length}"
        return None

    return check


def wrk_scenario(
    name: str,
    description: str,
    path: str,
    check: Callable[[Server], str | None],
    *,
    headers: tuple[str, ...] = (),
    connections: int | None = None,
    static: bool = False,
) -> Scenario:
    def conns(cfg: Config) -> int:
        return connections or cfg.connections

    def measure(cfg: Config, server: Server, run: int) -> Runs:
        before = cpu_seconds(server)
        values = run_wrk(cfg, server.url + path, conns(cfg), cfg.duration, headers)
        used = cpu_seconds(server) - before
        requests = values["rps"] * cfg.duration
        values["cpu_us_per_req"] = used / requests * 1e6 if requests else 0.0
        return values

    def warmup(cfg: Config, server: Server) -> None:
        if cfg.warmup:
            run_wrk(cfg, server.url + path, conns(cfg), cfg.warmup, headers)

    return Scenario(name, description, WRK_METRICS, measure, check, warmup, static)


def workers_scenario(count: int) -> Scenario:
    """``GET /`` on trio-http with ``--workers count``: requests per second and per CPU-second
    of the server's processes (supervisor and workers).  Nothing is pinned: server and wrk
    share every CPU, as they would in production."""

    def measure(cfg: Config, server: Server, run: int) -> Runs:
        before = cpu_seconds(server)
        values = run_wrk(cfg, server.url + "/", cfg.connections, cfg.duration, (), pin=False)
        used = cpu_seconds(server) - before
        values["rps_per_cpu_s"] = values["rps"] * cfg.duration / used if used else 0.0
        return values

    def warmup(cfg: Config, server: Server) -> None:
        if cfg.warmup:
            run_wrk(cfg, server.url + "/", cfg.connections, cfg.warmup, (), pin=False)

    return Scenario(
        f"workers-{count}",
        f"GET / with --workers {count}; server and wrk not pinned",
        (*WRK_METRICS, REQS_PER_CPU),
        measure,
        check_response("/", body=b""),
        warmup,
        trio_http_only=True,
        server_args=("--workers", str(count)),
        pin_server=False,
    )


def measure_download(cfg: Config, server: Server, run: int) -> Runs:
    size = (cfg.files_dir / "1g.bin").stat().st_size
    with PeakRss(server) as peak:
        code, got, seconds = run_curl(
            cfg, ["-w", "%{http_code} %{size_download} %{time_total}", server.url + "/files/1g.bin"]
        )
    if code != 200 or got != size:
        raise RuntimeError(f"download: status {code}, {got:.0f} of {size} bytes")
    return {"mbps": size / seconds / 1e6, "peak_rss_mib": peak.peak_kib / 1024}


def measure_upload(cfg: Config, server: Server, run: int) -> Runs:
    name = f"upload-{server.name}-{run}.bin"
    target = cfg.files_dir / name
    size = cfg.upload_source.stat().st_size
    before = rss_kib(server)
    try:
        with PeakRss(server) as peak:
            code, sent, seconds = run_curl(cfg, [
                "-w", "%{http_code} %{size_upload} %{time_total}",
                "-H", "Expect:", "-H", "Content-Type: application/octet-stream",
                "--data-binary", f"@{cfg.upload_source}", server.url + "/files/" + name,
            ])  # fmt: skip
        stored = target.stat().st_size if target.exists() else -1
        if code != 201 or sent != size or stored != size:
            raise RuntimeError(f"upload: status {code}, sent {sent:.0f}, stored {stored} of {size}")
    finally:
        target.unlink(missing_ok=True)
    return {"mbps": size / seconds / 1e6, "rss_growth_mib": (peak.peak_kib - before) / 1024}


def measure_idle(cfg: Config, server: Server, run: int) -> Runs:
    count = cfg.idle_connections
    before = rss_kib(server)
    start = time.perf_counter()
    with idle_connections(server.port, count) as socks:
        open_s = time.perf_counter() - start
        time.sleep(1.0)  # let the server settle
        after = rss_kib(server)
        latencies = [timed_request(server.port) for _ in range(HELD_SAMPLES)]
        alive = still_alive(socks, server.port)
    if alive < 1.0:
        print(f"    warning: only {alive:.0%} of the idle connections were still open at the end")
    return {
        "kib_per_conn": (after - before) / count,
        "latency_ms": statistics.median(latencies),
        "open_s": open_s,
        "alive_fraction": alive,
    }


def warm_small(cfg: Config, server: Server) -> None:
    for _ in range(20):
        http_get(server, "/")


def check_websocket(server: Server) -> str | None:
    rng = random.Random(2)
    return ws_echo(server.port, 0x1, b"hello " * 200) or ws_echo(
        server.port, 0x2, rng.randbytes(1 << 20)
    )


def ws_echo_scenario(
    name: str, description: str, metrics: tuple[Metric, ...], size: int, binary: bool, conns: int
) -> Scenario:
    """Closed-loop WebSocket echoes with wsload: each connection sends a message of *size*
    bytes, waits for it to come back, sends the next."""

    def connections(cfg: Config) -> int:
        return conns or cfg.connections

    def measure(cfg: Config, server: Server, run: int) -> Runs:
        return run_wsload_echo(cfg, server, connections(cfg), size, binary, cfg.duration)

    def warmup(cfg: Config, server: Server) -> None:
        if cfg.warmup:
            run_wsload_echo(cfg, server, connections(cfg), size, binary, cfg.warmup)
        else:
            for _ in range(20):
                timed_ws_echo(server.port)

    return Scenario(
        name, description, metrics, measure, check_websocket, warmup, tools=("cc",),
        websocket=True,
    )  # fmt: skip


def warm_ws(cfg: Config, server: Server) -> None:
    for _ in range(20):
        timed_ws_echo(server.port)


def measure_ws_idle(cfg: Config, server: Server, run: int) -> Runs:
    """Hold N idle WebSockets (each has echoed one message; wsload answers the server's
    pings): server RSS growth per WebSocket, and the time to open one more and echo on it."""
    count = cfg.idle_connections
    before = rss_kib(server)
    cmd = [str(WSLOAD), "idle", "-p", str(server.port), "-u", WS_PATH, "-c", str(count)]
    proc = subprocess.Popen(
        pinned(CLIENT_CPU, [*cmd, "-t", "900"], cfg),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        opened = read_json_line(proc, 600)
        if opened["open"] != count:
            raise RuntimeError(f"wsload opened {opened['open']:.0f} of {count}: {opened}")
        time.sleep(1.0)  # let the server settle
        after = rss_kib(server)
        latencies = [timed_ws_echo(server.port) for _ in range(HELD_SAMPLES)]
        assert proc.stdin is not None
        proc.stdin.write("check\n")
        proc.stdin.flush()
        checked = read_json_line(proc, 120)
    finally:
        with contextlib.suppress(OSError):
            if proc.stdin:
                proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe:
                pipe.close()
    alive = checked["alive"] / count
    if alive < 1.0:
        print(f"    warning: only {alive:.0%} of the idle WebSockets still echoed at the end")
    return {
        "kib_per_ws": (after - before) / count,
        "ws_latency_ms": statistics.median(latencies),
        "open_s": opened["seconds"],
        "alive_fraction": alive,
    }


SCENARIOS = {
    sc.name: sc
    for sc in (
        wrk_scenario("root", "GET / (empty body)", "/", check_response("/", body=b"")),
        wrk_scenario(
            "echo", "GET /echo/hello", "/echo/hello", check_response("/echo/hello", body=b"hello")
        ),
        wrk_scenario(
            "echo-gzip-1k",
            "GET /echo/<1 KiB text>, Accept-Encoding: gzip",
            f"/echo/{ECHO_1K}",
            check_response(
                f"/echo/{ECHO_1K}",
                body=ECHO_1K.encode(),
                headers={"Accept-Encoding": "gzip"},
                gzipped=True,
            ),
            headers=("Accept-Encoding: gzip",),
        ),
        wrk_scenario(
            "file-1k",
            "GET /files/1k.bin",
            "/files/1k.bin",
            check_response("/files/1k.bin", length=1024),
            static=True,
        ),
        wrk_scenario(
            "file-1m",
            "GET /files/1m.bin",
            "/files/1m.bin",
            check_response("/files/1m.bin", length=1024 * 1024),
            static=True,
        ),
        wrk_scenario(
            "close-per-request",
            "GET /, new connection per request (16 connections, Connection: close)",
            "/",
            check_response("/", body=b""),
            headers=("Connection: close",),
            connections=16,
        ),
        Scenario(
            "download-1g",
            "one 1 GiB download with curl; server's peak RSS during it",
            (MBPS, PEAK_RSS),
            measure_download,
            warmup=warm_small,
            static=True,
            fresh_server_per_run=True,
            tools=("curl",),
        ),
        Scenario(
            "upload",
            "one upload (POST, curl --data-binary @file); server's peak RSS growth",
            (MBPS, RSS_GROWTH),
            measure_upload,
            warmup=warm_small,
            fresh_server_per_run=True,
            tools=("curl",),
        ),
        workers_scenario(1),
        workers_scenario(2),
        Scenario(
            "idle-conns",
            "hold N idle keep-alive connections: RSS per connection, latency of a new request",
            (KIB_PER_CONN, HELD_LATENCY),
            measure_idle,
            warmup=warm_small,
            fresh_server_per_run=True,
            tools=(),
        ),
        ws_echo_scenario(
            "ws-echo-1k",
            "1 KiB text WebSocket echoes over --connections (64), one message in flight on each",
            WS_METRICS,
            1024,
            False,
            0,
        ),
        ws_echo_scenario(
            "ws-echo-1m",
            f"1 MiB binary WebSocket echoes, {WS_BULK_CONNECTIONS} connections",
            (MBPS, P50, P99),
            1 << 20,
            True,
            WS_BULK_CONNECTIONS,
        ),
        Scenario(
            "ws-idle",
            "hold N idle WebSockets: RSS per WebSocket, time to open one more and echo",
            (KIB_PER_WS, WS_HELD_LATENCY),
            measure_ws_idle,
            check_websocket,
            warm_ws,
            fresh_server_per_run=True,
            tools=("cc",),
            websocket=True,
        ),
    )
}


# --------------------------------------------------------------------------- data


def prepare_data(cfg: Config) -> None:
    """Create the served files (1 KiB, 1 MiB, sparse 1 GiB) and the upload source, once."""
    cfg.files_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for name, size in (("1k.bin", 1024), ("1m.bin", 1024 * 1024)):
        path = cfg.files_dir / name
        if not path.exists() or path.stat().st_size != size:
            path.write_bytes(rng.randbytes(size))
    big = cfg.files_dir / "1g.bin"
    if not big.exists() or big.stat().st_size != 1 << 30:
        with big.open("wb") as f:
            f.truncate(1 << 30)  # sparse: reads as zeros, costs no disk
    for stale in cfg.files_dir.glob("upload-*"):
        stale.unlink()
    src = cfg.upload_source
    if not src.exists() or src.stat().st_size != cfg.upload_mib << 20:
        block = rng.randbytes(1 << 20)
        with src.open("wb") as f:
            for i in range(cfg.upload_mib):
                f.write(block[i % 256 :] + block[: i % 256])
    buffer = bytearray(1 << 20)
    for path in [*cfg.files_dir.iterdir(), src]:  # pull everything into the page cache
        with path.open("rb") as f:
            while f.readinto(buffer):
                pass


# --------------------------------------------------------------------------- running


@dataclass
class Result:
    scenario: str
    server: str
    runs: list[Runs] = field(default_factory=list)
    error: str | None = None

    def median(self, key: str) -> float | None:
        values = [run[key] for run in self.runs if key in run]
        return statistics.median(values) if values else None


def run_scenario(
    sc: Scenario,
    specs: list[ServerSpec],
    cfg: Config,
    tmp: Path,
    running: list[Server],
    out: list[Result],
) -> None:
    """Measure *sc* on every server in *specs*, appending one Result per server to *out*."""
    results = {spec.name: Result(sc.name, spec.name) for spec in specs}
    out.extend(results.values())  # filled in as runs finish, so Ctrl-C keeps what was measured
    servers: dict[str, Server] = {}

    def fail(spec: ServerSpec, error: str) -> None:
        results[spec.name].error = error
        print(f"    {spec.name}: ERROR {error}")
        if spec.name in servers:
            stop_server(servers.pop(spec.name), running)

    try:
        for run in range(cfg.repeat):
            for spec in specs:
                result = results[spec.name]
                if result.error:
                    continue
                try:
                    if spec.name not in servers:
                        server = servers[spec.name] = start_server(
                            spec, cfg, tmp, running, sc.server_args, sc.pin_server
                        )
                        if run == 0 and (error := sc.check(server)):
                            fail(spec, error)
                            continue
                        if sc.warmup:
                            sc.warmup(cfg, server)
                    values = sc.measure(cfg, servers[spec.name], run)
                    if servers[spec.name].proc.poll() is not None:
                        raise RuntimeError(f"server died:\n{tail(servers[spec.name].log)}")
                    if sc.fresh_server_per_run:
                        # Now, not at its next run: a server still tearing down thousands of
                        # connections would take CPU 0 from the next server's measurement.
                        stop_server(servers.pop(spec.name), running)
                except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
                    detail = exc.stderr if isinstance(exc, subprocess.CalledProcessError) else ""
                    fail(spec, f"{exc} {detail}".strip())
                    continue
                result.runs.append(values)
                shown = ", ".join(f"{m.unit} {values[m.key]:,.1f}" for m in sc.metrics)
                errors = values.get("errors", 0) + values.get("non_2xx", 0)
                note = f"  ({errors:.0f} errors/non-2xx!)" if errors else ""
                if "client_cpu" in values:  # is the load generator the limit?
                    note += (
                        f"  (CPU: wsload {values['client_cpu']:.0%},"
                        f" server {values['server_cpu']:.0%})"
                    )
                print(f"    run {run + 1}/{cfg.repeat} {spec.name:<10} {shown}{note}", flush=True)
    finally:
        for server in servers.values():
            stop_server(server, running)


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def ratio_pairs(server_names: list[str]) -> list[tuple[str, str]]:
    """The (ours, peer) pairs of the ratio columns: trio-http against every other server but
    trio-http-asgi (nginx, the ASGI peers, a --baseline), trio-http-asgi against the other
    servers of the same ASGI app."""
    pairs = []
    if TRIO_HTTP in server_names:
        pairs += [(TRIO_HTTP, p) for p in server_names if p not in (TRIO_HTTP, TRIO_HTTP_ASGI)]
    if TRIO_HTTP_ASGI in server_names:
        pairs += [
            (TRIO_HTTP_ASGI, p)
            for p in server_names
            if p != TRIO_HTTP_ASGI and p in SERVERS and SERVERS[p].asgi
        ]
    return pairs


def markdown_table(results: list[Result], server_names: list[str]) -> str:
    by_scenario: dict[str, dict[str, Result]] = {}
    for result in results:
        by_scenario.setdefault(result.scenario, {})[result.server] = result
    rows: list[tuple[str, Metric, dict[str, float | None]]] = []
    for sc_name, per_server in by_scenario.items():
        for metric in SCENARIOS[sc_name].metrics:
            medians = {
                name: (per_server[name].median(metric.key) if name in per_server else None)
                for name in server_names
            }
            rows.append((sc_name, metric, medians))
    # Only the ratio columns with at least one value (trio-http serves no WebSocket, ...).
    pairs = [
        (ours, peer)
        for ours, peer in ratio_pairs(server_names)
        if any(medians[ours] is not None and medians[peer] for _, _, medians in rows)
    ]
    head = ["scenario", "metric", *server_names, *(f"{ours} / {peer}" for ours, peer in pairs)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for sc_name, metric, medians in rows:
        cells = [sc_name, metric.label, *(fmt(medians[name]) for name in server_names)]
        for ours, peer in pairs:
            mine, theirs = medians[ours], medians[peer]
            cells.append(f"{mine / theirs:.2f}" if mine is not None and theirs else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_info(cfg: Config) -> dict[str, object]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str] = {}
    for dist in ("trio-http", "trio", "h11", "wsproto", "hypercorn", "uvicorn", "websockets"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    if shutil.which("nginx"):
        out = subprocess.run(["nginx", "-v"], capture_output=True, text=True)
        versions["nginx"] = out.stderr.strip().rpartition("/")[2]
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "pinned": cfg.pin,
        "loadavg_at_start": os.getloadavg(),
        "versions": versions,
    }


def raise_fd_limit(needed: int) -> bool:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft == resource.RLIM_INFINITY or soft >= needed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: 1 run of 1 s, small sizes")
    p.add_argument("--duration", type=int, help="seconds per wrk run (default 10; quick 1)")
    p.add_argument("--warmup", type=int, help="seconds of wrk warm-up (default 2; quick 0)")
    p.add_argument("--repeat", type=int, help="runs per scenario and server (default 3; quick 1)")
    p.add_argument("--connections", type=int, default=64, help="keep-alive wrk connections")
    p.add_argument(
        "--idle", type=int, help="idle connections and WebSockets (default 10000; quick 1000)"
    )
    p.add_argument("--upload-mib", type=int, help="upload size in MiB (default 100; quick 10)")
    p.add_argument("--only", help="comma-separated scenarios: " + ", ".join(SCENARIOS))
    p.add_argument(
        "--servers",
        default=",".join(name for name, spec in SERVERS.items() if not spec.reference),
        help="comma-separated servers (trio-floor, a yardstick for ws-idle, only if named)",
    )
    p.add_argument("--data-dir", type=Path, default=BENCH_DIR / ".data", help="benchmark files")
    p.add_argument("--python", default=sys.executable, help="interpreter that runs the servers")
    p.add_argument("--no-pin", action="store_true", help="do not pin to CPUs with taskset")
    p.add_argument(
        "--baseline",
        metavar="REF",
        help="also run trio-http at this git commit (exported to bench/.ab/<sha>), as server\n"
        "trio-http@<short sha>, alternately with the working tree's; the table shows\n"
        "the ratio trio-http / trio-http@<short sha>",
    )
    return p.parse_args(argv)


def make_config(args: argparse.Namespace) -> Config:
    def pick(value: int | None, default: int, quick: int) -> int:
        return value if value is not None else (quick if args.quick else default)

    pin = not args.no_pin
    if pin and (len(os.sched_getaffinity(0)) < 2 or not shutil.which("taskset")):
        print("note: fewer than 2 CPUs or no taskset: running without CPU pinning")
        pin = False
    return Config(
        duration=pick(args.duration, 10, 1),
        warmup=pick(args.warmup, 2, 0),
        repeat=pick(args.repeat, 3, 1),
        connections=args.connections,
        idle_connections=pick(args.idle, 10_000, 1000),
        upload_mib=pick(args.upload_mib, 100, 10),
        data_dir=args.data_dir.resolve(),
        python=args.python,
        pin=pin,
    )


def select(args: argparse.Namespace, cfg: Config) -> tuple[list[Scenario], list[ServerSpec]]:
    names = args.only.split(",") if args.only else list(SCENARIOS)
    servers = args.servers.split(",")
    unknown = [n for n in names if n not in SCENARIOS] + [s for s in servers if s not in SERVERS]
    if unknown:
        sys.exit(f"unknown scenario or server: {', '.join(unknown)}")
    scenarios = [SCENARIOS[n] for n in names]
    specs = []
    for name in servers:
        spec = SERVERS[name]
        if spec.module and importlib.util.find_spec(spec.module) is None:
            hint = "pip install -e ." if spec.module == "trio_http" else REQUIREMENTS_HINT
            print(f"skipping {name}: module {spec.module!r} not importable here ({hint})")
            continue
        specs.append(spec)
    if args.baseline:
        try:
            baseline = baseline_spec(args.baseline)
        except (OSError, RuntimeError, subprocess.CalledProcessError, tarfile.TarError) as exc:
            sys.exit(f"--baseline {args.baseline}: {exc}")
        if importlib.util.find_spec("h11") is None or importlib.util.find_spec("trio") is None:
            sys.exit("--baseline needs trio and h11 in this venv (pip install -e .)")
        print(f"baseline: {baseline.name} = {baseline.commit} (from {baseline.pythonpath[0]})")
        # Right after the working tree's trio-http: measured alternately with it, and its
        # ratio column comes first.
        at = next((i + 1 for i, spec in enumerate(specs) if spec.name == TRIO_HTTP), 0)
        specs.insert(at, baseline)
    tools = {tool for sc in scenarios for tool in sc.tools}
    tools |= {"nginx"} if any(spec.name == "nginx" for spec in specs) else set()
    missing = sorted(tool for tool in tools if not shutil.which(tool))
    if missing:
        sys.exit(f"missing {', '.join(missing)}; install with: {INSTALL_HINT}")
    needed = cfg.idle_connections + 1000
    idle = {"idle-conns", "ws-idle"}
    if any(sc.name in idle for sc in scenarios) and not raise_fd_limit(needed):
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        print(
            f"skipping idle-conns, ws-idle: the open-files hard limit ({hard}) is below {needed};"
            " raise it (ulimit -Hn, /etc/security/limits.conf, LimitNOFILE) or pass a smaller"
            " --idle"
        )
        scenarios = [sc for sc in scenarios if sc.name not in idle]
    if any(sc.websocket for sc in scenarios):
        try:
            build_wsload()
        except (OSError, RuntimeError) as exc:
            sys.exit(str(exc))
    return scenarios, specs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = make_config(args)
    scenarios, specs = select(args, cfg)
    if cfg.pin:
        os.sched_setaffinity(0, {CLIENT_CPU})  # this runner (and so the idle client) on CPU 1

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    prepare_data(cfg)
    info = machine_info(cfg)
    commits = {s.name: s.commit or working_tree_commit() for s in specs if s.module == "trio_http"}
    if commits:
        info["commits"] = commits
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {info['nproc']} CPUs, {info['cpu']}, Python {info['python']}, load {load}")
    print(f"servers: {', '.join(s.name for s in specs)}; {cfg.repeat} run(s) of {cfg.duration} s")
    for name, commit in commits.items():
        print(f"  {name}: {commit}")
    print()

    results: list[Result] = []
    running: list[Server] = []
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="trio-http-bench-") as tmp:
        try:
            for sc in scenarios:
                applicable = [
                    s
                    for s in specs
                    if (sc.static or not s.static_only)
                    and (not sc.trio_http_only or s.is_trio_http)
                    and (s.websocket if sc.websocket else not s.websocket_only)
                ]
                load1 = os.getloadavg()[0]
                print(f"## {sc.name}: {sc.description} (load {load1:.2f})", flush=True)
                run_scenario(sc, applicable, cfg, Path(tmp), running, results)
        except KeyboardInterrupt:
            interrupted = True
            print("\ninterrupted: stopping servers, reporting what was measured")
        finally:
            for server in list(running):
                stop_server(server, running)

    names = [s.name for s in specs]
    table = markdown_table(results, names)
    print(f"\n{table}\n\nmedians of {cfg.repeat} run(s); ratios < 1 are better for ↓ metrics")
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = RESULTS_DIR / f"{stamp}{'-quick' if args.quick else ''}.json"
    config = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}
    info["loadavg_at_end"] = os.getloadavg()
    payload = {
        "machine": info,
        "config": config,
        "baseline_ref": args.baseline,
        "interrupted": interrupted,
        "results": [asdict(r) for r in results],
        "table": table,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"saved {out.relative_to(REPO_DIR) if out.is_relative_to(REPO_DIR) else out}")
    failed = any(r.error for r in results)
    return 130 if interrupted else (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
