"""Each algorithm's settings: the scenario's ``algorithm`` section is the model of the
algorithm it names (``name``), so a setting of another algorithm is an error that names
both. They live here, apart from the learners, so that checking a scenario never imports
torch; each learner class points at its own (``Settings``)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import pydantic
from pydantic import Field

from ...registry import Settings
from ..distillation.names import AGGREGATIONS, CONFIDENCES, ENCODINGS, GATES
from ..seam import ENGINES, Capabilities

Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=1)]


class AlgorithmSettings(Settings):
    name: str
    """The learning algorithm; each has the settings listed under it."""
    declared: ClassVar[Capabilities] = Capabilities(("per_agent", "batched", "timing_only"))
    """What the algorithm can do (the engines, what its messages carry)."""

    @property
    def capabilities(self) -> Capabilities:
        """What the algorithm can do with these settings."""
        return self.declared

    def model_heads(self) -> int:
        """Heads of each agent's model."""
        return 1

    def model_head_hidden(self) -> int:
        """The width of each head's own hidden layer (0: linear heads on the backbone)."""
        return 0

    def cached_heads(self) -> int:
        """Heads of each peer whose predictions an agent caches per public sample (the
        memory estimate's caches; 0: it caches none)."""
        return 0

    def embeds(self) -> bool:
        """Messages carry embeddings too (embedding distillation)."""
        return False

    def round_deadline(self) -> float | None:
        """A round-based algorithm's longest round, seconds (None: it has no rounds)."""
        return None

    def rules(self) -> list[str]:
        """The teacher rules on (learning/distillation/abstain.py); none here."""
        return []


class WeightEncoding(AlgorithmSettings):
    declared: ClassVar[Capabilities] = Capabilities(messages="weights")
    encoding: Literal["float32", "float16", "bfloat16"] = "float16"
    """How the weights are encoded on the wire."""


class Sharing(AlgorithmSettings):
    share_every: Count = 5
    """Local steps between messages."""


