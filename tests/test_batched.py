"""The batched engine gives what per-agent execution gives, up to floating-point rounding."""

import pandas as pd
import pytest
import torch
from conftest import algorithm

from mhd_sim.api import build_simulation
from mhd_sim.record.run_directory import RunDirectory
from mhd_sim.scenario import validate


def run_both(tmp_path, sc: dict):
    out = {}
    for engine in ("per_agent", "batched"):
        record = RunDirectory(tmp_path / engine)
        sim = build_simulation(validate({**sc, "engine": engine}), record)
        sim.run()
        record.close()
        out[engine] = sim
    return out["per_agent"], out["batched"], tmp_path / "per_agent", tmp_path / "batched"


VARIANTS = {
    "mhd, momentum, clipping, churn": {
        "training": {
            "batch_size": 8,
            "public_batch_size": 16,
            "lr": 0.1,
            "momentum": 0.9,
            "clip_grad_norm": 1.0,
        },
        "agents": {"churn": {"up_mean": 6.0, "down_mean": 2.0}},
        "algorithm": {"max_staleness": 4.0},
    },
    "two architectures, mean aggregation, last-head loop, weight decay": {
        "agents": {
            "groups": [{"name": "wide", "agents": [1, 2], "model": {"kind": "mlp", "hidden": [24]}}]
        },
        "algorithm": {"aggregation": "mean", "last_head_loop": True, "encoding": "float32"},
        "training": {"weight_decay": 0.01},
    },
    "peers only, one random teacher, max probability": {
        "algorithm": {"include_self": False, "teachers": 1, "confidence": "max_probability"},
    },
    "the embedding term": {"algorithm": {"embedding_weight": 1.0}},
    "two random teachers per sample, main head distilling too": {
        "algorithm": {"teachers": 2, "teachers_drawn": "per_sample", "distill_weight": [1, 1, 1]},
    },
}  # distill and isolated: tests/test_conformance.py holds every algorithm to the same check


def merged(base: dict, extra: dict) -> dict:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for k, v in extra.items():
        if k == "algorithm" and "name" in v:  # another algorithm: its own settings only
            out[k] = algorithm(base, **v)
        else:
            out[k] = {**out.get(k, {}), **v}
    return out


@pytest.mark.parametrize("variant", VARIANTS)
def test_batched_engine_equals_per_agent_execution(tmp_path, tiny, variant):
    per, bat, d_per, d_bat = run_both(tmp_path, merged(tiny, VARIANTS[variant]))
    ev_per, ev_bat = pd.read_csv(d_per / "events.csv"), pd.read_csv(d_bat / "events.csv")
    # the schedule is the world's alone: the same events, message sizes and ages of predictions
    pd.testing.assert_frame_equal(ev_per, ev_bat)
    for i, learner in enumerate(per.learners):  # the weights agree to rounding
        theirs = bat.learners[0].engine.parameters(i)
        for name, p in learner.model.named_parameters():
            torch.testing.assert_close(
                theirs[name], p.detach(), atol=2e-5, rtol=1e-4, msg=f"agent {i} {name}"
            )
    m_per, m_bat = pd.read_csv(d_per / "metrics.csv"), pd.read_csv(d_bat / "metrics.csv")
    # ≤ 2 of 200 test samples
    pd.testing.assert_frame_equal(m_per, m_bat, atol=0.011, check_exact=False)
    assert (m_per.shared_acc != m_per.shared_acc.iloc[0]).any()  # it did learn something


@pytest.mark.parametrize("name", ["gossip", "fedavg"])
def test_runs_the_batched_engine_cannot_do_say_so(tmp_path, tiny, name):
    tiny["engine"] = "batched"
    tiny["algorithm"] = {"name": name}
    with pytest.raises(ValueError, match=f"engine: batched does not support algorithm {name}"):
        build_simulation(validate(tiny), RunDirectory(tmp_path))
