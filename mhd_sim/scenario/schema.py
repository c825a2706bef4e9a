"""The scenario file's schema: every section, its defaults and its checks.

Pieces named by ``kind`` (dataset, partition, model, topology, latency ``dist``) take their
settings from the registered function's keyword parameters, so the schema grows with the
registries and never drifts from them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic
from pydantic import Field

from ..learning.algorithms import ALGORITHMS
from ..learning.datasets import DATASETS
from ..learning.messages import ENCODINGS
from ..learning.partitions import PARTITIONS
from ..learning.teachers import AGGREGATIONS
from ..seeds import sampler, stream
from ..world.topology import build as build_topology
from .agents import AgentsSpec
from .fields import TAGS, Count, Distribution, NonNegative, Positive, Strict, piece
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


class AlgorithmSpec(Strict):
    name: str = "mhd"
    """The learning algorithm: mhd, isolated, distill, gossip or centralized."""
    heads: Count = 3
    """Heads per model (MHD): the main head plus heads-1 auxiliary heads."""
    temperature: Positive = 1.0
    """Distillation temperature τ."""
    distill_weight: NonNegative | list[NonNegative] = 1.0
    """ν: one weight for every auxiliary head, or one per head (head 0 first)."""
    aggregation: Literal[AGGREGATIONS] = "max_confidence"
    """How candidate teachers combine per sample."""
    include_self: bool = True
    """The agent's own head m-1 is a candidate teacher for its head m, beside the peers' (the
    paper's method: head m keeps what head m-1 knew and adds one hop). false: peers only, so
    head m knows only the agents m, m-2, ... hops away."""
    confidence: Literal["max_logit", "max_probability"] = "max_logit"
    """How max_confidence ranks candidates: the largest logit (the paper's) or the largest
    probability (by its log-odds). Messages carry it, so rounding never makes ties; true ties
    are drawn at random."""
    teachers: Count | None = None
    """Per step, this many peers drawn at random among those whose predictions are cached
    are the candidates (the paper's random neighbours). Null: all of them."""
    last_head_loop: bool = False
    """The last head also learns from the peers' last heads."""
    share_every: Count = 5
    """Local steps between messages."""
    share_size: Count = 256
    """Public samples per message."""
    encoding: Literal[tuple(ENCODINGS)] = "float16"
    """How predictions (or weights) are encoded on the wire."""
    topk: Count = 3
    """Probabilities kept per sample and head with encoding topk."""
    embedding_weight: NonNegative = 0.0
    """Weight of the MSE to the peers' mean embedding on public samples."""
    period: Count = 50
    """fedavg: local steps between a client's uploads."""
    deadline: Positive = 30.0
    """fedavg: a round ends when every online client's weights are in, or this many seconds
    after it began."""
    server_bandwidth: Positive | None = None
    """fedavg: the server's uplink, bytes/s (null: network.bandwidth)."""
    max_staleness: Positive | None = None
    """Cached predictions older than this many seconds are not used."""

    @pydantic.field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in ALGORITHMS.names():
            raise ValueError(
                f"unknown algorithm {v!r}; choose from {', '.join(ALGORITHMS.names())}"
            )
        return v

    @pydantic.model_validator(mode="after")
    def _weights_per_head(self) -> AlgorithmSpec:
        w = self.distill_weight
        if isinstance(w, list) and self.name == "mhd" and len(w) != self.heads:
            raise ValueError(f"distill_weight lists {len(w)} weights for {self.heads} heads")
        if self.name == "gossip" and self.encoding == "topk":
            raise ValueError(
                "gossip sends weights: encoding must be float32, float16 or bfloat16, not topk"
            )
        return self


class TrainingSpec(Strict):
    batch_size: Count = 32
    """Private samples per local step."""
    public_batch_size: Count = 64
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
    duration: Positive = 600.0
    """Simulated seconds to run."""
    device: Literal["cpu", "cuda"] = "cpu"
    """Where tensors live: cpu or cuda."""
    engine: Literal["per_agent", "batched"] = "per_agent"
    """per_agent: each step runs when its event fires; batched: steps are deferred and run many
    agents at once (same results up to rounding)."""
    data: DataSpec = DataSpec()
    """Dataset, public fraction and partition."""
    agents: AgentsSpec = AgentsSpec()
    """How many agents, their models, speeds, groups and churn."""
    network: NetworkSpec = NetworkSpec()
    """Topology, links and their changes over time."""
    algorithm: AlgorithmSpec = AlgorithmSpec()
    """The learning algorithm and its settings."""
    training: TrainingSpec = TrainingSpec()
    """Local optimisation."""
    eval: EvalSpec = EvalSpec()
    """When to evaluate."""

    @pydantic.model_validator(mode="after")
    def _fits(self) -> Scenario:
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
            self.agents.per_agent(self.seed)
        except ValueError as e:
            raise ValueError(f"agents.speed: {e}") from None
        return self

    def resolved(self) -> dict[str, Any]:
        """Plain data with every default filled in: what ``scenario.yaml`` of a run holds."""
        return self.model_dump(mode="json")
