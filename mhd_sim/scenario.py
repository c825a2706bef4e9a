"""The scenario file: schema, defaults, ``--set`` overrides and one-line validation errors.

Pieces named by ``kind`` (dataset, partition, model, topology, latency ``dist``) take their
settings from the registered function's keyword parameters, so the schema grows with the
registries and never drifts from them.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from .algorithms import AGGREGATIONS, ALGORITHMS
from .data import DATASETS, PARTITIONS
from .messages import ENCODINGS
from .models import BACKBONES
from .seeds import DISTRIBUTIONS, sampler, stream
from .topology import TOPOLOGIES
from .topology import build as build_topology


TAGS = ("kind", "dist")  # the fields that name a registered piece


class ScenarioError(ValueError):
    """Bad input: one line per problem, each naming the field and the reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _spec(registry, number: str | None = None) -> Any:
    """A registry's settings union. ``dataset: mnist1d`` stands for ``{kind: mnist1d}``, and
    with ``number`` set, ``latency: 0.05`` for ``{dist: <number>, value: 0.05}``."""

    def expand(v: Any) -> Any:
        if number and isinstance(v, str):
            try:
                v = float(v)  # YAML reads `3.0e8` (no sign in the exponent) as a string
            except ValueError:
                pass
        if isinstance(v, str):
            return {registry.tag: v}
        if number and isinstance(v, (int, float)) and not isinstance(v, bool):
            return {registry.tag: number, "value": v}
        return v

    return Annotated[registry.union(), pydantic.BeforeValidator(expand)]


Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=1)]
Agent = Annotated[int, Field(ge=0)]
Distribution = _spec(DISTRIBUTIONS, number="constant")  # a number, or {dist: lognormal, median: ...}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class DataSpec(Strict):
    dataset: _spec(DATASETS) = "mnist1d"
    public_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.3
    partition: _spec(PARTITIONS) = "iid"
    samples_per_agent: Distribution | None = None  # cap per agent: a number, or drawn per agent

    def sizes(self, agents: int, seed: int) -> list[int] | None:
        """Each agent's private-set cap, drawn from its own stream (at least one sample)."""
        if self.samples_per_agent is None:
            return None
        draw = sampler(self.samples_per_agent)
        return [max(1, int(round(draw(stream(seed, "size", i))))) for i in range(agents)]


class MarkovChurn(Strict):
    """Two-state Markov churn: exponential up and down times with these means (seconds).

    Long-run fraction of time online: up_mean / (up_mean + down_mean).
    """

    kind: Literal["markov"] = "markov"
    up_mean: Positive
    down_mean: Positive
    agents: list[Agent] | None = None  # which agents churn (default: all)


class ScheduledChurn(Strict):
    """Explicit offline intervals per agent: ``{3: [[100, 160]], 5: [[0, 30], [200, 260]]}``."""

    kind: Literal["schedule"]
    offline: dict[Agent, list[tuple[NonNegative, NonNegative]]]

    @pydantic.field_validator("offline")
    @classmethod
    def _intervals(cls, v: dict[int, list[tuple[float, float]]]) -> dict[int, list[tuple[float, float]]]:
        for agent, spans in v.items():
            ordered = sorted(spans)
            for (a, b), nxt in zip(ordered, ordered[1:] + [(float("inf"), 0)]):
                if not a < b:
                    raise ValueError(f"agent {agent}: offline interval [{a:g}, {b:g}] must end after it starts")
                if b > nxt[0]:
                    raise ValueError(f"agent {agent}: offline intervals overlap at t={nxt[0]:g}")
        return {a: sorted(spans) for a, spans in v.items()}


def _churn_kind(v: Any) -> Any:
    return {"kind": "markov", **v} if isinstance(v, dict) and "kind" not in v else v


Churn = Annotated[Annotated[MarkovChurn | ScheduledChurn, Field(discriminator="kind")],
                  pydantic.BeforeValidator(_churn_kind)]


class Group(Strict):
    """Overrides for a named subset of agents (a straggler is just a slow group)."""

    name: str
    agents: list[Agent]
    speed: Distribution | None = None
    jitter: NonNegative | None = None
    model: _spec(BACKBONES) | None = None
    bandwidth: Positive | None = None  # this group's uplink, bytes/s
    downlink: Positive | None = None  # this group's downlink, bytes/s


