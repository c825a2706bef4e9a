"""The run's ``summary.json``: totals, final figures, and one entry per agent."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..wording import id_ranges
from .traffic import DROP_REASONS, burst_warnings, overload_warnings


def online_fraction(sim: Any, i: int) -> float:
    now = sim.env.now
    offline = sim.offline_time[i] + (0.0 if sim.online[i] else now - sim.offline_since[i])
    return 1.0 - offline / now if now > 0 else 1.0


def ages_as_teacher(sim: Any) -> list[float | None]:
    """Per agent, the mean age of its predictions at the moments peers distilled from them."""
    total, count = np.zeros(len(sim.learners)), np.zeros(len(sim.learners))
    for learner in sim.learners:
        for sender, (s, c) in learner.teacher_ages().items():
            total[sender] += s
            count[sender] += c
    return [float(t / c) if c else None for t, c in zip(total, count)]


def summary(sim: Any, wall_time: float, interrupted: bool = False) -> dict[str, Any]:
    """What ``summary.json`` holds for ``sim`` as it stands now."""
    net = sim.network
    totals = net.summary()  # settles the uplinks: bytes sent up to now
    tr, now = net.traffic, float(sim.env.now)
    busy = net.busy().tolist()
    uplinks = [tr.per_agent(i, now, busy[i], net.uplink[i]) for i in range(len(sim.agents))]
    shared = np.array([e[0] for e in sim.last_eval])  # [agents, heads]
    private = np.array([e[1] for e in sim.last_eval])
    best = int(shared.mean(0).argmax()) if len(shared) else 0
    q = np.percentile(sim.staleness, [50, 90, 99]).tolist() if sim.staleness else [None] * 3
    as_teacher = ages_as_teacher(sim)
    sizes = sim.population.private_samples
    out = {
        "name": sim.sc.name,
        "seed": sim.sc.seed,
        "algorithm": sim.sc.algorithm.name,
        "sim_time": float(sim.env.now),
        "wall_time_s": round(wall_time, 3),
        "interrupted": interrupted,
        "timing_only": sim.timing_only,
        "engine": sim.population.engine,
        "kernels": sim.population.kernels,
        "hot_path": sim.population.hot_path,  # compiled or python: the same numbers
        "events": sim.record.events,
        "steps": sum(sim.steps),
        "messages": {
            "offered": sum(tr.offered),
            "sent": sum(tr.sent),
            "delivered": int(tr.delivered),
            "dropped": int(sum(tr.dropped.values())),
            "dropped_by_reason": {r: int(tr.dropped[r]) for r in DROP_REASONS},
            "retransmitted": int(tr.retransmitted),
            "skipped": sum(tr.skipped),
        },
        **totals,
        "bytes_received": sum(tr.bytes_received),
        "staleness": {
            "p50": q[0],
            "p90": q[1],
            "p99": q[2],
            "mean": float(np.mean(sim.staleness)) if sim.staleness else None,
            "max": sim.staleness_max if sim.staleness else None,
            "distill_steps": len(sim.staleness),
        },
        "final": {
            "mean_private_acc": private.mean(0).tolist() if len(private) else [],
            "mean_shared_acc": shared.mean(0).tolist() if len(shared) else [],
            "best_head": best,
            "best_head_shared_acc": float(shared.mean(0)[best]) if len(shared) else None,
        },
        "agents": [
            {
                "agent": i,
                "group": a.group,
                "speed": a.speed,
                "steps": int(sim.steps[i]),
                "online_fraction": online_fraction(sim, i),
                "messages_offered": tr.offered[i],
                "messages_sent": tr.sent[i],
                "messages_skipped": tr.skipped[i],
                "bytes_offered": tr.bytes_offered[i],
                "bytes_sent": tr.bytes_sent[i],
                "bytes_received": tr.bytes_received[i],
                "uplink": uplinks[i],
                "private_samples": sizes[i] if sizes else None,
                "shared_acc": shared[i].tolist() if len(shared) else [],
                "private_acc": private[i].tolist() if len(private) else [],
                "staleness_as_teacher": as_teacher[i],
            }
            for i, a in enumerate(sim.agents)
        ],
    }
    out["warnings"] = sim.warnings + overload_warnings(out["agents"], tr.offered)
    out["warnings"] += burst_warnings(out["agents"], tr.offered)
    out["warnings"] += collapse_warnings(sim.collapsed_since)
    if sim.timing_only:  # no training, no accuracy: no fields that would only say null
        del out["final"]
        for a in out["agents"]:
            del a["shared_acc"], a["private_acc"]
    return out


def collapse_warnings(since: list[float | None]) -> list[str]:
    """One line when agents' models collapsed: at the end, every head predicts one class for
    every test sample, and has since ``since`` (a run whose losses are weighted too heavily
    for its step size kills the ReLU units of its embedding; docs/method.md)."""
    gone = [i for i, t in enumerate(since) if t is not None]
    if not gone:
        return []
    first = min(since[i] for i in gone)
    return [
        f"{len(gone)} of {len(since)} agents collapsed (agents {id_ranges(gone)}): from "
        f"t≈{first:g} s on, every head of their models predicts one class for every test "
        "sample; the steps are too large for the losses' weights (lower training.lr or "
        "algorithm.distill_weight, or set training.clip_grad_norm; docs/method.md, "
        '"Settings that make training collapse")'
    ]
