"""Per-run figures of the population: per agent, the topology, and the network over time.

Each adapts to scale: a bar per agent and a drawn graph while they can be read (up to
``READABLE`` agents); past that, distributions over agents and a summary of the graph, so
a run of 10,000 agents is drawn in about the time of a run of ten.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

READABLE = 32  # agents drawn one by one (bars, lines); more become distributions
DRAWN = 300  # largest graph drawn node by node


def _save(fig: plt.Figure, run_dir: Path, name: str) -> Path:
    """Write ``fig`` into ``plots/`` and close it (with ``save=False`` the plot functions
    return the figure instead, for notebooks)."""
    path = run_dir / "plots" / name
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_agents(run_dir: Path, summary: dict, save: bool = True) -> Path | plt.Figure:
    """Per agent: steps, messages, age of its predictions when peers used them, and final
    shared accuracy of the best head — where stragglers and isolated nodes show up. Bars up
    to ``READABLE`` agents, a histogram per group beyond."""
    agents = pd.DataFrame(summary["agents"])
    panels = (
        ("steps", "local steps"),
        ("messages_sent", "messages sent\n(one per neighbour)"),
        ("staleness_as_teacher", "age of its predictions\nwhen used by peers (s)"),
    )
    if "final" in summary:
        best = summary["final"]["best_head"]
        agents["best_head_shared_acc"] = [a[best] if a else np.nan for a in agents["shared_acc"]]
        panels += (("best_head_shared_acc", f"final shared accuracy\n(head {best}, the best)"),)
    else:  # timing only: no learning, what the schedule alone tells
        agents["mb_sent"] = agents["bytes_sent"] / 1e6
        panels = panels[:2] + (("mb_sent", "MB sent"), ("online_fraction", "fraction online"))
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4), constrained_layout=True)
    groups = list(dict.fromkeys(agents["group"]))
    colors = {g: f"C{k}" for k, g in enumerate(groups)}
    for ax, (col, label) in zip(axes, panels):
        if len(agents) <= READABLE:
            values = agents[col].fillna(0)
            ax.bar(agents["agent"], values, color=[colors[g] for g in agents["group"]])
            ax.set_xlabel("agent")
            ax.set_xticks(agents["agent"])
        else:
            values = agents[col].dropna()
            bins = np.histogram_bin_edges(values, bins=30) if len(values) else 10
            for g in groups:
                ax.hist(agents.loc[agents["group"] == g, col].dropna(), bins=bins, color=colors[g])
            ax.set_xlabel(label.replace("\n", " "))
            ax.set_ylabel("agents")
        ax.set_title(label, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[g]) for g in groups]
    labels = [f"group: {g}" for g in groups]
    fig.legend(handles, labels, loc="outside lower center", ncol=len(groups), fontsize=9)
    fig.suptitle(f"{summary['name']}: per agent ({len(agents)} agents)")
    return _save(fig, run_dir, "agents.png") if save else fig


def _graph(run_dir: Path, n: int) -> nx.Graph | None:
    edges = run_dir / "topology.edges"
    if not edges.is_file():
        return None
    g = nx.Graph()
    g.add_nodes_from(range(n))
    pairs = np.loadtxt(edges, dtype=np.int64, comments="#", ndmin=2)
    g.add_edges_from(pairs[:, :2].tolist())
    return g


def plot_topology(
    run_dir: Path, summary: dict | None, save: bool = True
) -> Path | plt.Figure | None:
    """The initial graph (``topology.edges``), nodes coloured by the best head's final shared
    accuracy; past ``DRAWN`` agents, its degree distribution and a summary instead."""
    g = _graph(run_dir, len(summary["agents"]) if summary else 0)
    if g is None:
        return None
    n = g.number_of_nodes()
    title = (
        f"{summary['name'] if summary else run_dir.name}: topology at t=0 "
        f"({n:,} agents, {g.number_of_edges():,} links)"
    )
    if n > DRAWN:
        degrees = np.array([d for _, d in g.degree()])
        components = nx.number_connected_components(g)
        fig, ax = plt.subplots(figsize=(5.5, 4), constrained_layout=True)
        ax.hist(degrees, bins=np.arange(degrees.min(), degrees.max() + 2) - 0.5, color="C0")
        ax.set_xlabel("degree (neighbours)")
        ax.set_ylabel("agents")
        ax.set_title(
            f"{title}\ndegree mean {degrees.mean():.1f}, min {degrees.min()}, max "
            f"{degrees.max()}; {components} connected component{'s' * (components > 1)}",
            fontsize=9,
        )
        return _save(fig, run_dir, "topology.png") if save else fig
    fig, ax = plt.subplots(figsize=(5.5, 5), constrained_layout=True)
    pos = nx.circular_layout(g) if n <= 40 else nx.spring_layout(g, seed=0, iterations=30)
    agents = summary["agents"] if summary else []  # nodes past the agents (a server): none
    group = {a["agent"]: a["group"] for a in agents}
    colors, span = None, (0.0, 1.0)
    if summary and "final" in summary:
        best = summary["final"]["best_head"]
        accs = [agents[i]["shared_acc"] if i < len(agents) else [] for i in g.nodes]
        values = {i: a[best] for i, a in zip(g.nodes, accs) if a}
        colors = values
        if values:  # the scale spans the accuracies reached, so that differences show
            low, high = min(values.values()), max(values.values())
            pad = max(0.02, (high - low) * 0.05)
            span = (max(0.0, low - pad), min(1.0, high + pad))
    nx.draw_networkx_edges(g, pos, ax=ax, alpha=0.4)
    size = max(20, 400 - 3 * n)
    nodes = None
    names = list(dict.fromkeys(group.get(i, "server") for i in g.nodes))
    for k, name in enumerate(names):  # a shape per named group: stragglers show
        members = [i for i in g.nodes if group.get(i, "server") == name]
        paint = (
            {"node_color": [colors.get(i, span[0]) for i in members], "cmap": "viridis",
             "vmin": span[0], "vmax": span[1]} if colors else {"node_color": "C0"}
        )  # fmt: skip
        nodes = nx.draw_networkx_nodes(
            g, pos, nodelist=members, ax=ax, node_shape="osD^vp"[k % 6], node_size=size,
            edgecolors="black", linewidths=0.8, **paint,
        )  # fmt: skip
    if n <= 40:
        nx.draw_networkx_labels(g, pos, ax=ax, font_size=8, font_color="white")
    if len(names) > 1:
        from matplotlib.lines import Line2D

        handles = [
            Line2D([], [], ls="", marker="osD^vp"[k % 6], color="0.6", markeredgecolor="black",
                   label=f"{name} ({sum(group.get(i, 'server') == name for i in g.nodes)})")
            for k, name in enumerate(names)
        ]  # fmt: skip
        ax.legend(handles=handles, title="group", fontsize=8, title_fontsize=8, loc="lower right")
    if colors and nodes is not None:
        label = f"final shared accuracy (head {summary['final']['best_head']}, the best)"
        fig.colorbar(nodes, ax=ax, shrink=0.7, label=label)
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    return _save(fig, run_dir, "topology.png") if save else fig


def plot_reach(run_dir: Path, summary: dict | None, save: bool = True) -> Path | plt.Figure | None:
    """Each head's final accuracy on the data of the agents at each hop distance, mean over
    agents (``reach.csv``): how far each head's knowledge has travelled."""
    from .reading import NoRuns, reach

    try:
        table = reach(run_dir)
    except NoRuns:
        return None
    fig, ax = plt.subplots(
        figsize=(1.1 * table.hops.nunique() + 3, 0.6 * table["head"].nunique() + 2)
    )
    name = summary["name"] if summary else run_dir.name
    draw_reach(ax, table, f"{name}: final accuracy by hop distance, mean over agents")
    fig.tight_layout()
    return _save(fig, run_dir, "reach.png") if save else fig


