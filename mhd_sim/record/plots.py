"""Figures drawn from a run directory alone (pandas + matplotlib); no simulator objects."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

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


def _panel(ax: Axes, stats: pd.DataFrame, x: str, metric: str) -> None:
    for head, g in stats.groupby("head"):
        label = "head 0 (main)" if head == 0 else f"head {head}"
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


def plot_agents(run_dir: Path, summary: dict) -> Path:
    """Per-agent bars: steps, messages sent, age of its predictions when peers used them, and
    final shared accuracy of the best head — where stragglers and isolated nodes show up."""
    agents = pd.DataFrame(summary["agents"])
    best = summary["final"]["best_head"]
    agents["best_head_shared_acc"] = agents["shared_acc"].map(
        lambda accs: accs[best] if accs else float("nan")
    )
    panels = (
        ("steps", "local steps"),
        ("messages_sent", "messages sent\n(one per neighbour)"),
        ("staleness_as_teacher", "age of its predictions\nwhen used by peers (s)"),
        ("best_head_shared_acc", f"final shared accuracy\n(head {best})"),
    )
    if summary.get("timing_only"):  # no learning: what the schedule alone tells
        agents["mb_sent"] = agents["bytes_sent"] / 1e6
        panels = panels[:2] + (
            ("mb_sent", "MB sent"),
            ("online_fraction", "fraction of time online"),
        )
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4), constrained_layout=True)
    groups = list(dict.fromkeys(agents["group"]))
    colors = {g: f"C{k}" for k, g in enumerate(groups)}
    for ax, (col, label) in zip(axes, panels):
        ax.bar(agents["agent"], agents[col].fillna(0), color=[colors[g] for g in agents["group"]])
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("agent")
        ax.set_xticks(agents["agent"])
        ax.grid(axis="y", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[g]) for g in groups]
    fig.legend(
        handles,
        [f"group: {g}" for g in groups],
        loc="outside lower center",
        ncol=len(groups),
        fontsize=9,
    )
    fig.suptitle(f"{summary['name']}: per agent")
    path = run_dir / "plots" / "agents.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_topology(run_dir: Path, summary: dict | None) -> Path | None:
    """The initial graph (``topology.edges``), nodes coloured by the best head's final accuracy."""
    import networkx as nx

    edges = run_dir / "topology.edges"
    if not edges.is_file():
        return None
    g = nx.Graph()
    n = len(summary["agents"]) if summary else 0
    g.add_nodes_from(range(n))
    for line in edges.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            a, b = map(int, line.split()[:2])
            g.add_edge(a, b)
    fig, ax = plt.subplots(figsize=(5.5, 5), constrained_layout=True)
    pos = nx.circular_layout(g) if g.number_of_nodes() <= 40 else nx.spring_layout(g, seed=0)
    colors = None
    if summary:
        best = summary["final"]["best_head"]
        colors = [
            summary["agents"][i]["shared_acc"][best] if summary["agents"][i]["shared_acc"] else 0.0
            for i in g.nodes
        ]
    nx.draw_networkx_edges(g, pos, ax=ax, alpha=0.4)
    nodes = nx.draw_networkx_nodes(
        g,
        pos,
        ax=ax,
        node_color=colors,
        cmap="viridis",
        vmin=0,
        vmax=1,
        node_size=max(30, 400 - 3 * g.number_of_nodes()),
    )
    if g.number_of_nodes() <= 40:
        nx.draw_networkx_labels(g, pos, ax=ax, font_size=8, font_color="white")
    if colors is not None:
        fig.colorbar(
            nodes,
            ax=ax,
            shrink=0.7,
            label=f"final shared accuracy (head {summary['final']['best_head']})",
        )
    ax.set_title(
        f"{summary['name'] if summary else run_dir.name}: topology at t=0 "
        f"({g.number_of_nodes()} agents, {g.number_of_edges()} links)",
        fontsize=10,
    )
    ax.axis("off")
    path = run_dir / "plots" / "topology.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write the run's figures into ``plots/``; return their paths."""
    run_dir = Path(run_dir)
    metrics = load_metrics(run_dir)
    summary_file = run_dir / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else None
    name = summary["name"] if summary else run_dir.name
    resolved = run_dir / "scenario.yaml"
    scenario = yaml.safe_load(resolved.read_text()) if resolved.is_file() else {}
    schedule = scenario.get("network", {}).get("schedule", [])
    duration = scenario.get("duration", metrics["time"].max())
    out = [plot_agents(run_dir, summary)] if summary else []
    out += [p for p in [plot_topology(run_dir, summary)] if p is not None]
    if metrics.empty:  # a timing-only run: no accuracy to draw
        return out
    stats = per_head(metrics)
    stats["total_mb_sent"] = stats["total_bytes_sent"] / 1e6
    for x, xlabel, fname in (
        ("time", "simulated time (s)", "accuracy_vs_time.png"),
        ("total_mb_sent", "total bytes sent by all agents (MB)", "accuracy_vs_bytes.png"),
    ):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
        for ax, metric in zip(axes, METRICS):
            _panel(ax, stats, x, metric)
            ax.set_xlabel(xlabel)
            if x == "time":
                _mark_schedule(ax, schedule, duration)
        axes[0].legend(title="mean over agents,\nband = min–max", fontsize=8, title_fontsize=8)
        fig.suptitle(f"{name}: accuracy vs {'simulated time' if x == 'time' else 'bytes sent'}")
        path = run_dir / "plots" / fname
        path.parent.mkdir(exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        out.append(path)
    return out
