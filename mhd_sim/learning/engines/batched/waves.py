"""The tensor work of one wave of the batched engine: absorbs as one scatter into the shared
cache, steps of many agents as one ``vmap(grad(...))``, their messages as one forward."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, grad, vmap

from ...algorithms.mhd import MHD
from ...distillation import messages
from ...distillation.diagnostics import chosen_arrays
from ...distillation.teachers import Choice, confidence, reference_teachers
from ...models.optimizer import direction
from ...seam import NonFiniteLoss
from ..deferred import Op
from .ops import EngineState as Engine
from .ops import Group


def absorb(engine: Engine, ops: list[Op]) -> None:
    """All ready absorbs as one scatter; where two write the same entry, the later wins."""
    if not ops:
        return
    absorb_embeddings(engine, [op for op in ops if op.place[3] is not None])
    A, K, P, S, C = engine.cache.shape
    flat = engine.cache.view(A * K * P, S, C)
    ranked = engine.learners[ops[0].agent].plan.ranked
    pairs = {(op.agent, op.place[0]) for op in ops}
    if len(pairs) == len(ops) and all(op.place[2] is None for op in ops):
        # the usual wave: whole messages, at most one per (agent, sender): no entry written twice
        index: dict[int, int] = {}
        for op in ops:
            index.setdefault(id(op.message), len(index))
        probs = torch.stack([op.message.probs for op in {id(o.message): o for o in ops}.values()])
        which = torch.tensor([index[id(op.message)] for op in ops], device=engine.device)
        base = torch.tensor([(op.agent * K + op.place[0]) * P for op in ops],
                            device=engine.device)  # fmt: skip
        at = (base[:, None] + torch.stack([op.place[1] for op in ops])).reshape(-1)
        flat[at] = probs[which].reshape(-1, S, C)
        if ranked:
            conf = torch.stack([o.message.conf for o in {id(o.message): o for o in ops}.values()])
            engine.conf.view(A * K * P, S)[at] = conf[which].reshape(-1, S)
        return
    rows, cols, vals, confs = [], [], [], []
    for op in ops:
        slot, ids, newer, _ = op.place
        keep = (
            torch.ones(len(ids), S, dtype=torch.bool, device=engine.device)
            if newer is None
            else newer
        )
        r, c = keep.nonzero(as_tuple=True)
        rows.append((op.agent * K + slot) * P + ids[r])
        cols.append(c)
        vals.append(op.message.probs[r, c])
        if ranked:
            confs.append(op.message.conf[r, c])
    at, c, v = torch.cat(rows), torch.cat(cols), torch.cat(vals)
    pick = last_writes(at * S + c)
    flat[at[pick], c[pick]] = v[pick]
    if ranked:
        engine.conf.view(A * K * P, S)[at[pick], c[pick]] = torch.cat(confs)[pick]


def absorb_embeddings(engine: Engine, ops: list[Op]) -> None:
    """The embeddings of the absorbs whose plan stored them (the samples it said are newer),
    as one scatter into the shared cache; the later of two writes to an entry wins."""
    if not ops:
        return
    A, K, P, W = engine.emb.shape
    rows = torch.cat([(op.agent * K + op.place[0]) * P + op.place[1][op.place[3]] for op in ops])
    values = torch.cat([F.pad(op.message.emb[op.place[3]], (0, W - op.message.emb.shape[-1]))
                        for op in ops])  # fmt: skip
    pick = last_writes(rows)
    engine.emb.view(A * K * P, W)[rows[pick]] = values[pick]


def last_writes(key: torch.Tensor) -> torch.Tensor:
    """The positions of the last write to each key, in the order written: a scatter of only
    these gives every entry the later of two writes, as per-agent absorbs in turn do."""
    order = torch.argsort(key, stable=True)
    sk = key[order]
    last = torch.ones_like(sk, dtype=torch.bool)
    last[:-1] = sk[1:] != sk[:-1]
    return order[last]


def wave_embeddings(engine: Engine, ops: list[Op], agents: torch.Tensor, u: torch.Tensor) -> tuple:
    """Per op, the peers' mean embedding of its public samples [G, B, W] and which samples have
    one (0/1 [G, B]), from the shared cache and each step's ``embed_ok`` (as MHD.prepare)."""
    G, B = u.shape
    A, K, P, W = engine.emb.shape
    ok = torch.zeros(G, K, B, device=engine.device)
    for g, op in enumerate(ops):
        e = op.step.embed_ok
        ok[g, : len(e)] = torch.from_numpy(e).to(engine.device, ok.dtype)
    slots = torch.arange(K, device=engine.device)[None, :, None]
    at = ((agents[:, None, None] * K + slots) * P + u[:, None, :]).reshape(-1)
    cached = engine.emb.view(A * K * P, W).index_select(0, at).view(G, K, B, W)
    total = (cached * ok[..., None]).sum(1)
    return total / ok.sum(1).clamp_min(1)[..., None], (ok.sum(1) > 0).to(ok.dtype)


