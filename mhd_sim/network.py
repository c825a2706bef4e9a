"""The network: who is linked now, one FIFO uplink per agent, lossy delayed links, optional downlinks.

A message handed at time s to an uplink that frees at time q leaves it at
``u = max(s, q) + bytes / min(uplink, link cap)``, reaches the receiver at ``u + latency``
and, with a downlink queue that frees at d, is delivered at ``max(u + latency, d) + bytes / downlink``.
It is dropped, with a reason, if the link loses it (``loss``, probability per link), if its
sender goes offline before it has left the uplink (``sender_offline``), if its link is down
at arrival or went down while it was in flight (``link_down``), or if the receiver is
offline when it arrives (``offline``). Each link draws its latencies and losses from its own
random stream.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import networkx as nx
import numpy as np
import simpy

from .seeds import stream


@dataclass
class Message:
    sender: int
    receiver: int
    size: int  # bytes on the wire
    produced: float  # when the predictions inside were computed
    payload: Any
    sent: float = float("nan")  # when it was handed to the uplink


@dataclass(frozen=True)
class Link:
    """One directed link's properties."""

    latency: Callable[[np.random.Generator], float]
    loss: float = 0.0
    bandwidth: float = math.inf  # a cap below the sender's uplink (a thin wide-area hop)


Log = Callable[..., None]  # log(time, event, agent, peer=None, bytes=None, staleness=None, reason=None)


def _pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


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

    def up(self, a: int, b: int) -> bool:
        return (self.graph.has_edge(a, b) and not self.failed[_pair(a, b)]
                and all(lab[a] == lab[b] for lab in self.partitions.values()))

    def up_since(self, a: int, b: int, since: float) -> bool:
        """Up now, and not cut at any moment after ``since``."""
        return self.up(a, b) and self.cut_at.get(_pair(a, b), -math.inf) <= since

    def neighbors(self, agent: int) -> list[int]:
        """The agents ``agent`` can reach now (cached until the next change)."""
        if agent not in self._neighbors:
            self._neighbors[agent] = [j for j in sorted(self.graph.neighbors(agent)) if self.up(agent, j)]
        return self._neighbors[agent]

    def edges_up(self) -> set[tuple[int, int]]:
        return {_pair(a, b) for a, b in self.graph.edges if self.up(a, b)}

    def change(self, now: float, mutate: Callable[[], None]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Apply ``mutate``; return the graph edges that went down and those that came up."""
        before = self.edges_up()
        mutate()
        self._neighbors.clear()
        after = self.edges_up()
        for p in before - after:
            self.cut_at[p] = now
        return sorted(before - after), sorted(after - before)

    def fail(self, pairs: list[tuple[int, int]], now: float):
        return self.change(now, lambda: self.failed.update(_pair(*p) for p in pairs))

    def restore(self, pairs: list[tuple[int, int]], now: float):
        return self.change(now, lambda: self.failed.subtract(_pair(*p) for p in pairs))

    def partition(self, key: int, labels: list[int], now: float):
        return self.change(now, lambda: self.partitions.__setitem__(key, labels))

    def heal(self, key: int, now: float):
        return self.change(now, lambda: self.partitions.pop(key))

    def switch(self, graph: nx.Graph, now: float):
        return self.change(now, lambda: setattr(self, "graph", graph))


class Network:
    """Uplink and downlink queues and lossy, delayed links; counts every byte and every drop."""

    def __init__(self, env: simpy.Environment, links: Links, *, uplink: list[float],
                 downlink: list[float | None], link: Callable[[int, int], Link], seed: int,
                 online: Callable[[int], bool], deliver: Callable[[Message], None], log: Log) -> None:
        agents = len(uplink)
        self.env, self.links, self.uplink, self.downlink, self.seed = env, links, uplink, downlink, seed
        self.link = link
        self.online, self.deliver, self.log = online, deliver, log
        self.queues = [simpy.Store(env) for _ in range(agents)]
        self.inboxes = [simpy.Store(env) if d else None for d in downlink]
        self.epoch = [0] * agents  # bumped when an agent goes offline: its queued messages die
        self.streams: dict[tuple[int, int], np.random.Generator] = {}
        self.bytes_sent = np.zeros(agents, dtype=np.int64)
        self.bytes_received = np.zeros(agents, dtype=np.int64)
        self.sent = np.zeros(agents, dtype=np.int64)
        self.delivered = 0
        self.dropped: Counter[str] = Counter()
        for i in range(agents):
            env.process(self._uplink(i))
            if self.inboxes[i] is not None:
                env.process(self._downlink(i))

    def send(self, msg: Message) -> None:
        """Hand a message to its sender's uplink (the ``send`` event)."""
        msg.sent = self.env.now
        self.sent[msg.sender] += 1
        self.bytes_sent[msg.sender] += msg.size
        self.log(self.env.now, "send", msg.sender, msg.receiver, msg.size)
        self.queues[msg.sender].put(msg)

    def sender_offline(self, agent: int) -> None:
        """Drop what ``agent`` still had queued or on the wire: offline agents send nothing."""
        self.epoch[agent] += 1
        queue = self.queues[agent]
        for msg in queue.items:
            self._drop(msg, "sender_offline", at=msg.sender, peer=msg.receiver)
        queue.items.clear()

    def _stream(self, sender: int, receiver: int) -> np.random.Generator:
        key = (sender, receiver)
        if key not in self.streams:
            self.streams[key] = stream(self.seed, "link", sender, receiver)
        return self.streams[key]

    def _drop(self, msg: Message, reason: str, at: int, peer: int) -> None:
        self.dropped[reason] += 1
        self.log(self.env.now, "drop", at, peer, msg.size, reason=reason)

    def _uplink(self, agent: int):
        queue = self.queues[agent]
        while True:
            msg = yield queue.get()
            epoch = self.epoch[agent]
            link = self.link(agent, msg.receiver)
            yield self.env.timeout(msg.size / min(self.uplink[agent], link.bandwidth))
            if epoch != self.epoch[agent]:
                self._drop(msg, "sender_offline", at=agent, peer=msg.receiver)
                continue
            rng = self._stream(agent, msg.receiver)
            delay = link.latency(rng)
            lost = rng.random() < link.loss
            self.env.timeout(delay).callbacks.append(lambda _, m=msg, lost=lost: self._arrive(m, lost))

    def _reachable(self, msg: Message) -> bool:
        """Drop (and say why) a message whose link was cut or whose receiver is offline."""
        if not self.links.up_since(msg.sender, msg.receiver, msg.sent):
            self._drop(msg, "link_down", at=msg.receiver, peer=msg.sender)
        elif not self.online(msg.receiver):
            self._drop(msg, "offline", at=msg.receiver, peer=msg.sender)
        else:
            return True
        return False

    def _arrive(self, msg: Message, lost: bool) -> None:
        if lost:
            self._drop(msg, "loss", at=msg.receiver, peer=msg.sender)
        elif self._reachable(msg):
            inbox = self.inboxes[msg.receiver]
            if inbox is None:
                self._hand_over(msg)
            else:
                inbox.put(msg)

    def _downlink(self, agent: int):
        inbox, rate = self.inboxes[agent], self.downlink[agent]
        while True:
            msg = yield inbox.get()
            yield self.env.timeout(msg.size / rate)
            if self._reachable(msg):
                self._hand_over(msg)

    def _hand_over(self, msg: Message) -> None:
        self.delivered += 1
        self.bytes_received[msg.receiver] += msg.size
        self.log(self.env.now, "deliver", msg.receiver, msg.sender, msg.size,
                 staleness=self.env.now - msg.produced)
        self.deliver(msg)
