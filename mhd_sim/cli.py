"""The ``mhd-sim`` command line. Exit codes: 0 done, 2 bad input, 1 anything else."""
from __future__ import annotations

import datetime
import os
import time
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .scenario import ScenarioError, load

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Discrete-event simulator of decentralized learning with multi-headed distillation.")
out = Console()
err = Console(stderr=True)

BUNDLED = Path(__file__).resolve().parent.parent / "scenarios"

SetOption = Annotated[Optional[list[str]], typer.Option("--set", help="Override a setting: KEY=VALUE, e.g. network.loss=0.1.")]
SeedOption = Annotated[Optional[int], typer.Option("--seed", help="Override the scenario's seed.")]


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _scenario_path(name: str) -> Path:
    """A path as given, or the name of a bundled scenario (``straggler`` → scenarios/straggler.yaml)."""
    path = Path(name)
    if not path.exists() and (BUNDLED / f"{name}.yaml").is_file():
        return BUNDLED / f"{name}.yaml"
    return path


def _problems(e: ScenarioError) -> typer.Exit:
    """One line per problem with the input, then exit code 2."""
    for line in e.problems:
        err.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


def _load(scenario: str, overrides: Optional[list[str]], seed: Optional[int]):
    try:
        return load(_scenario_path(scenario), overrides or [], seed)
    except ScenarioError as e:
        raise _problems(e)


@app.command()
def run(
    scenario: Annotated[str, typer.Argument(help="Scenario file, or the name of a bundled scenario.")],
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Run directory (default runs/<name>-<time>).")] = None,
    seed: SeedOption = None,
    overrides: SetOption = None,
    overwrite: Annotated[bool, typer.Option(help="Reuse a run directory that already holds a run.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    threads: Annotated[Optional[int], typer.Option(min=1, help="Torch CPU threads. Default: 1 (small models run "
                                                   "fastest on one; run several scenarios side by side to use more "
                                                   "cores), or every core with engine: batched.")] = None,
    timing_only: Annotated[bool, typer.Option("--timing-only", help="Run the whole schedule (compute, messages, "
                                              "churn, losses) without training: message counts, bytes and "
                                              "staleness in seconds; no accuracy.")] = False,
) -> None:
    """Run one scenario and write its run directory (metrics, events, summary, plots)."""
    import torch

    from .plots import plot_run
    from .record import RunDirectory
    from .world import Simulation

    sc = _load(scenario, overrides, seed)
    torch.set_num_threads(threads or (os.cpu_count() or 1 if sc.engine == "batched" else 1))
    if out_dir is None:
        out_dir = Path("runs") / f"{sc.name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    if (out_dir / "metrics.csv").exists() and not overwrite:
        raise _fail(f"--out {out_dir}: already holds a run; pass --overwrite or choose another directory", 2)
    try:
        record = RunDirectory(out_dir)
    except OSError as e:
        raise _fail(f"--out {out_dir}: cannot create the run directory ({e.strerror})", 2)
    try:
        sim = Simulation(sc, record, timing_only=timing_only)
    except (ValueError, KeyError) as e:  # inputs the schema cannot check alone (e.g. an empty shard)
        record.close()
        raise _fail(str(e).strip("'\""), 2)
    except Exception as e:
        record.close()
        raise _fail(f"setting up the run failed: {type(e).__name__}: {e}", 1)
    for w in sim.warnings:
        err.print(f"[yellow]warning:[/] {w}")
    start = time.perf_counter()
    try:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                      TextColumn("t={task.completed:.0f}/{task.total:.0f} s"), TextColumn("{task.fields[info]}"),
                      TimeElapsedColumn(), console=err, disable=quiet, transient=False) as bar:
            task = bar.add_task(sc.name, total=sc.duration, info="")
            summary = sim.run(lambda now, events, msgs: bar.update(
                task, completed=now, info=f"{events:,} events, {msgs:,} messages"))
    except KeyboardInterrupt:
        record.write_summary(sim.summary(time.perf_counter() - start, interrupted=True))
        record.close()
        raise _fail(f"interrupted at t={sim.env.now:.1f} s; what was recorded is in {out_dir}", 1)
    except Exception as e:
        record.close()
        raise _fail(f"run failed at t={sim.env.now:.1f} s: {type(e).__name__}: {e}", 1)
    record.close()
    plot_run(out_dir)
    _print_summary(summary, out_dir)


