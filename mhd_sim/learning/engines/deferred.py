"""What the proxies of the two deferring engines share (the batched engine's and ``auto``'s
threads): the learner behind each, whose schedule side runs as the world calls, while its
tensor work waits in the engine's queues."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..algorithms.learner import Learner
from ..seam import Step


class Deferred:
    """The schedule side of an agent whose tensor work is queued (a :class:`~..seam.AgentLearner`
    with its engine's ``begin_step``, ``end_step``, ``make_message``, ``absorb`` and
    ``evaluate``)."""

    def __init__(self, learner: Learner) -> None:
        self.learner, self.i = learner, learner.agent
        self.sends, self.share_every = learner.sends, learner.share_every
        self.plan = learner.plan if learner.algo.capabilities.distills else None
        self.open: Any = None  # the queued op of the step in progress

    @property
    def neighbour_count(self) -> Callable[[], int]:
        return self.learner.neighbour_count

    @neighbour_count.setter
    def neighbour_count(self, count: Callable[[], int]) -> None:
        self.learner.neighbour_count = count

    def message_flops(self) -> float:
        return self.learner.message_flops()

    def teacher_rows(self, now: float) -> list[tuple]:
        return self.learner.teacher_rows(now)

    def teacher_ages(self) -> dict[int, tuple[float, int]]:
        return self.learner.teacher_ages()

    def schedule(self, now: float) -> Step:
        """A step's schedule side, drawn now; a step still open was abandoned (the agent went
        offline), and its queued op is cancelled."""
        if self.open is not None:
            self.open.cancelled = True
        return self.plan.step(now) if self.plan is not None else self.learner.begin_step(now)
