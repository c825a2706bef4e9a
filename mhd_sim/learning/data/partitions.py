"""How a dataset is split into a public pool (labels hidden) and private agent shards.

Every partition is a registered function ``fn(labels, agents, classes, rng, *, settings)``
returning one index array per agent, drawing only from the generator it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import pydantic

from ...registry import Registry, settings
from ...seeds import stream
from ...wording import id_ranges
from .datasets import DATASETS, Dataset

PARTITIONS = Registry("partition")


@dataclass(frozen=True)
class Split:
    """Which training samples are public (labels hidden) and which belong to each agent."""

    public: np.ndarray
    private: list[np.ndarray]

    def label_distribution(self, labels: np.ndarray, classes: int) -> np.ndarray:
        """π_i(c): each agent's private label frequencies, shape [agents, classes]."""
        counts = np.stack([np.bincount(labels[p], minlength=classes) for p in self.private])
        return counts / np.maximum(counts.sum(1, keepdims=True), 1)


@PARTITIONS.register("iid")
def iid(
    labels: np.ndarray, agents: int, classes: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Equal random shards."""
    return [np.sort(p) for p in np.array_split(rng.permutation(len(labels)), agents)]


def primary_classes(agent: int, classes: int, per_agent: int) -> np.ndarray:
    """C_i: consecutive classes starting at agent·k, wrapping, so that all classes are covered.

    >>> primary_classes(3, 10, 2).tolist()
    [6, 7]
    """
    return (agent * per_agent + np.arange(per_agent)) % classes


def _placement(v: object) -> object:
    """One line for a wrong placement, naming the agent and the class."""
    if isinstance(v, str) and v not in ("consecutive", "random"):
        raise ValueError(f"must be consecutive, random or one list of classes per agent, got {v!r}")
    for i, own in enumerate(v if isinstance(v, list) else []):
        if not isinstance(own, list):
            raise ValueError(f"agent {i}: expected a list of classes, got {own!r}")
        for c in own:
            if not isinstance(c, int) or isinstance(c, bool) or c < 0:
                raise ValueError(f"agent {i}: {c!r} is not a class (0, 1, 2, ...)")
    return v


Placement = Annotated[
    Literal["consecutive", "random"] | list[list[Annotated[int, pydantic.Field(ge=0)]]],
    pydantic.BeforeValidator(_placement),
]


def check_placement(placement: Placement, agents: int, classes: int | None) -> None:
    """An explicit placement has one non-empty list of distinct classes per agent, each class
    a class of the dataset (``classes``: None when only loading the data tells)."""
    if isinstance(placement, str):
        return
    if len(placement) != agents:
        raise ValueError(
            f"placement lists the classes of {len(placement)} agents; there are {agents}"
        )
    for i, own in enumerate(placement):
        if not own:
            raise ValueError(f"placement: agent {i} has no classes")
        seen = set()
        for c in own:
            if classes is not None and c >= classes:
                raise ValueError(
                    f"placement: agent {i} has class {c}, but the dataset's classes are "
                    f"0..{classes - 1}"
                )
            if c in seen:
                raise ValueError(f"placement: agent {i} lists class {c} twice")
            seen.add(c)


def placed_classes(
    placement: Placement, agents: int, classes: int, per_agent: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """C_i of every agent: ``consecutive`` blocks (:func:`primary_classes`), ``random`` (each
    agent draws its own from a stream of its own, spawned from ``rng``), or the lists given.

    >>> [c.tolist() for c in placed_classes([[0, 3], [1]], 2, 4, 2, None)]
    [[0, 3], [1]]
    """
    check_placement(placement, agents, classes)
    if placement == "consecutive":
        return [primary_classes(i, classes, per_agent) for i in range(agents)]
    if placement == "random":
        streams = rng.bit_generator.seed_seq.spawn(agents)
        return [
            np.sort(np.random.default_rng(s).choice(classes, per_agent, replace=False))
            for s in streams
        ]
    return [np.array(own, dtype=np.int64) for own in placement]


@PARTITIONS.register("label_skew")
def label_skew(
    labels: np.ndarray,
    agents: int,
    classes: int,
    rng: np.random.Generator,
    *,
    skew: Annotated[float, pydantic.Field(ge=0, le=1)] = 0.9,
    classes_per_agent: Annotated[int, pydantic.Field(ge=1)] = 2,
    placement: Placement = "consecutive",
) -> list[np.ndarray]:
    """Agent i draws label c with probability s·1[c∈C_i]/|C_i| + (1−s)/C (s=0 iid, s=1 disjoint).

    C_i, its main classes (``placement``): ``consecutive`` blocks of ``classes_per_agent``
    starting at i·k, ``random`` (``classes_per_agent`` drawn per agent), or explicit lists, one
    per agent (``[[0, 1], [2, 3], ...]``; then ``classes_per_agent`` is not used)."""
    k = min(classes_per_agent, classes)
    target = np.full((agents, classes), (1 - skew) / classes)
    for i, own in enumerate(placed_classes(placement, agents, classes, k, rng)):
        target[i, own] += skew / len(own)
    by_class = [rng.permutation(np.flatnonzero(labels == c)) for c in range(classes)]
    demand = target * (len(labels) // agents)
    supply = np.array([len(b) for b in by_class], dtype=float)
    demand *= np.minimum(1.0, supply / np.maximum(demand.sum(0), 1e-12))  # scale scarce classes
    counts = np.floor(demand).astype(int)
    shards: list[list[np.ndarray]] = [[] for _ in range(agents)]
    for c in range(classes):
        bounds = np.concatenate([[0], np.cumsum(counts[:, c])])
        for i in range(agents):
            shards[i].append(by_class[c][bounds[i] : bounds[i + 1]])
    return [np.sort(np.concatenate(s)) for s in shards]


@PARTITIONS.register("dirichlet")
def dirichlet(
    labels: np.ndarray,
    agents: int,
    classes: int,
    rng: np.random.Generator,
    *,
    alpha: Annotated[float, pydantic.Field(gt=0)] = 0.5,
) -> list[np.ndarray]:
    """Each class is split among agents in proportions drawn from Dirichlet(α); small α = skewed."""
    shards: list[list[np.ndarray]] = [[] for _ in range(agents)]
    for c in range(classes):
        idx = rng.permutation(np.flatnonzero(labels == c))
        cuts = (np.cumsum(rng.dirichlet(np.full(agents, alpha)))[:-1] * len(idx)).astype(int)
        for i, part in enumerate(np.split(idx, cuts)):
            shards[i].append(part)
    return [np.sort(np.concatenate(s)) for s in shards]


@PARTITIONS.register("shards")
def shards(
    labels: np.ndarray,
    agents: int,
    classes: int,
    rng: np.random.Generator,
    *,
    shards_per_agent: Annotated[int, pydantic.Field(ge=1)] = 2,
) -> list[np.ndarray]:
    """McMahan et al.'s pathological non-iid split: sort by label, cut into equal shards,
    give each agent ``shards_per_agent`` of them at random (so about that many classes each)."""
    order = np.argsort(labels, kind="stable")
    pieces = np.array_split(order, agents * shards_per_agent)
    deal = rng.permutation(len(pieces)).reshape(agents, shards_per_agent)
    return [np.sort(np.concatenate([pieces[k] for k in row])) for row in deal]


def split(
    dataset: Dataset,
    agents: int,
    public_fraction: float,
    partition: pydantic.BaseModel,
    rng: np.random.Generator,
    samples_per_agent: list[int] | None = None,
) -> Split:
    """Take the public pool off the training set, then partition the rest among agents.

    ``samples_per_agent`` caps each agent's private set (a seeded random subset of its shard).
    Private sets are disjoint from the public pool and from each other by construction.
    """

    order = rng.permutation(len(dataset.y_train))
    n_public = int(round(len(order) * public_fraction))
    public, pool = np.sort(order[:n_public]), np.sort(order[n_public:])
    fn = PARTITIONS.get(partition.kind)
    parts = fn(dataset.y_train[pool], agents, dataset.classes, rng, **settings(partition))
    private = []
    for i, s in enumerate(parts):
        cap = samples_per_agent[i] if samples_per_agent is not None else len(s)
        if len(s) > cap:
            s = np.sort(rng.choice(s, cap, replace=False))
        private.append(pool[s])
    return Split(public, private)


def load(
    data: pydantic.BaseModel, agents: int, seed: int, allow_empty: bool = False
) -> tuple[Dataset, Split]:
    """A scenario's dataset and its split, each from its own stream of the scenario seed.
    Agents without private samples are refused unless ``allow_empty`` (a timing-only preview,
    which trains nothing)."""
    dataset = DATASETS.get(data.dataset.kind)(stream(seed, "dataset"), **settings(data.dataset))
    parts = split(
        dataset,
        agents,
        data.public_fraction,
        data.partition,
        stream(seed, "partition"),
        data.sizes(agents, seed),
    )
    empty = [i for i, p in enumerate(parts.private) if len(p) == 0]
    if empty and not allow_empty:
        raise ValueError(
            f"data.partition: {len(empty):,} of {agents:,} agents get no private samples "
            f"(agents {id_ranges(empty)}); use fewer agents or a milder partition"
        )
    return dataset, parts


def histogram(dataset: Dataset, parts: Split) -> np.ndarray:
    """Private label counts, [agents, classes]."""
    return np.stack(
        [np.bincount(dataset.y_train[p], minlength=dataset.classes) for p in parts.private]
    )
