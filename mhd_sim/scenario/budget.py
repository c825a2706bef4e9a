"""What a run will need, estimated from its settings before anything is built: memory
(data, models, the caches of predictions each link fills, per-agent bookkeeping) and work
(local steps, evaluations, rounds, churn). A run that cannot fit this machine's memory, or
whose rates would keep the clock from moving (an evaluation every microsecond for a year),
is refused with one line and its figure, before set-up; ``--force`` runs it anyway.

The figures are estimates, good to a factor of about two: they are there to stop a run
that would exhaust the machine or never end, not to size a tight one.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from ..learning.data.datasets import describe
from ..learning.distillation.plan import room
from ..learning.models.backbones import footprint
from ..untrusted import read_text
from ..world.topology import EDGE_LIST_BYTES

MAX_EVALUATIONS = 100_000
MAX_ROUNDS = 1_000_000
MAX_CHURN_CHANGES = 10_000_000
MAX_STEPS = 2_000_000_000
PER_AGENT = {"full": 1_000_000, "timing_only": 20_000}  # Python objects, streams, allocator


@dataclass
class Estimate:
    """Bytes by what needs them, and the work a run will do."""

    memory: dict[str, float] = field(default_factory=dict)
    steps: float = 0.0

    @property
    def total(self) -> float:
        return sum(self.memory.values())


def machine_memory() -> int:
    """This machine's physical memory, in bytes."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def edges(topology: Any, n: int) -> float:
    """About how many links a topology spec makes among ``n`` agents."""
    kind = topology.kind
    if kind == "complete":
        return n * (n - 1) / 2
    if kind == "erdos_renyi":
        return topology.p * n * (n - 1) / 2
    if kind == "islands":
        size = n / max(1, topology.islands)
        return topology.islands * size * (size - 1) / 2 + topology.bridges * topology.islands
    if kind == "random_regular":
        return topology.degree * n / 2
    if kind == "small_world":
        return topology.k * n / 2
    if kind == "barabasi_albert":
        return topology.m * n
    if kind == "edges":
        try:
            return read_text(topology.path, "edge list", EDGE_LIST_BYTES).count("\n") + 1
        except ValueError:  # unreadable: building the topology says why, in one line
            return n
    return 2.0 * n  # ring, star, grid, torus: a few per agent


def _mean(spec: Any) -> float:
    """The mean of a number-or-distribution spec."""
    if spec.dist == "constant":
        return spec.value
    if spec.dist == "uniform":
        return (spec.low + spec.high) / 2
    if spec.dist == "lognormal":
        return spec.median * math.exp(min(spec.sigma, 10.0) ** 2 / 2)
    return spec.mean


