"""The literature's distillation baselines beside MHD: FedMD (distil to the neighbours'
consensus) and DS-FL (the consensus sharpened by entropy-reduction aggregation)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from conftest import algorithm, cli_run, simulation


@pytest.mark.parametrize("name", ["fedmd", "ds_fl"])
def test_the_teacher_is_the_neighbours_mean_or_its_sharpened_form(tmp_path, tiny, name):
    """At every step of every agent, the target equals the mean of the cached neighbour
    predictions the step may read (fedmd) or softmax(mean / 0.1) (ds_fl), computed here
    from the cache itself."""
    tiny["algorithm"] = algorithm(tiny, name)
    seen = {"steps": 0, "several": 0}

    def spy(sim):
        for learner in sim.learners:
            choose = learner.choose_teachers

            def checked(step, logits=None, choose=choose, learner=learner):
                chosen = choose(step, logits)
                col = learner.wiring.column[learner.wiring.sources[0][0]]
                # the cache as it was when the step began, which it chooses from
                probs = step.candidates[0][:, :, col].float()  # [K, B, C]
                valid = torch.from_numpy(step.valid)  # [K, B]
                mean = (probs * valid[..., None]).sum(0) / valid.sum(0).clamp_min(1)[:, None]
                want = mean if name == "fedmd" else torch.softmax(mean / 0.1, -1)
                ok = valid.any(0)
                torch.testing.assert_close(chosen[0].target[ok], want[ok], atol=1e-6, rtol=0)
                seen["steps"] += 1
                seen["several"] += int((valid.sum(0) >= 2).any())
                return chosen

            learner.choose_teachers = checked

    simulation(tmp_path / "run", tiny, spy=spy)
    assert seen["steps"] > 100 and seen["several"] > 50  # real consensus of two neighbours


@pytest.mark.parametrize("name", ["fedmd", "ds_fl"])
def test_baselines_run_from_the_command_line_in_both_engines(tmp_path, tiny, name):
    """`--set algorithm.name=fedmd` on an MHD scenario runs (the file's max_confidence is
    MHD's, not FedMD's); both engines make the same schedule, one head, its teachers logged."""
    runs = {}
    for engine in ("per_agent", "batched"):
        result, runs[engine] = cli_run(
            tmp_path, tiny, engine, "--set", f"algorithm.name={name}", "--set", f"engine={engine}"
        )
        assert result.exit_code == 0, result.output
    a, b = (r / "events.csv" for r in runs.values())
    assert a.read_bytes() == b.read_bytes()
    summary = json.loads((runs["per_agent"] / "summary.json").read_text())
    assert summary["algorithm"] == name and len(summary["final"]["mean_shared_acc"]) == 1
    teachers = pd.read_csv(runs["per_agent"] / "teachers.csv")
    assert len(teachers) > 0 and teachers.conf_right.isna().all()  # no confidence ranks them


def test_a_fixed_setting_is_one_line(tmp_path, tiny):
    tiny["algorithm"] = {"name": "fedmd", "aggregation": "max_confidence"}
    result, _ = cli_run(tmp_path, tiny, "bad")
    assert result.exit_code == 2
    assert "algorithm.aggregation: must be one of 'mean', got 'max_confidence'" in result.output
