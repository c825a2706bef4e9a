"""The network: one FIFO uplink per agent, then per-link latency and loss.

A message handed to an uplink at time s, behind a queue that frees at time q, arrives at
``max(s, q) + bytes / bandwidth + latency`` unless the link loses it (probability
``loss``), its sender goes offline first, or its receiver is offline when it arrives.
Each link (sender, receiver) draws its latencies and losses from its own random stream.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any, Callable

import numpy as np
import pydantic
import simpy

from .registry import Registry, settings
from .seeds import stream

LATENCIES = Registry("latency distribution", tag="dist")
Seconds = Annotated[float, pydantic.Field(ge=0)]


@LATENCIES.register("constant")
def constant(rng: np.random.Generator, *, value: Seconds) -> float:
    return value


@LATENCIES.register("uniform")
def uniform(rng: np.random.Generator, *, low: Seconds, high: Seconds) -> float:
    return float(rng.uniform(low, high))


@LATENCIES.register("lognormal")
def lognormal(rng: np.random.Generator, *, median: Annotated[float, pydantic.Field(gt=0)],
              sigma: Seconds = 0.5) -> float:
    """median · exp(σ·N(0,1)): a heavy right tail, as wide-area latencies have."""
    return float(median * np.exp(sigma * rng.standard_normal()))


@LATENCIES.register("exponential")
def exponential(rng: np.random.Generator, *, mean: Annotated[float, pydantic.Field(gt=0)]) -> float:
    return float(rng.exponential(mean))


def latency_sampler(spec: pydantic.BaseModel) -> Callable[[np.random.Generator], float]:
    """A function drawing one latency from a link's generator."""
    fn, kwargs = LATENCIES.get(spec.dist), settings(spec, "dist")
    return lambda rng: fn(rng, **kwargs)


@dataclass
class Message:
    sender: int
    receiver: int
    size: int  # bytes on the wire
    produced: float  # when the predictions inside were computed
    payload: Any
    sent: float = float("nan")  # when it was handed to the uplink


Log = Callable[..., None]  # log(time, event, agent, peer=None, bytes=None, staleness=None, reason=None)


class Network:
    """Uplink queues and lossy, delayed links; counts every byte and every drop."""

    def __init__(self, env: simpy.Environment, agents: int, *, bandwidth: float,
                 latency: pydantic.BaseModel, loss: float, seed: int,
                 online: Callable[[int], bool], deliver: Callable[[Message], None], log: Log) -> None:
        self.env, self.bandwidth, self.loss, self.seed = env, bandwidth, loss, seed
        self.latency = latency_sampler(latency)
        self.online, self.deliver, self.log = online, deliver, log
        self.queues = [simpy.Store(env) for _ in range(agents)]
        self.epoch = [0] * agents  # bumped when an agent goes offline: its queued messages die
        self.links: dict[tuple[int, int], np.random.Generator] = {}
        self.bytes_sent = np.zeros(agents, dtype=np.int64)
        self.bytes_received = np.zeros(agents, dtype=np.int64)
        self.sent = np.zeros(agents, dtype=np.int64)
        self.delivered = 0
        self.dropped: Counter[str] = Counter()
        for i in range(agents):
            env.process(self._uplink(i))

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

    def _link(self, sender: int, receiver: int) -> np.random.Generator:
        key = (sender, receiver)
        if key not in self.links:
            self.links[key] = stream(self.seed, "link", sender, receiver)
        return self.links[key]

    def _drop(self, msg: Message, reason: str, at: int, peer: int) -> None:
        self.dropped[reason] += 1
        self.log(self.env.now, "drop", at, peer, msg.size, reason=reason)

    def _uplink(self, agent: int):
        queue = self.queues[agent]
        while True:
            msg = yield queue.get()
            epoch = self.epoch[agent]
            yield self.env.timeout(msg.size / self.bandwidth)
            if epoch != self.epoch[agent]:
                self._drop(msg, "sender_offline", at=agent, peer=msg.receiver)
                continue
            rng = self._link(agent, msg.receiver)
            delay = self.latency(rng)
            lost = rng.random() < self.loss
            self.env.timeout(delay).callbacks.append(lambda _, m=msg, lost=lost: self._arrive(m, lost))

    def _arrive(self, msg: Message, lost: bool) -> None:
        if lost:
            self._drop(msg, "loss", at=msg.receiver, peer=msg.sender)
        elif not self.online(msg.receiver):
            self._drop(msg, "offline", at=msg.receiver, peer=msg.sender)
        else:
            self.delivered += 1
            self.bytes_received[msg.receiver] += msg.size
            self.log(self.env.now, "deliver", msg.receiver, msg.sender, msg.size,
                     staleness=self.env.now - msg.produced)
            self.deliver(msg)