def estimate(sc: Any, timing_only: bool = False) -> Estimate:
    """The memory and work of ``sc`` (a validated scenario's sections, before its cross-checks)."""
    n, net, algo, data = sc.agents.count, sc.network, sc.algorithm, sc.data
    samples, shape, classes = describe(data.dataset)
    classes = classes or 10
    public = (samples or 10_000) * 0.8 * data.public_fraction
    links = max([edges(net.topology, n), *(edges(e.topology, n) for e in _switches(net))])
    heads, sent = algo.model_heads(), algo.cached_heads()
    out = Estimate()
    named = [("agents.model", sc.agents.model)] + [
        (f"agents.groups.{k}.model", g.model) for k, g in enumerate(sc.agents.groups) if g.model
    ]
    models = [spec for _, spec in named]
    params, acts, emb_width, hidden = 0, 0, 0, algo.model_head_hidden()
    if shape is not None:
        for at, spec in named:
            try:
                p, a, embedding = footprint(spec, shape)
            except ValueError as e:  # a model that cannot read this dataset's inputs
                raise ValueError(f"{at}.kind: {spec.kind}: {e}") from None
            # and the heads: linear on the embedding, or each with a hidden layer of its own
            per_head = (embedding + 1) * hidden + (hidden + 1) * classes if hidden else (
                (embedding + 1) * classes)  # fmt: skip
            params = max(params, p + per_head * heads)
            acts = max(acts, a)
            if algo.embeds():  # the embeddings a message carries per sample
                emb_width = max(emb_width, (heads - 1) * hidden if hidden else embedding)
    batch = sc.training.batch_size + sc.training.public_batch_size
    speeds = [sc.agents.speed, *(g.speed for g in sc.agents.groups if g.speed is not None)]
    flops = 6.0 * batch * max(params, 1)  # a step's FLOPs, from below
    out.steps = n * sc.duration * max(map(_mean, speeds)) / flops
    if sent:  # a slot per neighbour: which message per sample, and (full) its predictions
        degree = max(1, round(2 * links / max(n, 1)))
        which = 4 * room(degree) / degree  # the table grows ahead of the slots
        per_entry = which if timing_only else which + sent * (classes * algo.value_bytes() + 4)
        if not timing_only:  # and the embeddings, in float32 (their times are the messages')
            per_entry += 4 * emb_width
        # and a time per message received, each a step's message reaching every neighbour
        # (of at most MAX_STEPS steps: a run with more is refused for its steps, not this)
        every = getattr(algo, "share_every", 1) or 1
        stamps = 8 * 2 * min(out.steps, MAX_STEPS) / every * degree
        out.memory["caches of peers' predictions"] = 2 * links * public * per_entry + stamps
        # each plan's walk through the public set (int64) and which samples it has (bool)
        out.memory["plans' public walks"] = n * public * 9
    out.memory["per-agent bookkeeping"] = n * PER_AGENT["timing_only" if timing_only else "full"]
    out.memory["links"] = 600.0 * links  # the graph's dictionaries
    # label mixes, histograms and per-class accuracies: a few [agents, classes] float64 tables
    out.memory["per-class tables"] = 8.0 * n * classes * (3 + heads)
    out.memory["data"] = (1 if timing_only else 3) * 4 * (samples or 0) * math.prod(shape or (1,))
    # weights, gradients, optimizer state: one model per agent, or per architecture (timing)
    out.memory["models"] = 16 * (len(models) if timing_only else n) * params
    out.memory["activations"] = 3 * 4 * batch * (acts + heads * classes)
    return out


def _switches(net: Any) -> list[Any]:
    return [e for e in net.schedule if e.kind == "switch"]


def human_bytes(x: float) -> str:
    """``2.5 GB``, ``830 kB``."""
    if x >= 1e15:
        return f"{x:.2g} bytes"
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if x >= size:
            return f"{x / size:,.1f} {unit}"
    return f"{x / 1e3:,.0f} kB"


def check(sc: Any, timing_only: bool = False) -> None:
    """Raise ValueError (one line: the field, the figure, the bound) for a run that cannot fit
    this machine or cannot progress."""
    evaluations = sc.duration / sc.eval.every
    if evaluations > MAX_EVALUATIONS:
        raise ValueError(
            f"eval.every: {sc.eval.every:g} s over {sc.duration:g} s is {evaluations:.3g} "
            f"evaluations; at most {MAX_EVALUATIONS:,} (raise eval.every or shorten duration)"
        )
    deadline = sc.algorithm.round_deadline()
    if deadline is not None and sc.duration / deadline > MAX_ROUNDS:
        raise ValueError(
            f"algorithm.deadline: {deadline:g} s over {sc.duration:g} s is up to "
            f"{sc.duration / deadline:.3g} rounds; at most {MAX_ROUNDS:,} (a round cannot be "
            "shorter than an upload: raise the deadline)"
        )
    churn = sc.agents.churn
    if churn is not None and churn.kind == "markov":
        changes = 2 * sc.agents.count * sc.duration / (churn.up_mean + churn.down_mean)
        if changes > MAX_CHURN_CHANGES:
            raise ValueError(
                f"agents.churn: up_mean {churn.up_mean:g} s and down_mean {churn.down_mean:g} s "
                f"make about {changes:.3g} changes; at most {MAX_CHURN_CHANGES:,}"
            )
    est = estimate(sc, timing_only)
    have = machine_memory()
    if est.total > have:
        name, most = max(est.memory.items(), key=lambda kv: kv[1])
        n = sc.agents.count
        agents = f"{n:,}" if n < 1e9 else f"{n:.3g}"  # the line stays short (at most ~180)
        mode = "even a timing-only run" if timing_only else "this run"
        raise ValueError(
            f"{mode} needs about {human_bytes(est.total)} of memory ({agents} agents; {name} "
            f"{human_bytes(most)}); this machine has {human_bytes(have)} (--force runs it anyway)"
        )
    if est.steps > MAX_STEPS:
        raise ValueError(
            f"agents.speed: about {est.steps:.3g} local steps in {sc.duration:g} s; at most "
            f"{MAX_STEPS:,} (lower the speed or the duration)"
        )
