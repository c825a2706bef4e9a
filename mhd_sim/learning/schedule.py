"""Timing-only stand-ins for learners (``--timing-only``): the schedule without the training."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pydantic
import torch

from ..registry import settings
from ..seeds import stream, torch_generator
from .algorithms import ALGORITHMS
from .datasets import DATASETS
from .learner import Learner, Shared, Step
from .models import build
from .population import check_population


@dataclass(frozen=True)
class Stub:
    """A message in a timing-only run: who made it and when, and the size the real one has."""

    sender: int
    produced: float
    size: int

    def __len__(self) -> int:
        return self.size


@dataclass(frozen=True)
class Costs:
    """What a schedule needs of a learner, measured once per architecture: FLOPs of a plain
    and a distillation step and of a message, and the size of a message."""

    sends: bool
    heads: int
    plain: float
    distill: float
    public_step: bool  # its steps read peers' predictions (a public batch)
    include_self: bool
    size: int
    message_flops: float
    cycle: int  # messages per pass over the public set
    max_staleness: float | None
    rounds: bool = False  # a FedAvg client: uploads every period steps, waits for the model

    @classmethod
    def of(cls, template: Learner, public: int) -> Costs:
        algo, training = template.algo, template.training
        public_step = bool(getattr(template, "sources", None) or getattr(template, "embeds", False))
        include_self = bool(getattr(template, "own_candidates", False))
        distill = template.flops("train", training.batch_size + training.public_batch_size)
        if include_self:
            distill += template.flops("forward", training.public_batch_size)
        payload = template.make_message(0.0) if template.sends else None
        return cls(
            sends=template.sends,
            heads=template.heads,
            plain=template.flops("train", training.batch_size),
            distill=distill,
            public_step=public_step,
            include_self=include_self,
            size=len(payload) if payload is not None else 0,
            message_flops=template.message_flops(),
            cycle=max(1, -(-public // max(1, getattr(algo, "share_size", 1)))),
            max_staleness=getattr(algo, "max_staleness", None),
            rounds=getattr(template, "rounds", False),
        )


class Schedule:
    """Stands in for a learner when only the schedule matters (``--timing-only``): the same
    FLOPs per step and per message and the same message sizes, taken from a real learner of
    the same architecture, and no training at all.

    Cache ages are estimated, not sampled: a peer's entries are its last ``public /
    share_size`` messages (one pass over the public set), so a step's mean age is the mean
    age of those and its max the oldest of them.
    """

    def __init__(self, agent: int, costs: Costs) -> None:
        self.agent, self.costs = agent, costs
        self.sends, self.heads, self.size = costs.sends, costs.heads, costs.size
        self.plain, self.distill = costs.plain, costs.distill
        self.public_step, self.include_self = costs.public_step, costs.include_self
        self.cycle, self.max_staleness = costs.cycle, costs.max_staleness
        self.rounds = costs.rounds
        self.cache: dict[int, deque[float]] = {}  # peer -> production times of its cached chunks
        self.total = 0.0  # sum of all those times
        self.count = 0
        self.oldest: float | None = None  # the earliest of them; None: to be found again
        self.degree: Callable[[], int] = lambda: 0

    def begin_step(self, now: float) -> Step:
        if not (self.public_step and (self.cache or self.include_self)):
            return Step(None, self.plain)  # type: ignore[arg-type]
        if self.max_staleness is None:
            total, count = self.total, self.count
            if self.oldest is None and self.cache:
                self.oldest = min(times[0] for times in self.cache.values())
            oldest = self.oldest if self.cache else now
        else:
            fresh = [
                t for times in self.cache.values() for t in times if now - t <= self.max_staleness
            ]
            total, count, oldest = sum(fresh), len(fresh), min(fresh, default=now)
        summary = ((now * count - total) / count, now - oldest) if count else None
        return Step(None, self.distill, age_summary=summary)  # type: ignore[arg-type]

    def end_step(self, step: Step) -> None:
        pass

    def message_flops(self) -> float:
        return self.costs.message_flops

    def make_message(self, now: float) -> Stub | None:
        return Stub(self.agent, now, self.size) if self.size else None

    def absorb(self, payload: Stub, now: float) -> None:
        times = self.cache.get(payload.sender)
        if times is None:
            times = self.cache[payload.sender] = deque()
        first = times[0] if times else None
        times.append(payload.produced)
        self.total += payload.produced
        self.count += 1
        if len(times) > self.cycle:
            self.total -= times.popleft()
            self.count -= 1
        if self.oldest is not None and times[0] != first:  # keep the earliest time known when cheap
            if times[0] <= self.oldest:
                self.oldest = times[0]
            elif first == self.oldest:
                self.oldest = None  # this peer held the earliest: look again at the next step

    def teacher_ages(self) -> dict[int, tuple[float, int]]:
        return {}

    def evaluate(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.empty(0), np.empty(0), np.empty((0, 0))


def build_schedules(
    data: pydantic.BaseModel,
    models: list[pydantic.BaseModel],
    algo: pydantic.BaseModel,
    training: pydantic.BaseModel,
    seed: int,
) -> list[Schedule]:
    """Timing-only stand-ins: one real learner per distinct architecture measures the costs."""
    dataset = DATASETS.get(data.dataset.kind)(stream(seed, "dataset"), **settings(data.dataset))
    public = int(round(len(dataset.y_train) * data.public_fraction))
    cls = ALGORITHMS.get(algo.name)
    shared = Shared(
        torch.from_numpy(dataset.x_train[:public]),
        torch.from_numpy(dataset.x_test[:1]),
        torch.from_numpy(dataset.y_test[:1]),
        dataset.classes,
    )
    x, y = torch.from_numpy(dataset.x_train[:1]), torch.from_numpy(dataset.y_train[:1])
    dist = torch.full((dataset.classes,), 1.0 / dataset.classes)
    templates: dict[str, Learner] = {}
    costs: dict[str, Costs] = {}
    out = []
    for i, spec in enumerate(models):
        key = repr(spec)
        if key not in templates:
            model = build(
                spec,
                dataset.input_shape,
                cls.heads_for(algo),
                dataset.classes,
                torch_generator(seed, "model", i),
            )
            templates[key] = cls(
                i, model, x, y, dist, shared, algo, training, stream(seed, "template", i)
            )
            costs[key] = Costs.of(templates[key], public)
        out.append(Schedule(i, costs[key]))
    check_population(cls, algo, models, [t.model for t in templates.values()])
    return out
