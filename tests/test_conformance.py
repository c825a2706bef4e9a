"""Every registered algorithm, and a toy variant defined here, passes the same checks (in the
spirit of scikit-learn's ``check_estimator``): it runs on a tiny population per agent,
timing-only and, where its capabilities say so, batched; timing-only events equal per-agent
events; batched weights equal per-agent weights; the world sees only the seam's protocol;
and the memory estimate covers what its learners allocate.

The toy variant is one class and its settings, registered at run time: the proof that a
new algorithm needs one file and its registration, no change to the world or the engines."""

from typing import ClassVar, Literal

import pandas as pd
import pydantic
import pytest
import torch
from conftest import algorithm, simulation

from mhd_sim.learning.algorithms import ALGORITHMS
from mhd_sim.learning.algorithms.mhd import MHD
from mhd_sim.learning.algorithms.settings import Distillation
from mhd_sim.learning.seam import AgentLearner, Capabilities
from mhd_sim.scenario import budget, validate


class DecaySettings(Distillation):
    """A toy MHD variant: deeper auxiliary heads distil with geometrically smaller weights."""

    name: Literal["decay"] = "decay"
    heads: int = 3
    decay: float = 0.5
    """ν of head m ≥ 1 is decay^(m−1)."""
    capabilities: ClassVar[Capabilities] = Capabilities(
        ("per_agent", "batched", "timing_only"), "predictions"
    )

    def model_heads(self) -> int:
        return self.heads


class Decay(MHD):
    """MHD whose head m ≥ 1 distils with weight decay^(m−1): one method differs."""

    Settings = DecaySettings

    @classmethod
    def head_weights(cls, algo: pydantic.BaseModel, heads: int) -> list[float]:
        return [0.0] + [algo.decay ** (m - 1) for m in range(1, heads)]


# its scenario.yaml is written from settings the scenario file's union does not list
pytestmark = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")


@pytest.fixture
def decay_registered():
    ALGORITHMS.register("decay")(Decay)
    yield
    ALGORITHMS._entries.pop("decay")


NAMES = [*ALGORITHMS.names(), "decay"]


def scenario(tiny: dict, name: str, engine: str = "per_agent"):
    """The tiny scenario with algorithm ``name`` (the toy's settings set directly: the scenario
    file's schema was made before it was registered)."""
    tiny["agents"]["churn"] = {"up_mean": 6.0, "down_mean": 2.0}
    if name == "decay":
        sc = validate({**tiny, "engine": engine})
        return sc.model_copy(update={"algorithm": DecaySettings(share_every=2, share_size=32)})
    settings = {"period": 5, "deadline": 3.0} if name == "fedavg" else {}
    tiny["algorithm"] = algorithm(tiny, name, **settings)
    return validate({**tiny, "engine": engine})


def run(sc, path, timing_only: bool = False):
    sim, _ = simulation(path, sc, timing_only)
    return sim, pd.read_csv(path / "events.csv")


def allocated(sim) -> int:
    """Bytes the learners hold in tensors: their models (distinct ones once) and caches."""
    seen, total = set(), 0
    for learner in sim.learners:
        model = learner.model
        if id(model) not in seen:
            seen.add(id(model))
            total += sum(p.numel() * p.element_size() for p in model.parameters())
        cache = getattr(learner, "cache", None)  # a distilling learner's, by its type
        if cache is not None:
            total += cache.probs.nbytes + cache.conf.nbytes + cache.emb.nbytes
        total += plan_bytes(learner)
    return total


def plan_bytes(learner) -> int:
    """Bytes of a distilling learner's production times (its plan's tables)."""
    plan = getattr(learner, "plan", None)
    return 0 if plan is None else plan.which.nbytes + plan.stamps.nbytes + plan.embedded.nbytes


@pytest.mark.usefixtures("decay_registered")
@pytest.mark.parametrize("name", NAMES)
def test_every_algorithm_conforms(tmp_path, tiny, name):
    sc = scenario(tiny, name)
    caps = type(sc.algorithm).capabilities
    full, events = run(sc, tmp_path / "full")
    assert all(isinstance(lr, AgentLearner) for lr in full.learners)
    assert (events.event == "step").sum() > 20
    assert ((events.event == "send").sum() > 0) == (caps.messages != "nothing")
    assert ((events.event == "distill").sum() > 0) == caps.distills

    # timing-only: the same schedule, every event, without training
    assert "timing_only" in caps.engines
    stand_ins, timing = run(sc, tmp_path / "timing", timing_only=True)
    assert all(isinstance(lr, AgentLearner) for lr in stand_ins.learners)
    pd.testing.assert_frame_equal(events, timing, check_exact=True)

    # the memory estimate covers what the learners allocate (models and caches)
    estimate = budget.estimate(sc)
    assert estimate.memory["models"] + estimate.memory.get(
        "caches of peers' predictions", 0
    ) >= allocated(full)
    stand_in = budget.estimate(sc, timing_only=True).memory.get("caches of peers' predictions", 0)
    assert stand_in >= sum(plan_bytes(lr) for lr in stand_ins.learners)

    if "batched" in caps.engines:
        batched, bat_events = run(sc.model_copy(update={"engine": "batched"}), tmp_path / "bat")
        assert all(isinstance(lr, AgentLearner) for lr in batched.learners)
        pd.testing.assert_frame_equal(events, bat_events, check_exact=True)
        engine = batched.learners[0].engine
        for i, learner in enumerate(full.learners):
            theirs = engine.parameters(i)
            for key, p in learner.model.named_parameters():
                torch.testing.assert_close(theirs[key], p.detach(), atol=2e-5, rtol=1e-4)
    else:  # refused by validation, in one line naming the algorithm
        with pytest.raises(ValueError, match=f"batched does not support algorithm {name}"):
            validate({**tiny, "engine": "batched"})


def test_the_toy_variant_changes_what_it_says(tmp_path, tiny, decay_registered):
    """Its one method is honoured by both engines: the deeper head's weight is smaller, so the
    weights differ from MHD's after the same schedule."""
    toy, _ = run(scenario(tiny, "decay"), tmp_path / "toy")
    mhd, _ = run(validate({**tiny, "algorithm": {**tiny["algorithm"]}}), tmp_path / "mhd")
    assert toy.learners[0].wiring.weights == (0.0, 1.0, 0.5)
    assert mhd.learners[0].wiring.weights == (0.0, 1.0, 1.0)
    differs = [
        not torch.equal(a, b)
        for a, b in zip(toy.learners[1].model.parameters(), mhd.learners[1].model.parameters())
    ]
    assert any(differs)


def test_a_run_through_the_api_reads_back(tiny, simulate):
    """The fixture every run-needing test can build on: ``ms.simulate`` end to end."""
    with simulate(tiny, plots=False) as result:
        assert result.status.state == "done"
        assert set(result.metrics["head"]) == {0, 1, 2}
