"""The Python API: load a scenario, simulate it, read what it wrote. The command line is a
thin layer over these functions; notebooks use them directly.

>>> import mhd_sim as ms
>>> sc = ms.load("straggler", set={"duration": 5, "agents.count": 3})
>>> sc.agents.count, sc.duration
(3, 5.0)
>>> ms.load("straggler", set={"network.bandwidth": -1})
Traceback (most recent call last):
...
mhd_sim.api.MhdSimError: network.bandwidth: must be >= 1, got -1
"""

from __future__ import annotations

import atexit
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .progress import run_bar, setup_bar
from .scenario import Scenario, ScenarioError, bundled
from .scenario import load as load_file
from .untrusted import read_json

Overrides = Mapping[str, Any] | list[str] | None
Progress = Callable[[float, int, int], None]  # (simulated time, events, messages)


class MhdSimError(ValueError):
    """Bad input (``code`` 2: one line per problem, naming the field) or a run that failed
    (``code`` 1): the same one-line messages the command line prints."""

    def __init__(self, problems: list[str], code: int = 2) -> None:
        super().__init__("\n".join(problems))
        self.problems, self.code = problems, code


def _overrides(values: Overrides) -> list[str]:
    """``{"network.bandwidth": 1e5}`` → ``["network.bandwidth=100000.0"]`` (JSON is YAML); a
    string is one override (``"duration=5"``)."""
    if values is None:
        return []
    if isinstance(values, str):
        return [values]
    if isinstance(values, Mapping):
        return [f"{k}={json.dumps(v)}" for k, v in values.items()]
    if isinstance(values, (list, tuple)) and all(isinstance(v, str) for v in values):
        return list(values)
    raise MhdSimError(
        [f"set: expected a mapping {{key: value}}, a list of 'key=value' or one 'key=value', "
         f"got {type(values).__name__}"]
    )  # fmt: skip


def load(
    scenario: str | Path | Scenario,
    set: Overrides = None,
    seed: int | None = None,
    force: bool = False,
) -> Scenario:
    """A validated scenario from a file, a bundled scenario's name (``"straggler"``,
    ``"teaching/hops"``) or a scenario already loaded, with ``set`` overrides as on the
    command line (``{"network.bandwidth": 1e5}``, ``["network.bandwidth=1e5"]`` or one
    ``"duration=60"``). ``force``: accept a scenario too large for this machine."""
    if not isinstance(scenario, (str, Path, Scenario)):
        raise MhdSimError(
            [f"scenario: expected a file path, a bundled scenario's name or a Scenario, "
             f"got {type(scenario).__name__}"]
        )  # fmt: skip
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise MhdSimError([f"seed: expected an integer, got {seed!r}"])
    try:
        if isinstance(scenario, Scenario):
            from .scenario import apply_overrides, validate

            raw = apply_overrides(scenario.resolved(), _overrides(set))
            if seed is not None:
                raw["seed"] = seed
            return validate(raw, force)
        return load_file(scenario, _overrides(set), seed, force)
    except ScenarioError as e:
        raise MhdSimError(e.problems) from None


@dataclass
class Run:
    """A run directory and what is in it, read when first asked for. A run that did not
    finish (killed, interrupted, failed) is read as far as it got; ``status`` says which.
    ``simulate`` without ``out`` gives a temporary one, removed by ``close()`` (or a ``with``
    block, or the process's exit)."""

    path: Path
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)
    temporary: bool = field(default=False, repr=False)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the run directory if it is a temporary one (else nothing)."""
        if self.temporary:
            shutil.rmtree(self.path, ignore_errors=True)
            _TEMPORARY.discard(self.path)
            self.temporary = False

    @property
    def status(self) -> Any:
        """``status.json`` as read now: ``.state`` (done, running, killed, interrupted,
        failed), ``.sim_time``, ``.partial``, ``.describe(path)``."""
        from .record.status import read

        return read(self.path)

    def _read(self, name: str, reader: Callable[[Path], Any]) -> Any:
        if name not in self._cache:
            file = self.path / name
            if not file.is_file():
                why = self.status.describe(self.path) if self.status.partial else str(self.path)
                raise MhdSimError([f"{why}: it has no {name}"])
            self._cache[name] = reader(file)
        return self._cache[name]

    @property
    def summary(self) -> dict[str, Any]:
        """``summary.json``: totals, final accuracies, one entry per agent."""
        return self._read("summary.json", read_json)

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
        ``"time"``), ``reach``, ``staleness``, ``agents``, ``network``, ``topology`` or
        ``teachers``."""
        return run_figure(self.path, kind, **options)


RUN_FIGURES = ("curves", "reach", "staleness", "agents", "network", "topology", "teachers")


def run_figure(path: Path, kind: str, **options: Any) -> Any:
    """One figure of a run directory, as ``plot_run`` draws it into ``plots/`` (curves take
    ``x="time"`` or ``"bytes"``)."""
    from .compare import figures
    from .record import population_plots as pp
    from .record.plots import accuracy_figure

    summary = Run(path).summary if kind == "agents" else _summary_or_none(path)
    if kind == "curves":
        fig = accuracy_figure(path, options.get("x", "time"))
    elif kind == "staleness":
        fig = figures.figure([path], "staleness")[0]
    elif kind == "agents":
        fig = pp.plot_agents(path, summary, save=False)
    elif kind in ("reach", "network", "topology"):
        fig = getattr(pp, f"plot_{kind}")(path, summary, save=False)
    elif kind == "teachers":
        from .record.teacher_plots import teacher_figure

        fig = teacher_figure(path)
    else:
        raise MhdSimError([f"kind {kind!r}: choose one of {', '.join(RUN_FIGURES)}"])
    if fig is None:
        raise MhdSimError([f"{path}: has nothing to draw as {kind} (a timing-only run?)"])
    return fig


