"""Where MHD loses, and why: setups where it loses to isolated agents or to one-head distill,
the teacher diagnostics of each run, and the options a researcher would try next, measured
(docs/method.md, "When MHD helps and when it does not").

    python -m analysis.failures --out runs/failures        # 43 runs, 55–65 minutes on 2 cores
    python -m analysis.failures --out runs/f --seeds 1 --set duration=50

Setups (chosen before measuring; other seeds are the held-out check): scikit-learn digits
with an MLP on a ring of 8; MNIST-1D with half the agents an MLP and half a 1-D CNN on the
complete graph; and the bundled ``paper_claims`` on a ring. For each: isolated, one-head
distill, FedAvg, MHD as the paper has it, and MHD with one option at a time. From the runs:
a table of final accuracies, the teacher diagnostics (``teachers.csv``) of MHD's runs, and
for the mixed population how the max logit divides the choices between the two families.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from mhd_sim.api import build_simulation  # noqa: E402
from mhd_sim.learning.distillation.teachers import confidence  # noqa: E402
from mhd_sim.record.run_directory import RunDirectory  # noqa: E402
from mhd_sim.scenario import load  # noqa: E402

from .runner import run_all  # noqa: E402
from .tables import best_aux, final, md, publish  # noqa: E402

BASE = Path(__file__).resolve().parent.parent / "scenarios" / "paper_claims.yaml"
HALF = [{"name": "mlp", "agents": [1, 3, 5, 7], "model": {"kind": "mlp", "hidden": [128, 128]}}]
SETUPS = {  # setup -> (its settings, MHD's heads there)
    "digits, MLP, ring": ([
        "data.dataset=digits", "agents.model={kind: mlp, hidden: [128, 128]}",
        "data.partition={kind: label_skew, skew: 0.95, classes_per_agent: 2}",
        "duration=900", "eval.every=50",
    ], 3),
    "MNIST-1D, MLP + CNN, complete": ([
        f"agents.groups={json.dumps(HALF)}", "network.topology.kind=complete",
        "data.partition={kind: label_skew, skew: 0.9, classes_per_agent: 2}",
        "duration=900", "eval.every=50",
    ], 3),
    "paper_claims, ring": (
        ["data.partition={kind: label_skew, skew: 0.95, classes_per_agent: 2}"], 4
    ),
}  # fmt: skip
BASELINES = {
    "isolated": ["algorithm.name=isolated"],
    "distill": ["algorithm.name=distill"],
    "fedavg": ["algorithm.name=fedavg", "algorithm.period=50", "network.transport=reliable"],
    "mhd": [],
}
OPTIONS = {  # MHD with one change each (the paper's rule stays the default)
    "max_probability": ["algorithm.confidence=max_probability"],
    "margin": ["algorithm.confidence=margin"],
    "entropy": ["algorithm.confidence=entropy"],
    "normalized_logit": ["algorithm.confidence=normalized_logit"],
    "last_head_loop": ["algorithm.last_head_loop=true"],
    "mean": ["algorithm.aggregation=mean"],
    "temperature_2": ["algorithm.temperature=2", "algorithm.distill_weight=0.25"],  # ν·τ² = 1
}
MIXED = "MNIST-1D, MLP + CNN, complete"  # two architectures: FedAvg cannot average them
SLUG = {s: s.split(",")[0].replace(" ", "").replace("-", "").lower() for s in SETUPS}


def baselines(setup: str, configs: dict[str, list[str]] = BASELINES) -> dict[str, list[str]]:
    """``configs`` that ``setup`` can run: FedAvg cannot average two architectures."""
    return {k: v for k, v in configs.items() if not (setup == MIXED and k == "fedavg")}


def points(seeds: int, option_seeds: int) -> dict[str, tuple[Path, list[str]]]:
    out = {}
    for setup, (sets, heads) in SETUPS.items():
        mhd = [f"algorithm.heads={heads}"]
        for config, extra in baselines(setup).items():
            extra = [*extra, *mhd] if config == "mhd" else extra
            for s in range(seeds):
                out[f"{SLUG[setup]}-{config}-{s}"] = (BASE, [*sets, *extra, f"seed={s}"])
        for config, extra in OPTIONS.items():
            for s in range(option_seeds):
                out[f"{SLUG[setup]}-{config}-{s}"] = (BASE, [*sets, *mhd, *extra, f"seed={s}"])
    return out


def aux_private(run: Path) -> float:
    private = final(run)["mean_private_acc"]
    return float(np.mean(private[1:] or private))


def teachers(run: Path) -> pd.DataFrame:
    """Per evaluation and student head: shares over all agents, weighted by samples."""
    t = pd.read_csv(run / "teachers.csv")
    cols = ["teacher_acc", "own_head", "own_class"]
    w = t[cols].mul(t["samples"], axis=0).assign(time=t.time, head=t["head"], n=t.samples)
    sums = w.groupby(["time", "head"]).sum()
    out = sums[cols].div(sums["n"], axis=0)
    right = (t.conf_right * t.teacher_acc * t.samples).groupby([t.time, t["head"]]).sum()
    wrong = (t.conf_wrong * (1 - t.teacher_acc) * t.samples).groupby([t.time, t["head"]]).sum()
    out["conf_right"] = right / (sums["teacher_acc"])
    out["conf_wrong"] = wrong / (sums["n"] - sums["teacher_acc"])
    return out.reset_index()


def shared_by_time(run: Path) -> pd.DataFrame:
    m = pd.read_csv(run / "metrics.csv")
    return m.groupby(["time", "head"]).shared_acc.mean().unstack()


def table(out: Path, seeds: int, option_seeds: int) -> pd.DataFrame:
    rows = {}
    for setup in SETUPS:
        row = {}
        for config in [*BASELINES, *OPTIONS]:
            if config in BASELINES and config not in baselines(setup):
                row[config] = float("nan")
                continue
            n = seeds if config in BASELINES else option_seeds
            vals = [best_aux(out / f"{SLUG[setup]}-{config}-{s}") for s in range(n)]
            row[config] = 100 * np.mean(vals)
        rows[setup] = row
    return pd.DataFrame(rows).T


def diagnostics(out: Path, seeds: int) -> pd.DataFrame:
    """MHD's teachers per setup: the last window's teacher accuracy per head, its peak and
    when, how often the own head and own classes were chosen, the confidences."""
    rows = []
    for setup in SETUPS:
        for s in range(seeds):
            run = out / f"{SLUG[setup]}-mhd-{s}"
            t = teachers(run)
            for head, g in t.groupby("head"):
                peak = g.loc[g.teacher_acc.idxmax()]
                last = g.iloc[-1]
                rows.append(
                    {
                        "setup": setup,
                        "seed": s,
                        "head": head,
                        "teacher right, last": 100 * last.teacher_acc,
                        "peak": 100 * peak.teacher_acc,
                        "peak at (s)": peak.time,
                        "own head": 100 * last.own_head,
                        "own classes": 100 * last.own_class,
                        "confidence, right": last.conf_right,
                        "confidence, wrong": last.conf_wrong,
                    }
                )
    return (
        pd.DataFrame(rows).groupby(["setup", "head"]).mean(numeric_only=True).drop(columns="seed")
    )


def mhd_runs(out: Path, seeds: int, option_seeds: int) -> list[tuple[str, Path]]:
    """(setup, run) of every MHD run: the default's seeds and each option's."""
    runs = []
    for setup in SETUPS:
        for config in ["mhd", *OPTIONS]:
            n = seeds if config == "mhd" else option_seeds
            runs += [(setup, out / f"{SLUG[setup]}-{config}-{s}") for s in range(n)]
    return runs


def prediction(out: Path, seeds: int, option_seeds: int) -> pd.DataFrame:
    """Per MHD run: its best auxiliary head's final shared accuracy beside that head's teacher
    accuracy over the last three evaluation windows, and the setup's isolated accuracy. A
    head learns its teachers' answers: the one predicts the other."""
    rows = []
    for setup, run in mhd_runs(out, seeds, option_seeds):
        shared = final(run)["mean_shared_acc"]
        head = 1 + int(np.argmax(shared[1:]))
        t = teachers(run)
        t = t[t["head"] == head].sort_values("time").tail(3)
        if t.teacher_acc.isna().all():
            continue  # mean aggregation: no single teacher to be right
        iso = np.mean([best_aux(out / f"{SLUG[setup]}-isolated-{s}") for s in range(seeds)])
        rows.append({"setup": setup, "run": run.name, "head": head,
                     "teacher right": 100 * t.teacher_acc.mean(),
                     "best aux": 100 * shared[head], "isolated": 100 * iso})  # fmt: skip
    return pd.DataFrame(rows).set_index("run")


