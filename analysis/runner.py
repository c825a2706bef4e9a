"""Running an analysis's named points: each a base scenario plus overrides, in a process of its
own (``mhd-sim run``), ``jobs`` at a time; a point already done is kept, so an interrupted
analysis resumes where it stopped."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from mhd_sim.scenario import ScenarioError, load
from mhd_sim.sweeps import execute, finished

Points = dict[str, tuple[Path, list[str]]]  # run name -> (base scenario file, overrides)


def run_points(points: Points, out: Path, extra: list[str], jobs: int) -> dict[str, str]:
    """Every point not done yet; run name -> ``done``, or why not. ``extra`` overrides apply
    to every point (a test shrinks them all)."""

    def one(name: str) -> tuple[str, str]:
        if finished(out / name):
            return name, "done"
        base, overrides = points[name]
        try:
            sc = load(base, [*overrides, *extra])
        except ScenarioError as e:
            return name, "error: " + "; ".join(e.problems)
        text = yaml.safe_dump(sc.resolved(), sort_keys=False, default_flow_style=None)
        status, error = execute(text, out / name)
        return name, status if status == "done" else f"{status}: {error}"

    status = {}
    with ThreadPoolExecutor(jobs) as pool:  # each point's line as it is known, in order
        for k, (name, s) in enumerate(pool.map(one, points), 1):
            print(f"[{k}/{len(points)}] {name}: {s}", flush=True)
            status[name] = s
    return status


def run_all(points: Points, out: Path, extra: list[str], jobs: int) -> bool:
    """``run_points``, each point that failed named on stderr; whether all are done."""
    failed = {n: s for n, s in run_points(points, out, extra, jobs).items() if s != "done"}
    for name, why in failed.items():
        print(f"{name}: {why}", file=sys.stderr)
    return not failed