class AgentSettings(Strict):
    """One agent's resolved settings, after its group overrides and speed draw."""

    group: str
    speed: float
    jitter: float
    model: Any
    bandwidth: float | None  # uplink; None = network.bandwidth
    downlink: float | None  # None = network.downlink


class AgentsSpec(Strict):
    count: Count = 8
    model: _spec(BACKBONES) = "mlp"
    speed: Distribution = 2.0e9  # FLOP/s, or a distribution each agent draws its speed from
    jitter: NonNegative = 0.1
    groups: list[Group] = []
    churn: Churn | None = None

    @pydantic.model_validator(mode="after")
    def _groups_exist(self) -> "AgentsSpec":
        seen: dict[int, str] = {}
        for g in self.groups:
            for a in g.agents:
                if a >= self.count:
                    raise ValueError(f"group {g.name!r} names agent {a}, but agents are 0..{self.count - 1}")
                if a in seen:
                    raise ValueError(f"agent {a} is in groups {seen[a]!r} and {g.name!r}")
                seen[a] = g.name
        churn = self.churn
        named = (churn.agents or []) if isinstance(churn, MarkovChurn) else list(churn.offline) if churn else []
        if any(a >= self.count for a in named):
            raise ValueError(f"churn names agent {max(named)}, but agents are 0..{self.count - 1}")
        return self

    def per_agent(self, seed: int) -> list[AgentSettings]:
        """Every agent's settings; speeds drawn from each agent's own stream."""
        group = {a: g for g in self.groups for a in g.agents}
        out = []
        for i in range(self.count):
            g = group.get(i)

            def pick(field: str) -> Any:
                value = getattr(g, field) if g is not None else None
                return value if value is not None else getattr(self, field, None)

            speed = sampler(pick("speed"))(stream(seed, "speed", i))
            if not speed > 0:
                raise ValueError(f"agent {i} drew a compute speed of {speed:g} FLOP/s; speeds must be > 0")
            out.append(AgentSettings(group=g.name if g else "default", speed=speed, jitter=pick("jitter"),
                                     model=pick("model"), bandwidth=pick("bandwidth"), downlink=pick("downlink")))
        return out


Loss = Annotated[float, Field(ge=0, lt=1)]
Pair = tuple[Agent, Agent]


class LinkSet(Strict):
    """A set of links: explicit ``links: [[a, b], ...]`` or every pair ``between: [[A...], [B...]]``."""

    links: list[Pair] = []
    between: tuple[list[Agent], list[Agent]] | None = None

    def pairs(self) -> list[tuple[int, int]]:
        out = {tuple(sorted(p)) for p in self.links}
        if self.between is not None:
            out |= {tuple(sorted((a, b))) for a in self.between[0] for b in self.between[1] if a != b}
        return sorted(out)

    def agents(self) -> set[int]:
        return {a for p in self.links for a in p} | {a for side in (self.between or ()) for a in side}


class LinkOverride(LinkSet):
    """Own latency, bandwidth cap or loss for some links (a slow wide-area hop between islands)."""

    latency: Distribution | None = None
    bandwidth: Positive | None = None
    loss: Loss | None = None


class LinkFailure(LinkSet):
    """Links down from ``at`` until ``until`` (never back if null)."""

    kind: Literal["link_down"]
    at: NonNegative
    until: NonNegative | None = None


class Partition(Strict):
    """Agents split into groups that cannot reach each other from ``at`` until ``until``.

    Agents not listed form one more group.
    """

    kind: Literal["partition"]
    at: NonNegative
    until: NonNegative | None = None
    groups: list[list[Agent]]

    def labels(self, agents: int) -> list[int]:
        label = [len(self.groups)] * agents
        for k, members in enumerate(self.groups):
            for a in members:
                label[a] = k
        return label

    def agents(self) -> set[int]:
        return {a for g in self.groups for a in g}


class Switch(Strict):
    """The whole topology replaced at ``at``."""

    kind: Literal["switch"]
    at: NonNegative
    topology: _spec(TOPOLOGIES)

    def agents(self) -> set[int]:
        return set()


