#!/usr/bin/env python3
"""Paired A/B of server CPU per request (or per WebSocket message): two servers at once.

On a shared machine, req/s of runs taken one after the other differ by more than the changes
being measured.  Here both servers run *simultaneously*, pinned to the same CPU, each loaded by
its own wrk (or bench/wsload.c), both on the other CPU: whatever else the machine does hits
both alike.  For each server the figure is its CPU time (user + system, /proc/PID/stat) divided
by the requests or messages it answered, so a server that got less of the CPU is not penalised
for it.  Each round swaps which load starts first; the ratio A/B is reported per round and as
the median.

    bench/.venv/bin/python bench/ab_cpu.py --baseline bf1a31e [--ref HEAD] \\
        [--paths /,/echo/hello,/files/1k.bin] [--rounds 5] [--duration 5]
    bench/.venv/bin/python bench/ab_cpu.py --asgi --baseline uvicorn --paths ws-echo-1k

A (``--ref``, default the working tree) and B (``--baseline``) are each a git ref (exported
through run.py's ``export_commit`` to bench/.ab/<sha>), a directory holding a ``trio_http``
package (a tree with only some files changed, while others edit the working tree), or the name
of a peer server of run.py (``uvicorn``, ``hypercorn``).  With ``--asgi``, trio-http trees
serve bench/asgi_app.py (``trio-http run``) instead of ``trio-http serve``.  A path is a URL
path for wrk, or ``ws-echo-1k`` / ``ws-echo-1m`` (WebSocket echoes of the app's ``/ws``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import run  # bench/run.py: servers, wrk, wsload, data, exported commits

WS_LOADS = {"ws-echo-1k": (1024, False, None), "ws-echo-1m": (1 << 20, True, 8)}


def spec_for(ref: str | None, asgi: bool) -> run.ServerSpec:
    """The server for *ref* (see the module docstring)."""
    base = run.SERVERS[run.TRIO_HTTP_ASGI if asgi else run.TRIO_HTTP]
    if ref is None:
        return base
    if ref in run.SERVERS:
        return run.SERVERS[ref]
    if Path(ref, "trio_http").is_dir():
        root, name = Path(ref).resolve(), Path(ref).name
    else:
        sha, root = run.export_commit(ref)
        name = sha[:7]
    return run.ServerSpec(f"{base.name}@{name}", "trio_http", False, base.command, (root,))


def load(cfg: run.Config, server: run.Server, path: str, duration: int) -> float:
    """Load *server* for *duration* s; its CPU µs per request or message."""
    before = run.cpu_seconds(server)
    if path in WS_LOADS:
        size, binary, connections = WS_LOADS[path]
        values = run.run_wsload_echo(
            cfg, server, connections or cfg.connections, size, binary, duration
        )
        count = values["messages"]
    else:
        values = run.run_wrk(cfg, server.url + path, cfg.connections, duration, ())
        count = values["rps"] * duration
    if not count:
        raise RuntimeError(f"{server.name}: nothing answered on {path}")
    return (run.cpu_seconds(server) - before) / count * 1e6


def measure_pair(
    cfg: run.Config, servers: tuple[run.Server, run.Server], path: str, duration: int
) -> list[float]:
    """CPU µs per request of each server while both are loaded at once."""
    results: list[float | BaseException] = [0.0, 0.0]

    def one(i: int) -> None:
        try:
            results[i] = load(cfg, servers[i], path, duration)
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        if isinstance(result, BaseException):
            raise RuntimeError(str(result))
    return [float(r) for r in results]  # type: ignore[arg-type]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--baseline", required=True, help="B: a git ref, a directory or a peer")
    p.add_argument("--ref", help="A: a git ref, a directory or a peer (default: working tree)")
    p.add_argument("--asgi", action="store_true", help="trio-http trees serve asgi_app.py")
    p.add_argument("--paths", default="/,/echo/hello,/files/1k.bin")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--connections", type=int, default=64, help="per load generator")
    args = p.parse_args()
    cfg = run.make_config(
        run.parse_args(["--connections", str(args.connections), "--duration", str(args.duration)])
    )
    paths = args.paths.split(",")
    if any(path in WS_LOADS for path in paths):
        run.build_wsload()
    run.prepare_data(cfg)
    specs = (spec_for(args.ref, args.asgi), spec_for(args.baseline, args.asgi))
    os.sched_setaffinity(0, {run.CLIENT_CPU})
    load1 = os.getloadavg()[0]
    print(f"A = {specs[0].name}, B = {specs[1].name}; load {load1:.2f}", flush=True)
    running: list[run.Server] = []
    with tempfile.TemporaryDirectory(prefix="trio-http-abcpu-") as tmp:
        try:
            servers = tuple(run.start_server(spec, cfg, Path(tmp), running) for spec in specs)
            assert len(servers) == 2
            for path in paths:
                for server in servers:  # warm-up
                    load(cfg, server, path, 1)
                ratios, a_us, b_us = [], [], []
                for i in range(args.rounds):
                    swap = i % 2 == 1
                    pair = (servers[1], servers[0]) if swap else servers
                    got = measure_pair(cfg, pair, path, args.duration)
                    a, b = (got[1], got[0]) if swap else (got[0], got[1])
                    a_us.append(a)
                    b_us.append(b)
                    ratios.append(a / b)
                    load1 = os.getloadavg()[0]
                    print(f"  {path} round {i + 1}: A {a:.1f} µs, B {b:.1f} µs, A/B {a / b:.3f}"
                          f" (load {load1:.2f})", flush=True)  # fmt: skip
                print(
                    f"{path}: median A {statistics.median(a_us):.1f} µs,"
                    f" B {statistics.median(b_us):.1f} µs,"
                    f" A/B {statistics.median(ratios):.3f}"
                    f" (range {min(ratios):.3f}-{max(ratios):.3f})",
                    flush=True,
                )
        except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            for server in list(running):
                run.stop_server(server, running)
    return 0


if __name__ == "__main__":
    sys.exit(main())
