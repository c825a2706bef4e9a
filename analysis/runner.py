"""Running an analysis's named points: each a base scenario plus overrides, in a process of its
own (``mhd-sim run``), ``jobs`` at a time; a point already done is kept, so an interrupted
analysis resumes where it stopped."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from mhd_sim.scenario import ScenarioError, load
from mhd_sim.sweeps import Point, finished, local_backend

Points = dict[str, tuple[Path, list[str]]]  # run name -> (base scenario file, overrides)


def run_points(points: Points, out: Path, extra: list[str], jobs: int) -> dict[str, str]:
    """Every point not done yet, through the sweep's own local backend; run name -> ``done``,
    or why not. ``extra`` overrides apply to every point (a test shrinks them all)."""
    status, todo = {}, []
    for name, (base, overrides) in points.items():
        if finished(out / name):
            status[name] = "done"
            continue
        try:
            sc = load(base, [*overrides, *extra])
        except ScenarioError as e:
            status[name] = "error: " + "; ".join(e.problems)
            continue
        text = yaml.safe_dump(sc.resolved(), sort_keys=False, default_flow_style=None)
        todo.append(Point((), sc.seed, name, text))
    for name, s in status.items():  # kept from an earlier run, or refused
        print(f"{name}: {s}", flush=True)
    for k, (point, s, error, _, _) in enumerate(local_backend(todo, out, jobs, plots=False), 1):
        status[point.name] = s if s == "done" else f"{s}: {error}"
        print(f"[{k}/{len(todo)}] {point.name}: {status[point.name]}", flush=True)
    return status


def run_all(points: Points, out: Path, extra: list[str], jobs: int) -> bool:
    """``run_points``, each point that failed named on stderr; whether all are done."""
    failed = {n: s for n, s in run_points(points, out, extra, jobs).items() if s != "done"}
    for name, why in failed.items():
        print(f"{name}: {why}", file=sys.stderr)
    return not failed
