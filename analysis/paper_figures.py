"""The poster's three figures in the previous regime, MNIST-1D's ten classes, each a table
with the poster's numbers beside ours, and as images (docs/paper_figures_mnist1d10.md; the
paper's regime, 100 classes, is ``analysis.paper_regime``).

    python -m analysis.paper_figures --doc docs/paper_figures_mnist1d10.md --recovery
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
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from . import tables
from .paper_figure_plots import draw
from .runner import run_all
from .tables import POSTER_HEADLINE, best_aux, md, publish, wrap

BASE = Path(__file__).resolve().parent.parent / "scenarios" / "paper_claims.yaml"
NON_IID = ["data.partition={kind: label_skew, skew: 0.95, classes_per_agent: 2}"]
IID = ["data.partition=iid"]
RELIABLE = ["network.transport=reliable"]


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
            runs[f"{data}-distill-{seed}"] = [*part, *s, "algorithm.name=distill"]
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


def headline(out: Path, seeds: int) -> tuple[pd.DataFrame, float]:
    rows = []
    for label, key in (
        ("isolated", "isolated"),
        ("distill (one head)", "distill"),
        ("mhd", "mhd"),
        ("fedavg (frequent)", "fedavg-frequent"),
        ("fedavg (rare)", "fedavg-rare"),
        ("centralized", "centralized"),
    ):
        ours = [
            100 * np.mean([best_aux(out / f"{data}-{key}-{s}") for s in range(seeds)])
            for data in ("iid", "noniid")
        ]
        poster = POSTER_HEADLINE.get(label, (None, None))
        rows.append({"": label, "ours IID": ours[0], "poster IID": poster[0],
                     "ours non-IID": ours[1], "poster non-IID": poster[1]})  # fmt: skip
    table = pd.DataFrame(rows).set_index("")
    return table, recovery_ratios(out, "200 s", "mhd", seeds)[1]


def heads(out: Path, seeds: int, data: str, which: str) -> pd.DataFrame:
    """``which`` (shared or private) accuracy per head, one row per number of auxiliary heads."""

    def run(aux: int, s: int) -> Path:
        return out / f"{data}-{'mhd' if aux == 4 else f'mhd{aux}'}-{s}"

    return tables.heads(run, seeds, which, poster=data == "noniid")


def reach(out: Path, kind: str, seeds: int) -> pd.DataFrame:
    """Head × hops accuracy (%) at the end of the ``noniid-<kind>-<seed>`` runs."""
    return tables.reach([out / f"noniid-{kind}-{s}" for s in range(seeds)])


def topology(out: Path, seeds: int) -> pd.DataFrame:
    # the cycle: the ring of the heads figure's run with 3 auxiliary heads
    return tables.topology(*(reach(out, k, seeds) for k in ("mhd3", "islands", "complete")))


def topology_checks(out: Path, seeds: int, runs: dict[str, str]) -> pd.DataFrame:
    """The issue's topology conditions on a cycle, head k against head k−1, in points; a column
    pair per label → run kind (``noniid-<kind>-<seed>``)."""
    rows: dict[str, dict[str, float]] = {}
    for label, kind in runs.items():
        cycle = reach(out, kind, seeds)
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
        "# The poster's figures with ten classes (the previous regime)",
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
        "![headline](images/paper_figures/mnist1d10/headline.png)",
        "",
        md(head),
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
        "![heads](images/paper_figures/mnist1d10/heads.png)",
        "",
    ]
    for data, name in (("noniid", "Non-IID"), ("iid", "IID")):
        for which in ("shared", "private"):
            text += [f"{name}, {which} accuracy:", "", md(heads(out, seeds, data, which)), ""]
    text += [
        "## (c) Topology, non-IID: accuracy on another agent's data, per head",
        "",
        "![topology](images/paper_figures/mnist1d10/topology.png)",
        "",
        md(topology(out, seeds)),
        "",
        "On the cycle, head k against head k−1 (head k's accuracy on the data k hops away "
        "minus head k−1's, and the share of head k−1's accuracy k−1 hops away that head k "
        "keeps; hop 0 is the agent's own data):",
        "",
        md(topology_checks(out, seeds, checked)),
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
            md(recovery(out, seeds)),
            "",
        ]
    return "\n".join(wrap(t) for t in text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/paper_figures"))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--set", dest="extra", action="append", default=[])
    ap.add_argument("--recovery", action="store_true", help="also the recovery-ratio sweep")
    ap.add_argument(
        "--doc", type=Path, help="also write the tables here (docs/paper_figures_mnist1d10.md) "
        "and the figures into images/paper_figures/mnist1d10/ beside it",
    )  # fmt: skip
    args = ap.parse_args(argv)
    runs = {name: (BASE, sets) for name, sets in points(args.seeds, args.recovery).items()}
    if not run_all(runs, args.out, args.extra, args.jobs):
        return 1
    command = "python -m analysis.paper_figures " + " ".join(argv or sys.argv[1:])
    text = markdown(args.out, args.seeds, command.strip(), args.recovery)
    images = (args.doc.parent if args.doc else args.out) / "images" / "paper_figures" / "mnist1d10"
    per_head = {
        (data, which): heads(args.out, args.seeds, data, which)
        for data in ("noniid", "iid")
        for which in ("shared", "private")
    }
    draw(headline(args.out, args.seeds)[0], per_head, topology(args.out, args.seeds), images)
    publish(text, args.out, args.doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
