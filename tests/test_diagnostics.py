"""Teacher diagnostics (teachers.csv): counted as a brute force counts them, the same in
per-agent and batched execution."""

import numpy as np
import pandas as pd
import pytest
from conftest import simulation


def run(tmp_path, tiny, engine, spy=None):
    tiny = {**tiny, "engine": engine, "duration": 12.0, "eval": {"every": 4.0}}
    sim, _ = simulation(tmp_path / engine, tiny, spy=spy)
    return sim, pd.read_csv(tmp_path / engine / "teachers.csv")


def test_teacher_acc_is_the_brute_force_count_per_agent_and_batched(tmp_path, tiny):
    """Per-agent: every finished step's chosen teachers are captured and counted sample by
    sample against the public labels, window by window. Batched: the same rows, up to the
    rounding that may flip a rare choice."""
    counted = []  # (agent, time the step ended, head, right, samples, own, own class)

    def spy(sim):
        for learner in sim.learners:
            original = learner.end_step

            def end_step(step, learner=learner, original=original):
                original(step)
                log = learner.teacher_log
                for c in step.targets:
                    right = samples = own = own_class = 0
                    for b, u in enumerate(step.public):
                        if c.ok is not None and not bool(c.ok[b]):
                            continue
                        cls = int(c.target[b].argmax())
                        samples += 1
                        right += cls == int(log.public_y[u])
                        own += bool(c.own[b]) if c.own is not None else 0
                        own_class += bool(log.main[cls])
                    counted.append((learner.agent, sim.env.now, c.head, right, samples, own,
                                    own_class))  # fmt: skip

            learner.end_step = end_step

    sim, rows = run(tmp_path, tiny, "per_agent", spy)
    assert len(rows) > 0 and set(rows["head"]) == {1, 2}
    brute = pd.DataFrame(counted, columns=["agent", "t", "head", "right", "n", "own", "cls"])
    evals = sorted(rows.time.unique())
    brute["time"] = [min(e for e in evals if e >= t) for t in brute.t]
    sums = brute.groupby(["time", "agent", "head"]).sum(numeric_only=True).reset_index()
    merged = rows.merge(sums, on=["time", "agent", "head"], how="outer", validate="1:1")
    assert not merged.isna()[["samples", "n"]].any().any()
    assert (merged.samples == merged.n).all()
    np.testing.assert_allclose(merged.teacher_acc, merged.right / merged.n, rtol=0, atol=1e-12)
    np.testing.assert_allclose(merged.own_head, merged.own / merged.n, rtol=0, atol=1e-12)
    np.testing.assert_allclose(merged.own_class, merged.cls / merged.n, rtol=0, atol=1e-12)
    assert (merged.own > 0).any() and (merged.right > 0).any()  # it counted real choices
    _, batched = run(tmp_path, tiny, "batched")
    key = ["time", "agent", "head", "steps", "samples"]
    pd.testing.assert_frame_equal(rows[key], batched[key])
    for col in ("teacher_acc", "own_head", "own_class"):
        assert (rows[col] - batched[col]).abs().max() <= 0.02, col


def test_runs_without_teachers_write_an_empty_teachers_csv(tmp_path, tiny):
    tiny["algorithm"] = {"name": "isolated"}
    _, rows = run(tmp_path, tiny, "per_agent")
    assert rows.empty and list(rows.columns)[:3] == ["time", "agent", "head"]


@pytest.mark.parametrize("aggregation", ["mean", "max_confidence"])
def test_confidences_of_right_and_wrong_choices(tmp_path, tiny, aggregation):
    tiny["algorithm"]["aggregation"] = aggregation
    _, rows = run(tmp_path, tiny, "per_agent")
    ranked = aggregation == "max_confidence"
    assert rows.conf_right.notna().any() == ranked and rows.own_head.notna().all() == ranked
    if ranked:  # right choices were the more confident ones, on average
        assert (rows.conf_right.mean()) > rows.conf_wrong.mean()
