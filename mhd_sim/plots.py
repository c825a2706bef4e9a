"""Figures drawn from a run directory alone (pandas + matplotlib); no simulator objects."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

METRICS = {"shared_acc": "shared accuracy (global test set)", "private_acc": "private accuracy (own label mix)"}


def load_metrics(run_dir: str | Path) -> pd.DataFrame:
    return pd.read_csv(Path(run_dir) / "metrics.csv")


def per_head(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean, min and max over agents of each metric, per evaluation time and head, plus the
    total bytes sent by all agents up to that time."""
    stats = metrics.groupby(["time", "head"])[list(METRICS)].agg(["mean", "min", "max"])
    stats.columns = [f"{m}_{s}" for m, s in stats.columns]
    sent = metrics[metrics["head"] == 0].groupby("time")["bytes_sent"].sum().rename("total_bytes_sent")
    return stats.reset_index().merge(sent.reset_index(), on="time")


def _panel(ax, stats: pd.DataFrame, x: str, metric: str) -> None:
    for head, g in stats.groupby("head"):
        label = "head 0 (main)" if head == 0 else f"head {head}"
        line, = ax.plot(g[x], g[f"{metric}_mean"], label=label)
        ax.fill_between(g[x], g[f"{metric}_min"], g[f"{metric}_max"], color=line.get_color(), alpha=0.15)
    ax.set_ylabel(METRICS[metric])
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)


def plot_agents(run_dir: Path, summary: dict) -> Path:
    """Per-agent bars: steps, messages sent, age of its predictions when peers used them, and
    final shared accuracy of the best head — where stragglers and isolated nodes show up."""
    agents = pd.DataFrame(summary["agents"])
    best = summary["final"]["best_head"]
    agents["best_head_shared_acc"] = agents["shared_acc"].map(lambda accs: accs[best])
    panels = (("steps", "local steps"), ("messages_sent", "messages sent\n(one per neighbour)"),
              ("staleness_as_teacher", "age of its predictions\nwhen used by peers (s)"),
              ("best_head_shared_acc", f"final shared accuracy\n(head {best})"))
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
    fig.legend(handles, [f"group: {g}" for g in groups], loc="outside lower center", ncol=len(groups), fontsize=9)
    fig.suptitle(f"{summary['name']}: per agent")
    path = run_dir / "plots" / "agents.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write the run's figures into ``plots/``; return their paths."""
    run_dir = Path(run_dir)
    stats = per_head(load_metrics(run_dir))
    stats["total_mb_sent"] = stats["total_bytes_sent"] / 1e6
    summary_file = run_dir / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else None
    name = summary["name"] if summary else run_dir.name
    out = [plot_agents(run_dir, summary)] if summary else []
    for x, xlabel, fname in (("time", "simulated time (s)", "accuracy_vs_time.png"),
                             ("total_mb_sent", "total bytes sent by all agents (MB)", "accuracy_vs_bytes.png")):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
        for ax, metric in zip(axes, METRICS):
            _panel(ax, stats, x, metric)
            ax.set_xlabel(xlabel)
        axes[0].legend(title="mean over agents,\nband = min–max", fontsize=8, title_fontsize=8)
        fig.suptitle(f"{name}: accuracy vs {'simulated time' if x == 'time' else 'bytes sent'}")
        path = run_dir / "plots" / fname
        path.parent.mkdir(exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        out.append(path)
    return out
