"""What the two deferring engines (``auto``'s threads and ``batched``) share: the queues of
tensor work and when they run, and the proxy the world calls instead of each learner.

A proxy makes the decisions of every seam call at once, the same for both engines: the
schedule half through the learner's plan (the contract's schedule points: ``step``,
``next_chunk``, ``store``), then an :class:`Op` for the tensor half in the agent's queue. The
engines differ only in how they run a queue: the threads call each learner's own tensor
points, the batched engine its stacked computation of them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..algorithms.learner import Learner
from ..distillation.messages import Parcel
from ..seam import Evaluation, Step


@dataclass(eq=False)
class Op:
    """One queued piece of an agent's tensor work."""

    kind: str  # train | message | absorb
    agent: int
    step: Any = None  # train: the step, as its plan drew it
    message: Parcel | None = None  # message: the one to make; absorb: the one that arrived
    place: tuple | None = None  # absorb: where the plan put it (Plan.store)
    produced: float = 0.0  # absorb: when the message was made
    ended: bool = False  # train: the step's simulated time is over
    cancelled: bool = False  # train: abandoned (its agent went offline)

    @property
    def waits(self) -> bool:
        """It cannot run yet: a step still in progress, or an absorb whose message is not made."""
        if self.kind == "train":
            return not (self.ended or self.cancelled)
        return self.kind == "absorb" and self.message.values is None


class Queues:
    """Every agent's queue of ops; a flush runs what can run (each engine its own way)."""

    def __init__(self, learners: list[Learner], per_agent: int = 64) -> None:
        self.learners = learners
        self.queues: list[deque[Op]] = [deque() for _ in learners]
        self.queued, self.limit = 0, per_agent * len(learners)  # bounds what waits in memory
        self.results: Any = None  # every agent's evaluation, once made

    def proxies(self) -> list[Deferred]:
        return [Deferred(self, lr) for lr in self.learners]

    def queue(self, op: Op) -> Op:
        self.queues[op.agent].append(op)
        self.queued += 1
        self.results = None
        return op

    def maybe_flush(self) -> None:
        if self.queued > self.limit:
            self.flush()

    def flush(self) -> None:
        raise NotImplementedError

    def evaluation(self, i: int) -> Evaluation:
        raise NotImplementedError


class Deferred:
    """What the world calls (a :class:`~..seam.AgentLearner`): the schedule half of every call
    now, through the learner's plan; the tensor half queued in ``engine``."""

    def __init__(self, engine: Queues, learner: Learner) -> None:
        self.engine, self.learner, self.i = engine, learner, learner.agent
        self.sends, self.share_every = learner.sends, learner.share_every
        self.plan = learner.plan
        self.open: Op | None = None  # the queued op of the step in progress

    @property
    def neighbour_count(self) -> Callable[[], int]:
        return self.learner.neighbour_count

    @neighbour_count.setter
    def neighbour_count(self, count: Callable[[], int]) -> None:
        self.learner.neighbour_count = count

    def begin_step(self, now: float) -> Step:
        """A step drawn now; a step still open was abandoned (the agent went offline), and its
        queued op is cancelled."""
        if self.open is not None:
            self.open.cancelled = True
        step = self.plan.step(now)
        self.open = self.engine.queue(Op("train", self.i, step=step))
        return step

    def end_step(self, step: Step) -> None:
        self.open.ended, self.open = True, None
        self.engine.maybe_flush()

    def make_message(self, now: float) -> Parcel | None:
        ids = self.plan.next_chunk()
        if ids is None:
            return None
        learner = self.learner
        msg = Parcel(ids, learner.message_bytes, heads=learner.wiring.heads_sent, made=now)
        self.engine.queue(Op("message", self.i, message=msg))
        return msg

    def absorb(self, msg: Parcel, sender: int, produced: float) -> None:
        place = self.plan.store(sender, msg.ids, produced, msg.heads)
        if place is not None:
            self.engine.queue(Op("absorb", self.i, message=msg, place=place, produced=produced))

    def evaluate(self) -> Evaluation:
        return self.engine.evaluation(self.i)

    def message_flops(self) -> float:
        return self.learner.message_flops()

    def teacher_rows(self, now: float) -> list[tuple]:
        return self.learner.teacher_rows(now)

    def teacher_ages(self) -> dict[int, tuple[float, int]]:
        return self.learner.teacher_ages()
