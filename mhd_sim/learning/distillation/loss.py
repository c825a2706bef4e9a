"""The distillation loss, written once for every engine.

Per distilling head m, on the public part of the batch: ν_m · τ² · KL(teacher ‖
softmax(h^m(u)/τ)), averaged over the samples that have a teacher. Per-agent execution
selects those samples (``valid``, a boolean mask); the batched engine, which maps this same
function over stacked agents with ``vmap`` and cannot select rows (shapes must not depend on
data), weighs every row by 0 or 1 instead (``weights``). Both are the same quantity; they
differ only in the order of the floating-point sums (a test holds them to rounding).

>>> logits = torch.zeros(2, 3, 2)  # heads, 1 private + 2 public samples, classes
>>> teacher = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
>>> float(add_distillation(torch.tensor(1.0), logits, 1, [(1, teacher, None)], [0.0, 1.0], 1.0))
1.0
>>> w = torch.tensor([1.0, 1.0])  # the weighted form gives the same value
>>> float(add_distillation(torch.tensor(1.0), logits, 1, [(1, teacher, w)], [0.0, 1.0], 1.0,
...                        weighted=True))
1.0

The embedding term is written the same way, for both engines:

>>> mine, target = torch.zeros(3, 2), torch.tensor([[1.0, 1.0], [2.0, 0.0], [9.0, 9.0]])
>>> float(add_embedding(torch.tensor(0.0), mine, target, torch.tensor([True, True, False]), 0.5))
0.75
>>> float(add_embedding(torch.tensor(0.0), mine, target, torch.tensor([1.0, 1.0, 0.0]), 0.5,
...                     weighted=True))
0.75
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def add_distillation(
    total: torch.Tensor,
    logits: torch.Tensor,
    n: int,
    targets: Sequence[tuple[int, torch.Tensor, torch.Tensor | None]],
    head_weights: Sequence[float],
    tau: float,
    weighted: bool = False,
) -> torch.Tensor:
    """``total`` plus each distilling head's term, in head order. ``logits`` [H, n + B, C]
    (private rows first), ``targets``: (student head, teacher [B, C], which rows have a
    teacher: a bool mask [B] or None for all, or with ``weighted`` a 0/1 float [B]),
    ``head_weights``: ν per head."""
    for head, teacher, valid in targets:
        student = logits[head, n:]
        if weighted:
            student = F.log_softmax(student / tau if tau != 1.0 else student, -1)
            rows = (torch.special.xlogy(teacher, teacher) - teacher * student).sum(-1)
            kl = (rows * valid).sum() / valid.sum().clamp_min(1.0)
        else:
            if valid is not None:  # some samples have no teacher: only the others count
                if not valid.any():
                    continue
                student, teacher = student[valid], teacher[valid]
            student = F.log_softmax(student / tau if tau != 1.0 else student, -1)
            kl = F.kl_div(student, teacher, reduction="batchmean")
        factor = head_weights[head] * tau**2
        total = total + (factor * kl if factor != 1.0 else kl)
    return total


def add_embedding(
    total: torch.Tensor,
    mine: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor,
    weight: float,
    weighted: bool = False,
) -> torch.Tensor:
    """``total`` plus ``weight`` times the mean squared error between the step's embeddings
    ``mine`` [B, W] on its public samples and the peers' mean ``target`` [B, W], over the
    samples that have one (``valid``: a bool mask [B], or with ``weighted`` a 0/1 float [B],
    as the batched engine maps it over stacked agents)."""
    if weighted:
        err = ((mine - target) ** 2).mean(-1)
        return total + weight * (err * valid).sum() / valid.sum().clamp_min(1.0)
    if not valid.any():
        return total
    return total + weight * F.mse_loss(mine[valid], target[valid])
