"""``run``, ``validate``, ``schema`` and ``scenarios``: one scenario at a time."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .common import ForceOption, PortOption, SeedOption, SetOption, _fail, _load, app, err, out

if TYPE_CHECKING:  # --help imports no scenario code
    from ..scenario import Scenario

TimingOnly = Annotated[
    bool,
    typer.Option(
        "--timing-only",
        help="Run the whole schedule (compute, messages, churn, losses) without training: "
        "message counts, bytes and staleness in seconds; no accuracy.",
    ),
]


@app.command()
def run(
    scenario: Annotated[
        str, typer.Argument(help="Scenario file, or the name of a bundled scenario.")
    ],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Run directory (default runs/NAME-TIME).")
    ] = None,
    seed: SeedOption = None,
    overrides: SetOption = None,
    overwrite: Annotated[
        bool, typer.Option(help="Reuse a run directory that already holds a run.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Threads. engine auto (the default): agents run side by side on this "
            "many threads, one core each (default: every core); per_agent: torch threads "
            "(default 1: small models run fastest on one); batched: torch threads (default: "
            "every core).",
        ),
    ] = None,
    timing_only: TimingOnly = False,
    force: ForceOption = False,
    plots: Annotated[
        bool,
        typer.Option(help="Draw plots/ at the end (--no-plots: the files only; `plot` later)."),
    ] = True,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch", help="Serve a live page of the run on 127.0.0.1 (see `mhd-sim watch`)."
        ),
    ] = False,
    port: PortOption = 0,
) -> None:
    """Run one scenario and write its run directory (metrics, events, summary, plots)."""
    from ..api import default_out
    from .watch import beside, keep_serving

    sc = _load(scenario, overrides, seed, force)
    out_dir = out_dir or default_out(sc)
    if not watch:
        return _run(sc, out_dir, quiet, timing_only, overwrite, threads, force, plots)
    with beside(out_dir, port) as page:
        _run(sc, out_dir, quiet, timing_only, overwrite, threads, force, plots)
        keep_serving(page)


def _run(
    sc: Scenario,
    out_dir: Path,
    quiet: bool,
    timing_only: bool,
    overwrite: bool,
    threads: int | None,
    force: bool,
    plots: bool = True,
) -> None:
    from ..api import MhdSimError, simulate

    def warn(line: str) -> None:
        err.print(f"[yellow]warning:[/] {line}", highlight=False, soft_wrap=True)

    try:
        run = simulate(
            sc,
            out_dir,
            progress=not quiet,
            timing_only=timing_only,
            overwrite=overwrite,
            threads=threads,
            warn=warn,
            force=force,
            keep=True,
            plots=plots,
        )
    except MhdSimError as e:
        for line in e.problems:
            err.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
        raise typer.Exit(e.code) from None
    _print_summary(run.summary, out_dir)


def _print_summary(s: dict, out_dir: Path) -> None:

    if s.get("timing_only"):  # no learning: the schedule's figures alone
        out.print(f"{s['name']}: timing only (no training, no accuracy)", highlight=False)
    else:
        _print_accuracy(s)
    _print_traffic(s)
    out.print(f"run directory: {out_dir}", highlight=False)


def _print_accuracy(s: dict) -> None:
    from rich.table import Table

    table = Table(
        title=f"{s['name']}: {s['algorithm']}, seed {s['seed']}",
        caption="final accuracy, mean over agents",
    )
    table.add_column("head")
    table.add_column("private acc", justify="right")
    table.add_column("shared acc", justify="right")
    final = s["final"]
    for h, (p, sh) in enumerate(zip(final["mean_private_acc"], final["mean_shared_acc"])):
        mark = " (best)" if h == final["best_head"] and len(final["mean_shared_acc"]) > 1 else ""
        table.add_row(f"{h}{mark}", f"{p:.3f}", f"{sh:.3f}")
    out.print(table)


def _print_traffic(s: dict) -> None:
    m = s["messages"]
    drops = ", ".join(f"{k} {v:,}" for k, v in m["dropped_by_reason"].items() if v) or "none"
    extra = "".join(f", {m[k]:,} {k}" for k in ("retransmitted", "skipped") if m.get(k))
    engine = f" ({s['engine']})" if s.get("engine") else ""  # runs before it was recorded: none
    hot = f"; hot path: {s['hot_path']}" if s.get("hot_path") else ""
    out.print(
        f"simulated {s['sim_time']:.0f} s in {s['wall_time_s']:.1f} s wall{engine}; "
        f"{s['events']:,} events, {s['steps']:,} steps{hot}",
        highlight=False,
    )
    out.print(
        f"messages: {m['offered']:,} handed to uplinks, {m['sent']:,} left them, "
        f"{m['delivered']:,} delivered, {m['dropped']:,} dropped ({drops}){extra}; "
        f"MB offered {s['bytes_offered'] / 1e6:.2f}, sent {s['bytes_sent'] / 1e6:.2f}",
        highlight=False,
    )


@app.command()
def validate(
    scenario: Annotated[
        str, typer.Argument(help="Scenario file, or the name of a bundled scenario.")
    ],
    seed: SeedOption = None,
    overrides: SetOption = None,
    labels: Annotated[
        bool, typer.Option(help="Also load the data and print each agent's label counts.")
    ] = True,
    timing_only: TimingOnly = False,
    force: ForceOption = False,
) -> None:
    """Check a scenario; print it resolved, what it needs, and each agent's label counts.

    Every default is filled in; the figures of what it needs are the memory and time
    estimate a run is refused by."""
    import numpy as np
    import yaml
    from rich.table import Table

    from ..scenario import budget

    sc = _load(scenario, overrides, seed, force)
    if not force:
        try:
            budget.check(sc, timing_only)
        except ValueError as e:
            raise _fail(str(e), 2) from None

    if labels:  # a dataset that cannot be read is the one line printed, before the scenario
        from ..learning.data.partitions import load as load_data

        try:
            dataset, parts = load_data(sc.data, sc.agents.count, sc.seed)
        except ValueError as e:
            raise _fail(str(e), 2) from None

    class Dumper(yaml.SafeDumper):  # mappings one key a line, short lists inline: fits 80
        def represent_list(self, data: list) -> yaml.Node:
            flat = all(not isinstance(x, (dict, list)) for x in data)
            return self.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)

    Dumper.add_representer(list, Dumper.represent_list)
    text = yaml.dump(
        sc.resolved(), Dumper=Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )
    out.print(text, end="", highlight=False, soft_wrap=True, markup=False)
    need = budget.estimate(sc, timing_only)
    out.print(
        f"\n# needs about {budget.human_bytes(need.total)} of memory"
        f"{' (timing only)' if timing_only else ''}, at most about {need.steps:,.0f} local steps; "
        f"this machine has {budget.human_bytes(budget.machine_memory())}",
        highlight=False,
        soft_wrap=True,  # a comment wrapped would not be one: the output stays valid YAML
    )
    if not labels:
        return
    from ..learning.data.partitions import histogram

    counts = histogram(dataset, parts)
    share = len(parts.public) / len(dataset.y_train)
    out.print(
        f"\n# private label counts per agent ({dataset.name}: "
        f"{len(dataset.y_train):,} training samples, {len(parts.public):,} public "
        f"({share:.0%}), {dataset.classes} classes)",
        highlight=False,
        soft_wrap=True,
    )
    table = Table(box=None, pad_edge=False, show_edge=False)
    table.add_column("agent", justify="right")
    table.add_column("samples", justify="right")
    shown = range(dataset.classes) if dataset.classes <= 20 else []
    for c in shown:
        table.add_column(f"c{c}", justify="right")
    if not shown:  # many classes: how many are its main ones (over-represented), the largest
        table.add_column("main classes", justify="right")
        table.add_column("largest (count)")
    for i, row in enumerate(counts):
        if shown:
            cells = [str(v) for v in row]
        else:
            largest = np.argsort(-row, kind="stable")[:5]
            main = int((row > row.sum() / dataset.classes).sum())
            cells = [str(main), ", ".join(f"{c} ({row[c]})" for c in largest if row[c])]
        table.add_row(str(i), str(row.sum()), *cells)
    out.print(table)


@app.command()
def schema() -> None:
    """Print the scenario file's JSON Schema, for editors that validate and complete YAML."""
    import json

    from ..scenario.reference import json_schema

    print(json.dumps(json_schema(), indent=2))


@app.command()
def scenarios() -> None:
    """List the bundled scenarios, one line each."""
    from ..scenario import bundled

    names = bundled.names()
    width = max(map(len, names))
    for name in names:  # one line each, cut to a terminal's width (whole when piped)
        about = bundled.about(name)
        room = out.width - width - 2
        if out.is_terminal and len(about) > room:
            about = about[: max(room - 1, 10)] + "…"
        out.print(f"[bold]{name:<{width}}[/]  {about}", highlight=False, soft_wrap=True)
