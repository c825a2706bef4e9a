"""``sweep``, ``plot``, ``animate``, ``report``: studies of many runs, drawn from their outputs."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from .common import SetOption, _fail, _problems, _scenario_path, app, err, out


@app.command()
def sweep(
    scenario: Annotated[
        str | None,
        typer.Argument(
            help="Scenario file, or the name of a bundled scenario (not with --resume)."
        ),
    ] = None,
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            help="KEY=V1,V2,...: one axis of the grid "
            "(repeat for more axes; values parsed as YAML).",
        ),
    ] = None,
    seeds: Annotated[int, typer.Option(help="Seeds 0..N-1 for every grid point.")] = 1,
    jobs: Annotated[
        int,
        typer.Option(
            min=1,
            help="Points run side by side (one torch thread each); default: one per CPU core.",
        ),
    ] = os.cpu_count() or 1,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Sweep directory: sweep.csv, and runs/<point>/.")
    ] = Path("runs/sweep"),
    overrides: SetOption = None,
    backend: Annotated[
        str, typer.Option(help="local (worker processes) or ray (tasks on a Ray cluster).")
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster address (ray://host:10001 or auto); "
            "default: start a local Ray instance."
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Finish the sweep in --out: its scenario, grid, seeds and --set are read from "
            "its sweep.json; only unfinished points run.",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Run a grid of settings × seeds, one run directory per point; run again to resume."""
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Table

    from .. import sweeps as sw
    from ..cluster import ClusterView
    from ..scenario import ScenarioError

    def note(line: str) -> None:
        err.print(line, highlight=False, soft_wrap=True)

    if backend not in ("local", "ray"):
        raise _fail(f"--backend {backend}: choose local or ray", 2)
    if address and backend != "ray":
        raise _fail("--address is for --backend ray", 2)
    if resume:
        if scenario or grid or overrides:
            raise _fail("--resume reads the scenario, grid and --set from OUT/sweep.json; "
                        "give only --out (and the backend's options)", 2)  # fmt: skip
        try:
            meta = sw.read_meta(out_dir)
        except ScenarioError as e:
            raise _fail("; ".join(e.problems), 2) from None
    elif scenario is None:
        raise _fail("give a scenario (or --resume and the sweep's --out)", 2)
    else:
        try:
            axes = sw.parse_grid(grid or [])
        except ScenarioError as e:
            raise _problems(e) from None
        meta = {"scenario": str(_scenario_path(scenario)), "grid": axes, "seeds": seeds,
                "set": overrides or []}  # fmt: skip
    try:
        points = sw.points(meta["scenario"], meta["grid"], meta["seeds"], meta["set"])
    except ScenarioError as e:
        raise _problems(e) from None
    if backend == "ray":  # a head that does not answer: one line, before anything else
        from ..cluster import answering

        try:
            answering(address)
        except ScenarioError as e:
            raise _fail("; ".join(e.problems), 2) from None
    counts = {sw.DONE: 0, sw.KEPT: 0, sw.FAILED: 0}
    cluster = ClusterView()
    start = time.perf_counter()
    outstanding = set(points)
    durations = sorted({p.duration for p in points})
    if not quiet:
        each = " to ".join(f"{d:g}" for d in (durations[0], durations[-1])[: len(durations)])
        err.print(f"{len(points)} points of {each} simulated s each, {min(jobs, len(points))} at "
                  f"a time ({backend})", highlight=False)  # fmt: skip
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[finished]}/{task.total:.0f} points"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=err,
        disable=quiet,
    ) as bar:
        task = bar.add_task("sweep", total=len(points), info="", finished=0)

        def show() -> None:
            """Points finished, and the running ones' simulated time: the bar moves with them,
            so the time left is estimated from the first seconds on."""
            now = sw.running(out_dir / "runs", list(outstanding))
            done = len(points) - len(outstanding)
            parts = [", ".join(f"{v} {k}" for k, v in counts.items() if v)] if done else []
            if now:  # how far each running point got, in simulated seconds
                shown = ", ".join(f"{t:.0f}/{d:g} s" for _, t, d in now[:3])
                parts.append(f"{len(now)} running: {shown}{' …' if len(now) > 3 else ''}")
            if backend == "ray":  # its points run elsewhere: how many, where, retried
                parts.append(cluster.line())
            bar.update(task, completed=done + sum(t / d for _, t, d in now), finished=done,
                       info="; ".join(parts))  # fmt: skip

        def on_point(p: sw.Point, status: str, error: str) -> None:
            counts[status] += 1
            outstanding.discard(p)
            show()
            if status == sw.FAILED and quiet:
                err.print(f"failed: {p.name}: {error}", highlight=False)

        stop = threading.Event()

        def follow() -> None:  # the running points' simulated time, once a second
            while not stop.wait(1.0):
                show()

        def on_cluster(view: ClusterView) -> None:
            nonlocal cluster
            cluster = view

        follower = threading.Thread(target=follow, name="sweep-progress", daemon=True)
        if not quiet:
            follower.start()
        try:
            more = {"on_cluster": on_cluster, "on_note": note} if backend == "ray" else {}
            status = sw.sweep(points, out_dir, backend, jobs, address, meta, on_point, **more)
        except ScenarioError as e:
            raise _fail("; ".join(e.problems), 2) from None
        except KeyboardInterrupt:
            raise _fail(
                f"interrupted with {counts[sw.DONE] + counts[sw.KEPT]} of {len(points)} "
                "points finished; "
                f"run the same command again to resume",
                1,
            ) from None
        finally:
            stop.set()
    failed = [(p, e) for p, (s, e) in status.items() if s == sw.FAILED]
    if failed:
        table = Table(title=f"{len(failed)} of {len(points)} points failed")
        table.add_column("point")
        table.add_column("why")
        for p, e in failed:
            table.add_row(p.name, e)
        out.print(table)
    out.print(
        f"{len(points)} points: {counts[sw.DONE]} run, {counts[sw.KEPT]} kept from before, "
        f"{counts[sw.FAILED]} failed, in {time.perf_counter() - start:.1f} s; "
        f"index: {out_dir / sw.INDEX}",
        highlight=False,
        soft_wrap=True,
    )
    if backend == "ray":
        out.print(f"on the cluster: {cluster.summary()}", highlight=False, soft_wrap=True)
    if counts[sw.DONE] + counts[sw.KEPT]:
        from ..compare.summarize import summarize

        try:
            written = summarize([out_dir], out_dir / "summary")
            out.print(f"figures and table.md: {written[0].parent}", highlight=False, soft_wrap=True)
        except (
            ValueError,
            KeyError,
        ) as e:  # the runs are what matters; say why the figures are missing
            err.print(f"[yellow]warning:[/] no summary figures: {e}", highlight=False)
    if failed:
        raise typer.Exit(1)


