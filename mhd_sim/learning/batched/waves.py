"""The tensor work of one wave of the batched engine: absorbs as one scatter into the shared
cache, steps of many agents as one ``vmap(grad(...))``, their messages as one forward."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, grad, vmap

from .. import messages
from ..teachers import reference_teachers
from .ops import Group, Op

if TYPE_CHECKING:
    from .engine import Engine


def absorb(engine: Engine, ops: list[Op]) -> None:
    """All ready absorbs as one scatter; where two write the same entry, the later wins."""
    if not ops:
        return
    A, K, P, S, C = engine.cache.shape
    flat = engine.cache.view(A * K * P, S, C)
    pairs = {(op.agent, op.slot) for op in ops}
    if len(pairs) == len(ops) and all(op.newer is None for op in ops):
        # the usual wave: whole messages, at most one per (agent, sender): no entry written twice
        index: dict[int, int] = {}
        for op in ops:
            index.setdefault(id(op.message), len(index))
        probs = torch.stack([op.message.probs for op in {id(o.message): o for o in ops}.values()])
        which = torch.tensor([index[id(op.message)] for op in ops], device=engine.device)
        base = torch.tensor([(op.agent * K + op.slot) * P for op in ops], device=engine.device)
        at = (base[:, None] + torch.stack([op.ids for op in ops])).reshape(-1)
        flat[at] = probs[which].reshape(-1, S, C)
        return
    rows, cols, vals = [], [], []
    for op in ops:
        keep = (
            torch.ones(len(op.ids), S, dtype=torch.bool, device=engine.device)
            if op.newer is None
            else op.newer
        )
        r, c = keep.nonzero(as_tuple=True)
        rows.append((op.agent * K + op.slot) * P + op.ids[r])
        cols.append(c)
        vals.append(op.message.probs[r, c])
    at, c, v = torch.cat(rows), torch.cat(cols), torch.cat(vals)
    key = at * S + c
    order = torch.argsort(key, stable=True)
    sk = key[order]
    last = torch.ones_like(sk, dtype=torch.bool)
    last[:-1] = sk[1:] != sk[:-1]
    pick = order[last]
    flat[at[pick], c[pick]] = v[pick]


def wave_teachers(
    engine: Engine, ops: list[Op], rows: torch.Tensor, u: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Teachers [G, heads, B, C] and their weights [G, heads, B] from the shared cache."""
    G, B = u.shape
    A, K, P, S, C = engine.cache.shape
    valid = torch.zeros(G, K, B, S, dtype=torch.bool, device=engine.device)
    for g, op in enumerate(ops):
        v = op.step.valid
        valid[g, : len(v)] = v
    at = (rows[:, None, None] * K + torch.arange(K, device=engine.device)[None, :, None]) * P + u[
        :, None, :
    ]
    probs = (
        engine.cache.view(A * K * P, S * C)
        .index_select(0, at.reshape(-1))
        .view(G, K, B, S, C)
        .float()
    )
    first, algo = engine.learners[ops[0].agent], engine.algo
    chosen = reference_teachers(
        probs, valid, first.sources, first.column, algo.aggregation, algo.temperature
    )
    return torch.stack([t for _, t, _ in chosen], 1), torch.stack(
        [ok.float() for _, _, ok in chosen], 1
    )


def grad_fn(engine: Engine, group: Group, public: bool) -> Callable[..., dict]:
    key = (id(group), public)
    if key not in engine._grad:
        tau, heads, factors = (
            engine.algo.temperature if engine.mhd else 1.0,
            engine.student_heads if engine.mhd and public else [],
            engine.factors if engine.mhd else [],
        )

        def loss(
            params: dict, buffers: dict, x: Tensor, y: Tensor, teachers: Tensor, weights: Tensor
        ) -> Tensor:
            logits, _ = functional_call(group.base, (params, buffers), (x,))
            n = y.shape[0]
            total = F.cross_entropy(logits[0, :n], y)
            for j, (m, factor) in enumerate(zip(heads, factors)):
                student = logits[m, n:]
                student = F.log_softmax(student / tau if tau != 1.0 else student, -1)
                q, w = teachers[j], weights[j]
                rows = (torch.special.xlogy(q, q) - q * student).sum(-1)
                kl = (rows * w).sum() / w.sum().clamp_min(1.0)
                total = total + (factor * kl if factor != 1.0 else kl)
            return total

        engine._grad[key] = vmap(grad(loss))
    return engine._grad[key]


def train(engine: Engine, ops: list[Op]) -> None:
    group = engine.groups[ops[0].agent]
    agents = torch.tensor([op.agent for op in ops], device=engine.device)
    rows = torch.tensor([group.row[op.agent] for op in ops], device=engine.device)
    batch = torch.stack([op.step.batch for op in ops]).to(engine.device)
    x = engine.x[engine.offset[agents][:, None] + batch]
    y = engine.y[engine.offset[agents][:, None] + batch]
    public = ops[0].step.public is not None
    if public:
        u = torch.stack([op.step.public for op in ops])
        x = torch.cat([x, engine.shared.public_x[u]], 1)
        teachers, weights = wave_teachers(engine, ops, agents, u)
    else:
        teachers = weights = torch.zeros(len(ops), 0, device=engine.device)
    params = {k: v[rows] for k, v in group.params.items()}
    buffers = {k: v[rows] for k, v in group.buffers.items()}
    grads = grad_fn(engine, group, public)(params, buffers, x, y, teachers, weights)
    t = engine.training
    if t.clip_grad_norm is not None:
        # as torch.nn.utils.clip_grad_norm_: the norm of the per-tensor norms
        norm = torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads.values()]),
            dim=0,
        )
        scale = (t.clip_grad_norm / (norm + 1e-6)).clamp(max=1.0)
        grads = {k: g * scale.view(-1, *[1] * (g.dim() - 1)) for k, g in grads.items()}
    for k, g in grads.items():
        p = params[k]
        if t.weight_decay:
            g = g.add(p, alpha=t.weight_decay)
        if t.momentum:
            buf = group.momentum[k][rows].mul_(t.momentum).add_(g)
            group.momentum[k][rows] = buf
            g = buf
        group.params[k][rows] = p.add(g, alpha=-t.lr)


@torch.no_grad()
def predict(engine: Engine, ops: list[Op]) -> None:
    """Predictions for peers, all of a group's pending messages in one forward; each goes
    through the real encoding, so peers store exactly what the bytes would carry."""
    group = engine.groups[ops[0].agent]
    rows = torch.tensor([group.row[op.agent] for op in ops], device=engine.device)
    ids = torch.from_numpy(np.stack([op.message.ids for op in ops])).to(engine.device)
    params = {k: v[rows] for k, v in group.params.items()}
    buffers = {k: v[rows] for k, v in group.buffers.items()}
    logits, _ = vmap(lambda p, b, x: functional_call(group.base, (p, b), (x,)))(
        params, buffers, engine.shared.public_x[ids]
    )
    first = engine.learners[ops[0].agent]
    sent = torch.from_numpy(first.sent).long().to(engine.device)
    # [G, n, S, C]
    probs = torch.softmax(logits[:, sent], -1).permute(0, 2, 1, 3).contiguous().cpu().numpy()
    for op, p in zip(ops, probs):
        msg = op.message
        payload = messages.encode(
            msg.sender, msg.produced, first.sent, msg.ids, p, engine.algo.encoding, engine.algo.topk
        )
        assert len(payload) == msg.size, "message size known in advance must match its encoding"
        probs = messages.decode(payload, engine.cache.dtype).probs
        msg.probs = torch.from_numpy(probs).to(engine.device, engine.cache.dtype)
