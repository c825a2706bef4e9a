"""The poster's three figures at small scale, each a table with the poster's numbers beside
ours, and as images (docs/paper_figures.md).

    python -m analysis.paper_figures --doc docs/paper_figures.md --recovery   # 3 seeds
    python -m analysis.paper_figures --out runs/pf --seeds 1 --set duration=400

(a) headline: isolated, MHD, FedAvg at two periods and centralized, IID and non-IID, and the
recovery ratio R; (b) heads: shared and private accuracy per head with 1–4 auxiliary heads,
IID and non-IID; (c) topology: accuracy on other agents' data by hop distance, per head, on
a cycle, two islands and the complete graph. ``--recovery`` adds a sweep of settings and
MHD configurations for R. Every point is one run of ``scenarios/paper_claims.yaml`` (8
agents, MNIST-1D) in its own process; finished points are kept, so an interrupted run
resumes. Everything after the runs reads run directories.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from mhd_sim.scenario import ScenarioError, load
from mhd_sim.sweeps import execute, finished

from .paper_figure_plots import draw

BASE = Path(__file__).resolve().parent.parent / "scenarios" / "paper_claims.yaml"
NON_IID = ["data.partition={kind: label_skew, skew: 0.95, classes_per_agent: 2}"]
IID = ["data.partition=iid"]
RELIABLE = ["network.transport=reliable"]
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


COMPLETE = ["network.topology.kind=complete"]
# The recovery-ratio sweep: settings (each with its own isolated and FedAvg baselines, since
# they change the data or the time) × MHD configurations. The first setting is the headline's.
SETTINGS = {
    "200 s": [],
    "600 s": ["duration=600"],
    "public 50%": ["data.public_fraction=0.5"],
    "3 classes per agent": ["data.partition={kind: label_skew, skew: 0.95, classes_per_agent: 3}"],
}
MHD_CONFIGS = {
    "mhd": ["algorithm.heads=5"],  # ring, 4 auxiliary heads: the headline's
    "mhd-complete": ["algorithm.heads=5", *COMPLETE],
    "mhd-complete-k2": ["algorithm.heads=5", *COMPLETE, "algorithm.teachers=2"],
    "mhd-complete-3aux": ["algorithm.heads=4", *COMPLETE],
    "mhd-complete-2aux": ["algorithm.heads=3", *COMPLETE],
    "mhd-complete-1aux": ["algorithm.heads=2", *COMPLETE],
}
SWEPT = {  # setting → the MHD configurations run in it
    "200 s": ["mhd", "mhd-complete", "mhd-complete-k2"]
    + [f"mhd-complete-{n}aux" for n in (3, 2, 1)],
    "600 s": ["mhd", "mhd-complete"] + [f"mhd-complete-{n}aux" for n in (3, 2, 1)],
    "public 50%": ["mhd-complete"],
    "3 classes per agent": ["mhd-complete"],
}


def _prefix(setting: str) -> str:
    """Run-name prefix of a recovery setting; the headline's setting keeps the headline's runs."""
    slug = setting.replace(" ", "").replace("%", "pct")
    return "noniid" if not SETTINGS[setting] else f"noniid-{slug}"


def fedavg(period: int) -> list[str]:
    return [*RELIABLE, "algorithm.name=fedavg", f"algorithm.period={period}"]


def points(seeds: int, recovery: bool = False) -> dict[str, list[str]]:
    """Run name → overrides of paper_claims.yaml."""
    runs: dict[str, list[str]] = {}
    for seed in range(seeds):
        s = [f"seed={seed}"]
        for data, part in (("iid", IID), ("noniid", NON_IID)):
            runs[f"{data}-isolated-{seed}"] = [*part, *s, "algorithm.name=isolated"]
            runs[f"{data}-mhd-{seed}"] = [*part, *s, "algorithm.heads=5"]
            for aux in (1, 2, 3):
                runs[f"{data}-mhd{aux}-{seed}"] = [*part, *s, f"algorithm.heads={aux + 1}"]
            for label, period in (("frequent", 50), ("rare", 250)):
                runs[f"{data}-fedavg-{label}-{seed}"] = [*part, *s, *fedavg(period)]
            runs[f"{data}-centralized-{seed}"] = [
                *part, *s, "algorithm.name=centralized", "training.clip_grad_norm=1.0"
            ]  # fmt: skip
        for kind, extra in (
            ("islands", ["network.topology={kind: islands, islands: 2, bridges: 0}"]),
            ("complete", ["network.topology.kind=complete"]),
        ):
            runs[f"noniid-{kind}-{seed}"] = [*NON_IID, *s, "algorithm.heads=4", *extra]
        for setting, configs in SWEPT.items() if recovery else ():
            base, prefix = [*NON_IID, *s, *SETTINGS[setting]], _prefix(setting)
            runs[f"{prefix}-isolated-{seed}"] = [*base, "algorithm.name=isolated"]
            runs[f"{prefix}-fedavg-frequent-{seed}"] = [*base, *fedavg(50)]
            for config in configs:
                runs[f"{prefix}-{config}-{seed}"] = [*base, *MHD_CONFIGS[config]]
    return runs


def run_all(runs: dict[str, list[str]], out: Path, extra: list[str], jobs: int) -> dict[str, str]:
    """Every run not finished yet, ``jobs`` at a time; run name → status (``done`` or why not)."""

    def one(name: str) -> tuple[str, str]:
        if finished(out / name):
            return name, "done"
        try:
            sc = load(BASE, [*runs[name], *extra])
        except ScenarioError as e:
            return name, "error: " + "; ".join(e.problems)
        text = yaml.safe_dump(sc.resolved(), sort_keys=False, default_flow_style=None)
        status, error = execute(text, out / name)
        return name, status if status == "done" else f"{status}: {error}"

    with ThreadPoolExecutor(jobs) as pool:
        return dict(pool.map(one, runs))


def _md(table: pd.DataFrame) -> str:
    """A markdown table, numbers to one decimal, missing ones as –."""
    cells = [[""] + [str(c) for c in table.columns]]
    for name, row in table.iterrows():
        cells.append([str(name)] + [_cell(v) for v in row])
    lines = ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join([lines[0], "|" + "---|" * len(cells[0]), *lines[1:]])


def _cell(v: object) -> str:
    if isinstance(v, str):
        return v
    return "–" if v is None or v != v else f"{v:.1f}"


def final(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())["final"]


def best_aux(run: Path) -> float:
    """Final shared accuracy of a run's best auxiliary head (its only head if it has none)."""
    shared = final(run)["mean_shared_acc"]
    return max(shared[1:] or shared)


