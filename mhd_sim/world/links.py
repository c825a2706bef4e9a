"""Which links are up: the current graph minus failed links and cross-partition pairs."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import networkx as nx


def _pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


Change = tuple[list[tuple[int, int]], list[tuple[int, int]]]  # links that went down, came up


class Links:
    """Which links are up: the current graph minus failed links and cross-partition pairs.

    Remembers when each link last went down, so a message that was in flight across a cut
    is dropped even if the link is back by the time it would arrive.
    """

    def __init__(self, graph: nx.Graph) -> None:
        self.graph = graph
        self.failed: Counter[tuple[int, int]] = Counter()  # overlapping failures stack
        self.partitions: dict[int, list[int]] = {}  # active partition id -> group label per agent
        self.cut_at: dict[tuple[int, int], float] = {}  # when a link last went down
        self._neighbors: dict[int, list[int]] = {}
        self._up: set[tuple[int, int]] | None = None  # (a, b) and (b, a) of every link up now
        self.version = 0  # counts changes: what was computed from the links up may be stale

    def up(self, a: int, b: int) -> bool:
        if not self.graph.has_edge(a, b):
            return False
        if self.failed and self.failed[_pair(a, b)]:
            return False
        return not self.partitions or all(lab[a] == lab[b] for lab in self.partitions.values())

    def up_since(self, a: int, b: int, since: float) -> bool:
        """Up now, and not cut at any moment after ``since`` (asked for every message: the
        links up now are kept in a set of both directions until the next change)."""
        if self._up is None:
            self._up = {e for a_, b_ in self.edges_up() for e in ((a_, b_), (b_, a_))}
        return (a, b) in self._up and (
            not self.cut_at or self.cut_at.get(_pair(a, b), -math.inf) <= since
        )

    def neighbors(self, agent: int) -> list[int]:
        """The agents ``agent`` can reach now (cached until the next change)."""
        if agent not in self._neighbors:
            self._neighbors[agent] = [
                j for j in sorted(self.graph.neighbors(agent)) if self.up(agent, j)
            ]
        return self._neighbors[agent]

    def edges_up(self) -> set[tuple[int, int]]:
        return {_pair(a, b) for a, b in self.graph.edges if self.up(a, b)}

    def change(self, now: float, mutate: Callable[[], None]) -> Change:
        """Apply ``mutate``; return the graph edges that went down and those that came up."""
        before = self.edges_up()
        mutate()
        self.version += 1
        self._neighbors.clear()
        self._up = None
        after = self.edges_up()
        for p in before - after:
            self.cut_at[p] = now
        return sorted(before - after), sorted(after - before)

    def fail(self, pairs: list[tuple[int, int]], now: float) -> Change:
        return self.change(now, lambda: self.failed.update(_pair(*p) for p in pairs))

    def restore(self, pairs: list[tuple[int, int]], now: float) -> Change:
        def mutate() -> None:
            self.failed.subtract(_pair(*p) for p in pairs)
            self.failed = +self.failed  # drop the zeros: no failures left means an empty counter

        return self.change(now, mutate)

    def partition(self, key: int, labels: list[int], now: float) -> Change:
        return self.change(now, lambda: self.partitions.__setitem__(key, labels))

    def heal(self, key: int, now: float) -> Change:
        return self.change(now, lambda: self.partitions.pop(key))

    def switch(self, graph: nx.Graph, now: float) -> Change:
        return self.change(now, lambda: setattr(self, "graph", graph))
