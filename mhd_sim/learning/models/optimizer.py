"""The optimizers a learner steps with. SGD is written out: the same arithmetic as
``torch.optim.SGD`` on the CPU (its single-tensor path, operation for operation, so results
are bit-identical), without the per-step bookkeeping that cost a small model a tenth of its
step (profiling hooks, parameter groups, state lookups)."""

from __future__ import annotations

from collections.abc import Iterable

import pydantic
import torch


class SGD:
    """SGD with momentum and weight decay (no dampening, no Nesterov), as ``torch.optim.SGD``.

    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = SGD([w], lr=0.5, momentum=0.9)
    >>> w.grad = torch.tensor([2.0]); opt.step(); w.grad = torch.tensor([2.0]); opt.step()
    >>> round(w.item(), 6)  # 1 − 0.5·2, then − 0.5·(0.9·2 + 2)
    -1.9
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        self.params = list(params)
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.buffers: list[torch.Tensor | None] = [None] * len(self.params)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g, self.buffers[i] = direction(p.grad, p, self.buffers[i], self.momentum,
                                           self.weight_decay)  # fmt: skip
            p.add_(g, alpha=-self.lr)


def direction(
    g: torch.Tensor,
    p: torch.Tensor,
    buf: torch.Tensor | None,
    momentum: float,
    weight_decay: float,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """SGD's step direction from gradient ``g`` of parameter ``p`` and the momentum buffer
    ``buf`` (updated in place; None: the first step), with the buffer to keep: the one
    arithmetic of both engines, elementwise, so ``p`` and ``g`` may be one agent's or stacked
    agents'. The step is ``p − lr · direction``."""
    if weight_decay:
        g = g.add(p, alpha=weight_decay)
    if momentum:
        if buf is None:
            buf = g.detach().clone()
        else:
            buf.mul_(momentum).add_(g)
        g = buf
    return g, buf


def optimizer(
    training: pydantic.BaseModel, params: Iterable[torch.Tensor]
) -> SGD | torch.optim.Adam:
    """The optimizer that ``training`` names, over ``params``."""
    if training.optimizer == "adam":
        return torch.optim.Adam(params, lr=training.lr, weight_decay=training.weight_decay)
    return SGD(
        params, lr=training.lr, momentum=training.momentum, weight_decay=training.weight_decay
    )