def _print_summary(s: dict, out_dir: Path) -> None:
    if s.get("timing_only"):
        out.print("timing only: no training, no accuracy", highlight=False)
    table = Table(title=f"{s['name']}: {s['algorithm']}, seed {s['seed']}", caption="final accuracy, mean over agents")
    table.add_column("head")
    table.add_column("private acc", justify="right")
    table.add_column("shared acc", justify="right")
    final = s["final"]
    for h, (p, sh) in enumerate(zip(final["mean_private_acc"], final["mean_shared_acc"])):
        mark = " (best)" if h == final["best_head"] and len(final["mean_shared_acc"]) > 1 else ""
        table.add_row(f"{h}{mark}", f"{p:.3f}", f"{sh:.3f}")
    out.print(table)
    m = s["messages"]
    drops = ", ".join(f"{k} {v}" for k, v in m["dropped_by_reason"].items()) or "none"
    out.print(f"simulated {s['sim_time']:.0f} s in {s['wall_time_s']:.1f} s wall; {s['events']:,} events, "
              f"{s['steps']:,} steps; messages sent {m['sent']:,}, delivered {m['delivered']:,}, dropped "
              f"{m['dropped']:,} ({drops}); {s['bytes_sent'] / 1e6:.2f} MB sent", highlight=False)
    out.print(f"run directory: {out_dir}", highlight=False)


@app.command()
def validate(
    scenario: Annotated[str, typer.Argument(help="Scenario file, or the name of a bundled scenario.")],
    seed: SeedOption = None,
    overrides: SetOption = None,
    labels: Annotated[bool, typer.Option(help="Also load the data and print each agent's label counts.")] = True,
) -> None:
    """Check a scenario, print it with every default filled in, and each agent's private label counts."""
    sc = _load(scenario, overrides, seed)
    out.print(yaml.safe_dump(sc.resolved(), sort_keys=False, default_flow_style=None), end="", highlight=False)
    if not labels:
        return
    from .data import histogram, load as load_data

    try:
        dataset, parts = load_data(sc.data, sc.agents.count, sc.seed)
    except ValueError as e:
        raise _fail(str(e), 2)
    counts = histogram(dataset, parts)
    out.print(f"\n# private label counts per agent ({dataset.name}: {len(dataset.y_train):,} training samples, "
              f"{len(parts.public):,} public, {dataset.classes} classes)", highlight=False)
    table = Table(box=None, pad_edge=False, show_edge=False)
    table.add_column("agent", justify="right")
    table.add_column("samples", justify="right")
    shown = range(dataset.classes) if dataset.classes <= 20 else []
    for c in shown:
        table.add_column(f"c{c}", justify="right")
    if not shown:
        table.add_column("main classes (count)")
    for i, row in enumerate(counts):
        cells = [str(v) for v in row] if shown else [
            ", ".join(f"{c} ({row[c]})" for c in np.argsort(-row, kind="stable")[:5] if row[c])]
        table.add_row(str(i), str(row.sum()), *cells)
    out.print(table)


