"""What Ray adds per sweep point: one sweep of short points on the local backend, then on a
two-node Ray cluster on this machine (benchmarks/netns_cluster.py, one CPU per node), both two
points at a time.

    python -m benchmarks.ray_overhead [--points 50] [--duration 2]   # needs root and iproute2

Prints each sweep's wall time (the whole command, Ray's start-up and the summary figures
included) and the added time per point, ``(ray − local) × 2 / points``: what a point costs on
a CPU of the cluster beyond its own run (the task, shipping its files back, the driver's
placement and polling). The cluster's own start (``ray start`` of both nodes) is printed
apart: a cluster outlives its sweeps.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from .netns_cluster import Cluster, why_not


def timed(run: Callable[[], subprocess.CompletedProcess]) -> float:
    start = time.perf_counter()
    done = run()
    if done.returncode:
        raise SystemExit(f"a sweep failed: {done.stderr.strip()[-800:]}")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=50)
    ap.add_argument("--duration", type=float, default=2.0, help="simulated s per point")
    ap.add_argument("--scenario", default="straggler")
    args = ap.parse_args()
    if why := why_not():
        raise SystemExit(f"no cluster here: {why}")
    sweep = [sys.executable, "-m", "mhd_sim", "sweep", args.scenario, "--seeds",
             str(args.points), "--set", f"duration={args.duration}", "--quiet"]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, Cluster() as c:
        local = timed(lambda: subprocess.run([*sweep, "--jobs", "2", "--out", f"{tmp}/local"],
                                             capture_output=True, text=True, cwd=tmp))  # fmt: skip
        start = time.perf_counter()
        c.add("head")
        c.add("w1")
        up = time.perf_counter() - start
        on_ray = [*sweep, "--backend", "ray", "--address", c.address, "--out", f"{tmp}/ray"]
        ray = timed(lambda: c.run("head", *on_ray, cwd=tmp, timeout=3600))
        rows = {d: pd.read_csv(Path(tmp) / d / "sweep.csv") for d in ("local", "ray")}
    runs = {d: r.wall_time_s.median() for d, r in rows.items()}  # a run's own time
    nodes = rows["ray"].node.value_counts().to_dict()
    print(f"{args.points} points of {args.scenario}, {args.duration:g} simulated s, two at a time")
    print(f"  local backend, --jobs 2:        {local:7.1f} s (a run: median {runs['local']:.2f} s)")
    print(f"  Ray, two nodes of one CPU each: {ray:7.1f} s (a run: median {runs['ray']:.2f} s;"
          f" points per node {nodes})")  # fmt: skip
    print(f"  the cluster's start (ray start, both nodes): {up:.1f} s, not counted")
    print(
        f"  Ray adds {(ray - local) * 2 / args.points:+.2f} s per point on a CPU "
        f"({ray / local:.2f}x the local sweep)"
    )


if __name__ == "__main__":
    main()