def draw_prediction(table: pd.DataFrame, folder: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.6, 4.4), constrained_layout=True)
    for setup, g in table.groupby("setup", sort=False):
        ax.scatter(g["teacher right"], g["best aux"], label=setup, s=22)
    lim = [0, 100]
    ax.plot(lim, lim, color="gray", lw=0.8, ls="--", label="accuracy = teachers right")
    ax.set_xlabel("its teachers right, last three windows (%)")
    ax.set_ylabel("best auxiliary head, final shared accuracy (%)")
    ax.set_xlim(lim)
    ax.set_ylim(lim)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("every MHD run: a head ends near its teachers' accuracy", fontsize=10)
    fig.savefig(folder / "teachers_predict.png", dpi=110)
    plt.close(fig)


def families(extra: list[str]) -> pd.DataFrame:
    """The mixed population's MHD run again in this process; at its end, on the public
    samples, each family's max logit and how often the max-logit choice among each agent's
    peers falls on each family, and is right."""
    sets, heads = SETUPS[MIXED]
    # per agent: the models are read after the run (a deferring engine's proxies hold none)
    sc = load(BASE, [*sets, f"algorithm.heads={heads}", *extra, "engine=per_agent"])
    with tempfile.TemporaryDirectory() as tmp:
        record = RunDirectory(tmp)
        sim = build_simulation(sc, record)
        sim.run()
        record.close()
    learners = sim.learners
    family = ["mlp" if i in HALF[0]["agents"] else "cnn1d" for i in range(len(learners))]
    x = learners[0].shared.public_x
    y = torch.from_numpy(learners[0].teacher_log.public_y)
    with torch.no_grad():
        logits = []
        for lr in learners:
            lr.model.eval()
            logits.append(lr.model(x)[0][0])  # head 0 on every public sample
    rows = []
    for how in ("max_logit", "normalized_logit"):
        conf = torch.stack([confidence(z, how) for z in logits])  # [A, P]
        for i in range(len(learners)):
            peers = [j for j in range(len(learners)) if j != i]
            win = torch.tensor(peers)[conf[peers].argmax(0)]  # each sample's teacher
            right = torch.stack([logits[j].argmax(-1) for j in range(len(learners))])
            ok = right[win, torch.arange(len(y))] == y
            for fam in ("mlp", "cnn1d"):
                mask = torch.tensor([family[j] == fam for j in win.tolist()])
                rows.append({"confidence": how, "family": fam, "agent": i,
                             "chosen": 100 * float(mask.float().mean()),
                             "right when chosen": 100 * float(ok[mask].float().mean())
                             if mask.any() else float("nan")})  # fmt: skip
    scale = pd.DataFrame(
        {
            "family": family,
            "mean max logit": [float(z.max(-1).values.mean()) for z in logits],
            "accuracy": [100 * float((z.argmax(-1) == y).float().mean()) for z in logits],
        }
    )
    chosen = pd.DataFrame(rows).groupby(["confidence", "family"]).mean(numeric_only=True)
    return chosen.drop(columns="agent"), scale.groupby("family").mean()


