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
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..algorithms.learner import Learner
from ..seam import Evaluation, Step
from .deferred import Deferred


@dataclass(eq=False)
class Pending:
    """A message whose values are made when its sender's queue reaches it; ``len``: its size
    on the wire, known now."""

    ids: np.ndarray
    size: int
    made: float
    values: Any = None  # the decoded predictions, once made

    def __len__(self) -> int:
        return self.size


@dataclass(eq=False)
class Op:
    kind: str  # train | message | absorb
    step: Step | None = None
    message: Pending | None = None
    store: tuple | None = None  # absorb: where the plan put it (slot, ids, newer), and when made
    ended: bool = False
    cancelled: bool = False


def supported(algo: Any) -> bool:
    """Whether ``algo``'s learners can run here: those whose messages are predictions (a
    ``Plan`` keeps their schedule side apart) and those that send nothing, each with a model
    of its own (not the centralized reference's shared one)."""
    caps = algo.capabilities
    return caps.distills or (caps.messages == "nothing" and not caps.shares_model)


class Engine:
    """Every agent's queue of tensor work, and the threads that run them (see the module doc)."""

    def __init__(self, learners: list[Learner], workers: int | None = None) -> None:
        self.learners = learners
        self.queues: list[deque[Op]] = [deque() for _ in learners]
        self.workers = workers or os.cpu_count() or 1
        # a kernel per thread: the arithmetic of a one-thread per-agent run
        self.pool = ThreadPoolExecutor(self.workers, initializer=torch.set_num_threads,
                                       initargs=(1,))  # fmt: skip
        self.queued, self.limit = 0, 64 * len(learners)
        self.results: dict[int, Evaluation] | None = None

    def proxies(self) -> list[Proxy]:
        return [Proxy(self, lr) for lr in self.learners]

    def queue(self, agent: int, op: Op) -> Op:
        self.queues[agent].append(op)
        self.queued += 1
        self.results = None
        return op

    def flush(self) -> None:
        """Run every queued op that can run: all but those behind a step still in progress or
        an absorb whose message is not made yet."""
        while True:
            ready = [(i, ops) for i in range(len(self.queues)) if (ops := self._ready(i))]
            if not ready:
                return
            for _ in self.pool.map(self._run, ready):  # re-raises what an op raised
                pass
            self.queued -= sum(len(ops) for _, ops in ready)

    def _ready(self, i: int) -> list[Op]:
        q, out = self.queues[i], []
        while q:
            op = q[0]
            if (op.kind == "train" and not op.ended and not op.cancelled) or (
                op.kind == "absorb" and op.message.values is None
            ):
                break
            out.append(q.popleft())
        return out

    def _run(self, work: tuple[int, list[Op]]) -> None:
        i, ops = work
        learner = self.learners[i]
        for op in ops:
            if op.cancelled:
                continue
            if op.kind == "train":
                if op.step.public is not None:
                    learner.teach(op.step)
                learner.end_step(op.step)
            elif op.kind == "message":
                msg = op.message
                msg.values = learner.decode(learner.payload(msg.ids, msg.made))
            else:
                learner.write(op.message.values, *op.store)

    def evaluation(self, i: int) -> Evaluation:
        """Agent i's evaluation; every agent's is made at once, on the pool."""
        if self.results is None:
            self.flush()
            agents = range(len(self.learners))
            self.results = dict(zip(agents, self.pool.map(lambda a: self.learners[a].evaluate(),
                                                          agents)))  # fmt: skip
        return self.results[i]


class Proxy(Deferred):
    """What the world calls (a :class:`~..seam.AgentLearner`): the schedule side now, the
    tensor work queued in the engine."""

    def __init__(self, engine: Engine, learner: Learner) -> None:
        super().__init__(learner)
        self.engine = engine

    def __getattr__(self, name: str) -> Any:
        """Anything else is the learner's (its model, wiring, plan, teacher diagnostics), to
        read: what the queues have not run yet is not in it."""
        if name == "learner":  # not set yet (a copy in the making): no recursion
            raise AttributeError(name)
        return getattr(self.learner, name)

    def begin_step(self, now: float) -> Step:
        step = self.schedule(now)
        self.open = self.engine.queue(self.i, Op("train", step=step))
        return step

    def end_step(self, step: Step) -> None:
        self.open.ended, self.open = True, None
        if self.engine.queued > self.engine.limit:
            self.engine.flush()

    def make_message(self, now: float) -> Pending | None:
        learner = self.learner
        if not learner.sends or (len(learner.wiring.heads_sent) == 0 and not self.plan.embeds):
            return None
        msg = Pending(self.plan.next_chunk(), learner.message_bytes, now)
        self.engine.queue(self.i, Op("message", message=msg))
        return msg

    def absorb(self, msg: Pending, sender: int, produced: float) -> None:
        store = self.plan.store(sender, msg.ids, produced, self.learner.wiring.heads_sent)
        self.engine.queue(self.i, Op("absorb", message=msg, store=(*store, produced)))

    def evaluate(self) -> Evaluation:
        return self.engine.evaluation(self.i)