@app.command()
def plot(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Run directories, sweep directories, or folders holding runs."),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Figure file; .png, .svg or .pdf.")
    ],
    kind: Annotated[
        str,
        typer.Option(
            help="curves (accuracy vs --x), reach (accuracy by head and hop distance), "
            "staleness (distribution of the age of distilled predictions), agents (final "
            "accuracy per agent) or teachers (how often the chosen teachers were right)."
        ),
    ] = "curves",
    x: Annotated[
        str, typer.Option("--x", help="bytes (total sent, log scale) or time (simulated s).")
    ] = "bytes",
    metric: Annotated[
        str, typer.Option(help="shared_acc (global test set) or private_acc (own label mix).")
    ] = "shared_acc",
    head: Annotated[
        str, typer.Option(help="best (each run's best head at the end) or a head number.")
    ] = "best",
    by: Annotated[
        list[str] | None,
        typer.Option(
            help="Group runs by this setting, e.g. network.topology.kind "
            "(repeatable; default: every setting that differs)."
        ),
    ] = None,
) -> None:
    """Compare runs in one figure: a line per group of settings, seeds as a mean line and a band."""
    from ..compare import figures
    from ..record.reading import NoRuns

    if x not in ("bytes", "time"):
        raise _fail(f"--x {x}: choose bytes or time", 2)
    if metric not in figures.METRIC_NAMES:
        raise _fail(f"--metric {metric}: choose shared_acc or private_acc", 2)
    if head != "best" and not head.isdigit():
        raise _fail(f"--head {head}: best or a head number (0 is the main head)", 2)
    try:
        data = figures.plot(
            paths, output, kind, x, metric, head if head == "best" else int(head), by
        )
        for line in figures.partial_runs(figures.R.find_runs(paths)):
            err.print(f"[yellow]note:[/] {line}: drawn as far as it got", highlight=False)
    except NoRuns as e:
        raise _fail(str(e), 2) from None
    out.print(
        f"{output}: {kind} of {data['group'].nunique() if 'group' in data else 0} group(s)",
        highlight=False,
    )


@app.command()
def animate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="A .gif (pillow) or .mp4 (ffmpeg); default RUN/animation.gif."
        ),
    ] = None,
    frames: Annotated[int, typer.Option(min=2, help="Frames over the whole run.")] = 120,
    fps: Annotated[int, typer.Option(min=1, help="Frames per second of the animation.")] = 12,
    head: Annotated[
        str, typer.Option(help="Head whose shared accuracy colours the nodes: best or a number.")
    ] = "best",
) -> None:
    """Replay a run: topology, nodes coloured by shared accuracy, messages lighting up links."""
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from ..record.animation import animate as draw
    from ..record.reading import needs_summary

    if head != "best" and not head.isdigit():
        raise _fail(f"--head {head}: best or a head number", 2)
    try:  # a run it cannot animate is one line, before any progress bar
        needs_summary(run_dir, "an animation")
    except ValueError as e:
        raise _fail(str(e), 2) from None
    output = output or run_dir / "animation.gif"
    with Progress(
        TextColumn("[bold]animate"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} frames"),
        TimeElapsedColumn(),
        console=err,
    ) as bar:
        task = bar.add_task("frames", total=frames)
        try:
            path = draw(
                run_dir, output, frames, fps, head, lambda i, n: bar.update(task, completed=i + 1)
            )
        except ValueError as e:
            raise _fail(str(e), 2) from None
    out.print(f"wrote {path}", highlight=False)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Default: RUN_DIR/report.html.")
    ] = None,
) -> None:
    """Write one self-contained report.html: scenario, summary tables and every figure embedded."""
    from ..record.report import write_report

    try:
        path = write_report(run_dir, output)
    except ValueError as e:
        raise _fail(str(e), 2) from None
    out.print(f"wrote {path}", highlight=False)
