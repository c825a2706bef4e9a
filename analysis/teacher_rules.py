"""Teachers that know their limits, and the literature's distillation baselines, beside MHD and
one-head distill (docs/method.md, "Teachers that know their limits").

    python -m analysis.teacher_rules --out runs/rules        # 100 runs, about three hours
    python -m analysis.teacher_rules --out runs/r --seeds 1 --set duration=50
    python -m analysis.teacher_rules --out runs/rules --setup "paper_claims, ring" \
        --setup "paper_claims, complete" --config distill --config mhd --config hybrid
                                                         # the controls: 12 runs, 10-15 minutes

Chosen before measuring, and not tuned afterwards: the bundled ``paper_regime`` (100
classes, a 1-D CNN each, on a ring) and the setups of ``analysis.failures`` (digits with an
MLP on a ring of 8; MNIST-1D with half the agents an MLP and half a 1-D CNN on the complete
graph; the bundled ``paper_claims`` on a ring), seeds 0 and 1, and each rule at its default
(gate_quantile 0.05, held_back 0.1). Configurations: isolated, one-head distill, MHD as the
paper has it (without its embedding term, the default), MHD with it (embedding_weight 1),
the hybrid (MHD whose main head also distils), MHD with each rule alone (the max-softmax
and the energy gate, class-prior confidence, calibration), FedMD, DS-FL and FedAvg (every
50 steps, reliable transport; not for the mixed population, whose two architectures it
cannot average). Tables: the best auxiliary head's (the one-head algorithms' only head's)
final shared accuracy, head 0's and the auxiliary heads' private accuracy, bytes sent, and
the teacher diagnostics of the MHD runs.

The controls that separate reach from teachers (docs/method.md): ``paper_claims`` on the
complete graph too (every peer one hop away), distill, MHD and the hybrid only. On the ring
the gap between distill and MHD is reach plus teachers; on the complete graph reach is
equal for both, so what is left is the teachers' part, and the rest of the ring's gap the
reach part.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from mhd_sim.record.reading import summary

from .failures import BASE, BASELINES, baselines, teachers
from .failures import SETUPS as FAILURE_SETUPS
from .failures import SLUG as FAILURE_SLUG
from .runner import run_all
from .tables import best_aux, final, md, publish

REGIME = Path(__file__).resolve().parent.parent / "scenarios" / "paper_regime.yaml"
RING, COMPLETE = "paper_claims, ring", "paper_claims, complete"
SETUPS = {  # setup -> (base file, its settings, MHD's heads there); the 100-class one first
    "paper_regime, ring": (REGIME, [], 4),
    **{name: (BASE, sets, heads) for name, (sets, heads) in FAILURE_SETUPS.items()},
}
SETUPS[COMPLETE] = (BASE, [*SETUPS[RING][1], "network.topology.kind=complete"], 4)
SLUG = {**FAILURE_SLUG, "paper_regime, ring": "paper_regime", COMPLETE: "paperclaimscomplete"}
CONTROLS = ("distill", "mhd", "hybrid")  # all that runs on the complete graph
CONFIGS = {
    "isolated": BASELINES["isolated"],
    "distill": BASELINES["distill"],
    "mhd": BASELINES["mhd"],
    "embedding": ["algorithm.embedding_weight=1"],
    "hybrid": ["algorithm.name=hybrid"],
    "gate": ["algorithm.gate=in_distribution"],
    "energy": ["algorithm.gate=energy"],
    "class_prior": ["algorithm.confidence=class_prior"],
    "calibrate": ["algorithm.calibrate=true"],
    "fedmd": ["algorithm.name=fedmd"],
    "ds_fl": ["algorithm.name=ds_fl"],
    "fedavg": BASELINES["fedavg"],
}
MHD_LIKE = ("mhd", "embedding", "hybrid", "gate", "energy", "class_prior", "calibrate")


def configs(setup: str) -> dict[str, list[str]]:
    if setup == COMPLETE:
        return {c: CONFIGS[c] for c in CONTROLS if c in CONFIGS}
    return baselines(setup, CONFIGS)


def cells(out: Path, seeds: int) -> Iterator[tuple[str, str, list[Path]]]:
    """Every setup and configuration of the tables, with its runs (one per seed)."""
    for setup in SETUPS:
        for config in configs(setup):
            yield setup, config, [out / f"{SLUG[setup]}-{config}-{s}" for s in range(seeds)]


def points(seeds: int) -> dict[str, tuple[Path, list[str]]]:
    """Seed 0 of everything first: an analysis stopped half way has one whole seed."""
    out = {}
    for s in range(seeds):
        for setup, (base, sets, heads) in SETUPS.items():
            for config, extra in configs(setup).items():
                mhd = [f"algorithm.heads={heads}"] if config in MHD_LIKE else []
                out[f"{SLUG[setup]}-{config}-{s}"] = (base, [*sets, *mhd, *extra, f"seed={s}"])
    return out


def row(runs: list[Path]) -> dict[str, float]:
    """Means over seeds: best head's shared accuracy, head 0's and the auxiliary heads' private
    accuracy (their mean), MB sent."""
    shared = [best_aux(r) for r in runs]
    private = [final(r)["mean_private_acc"] for r in runs]
    return {
        "shared": 100 * np.mean(shared),
        "head 0 private": 100 * np.mean([p[0] for p in private]),
        "aux private": 100 * np.mean([np.mean(p[1:]) if len(p) > 1 else np.nan for p in private]),
        "MB sent": np.mean([summary(r)["bytes_sent"] / 1e6 for r in runs]),
    }


def table(out: Path, seeds: int) -> pd.DataFrame:
    rows = [{"setup": st, "config": c, **row(runs)} for st, c, runs in cells(out, seeds)]
    return pd.DataFrame(rows).set_index(["setup", "config"])


def per_head(out: Path, seeds: int) -> pd.DataFrame:
    """Final shared and private accuracy (%) of every head, mean over seeds: a row per setup
    and configuration, ``shared h`` and ``private h`` columns."""
    rows = []
    for setup, config, runs in cells(out, seeds):
        ends = [final(r) for r in runs]
        accs = {"setup": setup, "config": config}
        for which in ("shared", "private"):
            acc = 100 * np.mean([e[f"mean_{which}_acc"] for e in ends], axis=0)
            accs |= {f"{which} {h}": a for h, a in enumerate(acc)}
        rows.append(accs)
    t = pd.DataFrame(rows).set_index(["setup", "config"])
    return t[sorted(t.columns, key=lambda c: (c.startswith("private"), int(c.split()[1])))]


def diagnostics(out: Path, seeds: int) -> pd.DataFrame:
    """MHD-like runs: per student head, the last window's share of samples with a teacher
    (relative to plain MHD's), how often the chosen teacher was right, how often it was the
    agent's own head, and how often its answer was one of the agent's own main classes."""
    rows = []
    for setup in SETUPS:
        for config in [c for c in MHD_LIKE if c in configs(setup)]:
            for s in range(seeds):
                run = out / f"{SLUG[setup]}-{config}-{s}"
                t = pd.read_csv(run / "teachers.csv")
                last = t[t.time == t.time.max()]
                d = teachers(run)
                d = d[d.time == d.time.max()].set_index("head")
                for head, g in last.groupby("head"):
                    rows.append({"setup": setup, "config": config, "head": head,
                                 "samples": g.samples.sum(),
                                 "teacher right": 100 * d.loc[head, "teacher_acc"],
                                 "own head": 100 * d.loc[head, "own_head"],
                                 "own classes": 100 * d.loc[head, "own_class"]})  # fmt: skip
    t = pd.DataFrame(rows).groupby(["setup", "config", "head"]).mean()
    plain = t.xs("mhd", level="config")["samples"]
    t["with a teacher (vs mhd)"] = (
        100 * t["samples"] / plain.reindex(t.index.droplevel("config")).to_numpy()
    )
    return t.drop(columns="samples")


def controls(out: Path, seeds: int) -> pd.DataFrame:
    """Distill, MHD and the hybrid on the ring and the complete graph: each one's best head
    (shared accuracy, %, per seed and mean), the gaps to distill, and the ring's gap split into
    its reach part (what the complete graph closes) and its teachers' part (what it does not)."""
    best = {}
    for setup in (RING, COMPLETE):
        for config in CONTROLS:
            runs = [out / f"{SLUG[setup]}-{config}-{s}" for s in range(seeds)]
            best[setup, config] = [100 * best_aux(r) for r in runs]
    rows = []
    for config in ("mhd", "hybrid"):
        gap = {
            st: np.mean(best[st, "distill"]) - np.mean(best[st, config]) for st in (RING, COMPLETE)
        }
        both = {st: [np.mean(best[st, c]) for c in ("distill", config)] for st in (RING, COMPLETE)}
        rows.append({
            "variant": config,
            **{f"{st.split(', ')[1]}: distill / it": f"{d:.1f} / {v:.1f}"
               for st, (d, v) in both.items()},
            "gap, ring": gap[RING], "gap, complete (teachers' part)": gap[COMPLETE],
            "reach part (ring − complete)": gap[RING] - gap[COMPLETE],
            "per seed, ring": " / ".join(f"{v:.1f}" for v in best[RING, config]),
            "per seed, complete": " / ".join(f"{v:.1f}" for v in best[COMPLETE, config]),
        })  # fmt: skip
    return pd.DataFrame(rows).set_index("variant")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/rules"))
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], help="an override for every run")
    ap.add_argument(
        "--setup", action="append", choices=list(SETUPS), help="only these setups (repeatable)"
    )
    ap.add_argument(
        "--config", action="append", choices=list(CONFIGS), help="only these configurations"
    )
    args = ap.parse_args(argv)
    for name in set(SETUPS) - set(args.setup or SETUPS):
        del SETUPS[name]  # the tables below read the setups that ran
    for name in set(CONFIGS) - set(args.config or CONFIGS):
        del CONFIGS[name]
    if not run_all(points(args.seeds), args.out, args.set, args.jobs):
        return 1
    results = table(args.out, args.seeds)
    diag = diagnostics(args.out, args.seeds)
    parts = []
    if RING in SETUPS and COMPLETE in SETUPS:
        parts = ["## Reach and teachers: distill against MHD and the hybrid, ring and complete",
                 md(controls(args.out, args.seeds).round(1))]  # fmt: skip
    text = "\n\n".join(
        [
            f"# Teacher rules and baselines ({args.seeds} seeds; "
            f"{', '.join(args.set) or 'as bundled'})",
            md(results.round(1)),
            "## Every head's final shared and private accuracy (mean over seeds)",
            md(per_head(args.out, args.seeds).round(1)),
            "## Teachers of the MHD runs (last evaluation window, mean over seeds)",
            md(diag.round(1)),
            *parts,
        ]
    )
    publish(text, args.out, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
