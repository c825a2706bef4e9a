"""The network: who is linked now, a FIFO uplink per agent, lossy delayed links, downlinks.

A message handed at time s to an uplink that frees at time q leaves it at
``u = max(s, q) + bytes / min(uplink, link cap)``, reaches the receiver at ``u + latency``
and, with a downlink queue that frees at d, is delivered at
``max(u + latency, d) + bytes / downlink``.
It is dropped, with a reason, if the link loses it (``loss``, probability per link), if its
sender goes offline before it has left the uplink (``sender_offline``), if its link is down
at arrival or went down while it was in flight (``link_down``), or if the receiver is
offline when it arrives or went offline while it was in flight (``offline``). Each link
draws its latencies and losses from its own random stream.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import simpy

from ..seeds import stream


@dataclass(slots=True)
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


@dataclass(eq=False, slots=True)
class _Transmission:
    """A message on its way: when it leaves its sender's uplink, and whether the sender went
    offline before that (then it was dropped)."""

    msg: Message
    leaves: float
    dropped: bool = False


# RunDirectory.event(time, event, agent, peer, bytes, staleness, staleness_max, reason)
Log = Callable[..., None]


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


class Network:
    """Uplink and downlink queues and lossy, delayed links; counts every byte and every drop."""

    def __init__(
        self,
        env: simpy.Environment,
        links: Links,
        *,
        uplink: list[float],
        downlink: list[float | None],
        link: Callable[[int, int], Link],
        seed: int,
        online: Callable[[int], bool],
        deliver: Callable[[Message], None],
        log: Log,
    ) -> None:
        agents = len(uplink)
        self.env, self.links, self.uplink, self.downlink, self.seed = (
            env,
            links,
            uplink,
            downlink,
            seed,
        )
        self.link = link
        self.online, self.deliver, self.log = online, deliver, log
        # Queues in closed form: when each uplink and downlink is next free, and what is
        # still on each uplink (for the sender going offline). No process per queue.
        self.offline_at = [-math.inf] * agents  # when each agent last went offline
        self.uplink_free = [0.0] * agents
        self.downlink_free = [0.0] * agents
        self.on_uplink: list[deque[_Transmission]] = [deque() for _ in range(agents)]
        self.routes: dict[tuple[int, int], tuple[float, Link, np.random.Generator]] = {}
        self.bytes_sent = [0] * agents  # plain lists: numpy scalar updates cost more per message
        self.bytes_received = [0] * agents
        self.sent = [0] * agents
        self.delivered = 0
        self.dropped: Counter[str] = Counter()

    def send(self, msg: Message) -> None:
        """Hand a message to its sender's uplink (the ``send`` event). It leaves after the
        messages ahead of it, ``bytes / min(uplink, link cap)`` after it starts; its latency
        and fate are drawn now from the link's stream (in the order messages leave)."""
        now, i = self.env.now, msg.sender
        msg.sent = now
        self.sent[i] += 1
        self.bytes_sent[i] += msg.size
        self.log(now, "send", i, msg.receiver, msg.size)
        route = self.routes.get((i, msg.receiver))
        if route is None:
            route = self._route(i, msg.receiver)
        rate, link, rng = route
        start = self.uplink_free[i] if self.uplink_free[i] > now else now
        t = _Transmission(msg, start + msg.size / rate)
        self.uplink_free[i] = t.leaves
        pending = self.on_uplink[i]
        while pending and pending[0].leaves <= now:
            pending.popleft()
        pending.append(t)
        delay = link.latency(rng)
        lost = rng.random() < link.loss
        self.env.timeout(t.leaves + delay - now).callbacks.append(lambda _: self._arrive(t, lost))

    def went_offline(self, agent: int) -> None:
        """Offline agents send nothing: whatever has not left the uplink yet is dropped now.
        Messages on their way to it will be dropped too, even if it is back by their arrival."""
        now = self.env.now
        self.offline_at[agent] = now
        for t in self.on_uplink[agent]:
            if t.leaves > now:
                t.dropped = True
                self._drop(t.msg, "sender_offline", at=agent, peer=t.msg.receiver)
        self.on_uplink[agent].clear()
        self.uplink_free[agent] = now

    def _route(self, sender: int, receiver: int) -> tuple[float, Link, np.random.Generator]:
        """A link's sending rate, properties and random stream, made on its first message."""
        link = self.link(sender, receiver)
        route = (
            min(self.uplink[sender], link.bandwidth),
            link,
            stream(self.seed, "link", sender, receiver),
        )
        self.routes[(sender, receiver)] = route
        return route

    def _drop(self, msg: Message, reason: str, at: int, peer: int) -> None:
        self.dropped[reason] += 1
        self.log(self.env.now, "drop", at, peer, msg.size, reason=reason)

    def _reachable(self, msg: Message) -> bool:
        """Drop (and say why) a message whose link was cut or whose receiver is offline."""
        if not self.links.up_since(msg.sender, msg.receiver, msg.sent):
            self._drop(msg, "link_down", at=msg.receiver, peer=msg.sender)
        elif not self.online(msg.receiver) or self.offline_at[msg.receiver] > msg.sent:
            self._drop(msg, "offline", at=msg.receiver, peer=msg.sender)
        else:
            return True
        return False

    def _arrive(self, t: _Transmission, lost: bool) -> None:
        msg = t.msg
        if t.dropped:
            return
        if lost:
            self._drop(msg, "loss", at=msg.receiver, peer=msg.sender)
        elif self._reachable(msg):
            rate, j = self.downlink[msg.receiver], msg.receiver
            if not rate:
                self._hand_over(msg)
                return
            now = self.env.now
            self.downlink_free[j] = max(now, self.downlink_free[j]) + msg.size / rate
            self.env.timeout(self.downlink_free[j] - now).callbacks.append(
                lambda _: self._reachable(msg) and self._hand_over(msg)
            )

    def _hand_over(self, msg: Message) -> None:
        now = self.env.now
        self.delivered += 1
        self.bytes_received[msg.receiver] += msg.size
        self.log(now, "deliver", msg.receiver, msg.sender, msg.size, now - msg.produced)
        self.deliver(msg)
