"""Every registered algorithm, and toy variants defined here, pass the same checks (in the
spirit of scikit-learn's ``check_estimator``) under every engine: per agent, ``auto`` on two
and three threads (every file byte-identical to per agent), batched where it declares it
(weights and accuracies within its tolerance) and timing-only (every event equal), or a
one-line refusal before anything runs; the plan's Python path gives the compiled path's
files per agent (plan_kernel.py); the world sees only the seam's protocol; and the memory
estimate covers what its learners allocate.

Each toy variant overrides one point of the engine-learner contract (``contract.POINTS``),
one overrides a call the seam composes, and one (``decay``) has settings of its own,
registered at run time: the proof that a new method needs one file and its registration,
no change to the world or the engines. A point added to the contract without a toy here
fails ``test_every_contract_point_has_a_toy``."""

import dataclasses
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
import pydantic
import pytest
import torch
from conftest import algorithm, cli_run

from mhd_sim.api import build_simulation
from mhd_sim.learning import contract
from mhd_sim.learning.algorithms import ALGORITHMS
from mhd_sim.learning.algorithms.mhd import MHD
from mhd_sim.learning.algorithms.settings import Distillation
from mhd_sim.learning.contract import COMPOSED, POINTS, DistillStep
from mhd_sim.learning.distillation import plan_kernel
from mhd_sim.learning.distillation.loss import add_distillation, add_embedding
from mhd_sim.learning.distillation.plan import Plan
from mhd_sim.learning.seam import AgentLearner, Capabilities
from mhd_sim.record.run_directory import RunDirectory
from mhd_sim.scenario import budget, validate

FILES = ("metrics.csv", "events.csv", "teachers.csv", "reach.csv")


