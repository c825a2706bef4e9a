"""The Python API: load a scenario, simulate it, read what it wrote. The command line is a
thin layer over these functions; notebooks use them directly.

>>> import mhd_sim as ms
>>> sc = ms.load("straggler", set={"duration": 5, "agents.count": 3})
>>> sc.agents.count, sc.duration
(3, 5.0)
>>> ms.load("straggler", set={"network.bandwidth": -1})
Traceback (most recent call last):
...
mhd_sim.api.MhdSimError: network.bandwidth: must be > 0, got -1
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .scenario import Scenario, ScenarioError, bundled
from .scenario import load as load_file

Overrides = Mapping[str, Any] | list[str] | None
Progress = Callable[[float, int, int], None]  # (simulated time, events, messages)


class MhdSimError(ValueError):
    """Bad input (``code`` 2: one line per problem, naming the field) or a run that failed
    (``code`` 1): the same one-line messages the command line prints."""

    def __init__(self, problems: list[str], code: int = 2) -> None:
        super().__init__("\n".join(problems))
        self.problems, self.code = problems, code


def _overrides(values: Overrides) -> list[str]:
    """``{"network.bandwidth": 1e5}`` → ``["network.bandwidth=100000.0"]`` (JSON is YAML)."""
    if values is None:
        return []
    if isinstance(values, Mapping):
        return [f"{k}={json.dumps(v)}" for k, v in values.items()]
    return list(values)


def load(
    scenario: str | Path | Scenario, set: Overrides = None, seed: int | None = None
) -> Scenario:
    """A validated scenario from a file, a bundled scenario's name (``"straggler"``,
    ``"teaching/hops"``) or a scenario already loaded, with ``set`` overrides as on the
    command line (``{"network.bandwidth": 1e5}`` or ``["network.bandwidth=1e5"]``)."""
    try:
        if isinstance(scenario, Scenario):
            from .scenario import apply_overrides, validate

            raw = apply_overrides(scenario.resolved(), _overrides(set))
            if seed is not None:
                raw["seed"] = seed
            return validate(raw)
        return load_file(bundled.resolve(scenario), _overrides(set), seed)
    except ScenarioError as e:
        raise MhdSimError(e.problems) from None


@dataclass
class Run:
    """A run directory and what is in it, read when first asked for."""

    path: Path
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def _read(self, name: str, reader: Callable[[Path], Any]) -> Any:
        if name not in self._cache:
            file = self.path / name
            if not file.is_file():
                raise MhdSimError([f"{self.path}: has no {name}"])
            self._cache[name] = reader(file)
        return self._cache[name]

    @property
    def summary(self) -> dict[str, Any]:
        """``summary.json``: totals, final accuracies, one entry per agent."""
        return self._read("summary.json", lambda f: json.loads(f.read_text()))

    @property
    def metrics(self) -> pd.DataFrame:
        """``metrics.csv``: one row per evaluation × agent × head."""
        return self._read("metrics.csv", pd.read_csv)

    @property
    def events(self) -> pd.DataFrame:
        """``events.csv``: one row per event (send, deliver, drop, step, distill, …)."""
        return self._read("events.csv", pd.read_csv)

    @property
    def reach(self) -> pd.DataFrame:
        """``reach.csv``: accuracy of each head on the data of the agents at each hop distance."""
        return self._read("reach.csv", pd.read_csv)

    @property
    def network(self) -> pd.DataFrame:
        """``network.csv``: each uplink's queue, utilization and bytes over time."""
        return self._read("network.csv", pd.read_csv)

    @property
    def scenario(self) -> Scenario:
        """The resolved scenario the run ran."""
        return load(self.path / "scenario.yaml")

    def animate(self, out: str | Path | None = None, frames: int = 60, fps: int = 12) -> Path:
        """The run replayed on its topology (nodes coloured by shared accuracy, messages lighting
        up links) as a GIF (or .mp4 with ffmpeg); default ``<run>/animation.gif``. In a
        notebook: ``IPython.display.Image(run.animate())``."""
        from .record.animation import animate

        try:
            return animate(self.path, out or self.path / "animation.gif", frames, fps)
        except ValueError as e:
            raise MhdSimError([str(e)]) from None

    def plot(self, kind: str = "curves", **options: Any) -> Any:
        """A matplotlib figure of this run: ``curves`` (accuracy vs ``x="bytes"`` or
        ``"time"``), ``reach``, ``staleness``, ``agents``, ``network`` or ``topology``."""
        return run_figure(self.path, kind, **options)


RUN_FIGURES = ("curves", "reach", "staleness", "agents", "network", "topology")


def run_figure(path: Path, kind: str, **options: Any) -> Any:
    """One figure of a run directory, as ``plot_run`` draws it into ``plots/`` (curves take
    ``x="time"`` or ``"bytes"``)."""
    from .compare import figures
    from .record import population_plots as pp
    from .record.plots import accuracy_figure

    summary = json.loads((path / "summary.json").read_text())
    if kind == "curves":
        fig = accuracy_figure(path, options.get("x", "time"))
    elif kind == "staleness":
        fig = figures.figure([path], "staleness")[0]
    elif kind == "agents":
        fig = pp.plot_agents(path, summary, save=False)
    elif kind in ("reach", "network", "topology"):
        fig = getattr(pp, f"plot_{kind}")(path, summary, save=False)
    else:
        raise MhdSimError([f"kind {kind!r}: choose one of {', '.join(RUN_FIGURES)}"])
    if fig is None:
        raise MhdSimError([f"{path}: has nothing to draw as {kind} (a timing-only run?)"])
    return fig


