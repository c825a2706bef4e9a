"""Figures that compare runs: communication vs accuracy, accuracy vs time, staleness, per agent.

Runs are grouped by the settings that differ between them (or the ``by`` keys); the seeds of a
group become a mean line with a min–max band. ``mhd-sim plot`` calls :func:`plot`; the
sweep summary (``python -m mhd_sim.compare.summarize``) draws its standard set with it too.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter

from ..record import reading
from ..record.population_plots import draw_reach
from . import runs as R

Grouped = list[tuple[str, list[Path]]]  # (label, run directories) per group, as groups() makes

KINDS = ("curves", "staleness", "agents", "reach", "teachers")
FORMATS = (".png", ".svg", ".pdf")
METRIC_NAMES = {"shared_acc": "shared accuracy", "private_acc": "private accuracy"}


def groups(
    run_dirs: list[Path], by: list[str] | None = None
) -> tuple[list[str], list[tuple[str, list[Path]]]]:
    """(grouping keys, [(label, runs)]) in the order the runs came."""
    table = R.table(run_dirs)
    differ = R.varying(table)
    several = "name" in table and table["name"].map(R.text).nunique() > 1
    if by:
        keys = list(by)
    elif several:  # runs of several scenarios: their names, not every setting they differ in
        keys = R.scenario_keys(table)
    else:
        keys = [k for k in R.sweep_axes(run_dirs) if k in differ] or differ
    unknown = [k for k in keys if k not in table.columns]
    if unknown:
        known = ", ".join(k for k in table.columns if "." in k)
        raise reading.NoRuns(
            f"--by {', '.join(unknown)}: not a setting of these runs; settings: {known}"
        )
    labels = (
        table.apply(lambda row: R.label(row, keys), axis=1)
        if keys
        else pd.Series("all runs", table.index)
    )
    out: dict[str, list[Path]] = {}
    for lab, run in zip(labels, table.run):
        out.setdefault(lab, []).append(Path(run))
    return keys, list(out.items())


def _head_text(head: str | int) -> str:
    return "best head" if head == "best" else f"head {head}"


def group_curves(members: list[Path], metric: str, head: str | int) -> pd.DataFrame:
    """Mean and min–max over a group's runs at each evaluation time both have."""
    per_run = pd.concat([R.curve(r, metric, head).assign(run=k) for k, r in enumerate(members)])
    g = per_run.groupby("time")
    out = pd.DataFrame(
        {
            "bytes": g.bytes.mean(),
            "value": g.value.mean(),
            "low": g.value.min(),
            "high": g.value.max(),
            "runs": g.run.nunique(),
        }
    ).reset_index()
    return out[out.runs == len(members)]


