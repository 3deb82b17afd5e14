#!/usr/bin/env python3
"""Paired A/B of trio-http's server CPU per request: two commits measured at the same time.

On a shared machine, req/s of runs taken one after the other differ by more than the changes
being measured.  Here both servers run *simultaneously*, pinned to the same CPU, each loaded by
its own wrk (both on the other CPU): whatever else the machine does hits both alike.  For each
server the figure is its CPU time (user + system, /proc/PID/stat) divided by the requests it
answered, so a server that got less of the CPU is not penalised for it.  Each round swaps
which server starts first; the ratio A/B is reported per round and as the median.

    bench/.venv/bin/python bench/ab_cpu.py --baseline bf1a31e [--ref HEAD] \\
        [--paths /,/echo/hello,/files/1k.bin] [--rounds 5] [--duration 5]

A is the working tree (or --ref), B the baseline.  A git ref is exported through run.py's
``export_commit`` (bench/.ab/<sha>); a directory that holds a ``trio_http`` package (a tree
with only some files changed, while others edit the working tree) runs in place.
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

import run  # bench/run.py: servers, wrk, data, exported commits

SERVER_CPU = run.SERVER_CPU
CLIENT_CPU = run.CLIENT_CPU


def spec_for(ref: str | None) -> run.ServerSpec:
    if ref is None:
        return run.SERVERS[run.TRIO_HTTP]
    if Path(ref, "trio_http").is_dir():  # a directory holding a trio_http package
        return run.ServerSpec(f"{run.TRIO_HTTP}@{Path(ref).name}", "trio_http", False,
                              run.trio_http_command, (Path(ref).resolve(),))  # fmt: skip
    return run.baseline_spec(ref)


def measure_pair(
    cfg: run.Config, servers: tuple[run.Server, run.Server], path: str, duration: int
) -> list[float]:
    """CPU µs per request of each server while both are loaded at once."""
    results: list[run.Runs | None] = [None, None]
    before = [run.cpu_seconds(server) for server in servers]

    def load(i: int) -> None:
        results[i] = run.run_wrk(cfg, servers[i].url + path, cfg.connections, duration, ())

    threads = [threading.Thread(target=load, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    used = [run.cpu_seconds(server) - b for server, b in zip(servers, before, strict=True)]
    per_request = []
    for values, cpu in zip(results, used, strict=True):
        if values is None or not values["rps"]:
            raise RuntimeError(f"wrk failed on {path}")
        per_request.append(cpu / (values["rps"] * duration) * 1e6)
    return per_request


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--baseline", required=True, help="git ref of B, or a directory")
    p.add_argument("--ref", help="git ref of A, or a directory (default: the working tree)")
    p.add_argument("--paths", default="/,/echo/hello,/files/1k.bin")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--connections", type=int, default=64, help="per wrk")
    args = p.parse_args()
    cfg = run.make_config(
        run.parse_args(["--connections", str(args.connections), "--duration", str(args.duration)])
    )
    run.prepare_data(cfg)
    specs = (spec_for(args.ref), spec_for(args.baseline))
    names = (args.ref or "working tree", args.baseline)
    os.sched_setaffinity(0, {CLIENT_CPU})
    print(f"A = {names[0]}, B = {names[1]}; load {os.getloadavg()}")
    running: list[run.Server] = []
    with tempfile.TemporaryDirectory(prefix="trio-http-abcpu-") as tmp:
        try:
            servers = tuple(run.start_server(spec, cfg, Path(tmp), running) for spec in specs)
            assert len(servers) == 2
            for path in args.paths.split(","):
                run.run_wrk(cfg, servers[0].url + path, cfg.connections, 1, ())  # warm-up
                run.run_wrk(cfg, servers[1].url + path, cfg.connections, 1, ())
                ratios, a_us, b_us = [], [], []
                for i in range(args.rounds):
                    order = (0, 1) if i % 2 == 0 else (1, 0)
                    pair = (servers[order[0]], servers[order[1]])
                    got = measure_pair(cfg, pair, path, args.duration)
                    a, b = (got[0], got[1]) if order == (0, 1) else (got[1], got[0])
                    a_us.append(a)
                    b_us.append(b)
                    ratios.append(a / b)
                    load = os.getloadavg()[0]
                    print(f"  {path} round {i + 1}: A {a:.1f} µs, B {b:.1f} µs, A/B {a / b:.3f}"
                          f" (load {load:.2f})", flush=True)  # fmt: skip
                print(
                    f"{path}: median A {statistics.median(a_us):.1f} µs/req,"
                    f" B {statistics.median(b_us):.1f} µs/req,"
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
