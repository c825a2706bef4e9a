"""Timing-only stand-ins for learners (``--timing-only``): the schedule without the training.

A stand-in has the FLOPs per step and per message and the message sizes of a real learner
of the same architecture, measured once, and trains nothing. Every agent keeps its real plan
(the contract's schedule points, ``contract.py``): the same draws and, for a distilling
agent, the same cache of production times, so the ages of the predictions its steps read
(the ``distill`` events) are exactly a full run's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from ..algorithms.learner import Learner
from ..contract import LocalPlan
from ..distillation.messages import Parcel
from ..seam import Evaluation, Rounds, Step


def stub_combine(uploads: list[Parcel], server: int, now: float) -> Parcel:
    """A round's result in a timing-only run: as large as an upload (weights as weights)."""
    return Parcel(None, len(uploads[0]))


class TimingOnly:
    """Stands in for the learner ``template`` (a real one of the same architecture) when only
    the schedule matters."""

    def __init__(self, agent: int, template: Learner, plan: LocalPlan) -> None:
        self.agent, self.plan = agent, plan
        self.sends, self.share_every = template.sends, template.share_every
        self.distills = template.algo.capabilities.distills
        # a distilling agent's own plan knows its message's cost (a calibration pass on its
        # held-back samples, abstain.py, depends on how many private samples it has)
        self._message_flops = plan.message_flops if self.distills else template.message_flops()
        self.size = _message_size(template)
        rounds = template.rounds
        self.rounds: Rounds | None = (
            None if rounds is None else dataclasses.replace(rounds, combine=stub_combine)
        )
        self.heads_sent = template.wiring.heads_sent if self.distills else None
        self.neighbour_count: Callable[[], int] = lambda: 0

    def begin_step(self, now: float) -> Step:
        return self.plan.step(now, ties=False)

    def end_step(self, step: Step) -> None:
        pass

    def message_flops(self) -> float:
        return self._message_flops

    def make_message(self, now: float) -> Parcel | None:
        """The message's size and, for a distilling agent, the public samples it covers."""
        if not self.size:
            return None
        if not self.distills:
            return Parcel(None, self.size)
        ids = self.plan.next_chunk()
        return None if ids is None else Parcel(ids, self.size, heads=self.heads_sent)

    def absorb(self, payload: Parcel, sender: int, produced: float) -> None:
        if self.distills:
            self.plan.store(sender, payload.ids, produced, self.heads_sent)

    def teacher_ages(self) -> dict[int, tuple[float, int]]:
        return self.plan.teacher_ages() if self.distills else {}

    def teacher_rows(self, now: float) -> list[tuple]:
        return []  # no predictions, so no teacher to judge

    def evaluate(self) -> Evaluation:
        return np.empty(0), np.empty(0), np.empty((0, 0))


def _message_size(template: Any) -> int:
    """Bytes of the template's messages: known in advance for predictions, encoded once for
    weights; 0 when it sends none."""
    if not template.sends:
        return 0
    if template.algo.capabilities.distills:
        sent = len(template.wiring.heads_sent)
        return template.message_bytes if sent or template.plan.embeds else 0
    payload = template.make_message(0.0)
    return len(payload) if payload is not None else 0
