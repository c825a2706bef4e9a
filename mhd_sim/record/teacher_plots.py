"""``plots/teachers.png``: how often the teachers each head learned from were right, and whose
they were, over simulated time (from ``teachers.csv``; see
``learning/distillation/diagnostics.py``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

PANELS = (
    ("teacher_acc", "chosen teacher right\n(share of public samples)"),
    ("own_head", "chose its own head m−1"),
    ("own_class", "chose one of its own main classes"),
)


def per_head(run_dir: Path) -> pd.DataFrame | None:
    """Per evaluation and student head: the shares over all agents, weighted by the samples
    each agent counted (None: the run has no teacher diagnostics)."""
    path = Path(run_dir) / "teachers.csv"
    if not path.is_file():
        return None
    rows = pd.read_csv(path)
    if rows.empty:
        return None
    weighted = rows[[c for c, _ in PANELS]].mul(rows["samples"], axis=0)
    sums = pd.concat([rows[["time", "head", "samples"]], weighted], axis=1)
    sums = sums.groupby(["time", "head"]).sum(min_count=1).reset_index()
    for col, _ in PANELS:
        sums[col] = sums[col] / sums["samples"]
    return sums


def teacher_figure(run_dir: Path, name: str | None = None) -> plt.Figure | None:
    """The figure, or None for a run without teachers (isolated, gossip, timing-only)."""
    table = per_head(run_dir)
    if table is None:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
    for ax, (col, label) in zip(axes, PANELS):
        for head, g in table.groupby("head"):
            ax.plot(g["time"], g[col], marker="o" if len(g) < 15 else None, ms=3,
                    label=f"head {head}")  # fmt: skip
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("simulated time (s)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].legend(title="student head", fontsize=8, title_fontsize=8)
    fig.suptitle(
        f"{name or Path(run_dir).name}: the teachers chosen since the last evaluation, all agents"
    )
    return fig