@app.command()
def sweep(
    scenario: Annotated[str, typer.Argument(help="Scenario file, or the name of a bundled scenario.")],
    grid: Annotated[Optional[list[str]], typer.Option("--grid", help="KEY=V1,V2,...: one axis of the grid "
                                                      "(repeat for more axes; values parsed as YAML).")] = None,
    seeds: Annotated[int, typer.Option(help="Seeds 0..N-1 for every grid point.")] = 1,
    jobs: Annotated[int, typer.Option(min=1, help="Points run side by side (one torch thread each); "
                                      "default: one per CPU core.")] = os.cpu_count() or 1,
    out_dir: Annotated[Path, typer.Option("--out", help="Sweep directory: sweep.csv, and runs/<point>/.")] = Path("runs/sweep"),
    overrides: SetOption = None,
    backend: Annotated[str, typer.Option(help="local (worker processes) or ray (tasks on a Ray cluster).")] = "local",
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address (ray://host:10001 or auto); "
                                                   "default: start a local Ray instance.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Run a grid of settings × seeds, one run directory per point; run again to resume."""
    from . import sweep as sw

    if backend not in ("local", "ray"):
        raise _fail(f"--backend {backend}: choose local or ray", 2)
    if address and backend != "ray":
        raise _fail("--address is for --backend ray", 2)
    try:
        axes = sw.parse_grid(grid or [])
        points = sw.points(_scenario_path(scenario), axes, seeds, overrides or [])
    except ScenarioError as e:
        raise _problems(e)
    meta = {"scenario": str(_scenario_path(scenario)), "grid": axes, "seeds": seeds, "set": overrides or []}
    counts = {sw.DONE: 0, sw.KEPT: 0, sw.FAILED: 0}
    start = time.perf_counter()
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} points"),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=err, disable=quiet) as bar:
        task = bar.add_task(f"sweep ({backend}, {jobs} jobs)", total=len(points), info="")

        def on_point(p, status: str, error: str) -> None:
            counts[status] += 1
            bar.update(task, advance=1, info=", ".join(f"{v} {k}" for k, v in counts.items() if v))
            if status == sw.FAILED and quiet:
                err.print(f"failed: {p.name}: {error}", highlight=False)
        try:
            status = sw.sweep(points, out_dir, backend, jobs, address, meta, on_point)
        except ScenarioError as e:
            raise _fail("; ".join(e.problems), 2)
        except KeyboardInterrupt:
            raise _fail(f"interrupted with {counts[sw.DONE] + counts[sw.KEPT]} of {len(points)} points finished; "
                        f"run the same command again to resume", 1)
    failed = [(p, e) for p, (s, e) in status.items() if s == sw.FAILED]
    if failed:
        table = Table(title=f"{len(failed)} of {len(points)} points failed")
        table.add_column("point")
        table.add_column("why")
        for p, e in failed:
            table.add_row(p.name, e)
        out.print(table)
    out.print(f"{len(points)} points: {counts[sw.DONE]} run, {counts[sw.KEPT]} kept from before, "
              f"{counts[sw.FAILED]} failed, in {time.perf_counter() - start:.1f} s; index: {out_dir / sw.INDEX}",
              highlight=False, soft_wrap=True)
    if counts[sw.DONE] + counts[sw.KEPT]:
        from analysis.summarize import summarize

        try:
            written = summarize([out_dir], out_dir / "summary")
            out.print(f"figures and table.md: {written[0].parent}", highlight=False, soft_wrap=True)
        except (ValueError, KeyError) as e:  # the runs are what matters; say why the figures are missing
            err.print(f"[yellow]warning:[/] no summary figures: {e}", highlight=False)
    if failed:
        raise typer.Exit(1)


@app.command()
def plot(
    paths: Annotated[list[Path], typer.Argument(help="Run directories, sweep directories, or folders holding runs.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Figure file; .png, .svg or .pdf.")],
    kind: Annotated[str, typer.Option(help="curves (accuracy vs --x), staleness (distribution of the age of "
                                      "distilled predictions) or agents (final accuracy per agent).")] = "curves",
    x: Annotated[str, typer.Option("--x", help="bytes (total sent, log scale) or time (simulated s).")] = "bytes",
    metric: Annotated[str, typer.Option(help="shared_acc (global test set) or private_acc (own label mix).")] = "shared_acc",
    head: Annotated[str, typer.Option(help="best (each run's best head at the end) or a head number.")] = "best",
    by: Annotated[Optional[list[str]], typer.Option(help="Group runs by this setting, e.g. network.topology.kind "
                                                    "(repeatable; default: every setting that differs).")] = None,
) -> None:
    """Compare runs in one figure: one line per group of settings, seeds as a mean line and a band."""
    from analysis import figures, runs

    if x not in ("bytes", "time"):
        raise _fail(f"--x {x}: choose bytes or time", 2)
    if metric not in figures.METRIC_NAMES:
        raise _fail(f"--metric {metric}: choose shared_acc or private_acc", 2)
    if head != "best" and not head.isdigit():
        raise _fail(f"--head {head}: best or a head number (0 is the main head)", 2)
    try:
        data = figures.plot(paths, output, kind, x, metric, head if head == "best" else int(head), by)
    except runs.NoRuns as e:
        raise _fail(str(e), 2)
    out.print(f"{output}: {kind} of {data['group'].nunique() if 'group' in data else 0} group(s)", highlight=False)


@app.command()
def animate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="run.gif (pillow) or run.mp4 (needs ffmpeg).")] = Path("run.gif"),
    frames: Annotated[int, typer.Option(min=2, help="Frames over the whole run.")] = 120,
    fps: Annotated[int, typer.Option(min=1, help="Frames per second of the animation.")] = 12,
    head: Annotated[str, typer.Option(help="Head whose shared accuracy colours the nodes: best or a number.")] = "best",
) -> None:
    """Replay a run: topology, nodes coloured by shared accuracy, messages lighting up links."""
    from .animation import animate as draw

    if head != "best" and not head.isdigit():
        raise _fail(f"--head {head}: best or a head number", 2)
    with Progress(TextColumn("[bold]animate"), BarColumn(), TextColumn("{task.completed}/{task.total} frames"),
                  TimeElapsedColumn(), console=err) as bar:
        task = bar.add_task("frames", total=frames)
        try:
            path = draw(run_dir, output, frames, fps, head, lambda i, n: bar.update(task, completed=i + 1))
        except ValueError as e:
            raise _fail(str(e), 2)
    out.print(f"wrote {path}", highlight=False)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Default: RUN_DIR/report.html.")] = None,
) -> None:
    """Write one self-contained report.html: scenario, summary tables and every figure embedded."""
    from .report import write_report

    try:
        path = write_report(run_dir, output)
    except ValueError as e:
        raise _fail(str(e), 2)
    out.print(f"wrote {path}", highlight=False)


@app.command()
def scenarios() -> None:
    """List the bundled scenarios, one line each."""
    for path in sorted(BUNDLED.glob("**/*.yaml")):
        first = path.read_text().splitlines()[0] if path.stat().st_size else ""
        about = first.lstrip("# ").strip() if first.startswith("#") else ""
        out.print(f"[bold]{path.relative_to(BUNDLED).with_suffix('')}[/]  {about}", highlight=False)


def main() -> None:
    app()
