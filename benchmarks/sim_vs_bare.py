"""The simulator against a bare PyTorch loop doing the same learning work.

    python -m benchmarks.sim_vs_bare [--duration 600]

Runs the straggler scenario (per-agent execution), then replays exactly the learning work
it did in a plain loop with no simulator around it: the same agents, models (same
initialisation) and optimizer, the same number of local steps per agent with the same
batch sizes, the same distillation terms (a teacher per auxiliary head: the most confident
of the peers' cached float16 predictions and the agent's own head m−1, by max logit rounded
as a message carries it, ties drawn at random, chosen in numpy and gathered at once, as the
simulator does; the agent's own heads read from the step's forward pass, as the simulator
reads them), the same forward passes that make messages (probabilities and max-logit
confidences) and the same evaluations of the whole test set, with no train/eval switch (the
model computes the same in both, so neither switches). Both exclude set-up (data, models). The
ratio is what the simulator costs on top: SimPy, the network, encoding and decoding
messages, cache updates and writing every event.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from mhd_sim.api import build_simulation
from mhd_sim.learning.engines.population import build_learners
from mhd_sim.record.run_directory import RunDirectory
from mhd_sim.scenario import validate

from .scenarios import straggler


def simulate(raw: dict, out: Path) -> tuple[float, pd.DataFrame, int]:
    record = RunDirectory(out)
    sim = build_simulation(validate(raw), record)
    summary = sim.run()
    record.close()
    evaluations = pd.read_csv(out / "metrics.csv").time.nunique()
    events = pd.read_csv(out / "events.csv", low_memory=False)
    return summary["wall_time_s"], events, evaluations


def bare_loop(raw: dict, events: pd.DataFrame, evaluations: int) -> float:
    """The same work as the run that wrote ``events``, in one plain loop."""
    sc = validate(raw)
    agents = sc.agents.per_agent(sc.seed)
    learners, _, _ = build_learners(
        sc.data, [a.model for a in agents], sc.algorithm, sc.training, sc.seed
    )
    tr, algo = sc.training, sc.algorithm
    steps = events[events.event == "step"].groupby("agent").size()
    distills = events[events.event == "distill"].groupby("agent").size()
    messages = events[events.event == "send"].groupby(["agent", "time"]).ngroups
    per_agent_messages = events[events.event == "send"].groupby("agent").time.nunique()
    P, C = len(learners[0].shared.public_x), learners[0].shared.classes
    S = learners[0].model.heads - 1  # cached heads: one per auxiliary student head
    g = torch.Generator().manual_seed(0)
    peers = 3  # candidates per teacher, as a cache with a few peers holds
    cache = torch.softmax(
        torch.randn(peers, P, S, C, generator=g), -1
    ).half()  # float16, as the wire
    confidence = cache.float().amax(-1).numpy()  # [peers, P, S], for max-confidence teachers
    draws = np.random.default_rng(0)
    # per agent: its plain steps, then distillation steps, each share_every-th followed by a message
    queues = []
    for i in range(len(learners)):
        n_steps, n_distill = int(steps.get(i, 0)), int(distills.get(i, 0))
        kinds = ["plain"] * (n_steps - n_distill) + ["distill"] * n_distill
        n_messages = int(per_agent_messages.get(i, 0))
        every = max(1, n_steps // max(1, n_messages))
        queue = []
        for k, kind in enumerate(kinds):
            queue.append((i, kind))
            if (k + 1) % every == 0 and n_messages:
                queue.append((i, "message"))
                n_messages -= 1
        queue += [(i, "message")] * n_messages
        queues.append(queue)
    # agents interleaved
    work = [w for group in itertools.zip_longest(*queues) for w in group if w is not None]
    start = time.perf_counter()
    for i, kind in work:
        learner = learners[i]
        model, opt = learner.model, learner.opt
        if kind == "message":
            with torch.no_grad():
                ids = torch.randint(P, (algo.share_size,), generator=g)
                logits = model(learner.shared.public_x.index_select(0, ids))[0]
                torch.softmax(logits, -1).numpy(), logits.amax(-1).numpy()  # what a message holds
            continue
        batch = torch.randint(len(learner.y), (tr.batch_size,), generator=g)
        x, y = learner.x.index_select(0, batch), learner.y[batch]
        if kind == "distill":
            u = torch.randint(P, (tr.public_batch_size,), generator=g)
            x = torch.cat([x, learner.shared.public_x.index_select(0, u)])
        logits, _ = model(x)
        loss = F.cross_entropy(logits[0, : tr.batch_size], y)
        if kind == "distill":
            # the agent's own heads on the public batch are candidates: from this forward pass
            own_logits = logits[:, tr.batch_size :].detach()
            own = torch.softmax(own_logits, -1)
            own_conf = own_logits.amax(-1).half().float().numpy()  # rounded as a message's
            # per cached head: the most confident of the peers and the own head m−1, ties drawn
            peers_conf = confidence.take(u.numpy(), axis=1)  # [peers, B, S]
            for col in range(S):
                conf = np.concatenate([peers_conf[:, :, col], own_conf[col][None]])
                tied = conf == conf.max(0)
                best = np.where(tied, draws.random(conf.shape), -1.0).argmax(0)
                at = torch.from_numpy((np.minimum(best, peers - 1) * P + u.numpy()) * S + col)
                chosen = cache.view(-1, C).index_select(0, at).float()
                mine = torch.from_numpy(best == peers)[:, None]
                teacher = torch.where(mine, own[col], chosen)
                student = F.log_softmax(logits[col + 1, tr.batch_size :], -1)
                loss = loss + F.kl_div(student, teacher, reduction="batchmean")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for _ in range(evaluations):
        for learner in learners:
            learner.evaluate()
    return time.perf_counter() - start, messages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=600.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    raw = straggler()
    raw["duration"] = args.duration
    raw["engine"] = "per_agent"  # one core, as the bare loop (auto would use every core)
    with tempfile.TemporaryDirectory() as tmp:
        sim_s, events, evaluations = simulate(raw, Path(tmp) / "run")
    bare_s, messages = bare_loop(raw, events, evaluations)
    steps = int((events.event == "step").sum())
    print(
        f"straggler scenario, {args.duration:g} simulated s: {steps:,} local steps, "
        f"{int((events.event == 'distill').sum()):,} with distillation, "
        f"{messages:,} messages made, "
        f"{evaluations} evaluations of {raw['agents']['count']} agents"
    )
    print(f"simulator (per-agent execution): {sim_s:8.2f} s")
    print(f"bare PyTorch loop, same work:    {bare_s:8.2f} s")
    print(f"ratio simulator / bare loop:     {sim_s / bare_s:8.3f}")


if __name__ == "__main__":
    main()
