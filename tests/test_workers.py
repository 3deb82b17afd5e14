"""``--workers N``: several processes on one port, supervised (real CLI, real signals)."""

from __future__ import annotations

import os
import re
import signal
import time

from blackbox import exchange, running_server, serve_argv, start_process

WORKER_STARTED = r"worker (\d) started \(pid (\d+)\)"


def worker_pids(text: str) -> dict[int, int]:
    """The latest pid of each worker number, from the supervisor's log."""
    pids: dict[int, int] = {}
    for number, pid in re.findall(WORKER_STARTED, text):
        pids[int(number)] = int(pid)
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); look at its state.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pids: list[int], timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [pid for pid in pids if alive(pid)]
        if not left:
            return []
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


def test_workers_share_the_port_and_stop_cleanly() -> None:
    with running_server("--workers", "2", "--no-access-log") as server:
        # Both workers announce the same port.
        server.wait_for_stderr(r"(?s)listening on .*listening on ")
        ports = set(re.findall(r"listening on http://127\.0\.0\.1:(\d+)", server.stderr_text()))
        assert ports == {str(server.port)}
        pids = worker_pids(server.stderr_text())
        assert len(pids) == 2
        for i in range(8):
            response = exchange(
                server.port,
                b"GET /echo/w%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % i,
                read_until_close=True,
            )
            assert response.endswith(b"w%d" % i)
        status = server.stop()
    assert status == 0
    assert wait_gone(list(pids.values())) == []
    assert "exited with status" not in server.stderr_text()


def test_dead_worker_is_restarted() -> None:
    with running_server("--workers", "2", "--no-access-log") as server:
        server.wait_for_stderr(r"(?s)listening on .*listening on ")
        first = worker_pids(server.stderr_text())
        os.kill(first[1], signal.SIGKILL)
        server.wait_for_stderr(r"worker 1 \(pid \d+\) died with status -9")
        server.wait_for_stderr(r"(?s)died with status -9.*worker 1 started")
        replaced = worker_pids(server.stderr_text())
        assert replaced[1] != first[1]
        assert replaced[2] == first[2]
        response = exchange(
            server.port,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            read_until_close=True,
        )
        assert response.startswith(b"HTTP/1.1 200 OK")
    assert wait_gone(list(replaced.values())) == []


def test_workers_die_with_a_killed_supervisor() -> None:
    server = start_process(serve_argv("--workers", "2", "--no-access-log"))
    try:
        server.wait_for_stderr(r"(?s)listening on .*listening on ")
        pids = worker_pids(server.stderr_text())
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        assert wait_gone(list(pids.values())) == []  # no orphans
    finally:
        server.kill()


def test_port_in_use_is_reported_once(tmp_path: object) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = serve_argv("--workers", "2")
        argv[argv.index("--port") + 1] = str(port)
        server = start_process(argv)
        try:
            assert server.wait(15) == 1
        finally:
            server.kill()
    assert "address already in use" in server.stderr_text()
    assert "Traceback" not in server.stderr_text()
