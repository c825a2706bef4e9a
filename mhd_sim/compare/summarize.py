"""A sweep (or any set of runs) turned into the standard figure set and a markdown table.

    python -m mhd_sim.compare.summarize runs/sweep              # writes runs/sweep/summary/
    python -m mhd_sim.compare.summarize runs/a runs/b --out cmp --by network.topology.kind

Figures: shared accuracy vs bytes sent and vs time, private accuracy vs time, staleness
distribution, final accuracy per agent. The table holds, per group of runs, the summary.json
figures as mean ± sd over seeds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from ..record.reading import NoRuns
from . import figures as F
from . import runs as R
from .tables import markdown_table

FIGURES = (  # file, kind, x, metric
    ("shared_vs_bytes.png", "curves", "bytes", "shared_acc"),
    ("shared_vs_time.png", "curves", "time", "shared_acc"),
    ("private_vs_time.png", "curves", "time", "private_acc"),
    ("staleness.png", "staleness", "bytes", "shared_acc"),
    ("agents.png", "agents", "bytes", "shared_acc"),
)
COLUMNS = {  # table column: (runs.table column, scale, digits)
    "best-head shared acc": ("best_head_shared_acc", 1, 3),
    "head-0 private acc": ("head0_private_acc", 1, 3),
    "MB sent": ("bytes_sent", 1e-6, 1),
    "messages": ("messages_sent", 1, 0),
    "staleness p50 (s)": ("staleness_p50", 1, 1),
    "staleness p90 (s)": ("staleness_p90", 1, 1),
    "wall time (s)": ("wall_time_s", 1, 1),
}


def _cell(values: pd.Series, scale: float, digits: int) -> str:
    v = pd.to_numeric(values, errors="coerce").dropna() * scale
    if v.empty:
        return "–"
    return (
        f"{v.mean():,.{digits}f} ± {v.std(ddof=0):,.{digits}f}"
        if len(v) > 1
        else f"{v.mean():,.{digits}f}"
    )


def markdown(paths: list[str | Path], by: list[str] | None = None) -> str:
    """One row per group of runs: final figures from summary.json, mean ± sd over its seeds."""
    run_dirs = R.find_runs(paths)
    keys, grouped = F.groups(run_dirs, by)
    table = R.table(run_dirs).set_index("run")
    rows = []
    for lab, members in grouped:
        runs = table.loc[[str(m) for m in members]]
        cells = [_cell(runs[c], s, d) for c, s, d in COLUMNS.values()]
        rows.append([lab, str(len(members)), *cells])
    return markdown_table(["runs", "seeds", *COLUMNS], rows)


def summarize(paths: list[str | Path], out: str | Path, by: list[str] | None = None) -> list[Path]:
    """Write the figure set and ``table.md`` into ``out``; return their paths."""
    out = Path(out)
    written = []
    for name, kind, x, metric in FIGURES:
        F.plot(paths, out / name, kind=kind, x=x, metric=metric, by=by)
        written.append(out / name)
    (out / "table.md").write_text(markdown(paths, by) + "\n")
    return written + [out / "table.md"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "paths", nargs="+", type=Path, help="sweep directories, run directories, or folders of runs"
    )
    ap.add_argument("--out", type=Path, help="where to write (default: <first path>/summary)")
    ap.add_argument(
        "--by", action="append", help="group by this setting (repeatable; default: all that differ)"
    )
    args = ap.parse_args(argv)
    try:
        written = summarize(args.paths, args.out or args.paths[0] / "summary", args.by)
    except NoRuns as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print((written[-1]).read_text())
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
