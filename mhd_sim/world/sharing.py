"""Peer-to-peer sharing, how decentralized algorithms talk: every ``share_every`` local steps
an agent makes a message and hands one copy per neighbour (or per ``fanout`` neighbours
drawn at random) to its uplink. The other way is rounds through a server (``rounds.py``).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import networkx as nx

from ..seeds import stream
from .network import Message
from .topology import build as build_topology


class PeerSharing:
    """The coordinator of peer-to-peer algorithms: the scenario's topology, shares after steps."""

    nodes = 0  # no node beside the agents
    bandwidth = None  # (a server's uplink: there is none)

    def __init__(self, sim: Any) -> None:
        self.sim = sim
        n = len(sim.agents)
        self.fanout_rng = [stream(sim.sc.seed, "fanout", i) for i in range(n)]

    def graph(self) -> nx.Graph:
        sc = self.sim.sc
        return build_topology(sc.network.topology, sc.agents.count, sc.seed)

    def start(self) -> None:
        pass

    def after_step(self, i: int) -> Generator:
        """Agent i's share after its step, when it is due: one forward pass, then the message
        to its neighbours. An agent whose uplink still holds ``network.backpressure``
        messages skips it."""
        sim = self.sim
        learner, links, network = sim.learners[i], sim.links, sim.network
        if not (learner.sends and links.neighbors(i) and sim.steps[i] % learner.share_every == 0):
            return
        full, env = sim.sc.network.backpressure, sim.env
        if full is not None and network.holding(i) >= full:
            network.traffic.skipped[i] += 1  # its uplink is still full
            sim.record.event(env.now, "skip", i)
            return
        yield env.timeout(sim.duration(i, learner.message_flops()))
        payload = learner.make_message(env.now)
        if payload is not None:
            for j in self.targets(i):
                network.send(Message(i, j, len(payload), env.now, payload))

    def targets(self, i: int) -> list[int]:
        """The neighbours a share goes to: all of them, or ``fanout`` drawn without replacement."""
        nbrs, k = self.sim.links.neighbors(i), self.sim.sc.network.fanout
        if k is None or len(nbrs) <= k:
            return nbrs
        return sorted(self.fanout_rng[i].choice(nbrs, k, replace=False).tolist())

    def went_offline(self, i: int) -> None:
        pass

    def deliver(self, msg: Message) -> None:
        self.sim.learners[msg.receiver].absorb(msg.payload, msg.sender, msg.produced)