def headline(out: Path, seeds: int) -> tuple[pd.DataFrame, float]:
    rows = []
    for label, key in (
        ("isolated", "isolated"),
        ("mhd", "mhd"),
        ("fedavg (frequent)", "fedavg-frequent"),
        ("fedavg (rare)", "fedavg-rare"),
        ("centralized", "centralized"),
    ):
        ours = [
            100 * np.mean([best_aux(out / f"{data}-{key}-{s}") for s in range(seeds)])
            for data in ("iid", "noniid")
        ]
        poster = POSTER_HEADLINE[label]
        rows.append({"": label, "ours IID": ours[0], "poster IID": poster[0],
                     "ours non-IID": ours[1], "poster non-IID": poster[1]})  # fmt: skip
    table = pd.DataFrame(rows).set_index("")
    return table, recovery_ratios(out, "200 s", "mhd", seeds)[1]


def heads(out: Path, seeds: int, data: str, which: str) -> pd.DataFrame:
    """``which`` (shared or private) accuracy per head, one row per number of auxiliary heads."""
    rows = {}
    for aux in (1, 2, 3, 4):
        key = "mhd" if aux == 4 else f"mhd{aux}"
        acc = [final(out / f"{data}-{key}-{s}")[f"mean_{which}_acc"] for s in range(seeds)]
        rows[f"{aux} aux, ours"] = 100 * np.mean(acc, 0)
    if data == "noniid":
        rows["4 aux, poster"] = np.array(POSTER_HEADS[which], dtype=float)
    names = ["main", "aux1", "aux2", "aux3", "aux4"]
    return pd.DataFrame(
        {r: list(v) + [float("nan")] * (5 - len(v)) for r, v in rows.items()}, index=names
    ).T