class Distillation(Sharing):
    temperature: Annotated[float, Field(gt=0, le=100)] = 1.0
    """Distillation temperature τ."""
    distill_weight: NonNegative | list[NonNegative] = 1.0
    """ν: one weight for every distilling head, or one per head (head 0 first)."""
    aggregation: Literal[AGGREGATIONS] = "max_confidence"
    """How candidate teachers combine per sample: the most confident, the mean, the mean
    weighted by each one's largest probability, or the mean sharpened as softmax(mean /
    era_temperature) (DS-FL's entropy-reduction aggregation)."""
    era_temperature: Annotated[float, Field(gt=0, le=100)] = 0.1
    """entropy_reduction: the temperature T of softmax(mean / T) (DS-FL's 0.1; below 1
    lowers the entropy of the averaged predictions)."""
    confidence: Literal[CONFIDENCES] = "max_logit"
    """How max_confidence ranks candidates: the largest logit (the paper's), the largest
    probability (by its log-odds), the margin of the top probability over the second, minus
    the entropy, or the largest logit in standard deviations of the prediction's logits above
    their mean (a scale every architecture shares). Messages carry it, so rounding never makes
    ties; true ties are drawn at random."""
    teachers: Count | None = None
    """Per step, this many peers drawn at random among those whose predictions are cached
    are the candidates (the paper's random neighbours). Null: all of them."""
    teachers_drawn: Literal["per_step", "per_sample"] = "per_step"
    """teachers: the peers are drawn once per step for all its public samples, or per public
    sample among the peers with a prediction for it (the poster's "the most confident among
    randomly sampled neighbours")."""
    share_size: Count = 256
    """Public samples per message."""
    encoding: Literal[tuple(ENCODINGS)] = "float16"
    """How predictions are encoded on the wire."""
    topk: Annotated[int, Field(ge=1, le=255)] = 3
    """Probabilities kept per sample and head with encoding topk (at most the classes)."""
    embedding_weight: NonNegative = 0.0
    """Embedding distillation (the poster's "each auxiliary head also distils the embeddings
    of the others"): the weight of the mean squared error between an embedding and the mean of
    the peers' corresponding embeddings on the public batch: each auxiliary head's own (with
    head_hidden), else the backbone's, which every linear head reads. Messages carry them;
    peers whose embedding has another size are left out of it. 0: off, the default (the
    embedding makes a message up to 3.7 times larger: docs/method.md)."""
    head_hidden: Annotated[int, Field(ge=0, le=1024)] = 0
    """A hidden ReLU layer of this width in every head, whose output is the head's own
    embedding (0: linear heads on the backbone's embedding)."""
    max_staleness: Positive | None = None
    """Cached predictions older than this many seconds are not used."""
    gate: Literal[GATES] | None = None
    """A teacher answers only for public samples whose in-distribution score reaches the
    gate_quantile of its scores on its own held-back private samples; for the others it sends
    no prediction, and students fall back to the next candidate. The score: in_distribution,
    the largest probability; energy, the logsumexp of the logits (minus the free energy)."""
    gate_quantile: Annotated[float, Field(ge=0, lt=1)] = 0.05
    """gate: the share of its own held-back samples a teacher would reject."""
    calibrate: bool = False
    """Each teacher scales its logits by the temperature that fits its held-back private
    samples best (temperature scaling) before its confidence is computed."""
    held_back: Annotated[float, Field(gt=0, le=0.5)] = 0.1
    """gate, calibrate: the share of each agent's private samples held back (never trained
    on) to calibrate on, at most 256 samples."""

    declared: ClassVar[Capabilities] = Capabilities(ENGINES, "predictions")

    @property
    def capabilities(self) -> Capabilities:
        caps, rules = self.declared, self.rules()
        if rules:
            rules_on = " and ".join(rules)
            caps = caps.without("batched", f"algorithm {rules_on} (per_agent only so far)")
        return caps

    def rules(self) -> list[str]:
        return [name for name, on in (
            ("gate", self.gate is not None), ("calibrate", self.calibrate),
            ("confidence class_prior", self.confidence == "class_prior"),
        ) if on]  # fmt: skip

    def model_head_hidden(self) -> int:
        return self.head_hidden

    @pydantic.model_validator(mode="after")
    def _head_embeddings(self) -> Distillation:
        if self.embeds() and self.head_hidden and self.model_heads() < 2:
            raise ValueError(
                "embedding_weight > 0 with head_hidden distils the auxiliary heads' own "
                f"embeddings, and {self.name} has none (heads: 1); set head_hidden: 0 to "
                "distil the backbone's embedding"
            )
        return self

    def holds_back(self) -> bool:
        """Private samples are held back to calibrate on (the gate and calibration)."""
        return self.gate is not None or self.calibrate

    @pydantic.model_validator(mode="after")
    def _rules_rank(self) -> Distillation:
        used = self.rules()
        if used and self.aggregation != "max_confidence":
            raise ValueError(
                f"{' and '.join(used)} act on the confidence a teacher is chosen by: they need "
                f"aggregation max_confidence, not {self.aggregation}"
            )
        return self

    def cached_heads(self) -> int:
        return max(1, self.model_heads() - 1)

    def embeds(self) -> bool:
        return self.embedding_weight > 0

    def own_candidates(self) -> tuple[bool, bool]:
        """Whether the agent's own head m−1 is a candidate teacher for its head m, and whether
        the last head also learns from the peers' last heads (MHD's options)."""
        return False, False

    def value_bytes(self) -> int:
        """Bytes a cached probability takes (float16 and bfloat16 are kept as 2)."""
        return 2 if self.encoding in ("float16", "bfloat16") else 4


class IsolatedSettings(AlgorithmSettings):
    """No communication: each agent learns from its private data alone (the lower reference
    line)."""

    name: Literal["isolated"] = "isolated"


class CentralizedSettings(AlgorithmSettings):
    """One model trained on the union of all private data, with every agent's compute and no
    network (the upper reference line)."""

    name: Literal["centralized"] = "centralized"
    declared: ClassVar[Capabilities] = Capabilities(shares_model=True)


class GossipSettings(WeightEncoding, Sharing):
    """Decentralized weight averaging: the parameter vector is the message."""

    name: Literal["gossip"] = "gossip"


class FedAvgSettings(WeightEncoding):
    """Federated averaging through a server: clients upload their weights in rounds, the
    server sends back their average weighted by private data size."""

    name: Literal["fedavg"] = "fedavg"
    period: Count = 50
    """Local steps between a client's uploads."""
    deadline: Positive = 30.0
    """A round ends when every online client's weights are in, or this many seconds after it
    began."""
    server_bandwidth: Annotated[float, Field(ge=1)] | None = None
    """The server's uplink, bytes/s (null: network.bandwidth)."""

    def round_deadline(self) -> float | None:
        return self.deadline


class DistillSettings(Distillation):
    """Single-head distillation: the main head also distils from the peers' main heads."""

    name: Literal["distill"] = "distill"


