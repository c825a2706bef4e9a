"""Who talks to whom: registered graph generators, each ``fn(n, rng, *, settings) -> nx.Graph``.

Nodes are the agents ``0..n-1``; an edge means the two agents exchange messages both ways.
Generators are pure functions of their arguments, seeded from the scenario's topology stream.
"""
from __future__ import annotations

from typing import Annotated

import networkx as nx
import numpy as np
import pydantic

from .registry import Registry, settings
from .seeds import stream

TOPOLOGIES = Registry("topology")
Probability = Annotated[float, pydantic.Field(ge=0, le=1)]


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31 - 1))


@TOPOLOGIES.register("complete")
def complete(n: int, rng: np.random.Generator) -> nx.Graph:
    """Everyone talks to everyone.

    >>> complete(4, None).number_of_edges()
    6
    """
    return nx.complete_graph(n)


@TOPOLOGIES.register("ring")
def ring(n: int, rng: np.random.Generator) -> nx.Graph:
    """Each agent talks to its two neighbours; knowledge needs up to n/2 hops.

    >>> sorted(ring(5, None).neighbors(0))
    [1, 4]
    """
    return nx.cycle_graph(n)


@TOPOLOGIES.register("star")
def star(n: int, rng: np.random.Generator, *, center: Annotated[int, pydantic.Field(ge=0)] = 0) -> nx.Graph:
    """One hub linked to every other agent.

    >>> star(4, None, center=2).degree(2)
    3
    """
    if center >= n:
        raise ValueError(f"center {center} is not an agent (0..{n - 1})")
    return nx.relabel_nodes(nx.star_graph(n - 1), {0: center, center: 0})


@TOPOLOGIES.register("islands")
def islands(n: int, rng: np.random.Generator, *, islands: Annotated[int, pydantic.Field(ge=1)] = 2,
            bridges: Annotated[int, pydantic.Field(ge=0)] = 1) -> nx.Graph:
    """``islands`` cliques of near-equal size; consecutive islands joined by ``bridges`` random edges.

    >>> g = islands(8, np.random.default_rng(0), islands=2, bridges=1)
    >>> g.number_of_edges()  # two 4-cliques (6 edges each) plus one bridge
    13
    """
    if islands > n:
        raise ValueError(f"{islands} islands need at least {islands} agents")
    groups = np.array_split(np.arange(n), islands)
    g = nx.Graph()
    g.add_nodes_from(range(n))
    for members in groups:
        g.add_edges_from((int(a), int(b)) for i, a in enumerate(members) for b in members[i + 1 :])
    for left, right in zip(groups, groups[1:]):  # a chain of islands
        for _ in range(bridges):
            g.add_edge(int(rng.choice(left)), int(rng.choice(right)))
    return g


@TOPOLOGIES.register("erdos_renyi")
def erdos_renyi(n: int, rng: np.random.Generator, *, p: Probability = 0.3) -> nx.Graph:
    """Each pair linked independently with probability ``p`` (may be disconnected)."""
    return nx.gnp_random_graph(n, p, seed=_seed(rng))


@TOPOLOGIES.register("random_regular")
def random_regular(n: int, rng: np.random.Generator, *, degree: Annotated[int, pydantic.Field(ge=0)] = 3
                   ) -> nx.Graph:
    """Every agent has exactly ``degree`` random neighbours (n·degree must be even)."""
    if degree >= n or (n * degree) % 2:
        raise ValueError(f"no {degree}-regular graph on {n} agents (need degree < n and n·degree even)")
    return nx.random_regular_graph(degree, n, seed=_seed(rng))


def build(spec: pydantic.BaseModel, agents: int, seed: int) -> nx.Graph:
    """The graph a scenario's ``network.topology`` spec names, from the scenario's topology stream."""
    return TOPOLOGIES.get(spec.kind)(agents, stream(seed, "topology"), **settings(spec))
