"""The learner interface the world drives, and the base every algorithm extends.

The world asks a learner to ``begin_step`` (read a private batch and the teacher cache),
``end_step`` (apply the gradient update), ``make_message`` (predictions for peers),
``absorb`` (a peer's message) and ``evaluate``. Each reports its cost in FLOPs; the world
turns FLOPs into simulated time. Nothing here knows about time except the timestamps
that messages carry. An algorithm is one subclass in its own file, registered in
``ALGORITHMS`` by name (see ``algorithms.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pydantic
import torch
import torch.nn.functional as F

from ..registry import Registry
from .models import HeadedModel, forward_flops, step_flops

ALGORITHMS = Registry("algorithm")
# shared [H], private [H] and per-class [H, C] accuracy of every head
Evaluation = tuple[np.ndarray, np.ndarray, np.ndarray]


class NonFiniteLoss(ArithmeticError):
    """A step's loss or update was NaN or infinite: the run cannot go on meaningfully."""

    def __init__(self, agent: int, start: float) -> None:
        super().__init__(
            f"agent {agent}'s loss became non-finite in its step started at t={start:.2f} s "
            "(diverged: try a lower training.lr or training.clip_grad_norm)"
        )
        self.agent, self.start = agent, start


@dataclass(frozen=True)
class Shared:
    """What every agent can see: the public inputs (never their labels) and the test set."""

    public_x: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: int


@dataclass(slots=True)
class Step:
    """The inputs of one local step, read when it starts; applied by ``end_step``."""

    batch: torch.Tensor  # private sample indices
    flops: float
    start: float = 0.0  # when it started (simulated seconds)
    public: torch.Tensor | None = None  # public sample ids
    # (head, teacher, which samples have one; None when all do)
    teachers: list[tuple[int, torch.Tensor, torch.Tensor | None]] = field(default_factory=list)
    # (peers' mean embedding [B, E], valid [B])
    embedding: tuple[torch.Tensor, torch.Tensor] | None = None
    # mean and max age of the predictions teachers read
    age_summary: tuple[float, float] | None = None
    # [peers, B, heads sent]: which cached predictions it may read
    valid: torch.Tensor | None = None
    # [student heads, candidate rows, B]: draws that decide between equally confident teachers
    ties: np.ndarray | None = None
    embed_ok: torch.Tensor | None = None  # [peers, B]: which cached embeddings it may read

    def staleness(self) -> tuple[float, float] | None:
        """Mean and max age of the predictions this step distils from (None: it uses none)."""
        return self.age_summary


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
    # its current number of neighbours; set by the world
    degree: Callable[[], int] = staticmethod(lambda: 0)

    @classmethod
    def heads_for(cls, algo: pydantic.BaseModel) -> int:
        return 1

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
        self._opt: torch.optim.Optimizer | None = None  # made at the first step

    @property
    def opt(self) -> torch.optim.Optimizer:
        """The optimizer, made when first needed: a timing-only template never steps, and the
        first optimizer a process makes costs a second of imports."""
        if self._opt is None:
            t, params = self.training, self.model.parameters()
            if t.optimizer == "adam":
                self._opt = torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
            else:
                self._opt = torch.optim.SGD(
                    params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay
                )
        return self._opt

    @opt.setter
    def opt(self, optimizer: torch.optim.Optimizer) -> None:  # agents sharing one model
        self._opt = optimizer

    @property
    def heads(self) -> int:
        return self.model.heads

    def mode(self, train: bool) -> None:
        """Switch train/eval only when it changes: ``Module.train`` walks every submodule."""
        if self.model.training != train:
            self.model.train(train)

    def flops(self, kind: str, batch: int) -> float:
        """FLOPs of a ``"train"`` step or a ``"forward"`` pass on ``batch`` samples (memoised)."""
        key = (kind, batch)
        if key not in self._flops:
            count = step_flops if kind == "train" else forward_flops
            self._flops[key] = count(self.model, self.input_shape, batch)
        return self._flops[key]

    def begin_step(self, now: float) -> Step:
        batch = torch.from_numpy(self.rng.integers(self.private, size=self.training.batch_size))
        return Step(batch, self.flops("train", self.training.batch_size), now)

    def end_step(self, step: Step) -> None:
        """One SGD step: cross-entropy on head 0, plus the distillation terms of ``step``."""
        xb = self.x.index_select(0, step.batch)  # as x[batch], without advanced indexing's overhead
        if step.public is not None:
            xb = torch.cat([xb, self.shared.public_x.index_select(0, step.public)])
        self.mode(train=True)
        logits, emb = self.model(xb)
        n = len(step.batch)
        loss = F.cross_entropy(logits[0, :n], self.y[step.batch])
        tau = self.algo.temperature
        for head, teacher, valid in step.teachers:
            if valid is None:  # every public sample has a teacher: no masking
                student, target = logits[head, n:], teacher
            elif valid.any():
                student, target = logits[head, n:][valid], teacher[valid]
            else:
                continue
            student = F.log_softmax(student / tau if tau != 1.0 else student, -1)
            kl = F.kl_div(student, target, reduction="batchmean")
            factor = self.weights[head] * tau**2
            loss = loss + (factor * kl if factor != 1.0 else kl)
        if step.embedding is not None and step.embedding[1].any():
            target, valid = step.embedding
            loss = loss + self.algo.embedding_weight * F.mse_loss(emb[n:][valid], target[valid])
        if not torch.isfinite(loss):
            raise NonFiniteLoss(self.agent, step.start)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.training.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.training.clip_grad_norm)
        self.opt.step()

    def message_flops(self) -> float:
        return 0.0

    def make_message(self, now: float) -> bytes | None:
        return None

    def absorb(self, payload: bytes, now: float) -> None:
        pass

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
