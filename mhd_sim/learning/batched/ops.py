"""What the world sees of the batched engine: a proxy learner per agent, and the queued ops."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import messages
from ..learner import Learner, Step

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
        plan = getattr(self.learner, "plan", self.learner.begin_step)
        self.open = self.engine.queue(Op("train", self.i, step=plan(now)))
        return self.open.step

    def end_step(self, step: Step) -> None:
        self.open.ended, self.open = True, None
        self.engine.maybe_flush()

    def make_message(self, now: float) -> Pending | None:
        learner = self.learner
        if len(learner.sent) == 0:
            return None
        ids = learner.next_chunk()
        algo = learner.algo
        size = messages.encoded_size(
            len(ids),
            len(learner.sent),
            learner.shared.classes,
            algo.encoding,
            algo.topk,
            confidence=learner.ranked,
        )
        msg = Pending(self.i, now, ids, size)
        self.engine.queue(Op("message", self.i, message=msg))
        return msg

    def absorb(self, msg: Pending, now: float) -> None:
        k, ids, newer = self.learner.note(msg.sender, msg.ids, msg.produced, self.learner.sent)
        self.engine.ensure_slots(k + 1)
        self.engine.queue(Op("absorb", self.i, message=msg, slot=k, ids=ids, newer=newer))

    def evaluate(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.engine.evaluation(self.i)
