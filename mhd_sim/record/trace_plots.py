"""What the network and devices did over time beside what was learnt: ``plots/traces.png``.

Drawn for a run whose agents went offline (churn, an availability trace) or whose uplinks
followed a bandwidth trace (``uplinks.csv``): each agent's time online and uplink rate as
rows of a heatmap (one row per agent, so a thousand agents read as well as eight), and the
mean shared accuracy per head on the same time axis, so a dip can be read against the
outage or the slow link that caused it. Read from the run directory alone.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm

from .population_plots import _save

BINS = 200  # time columns of the heatmaps


def offline_time(events: pd.DataFrame, agents: int, edges: np.ndarray) -> np.ndarray:
    """Seconds each agent spent offline before each of ``edges`` ([agents, edges]), from the
    ``offline``/``online`` rows of events.csv (an agent offline at the end stays so).

    >>> ev = pd.DataFrame({"time": [2.0, 5.0], "event": ["offline", "online"], "agent": [1, 1]})
    >>> offline_time(ev, 2, np.array([0.0, 4.0, 10.0])).tolist()
    [[0.0, 0.0, 0.0], [0.0, 2.0, 3.0]]
    """
    out = np.zeros((agents, len(edges)))
    for agent, rows in events.groupby("agent"):
        off = rows["event"].to_numpy() == "offline"
        t = rows["time"].to_numpy(float)
        starts = t[off]
        ends = np.array([t[(~off) & (t >= s)].min(initial=np.inf) for s in starts])
        ends = np.minimum(ends, edges[-1])
        # time offline before each edge: each span's overlap with [0, edge)
        out[int(agent)] = np.clip(
            edges[None, :] - starts[:, None], 0, (ends - starts)[:, None]
        ).sum(0)
    return out


def uplink_rates(table: pd.DataFrame, agents: int, mids: np.ndarray) -> np.ndarray:
    """Each agent's uplink rate at each of ``mids`` ([agents, mids]) from ``uplinks.csv``."""
    out = np.full((agents, len(mids)), np.nan)
    for agent, rows in table.groupby("agent"):
        rows = rows.sort_values("time")
        k = np.searchsorted(rows["time"].to_numpy(float), mids, side="right") - 1
        out[int(agent)] = rows["bandwidth"].to_numpy(float)[np.maximum(k, 0)]
    return out


def traces_figure(run_dir: str | Path, agents: int, duration: float) -> plt.Figure | None:
    """The figure (see the module docstring), or None when nothing changed over time."""
    run_dir = Path(run_dir)
    edges = np.linspace(0.0, duration, BINS + 1)
    mids = (edges[:-1] + edges[1:]) / 2
    panels = []
    events_file = run_dir / "events.csv"
    if events_file.is_file():
        ev = pd.read_csv(events_file, usecols=["time", "event", "agent"])
        ev = ev[ev["event"].isin(["offline", "online"])]
        if not ev.empty:
            online = 1 - np.diff(offline_time(ev, agents, edges), axis=1) / np.diff(edges)
            panels.append(("online", online))
    uplinks = run_dir / "uplinks.csv"
    if uplinks.is_file():
        panels.append(("uplink", uplink_rates(pd.read_csv(uplinks), agents, mids)))
    if not panels:
        return None
    metrics_file = run_dir / "metrics.csv"
    metrics = pd.read_csv(metrics_file) if metrics_file.is_file() else pd.DataFrame()
    rows = len(panels) + (not metrics.empty)
    fig, axes = plt.subplots(
        rows, 1, figsize=(10, 2.2 + 2.0 * rows), sharex=True, squeeze=False, layout="constrained"
    )
    axes = axes[:, 0]
    extent = (0.0, duration, agents - 0.5, -0.5)
    for ax, (kind, grid) in zip(axes, panels):
        if kind == "online":
            im = ax.imshow(grid, aspect="auto", extent=extent, cmap="Greens", vmin=0, vmax=1)
            label, title = "fraction online", "availability: white = offline"
        else:
            finite = grid[np.isfinite(grid)]
            norm = LogNorm(finite.min(), max(finite.max(), finite.min() * 1.01))
            im = ax.imshow(grid, aspect="auto", extent=extent, cmap="viridis", norm=norm)
            label, title = "uplink (bytes/s)", "uplink bandwidth"
        fig.colorbar(im, ax=ax, label=label, pad=0.01)
        ax.set_ylabel("agent")
        ax.set_title(title, fontsize=9, loc="left")
    if not metrics.empty:
        ax = axes[-1]
        shared = metrics.groupby(["time", "head"])["shared_acc"].mean().unstack("head")
        for head in shared.columns:
            ax.plot(
                shared.index, shared[head], label="head 0 (main)" if head == 0 else f"head {head}"
            )
        ax.set_ylim(0, 1)
        ax.set_ylabel("shared accuracy\n(mean over agents)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    axes[-1].set_xlabel("simulated time (s)")
    axes[-1].set_xlim(0, duration)
    return fig


def plot_traces(run_dir: Path, summary: dict | None, duration: float | None) -> Path | None:
    """Write ``plots/traces.png`` (see the module docstring); None when nothing to draw."""
    if not summary or duration is None:
        return None
    fig = traces_figure(run_dir, len(summary["agents"]), float(duration))
    if fig is None:
        return None
    fig.suptitle(f"{summary['name']}: availability and uplinks over time, beside accuracy")
    return _save(fig, run_dir, "traces.png")
