"""Reading finished run directories into the tables the paper analyses print, and writing them
as markdown: shared by ``paper_figures`` (ten classes), ``paper_regime`` (100 classes) and
``failures``."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from mhd_sim.compare.tables import markdown_table
from mhd_sim.record.reading import summary

# the poster's numbers (ImageNet, 8 clients; read off its figures, ±1–2 points)
POSTER_HEADLINE = {
    "isolated": (46.3, 25.1),
    "mhd": (68.6, 63.4),
    "fedavg (frequent)": (70.5, 68.0),
    "fedavg (rare)": (69.1, 65.7),
    "centralized": (68.9, None),
}
POSTER_HEADS = {"shared": [32, 46, 52, 54, 54.5], "private": [72, 71, 69, 66.5, 64]}
POSTER_TOPOLOGY = {
    "cycle, 1 hop": [38, 66, 67, 65],
    "cycle, 2 hops": [37, 41, 60, 63],
    "cycle, 3 hops": [37, 41, 44, 55],
    "islands, same island": [38, 66, 66, 66],
    "islands, other island": [35, 38, 38, 38],
    "complete": [37, 54, 59, 60],
}


def final(run: Path) -> dict:
    return summary(run)["final"]


def best_aux(run: Path) -> float:
    """Final shared accuracy of a run's best auxiliary head (its only head if it has none)."""
    shared = final(run)["mean_shared_acc"]
    return max(shared[1:] or shared)


def reach(runs: list[Path]) -> pd.DataFrame:
    """Head × hops accuracy (%) at the end of ``runs`` (one per seed), mean over them."""
    frames = []
    for run in runs:
        r = pd.read_csv(run / "reach.csv")
        frames.append(r[r.time == r.time.max()])
    return 100 * pd.concat(frames).groupby(["head", "hops"]).acc.mean().unstack()


def heads(run: Callable[[int, int], Path], seeds: int, which: str, poster: bool) -> pd.DataFrame:
    """``which`` (shared or private) accuracy (%) per head, a row per number of auxiliary heads
    (1–4; ``run(aux, seed)`` names the run), and the poster's row if ``poster``."""
    rows = {}
    for aux in (1, 2, 3, 4):
        acc = [final(run(aux, s))[f"mean_{which}_acc"] for s in range(seeds)]
        rows[f"{aux} aux, ours"] = 100 * np.mean(acc, 0)
    if poster:
        rows["4 aux, poster"] = np.array(POSTER_HEADS[which], dtype=float)
    names = ["main", "aux1", "aux2", "aux3", "aux4"]
    return pd.DataFrame(
        {r: list(v) + [float("nan")] * (5 - len(v)) for r, v in rows.items()}, index=names
    ).T


def topology(cycle: pd.DataFrame, islands: pd.DataFrame, complete: pd.DataFrame) -> pd.DataFrame:
    """The topology figure's rows from three head × hops tables (%), the poster's beside."""
    rows = {
        "cycle, 1 hop": cycle[1], "cycle, 2 hops": cycle[2], "cycle, 3 hops": cycle[3],
        "islands, same island": islands[1], "islands, other island": islands[-1],
        "complete": complete[1],
    }  # fmt: skip
    table: dict[str, dict[str, float]] = {}
    for name, ours in rows.items():
        for h in range(4):
            table.setdefault(name, {})[f"h{h} ours"] = ours.get(h, float("nan"))
            table[name][f"h{h} poster"] = POSTER_TOPOLOGY[name][h]
    return pd.DataFrame(table).T


def md(table: pd.DataFrame) -> str:
    """A markdown table, numbers to one decimal (counts as they are), missing ones as –."""
    rows = []
    for name, row in zip(table.index, table.itertuples(index=False)):
        label = ", ".join(map(str, name)) if isinstance(name, tuple) else str(name)
        rows.append([label] + [_cell(v) for v in row])
    return markdown_table([""] + [str(c) for c in table.columns], rows)


def _cell(v: object) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, (int, np.integer)):
        return str(v)
    return "–" if v is None or v != v else f"{v:.1f}"


def wrap(paragraph: str) -> str:
    """Prose wrapped at 92 columns; tables, headings and images as they are."""
    if paragraph[:1] in ("|", "#", "!"):
        return paragraph
    return textwrap.fill(paragraph, 92, break_long_words=False, break_on_hyphens=False)


READING = "<!-- reading: kept when the tables are rewritten -->"


def write_doc(doc: Path, text: str) -> None:
    """The tables into ``doc``, keeping whatever follows the reading marker there."""
    kept = ""
    if doc.exists() and READING in doc.read_text():
        kept = doc.read_text().split(READING, 1)[1]
    doc.write_text(text + "\n" + READING + kept if kept else text)


def publish(text: str, out: Path, doc: Path | None) -> None:
    """The tables as ``out/tables.md``, into ``doc`` if given, and on stdout."""
    (out / "tables.md").write_text(text + "\n")
    if doc:
        write_doc(doc, text)
    print(text)