def reach(out: Path, kind: str, seeds: int) -> pd.DataFrame:
    """Head × hops accuracy at the end of the ``noniid-<kind>-<seed>`` runs, mean over seeds."""
    frames = []
    for s in range(seeds):
        r = pd.read_csv(out / f"noniid-{kind}-{s}" / "reach.csv")
        frames.append(r[r.time == r.time.max()])
    return pd.concat(frames).groupby(["head", "hops"]).acc.mean().unstack()


def topology(out: Path, seeds: int) -> pd.DataFrame:
    # the cycle: the ring of the heads figure's run with 3 auxiliary heads
    cycle, islands = reach(out, "mhd3", seeds), reach(out, "islands", seeds)
    complete = reach(out, "complete", seeds)
    rows = {
        "cycle, 1 hop": cycle[1], "cycle, 2 hops": cycle[2], "cycle, 3 hops": cycle[3],
        "islands, same island": islands[1], "islands, other island": islands[-1],
        "complete": complete[1],
    }  # fmt: skip
    table = {}
    for name, ours in rows.items():
        for h in range(4):
            table.setdefault(name, {})[f"h{h} ours"] = 100 * ours.get(h, float("nan"))
            table[name][f"h{h} poster"] = POSTER_TOPOLOGY[name][h]
    return pd.DataFrame(table).T


def topology_checks(out: Path, seeds: int, runs: dict[str, str]) -> pd.DataFrame:
    """The issue's topology conditions on a cycle, head k against head k−1, in points; a column
    pair per label → run kind (``noniid-<kind>-<seed>``)."""
    rows: dict[str, dict[str, float]] = {}
    for label, kind in runs.items():
        cycle = 100 * reach(out, kind, seeds)
        for k in (1, 2, 3):
            row = rows.setdefault(f"head {k}", {})
            row[f"{label}: gain on k hops (≥ 5)"] = cycle.loc[k, k] - cycle.loc[k - 1, k]
            row[f"{label}: kept on k−1 hops, % (≥ 90)"] = (
                100 * cycle.loc[k, k - 1] / cycle.loc[k - 1, k - 1]
            )
    return pd.DataFrame(rows).T


def recovery_ratios(out: Path, setting: str, config: str, seeds: int) -> tuple[list, float]:
    """R = (MHD best aux − isolated) / (FedAvg frequent − isolated) per seed, and their mean."""
    p = _prefix(setting)
    ratios = []
    for s in range(seeds):
        iso = best_aux(out / f"{p}-isolated-{s}")
        ratios.append((best_aux(out / f"{p}-{config}-{s}") - iso)
                      / (best_aux(out / f"{p}-fedavg-frequent-{s}") - iso))  # fmt: skip
    return ratios, float(np.mean(ratios))


def recovery(out: Path, seeds: int) -> pd.DataFrame:
    rows = []
    for setting, configs in SWEPT.items():
        p = _prefix(setting)
        for config in configs:
            acc = {
                k: 100 * np.mean([best_aux(out / f"{p}-{k}-{s}") for s in range(seeds)])
                for k in ("isolated", "fedavg-frequent", config)
            }
            ratios, r = recovery_ratios(out, setting, config, seeds)
            rows.append({"": f"{setting}, {config}", "isolated": acc["isolated"],
                         "fedavg (frequent)": acc["fedavg-frequent"], "mhd best aux": acc[config],
                         "R per seed": " / ".join(f"{x:.2f}" for x in ratios),
                         "R": f"**{r:.2f}**"})  # fmt: skip
    return pd.DataFrame(rows).set_index("")