class FedMDSettings(Distillation):
    """FedMD (Li & Wang, 2019, arXiv:1910.03581) without a server: each agent's one head learns
    its private labels and distils to the consensus of its neighbours' predictions on the
    public samples, their plain mean."""

    name: Literal["fedmd"] = "fedmd"
    aggregation: Literal["mean"] = "mean"
    """FedMD's consensus: the mean of the neighbours' predictions (fixed)."""


class DSFLSettings(Distillation):
    """DS-FL (Itahara et al., 2021, arXiv:2008.06180) without a server: as FedMD, with the
    neighbours' mean sharpened by entropy-reduction aggregation, softmax(mean / T)."""

    name: Literal["ds_fl"] = "ds_fl"
    aggregation: Literal["entropy_reduction"] = "entropy_reduction"
    """DS-FL's entropy-reduction aggregation (fixed; its T is era_temperature)."""


class MHDSettings(Distillation):
    """Multi-headed distillation (the paper's method): head m ≥ 1 distils from the heads m−1
    of its peers and its own."""

    name: Literal["mhd"] = "mhd"
    heads: Count = 3
    """Heads per model: the main head plus heads-1 auxiliary heads."""
    include_self: bool = True
    """The agent's own head m-1 is a candidate teacher for its head m, beside the peers' (the
    paper's method: head m keeps what head m-1 knew and adds one hop). false: peers only, so
    head m knows only the agents m, m-2, ... hops away."""
    last_head_loop: bool = False
    """The last head also learns from the peers' last heads."""

    def model_heads(self) -> int:
        return self.heads

    def own_candidates(self) -> tuple[bool, bool]:
        return self.include_self, self.last_head_loop

    @pydantic.model_validator(mode="after")
    def _weights_per_head(self) -> MHDSettings:
        w = self.distill_weight
        if isinstance(w, list) and len(w) != self.heads:
            raise ValueError(f"distill_weight lists {len(w)} weights for {self.heads} heads")
        return self


class HybridSettings(MHDSettings):
    """MHD whose main head also distils from the peers' main heads, as one-head distill's does
    (beyond the paper): the auxiliary heads chain as in MHD, and the main head, no longer a
    specialist, makes them better teachers."""

    name: Literal["hybrid"] = "hybrid"
    main_weight: Positive = 1.0
    """ν₀: the main head's distillation weight toward the peers' main heads (with a list of
    distill_weight, its first entry instead)."""

    @pydantic.model_validator(mode="after")
    def _main_head_distils(self) -> HybridSettings:
        w = self.distill_weight
        if isinstance(w, list) and w and w[0] <= 0:
            raise ValueError(
                "distill_weight[0] is 0: hybrid's main head distils (its first entry is ν₀); "
                "for MHD without it use name: mhd"
            )
        return self


def unsupported(engine: str, algo: AlgorithmSettings, training: pydantic.BaseModel) -> list[str]:
    """Why a scenario cannot use ``engine`` (empty: it can): what the algorithm's capabilities
    rule out, and the batched engine's own limit (its SGD). Checked when the scenario is, so
    that ``validate`` refuses what ``run`` would."""
    caps, out = algo.capabilities, []
    if engine in ENGINES and engine not in caps.engines:
        out.append(caps.why_not.get(engine) or f"algorithm {algo.name} (its capabilities: "
                   f"{', '.join(caps.engines)})")  # fmt: skip
    if engine == "batched" and training.optimizer != "sgd":
        out.append(f"optimizer {training.optimizer} (batched: sgd)")
    return out


def mixed_models(algo: AlgorithmSettings, models: list[pydantic.BaseModel]) -> str | None:
    """Why ``models`` (one per agent) cannot run ``algo``: an algorithm whose messages are
    weights needs one architecture. Checked when the scenario is; None: they can."""
    if not isinstance(algo, WeightEncoding) or len({repr(m) for m in models}) <= 1:
        return None

    def name(m: pydantic.BaseModel) -> str:
        settings = ", ".join(f"{k} {v}" for k, v in m.model_dump().items() if k != "kind")
        agents = [str(i) for i, x in enumerate(models) if x == m]
        return f"{m.kind} ({settings}) for agents {', '.join(agents)}"

    kinds = list(dict.fromkeys(name(m) for m in models))
    return (
        f"{algo.name} averages weights, so every agent needs the same model; this "
        f"population has {len(kinds)}: {'; '.join(kinds)}"
    )
