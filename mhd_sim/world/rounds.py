"""Rounds through a server, how round-based algorithms talk: a server node after the agents,
with its own uplink, gathers the clients' uploads and sends back the round's result. The
algorithm owns the protocol's settings and what the server computes (its ``Rounds``, from
the learner seam); the world runs it here. The other way is peer-to-peer (``sharing.py``).

A client uploads after every ``period`` local steps and waits for the round's result. A
round ends when every online client's upload is in, or ``deadline`` seconds after it began,
whichever comes first. The server then combines what came in and sends the result to every
client waiting for it, one message after another on its FIFO uplink (a connection per
client: it never drops). A client that is still computing joins the next round; one whose
upload was lost gets the result at the deadline. Synchronous rounds wait for stragglers:
that is the contrast with MHD, where nobody waits.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import simpy

from .network import Message


@dataclass
class Round:
    """What the server holds during one round."""

    full: simpy.Event  # every online client's upload is in
    uploads: dict[int, Any] = field(default_factory=dict)  # client -> its upload


def server_star(agents: int) -> nx.Graph:
    """The clients 0..agents−1, each linked to the server, node ``agents`` (and to nobody
    else).

    >>> sorted(server_star(3).edges)
    [(0, 3), (1, 3), (2, 3)]
    """
    graph = nx.Graph()
    graph.add_nodes_from(range(agents + 1))
    graph.add_edges_from((i, agents) for i in range(agents))
    return graph


class RoundServer:
    """The coordinator of round-based algorithms: the server node (``node`` = the number of
    agents) and its rounds."""

    nodes = 1  # the server

    def __init__(self, sim: Any, rounds: Any) -> None:
        """``rounds``: the algorithm's protocol (``period``, ``deadline``,
        ``server_bandwidth``, ``combine``)."""
        self.sim, self.protocol, self.node = sim, rounds, len(sim.agents)
        self.waiting: dict[int, simpy.Event] = {}  # client -> the event its process waits on
        self.round = Round(sim.env.event())
        self.rounds = 0

    def graph(self) -> nx.Graph:
        return server_star(self.node)

    @property
    def bandwidth(self) -> float | None:
        """The server's uplink (None: the network's)."""
        return self.protocol.server_bandwidth

    def start(self) -> None:
        self.sim.env.process(self.process())

    def after_step(self, i: int) -> Generator:
        """Client i uploads after every ``period`` steps, then waits for the round's result."""
        sim = self.sim
        if sim.steps[i] % self.protocol.period == 0:
            payload = sim.learners[i].make_message(sim.env.now)
            sim.network.send(Message(i, self.node, len(payload), sim.env.now, payload))
            yield self.wait(i)

    def deliver(self, msg: Message) -> None:
        if msg.receiver == self.node:
            self.receive(msg)
            return
        self.sim.learners[msg.receiver].absorb(msg.payload, msg.sender, msg.produced)
        if msg.sender == self.node:
            self.deliver_result(msg.receiver)

    def went_offline(self, client: int) -> None:
        """It no longer waits, and the round no longer waits for it."""
        self.waiting.pop(client, None)
        self.check()

    def receive(self, msg: Message) -> None:
        """An upload arrived: keep it; close the round if every online client's is in."""
        self.round.uploads[msg.sender] = msg.payload
        self.check()

    def check(self) -> None:
        """Close the round when every online client has uploaded (called on each upload and
        when a client goes offline)."""
        online = [i for i in range(self.node) if self.sim.online[i]]
        uploads = self.round.uploads
        if uploads and all(i in uploads for i in online) and not self.round.full.triggered:
            self.round.full.succeed()

    def wait(self, client: int) -> simpy.Event:
        """The event a client waits on until the round's result reaches it."""
        self.waiting[client] = self.sim.env.event()
        return self.waiting[client]

    def deliver_result(self, client: int) -> None:
        event = self.waiting.pop(client, None)
        if event is not None and not event.triggered:
            event.succeed()

    def process(self) -> Generator:
        """The rounds, one after another."""
        env, sim, protocol = self.sim.env, self.sim, self.protocol
        while True:
            timeout = env.timeout(protocol.deadline)
            yield self.round.full | timeout
            uploads, self.round = self.round.uploads, Round(env.event())
            if not uploads:
                continue
            self.rounds += 1
            result = protocol.combine([uploads[i] for i in sorted(uploads)], self.node, env.now)
            sim.record.event(env.now, "round", self.node, None, len(result))
            for i in sorted(self.waiting):
                if sim.online[i]:
                    sim.network.send(Message(self.node, i, len(result), env.now, result))