def markdown(out: Path, seeds: int, command: str, recovery_sweep: bool) -> str:
    head, ratio = headline(out, seeds)
    checked = {"3 aux, 200 s": "mhd3"}
    if recovery_sweep and "mhd" in SWEPT.get("600 s", ()):
        checked["4 aux, 600 s"] = _prefix("600 s")[len("noniid-") :] + "-mhd"
    text = [
        "# The poster's figures at small scale",
        "",
        f"Made by `{command}`: `scenarios/paper_claims.yaml` (8 agents, MNIST-1D, a 1-D CNN "
        f"each, 200 simulated s unless set otherwise), {seeds} seed(s) per point (means), final "
        "shared accuracy in %, beside the poster's (ImageNet, ResNet18, 8 clients; read off its "
        "figures). Non-IID = label skew 0.95 with two of the ten classes per agent (the "
        "poster: 250 of 1,000 labels per client). MHD: auxiliary heads on a ring, its best "
        "auxiliary head; FedAvg every 50 (frequent) and 250 (rare) local steps over the "
        "reliable transport; centralized: one model on all private data, gradients clipped.",
        "",
        "## (a) Headline",
        "",
        "![headline](images/paper_figures/headline.png)",
        "",
        _md(head),
        "",
        f"Recovery ratio R = (MHD − isolated) / (FedAvg frequent − isolated), non-IID, MHD on "
        f"the ring with 4 auxiliary heads: **{ratio:.2f}** (the poster: 0.69–0.89; other "
        + (
            "configurations: the sweep at the end)."
            if recovery_sweep
            else "configurations: `--recovery`)."
        ),
        "",
        "## (b) Heads: accuracy per head with 1–4 auxiliary heads",
        "",
        "![heads](images/paper_figures/heads.png)",
        "",
    ]
    for data, name in (("noniid", "Non-IID"), ("iid", "IID")):
        for which in ("shared", "private"):
            text += [f"{name}, {which} accuracy:", "", _md(heads(out, seeds, data, which)), ""]
    text += [
        "## (c) Topology, non-IID: accuracy on another agent's data, per head",
        "",
        "![topology](images/paper_figures/topology.png)",
        "",
        _md(topology(out, seeds)),
        "",
        "On the cycle, head k against head k−1 (head k's accuracy on the data k hops away "
        "minus head k−1's, and the share of head k−1's accuracy k−1 hops away that head k "
        "keeps; hop 0 is the agent's own data):",
        "",
        _md(topology_checks(out, seeds, checked)),
        "",
    ]
    if recovery_sweep:
        text += [
            "## Recovery ratio: configurations tried (non-IID)",
            "",
            "Each setting has its own isolated and FedAvg baselines; `mhd` is a ring, "
            "`complete` the complete graph, `k2` two random teachers per step; 4 auxiliary "
            "heads unless `3aux`, `2aux` or `1aux` says otherwise. Accuracies are means over the "
            "seeds, R per seed and its mean.",
            "",
            _md(recovery(out, seeds)),
            "",
        ]
    return "\n".join(_wrap(t) for t in text)


def _wrap(paragraph: str) -> str:
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/paper_figures"))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--set", dest="extra", action="append", default=[])
    ap.add_argument("--recovery", action="store_true", help="also the recovery-ratio sweep")
    ap.add_argument(
        "--doc", type=Path, help="also write the tables here (docs/paper_figures.md) and the "
        "figures into images/paper_figures/ beside it",
    )  # fmt: skip
    args = ap.parse_args(argv)
    runs = points(args.seeds, args.recovery)
    status = run_all(runs, args.out, args.extra, args.jobs)
    failed = {n: s for n, s in status.items() if s != "done"}
    if failed:
        for name, why in failed.items():
            print(f"{name}: {why}", file=sys.stderr)
        return 1
    command = "python -m analysis.paper_figures " + " ".join(argv or sys.argv[1:])
    text = markdown(args.out, args.seeds, command.strip(), args.recovery)
    (args.out / "tables.md").write_text(text)
    images = (args.doc.parent if args.doc else args.out) / "images" / "paper_figures"
    per_head = {
        (data, which): heads(args.out, args.seeds, data, which)
        for data in ("noniid", "iid")
        for which in ("shared", "private")
    }
    draw(headline(args.out, args.seeds)[0], per_head, topology(args.out, args.seeds), images)
    if args.doc:
        write_doc(args.doc, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