def wave_teachers(
    engine: Engine, ops: list[Op], agents: torch.Tensor, u: torch.Tensor, own: torch.Tensor | None
) -> list[Choice]:
    """Per student head, the teachers [G, B, C] of every op's agent from the shared cache (and
    the agents' own logits ``own`` [G, H, B, C] with ``include_self``)."""
    G, B = u.shape
    A, K, P, S, C = engine.cache.shape
    first, algo = engine.learners[ops[0].agent], engine.algo
    valid = torch.zeros(G, K, B, dtype=torch.bool, device=engine.device)
    for g, op in enumerate(ops):
        v = op.step.valid
        valid[g, : len(v)] = torch.from_numpy(v)
    slots = torch.arange(K, device=engine.device)[None, :, None]
    at = ((agents[:, None, None] * K + slots) * P + u[:, None, :]).reshape(-1)
    probs = engine.cache.view(A * K * P, S * C).index_select(0, at).view(G, K, B, S, C).float()
    ranks = {}
    if first.plan.ranked:
        ties = torch.from_numpy(np.stack([_ties(first, op.step.ties, K) for op in ops]))
        conf = engine.conf.view(A * K * P, S).index_select(0, at).view(G, K, B, S)
        ranks = {"conf": conf, "ties": ties.to(engine.device)}
        if own is not None:  # rounded as a message would carry it, as per-agent teachers do
            own_conf = messages.quantize(confidence(own, algo.confidence), algo.encoding)
            ranks["own_conf"] = torch.from_numpy(own_conf).to(engine.device)
    return reference_teachers(
        probs,
        valid,
        first.wiring.sources,
        first.wiring.column,
        algo.aggregation,
        algo.temperature,
        None if own is None else torch.softmax(own, -1),
        **ranks,
        era=algo.era_temperature,
    )


def record(engine: Engine, ops: list[Op], chosen: list[Choice]) -> None:
    """The teacher diagnostics of a wave's steps, in each agent's log (as ``MHD.end_step``)."""
    arrays = chosen_arrays(chosen)
    for g, op in enumerate(ops):
        log = engine.learners[op.agent].teacher_log
        if log is not None:
            log.record_step(op.step.public, arrays, row=g)


def _ties(learner: MHD, ties: np.ndarray, slots: int) -> np.ndarray:
    """An agent's tie draws [J, sources·K + 1, B], made for its own K peer slots, laid out for
    the engine's ``slots`` (the rows of slots it does not have are never candidates)."""
    J, _, B = ties.shape
    sources = learner.wiring.sources
    width = max(map(len, sources.values()))
    K = (ties.shape[1] - 1) // width
    out = np.zeros((J, width * slots + 1, B))
    for s in range(width):
        out[:, s * slots : s * slots + K] = ties[:, s * K : (s + 1) * K]
    for j, src in enumerate(sources.values()):
        out[j, len(src) * slots] = ties[j, len(src) * K]
    return out


def _forward_each(group: Group, params: dict, buffers: dict, x: torch.Tensor) -> tuple:
    """Each stacked row of ``group`` on its own inputs ``x`` [G, ...]."""
    return vmap(lambda p, b, xi: functional_call(group.base, (p, b), (xi,)))(params, buffers, x)


def grad_fn(engine: Engine, group: Group, public: bool) -> Callable[..., dict]:
    key = (id(group), public)
    if key not in engine._grad:
        learner = engine.learners[int(group.agents[0])]
        heads = list(learner.wiring.sources) if engine.mhd and public else []
        embeds = engine.mhd and public and learner.plan.embeds
        if heads or embeds:  # the learner's own loss terms, mapped over the stacked agents
            tau, head_weights = engine.algo.temperature, learner.wiring.weights
            distill_loss, embedding_loss = type(learner).distill_loss, type(learner).embedding_loss

        def loss(
            params: dict, buffers: dict, x: Tensor, y: Tensor, teachers: Tensor, weights: Tensor,
            emb_target: Tensor, emb_valid: Tensor,
        ) -> Tensor:  # fmt: skip
            logits, emb = functional_call(group.base, (params, buffers), (x,))
            n = y.shape[0]
            total = F.cross_entropy(logits[0, :n], y)
            if heads:
                targets = [(m, teachers[j], weights[j]) for j, m in enumerate(heads)]
                total = distill_loss(total, logits, n, targets, head_weights, tau, weighted=True)
            if embeds:  # the group's own width of the cache's columns
                mine = learner.embedded(emb)[n:]
                target = emb_target[..., : learner.emb_width]
                total = embedding_loss(total, mine, target, emb_valid,
                                       engine.algo.embedding_weight, weighted=True)  # fmt: skip
            return total

        engine._grad[key] = vmap(grad(loss))
    return engine._grad[key]


