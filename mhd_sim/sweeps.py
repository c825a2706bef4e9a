"""Sweeps: the cross product of a grid of settings and seeds, one run directory per point.

Every point is resolved and validated before anything runs, so a misspelt key fails at once.
A point runs as ``python -m mhd_sim run`` in a process of its own (one torch thread), from its
resolved scenario text: the local backend runs it straight into ``OUT/runs/<point>/``; the
Ray backend runs it in a temporary directory on whichever node takes the task and ships the
files back, so a cluster needs no shared file system. Same text, same seed, same files.

    >>> split_values("ring,complete")
    ['ring', 'complete']
    >>> split_values("[1, 2],{kind: ring, k: 2}")
    ['[1, 2]', '{kind: ring, k: 2}']
"""

from __future__ import annotations

import csv
import ctypes
import itertools
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .record.reading import final_figures
from .scenario import ScenarioError, apply_overrides, bundled, load, validate
from .scenario.loading import short_keys

DONE, FAILED, KEPT = "done", "failed", "kept"  # kept: finished by an earlier invocation
INDEX = "sweep.csv"
LOCAL = "local"  # the node column of a point the local backend ran


MAX_POINTS = 10_000  # grid points × seeds in one sweep


def split_values(text: str) -> list[str]:
    """Split ``V1,V2,...`` on the commas outside brackets, braces and quotes."""
    out, depth, quote, cur = [], 0, "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    out.append(cur.strip())
    return out


def parse_grid(items: Iterable[str]) -> dict[str, list[str]]:
    """``["a.b=1,2", "c=x"]`` → ``{"a.b": ["1", "2"], "c": ["x"]}``; errors name the item."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, eq, values = item.partition("=")
        key = key.strip()
        if not eq or not key or not values.strip():
            raise ScenarioError(
                [
                    f"--grid {item!r}: expected KEY=V1,V2,..., "
                    "for example network.topology.kind=ring,complete"
                ]
            )
        if key in grid:
            raise ScenarioError([f"--grid {key}: given twice; put all its values in one --grid"])
        if key == "seed":
            raise ScenarioError(["--grid seed: use --seeds N (seeds 0..N-1) instead"])
        grid[key] = split_values(values)
    return grid


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-") or "x"


@dataclass(frozen=True)
class Point:
    settings: tuple[tuple[str, str], ...]  # (grid key, value text), in grid order
    seed: int
    name: str = field(compare=False)  # the run directory's name: its settings
    scenario: str = field(compare=False, repr=False)  # the resolved scenario, YAML text
    duration: float = field(default=0.0, compare=False)  # its simulated seconds


def points(
    scenario: str | Path, grid: dict[str, list[str]], seeds: int, fixed: list[str] = ()
) -> list[Point]:
    """Every grid × seed combination, resolved and validated (problems of all points at once)."""
    if seeds < 1:
        raise ScenarioError([f"--seeds {seeds}: need at least one seed"])
    count = math.prod(len(v) for v in grid.values()) * seeds
    if count > MAX_POINTS:  # each point is validated up front: refuse before the hours it takes
        sizes = " × ".join([*(str(len(v)) for v in grid.values()), f"{seeds} seeds"])
        raise ScenarioError(
            [f"--grid: {count:,} points ({sizes}); at most {MAX_POINTS:,} in one sweep"]
        )
    raw = load(scenario, list(fixed)).resolved()  # the file itself and the fixed overrides
    folder = bundled.resolve(scenario).parent.resolve()  # where its relative paths are read
    short = short_keys(list(grid))
    out, problems = [], []
    for values in itertools.product(*grid.values()):
        settings = tuple(zip(grid, values))
        for seed in range(seeds):
            name = "_".join([f"{short[k]}={_slug(v)}" for k, v in settings] + [f"seed={seed}"])
            try:
                point_raw = apply_overrides(raw, [f"{k}={v}" for k, v in settings])
                point_raw["seed"] = seed
                sc = validate(point_raw, base=folder)
            except ScenarioError as e:
                problems += [f"{name}: {p}" for p in e.problems if f"{name}: {p}" not in problems]
                continue
            text = yaml.safe_dump(sc.resolved(), sort_keys=False, default_flow_style=None)
            out.append(Point(settings, seed, name, text, sc.duration))
    if problems:  # the first few, then how many more: a broken grid is not a page per point
        more = [f"… and {len(problems) - 20:,} more problems"] if len(problems) > 20 else []
        raise ScenarioError(problems[:20] + more)
    names = [p.name for p in out]
    if len(set(names)) != len(names):
        raise ScenarioError(
            [
                "two grid points would share a run directory name; give values that differ "
                "in letters or digits"
            ]
        )
    return out


# --- running one point -----------------------------------------------------------------------


def _die_with_parent() -> None:  # a killed sweep must not leave runs writing into its directory
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        pass


def execute(scenario_text: str, out: Path, plots: bool = True) -> tuple[str, str]:
    """Run one resolved scenario into ``out`` in a child process; (status, error line)."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(scenario_text)
    try:
        cmd = [
            sys.executable,
            "-m",
            "mhd_sim",
            "run",
            f.name,
            "--out",
            str(out),
            "--overwrite",
            "--quiet",
            "--threads",
            "1",
            *(() if plots else ("--no-plots",)),
        ]
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    finally:
        os.unlink(f.name)
    if proc.returncode == 0:
        return DONE, ""
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
    return FAILED, lines[-1].removeprefix("error: ") if lines else f"exit code {proc.returncode}"


