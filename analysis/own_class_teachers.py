"""Why head 1 forgets part of the agent's own classes: who the max-confidence teacher is there.

    python -m analysis.own_class_teachers [--set KEY=VALUE ...]

Runs ``scenarios/paper_claims.yaml`` at skew 0.95 with 4 heads (a ring), then, with the final
models, on the test samples of each agent's two main classes: how often a neighbour's main
head is more confident than the agent's own (by max logit and by max probability), how often
that neighbour's answer is then wrong, and the accuracy of heads 0 and 1 there. A teacher that
is wrong on a share of the own classes caps head 1's accuracy on the agent's own data.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from mhd_sim.api import build_simulation
from mhd_sim.record.run_directory import RunDirectory
from mhd_sim.scenario import load

BASE = Path(__file__).resolve().parent.parent / "scenarios" / "paper_claims.yaml"
SETTING = [
    "data.partition={kind: label_skew, skew: 0.95, classes_per_agent: 2}",
    "algorithm.heads=4",
]


def own_class_teachers(learners: list, neighbours: list[list[int]]) -> dict[str, float]:
    """Shares of the agents' own-class test samples (pooled): a neighbour's head 0 wins the
    max-logit or max-probability choice against the agent's own head 0, and is then wrong; the
    accuracy of heads 0 and 1 there."""
    shared = learners[0].shared
    with torch.no_grad():
        logits = []
        for lr in learners:
            lr.model.eval()
            logits.append(lr.model(shared.test_x)[0])  # [H, N, C]
    counts = dict.fromkeys(["samples", "head0", "head1"], 0)
    for how in ("logit", "probability"):
        counts |= {f"peer wins by max {how}": 0, f"wrong teacher by max {how}": 0}
    for i, lr in enumerate(learners):
        mine = np.bincount(lr.y.cpu().numpy(), minlength=shared.classes).argsort()[-2:]
        at = torch.isin(shared.test_y, torch.from_numpy(mine).to(shared.test_y.device))
        y = shared.test_y[at]
        cands = torch.stack([logits[i][0][at]] + [logits[j][0][at] for j in neighbours[i]])
        for how, score in (("logit", cands), ("probability", torch.softmax(cands, -1))):
            best = score.max(-1).values.argmax(0)  # [B]: 0 is the own head
            answer = cands[best, torch.arange(len(y))].argmax(-1)
            counts[f"peer wins by max {how}"] += int((best > 0).sum())
            counts[f"wrong teacher by max {how}"] += int((answer != y).sum())
        counts["samples"] += len(y)
        counts["head0"] += int((logits[i][0][at].argmax(-1) == y).sum())
        counts["head1"] += int((logits[i][1][at].argmax(-1) == y).sum())
    n = counts.pop("samples")
    return {k: v / n for k, v in counts.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", dest="extra", action="append", default=[])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    sc = load(BASE, [*SETTING, *args.extra])
    with tempfile.TemporaryDirectory() as tmp:
        record = RunDirectory(tmp)
        sim = build_simulation(sc, record)
        sim.run()
        record.close()
    neighbours = [sorted(sim.links.neighbors(i)) for i in range(len(sim.learners))]
    for name, share in own_class_teachers(sim.learners, neighbours).items():
        print(f"{name:32s} {share:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