NetworkEvent = Annotated[LinkFailure | Partition | Switch, Field(discriminator="kind")]


class NetworkSpec(Strict):
    topology: _spec(TOPOLOGIES) = "ring"
    latency: Distribution = 0.05
    bandwidth: Positive = 1.0e6  # each agent's uplink, bytes/s
    downlink: Positive | None = None  # each agent's downlink, bytes/s (None: no downlink queue)
    loss: Loss = 0.0
    fanout: Count | None = None  # each share goes to this many neighbours drawn at random (None: all)
    links: list[LinkOverride] = []
    schedule: list[NetworkEvent] = []

    @pydantic.model_validator(mode="after")
    def _windows(self) -> "NetworkSpec":
        for k, ev in enumerate(self.schedule):
            until = getattr(ev, "until", None)
            if until is not None and until <= ev.at:
                raise ValueError(f"schedule.{k}: until ({until:g}) must be after at ({ev.at:g})")
        return self


class AlgorithmSpec(Strict):
    name: str = "mhd"
    heads: Count = 3
    temperature: Positive = 1.0
    distill_weight: NonNegative | list[NonNegative] = 1.0
    aggregation: Literal[AGGREGATIONS] = "max_confidence"
    include_self: bool = False
    last_head_loop: bool = False
    share_every: Count = 5
    share_size: Count = 256
    encoding: Literal[tuple(ENCODINGS)] = "float16"
    topk: Count = 3  # probabilities kept per sample and head with encoding topk
    embedding_weight: NonNegative = 0.0  # weight of MSE to the peers' mean embedding on public samples
    max_staleness: Positive | None = None  # cached predictions older than this (s) are not used

    @pydantic.field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in ALGORITHMS.names():
            raise ValueError(f"unknown algorithm {v!r}; choose from {', '.join(ALGORITHMS.names())}")
        return v

    @pydantic.model_validator(mode="after")
    def _weights_per_head(self) -> "AlgorithmSpec":
        w = self.distill_weight
        if isinstance(w, list) and self.name == "mhd" and len(w) != self.heads:
            raise ValueError(f"distill_weight lists {len(w)} weights for {self.heads} heads")
        if self.name == "gossip" and self.encoding == "topk":
            raise ValueError("gossip sends weights: encoding must be float32, float16 or bfloat16, not topk")
        return self


class TrainingSpec(Strict):
    batch_size: Count = 32
    public_batch_size: Count = 64
    lr: Positive = 0.05
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.0
    weight_decay: NonNegative = 0.0
    clip_grad_norm: Positive | None = None  # clip each step's gradient to this global norm


class EvalSpec(Strict):
    every: Positive = 30.0


class Scenario(Strict):
    name: str = "scenario"
    seed: Annotated[int, Field(ge=0)] = 0
    duration: Positive = 600.0
    device: Literal["cpu", "cuda"] = "cpu"
    # per_agent: each agent's step runs when its event fires; batched: steps are deferred and
    # run many agents at a time (mhd, distill, isolated with sgd; equal up to rounding)
    engine: Literal["per_agent", "batched"] = "per_agent"
    data: DataSpec = DataSpec()
    agents: AgentsSpec = AgentsSpec()
    network: NetworkSpec = NetworkSpec()
    algorithm: AlgorithmSpec = AlgorithmSpec()
    training: TrainingSpec = TrainingSpec()
    eval: EvalSpec = EvalSpec()

    @pydantic.model_validator(mode="after")
    def _fits(self) -> "Scenario":
        n, net = self.agents.count, self.network
        tops = [("network.topology", net.topology)]
        tops += [(f"network.schedule.{k}.topology", e.topology) for k, e in enumerate(net.schedule)
                 if isinstance(e, Switch)]
        for where, spec in tops:
            try:
                build_topology(spec, n, self.seed)
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from None
        for where, items in (("network.links", net.links), ("network.schedule", net.schedule)):
            for k, item in enumerate(items):
                bad = sorted(a for a in item.agents() if a >= n)
                if bad:
                    raise ValueError(f"{where}.{k}: agent {bad[-1]} does not exist (agents are 0..{n - 1})")
        try:
            self.agents.per_agent(self.seed)
        except ValueError as e:
            raise ValueError(f"agents.speed: {e}") from None
        return self

    def resolved(self) -> dict[str, Any]:
        """Plain data with every default filled in: what ``scenario.yaml`` of a run holds."""
        return self.model_dump(mode="json")