def finished(run: Path) -> bool:
    """A run whose status says done: it ended and drew its figures (a point killed while
    drawing them is run again)."""
    from .record.status import read

    return read(run).state == "done"


def running(runs: Path, pts: Iterable[Point]) -> list[tuple[Point, float, float]]:
    """Of ``pts``, those running now (their run directories say so, their process alive),
    each with how far it got and its duration, in simulated seconds (one that has just ended,
    its process not yet reaped: all of it). The local backend's points run in ``runs``; a Ray
    point runs elsewhere and shows nothing here."""
    from .record.status import read

    out = []
    for p in pts:
        if (runs / p.name).is_dir():
            st = read(runs / p.name)
            if st.state in ("running", "done") and st.duration:
                t = st.duration if st.state == "done" else min(st.sim_time or 0.0, st.duration)
                out.append((p, t, st.duration))
    return out


def _pack(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def _unpack(files: dict[str, bytes], run: Path) -> None:
    for rel, data in files.items():
        path = run / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def execute_packed(scenario_text: str) -> tuple[str, str, dict[str, bytes]]:
    """A point on a machine that may not see the sweep directory: its files come back as bytes."""
    with tempfile.TemporaryDirectory(prefix="mhd-point-") as tmp:
        status, error = execute(scenario_text, Path(tmp) / "run")
        return status, error, _pack(Path(tmp) / "run")


# --- backends: yield (point, status, error) as points finish -----------------------------------


def local_backend(
    todo: list[Point], runs: Path, jobs: int, plots: bool = True
) -> Iterator[tuple[Point, str, str, str, int]]:
    """Each point in a child process, ``jobs`` at a time (``plots``: each run draws its own
    figures; an analysis that draws its own passes False)."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    with ThreadPoolExecutor(max_workers=jobs) as pool:  # threads wait on child processes
        futures = {pool.submit(execute, p.scenario, runs / p.name, plots): p for p in todo}
        try:
            for fut in as_completed(futures):
                yield (futures[fut], *fut.result(), LOCAL, 0)
        finally:
            for fut in futures:
                fut.cancel()


def ray_backend(
    todo: list[Point], runs: Path, jobs: int, address: str | None, **callbacks: Callable
) -> Iterator[tuple[Point, str, str, str, int]]:
    """Points as Ray tasks (``cluster.py``): each runs in a temporary directory on its node and
    its files come back here; yields (point, status, error, node, retries)."""
    from .cluster import ray_backend as on_ray

    for p, status, error, files, node, retries in on_ray(
        todo, jobs, address, execute_packed, **callbacks
    ):
        _unpack(files, runs / p.name)
        yield p, status, error, node, retries


def read_meta(out: Path) -> dict[str, Any]:
    """The scenario, grid, seeds and overrides of the sweep in ``out`` (for ``--resume``)."""
    try:
        meta = json.loads((out / "sweep.json").read_text())
        return {k: meta[k] for k in ("scenario", "grid", "seeds", "set")}
    except (OSError, ValueError, KeyError, TypeError):
        raise ScenarioError(
            [f"--resume: {out} holds no sweep (its sweep.json is missing or unreadable)"]
        ) from None


# --- the index ---------------------------------------------------------------------------------


def earlier(out: Path) -> dict[str, tuple[str, int]]:
    """Per point of an earlier invocation's index: the node that ran it and its retries."""
    try:
        with open(out / INDEX, newline="") as f:
            rows = list(csv.DictReader(f))
        return {r["point"]: (r.get("node") or "", int(r.get("retries") or 0)) for r in rows}
    except (OSError, csv.Error, KeyError, ValueError):  # none, or not one this code wrote
        return {}


def write_index(
    out: Path,
    pts: list[Point],
    status: dict[Point, tuple[str, str]],
    where: dict[Point, tuple[str, int]] | None = None,
) -> Path:
    """``sweep.csv``: a row per point, its status, where it ran and its final figures."""
    rows, where = [], where or {}
    for p in pts:
        st, error = status.get(p, ("pending", ""))
        node, retries = where.get(p, ("", 0))
        rows.append(
            {
                "point": p.name,
                **dict(p.settings),
                "seed": p.seed,
                "status": DONE if st == KEPT else st,
                "error": error,
                "node": node,
                "retries": retries,
                **(final_figures(out / "runs" / p.name) if st in (DONE, KEPT) else {}),
            }
        )
    columns = list(dict.fromkeys(k for r in rows for k in r))
    tmp = out / f"{INDEX}.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, columns)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(out / INDEX)
    return out / INDEX


class Lock:
    """One sweep at a time per directory; a lock left by a killed sweep is taken over."""

    def __init__(self, out: Path) -> None:
        self.path = out / ".sweep.lock"

    def __enter__(self) -> Lock:
        try:
            pid = int(self.path.read_text())
            os.kill(pid, 0)
            if pid != os.getpid():
                raise ScenarioError(
                    [f"{self.path.parent}: another sweep (pid {pid}) is running in it"]
                )
        except (OSError, ValueError):
            pass
        self.path.write_text(str(os.getpid()))
        return self

    def __exit__(self, *exc) -> None:
        self.path.unlink(missing_ok=True)


def sweep(
    pts: list[Point],
    out: Path,
    backend: str = "local",
    jobs: int = 1,
    address: str | None = None,
    meta: dict[str, Any] | None = None,
    on_point: Callable[[Point, str, str], None] = lambda p, s, e: None,
    **cluster: Callable,
) -> dict[Point, tuple[str, str]]:
    """Run the points not finished yet; keep ``sweep.csv`` current as points finish.

    Returns each point's (status, error); a failing point never stops the others.
    ``cluster``: the Ray backend's ``on_cluster`` and ``on_note`` callbacks (``cluster.py``).
    """
    runs = out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(meta or {}, indent=2))
    status = {p: (KEPT, "") for p in pts if finished(runs / p.name)}
    before = earlier(out)
    where = {p: before.get(p.name, ("", 0)) for p in status}
    for p in status:
        on_point(p, KEPT, "")
    todo = [p for p in pts if p not in status]
    with Lock(out):
        write_index(out, pts, status, where)
        results = (
            ray_backend(todo, runs, jobs, address, **cluster)
            if backend == "ray"
            else local_backend(todo, runs, jobs)
        )
        try:
            for p, st, error, node, retries in results:
                status[p], where[p] = (st, error), (node, retries)
                on_point(p, st, error)
                write_index(out, pts, status, where)
        finally:
            write_index(out, pts, status, where)
    return status
