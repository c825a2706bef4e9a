"""The server of round-based algorithms (FedAvg): a node after the agents, with its own
uplink, that gathers the clients' uploads and sends back the round's model.

A round ends when every online client's upload is in, or ``algorithm.deadline`` seconds
after it began, whichever comes first. The server then averages what came in and sends the
model to every client waiting for it, one message after another on its FIFO uplink. A
client that is still computing joins the next round; one whose upload was lost gets the
model at the deadline. Synchronous rounds wait for stragglers: that is the contrast with
MHD, where nobody waits.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import simpy

from ..learning import fedavg
from ..learning.schedule import Stub
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


class Server:
    """The server node (``node`` = the number of agents) and its rounds."""

    def __init__(self, sim: Any) -> None:
        self.sim, self.node = sim, len(sim.agents)
        self.waiting: dict[int, simpy.Event] = {}  # client -> the event its process waits on
        self.round = Round(sim.env.event())
        self.rounds = 0

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
        """The event a client waits on until the round's model reaches it."""
        self.waiting[client] = self.sim.env.event()
        return self.waiting[client]

    def deliver_model(self, client: int) -> None:
        event = self.waiting.pop(client, None)
        if event is not None and not event.triggered:
            event.succeed()

    def process(self) -> Generator:
        """The rounds, one after another."""
        env, sim, deadline = self.sim.env, self.sim, self.sim.sc.algorithm.deadline
        while True:
            timeout = env.timeout(deadline)
            yield self.round.full | timeout
            uploads, self.round = self.round.uploads, Round(env.event())
            if not uploads:
                continue
            self.rounds += 1
            if sim.timing_only:
                size = len(next(iter(uploads.values())))
                model: Any = Stub(self.node, env.now, size)
            else:
                payloads = [uploads[i] for i in sorted(uploads)]
                model = fedavg.average(payloads, self.node, env.now, sim.sc.algorithm.encoding)
            sim.record.event(env.now, "round", self.node, None, len(model))
            for i in sorted(self.waiting):
                if sim.online[i]:
                    sim.network.send(Message(self.node, i, len(model), env.now, model))