def plot_network(
    run_dir: Path, summary: dict | None, limit: int | None = None, save: bool = True
) -> Path | plt.Figure | None:
    """Each uplink's utilization and queue over time (``network.csv``): a line per agent up
    to ``READABLE`` agents, else the median, 90th percentile and maximum over agents."""
    path = run_dir / "network.csv"
    if not path.is_file():
        return None
    net = pd.read_csv(path)
    if net.empty:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True)
    panels = (("utilization", "uplink utilization"), ("queued_bytes", "bytes on the uplink"))
    agents = net["agent"].nunique()
    for ax, (col, label) in zip(axes, panels):
        if agents <= READABLE:
            for agent, rows in net.groupby("agent"):
                ax.plot(rows["time"], rows[col], lw=1, label=f"agent {agent}")
        else:
            by_time = net.groupby("time")[col]
            for q, style in ((0.5, "-"), (0.9, "--"), (1.0, ":")):
                name = "max" if q == 1.0 else f"p{int(q * 100)}"
                ax.plot(by_time.quantile(q), style, color="C0", label=f"{name} over agents")
        ax.set_xlabel("simulated time (s)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    # scaled to what happened: a link busy 5% of the time is not a flat line at the bottom
    top = float(net["utilization"].max())
    axes[0].set_ylim(0, min(1.05, max(top * 1.15, 0.01)))
    queued = float(net["queued_bytes"].max())
    axes[1].set_ylim(0, max(queued * 1.15, 1.0))
    if limit and limit <= 1.15 * max(queued, 1.0):  # the buffer's limit, where it is in reach
        axes[1].axhline(limit, color="0.4", lw=0.8, ls="-.", label=f"buffer limit {limit:,} B")
    elif limit:  # off the scale: said in words, not as a line nobody sees
        axes[1].set_title(f"(buffer limit {limit:,} B, never reached)", fontsize=8)
    handles, labels = axes[1].get_legend_handles_labels()
    if len(labels) <= 12:
        axes[1].legend(fontsize=8)
    name = summary["name"] if summary else run_dir.name
    fig.suptitle(f"{name}: uplinks over time ({agents:,} agents)")
    return _save(fig, run_dir, "network.png") if save else fig


def draw_reach(ax: Axes, table: pd.DataFrame, title: str) -> None:
    """A heatmap of accuracy by head (rows) and hop distance (columns; −1 last, as
    'unreachable'), each cell labelled: the paper's topology view."""
    grid = table.pivot(index="head", columns="hops", values="acc")
    order = sorted(c for c in grid.columns if c >= 0) + [c for c in grid.columns if c < 0]
    grid = grid[order]
    ax.imshow(grid.to_numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for (r, c), v in np.ndenumerate(grid.to_numpy()):
        if v == v:
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if v < 0.6 else "black")  # fmt: skip
    ax.set_xticks(range(len(order)), ["unreach." if c < 0 else str(c) for c in order])
    ax.set_yticks(range(len(grid.index)), [f"head {h}" for h in grid.index])
    ax.set_xlabel("hops to the agents whose data it is tested on")
    ax.set_title(title, fontsize=9)
