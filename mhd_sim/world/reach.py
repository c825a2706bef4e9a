"""How far knowledge has travelled: each head's accuracy on the data of the agents at each
hop distance, the paper's topology view (``reach.csv``).

The accuracy of agent i's head on agent j's data is Σ_c π_j(c)·acc_c (exact, from the
head's per-class accuracy on the global test set); for a hop distance d it is taken on the
mixture of the label distributions of the agents d hops from i in the topology as it is at
that moment (d = 0: its own data; −1: agents it cannot reach).
"""

from __future__ import annotations

from collections.abc import Iterator

import networkx as nx
import numpy as np
from scipy.sparse.csgraph import shortest_path

UNREACHABLE = -1


def hops(graph: nx.Graph, agents: int) -> np.ndarray:
    """Hop distances [agents, agents] between all pairs; −1 where there is no path.

    >>> hops(nx.path_graph(3), 4).tolist()
    [[0, 1, 2, -1], [1, 0, 1, -1], [2, 1, 0, -1], [-1, -1, -1, 0]]
    """
    g = nx.Graph()
    g.add_nodes_from(range(agents))
    g.add_edges_from(graph.edges)  # nodes past the agents (a server) relay, and are left out
    nodes = range(max(agents, max(g.nodes, default=-1) + 1))
    matrix = nx.to_scipy_sparse_array(g, nodelist=nodes, format="csr")
    dist = shortest_path(matrix, unweighted=True, directed=False)[:agents, :agents]
    return np.where(np.isinf(dist), UNREACHABLE, dist).astype(np.int64)


def rows(
    time: float, distances: np.ndarray, per_class: list[np.ndarray], label_dist: np.ndarray
) -> Iterator[tuple[float, int, int, int, float]]:
    """``reach.csv`` rows ``(time, agent, head, hops, acc)`` for one evaluation: per agent,
    head and hop distance present in its row of ``distances``; ``per_class`` holds each
    agent's [heads, classes] accuracies, ``label_dist`` the agents' [agents, classes] mixes."""
    for i, acc_c in enumerate(per_class):
        row = distances[i]
        for d in np.unique(row):
            mix = label_dist[row == d].mean(0)  # the label mix of the agents d hops away
            for h, acc in enumerate((acc_c @ mix).tolist()):
                yield time, i, h, int(d), acc
