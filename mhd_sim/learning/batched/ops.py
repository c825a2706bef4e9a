"""What the world sees of the batched engine: a proxy learner per agent, and the queued ops."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..learner import Learner
from ..seam import Step

if TYPE_CHECKING:
    from .engine import Engine


@dataclass(eq=False)
class Pending:
    """A message whose size is known now and whose predictions are computed later."""

    sender: int
    produced: float
    ids: np.ndarray
    size: int
    probs: torch.Tensor | None = None  # [samples, heads sent, classes], as stored in caches
    conf: torch.Tensor | None = None  # [samples, heads sent]: the confidences it carries

    def __len__(self) -> int:
        return self.size


@dataclass(eq=False)
class Op:
    kind: str  # train | message | absorb
    agent: int
    step: Step | None = None
    message: Pending | None = None
    slot: int = 0
    ids: torch.Tensor | None = None
    newer: torch.Tensor | None = None  # absorb: [n, heads sent] entries it writes (None: all)
    ended: bool = False
    cancelled: bool = False


@dataclass
class Group:
    """Agents that share an architecture: their parameters stacked on a leading dimension."""

    agents: torch.Tensor  # agent ids, ascending
    base: torch.nn.Module  # the architecture, on the meta device
    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    momentum: dict[str, torch.Tensor] = field(default_factory=dict)
    row: dict[int, int] = field(default_factory=dict)  # agent -> its row in the stacks


class Proxy:
    """What the world calls: the schedule part now, the tensor part queued in the engine."""

    def __init__(self, engine: Engine, learner: Learner) -> None:
        self.engine, self.learner, self.i = engine, learner, learner.agent
        self.open: Op | None = None

    def __getattr__(self, name: str) -> Any:  # sends, heads, message_flops, teacher_ages, ...
        return getattr(self.learner, name)

    def begin_step(self, now: float) -> Step:
        if self.open is not None:  # its previous step was abandoned: the agent went offline
            self.open.cancelled = True
        plan = getattr(self.learner, "plan", None)
        step = plan.step(now) if plan is not None else self.learner.begin_step(now)
        self.open = self.engine.queue(Op("train", self.i, step=step))
        return step

    def end_step(self, step: Step) -> None:
        self.open.ended, self.open = True, None
        self.engine.maybe_flush()

    def make_message(self, now: float) -> Pending | None:
        learner = self.learner
        if len(learner.wiring.heads_sent) == 0:
            return None
        msg = Pending(self.i, now, learner.plan.next_chunk(), learner.message_bytes)
        self.engine.queue(Op("message", self.i, message=msg))
        return msg

    def absorb(self, msg: Pending, now: float) -> None:
        learner, device = self.learner, self.engine.device
        k, ids, newer = learner.plan.store(
            msg.sender, msg.ids, msg.produced, learner.wiring.heads_sent
        )
        self.engine.ensure_slots(k + 1)
        ids_t = torch.from_numpy(ids).to(device)
        newer_t = None if newer is None else torch.from_numpy(newer).to(device)
        self.engine.queue(Op("absorb", self.i, message=msg, slot=k, ids=ids_t, newer=newer_t))

    def evaluate(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.engine.evaluation(self.i)
