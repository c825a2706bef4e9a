"""Per-agent execution on every core (``engine: auto``): the results of ``per_agent``, bit for
bit, in less wall time.

The schedule never waits for the tensors (a step's duration comes from its FLOPs, a
message's size from its encoding), so, as in the batched engine, the world runs ahead and
each agent's tensor work waits in a queue of its own: a step, a message, the absorbing of a
peer's message. The queues run when results are needed (every evaluation) or grow long, in
rounds: each round runs every agent's ready ops in order, the agents spread over a pool of
threads. Unlike the batched engine, an op is the agent's own learner doing what it does in
per-agent execution (the same calls, kernels and shapes, each kernel on one torch thread):
agents share no tensor they write, an agent's ops keep their order, and an absorb waits
for its message, so every agent computes exactly what it computes alone. Torch releases
Python's lock inside its kernels, which is where the second core helps.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from ..algorithms.learner import Learner
from ..seam import Evaluation
from .deferred import Op, Queues


def supported(algo: Any) -> bool:
    """Whether ``algo``'s learners can run here: those whose messages are predictions (a
    ``Plan`` keeps their schedule side apart) and those that send nothing, each with a model
    of its own (not the centralized reference's shared one)."""
    caps = algo.capabilities
    return caps.distills or (caps.messages == "nothing" and not caps.shares_model)


class Engine(Queues):
    """Every agent's queue of tensor work, and the threads that run them (see the module doc)."""

    def __init__(self, learners: list[Learner], workers: int | None = None) -> None:
        super().__init__(learners)
        self.workers = workers or os.cpu_count() or 1
        # a kernel per thread: the arithmetic of a one-thread per-agent run
        self.pool = ThreadPoolExecutor(self.workers, initializer=torch.set_num_threads,
                                       initargs=(1,))  # fmt: skip

    def flush(self) -> None:
        """Run every queued op that can run: all but those behind one that waits."""
        while True:
            ready = [(i, ops) for i in range(len(self.queues)) if (ops := self._ready(i))]
            if not ready:
                return
            for _ in self.pool.map(self._run, ready):  # re-raises what an op raised
                pass
            self.queued -= sum(len(ops) for _, ops in ready)

    def _ready(self, i: int) -> list[Op]:
        q, out = self.queues[i], []
        while q and not q[0].waits:
            out.append(q.popleft())
        return out

    def _run(self, work: tuple[int, list[Op]]) -> None:
        """An agent's ready ops, each the tensor half of a seam call, through the learner's
        own points as its per-agent composition calls them (``Learner.begin_step`` …)."""
        i, ops = work
        learner = self.learners[i]
        for op in ops:
            if op.cancelled:
                continue
            if op.kind == "train":
                learner.prepare(op.step)
                learner.train(op.step)
            elif op.kind == "message":
                msg = op.message
                msg.values = learner.decode(learner.payload(msg.ids, msg.made))
            else:
                learner.write(op.message.values, op.place, op.produced)

    def evaluation(self, i: int) -> Evaluation:
        """Agent i's evaluation; every agent's is made at once, on the pool."""
        if self.results is None:
            self.flush()
            agents = range(len(self.learners))
            self.results = dict(zip(agents, self.pool.map(lambda a: self.learners[a].evaluate(),
                                                          agents)))  # fmt: skip
        return self.results[i]