class DecaySettings(Distillation):
    """A toy MHD variant: deeper auxiliary heads distil with geometrically smaller weights."""

    name: Literal["decay"] = "decay"
    heads: int = 3
    decay: float = 0.5
    """ν of head m ≥ 1 is decay^(m−1)."""
    declared: ClassVar[Capabilities] = Capabilities(
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


# --- one toy variant per contract point ----------------------------------------------------


class AlternatePlan(Plan):
    """Every other step of an agent trains on its private batch alone."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.steps = 0

    def step(self, now: float, ties: bool = True) -> DistillStep:
        step = super().step(now, ties)
        self.steps += 1
        if self.steps % 2 and step.public is not None:
            return DistillStep(self.plain_flops, now, batch=step.batch)
        return step


class SparsePlan(Plan):
    """Every other message is not made."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.asked = 0

    def next_chunk(self) -> np.ndarray | None:
        self.asked += 1
        return None if self.asked % 2 else super().next_chunk()


class DeafPlan(Plan):
    """Messages from even-numbered agents are ignored (the issue's variant of ``absorb``)."""

    def store(self, sender, ids, produced, heads):
        return None if sender % 2 == 0 else super().store(sender, ids, produced, heads)


class AlternateSteps(MHD):
    Plan = AlternatePlan


class SparseMessages(MHD):
    Plan = SparsePlan


class DeafToEven(MHD):
    Plan = DeafPlan


class ScaledInputs(MHD):
    def inputs(self, step, batch):
        return super().inputs(step, batch) * 0.5


class HalfLoss(MHD):
    def loss(self, step, batch, logits, emb):
        return super().loss(step, batch, logits, emb) * 0.5


def _halved(total, logits, n, targets, head_weights, tau, weighted=False):
    return add_distillation(total, logits, n, targets, [w / 2 for w in head_weights], tau,
                            weighted)  # fmt: skip


class HalfDistillation(MHD):
    distill_loss = staticmethod(_halved)


def _half_embedding(total, mine, target, valid, weight, weighted=False):
    return add_embedding(total, mine, target, valid, weight / 2, weighted)


class HalfEmbedding(MHD):
    embedding_loss = staticmethod(_half_embedding)


class SharperTeachers(MHD):
    def choose_teachers(self, step, logits=None):
        chosen = super().choose_teachers(step, logits)
        for c in chosen:
            c.target = c.target**2 / (c.target**2).sum(-1, keepdim=True).clamp_min(1e-12)
        return chosen


class TemperedMessages(MHD):
    def message_values(self, logits):
        return super().message_values(logits * 0.5)


class FlatOddSlots(MHD):
    """Keeps the predictions of the peers in odd cache slots as uniform distributions."""

    def write(self, msg, place, produced):
        if place[0] % 2:
            msg = dataclasses.replace(
                msg, probs=torch.full_like(msg.probs, 1 / msg.probs.shape[-1])
            )
        super().write(msg, place, produced)


class PrivateIsShared(MHD):
    def evaluate(self, chunk: int = 4096):
        shared, _, per_class = super().evaluate(chunk)
        return shared, shared.copy(), per_class


class AbsorbOverride(MHD):
    """Overrides a call the seam composes: only per-agent execution can honour it."""

    def absorb(self, payload, sender, produced):
        if sender % 2:
            super().absorb(payload, sender, produced)


TOYS = {cls.__name__: cls for cls in (
    AlternateSteps, SparseMessages, DeafToEven, ScaledInputs, HalfLoss, HalfDistillation,
    HalfEmbedding, SharperTeachers, TemperedMessages, FlatOddSlots, PrivateIsShared,
    AbsorbOverride,
)}  # fmt: skip


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


def run(sc, path, timing_only: bool = False, workers: int | None = None):
    """A run of ``sc`` into ``path``: the simulation (its learners) and its events."""
    record = RunDirectory(path)
    sim = build_simulation(sc, record, timing_only=timing_only, workers=workers)
    sim.run()
    record.close()
    return sim, pd.read_csv(path / "events.csv")


def same_files(a, b) -> None:
    for f in FILES:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def python_path_agrees(sc, tmp_path, monkeypatch) -> None:
    """Per agent, the plan's Python path (``MHD_SIM_PURE_PYTHON=1``, plan_kernel.py) writes
    the compiled path's files bit for bit (``tmp_path / "per_agent"``)."""
    if plan_kernel.compiled() is None:
        return  # only the Python path is built here: the run above was it
    with monkeypatch.context() as m:
        m.setattr(plan_kernel, "_compiled", None)
        run(sc, tmp_path / "python")
    same_files(tmp_path / "per_agent", tmp_path / "python")


def engines_agree(sc, tmp_path, name: str, learner_cls: type, reference: type) -> None:
    """``sc`` under every engine against per-agent execution: ``auto`` on 2 and 3 threads
    byte-identical; batched and timing-only as their contract says, or refused in one line."""
    full, events = run(sc, tmp_path / "per_agent")
    for threads in (2, 3):
        sim, _ = run(sc.model_copy(update={"engine": "auto"}), tmp_path / f"auto{threads}",
                     workers=threads)  # fmt: skip
        ran = sim.population.engine
        refused = contract.refusal(learner_cls, reference, "auto", name)
        assert ran == (f"per-agent on {threads} threads" if refused is None else ran)
        assert refused is None or ran.startswith("per_agent; its threads cannot defer")
        same_files(tmp_path / "per_agent", tmp_path / f"auto{threads}")
    caps = sc.algorithm.capabilities
    for engine in ("batched", "timing_only"):
        if engine not in caps.engines:
            continue
        refused = contract.refusal(learner_cls, reference, engine, name)
        batched = sc.model_copy(update={"engine": "batched"})
        if refused is not None:
            with pytest.raises(ValueError, match=f"cannot run algorithm {name}: it overrides"):
                run(batched if engine == "batched" else sc, tmp_path / engine,
                    timing_only=engine == "timing_only")  # fmt: skip
            assert "\n" not in refused
            continue
        if engine == "timing_only":
            _, timing = run(sc, tmp_path / "timing", timing_only=True)
            pd.testing.assert_frame_equal(events, timing, check_exact=True)
            continue
        sim, bat_events = run(batched, tmp_path / "batched")
        pd.testing.assert_frame_equal(events, bat_events, check_exact=True)
        engine_ = sim.learners[0].engine
        for i, learner in enumerate(full.learners):
            theirs = engine_.parameters(i)
            for key, p in learner.model.named_parameters():
                torch.testing.assert_close(theirs[key], p.detach(), atol=2e-5, rtol=1e-4)
        m_per = pd.read_csv(tmp_path / "per_agent" / "metrics.csv")
        m_bat = pd.read_csv(tmp_path / "batched" / "metrics.csv")
        pd.testing.assert_frame_equal(m_per, m_bat, atol=0.011, check_exact=False)
    return full


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
    plan = learner.plan
    return 0 if not hasattr(plan, "which") else plan.which.nbytes + plan.stamps.nbytes


@pytest.mark.usefixtures("decay_registered")
@pytest.mark.parametrize("name", NAMES)
def test_every_algorithm_conforms(tmp_path, tiny, name, monkeypatch):
    sc = scenario(tiny, name)
    caps = sc.algorithm.capabilities
    full, events = run(sc, tmp_path / "per_agent")
    python_path_agrees(sc, tmp_path, monkeypatch)
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

    # auto: the per-agent files bit for bit, on its threads where it can run them
    auto, _ = run(sc.model_copy(update={"engine": "auto"}), tmp_path / "auto", workers=2)
    same_files(tmp_path / "per_agent", tmp_path / "auto")
    threads = caps.distills or (caps.messages == "nothing" and not caps.shares_model)
    assert auto.population.engine == ("per-agent on 2 threads" if threads else "per_agent")
    assert all(isinstance(lr, AgentLearner) for lr in auto.learners)

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


def toy_scenario(tiny: dict):
    tiny["agents"]["churn"] = {"up_mean": 6.0, "down_mean": 2.0}
    tiny["algorithm"]["embedding_weight"] = 1.0  # every point runs, the embedding's included
    return validate({**tiny, "engine": "per_agent"})


@pytest.mark.parametrize("toy", TOYS)
def test_every_toy_variant_runs_alike_under_every_engine(tmp_path, tiny, toy, monkeypatch):
    """Each toy, in place of MHD: auto byte-identical to per agent on 2 and 3 threads, batched
    and timing-only as the contract says or refused, and the override changed the run."""
    cls = TOYS[toy]
    sc = toy_scenario(tiny)
    plain, _ = run(sc, tmp_path / "mhd")
    monkeypatch.setitem(ALGORITHMS._entries, "mhd", cls)
    engines_agree(sc, tmp_path, "mhd", cls, MHD)
    python_path_agrees(sc, tmp_path, monkeypatch)
    changed = [f for f in FILES if (tmp_path / "mhd" / f).read_bytes()
               != (tmp_path / "per_agent" / f).read_bytes()]  # fmt: skip
    assert changed, f"{toy} changed nothing: its override never ran"


def test_every_contract_point_has_a_toy():
    """A point added to the contract without a toy variant that overrides it fails here; so
    does a toy that overrides more than its one point."""
    covered = {}
    for name, cls in {**TOYS, "Decay": Decay}.items():
        members = contract.overridden(cls, MHD)
        assert len(members) == 1, f"{name} overrides {members}"
        covered[members[0].removeprefix("Plan.")] = name
    assert set(POINTS) | {"absorb"} == set(covered)
    assert set(COMPOSED) >= {"absorb"}


def test_the_toy_variant_changes_what_it_says(tmp_path, tiny, decay_registered):
    """Its one method is honoured: the deeper head's weight is smaller, so the weights differ
    from MHD's after the same schedule."""
    sc = scenario(tiny, "decay")
    toy, _ = run(sc, tmp_path / "toy")
    mhd, _ = run(validate({**tiny, "algorithm": {**tiny["algorithm"]}, "engine": "per_agent"}),
                 tmp_path / "mhd")  # fmt: skip
    assert toy.learners[0].wiring.weights == (0.0, 1.0, 0.5)
    assert mhd.learners[0].wiring.weights == (0.0, 1.0, 1.0)
    differs = [
        not torch.equal(a, b)
        for a, b in zip(toy.learners[1].model.parameters(), mhd.learners[1].model.parameters())
    ]
    assert any(differs)


def test_a_variant_through_mhd_sim_run_and_ms_simulate(tmp_path, tiny, monkeypatch, simulate):
    """As a method author meets it: a variant that ignores even agents' messages (its plan's
    ``store``) gives the per-agent files under the default engine, through the command line
    and the API; one that overrides the seam's own ``absorb`` runs per agent under auto and
    says so, and is refused by the batched engine in one line, exit 2."""
    monkeypatch.setitem(ALGORITHMS._entries, "mhd", DeafToEven)
    done, alone = cli_run(tmp_path, {**tiny, "engine": "per_agent"}, "alone")
    assert done.exit_code == 0, done.output
    done, auto = cli_run(tmp_path, tiny, "auto", "--threads", "2")
    assert done.exit_code == 0, done.output
    assert "per-agent on 2 threads" in " ".join(done.output.split())
    same_files(alone, auto)
    with simulate(tiny, tmp_path / "api", threads=2) as result:
        assert result.summary["engine"] == "per-agent on 2 threads"
    same_files(alone, tmp_path / "api")

    monkeypatch.setitem(ALGORITHMS._entries, "mhd", AbsorbOverride)
    done, auto = cli_run(tmp_path, tiny, "composed", "--threads", "2")
    assert done.exit_code == 0, done.output
    assert "threads cannot defer mhd's own absorb" in " ".join(done.output.split())
    done, _ = cli_run(tmp_path, {**tiny, "engine": "batched"}, "bat")
    assert done.exit_code == 2
    line = done.output.strip().splitlines()
    assert len(line) == 1 and "engine batched cannot run algorithm mhd: it overrides absorb" in (
        line[0])  # fmt: skip


def test_a_run_through_the_api_reads_back(tiny, simulate):
    """The fixture every run-needing test can build on: ``ms.simulate`` end to end."""
    with simulate(tiny, plots=False) as result:
        assert result.status.state == "done"
        assert set(result.metrics["head"]) == {0, 1, 2}


# --- simulated time counts the passes a step runs, no more -----------------------------------

FLOP_CASES = {
    **{name: {} for name in NAMES if name != "decay"},
    "mhd+gate": {"gate": "in_distribution"},
    "mhd+head embeddings": {"embedding_weight": 1.0, "head_hidden": 8},
    "mhd+embedding": {"embedding_weight": 1.0},
    "hybrid+per-sample teachers": {"teachers": 1, "teachers_drawn": "per_sample"},
}


FAST_FLOPS = ("mhd", "hybrid+per-sample teachers")  # the rest: the slow lane (the counter is slow)


@pytest.mark.parametrize(
    "case",
    [c if c in FAST_FLOPS else pytest.param(c, marks=pytest.mark.slow) for c in FLOP_CASES],
)
def test_a_steps_flops_are_the_passes_it_runs(tmp_path, tiny, case):
    """Every step's FLOPs (what its simulated time is made of) equal those of the passes the
    learner really ran in it, counted by torch's FLOP counter around the step (forward and
    backward); every message's equal those of the passes that made it."""
    from conftest import simulation
    from torch.utils.flop_counter import FlopCounterMode

    name = case.split("+")[0]
    tiny["duration"] = 8.0  # the counter slows every step: a few dozen steps and messages do
    settings = {"period": 5, "deadline": 3.0} if name == "fedavg" else FLOP_CASES[case]
    tiny["algorithm"] = algorithm(tiny, "hybrid" if "hybrid" in case else name, **settings)
    seen = {"steps": 0, "distilling": 0, "messages": 0}
    before: dict[int, int] = {}  # id of a step -> FLOPs counted when it began

    def spy(sim):
        for lr in sim.learners:
            begin, end, make = lr.begin_step, lr.end_step, lr.make_message

            def begin_step(now, begin=begin):
                with FlopCounterMode(display=False) as count:
                    step = begin(now)
                before[id(step)] = count.get_total_flops()
                return step

            def end_step(step, end=end):
                with FlopCounterMode(display=False) as count:
                    end(step)
                assert before.pop(id(step)) + count.get_total_flops() == step.flops, case
                seen["steps"] += 1
                seen["distilling"] += getattr(step, "public", None) is not None

            def make_message(now, make=make, lr=lr):
                flops = lr.message_flops()
                with FlopCounterMode(display=False) as count:
                    payload = make(now)
                if payload is not None and lr.algo.capabilities.distills:
                    assert count.get_total_flops() == flops, case
                    seen["messages"] += 1
                return payload

            lr.begin_step, lr.end_step, lr.make_message = begin_step, end_step, make_message

    sc = validate({**tiny, "engine": "per_agent"})
    caps = sc.algorithm.capabilities
    simulation(tmp_path, sc, spy=spy)
    assert seen["steps"] > 20
    assert (seen["distilling"] > 0) == caps.distills
    assert (seen["messages"] > 0) == caps.distills
