"""The base every algorithm's learner extends: an agent trained on its private data alone.

The world drives it through the seam's calls (``seam.py``): ``begin_step``, ``end_step``,
``message_flops``, ``make_message``, ``absorb`` and ``evaluate``. Here those calls are composed
from the engine-learner contract's points (``contract.py``): the plan's ``step``,
``next_chunk`` and ``store``, and the learner's ``prepare``, ``train``, ``payload``, ``decode``
and ``write``, which every engine calls in the same order. An algorithm is one subclass in its
own file, registered in ``ALGORITHMS`` by name (``algorithms/__init__.py``); it overrides what
differs: the step's ``inputs`` and ``loss``, what a message carries, its plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydantic
import torch
import torch.nn.functional as F

from ..contract import LocalPlan, LocalStep
from ..models.headed import HeadedModel, forward_flops, mode_free, step_flops
from ..models.optimizer import SGD, optimizer
from ..seam import Evaluation, NonFiniteLoss, Rounds
from .settings import IsolatedSettings


@dataclass(frozen=True)
class Shared:
    """What every agent can see: the public inputs (never their labels) and the test set."""

    public_x: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: int


def accuracy(
    predicted: torch.Tensor, y: torch.Tensor, classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Accuracy [..., H] and per-class accuracy [..., H, C] of predicted labels [..., H, N]
    (leading dimensions: agents, for the batched engine).

    >>> acc, per_class = accuracy(torch.tensor([[0, 1, 1, 1]]), torch.tensor([0, 1, 0, 1]), 2)
    >>> acc.tolist(), per_class.tolist()
    ([0.75], [[0.5, 1.0]])
    """
    correct = (predicted == y).float()
    per_class = torch.zeros(*correct.shape[:-1], classes, device=y.device).index_add_(
        -1, y, correct
    )
    per_class /= torch.bincount(y, minlength=classes).clamp_min(1)
    return correct.mean(-1), per_class


