"""Reading one run directory back: its summary's final figures, the reach of its last
evaluation, the staleness of its distillation steps. The per-run figures (``plots.py``),
the sweep's index (``sweeps.py``) and the comparisons across runs (``compare/``) all read a
run here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..untrusted import read_json


class NoRuns(ValueError):
    """A path holds no run directory: the message says which and what was expected."""


def needs_summary(run: Path, what: str) -> dict[str, Any]:
    """The run's summary.json, or one line saying why it has none (a run that did not end)."""
    from .status import read

    s = summary(run)
    if not s:
        st = read(run)
        why = st.describe(run) if st.partial else f"{run}: no summary.json"
        raise NoRuns(f"{why}; {what} needs the summary of a run that ended")
    return s


FIGURES = (
    "best_head",
    "best_head_shared_acc",
    "head0_private_acc",
    "head0_shared_acc",
    "bytes_sent",
    "messages_sent",
    "messages_delivered",
    "messages_dropped",
    "staleness_p50",
    "staleness_p90",
    "steps",
    "sim_time",
    "wall_time_s",
)


def final_figures(run: Path) -> dict[str, Any]:
    """A run's final figures from its summary.json (all None when it has none): the sweep
    index and the comparison tables both read them here."""
    try:
        s = read_json(run / "summary.json")
    except (OSError, ValueError):
        return dict.fromkeys(FIGURES)
    msgs, stale = s["messages"], s.get("staleness") or {}
    final = s.get("final") or {}  # a timing-only run has no accuracy
    row = {
        "best_head": final.get("best_head"),
        "best_head_shared_acc": final.get("best_head_shared_acc"),
        "head0_private_acc": (final.get("mean_private_acc") or [None])[0],
        "head0_shared_acc": (final.get("mean_shared_acc") or [None])[0],
        "bytes_sent": s["bytes_sent"],
        "messages_sent": msgs["sent"],
        "messages_delivered": msgs["delivered"],
        "messages_dropped": msgs["dropped"],
        "staleness_p50": stale.get("p50"),
        "staleness_p90": stale.get("p90"),
        "steps": s["steps"],
        "sim_time": s["sim_time"],
        "wall_time_s": s["wall_time_s"],
    }
    return row


def summary(run: Path) -> dict[str, Any]:
    f = run / "summary.json"
    return read_json(f) if f.is_file() else {}


def reach(run: Path) -> pd.DataFrame:
    """The last evaluation's accuracy by head and hop distance, mean over agents
    (``reach.csv``: 0 = the agent's own data, −1 = agents it cannot reach)."""
    path = run / "reach.csv"
    if not path.is_file():
        raise NoRuns(f"{run}: has no reach.csv (a timing-only run, or made before it existed)")
    r = pd.read_csv(path)
    if r.empty:
        raise NoRuns(f"{run}: reach.csv is empty (a timing-only run)")
    last = r[r.time == r.time.max()]
    return last.groupby(["head", "hops"], as_index=False)["acc"].mean()


def staleness(run: Path) -> pd.Series:
    """Age in seconds of the teacher predictions of every distillation step (mean over the
    batch's samples), from ``events.csv``."""
    ev = pd.read_csv(run / "events.csv", usecols=["event", "staleness"])
    return ev.loc[ev.event == "distill", "staleness"].dropna().reset_index(drop=True)
