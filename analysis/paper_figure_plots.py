"""The three figures of ``analysis.paper_figures`` as images: ours beside the poster's."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

OURS, POSTER = "tab:blue", "tab:gray"


def draw(
    head: pd.DataFrame,
    per_head: dict[tuple[str, str], pd.DataFrame],
    topo: pd.DataFrame,
    folder: Path,
) -> list[Path]:
    """headline.png, heads.png and topology.png into ``folder``; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in (
        ("headline", headline_figure(head)),
        ("heads", heads_figure(per_head)),
        ("topology", topology_figure(topo)),
    ):
        paths.append(folder / f"{name}.png")
        fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
        plt.close(fig)
    return paths


def headline_figure(head: pd.DataFrame) -> plt.Figure:
    """(a): grouped bars per method, ours and the poster's, IID and non-IID."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    x = np.arange(len(head))
    for ax, data in zip(axes, ("IID", "non-IID")):
        ax.bar(x - 0.2, head[f"ours {data}"], 0.4, color=OURS, label="ours (MNIST-1D)")
        ax.bar(x + 0.2, head[f"poster {data}"].astype(float), 0.4, color=POSTER,
               label="poster (ImageNet)")  # fmt: skip
        ax.set_xticks(x, head.index, rotation=20, ha="right")
        ax.set_title(data)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("final shared accuracy (%)")
    axes[0].legend(loc="upper left", fontsize=8)
    return fig


def heads_figure(
    per_head: dict[tuple[str, str], pd.DataFrame], datas: tuple[str, ...] = ("noniid", "iid")
) -> plt.Figure:
    """(b): accuracy per head, one line per number of auxiliary heads, the poster's dashed."""
    fig, axes = plt.subplots(2, len(datas), figsize=(5 * len(datas), 6.5), sharex=True,
                             squeeze=False)  # fmt: skip
    for col, data in enumerate(datas):
        for row, which in enumerate(("shared", "private")):
            ax, table = axes[row, col], per_head[(data, which)]
            for i, (label, values) in enumerate(table.iterrows()):
                poster = "poster" in label
                ax.plot(range(len(values)), values.to_numpy(dtype=float), marker="o",
                        color=POSTER if poster else plt.cm.Blues(0.4 + 0.15 * i),
                        linestyle="--" if poster else "-", label=label)  # fmt: skip
            ax.set_title(f"{'non-IID' if data == 'noniid' else 'IID'}, {which} accuracy")
            ax.set_xticks(range(len(table.columns)), table.columns)
            ax.grid(alpha=0.3)
            ax.set_ylabel("%")
    axes[0, 0].legend(fontsize=8)
    return fig


def topology_figure(topo: pd.DataFrame) -> plt.Figure:
    """(c): per place (hops on the cycle, islands, complete), accuracy by head."""
    fig, axes = plt.subplots(2, 3, figsize=(11, 6), sharey=True, sharex=True)
    heads = range(4)
    for ax, (name, row) in zip(axes.ravel(), topo.iterrows()):
        ax.plot(heads, [row[f"h{h} ours"] for h in heads], "o-", color=OURS, label="ours")
        ax.plot(heads, [row[f"h{h} poster"] for h in heads], "s--", color=POSTER,
                label="poster")  # fmt: skip
        ax.set_title(name)
        ax.set_xticks(list(heads), ["main", "aux1", "aux2", "aux3"])
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("accuracy on that agent's data (%)")
    axes[1, 0].set_ylabel("accuracy on that agent's data (%)")
    axes[0, 0].legend(fontsize=8)
    return fig
