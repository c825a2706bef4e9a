"""Many run directories as one table: finding them, their settings side by side, their
curves. What one run directory holds is read by ``record/reading.py``.

A path given by the user may be a run directory (it has ``metrics.csv``), a sweep directory
(``sweep.csv`` and ``runs/``) or any folder holding run directories below it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ..record.reading import FIGURES, NoRuns, final_figures, needs_summary, summary
from ..scenario.loading import short_keys
from ..untrusted import read_json, read_yaml


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Run directories under the given paths, in a stable order; finished sweep points only."""
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise NoRuns(f"{p}: no such directory")
        if (p / "metrics.csv").is_file():
            found.append(p)
        elif (p / "sweep.csv").is_file():
            index = pd.read_csv(p / "sweep.csv")
            found += [p / "runs" / name for name in index.loc[index.status == "done", "point"]]
        else:
            found += sorted(m.parent for m in p.rglob("metrics.csv"))
        if not found:
            raise NoRuns(f"{p}: no run directory (a folder with metrics.csv) in it")
    return list(dict.fromkeys(found))


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out |= _flatten(v, f"{prefix}{k}.")
        return out
    return {prefix[:-1]: json.dumps(node) if isinstance(node, list) else node}


def settings(run: Path) -> dict[str, Any]:
    """The run's resolved scenario as dotted keys (``network.topology.kind``); lists as JSON."""
    f = run / "scenario.yaml"
    return _flatten(read_yaml(f)) if f.is_file() else {}


def grid_values(run: Path) -> dict[str, str]:
    """For a sweep point: its grid settings as the user wrote them (``agents.churn=null``)."""
    sweep = run.parent.parent
    if not (sweep / "sweep.json").is_file() or not (sweep / "sweep.csv").is_file():
        return {}
    grid = read_json(sweep / "sweep.json").get("grid", {})
    index = pd.read_csv(sweep / "sweep.csv", dtype=str, keep_default_na=False)
    row = index[index.point == run.name]
    return {k: row[k].iloc[0] for k in grid if k in row and len(row)}


def table(runs: list[Path]) -> pd.DataFrame:
    """One row per run: its directory, every setting, and the summary's final figures."""
    rows = []
    for run in runs:
        flat, grid = settings(run), grid_values(run)
        flat = {
            k: v for k, v in flat.items() if not any(k.startswith(g + ".") for g in grid)
        } | grid
        rows.append({"run": str(run), **flat, **final_figures(run)})
    return pd.DataFrame(rows)


IGNORED = {"seed", "name"}  # never a reason to draw separate lines


def sweep_axes(runs: list[Path]) -> list[str]:
    """The grid keys, when every run is a sweep point: the settings the user varied (a new
    topology kind also changes that kind's own settings, which are no axis of their own)."""
    axes: dict[str, None] = {}
    for run in runs:
        meta = run.parent.parent / "sweep.json"
        if not meta.is_file():
            return []
        axes |= dict.fromkeys(read_json(meta).get("grid", {}))
    return list(axes)


def varying(runs: pd.DataFrame) -> list[str]:
    """The settings that differ between the runs (seed and name aside), in scenario order."""
    keys = [c for c in runs.columns if c != "run" and c not in FIGURES]
    return [k for k in keys if k not in IGNORED and runs[k].map(text).nunique() > 1]


def text(value: Any) -> str:
    """A setting as shown in legends; absent and null both read ``null``."""
    return (
        "null" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    )


def label(row: pd.Series | dict, keys: list[str]) -> str:
    """A group's legend entry: its values of ``keys`` (a scenario's name as it is)."""
    short = short_keys(keys)
    parts = [text(row[k]) if k == "name" else f"{short[k]}={text(row[k])}" for k in keys]
    return ", ".join(parts) or "all runs"


def scenario_keys(runs: pd.DataFrame) -> list[str]:
    """How to tell runs of several scenarios apart: by name, and by the settings that differ
    between runs of the same scenario (not every setting in which two scenarios differ)."""
    names = runs["name"].map(text)

    def differs_within(k: str) -> bool:
        return any(runs[names == n][k].map(text).nunique() > 1 for n in names.unique())

    return ["name", *(k for k in varying(runs) if differs_within(k))]


def head_of(run: Path, head: str | int) -> int:
    """``best`` → the head with the best final mean shared accuracy in this run."""
    if head == "best":
        return int(summary(run).get("final", {}).get("best_head", 0))
    return int(head)


def curve(run: Path, metric: str = "shared_acc", head: str | int = "best") -> pd.DataFrame:
    """Per evaluation: simulated time, total bytes sent by all agents, and the head's metric
    (mean over agents)."""
    m = pd.read_csv(run / "metrics.csv")
    h = head_of(run, head)
    if h not in set(m["head"]):
        raise NoRuns(f"{run}: has no head {h} (heads 0..{m['head'].max()})")
    sel = m[m["head"] == h]
    return pd.DataFrame(
        {"bytes": sel.groupby("time").bytes_sent.sum(), "value": sel.groupby("time")[metric].mean()}
    ).reset_index()


def agents(run: Path, metric: str = "shared_acc", head: str | int = "best") -> pd.DataFrame:
    """Each agent's final value of the metric for the head, with its group."""
    s = needs_summary(run, "a figure per agent")
    h = head_of(run, head)
    return pd.DataFrame(
        [
            {
                "agent": a["agent"],
                "group": a["group"],
                "value": a[metric][h] if len(a[metric]) > h else float("nan"),
            }
            for a in s["agents"]
        ]
    )
