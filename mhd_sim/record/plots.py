"""Figures drawn from a run directory alone (pandas + matplotlib); no simulator objects.

``plot_run`` writes them all into ``plots/``: accuracy against time and bytes here, the
population's (per agent, topology, network) in ``population_plots.py``."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes

from ..untrusted import read_json, read_yaml
from .population_plots import plot_agents, plot_network, plot_reach, plot_topology
from .teacher_plots import teacher_figure
from .trace_plots import plot_traces

METRICS = {
    "shared_acc": "shared accuracy (global test set)",
    "private_acc": "private accuracy (own label mix)",
}


def load_metrics(run_dir: str | Path) -> pd.DataFrame:
    return pd.read_csv(Path(run_dir) / "metrics.csv")


def per_head(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean, min and max over agents of each metric, per evaluation time and head, plus the
    total bytes sent by all agents up to that time."""
    stats = metrics.groupby(["time", "head"])[list(METRICS)].agg(["mean", "min", "max"])
    stats.columns = [f"{m}_{s}" for m, s in stats.columns]
    sent = (
        metrics[metrics["head"] == 0].groupby("time")["bytes_sent"].sum().rename("total_bytes_sent")
    )
    return stats.reset_index().merge(sent.reset_index(), on="time")


def _panel(ax: Axes, stats: pd.DataFrame, x: str, metric: str, best: int | None) -> None:
    for head, g in stats.groupby("head"):
        label = "head 0 (main)" if head == 0 else f"head {head}"
        if head == best and stats["head"].nunique() > 1:  # the best on the global test set
            label += ", best"
        (line,) = ax.plot(g[x], g[f"{metric}_mean"], label=label)
        ax.fill_between(
            g[x], g[f"{metric}_min"], g[f"{metric}_max"], color=line.get_color(), alpha=0.15
        )
    ax.set_ylabel(METRICS[metric])
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)


_SCHEDULE_LABELS = {
    "partition": "partition",
    "link_down": "links down",
    "switch": "topology switch",
}


def _mark_schedule(ax: Axes, schedule: list[dict], duration: float) -> None:
    """Shade the windows of scheduled network events; a line where the topology switches."""
    for ev in schedule:
        label = _SCHEDULE_LABELS.get(ev["kind"], ev["kind"])
        if ev["kind"] == "switch":
            ax.axvline(ev["at"], color="0.3", ls=":", lw=1, label=label)
        else:
            ax.axvspan(
                ev["at"], ev.get("until") or duration, color="0.5", alpha=0.12, lw=0, label=label
            )


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write the run's figures into ``plots/``; return their paths."""
    run_dir = Path(run_dir)
    metrics = load_metrics(run_dir)
    summary_file = run_dir / "summary.json"
    summary = read_json(summary_file) if summary_file.is_file() else None
    name = summary["name"] if summary else run_dir.name
    resolved = run_dir / "scenario.yaml"
    scenario = read_yaml(resolved) if resolved.is_file() else {}
    queue = scenario.get("network", {}).get("queue", {})
    limit = queue.get("limit") if queue.get("policy") != "unbounded" else None
    out = [plot_agents(run_dir, summary)] if summary else []
    drawn = [
        plot_topology(run_dir, summary),
        plot_network(run_dir, summary, limit),
        plot_reach(run_dir, summary),
        plot_traces(run_dir, summary, scenario.get("duration")),
    ]
    out += [p for p in drawn if p is not None]
    fig = teacher_figure(run_dir, name)
    if fig is not None:
        fig.savefig(run_dir / "plots" / "teachers.png", dpi=110)
        plt.close(fig)
        out.append(run_dir / "plots" / "teachers.png")
    for x, fname in (("time", "accuracy_vs_time.png"), ("bytes", "accuracy_vs_bytes.png")):
        fig = accuracy_figure(run_dir, x, metrics, scenario, name)
        if fig is None:  # a timing-only run: no accuracy to draw
            break
        path = run_dir / "plots" / fname
        path.parent.mkdir(exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        out.append(path)
    return out


def accuracy_figure(
    run_dir: str | Path,
    x: str = "time",
    metrics: pd.DataFrame | None = None,
    scenario: dict | None = None,
    name: str | None = None,
) -> plt.Figure | None:
    """Shared and private accuracy per head (mean over agents, band = min–max) against
    simulated time or total bytes sent; None for a run without accuracy (timing-only)."""
    run_dir = Path(run_dir)
    metrics = load_metrics(run_dir) if metrics is None else metrics
    if metrics.empty:
        return None
    if scenario is None:
        resolved = run_dir / "scenario.yaml"
        scenario = read_yaml(resolved) if resolved.is_file() else {}
    schedule = scenario.get("network", {}).get("schedule", [])
    duration = scenario.get("duration", metrics["time"].max())
    stats = per_head(metrics)
    stats["total_mb_sent"] = stats["total_bytes_sent"] / 1e6
    column, xlabel = {
        "time": ("time", "simulated time (s)"),
        "bytes": ("total_mb_sent", "total bytes sent by all agents (MB)"),
    }[x]
    last = stats[stats["time"] == stats["time"].max()]
    best = int(last.loc[last["shared_acc_mean"].idxmax(), "head"])  # the summary's best head
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for ax, metric in zip(axes, METRICS):
        _panel(ax, stats, column, metric, best)
        ax.set_xlabel(xlabel)
        if x == "time":
            _mark_schedule(ax, schedule, duration)
    axes[0].legend(title="mean over agents,\nband = min–max", fontsize=8, title_fontsize=8)
    name = name or scenario.get("name", run_dir.name)
    fig.suptitle(f"{name}: accuracy vs {'simulated time' if x == 'time' else 'bytes sent'}")
    return fig