def curves(ax: Axes, grouped: Grouped, x: str, metric: str, head: str | int) -> pd.DataFrame:
    """Accuracy against total bytes sent (log) or simulated time; returns what was drawn."""
    drawn = []
    for k, (lab, members) in enumerate(grouped):
        c = group_curves(members, metric, head)
        n = len(members)
        text = f"{lab} ({n} seed{'s' * (n > 1)})"
        color = f"C{k % 10}"
        if x == "bytes":
            if (c.bytes == 0).all():  # sends nothing (isolated): its final level, for reference
                ax.axhline(
                    c.value.iloc[-1],
                    color=color,
                    ls="--",
                    lw=1.2,
                    label=f"{text}, sends nothing: final",
                )
                drawn.append(c.assign(group=lab))
                continue
            c = c[c.bytes > 0]
        xs = c.bytes / 1e6 if x == "bytes" else c.time
        ax.plot(
            xs, c.value, color=color, lw=1.6, marker="o" if len(c) < 15 else None, ms=3, label=text
        )
        if n > 1:
            ax.fill_between(xs, c.low, c.high, color=color, alpha=0.15, lw=0)
        drawn.append(c.assign(group=lab))
    if x == "bytes":
        ax.set_xscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")  # 4, 5, 6 MB rather than 4×10⁰
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
        ax.set_xlabel("total bytes sent by all agents (MB, log scale)")
    else:
        ax.set_xlabel("simulated time (s)")
    ax.set_ylabel(f"{METRIC_NAMES[metric]}, {_head_text(head)}\n(mean over agents)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3, which="both" if x == "bytes" else "major")
    return pd.concat(drawn, ignore_index=True) if drawn else pd.DataFrame()


def teachers(ax: Axes, grouped: Grouped) -> pd.DataFrame:
    """How often the chosen teachers were right (``teachers.csv``), per student head over
    time: a colour per group, a line style per head (mean over the group's runs)."""
    from ..record.teacher_plots import per_head

    drawn = []
    for k, (lab, members) in enumerate(grouped):
        tables = [t for t in (per_head(r) for r in members) if t is not None]
        if not tables:
            continue
        mean = pd.concat(tables).groupby(["time", "head"], as_index=False)["teacher_acc"].mean()
        for j, (head, g) in enumerate(mean.groupby("head")):
            ax.plot(g["time"], g["teacher_acc"], color=f"C{k % 10}",
                    ls=("-", "--", ":", "-.")[j % 4], label=f"{lab}, head {head}")  # fmt: skip
        drawn.append(mean.assign(group=lab))
    if not drawn:
        raise reading.NoRuns("--kind teachers: none of these runs chose teachers (mhd, distill)")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("chosen teacher right\n(share of public samples, all agents)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    return pd.concat(drawn, ignore_index=True)


def staleness(ax: Axes, grouped: Grouped) -> pd.DataFrame:
    """Distribution (ECDF) of the age of teacher predictions at distillation steps, seeds pooled."""
    rows = []
    for k, (lab, members) in enumerate(grouped):
        ages = np.sort(pd.concat([reading.staleness(r) for r in members]).to_numpy())
        if not len(ages):
            continue
        ax.step(
            ages,
            np.arange(1, len(ages) + 1) / len(ages),
            where="post",
            color=f"C{k % 10}",
            label=f"{lab}: median {np.median(ages):.1f} s, p90 {np.percentile(ages, 90):.1f} s",
        )
        rows.append(
            {
                "group": lab,
                "p50": float(np.median(ages)),
                "p90": float(np.percentile(ages, 90)),
                "steps": len(ages),
            }
        )
    ax.set_xlabel("age of the teacher predictions when used (s)")
    ax.set_ylabel("fraction of distillation steps\nwith at most this age")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    return pd.DataFrame(rows)


def agents(ax: Axes, grouped: Grouped, metric: str, head: str | int) -> pd.DataFrame:
    """Each agent's final accuracy (mean over seeds; error bar min–max): bars for small
    populations, a sorted line per group for large ones."""
    per = []
    for lab, members in grouped:
        a = pd.concat([R.agents(r, metric, head) for r in members])
        s = a.groupby("agent").value.agg(["mean", "min", "max"]).reset_index()
        per.append(s.assign(group=lab))
    n_agents = max(len(p) for p in per)
    width = 0.8 / len(per)
    for k, p in enumerate(per):
        color = f"C{k % 10}"
        if n_agents <= 32 and len(per) <= 6:
            ax.bar(
                p.agent + (k - (len(per) - 1) / 2) * width,
                p["mean"],
                width,
                color=color,
                label=p.group.iloc[0],
                yerr=[p["mean"] - p["min"], p["max"] - p["mean"]]
                if len(grouped[k][1]) > 1
                else None,
                error_kw={"lw": 0.8},
            )
            ax.set_xticks(range(n_agents))
            ax.set_xlabel("agent")
        else:
            ax.plot(
                np.arange(len(p)),
                np.sort(p["mean"].to_numpy())[::-1],
                color=color,
                label=p.group.iloc[0],
            )
            ax.set_xlabel("agents, ranked best to worst")
    ax.set_ylabel(f"final {METRIC_NAMES[metric]}, {_head_text(head)}")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    return pd.concat(per, ignore_index=True)


def _reach_figure(grouped: list, name: str) -> tuple[plt.Figure, pd.DataFrame]:
    """One heatmap per group (at most eight): mean over its runs of the final reach."""
    if len(grouped) > 8:
        raise reading.NoRuns(f"--kind reach draws one panel per group; {len(grouped)} is too many: "
                       "narrow the runs or group with --by")  # fmt: skip
    tables = []
    fig, axes = plt.subplots(
        1, len(grouped), figsize=(3.2 * len(grouped) + 1, 3.4), constrained_layout=True,
        squeeze=False,
    )  # fmt: skip
    for ax, (label, members) in zip(axes[0], grouped):
        table = pd.concat([reading.reach(m) for m in members]).groupby(
            ["head", "hops"], as_index=False
        )
        table = table["acc"].mean()
        draw_reach(ax, table, f"{label or name} ({len(members)} runs)")
        tables.append(table.assign(group=label))
    fig.suptitle(f"{name}: final accuracy by head and hop distance, mean over agents")
    return fig, pd.concat(tables, ignore_index=True)


def partial_runs(run_dirs: list[Path]) -> list[str]:
    """One line per run that did not finish (killed, interrupted, failed, still running)."""
    from ..record.status import read

    return [st.describe(r) for r in run_dirs if (st := read(r)).partial]


def plot(
    paths: list[str | Path],
    out: str | Path,
    kind: str = "curves",
    x: str = "bytes",
    metric: str = "shared_acc",
    head: str | int = "best",
    by: list[str] | None = None,
) -> pd.DataFrame:
    """Draw one comparison figure of the runs under ``paths`` into ``out`` (PNG, SVG or PDF by
    its extension); return the numbers drawn."""
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise reading.NoRuns(
            f"-o {out}: the extension picks the format; use one of {', '.join(FORMATS)}"
        )
    fig, data = figure(paths, kind, x, metric, head, by)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return data


def figure(
    paths: list[str | Path],
    kind: str = "curves",
    x: str = "bytes",
    metric: str = "shared_acc",
    head: str | int = "best",
    by: list[str] | None = None,
) -> tuple[plt.Figure, pd.DataFrame]:
    """The comparison figure of the runs under ``paths``, and the numbers drawn."""
    if kind not in KINDS:
        raise reading.NoRuns(f"--kind {kind}: choose one of {', '.join(KINDS)}")
    run_dirs = R.find_runs(paths)
    keys, grouped = groups(run_dirs, by)
    partial = len(partial_runs(run_dirs))
    if kind == "reach":
        return _reach_figure(grouped, compared(run_dirs))
    fig, ax = plt.subplots(figsize=(8.5, 4.8), constrained_layout=True)
    if kind == "curves":
        data = curves(ax, grouped, x, metric, head)
        what = f"{METRIC_NAMES[metric]} vs {'bytes sent' if x == 'bytes' else 'simulated time'}"
    elif kind == "staleness":
        data = staleness(ax, grouped)
        what = "staleness of the predictions distilled from"
    elif kind == "teachers":
        data = teachers(ax, grouped)
        what = "how often the chosen teachers were right"
    else:
        data = agents(ax, grouped, metric, head)
        what = f"final {METRIC_NAMES[metric]} per agent"
    name = compared(run_dirs)
    seeds = max(len(m) for _, m in grouped)
    band = (
        {
            "curves": "; line: mean over seeds, band: min–max",
            "staleness": "; seeds pooled",
            "agents": "; bar: mean over seeds, whisker: min–max",
            "teachers": "; mean over seeds",
        }[kind]
        if seeds > 1
        else ""
    )
    unfinished = f", {partial} of them unfinished: drawn as far as they got" if partial else ""
    ax.set_title(f"{name}: {what}\n{len(run_dirs)} runs{band}{unfinished}", fontsize=11)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        title = ", ".join(k for k in R.short_keys(keys).values() if k != "name") or None
        labels = [textwrap.fill(lab, 48) for lab in labels]  # a long group wraps, never runs off
        if len(handles) > 6:  # beside the axes, inside the figure
            fig.legend(handles, labels, title=title, fontsize=8, title_fontsize=8,
                       loc="outside right upper")  # fmt: skip
        else:
            ax.legend(handles, labels, title=title, fontsize=8, title_fontsize=8, loc="best")
    return fig, data


def compared(run_dirs: list[Path]) -> str:
    """What a figure compares, for its title: the scenario's name, or the names of the
    scenarios its runs come from."""
    names = list(dict.fromkeys(reading.summary(r).get("name", r.name) for r in run_dirs))
    if len(names) == 1:
        return names[0]
    shown = names if len(names) <= 4 else [*names[:3], f"{len(names) - 3} more"]
    return ", ".join(shown[:-1]) + " and " + shown[-1]