def _summary_or_none(path: Path) -> dict[str, Any] | None:
    try:
        return read_json(path / "summary.json")
    except (OSError, ValueError):
        return None  # a run that did not finish: figures of what it recorded


def open_run(path: str | Path) -> Run:
    """An existing run directory, as the :class:`Run` ``simulate`` returns."""
    from .record.status import read

    path = Path(path)
    if not (path / "scenario.yaml").is_file() and read(path).state == "unknown":
        raise MhdSimError([f"{path}: not a run directory (no status.json, no scenario.yaml)"])
    return Run(path)


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
    force: bool = False,
    keep: bool = False,
) -> Run:
    """Run a scenario into a run directory and return it as a :class:`Run`. ``out=None``: a
    temporary directory, removed when the ``Run`` is closed or the process exits unless
    ``keep``. ``progress``: progress bars, or a callable given (simulated time, events,
    messages) as the run goes. ``warn`` receives each warning line (default: printed).
    ``force``: run it even if it looks too large for this machine. ``threads``: as
    ``--threads`` (``engine: auto``: the agents' threads, default every core)."""
    from .record.run_directory import RunDirectory
    from .record.status import read as read_status
    from .scenario import budget

    sc = scenario if isinstance(scenario, Scenario) else load(scenario)
    warn = warn or (lambda line: print(f"warning: {line}"))
    if not force:
        try:
            budget.check(sc, timing_only)
        except ValueError as e:
            raise MhdSimError([str(e)]) from None
    temporary = out is None
    out = Path(tempfile.mkdtemp(prefix=f"mhd-sim-{sc.name}-")) if temporary else Path(out)
    holds_run = read_status(out).state != "unknown" or (out / "metrics.csv").exists()
    if holds_run and not overwrite:
        problem = f"--out {out}: already holds a run; pass --overwrite or choose another one"
        raise MhdSimError([problem])
    try:
        record = RunDirectory(out, sc.duration)
    except OSError as e:
        raise MhdSimError(
            [f"--out {out}: cannot create the run directory ({e.strerror})"]
        ) from None
    from .learning import kernels
    from .learning.seam import NonFiniteLoss
    from .record.plots import plot_run

    # per-agent arithmetic is one torch thread's; auto spreads the agents over ``threads``;
    # the caller's setting is given back when the run ends
    cores = os.cpu_count() or 1
    threads_here = {"batched": threads or cores, "per_agent": threads or 1}.get(sc.engine, 1)
    with kernels.threads(threads_here):
        try:
            with setup_bar(bool(progress) and not callable(progress), sc.agents.count) as step:
                sim = build_simulation(sc, record, timing_only, step, threads)
        except (ValueError, KeyError) as e:  # what the schema cannot check alone (an empty shard)
            record.discard()  # a refused run leaves its --out as it found it
            raise MhdSimError([_line(str(e).strip("'\""))]) from None
        except Exception as e:
            record.discard()
            raise MhdSimError(
                [f"setting up the run failed: {type(e).__name__}: {_line(e)}"], 1
            ) from None
        for line in sim.warnings:
            warn(line)
        shown, start = len(sim.warnings), time.perf_counter()
        try:
            if callable(progress):
                summary = sim.run(progress)
            else:
                with run_bar(bool(progress), sc.name, sc.duration) as bar:
                    summary = sim.run(bar)
        except KeyboardInterrupt:
            record.write_summary(sim.summary(time.perf_counter() - start, interrupted=True))
            record.close()
            record.finish("interrupted", sim_time=sim.env.now)
            problem = f"interrupted at t={sim.env.now:.1f} s; what was recorded is in {out}"
            raise MhdSimError([problem], 1) from None
        except Exception as e:
            record.close()
            if isinstance(e, NonFiniteLoss):  # its message says it all
                problem = str(e)
            else:
                problem = f"run failed at t={sim.env.now:.1f} s: {type(e).__name__}: {_line(e)}"
            record.finish("failed", sim_time=sim.env.now, error=problem)
            raise MhdSimError([problem], 1) from None
        record.close()
        for line in summary["warnings"][shown:]:  # what the run found: overloaded uplinks
            warn(line)
        if plots:
            plot_run(out)
        record.finish("done", sim_time=sim.env.now)
        run = Run(out)
        if temporary and not keep:
            run.temporary = True
            _TEMPORARY.add(out)
        return run


def _line(error: object) -> str:
    """An error's first line: the command line prints one line per problem."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


_TEMPORARY: set[Path] = set()  # run directories simulate made and nobody asked to keep


@atexit.register
def _remove_temporary() -> None:
    for path in list(_TEMPORARY):
        shutil.rmtree(path, ignore_errors=True)


def build_simulation(
    sc: Scenario,
    record: Any,
    timing_only: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    workers: int | None = None,
) -> Any:
    """A scenario's ``Simulation`` (world/) of its population (learning/), recording into
    ``record`` (a ``RunDirectory``), not started: what ``simulate`` runs, for scripts that
    look inside a run. ``progress(what, done, total)`` hears how set-up goes; ``workers``:
    the threads of ``engine: auto`` (default one per core)."""
    from .learning.engines.population import population
    from .world.simulation import Simulation

    return Simulation(sc, record, population(sc, timing_only, progress, workers))


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
        notes = {"on_note": lambda line: print(line, file=sys.stderr)} if backend == "ray" else {}
        sw.sweep(points, Path(out), backend, jobs or os.cpu_count() or 1, address, meta,
                 on_point or (lambda p, status, error: None), **notes)  # fmt: skip
    except ScenarioError as e:
        raise MhdSimError(e.problems) from None
    return pd.read_csv(Path(out) / sw.INDEX)