def draw_families(chosen: pd.DataFrame, scale: pd.DataFrame, folder: Path) -> None:
    """The mixed population's failure: each family's logit scale, and whose predictions the
    choice among peers falls on, by max logit and by normalized logit."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), constrained_layout=True)
    fams = list(scale.index)
    colors = {"cnn1d": "tab:blue", "mlp": "tab:orange"}  # one colour per family in both panels
    axes[0].bar(fams, scale["mean max logit"], color=[colors[f] for f in fams])
    for k, (top, acc) in enumerate(zip(scale["mean max logit"], scale.accuracy)):
        axes[0].text(k, top, f"right on {acc:.0f}%", ha="center", va="bottom", fontsize=9)
    axes[0].set_title("main heads' mean max logit on the public samples", fontsize=10)
    hows = list(chosen.index.get_level_values(0).unique())
    x = np.arange(len(hows))
    for k, fam in enumerate(fams):
        share = [chosen.loc[(h, fam), "chosen"] / 100 if (h, fam) in chosen.index else 0
                 for h in hows]  # fmt: skip
        axes[1].bar(x + (k - 0.5) * 0.4, share, 0.4, label=f"{fam} peers", color=colors[fam])
    axes[1].set_xticks(x, hows)
    axes[1].set_ylim(0, 1)
    axes[1].set_title("share of public samples whose chosen peer is of each family", fontsize=10)
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("MNIST-1D, half MLP and half 1-D CNN, complete graph: MHD at the end (seed 0)")
    fig.savefig(folder / "mixed_families.png", dpi=110)
    plt.close(fig)


def draw(out: Path, folder: Path) -> None:
    """The digits ring's failure: its teachers and heads over time."""
    folder.mkdir(parents=True, exist_ok=True)
    run = out / f"{SLUG['digits, MLP, ring']}-mhd-0"
    t, acc = teachers(run), shared_by_time(run)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), constrained_layout=True)
    for head, g in t.groupby("head"):
        color = f"C{head}"  # as in the right panel
        axes[0].plot(g.time, g.teacher_acc, marker="o", ms=3, label=f"head {head}", color=color)
        axes[0].plot(g.time, g.own_class, ls=":", color=color)
    axes[0].set_title("chosen teacher right (solid), own classes chosen (dotted)", fontsize=10)
    for head in acc.columns:
        axes[1].plot(acc.index, acc[head], marker="o", ms=3, label=f"head {head}", color=f"C{head}")
    axes[1].set_title("shared accuracy, mean over agents", fontsize=10)
    for ax in axes:
        ax.set_xlabel("simulated time (s)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("digits, MLP, ring of 8: MHD's teachers and heads over time (seed 0)")
    fig.savefig(folder / "digits_teachers.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/failures"))
    ap.add_argument("--seeds", type=int, default=2, help="seeds of the baselines and MHD")
    ap.add_argument("--option-seeds", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--set", dest="extra", action="append", default=[])
    ap.add_argument("--images", type=Path, default=Path("docs/images/failures"))
    args = ap.parse_args(argv)
    if not run_all(points(args.seeds, args.option_seeds), args.out, args.extra, args.jobs):
        return 1
    chosen, scale = families(args.extra)
    draw(args.out, args.images)
    draw_families(chosen, scale, args.images)
    predicted = prediction(args.out, args.seeds, args.option_seeds)
    draw_prediction(predicted, args.images)
    text = "\n\n".join([
        "Best auxiliary head's final shared accuracy (%; isolated, distill, FedAvg: their "
        f"one head), mean over {args.seeds} seed(s), options over {args.option_seeds}:",
        md(table(args.out, args.seeds, args.option_seeds)),
        "MHD's teacher diagnostics (the last evaluation window; %, the confidences in the "
        "run's own measure, max logit by default):",
        md(diagnostics(args.out, args.seeds)),
        "Mixed population, at the end, on the public samples: each family's main heads "
        "(accuracy in %)",
        md(scale),
        "and which family the choice among an agent's peers falls on (%):",
        md(chosen),
        "Every MHD run's best auxiliary head beside its teachers' accuracy (%):",
        md(predicted),
    ])  # fmt: skip
    publish(text, args.out, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
