"""Teachers that know their limits (learning/distillation/abstain.py): a gate on the samples
a teacher judges outside its distribution, class-prior and calibrated confidences."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import cli_run, simulation
from test_faults import cli, one_line

from mhd_sim.learning.algorithms.settings import GATES
from mhd_sim.learning.distillation import messages
from mhd_sim.learning.distillation.abstain import GATES as REGISTERED
from mhd_sim.learning.distillation.abstain import Rules
from mhd_sim.learning.distillation.teachers import aggregate

PLAIN = SimpleNamespace(gate=None, calibrate=False)


def test_a_class_prior_discount_changes_the_choice_as_computed_by_hand():
    """Teacher A trained mostly on class 0 predicts it with logits [3, 0, 0]; teacher B, which
    saw class 1 once, predicts class 1 with [0, 2.5, 0]. By max logit A wins (3 > 2.5); by
    class prior B does: its prediction is far less likely under its prior than A's is, and
    each confidence equals max_c [log p(c|x) − log π(c)] computed here by hand."""
    labels_a = torch.tensor([0] * 17 + [1, 2])  # with one more per class: 18/22, 2/22, 2/22
    labels_b = torch.tensor([2] * 17 + [0, 1])
    za, zb = torch.tensor([[[3.0, 0, 0]]]), torch.tensor([[[0.0, 2.5, 0]]])
    conf = []
    for labels, z in ((labels_a, za), (labels_b, zb)):
        rules = Rules.start(1, labels, 3, PLAIN)
        got, rejected = rules.judge(z, slice(None), "class_prior")
        prior = (torch.bincount(labels, minlength=3).float() + 1) / (len(labels) + 3)
        by_hand = (z.log_softmax(-1) - prior.log()).amax(-1)
        assert torch.allclose(got, by_hand) and not rejected.any()
        conf.append(got[0, 0])
    cands = torch.stack([za[0].softmax(-1), zb[0].softmax(-1)])  # [K=2, B=1, C]
    mask = torch.ones(2, 1, dtype=torch.bool)
    by_logit = aggregate(cands, mask, "max_confidence", torch.tensor([[3.0], [2.5]]))[2]
    by_prior = aggregate(cands, mask, "max_confidence", torch.stack(conf)[:, None])[2]
    assert by_logit.tolist() == [0] and by_prior.tolist() == [1]


def test_calibration_finds_the_temperature_that_fits_the_held_back_samples():
    """Logits three times too sharp for their labels: the fitted T is near 3."""
    g = torch.Generator().manual_seed(0)
    true = torch.randn(2000, 4, generator=g)
    y = torch.multinomial(true.softmax(-1), 1, generator=g)[:, 0]
    rules = Rules.start(1, y, 4, PLAIN)
    rules.calibrate((3 * true)[None], y, SimpleNamespace(calibrate=True, gate=None))
    assert 2.6 < float(rules.temperature[0]) < 3.4


def test_an_abstaining_candidate_is_never_chosen():
    cands = torch.tensor([[[0.9, 0.1]], [[0.2, 0.8]]])
    mask = torch.ones(2, 1, dtype=torch.bool)
    teacher, ok, best, _ = aggregate(cands, mask, "max_confidence", torch.tensor([[5.0], [1.0]]))
    assert best.tolist() == [0]
    teacher, ok, best, _ = aggregate(
        cands, mask, "max_confidence", torch.tensor([[-math.inf], [1.0]])
    )
    assert best.tolist() == [1] and torch.equal(teacher, cands[1])
    _, ok, _, _ = aggregate(cands, mask, "max_confidence", torch.full((2, 1), -math.inf))
    assert ok.tolist() == [False]  # every one abstains: no teacher for that sample


def test_every_gate_the_settings_offer_is_registered_and_scores_as_computed_by_hand():
    """The scenario's names are the registry's; the energy gate keeps a sample whose logits are
    all large (seen before, no class winning) that the softmax gate rejects."""
    assert sorted(GATES) == REGISTERED.names()
    z = torch.tensor([[[6.0, 6.0], [3.0, 0.0]]])  # [H=1, n=2, C]: large and flat; peaked
    held = torch.tensor([[[5.0, 0.0], [6.0, 5.0], [4.0, 1.0]]])  # three held-back samples
    y = torch.tensor([0, 0, 0])
    by = {}
    for gate in GATES:
        rules = Rules.start(1, y, 2, SimpleNamespace(gate=gate, calibrate=False))
        rules.calibrate(held, y, SimpleNamespace(gate=gate, calibrate=False, gate_quantile=0.0))
        by[gate] = rules.judge(z, slice(None), "max_logit")[1][0].tolist()
        scores = {"in_distribution": held.softmax(-1).amax(-1), "energy": held.logsumexp(-1)}
        assert torch.equal(rules.threshold, scores[gate].amin(-1))  # the 0-quantile by hand
    assert by == {"in_distribution": [True, False], "energy": [False, True]}


@pytest.mark.parametrize("gate", GATES)
def test_a_gated_teacher_sends_nothing_for_a_sample_it_rejects(tmp_path, tiny, gate):
    """Every message of a gated run: a sample carried with confidence −inf carries no
    probabilities (all zero); the rest are distributions. About gate_quantile of each
    agent's held-back samples fall below its threshold, and messages keep their size."""
    tiny["algorithm"].update(gate=gate, gate_quantile=0.3)
    seen = {"rejected": 0, "kept": 0, "sizes": set()}

    def spy(sim):
        for learner in sim.learners:
            make = learner.make_message

            def checked(now, make=make, learner=learner):
                payload = make(now)
                msg = messages.decode(payload)
                rejected = np.isneginf(msg.confidence)  # [n, S]
                probs = msg.probs.float().numpy()  # [n, S, C]
                assert (probs[rejected] == 0).all()
                assert np.allclose(probs[~rejected].sum(-1), 1, atol=2e-3)
                seen["rejected"] += int(rejected.sum())
                seen["kept"] += int((~rejected).sum())
                seen["sizes"].add(len(payload))
                held = learner.rules.score(learner.model(learner.x_cal)[0])  # [H, n]
                below = (held < learner.rules.threshold[:, None]).float().mean(-1)
                assert (below <= 0.3 + 1e-6).all()  # the quantile's share, at most
                return payload

            learner.make_message = checked

    _, summary = simulation(tmp_path / "run", tiny, spy=spy)
    assert seen["rejected"] > 100 and seen["kept"] > 100
    assert len(seen["sizes"]) == 1  # the schedule never depends on predictions


