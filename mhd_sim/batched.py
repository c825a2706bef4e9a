"""Batched learning across agents: many agents' steps as one vmapped computation.

The schedule (when steps start and end, which messages go where, how big they are) never
depends on weights or predictions, so the world can run ahead while the tensor work waits.
Each agent gets a proxy learner that does the schedule part of every call at once (the
batches drawn, which cached predictions are fresh, message sizes: ``MHD.plan`` and
``MHD.note``) and queues the rest as an op: ``train`` (teachers from the cache, forward,
backward, SGD), ``message`` (predictions on a public chunk), ``absorb`` (store a peer's
predictions). Queues run in waves when results are needed (evaluations) or grow long: every
wave applies each agent's ready absorbs in one scatter, then the head ``train`` ops of all
agents that share an architecture as one ``vmap(grad(...))`` over stacked parameters, then
their ``message`` ops as one vmapped forward. An agent's ops run in its own order, and an
absorb waits until its message is computed, so every agent sees exactly the inputs it would
see executing alone; the results equal per-agent execution up to floating-point rounding
(a test compares them).

A train op whose step has not ended stops its agent's queue: an evaluation at time t sees
the weights of the steps ended by t, as in per-agent execution. A step abandoned when its
agent went offline is dropped when that agent starts its next one.
"""
from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, stack_module_state, vmap

from . import messages
from .algorithms import MHD, Learner, Step, accuracy, aggregate, sharpen

SUPPORTED = ("mhd", "distill", "isolated")
# Agents per vmapped computation: bounds the activations a wave holds at once (a wave can
# be ~700 agents). At 1,000 agents, chunks of 128 to all of a wave ran equally fast
# (32-34 s), 64 slower (37 s: more calls); 256 peaked lowest in memory.
CHUNK = 256


def unsupported(algo: Any, training: Any) -> list[str]:
    """Why a scenario cannot use the batched engine (empty: it can)."""
    out = []
    if algo.name not in SUPPORTED:
        out.append(f"algorithm {algo.name} (batched: {', '.join(SUPPORTED)})")
    if training.optimizer != "sgd":
        out.append(f"optimizer {training.optimizer} (batched: sgd)")
    if getattr(algo, "include_self", False):
        out.append("algorithm.include_self")
    if getattr(algo, "embedding_weight", 0) > 0:
        out.append("algorithm.embedding_weight > 0")
    return out


@dataclass(eq=False)
class Pending:
    """A message whose size is known now and whose predictions are computed later."""

    sender: int
    produced: float
    ids: np.ndarray
    size: int
    probs: torch.Tensor | None = None  # [samples, heads sent, classes], as stored in caches

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

    def __init__(self, engine: "Engine", learner: Learner) -> None:
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
        size = messages.encoded_size(len(ids), len(learner.sent), learner.shared.classes, algo.encoding, algo.topk)
        msg = Pending(self.i, now, ids, size)
        self.engine.queue(Op("message", self.i, message=msg))
        return msg

    def absorb(self, msg: Pending, now: float) -> None:
        k, ids, newer = self.learner.note(msg.sender, msg.ids, msg.produced, self.learner.sent)
        self.engine.ensure_slots(k + 1)
        self.engine.queue(Op("absorb", self.i, message=msg, slot=k, ids=ids, newer=newer))

    def evaluate(self) -> tuple[np.ndarray, np.ndarray]:
        return self.engine.evaluation(self.i)