# --- loading, overrides and errors ---------------------------------------------------------


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` assignments (value parsed as YAML) to a raw scenario dict.

    Setting a ``kind`` (or ``dist``) replaces that piece's settings with the new kind's
    defaults, so ``--set network.topology.kind=complete`` works whatever the file had.
    Kinds are applied first, then everything else, in the order given.
    """
    raw = copy.deepcopy(raw)
    pairs = []
    for item in overrides:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ScenarioError([f"--set {item!r}: expected KEY=VALUE, for example network.loss=0.1"])
        pairs.append((key.strip().split("."), _parse_value(value)))
    pairs.sort(key=lambda kv: kv[0][-1] not in TAGS)
    for path, value in pairs:
        node: Any = raw
        for i, part in enumerate(path[:-1]):
            where = ".".join(path[: i + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ScenarioError([f"{where}: no list item {part!r}"])
                node = node[int(part)]
                continue
            child = node.get(part)
            if isinstance(child, str) and path[i + 1] in TAGS:
                child = {path[i + 1]: child}
            if child is None:
                child = {}
            if not isinstance(child, (dict, list)):
                raise ScenarioError([f"{where}: is {child!r}, not a section with settings"])
            node[part] = child
            node = child
        last = path[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise ScenarioError([f"{'.'.join(path)}: no list item {last!r}"])
            node[int(last)] = value
        elif last in TAGS:
            node.clear()
            node[last] = value
        else:
            node[last] = value
    return raw


def _walk(raw: Any, loc: tuple) -> tuple[str, ...]:
    """The user's path of a pydantic error: drop the union tags pydantic inserts into it."""
    out, node = [], raw
    for part in loc:
        if isinstance(node, (str, int, float)) and isinstance(part, str):
            node = {}  # shorthand (`ring`, `0.05`) expanded to a spec: this part is its tag
            continue
        if isinstance(node, dict) and part not in node and part in (node.get(t) for t in TAGS):
            continue  # `{kind: ring}` shows up as a path step 'ring'
        out.append(str(part))
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(out)


_MESSAGES = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "extra_forbidden": "unknown key",
    "missing": "required",
    "literal_error": "must be one of {expected}",
}


def _describe(err: dict[str, Any]) -> str:
    kind, ctx = err["type"], err.get("ctx", {})
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = ctx.get("expected_tags", "")
        return f"unknown kind {ctx.get('tag')!r}; choose from {tags.replace(chr(39), '')}" if kind.endswith(
            "invalid") else f"needs a kind, one of {tags.replace(chr(39), '')}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    ctx = {k: f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else v for k, v in ctx.items()}
    text = _MESSAGES[kind].format(**ctx) if kind in _MESSAGES else err["msg"][0].lower() + err["msg"][1:]
    if kind not in ("extra_forbidden", "missing"):
        text += f", got {err['input']!r}"
    return text


def validate(raw: Any) -> Scenario:
    """Validate raw scenario data; raise :class:`ScenarioError` listing every problem."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ScenarioError([f"scenario: expected a mapping of settings, got {type(raw).__name__}"])
    try:
        return Scenario.model_validate(raw)
    except pydantic.ValidationError as e:
        problems = []
        for err in e.errors(include_url=False):
            path = ".".join(_walk(raw, err["loc"]))
            problems.append(f"{path}: {_describe(err)}" if path else _describe(err))
        raise ScenarioError(problems) from None


def load(path: str | Path, overrides: list[str] = (), seed: int | None = None) -> Scenario:
    """Read a scenario file, apply ``--set`` overrides and ``--seed``, and validate."""
    path = Path(path)
    if not path.is_file():
        raise ScenarioError([f"{path}: no such scenario file"])
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ScenarioError([f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}"]) from None
    raw = raw if raw is not None else {}
    if not isinstance(raw, dict):
        raise ScenarioError([f"{path}: expected a mapping of settings at the top level"])
    raw = apply_overrides(raw, list(overrides))
    if seed is not None:
        raw["seed"] = seed
    return validate(raw)