def test_gate_and_calibration_hold_back_samples_and_keep_the_schedule(tmp_path, tiny):
    """Through `mhd-sim run`: with a gate and calibration, the timing-only run makes the same
    events as the full one (each message's calibration pass is counted in both), teachers
    answer for fewer samples than ungated teachers on the same schedule, and the held-back
    share is never trained on."""
    runs = {}
    gate = ["--set", "algorithm.gate=in_distribution", "--set", "algorithm.gate_quantile=0.3",
            "--set", "algorithm.calibrate=true"]  # fmt: skip
    for name, args in {"plain": [], "gated": gate, "timing": [*gate, "--timing-only"]}.items():
        result, runs[name] = cli_run(tmp_path, tiny, name, *args)
        assert result.exit_code == 0, result.output
    events = (runs["gated"] / "events.csv").read_bytes()
    assert (runs["timing"] / "events.csv").read_bytes() == events
    t = {k: pd.read_csv(runs[k] / "teachers.csv") for k in ("plain", "gated")}
    assert t["gated"].samples.sum() < 0.95 * t["plain"].samples.sum()
    gated = {**tiny["algorithm"], "gate": "in_distribution", "calibrate": True}
    sim, _ = simulation(tmp_path / "again", {**tiny, "algorithm": gated, "engine": "per_agent"})
    for learner in sim.learners:
        n = learner.plan.private + len(learner.y_cal)
        assert len(learner.y_cal) == max(1, round(0.1 * n)) and learner.private < n


@pytest.mark.parametrize(
    "sets, says",
    [
        (["engine=batched", "algorithm.gate=in_distribution"],
         "engine: batched does not support algorithm gate (per_agent only so far)"),
        (["algorithm.aggregation=mean", "algorithm.calibrate=true"],
         "calibrate act on the confidence a teacher is chosen by: they need aggregation"),
        (["algorithm.name=fedmd", "algorithm.gate=in_distribution"], "need aggregation max_conf"),
        (["algorithm.gate=sometimes"], "algorithm.gate: must be one of 'in_distribution' or 'e"),
    ],
)  # fmt: skip
def test_rules_that_cannot_apply_are_one_line(sets, says):
    args = [a for s in sets for a in ("--set", s)]
    one_line(cli("validate", "straggler", *args), 2, says)


def test_a_class_prior_run_chooses_other_teachers_on_the_same_schedule(tmp_path, tiny):
    """Through `mhd-sim run`: the class-prior discount changes which teachers are chosen
    (their accuracy in teachers.csv) while every message and step keeps its time and size,
    since the rule travels in the confidence a message already carries."""
    runs = {}
    for name, how in {"logit": "max_logit", "prior": "class_prior"}.items():
        result, runs[name] = cli_run(tmp_path, tiny, name, "--set", f"algorithm.confidence={how}")
        assert result.exit_code == 0, result.output
    events = [pd.read_csv(runs[k] / "events.csv") for k in ("logit", "prior")]
    keep = ["time", "event", "agent", "peer", "bytes"]
    assert events[0][keep].equals(events[1][keep])
    t = [pd.read_csv(runs[k] / "teachers.csv") for k in ("logit", "prior")]
    assert not t[0].equals(t[1])