class Learner:
    """An agent trained on its private data alone; the base every algorithm extends."""

    sends = False
    share_every: int | None = None  # local steps between messages (None: it sends none)
    Settings = IsolatedSettings
    Plan = LocalPlan  # the schedule half: what a step draws, what messages cover and where
    message_bytes = 0  # a message's size on the wire, known before it is made
    # its current number of neighbours; set by the world
    neighbour_count: Callable[[], int] = staticmethod(lambda: 0)

    def __init__(
        self,
        agent: int,
        model: HeadedModel,
        x: torch.Tensor,
        y: torch.Tensor,
        label_dist: torch.Tensor,
        shared: Shared,
        algo: pydantic.BaseModel,
        training: pydantic.BaseModel,
        rng: np.random.Generator,
    ) -> None:
        self.agent, self.model, self.x, self.y = agent, model, x, y
        self.label_dist, self.shared, self.algo, self.training, self.rng = (
            label_dist,
            shared,
            algo,
            training,
            rng,
        )
        self.input_shape = tuple(x.shape[1:])
        self.private = len(y)  # an int: len() of a tensor costs more, once per step
        self.on_cpu = shared.public_x.device.type == "cpu"
        self._flops: dict[tuple[str, int], float] = {}
        self.modal = not mode_free(model)  # whether train/eval mode changes what it computes
        self._opt: SGD | torch.optim.Optimizer | None = None  # made at the first step
        self.configure()
        self.plan = self.new_plan(self.private, rng)

    def configure(self) -> None:
        """What a subclass sets up before its plan is made (its wiring, say)."""

    def new_plan(self, private: int, rng: np.random.Generator) -> LocalPlan:
        """The schedule half of an agent with ``private`` samples drawing from ``rng``: its
        own, or a timing-only stand-in's (this learner then a template of the architecture)."""
        batch = self.training.batch_size
        return self.Plan(private, batch, rng, self.flops("train", batch))

    @property
    def opt(self) -> SGD | torch.optim.Optimizer:
        """The optimizer, made when first needed: a timing-only template never steps."""
        if self._opt is None:
            self._opt = optimizer(self.training, self.model.parameters())
        return self._opt

    def join(self, first: Learner) -> None:
        """Share ``first``'s model state (agents that train one model: its optimizer)."""
        self._opt = first.opt

    @property
    def heads(self) -> int:
        return self.model.heads

    def mode(self, train: bool) -> None:
        """Switch train/eval only where it matters and when it changes: ``Module.train`` walks
        every submodule."""
        if self.modal and self.model.training != train:
            self.model.train(train)

    def flops(self, kind: str, batch: int) -> float:
        """FLOPs of a ``"train"`` step or a ``"forward"`` pass on ``batch`` samples (memoised)."""
        key = (kind, batch)
        if key not in self._flops:
            count = step_flops if kind == "train" else forward_flops
            self._flops[key] = count(self.model, self.input_shape, batch)
        return self._flops[key]

    @property
    def rounds(self) -> Rounds | None:
        """A round-based algorithm's protocol (None: its messages go to peers)."""
        return None

    # --- the seam's calls, composed from the contract's points: not to be overridden --------

    def begin_step(self, now: float) -> LocalStep:
        step = self.plan.step(now)
        self.prepare(step)
        return step

    def end_step(self, step: LocalStep) -> None:
        self.train(step)

    def make_message(self, now: float) -> bytes | None:
        ids = self.plan.next_chunk()
        return None if ids is None else self.payload(ids, now)

    def absorb(self, payload: bytes, sender: int, produced: float) -> None:
        msg = self.decode(payload)
        place = self.plan.store(sender, msg.ids, produced, msg.heads)
        if place is not None:
            self.write(msg, place, produced)

    # --- the tensor half -----------------------------------------------------------------

    def prepare(self, step: LocalStep) -> None:
        """Keep what the step reads of the learner's state when it begins (none here)."""

    def train(self, step: LocalStep) -> None:
        """One optimizer step on the step's loss: forward, loss, backward, update."""
        batch = torch.from_numpy(step.batch)
        if not self.on_cpu:
            batch = batch.to(self.x.device)
        xb = self.inputs(step, batch)
        self.mode(train=True)
        logits, emb = self.model(xb)
        loss = self.loss(step, batch, logits, emb)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(self.agent, step.start)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.training.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.training.clip_grad_norm)
        self.opt.step()

    def inputs(self, step: LocalStep, batch: torch.Tensor) -> torch.Tensor:
        """The step's inputs: the private batch (as x[batch], without advanced indexing's
        overhead)."""
        return self.x.index_select(0, batch)

    def loss(
        self, step: LocalStep, batch: torch.Tensor, logits: torch.Tensor, emb: torch.Tensor
    ) -> torch.Tensor:
        """Cross-entropy of the main head on the private batch."""
        return F.cross_entropy(logits[0, : len(batch)], self.y[batch])

    def message_flops(self) -> float:
        return 0.0

    def payload(self, ids: np.ndarray, now: float) -> bytes:
        """A message's bytes on public samples ``ids`` (a learner whose plan makes messages)."""
        raise NotImplementedError(f"{type(self).__name__}'s plan makes messages: define payload")

    def decode(self, payload: bytes) -> Any:
        """A message's values from its bytes, as ``write`` keeps them."""
        raise NotImplementedError(f"{type(self).__name__} receives messages: define decode")

    def write(self, msg: Any, place: Any, produced: float) -> None:
        """Keep a message's values where the plan put them (``Plan.store``)."""

    def teacher_rows(self, now: float) -> list[tuple]:
        """Teacher diagnostics since the last evaluation (``teachers.csv``; none: it has no
        teachers)."""
        return []

    def teacher_ages(self) -> dict[int, tuple[float, int]]:
        """Per peer: (sum, count) of the ages of its predictions this agent distilled from."""
        return {}

    @torch.no_grad()
    def evaluate(self, chunk: int = 4096) -> Evaluation:
        """Shared and private accuracy per head on the whole test set, and per class.

        Private accuracy is Σ_c π_i(c)·acc_c: exact, weighting the global per-class accuracy
        by this agent's own label distribution instead of resampling a private test set.
        """
        shared, per_class = self._correct(chunk)
        private = per_class @ self.label_dist
        return shared.cpu().numpy(), private.cpu().numpy(), per_class.cpu().numpy()

    @torch.no_grad()
    def _correct(self, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
        """Accuracy [H] and per-class accuracy [H, C] of every head on the whole test set."""
        self.mode(train=False)
        x, y, classes = self.shared.test_x, self.shared.test_y, self.shared.classes
        predicted = torch.cat(
            [self.model(x[i : i + chunk])[0].argmax(-1) for i in range(0, len(y), chunk)], dim=1
        )
        return accuracy(predicted, y, classes)