class Engine:
    """The deferred, batched execution of a population's learning (see the module docstring)."""

    def __init__(self, learners: list[Learner], flush_every: int = 64, chunk: int = CHUNK) -> None:
        self.chunk = chunk
        first = learners[0]
        self.learners, self.shared, self.algo, self.training = learners, first.shared, first.algo, first.training
        self.device = first.shared.public_x.device
        self.flush_limit = flush_every * len(learners)  # queued ops before a flush: bounds memory
        self.queued = 0
        self.queues: list[deque[Op]] = [deque() for _ in learners]
        self.results: list[tuple[np.ndarray, np.ndarray]] | None = None
        sizes = [len(lr.y) for lr in learners]
        self.offset = torch.tensor(np.concatenate([[0], np.cumsum(sizes)[:-1]]), device=self.device)
        self.x = torch.cat([lr.x for lr in learners])
        self.y = torch.cat([lr.y for lr in learners])
        self.dist = torch.stack([lr.label_dist for lr in learners])
        self.mhd = isinstance(first, MHD)
        if self.mhd:
            for lr in learners:
                lr.values = False  # the engine keeps every agent's predictions in one tensor
                lr.cache_p = lr.cache_p[:0]
            P, S, C = len(self.shared.public_x), len(first.sent), self.shared.classes
            store = torch.float16 if self.algo.encoding == "float16" else torch.float32
            self.cache = torch.zeros(len(learners), 0, P, S, C, dtype=store, device=self.device)
            self.student_heads = list(first.sources)
            self.factors = [first.weights[m] * self.algo.temperature ** 2 for m in self.student_heads]
        self.groups: dict[int, Group] = {}
        arch: dict[str, list[int]] = {}
        for lr in learners:
            arch.setdefault(repr(lr.model), []).append(lr.agent)
        for members in arch.values():
            params, buffers = stack_module_state([learners[i].model for i in members])
            group = Group(torch.tensor(members, device=self.device), copy.deepcopy(learners[members[0]].model).to("meta"),
                          {k: v.detach() for k, v in params.items()}, buffers, row={a: r for r, a in enumerate(members)})
            if self.training.momentum:
                group.momentum = {k: torch.zeros_like(v) for k, v in group.params.items()}
            for a in members:
                self.groups[a] = group
        self._grad = {}  # per (group, has public batch): the vmapped gradient function

    def proxies(self) -> list[Proxy]:
        return [Proxy(self, lr) for lr in self.learners]

    # --- queueing -------------------------------------------------------------------------

    def queue(self, op: Op) -> Op:
        self.queues[op.agent].append(op)
        self.queued += 1
        self.results = None
        return op

    def ensure_slots(self, k: int) -> None:
        if self.mhd and k > self.cache.shape[1]:
            grow = max(k, 2 * self.cache.shape[1]) - self.cache.shape[1]
            self.cache = torch.cat([self.cache, self.cache.new_zeros(self.cache.shape[0], grow, *self.cache.shape[2:])], 1)

    def maybe_flush(self) -> None:
        if self.queued > self.flush_limit:
            self.flush()

    # --- running the queues ---------------------------------------------------------------

    def flush(self) -> None:
        """Run every queued op that can run: all but those behind a step still in progress."""
        active = [i for i, q in enumerate(self.queues) if q]
        while active:
            absorbs, trains, sends, dropped = [], {}, {}, 0
            for i in active:
                q = self.queues[i]
                while q and (q[0].cancelled or (q[0].kind == "absorb" and q[0].message.probs is not None)):
                    op = q.popleft()
                    if op.cancelled:
                        dropped += 1
                    else:
                        absorbs.append(op)
                if q and q[0].kind == "train" and q[0].ended:
                    op = q.popleft()
                    trains.setdefault((id(self.groups[i]), op.step.public is not None), []).append(op)
            self._absorb(absorbs)
            for ops in trains.values():
                for start in range(0, len(ops), self.chunk):
                    self._train(ops[start: start + self.chunk])
            for i in active:
                q = self.queues[i]
                if q and q[0].kind == "message":
                    sends.setdefault(id(self.groups[i]), []).append(q.popleft())
            for ops in sends.values():
                for start in range(0, len(ops), self.chunk):
                    self._predict(ops[start: start + self.chunk])
            done = dropped + len(absorbs) + sum(map(len, trains.values())) + sum(map(len, sends.values()))
            self.queued -= done
            if not done:
                break
            active = [i for i in active if self.queues[i]]

    def _absorb(self, ops: list[Op]) -> None:
        """All ready absorbs as one scatter; where two write the same entry, the later wins."""
        if not ops:
            return
        A, K, P, S, C = self.cache.shape
        flat = self.cache.view(A * K * P, S, C)
        pairs = {(op.agent, op.slot) for op in ops}
        if len(pairs) == len(ops) and all(op.newer is None for op in ops):
            # the usual wave: whole messages, at most one per (agent, sender): no entry written twice
            index: dict[int, int] = {}
            for op in ops:
                index.setdefault(id(op.message), len(index))
            probs = torch.stack([op.message.probs for op in {id(o.message): o for o in ops}.values()])
            which = torch.tensor([index[id(op.message)] for op in ops], device=self.device)
            base = torch.tensor([(op.agent * K + op.slot) * P for op in ops], device=self.device)
            at = (base[:, None] + torch.stack([op.ids for op in ops])).reshape(-1)
            flat[at] = probs[which].reshape(-1, S, C)
            return
        rows, cols, vals = [], [], []
        for op in ops:
            keep = torch.ones(len(op.ids), S, dtype=torch.bool, device=self.device) if op.newer is None else op.newer
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

    def _teachers(self, ops: list[Op], rows: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teachers [G, heads, B, C] and their weights [G, heads, B] from the shared cache."""
        G, B = u.shape
        A, K, P, S, C = self.cache.shape
        valid = torch.zeros(G, K, B, S, dtype=torch.bool, device=self.device)
        for g, op in enumerate(ops):
            v = op.step.valid
            valid[g, : len(v)] = v
        at = ((rows[:, None, None] * K + torch.arange(K, device=self.device)[None, :, None]) * P + u[:, None, :])
        probs = self.cache.view(A * K * P, S * C).index_select(0, at.reshape(-1)).view(G, K, B, S, C).float()
        first = self.learners[ops[0].agent]
        teachers, weights = [], []
        for m, src in first.sources.items():
            cols = [first.column[h] for h in src]
            cands = torch.cat([probs[:, :, :, c] for c in cols], 1)  # [G, K·sources, B, C]
            masks = torch.cat([valid[:, :, :, c] for c in cols], 1)
            teacher, ok = aggregate(cands, masks, self.algo.aggregation)
            teachers.append(sharpen(teacher, self.algo.temperature))
            weights.append(ok.float())
        return torch.stack(teachers, 1), torch.stack(weights, 1)

    def _grad_fn(self, group: Group, public: bool):
        key = (id(group), public)
        if key not in self._grad:
            tau, heads, factors = self.algo.temperature if self.mhd else 1.0, \
                self.student_heads if self.mhd and public else [], self.factors if self.mhd else []

            def loss(params, buffers, x, y, teachers, weights):
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

            self._grad[key] = vmap(grad(loss))
        return self._grad[key]

    def _train(self, ops: list[Op]) -> None:
        group = self.groups[ops[0].agent]
        agents = torch.tensor([op.agent for op in ops], device=self.device)
        rows = torch.tensor([group.row[op.agent] for op in ops], device=self.device)
        batch = torch.stack([op.step.batch for op in ops]).to(self.device)
        x = self.x[self.offset[agents][:, None] + batch]
        y = self.y[self.offset[agents][:, None] + batch]
        public = ops[0].step.public is not None
        if public:
            u = torch.stack([op.step.public for op in ops])
            x = torch.cat([x, self.shared.public_x[u]], 1)
            teachers, weights = self._teachers(ops, agents, u)
        else:
            teachers = weights = torch.zeros(len(ops), 0, device=self.device)
        params = {k: v[rows] for k, v in group.params.items()}
        buffers = {k: v[rows] for k, v in group.buffers.items()}
        grads = self._grad_fn(group, public)(params, buffers, x, y, teachers, weights)
        t = self.training
        if t.clip_grad_norm is not None:
            # as torch.nn.utils.clip_grad_norm_: the norm of the per-tensor norms
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1)
                                                         for g in grads.values()]), dim=0)
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
    def _predict(self, ops: list[Op]) -> None:
        """Predictions for peers, all of a group's pending messages in one forward; each goes
        through the real encoding, so peers store exactly what the bytes would carry."""
        group = self.groups[ops[0].agent]
        rows = torch.tensor([group.row[op.agent] for op in ops], device=self.device)
        ids = torch.from_numpy(np.stack([op.message.ids for op in ops])).to(self.device)
        params = {k: v[rows] for k, v in group.params.items()}
        buffers = {k: v[rows] for k, v in group.buffers.items()}
        logits, _ = vmap(lambda p, b, x: functional_call(group.base, (p, b), (x,)))(params, buffers,
                                                                                   self.shared.public_x[ids])
        first = self.learners[ops[0].agent]
        sent = torch.from_numpy(first.sent).long().to(self.device)
        probs = torch.softmax(logits[:, sent], -1).permute(0, 2, 1, 3).contiguous().cpu().numpy()  # [G, n, S, C]
        for op, p in zip(ops, probs):
            msg = op.message
            payload = messages.encode(msg.sender, msg.produced, first.sent, msg.ids, p,
                                      self.algo.encoding, self.algo.topk)
            assert len(payload) == msg.size, "message size known in advance must match its encoding"
            probs = messages.decode(payload, self.cache.dtype).probs
            msg.probs = torch.from_numpy(probs).to(self.device, self.cache.dtype)

    # --- evaluation -----------------------------------------------------------------------

    @torch.no_grad()
    def evaluation(self, i: int, chunk: int = 64, samples: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """Agent i's shared and private accuracy per head; all agents are evaluated at once, in
        chunks of ``chunk`` agents × ``samples`` test samples: larger ones leave the cache and
        run at half the speed."""
        if self.results is None:
            self.flush()
            self.results = [None] * len(self.learners)  # type: ignore[list-item]
            x, y, C = self.shared.test_x, self.shared.test_y, self.shared.classes
            for group in {id(g): g for g in self.groups.values()}.values():
                for start in range(0, len(group.agents), chunk):
                    members = group.agents[start: start + chunk]
                    rows = torch.tensor([group.row[int(a)] for a in members], device=self.device)
                    params = {k: v[rows] for k, v in group.params.items()}
                    buffers = {k: v[rows] for k, v in group.buffers.items()}
                    predicted = torch.cat([vmap(lambda p, b: functional_call(group.base, (p, b), (x[s: s + samples],)))(
                        params, buffers)[0].argmax(-1) for s in range(0, len(y), samples)], -1)
                    shared, per_class = accuracy(predicted, y, C)  # [g, H], [g, H, C]
                    private = (per_class @ self.dist[members][:, :, None])[..., 0]
                    for a, s, p in zip(members.tolist(), shared.cpu().numpy(), private.cpu().numpy()):
                        self.results[a] = (s, p)
        return self.results[i]

    def parameters(self, i: int) -> dict[str, torch.Tensor]:
        """Agent i's current parameters (for tests and inspection)."""
        group = self.groups[i]
        return {k: v[group.row[i]] for k, v in group.params.items()}
