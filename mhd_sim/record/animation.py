"""A run replayed as an animation, from its run directory alone: the topology, nodes coloured by
shared accuracy, messages lighting up the links they crossed, offline agents in grey, a clock.

Everything per frame is precomputed as arrays (accuracy at the last evaluation, online state,
link state, deliveries per link), so drawing a frame only updates colours and widths.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pandas as pd
from matplotlib import animation
from matplotlib.collections import LineCollection

from ..untrusted import read_json

TRACKED = ("deliver", "offline", "online", "link_down", "link_up")


def _edges(run: Path) -> list[tuple[int, int]]:
    f = run / "topology.edges"
    if not f.is_file():
        return []
    pairs = (
        ln.split()[:2] for ln in f.read_text().splitlines() if ln.strip() and not ln.startswith("#")
    )
    return [tuple(sorted(map(int, p))) for p in pairs]


def _state(
    times: np.ndarray, changes: pd.DataFrame, key: np.ndarray, initial: np.ndarray, n: int
) -> np.ndarray:
    """[frames, n] booleans: ``initial`` changed by events (``up`` column) at their times."""
    out = np.repeat(initial[None, :], len(times), axis=0)
    for k, g in changes.groupby(key):
        # the last change at or before t
        idx = np.searchsorted(g.time.to_numpy(), times, side="right") - 1
        known = idx >= 0
        out[known, k] = g.up.to_numpy()[idx[known]]
    return out


def frames(run: Path, count: int = 120, head: int | str = "best") -> dict:
    """The per-frame arrays an animation draws (also what a test checks)."""
    summary = read_json(run / "summary.json")
    n = len(summary["agents"])
    h = summary["final"]["best_head"] if head == "best" else int(head)
    duration = float(summary["sim_time"])
    times = np.linspace(0, duration, count)
    m = pd.read_csv(run / "metrics.csv", usecols=["time", "agent", "head", "shared_acc"])
    acc = (
        m[m["head"] == h]
        .pivot_table(index="time", columns="agent", values="shared_acc")
        .reindex(columns=range(n))
    )
    ev = pd.read_csv(run / "events.csv", usecols=["time", "event", "agent", "peer"])
    ev = ev[ev.event.isin(TRACKED)]
    start = set(_edges(run))
    edges = sorted(
        start
        | {
            tuple(sorted(p))
            for p in ev.loc[ev.event.isin(("deliver", "link_up", "link_down")), ["agent", "peer"]]
            .astype(int)
            .itertuples(index=False)
        }
    )
    edge_id = {e: k for k, e in enumerate(edges)}
    row = np.searchsorted(acc.index.to_numpy(), times, side="right") - 1
    accuracy = np.where(row[:, None] >= 0, acc.to_numpy()[np.maximum(row, 0)], np.nan)

    churn = ev[ev.event.isin(("offline", "online"))].assign(up=lambda d: d.event == "online")
    online = _state(times, churn, churn.agent.astype(int).to_numpy(), np.ones(n, bool), n)
    links = ev[ev.event.isin(("link_down", "link_up"))].assign(up=lambda d: d.event == "link_up")
    link_key = np.array(
        [
            edge_id[tuple(sorted(p))]
            for p in links[["agent", "peer"]].astype(int).itertuples(index=False)
        ],
        dtype=int,
    )
    initial = np.array([e in start for e in edges], bool) if start else np.ones(len(edges), bool)
    link_up = _state(times, links, link_key, initial, len(edges))

    deliver = ev[ev.event == "deliver"]
    # delivered in (t_{k-1}, t_k]
    bins = np.searchsorted(times, deliver.time.to_numpy(), side="left")
    keys = np.array(
        [
            edge_id[tuple(sorted(p))]
            for p in deliver[["agent", "peer"]].astype(int).itertuples(index=False)
        ],
        dtype=int,
    )
    traffic = np.zeros((count, len(edges)), int)
    np.add.at(traffic, (np.minimum(bins, count - 1), keys), 1)
    return {
        "times": times,
        "accuracy": accuracy,
        "online": online,
        "edges": edges,
        "link_up": link_up,
        "traffic": traffic,
        "head": h,
        "name": summary["name"],
        "n": n,
    }


def animate(
    run: str | Path,
    out: str | Path,
    count: int = 120,
    fps: int = 12,
    head: int | str = "best",
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the animation: ``.gif`` with pillow, ``.mp4`` with ffmpeg when it is installed."""
    run, out = Path(run), Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"-o {out}: write a .gif (pillow) or an .mp4 (ffmpeg)")
    if suffix == ".mp4" and not animation.writers.is_available("ffmpeg"):
        raise ValueError(
            f"-o {out}: MP4 needs ffmpeg on the PATH, which is not there; write a .gif instead"
        )
    from .reading import needs_summary

    if "final" not in needs_summary(run, "an animation"):  # its agents, accuracy, last time
        raise ValueError(f"{run}: a timing-only run has no accuracy to colour the agents by")
    for name in ("metrics.csv", "events.csv"):
        if not (run / name).is_file():
            raise ValueError(f"{run}: no {name}; animate needs a run directory")
    f = frames(run, count, head)
    n, edges = f["n"], f["edges"]
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(edges)
    pos = nx.circular_layout(g) if n <= 40 else nx.spring_layout(g, seed=0)
    xy = np.array([pos[i] for i in range(n)])

    fig, ax = plt.subplots(figsize=(6.4, 5.8))
    fig.subplots_adjust(left=0.02, right=0.98, top=0.9, bottom=0.05)
    ax.set_aspect("equal")
    ax.axis("off")
    lines = LineCollection(
        [[xy[a], xy[b]] for a, b in edges], colors="0.8", linewidths=0.8, zorder=1
    )
    ax.add_collection(lines)
    cmap = plt.get_cmap("viridis")
    size = max(20, 420 - 4 * n)
    # plain face colours (set per frame, grey when offline); the colour bar has its own mappable
    nodes = ax.scatter(
        xy[:, 0],
        xy[:, 1],
        s=size,
        color=cmap(np.zeros(n)),
        zorder=2,
        edgecolors="black",
        linewidths=0.6,
    )
    if n <= 40:
        for i, (x, y) in enumerate(xy):
            ax.text(x, y, str(i), ha="center", va="center", fontsize=7, color="white", zorder=3)
    scale = plt.cm.ScalarMappable(norm=matplotlib.colors.Normalize(0, 1), cmap=cmap)
    fig.colorbar(
        scale, ax=ax, shrink=0.7, label=f"shared accuracy, head {f['head']} (last evaluation)"
    )
    fig.suptitle(f["name"], fontsize=11)
    clock = fig.text(0.02, 0.95, "", va="top", fontsize=10, family="monospace")
    fig.text(
        0.5,
        0.01,
        "orange: messages delivered since the previous frame (thicker: more)   "
        "grey node: offline   dotted: link down",
        ha="center",
        fontsize=7.5,
        color="0.3",
    )
    peak = max(1, f["traffic"].max())
    dt = f["times"][1] - f["times"][0] if len(f["times"]) > 1 else 0

    def draw(k: int):
        colors = cmap(np.nan_to_num(f["accuracy"][k], nan=0.0))
        colors[~f["online"][k]] = (0.75, 0.75, 0.75, 1.0)
        nodes.set_facecolor(colors)
        busy = f["traffic"][k] > 0
        up = f["link_up"][k]
        ec = np.where(
            busy[:, None],
            np.array([[1.0, 0.5, 0.0, 1.0]]),
            np.where(
                up[:, None], np.array([[0.7, 0.7, 0.7, 0.8]]), np.array([[0.85, 0.85, 0.85, 0.6]])
            ),
        )
        lines.set_color(ec)
        lines.set_linewidth(np.where(busy, 1.0 + 3.0 * f["traffic"][k] / peak, 0.8))
        lines.set_linestyle([(0, (1, 2)) if not u else "solid" for u in up])
        clock.set_text(f"t = {f['times'][k]:.1f} s\n(frame: {dt:.1f} s)")
        return nodes, lines, clock

    anim = animation.FuncAnimation(fig, draw, frames=len(f["times"]), blit=False)
    writer = (
        animation.PillowWriter(fps=fps) if suffix == ".gif" else animation.FFMpegWriter(fps=fps)
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    anim.save(out, writer=writer, dpi=90, progress_callback=progress)
    plt.close(fig)
    return out