def train(engine: Engine, ops: list[Op]) -> None:
    group = engine.groups[ops[0].agent]
    agents = torch.tensor([op.agent for op in ops], device=engine.device)
    rows = torch.tensor([group.row[op.agent] for op in ops], device=engine.device)
    batch = torch.from_numpy(np.stack([op.step.batch for op in ops])).to(engine.device)
    x = engine.x[engine.offset[agents][:, None] + batch]
    y = engine.y[engine.offset[agents][:, None] + batch]
    public = getattr(ops[0].step, "public", None) is not None
    params = {k: v[rows] for k, v in group.params.items()}
    buffers = {k: v[rows] for k, v in group.buffers.items()}
    if public:
        u = torch.from_numpy(np.stack([op.step.public for op in ops])).to(engine.device)
        own = None
        if engine.learners[ops[0].agent].wiring.own_candidates:  # its own heads now, as per agent
            with torch.no_grad():
                group.base.train(False)
                own = _forward_each(group, params, buffers, engine.shared.public_x[u])[0]
                group.base.train(True)
        x = torch.cat([x, engine.shared.public_x[u]], 1)
        chosen = wave_teachers(engine, ops, agents, u, own)
        empty = torch.zeros(len(ops), 0, device=engine.device)
        teachers = torch.stack([c.target for c in chosen], 1) if chosen else empty  # [G,h,B,C]
        weights = torch.stack([c.ok.float() for c in chosen], 1) if chosen else empty  # [G,h,B]
        if engine.learners[ops[0].agent].plan.embeds:
            emb_target, emb_valid = wave_embeddings(engine, ops, agents, u)
        else:
            emb_target = emb_valid = empty
    else:
        teachers = weights = emb_target = emb_valid = torch.zeros(len(ops), 0, device=engine.device)
    grads = grad_fn(engine, group, public)(
        params, buffers, x, y, teachers, weights, emb_target, emb_valid
    )
    finite = torch.stack([torch.isfinite(g.flatten(1)).all(1) for g in grads.values()]).all(0)
    if not bool(finite.all()):  # as a per-agent step would: the first agent that diverged
        op = ops[int((~finite).nonzero()[0])]
        raise NonFiniteLoss(op.agent, op.step.start)
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
        buf = group.momentum[k][rows] if t.momentum else None  # a copy of the agents' rows
        g, buf = direction(g, p, buf, t.momentum, t.weight_decay)
        if t.momentum:
            group.momentum[k][rows] = buf
        group.params[k][rows] = p.add(g, alpha=-t.lr)
    if public:
        record(engine, ops, chosen)


@torch.no_grad()
def predict(engine: Engine, ops: list[Op]) -> None:
    """Predictions for peers, all of a group's pending messages in one forward; each goes
    through the real encoding, so peers store exactly what the bytes would carry."""
    group = engine.groups[ops[0].agent]
    rows = torch.tensor([group.row[op.agent] for op in ops], device=engine.device)
    ids = torch.from_numpy(np.stack([op.message.ids for op in ops])).to(engine.device)
    params = {k: v[rows] for k, v in group.params.items()}
    buffers = {k: v[rows] for k, v in group.buffers.items()}
    logits, emb = _forward_each(group, params, buffers, engine.shared.public_x[ids])
    first, algo = engine.learners[ops[0].agent], engine.algo
    sent = first.wiring.heads_sent
    logits = logits[:, torch.from_numpy(sent).long().to(engine.device)]  # [G, S, n, C]
    probs, confs = first.message_values(logits)  # the learner's, over the stacked agents
    confs = [None] * len(ops) if confs is None else confs
    embs = first.embedded(emb) if first.plan.embeds else [None] * len(ops)  # [G, n, W]
    for op, p, c, e in zip(ops, probs, confs, embs):
        msg = op.message  # encoded for the values a receiver decodes (the header's time is not)
        payload = messages.encode(op.agent, 0.0, sent, msg.ids, p, algo.encoding, algo.topk, e, c)
        assert len(payload) == msg.size, "message size known in advance must match its encoding"
        decoded = messages.decode(payload, half=engine.cache.dtype == torch.float16)
        msg.values, msg.probs = decoded, decoded.probs.to(engine.device, engine.cache.dtype)
        if decoded.confidence is not None:
            msg.conf = torch.from_numpy(decoded.confidence).to(engine.device)
        if decoded.embeddings is not None:
            msg.emb = decoded.embeddings.to(engine.device)
