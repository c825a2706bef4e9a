"""Who talks to whom: registered graph generators, each ``fn(n, rng, *, settings) -> nx.Graph``.

Nodes are the agents ``0..n-1``; an edge means the two agents exchange messages both ways.
Generators are pure functions of their arguments, seeded from the scenario's topology stream.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import networkx as nx
import numpy as np
import pydantic

from ..registry import Registry, settings
from ..seeds import stream
from ..untrusted import UserPath, read_text

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
def star(
    n: int, rng: np.random.Generator, *, center: Annotated[int, pydantic.Field(ge=0)] = 0
) -> nx.Graph:
    """One hub linked to every other agent.

    >>> star(4, None, center=2).degree(2)
    3
    """
    if center >= n:
        raise ValueError(f"center {center} is not an agent (0..{n - 1})")
    return nx.relabel_nodes(nx.star_graph(n - 1), {0: center, center: 0})


@TOPOLOGIES.register("islands")
def islands(
    n: int,
    rng: np.random.Generator,
    *,
    islands: Annotated[int, pydantic.Field(ge=1)] = 2,
    bridges: Annotated[int, pydantic.Field(ge=0)] = 1,
) -> nx.Graph:
    """``islands`` cliques of near-equal size; consecutive ones joined by ``bridges`` random edges.

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
def random_regular(
    n: int, rng: np.random.Generator, *, degree: Annotated[int, pydantic.Field(ge=0)] = 3
) -> nx.Graph:
    """Every agent has exactly ``degree`` random neighbours (n·degree must be even)."""
    if degree >= n or (n * degree) % 2:
        raise ValueError(
            f"no {degree}-regular graph on {n} agents (need degree < n and n·degree even)"
        )
    return nx.random_regular_graph(degree, n, seed=_seed(rng))


def _grid_shape(n: int, rows: int | None) -> tuple[int, int]:
    if rows is None:  # the most square factorisation
        rows = max(r for r in range(1, int(n**0.5) + 1) if n % r == 0)
    if n % rows:
        raise ValueError(f"{n} agents do not fill a grid with {rows} rows")
    return rows, n // rows


@TOPOLOGIES.register("grid")
def grid(
    n: int,
    rng: np.random.Generator,
    *,
    rows: Annotated[int, pydantic.Field(ge=1)] | None = None,
    periodic: bool = False,
) -> nx.Graph:
    """A rows × (n/rows) lattice, agents numbered row by row; ``periodic`` wraps it into a torus.

    >>> g = grid(12, None, rows=3)
    >>> g.number_of_edges(), sorted(g.neighbors(5))
    (17, [1, 4, 6, 9])
    """
    r, c = _grid_shape(n, rows)
    g = nx.grid_2d_graph(r, c, periodic=periodic)
    return nx.relabel_nodes(g, {(i, j): i * c + j for i, j in g.nodes})


@TOPOLOGIES.register("torus")
def torus(
    n: int, rng: np.random.Generator, *, rows: Annotated[int, pydantic.Field(ge=1)] | None = None
) -> nx.Graph:
    """A grid whose edges wrap around: every agent has four neighbours (rows, columns ≥ 3).

    >>> sorted(d for _, d in torus(16, None).degree()) == [4] * 16
    True
    """
    return grid(n, rng, rows=rows, periodic=True)


@TOPOLOGIES.register("small_world")
def small_world(
    n: int,
    rng: np.random.Generator,
    *,
    k: Annotated[int, pydantic.Field(ge=2)] = 4,
    p: Probability = 0.1,
) -> nx.Graph:
    """Watts–Strogatz: a ring where each agent knows its k nearest, each edge rewired with
    probability p (drawn until connected): short paths with mostly local links.

    >>> small_world(10, np.random.default_rng(0), k=4, p=0.0).number_of_edges()
    20
    """
    if k >= n:
        raise ValueError(f"small_world: k={k} needs more than {k} agents")
    return nx.connected_watts_strogatz_graph(n, k, p, tries=1000, seed=_seed(rng))


@TOPOLOGIES.register("barabasi_albert")
def barabasi_albert(
    n: int, rng: np.random.Generator, *, m: Annotated[int, pydantic.Field(ge=1)] = 2
) -> nx.Graph:
    """Preferential attachment: each new agent links to m existing ones, so a few hubs emerge.

    >>> barabasi_albert(10, np.random.default_rng(0), m=2).number_of_edges()
    16
    """
    if m >= n:
        raise ValueError(f"barabasi_albert: m={m} needs more than {m} agents")
    return nx.barabasi_albert_graph(n, m, seed=_seed(rng))


def _edge_file(path: Path) -> Path:
    if not Path(path).is_file():
        raise ValueError(
            f"no file at '{path}': expected an edge list, one 'a b' pair of agent numbers per line"
        )
    return Path(path)


EDGE_LIST_BYTES = 64 << 20  # about 5 million links: more than any run here can hold


@TOPOLOGIES.register("edges")
def edges(
    n: int,
    rng: np.random.Generator,
    *,
    path: Annotated[UserPath, pydantic.AfterValidator(_edge_file)],
) -> nx.Graph:
    """Your own graph: a text file with one edge ``a b`` per line (``#`` starts a comment).

    Agents missing from the file have no links; a run's ``topology.edges`` is such a file.
    """
    g = nx.Graph()
    g.add_nodes_from(range(n))
    for number, line in enumerate(read_text(path, "edge list", EDGE_LIST_BYTES).splitlines(), 1):
        fields = line.split("#")[0].split()
        if not fields:
            continue
        try:
            a, b = int(fields[0]), int(fields[1])
        except (ValueError, IndexError):
            raise ValueError(
                f"{path}, line {number}: expected two agent numbers 'a b', got {line.strip()!r}"
            ) from None
        if not (0 <= a < n and 0 <= b < n) or a == b:
            raise ValueError(
                f"{path}, line {number}: edge {a} {b} is not between two of the agents 0..{n - 1}"
            )
        g.add_edge(a, b)
    return g


def build(spec: pydantic.BaseModel, agents: int, seed: int, *key: str | int) -> nx.Graph:
    """The graph a topology spec names, drawn from the scenario's topology stream (plus ``key``,
    so that a switch to a second random graph of the same kind draws a different one)."""
    return TOPOLOGIES.get(spec.kind)(agents, stream(seed, "topology", *key), **settings(spec))


def edge_list(graph: nx.Graph) -> str:
    """A graph as the text the ``edges`` topology reads back.

    >>> print(edge_list(ring(3, None)), end="")
    # 3 agents, 3 links
    0 1
    0 2
    1 2
    """
    lines = [f"# {graph.number_of_nodes()} agents, {graph.number_of_edges()} links"]
    lines += [f"{a} {b}" for a, b in sorted(tuple(sorted(e)) for e in graph.edges)]
    return "\n".join(lines) + "\n"
