"""The scenario file's schema: every section, its defaults and its checks.

Pieces named by ``kind`` (dataset, partition, model, topology, latency ``dist``) take their
settings from the registered function's keyword parameters, so the schema grows with the
registries and never drifts from them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic
import pydantic_core
from pydantic import Field

from .. import wording
from ..learning.algorithms import ALGORITHMS
from ..learning.algorithms.settings import mixed_models, unsupported
from ..learning.data.datasets import DATASETS, known_classes
from ..learning.data.partitions import PARTITIONS, check_placement
from ..seeds import sampler, stream
from ..world.topology import build as build_topology
from . import budget
from .agents import AgentsSpec
from .fields import TAGS, Distribution, NonNegative, Positive, Strict, piece
from .network import NetworkSpec, Switch

__all__ = ["TAGS", "AgentsSpec", "NetworkSpec", "Scenario"]


class DataSpec(Strict):
    dataset: piece(DATASETS) = "mnist1d"
    """Which dataset: a kind (`mnist1d`) or `{kind: ..., settings}`."""
    public_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.3
    """Fraction of the training pool made public, labels removed."""
    partition: piece(PARTITIONS) = "iid"
    """How the private pool is split among agents (`iid`, `label_skew`, ...)."""
    samples_per_agent: Distribution | None = None
    """Cap on each agent's private samples: a number, or a distribution drawn per agent."""

    def sizes(self, agents: int, seed: int) -> list[int] | None:
        """Each agent's private-set cap, drawn from its own stream (at least one sample)."""
        if self.samples_per_agent is None:
            return None
        draw = sampler(self.samples_per_agent)
        return [max(1, int(round(draw(stream(seed, "size", i))))) for i in range(agents)]


def owners(key: str) -> list[str]:
    """The algorithms that have setting ``key``, the paper's method first."""
    names = sorted(ALGORITHMS.names(), key=lambda n: (n != "mhd", n))
    return [n for n in names if key in ALGORITHMS.params_model(n).model_fields]


def _own_settings(v: Any) -> Any:
    """``algorithm`` without a name is MHD's; a setting that belongs to another algorithm is
    one line naming both (an unknown key is left to the schema's "unknown key")."""
    if not isinstance(v, dict):
        return v
    v = {"name": "mhd", **v}
    name = v["name"]
    if name not in ALGORITHMS.names():
        return v
    own = ALGORITHMS.params_model(name).model_fields
    for key in v:
        others = owners(key) if key not in own else []
        if others:
            raise pydantic_core.PydanticCustomError(
                "foreign_setting",
                "algorithm.{key} is {article} {owner} setting; this run's algorithm is {name}",
                {"key": key, "owner": wording.either(others), "name": name,
                 "article": "an" if others[0][0] in "aeiou" or others[0] == "mhd" else "a"},
            )  # fmt: skip
    return v


AlgorithmSpec = Annotated[ALGORITHMS.union(), pydantic.BeforeValidator(_own_settings)]


class TrainingSpec(Strict):
    batch_size: Annotated[int, Field(ge=1, le=1_000_000)] = 32
    """Private samples per local step."""
    public_batch_size: Annotated[int, Field(ge=1, le=1_000_000)] = 64
    """Public samples per distillation step."""
    lr: Positive = 0.05
    """Learning rate."""
    optimizer: Literal["sgd", "adam"] = "sgd"
    """sgd or adam."""
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.0
    """SGD momentum."""
    weight_decay: NonNegative = 0.0
    """L2 weight decay."""
    clip_grad_norm: Positive | None = None
    """Clip each step's gradient to this global norm."""


class EvalSpec(Strict):
    every: Positive = 30.0
    """Simulated seconds between evaluations (and one at the end)."""


class Scenario(Strict):
    name: str = "scenario"
    """The run's name (default run directory runs/<name>-<time>)."""
    seed: Annotated[int, Field(ge=0)] = 0
    """The one seed every random stream derives from."""
    duration: Annotated[float, Field(ge=1e-3)] = 600.0
    """Simulated seconds to run."""
    device: Literal["cpu", "cuda"] = "cpu"
    """Where tensors live: cpu or cuda."""
    engine: Literal["auto", "per_agent", "batched"] = "auto"
    """auto: per-agent execution on every core where the algorithm allows (the results of
    per_agent, bit for bit), else per_agent; per_agent: each step runs when its event fires,
    on one core; batched: steps are deferred and run many agents at once as one computation
    (the same events; other kernels, so accuracies part from per-agent ones as another
    seed's would: measured in docs/performance.md)."""
    data: DataSpec = DataSpec()
    """Dataset, public fraction and partition."""
    agents: AgentsSpec = AgentsSpec()
    """How many agents, their models, speeds, groups and churn."""
    network: NetworkSpec = NetworkSpec()
    """Topology, links and their changes over time."""
    algorithm: AlgorithmSpec = {"name": "mhd"}
    """The learning algorithm and its settings: each algorithm has its own (see below)."""
    training: TrainingSpec = TrainingSpec()
    """Local optimisation."""
    eval: EvalSpec = EvalSpec()
    """When to evaluate."""

    @pydantic.model_validator(mode="after")
    def _fits(self, info: pydantic.ValidationInfo) -> Scenario:
        # before anything is built from these settings: a run no mode of it can fit, or one
        # that cannot progress, is refused here (``force`` in the context: tried anyway)
        if not (info.context or {}).get("force"):
            budget.check(self, timing_only=True)
        n, net = self.agents.count, self.network
        tops = [("network.topology", net.topology)]
        tops += [
            (f"network.schedule.{k}.topology", e.topology)
            for k, e in enumerate(net.schedule)
            if isinstance(e, Switch)
        ]
        for where, spec in tops:
            try:
                build_topology(spec, n, self.seed)
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from None
        for where, items in (("network.links", net.links), ("network.schedule", net.schedule)):
            for k, item in enumerate(items):
                bad = sorted(a for a in item.agents() if a >= n)
                if bad:
                    raise ValueError(
                        f"{where}.{k}: agent {bad[-1]} does not exist (agents are 0..{n - 1})"
                    )
        try:
            net.read_traces(n)
        except ValueError as e:
            raise ValueError(f"network: {e}") from None
        try:
            agents = self.agents.per_agent(self.seed)
        except ValueError as e:
            raise ValueError(f"agents.speed: {e}") from None
        problem = mixed_models(self.algorithm, [a.model for a in agents])
        if problem:
            raise ValueError(f"algorithm.name: {problem}")
        missing = unsupported(self.engine, self.algorithm, self.training)
        if self.engine == "batched" and missing:
            raise ValueError(
                f"engine: batched does not support {'; '.join(missing)}; use engine: per_agent"
            )
        placement = getattr(self.data.partition, "placement", None)
        if placement is not None:
            try:
                check_placement(placement, n, known_classes(self.data.dataset))
            except ValueError as e:
                raise ValueError(f"data.partition.{e}") from None
        return self

    def resolved(self) -> dict[str, Any]:
        """Plain data with every default filled in: what ``scenario.yaml`` of a run holds."""
        return self.model_dump(mode="json")