def open_run(path: str | Path) -> Run:
    """An existing run directory, as the :class:`Run` ``simulate`` returns."""
    path = Path(path)
    if not (path / "scenario.yaml").is_file():
        raise MhdSimError([f"{path}: not a run directory (no scenario.yaml)"])
    return Run(path)


@contextlib.contextmanager
def _progress_bar(enabled: bool, name: str, duration: float) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("t={task.completed:.0f}/{task.total:.0f} s"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as bar:
        task = bar.add_task(name, total=duration, info="")
        yield lambda now, events, msgs: bar.update(
            task, completed=now, info=f"{events:,} events, {msgs:,} messages"
        )


def simulate(
    scenario: str | Path | Scenario,
    out: str | Path | None = None,
    *,
    progress: bool | Progress = True,
    timing_only: bool = False,
    overwrite: bool = False,
    threads: int | None = None,
    plots: bool = True,
    warn: Callable[[str], None] | None = None,
) -> Run:
    """Run a scenario into a run directory and return it as a :class:`Run`. ``out=None``: a
    new temporary directory. ``progress``: a progress bar, or a callable given (simulated
    time, events, messages) as the run goes. ``warn`` receives each warning line (default:
    printed)."""
    import torch

    from .record.plots import plot_run
    from .record.run_directory import RunDirectory

    sc = scenario if isinstance(scenario, Scenario) else load(scenario)
    warn = warn or (lambda line: print(f"warning: {line}"))
    torch.set_num_threads(threads or (os.cpu_count() or 1 if sc.engine == "batched" else 1))
    if out is None:
        out = Path(tempfile.mkdtemp(prefix=f"mhd-sim-{sc.name}-"))
    out = Path(out)
    if (out / "metrics.csv").exists() and not overwrite:
        problem = f"--out {out}: already holds a run; pass --overwrite or choose another directory"
        raise MhdSimError([problem])
    try:
        record = RunDirectory(out)
    except OSError as e:
        raise MhdSimError(
            [f"--out {out}: cannot create the run directory ({e.strerror})"]
        ) from None
    try:
        sim = build_simulation(sc, record, timing_only)
    except (ValueError, KeyError) as e:  # inputs the schema cannot check alone (an empty shard)
        record.close()
        raise MhdSimError([str(e).strip("'\"")]) from None
    except Exception as e:
        record.close()
        raise MhdSimError([f"setting up the run failed: {type(e).__name__}: {e}"], 1) from None
    for line in sim.warnings:
        warn(line)
    shown, start = len(sim.warnings), time.perf_counter()
    try:
        if callable(progress):
            summary = sim.run(progress)
        else:
            with _progress_bar(bool(progress), sc.name, sc.duration) as bar:
                summary = sim.run(bar)
    except KeyboardInterrupt:
        record.write_summary(sim.summary(time.perf_counter() - start, interrupted=True))
        record.close()
        problem = f"interrupted at t={sim.env.now:.1f} s; what was recorded is in {out}"
        raise MhdSimError([problem], 1) from None
    except Exception as e:
        record.close()
        problem = f"run failed at t={sim.env.now:.1f} s: {type(e).__name__}: {e}"
        raise MhdSimError([problem], 1) from None
    record.close()
    for line in summary["warnings"][shown:]:  # what the run found: overloaded uplinks
        warn(line)
    if plots:
        plot_run(out)
    return Run(out)


def build_simulation(sc: Scenario, record: Any, timing_only: bool = False) -> Any:
    """A scenario's ``Simulation`` (world/) of its population (learning/), recording into
    ``record`` (a ``RunDirectory``), not started: what ``simulate`` runs, for scripts that
    look inside a run."""
    from .learning.population import population
    from .world.simulation import Simulation

    return Simulation(sc, record, population(sc, timing_only))


def default_out(sc: Scenario) -> Path:
    """Where the command line puts a run without ``--out``: ``runs/<name>-<time>``."""
    return Path("runs") / f"{sc.name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"


def sweep(
    scenario: str | Path,
    grid: Mapping[str, list[Any]],
    *,
    seeds: int = 1,
    out: str | Path = "runs/sweep",
    set: Overrides = None,
    jobs: int | None = None,
    backend: str = "local",
    address: str | None = None,
    on_point: Callable[[Any, str, str], None] | None = None,
) -> pd.DataFrame:
    """Run every point of ``grid`` (``{"algorithm.heads": [2, 3]}``) × seeds, one run
    directory each under ``out/runs/``; resumable. Returns the sweep's table (``sweep.csv``)."""
    from . import sweeps as sw

    try:
        axes = {
            k: [json.dumps(v) if not isinstance(v, str) else v for v in vs]
            for k, vs in grid.items()
        }
        points = sw.points(bundled.resolve(scenario), axes, seeds, _overrides(set))
        meta = {"scenario": str(bundled.resolve(scenario)), "grid": axes, "seeds": seeds,
                "set": _overrides(set)}  # fmt: skip
        sw.sweep(points, Path(out), backend, jobs or os.cpu_count() or 1, address, meta,
                 on_point or (lambda p, status, error: None))  # fmt: skip
    except ScenarioError as e:
        raise MhdSimError(e.problems) from None
    return pd.read_csv(Path(out) / sw.INDEX)
