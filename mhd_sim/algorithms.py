"""Learners: one class per algorithm behind the interface the world drives.

The world asks a learner to ``begin_step`` (read a private batch and the teacher cache),
``end_step`` (apply the gradient update), ``make_message`` (predictions for peers),
``absorb`` (a peer's message) and ``evaluate``. Each reports its cost in FLOPs; the world
turns FLOPs into simulated time. Nothing here knows about time except the timestamps
that messages carry.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pydantic
import torch
import torch.nn.functional as F

from . import messages
from .data import DATASETS, Dataset, Split, load
from .models import HeadedModel, build, forward_flops, step_flops
from .registry import Registry, settings
from .seeds import stream, torch_generator

ALGORITHMS = Registry("algorithm")
AGGREGATIONS = ("max_confidence", "mean", "confidence_weighted")


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
    public: torch.Tensor | None = None  # public sample ids
    # (head, teacher, which samples have one; None when all do)
    teachers: list[tuple[int, torch.Tensor, torch.Tensor | None]] = field(default_factory=list)
    embedding: tuple[torch.Tensor, torch.Tensor] | None = None  # (peers' mean embedding [B, E], valid [B])
    age_summary: tuple[float, float] | None = None  # mean and max age of the predictions teachers read
    valid: torch.Tensor | None = None  # [peers, B, heads sent]: which cached predictions it may read
    embed_ok: torch.Tensor | None = None  # [peers, B]: which cached embeddings it may read

    def staleness(self) -> tuple[float, float] | None:
        """Mean and max age of the predictions this step distils from (None: it uses none)."""
        return self.age_summary


def aggregate(cands: torch.Tensor, mask: torch.Tensor, how: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Combine candidate teacher distributions per sample.

    ``cands`` is [..., K, B, C] probabilities, ``mask`` [..., K, B] marks which candidates
    exist (leading dimensions: agents, for the batched engine). Returns the teacher
    [..., B, C] and which samples have one at all [..., B].

    >>> c = torch.tensor([[[0.75, 0.25]], [[0.125, 0.875]]]); m = torch.tensor([[True], [True]])
    >>> aggregate(c, m, "max_confidence")[0].tolist()
    [[0.125, 0.875]]
    >>> aggregate(c, m, "mean")[0].tolist()
    [[0.4375, 0.5625]]
    """
    valid = mask.any(-2)
    conf = cands.max(-1).values
    if how == "max_confidence":
        # max's indices are argmax's (the first of equal maxima), and far faster off the last dim
        best = torch.where(mask, conf, -1.0).max(-2, keepdim=True).indices  # [..., 1, B]
        teacher = cands.gather(-3, best.unsqueeze(-1).expand(*best.shape, cands.shape[-1])).squeeze(-3)
    elif how in ("mean", "confidence_weighted"):
        w = mask.to(cands.dtype) * (conf if how == "confidence_weighted" else 1.0)
        teacher = (cands * w[..., None]).sum(-3) / w.sum(-2).clamp_min(1e-12)[..., None]
    else:
        raise ValueError(f"unknown aggregation {how!r}; choose from {', '.join(AGGREGATIONS)}")
    return teacher, valid


def accuracy(predicted: torch.Tensor, y: torch.Tensor, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Accuracy [..., H] and per-class accuracy [..., H, C] of predicted labels [..., H, N]
    (leading dimensions: agents, for the batched engine).

    >>> acc, per_class = accuracy(torch.tensor([[0, 1, 1, 1]]), torch.tensor([0, 1, 0, 1]), 2)
    >>> acc.tolist(), per_class.tolist()
    ([0.75], [[0.5, 1.0]])
    """
    correct = (predicted == y).float()
    per_class = torch.zeros(*correct.shape[:-1], classes, device=y.device).index_add_(-1, y, correct)
    per_class /= torch.bincount(y, minlength=classes).clamp_min(1)
    return correct.mean(-1), per_class


def sharpen(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(z/τ) from softmax(z): p^(1/τ), renormalised (identity at τ = 1)."""
    if temperature == 1.0:
        return probs
    logp = torch.log(probs.clamp_min(1e-12)) / temperature
    return torch.softmax(logp, -1)


class Learner:
    """An agent trained on its private data alone; the base every algorithm extends."""

    sends = False
    degree: Callable[[], int] = staticmethod(lambda: 0)  # its current number of neighbours; set by the world

    @classmethod
    def heads_for(cls, algo: pydantic.BaseModel) -> int:
        return 1

    def __init__(self, agent: int, model: HeadedModel, x: torch.Tensor, y: torch.Tensor,
                 label_dist: torch.Tensor, shared: Shared, algo: pydantic.BaseModel,
                 training: pydantic.BaseModel, rng: np.random.Generator) -> None:
        self.agent, self.model, self.x, self.y = agent, model, x, y
        self.label_dist, self.shared, self.algo, self.training, self.rng = label_dist, shared, algo, training, rng
        self.input_shape = tuple(x.shape[1:])
        self.private = len(y)  # an int: len() of a tensor costs more, once per step
        self.on_cpu = shared.public_x.device.type == "cpu"
        self._flops: dict[tuple[str, int], float] = {}
        params = model.parameters()
        if training.optimizer == "adam":
            self.opt = torch.optim.Adam(params, lr=training.lr, weight_decay=training.weight_decay)
        else:
            self.opt = torch.optim.SGD(params, lr=training.lr, momentum=training.momentum,
                                       weight_decay=training.weight_decay)

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
        return Step(batch, self.flops("train", self.training.batch_size))

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
    def evaluate(self, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Shared and private accuracy per head on the whole test set.

        Private accuracy is Σ_c π_i(c)·acc_c: exact, weighting the global per-class accuracy
        by this agent's own label distribution instead of resampling a private test set.
        """
        shared, per_class = self._correct(chunk)
        return shared.cpu().numpy(), (per_class @ self.label_dist).cpu().numpy()

    @torch.no_grad()
    def _correct(self, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
        """Accuracy [H] and per-class accuracy [H, C] of every head on the whole test set."""
        self.mode(train=False)
        x, y, classes = self.shared.test_x, self.shared.test_y, self.shared.classes
        predicted = torch.cat([self.model(x[i : i + chunk])[0].argmax(-1) for i in range(0, len(y), chunk)], dim=1)
        return accuracy(predicted, y, classes)


@ALGORITHMS.register("isolated")
class Isolated(Learner):
    """No communication: the lower reference line."""


@ALGORITHMS.register("mhd")
class MHD(Learner):
    """Multi-headed distillation: head m ≥ 1 distils from the peers' head m−1 on public data.

    Peers' predictions live in a tensor cache ``[peers, public, heads_sent, classes]`` with
    the time each was produced, so a step's teacher is a gather plus an aggregation.
    """

    sends = True

    @classmethod
    def heads_for(cls, algo: pydantic.BaseModel) -> int:
        return algo.heads

    def head_weights(self) -> list[float]:
        w = self.algo.distill_weight
        return list(w) if isinstance(w, list) else [0.0] + [float(w)] * (self.heads - 1)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        H, algo = self.heads, self.algo
        self.weights = self.head_weights()
        self.sources: dict[int, list[int]] = {}  # student head -> peer heads it learns from
        for m in range(H):
            if self.weights[m] > 0:
                src = [0] if m == 0 else [m - 1]
                if algo.last_head_loop and m == H - 1 and m > 0:
                    src.append(m)
                self.sources[m] = src
        self.sent = np.array(sorted({h for s in self.sources.values() for h in s}), dtype=np.uint8)
        P, S, C = len(self.shared.public_x), len(self.sent), self.shared.classes
        device = self.shared.public_x.device
        # float16 on the wire is stored as float16: exact, and half the memory of the largest tensor
        store = torch.float16 if algo.encoding == "float16" else torch.float32
        self.cache_p = torch.zeros(0, P, S, C, dtype=store, device=device)
        self.embeds = algo.embedding_weight > 0
        self.learns = bool(self.sources) or self.embeds  # its steps read peers' predictions
        E = self.model.head.in_features if self.embeds else 0
        self.cache_e = torch.zeros(0, P, E, device=device)
        # The schedule's side of the cache lives in numpy (small arrays, touched at every step
        # and message): when each prediction was produced, which samples have any.
        self.cache_t = np.full((0, P, S), np.nan)
        self.cache_et = np.full((0, P), np.nan)
        self.slots: dict[int, int] = {}
        self.values = True  # holds the predictions themselves (the batched engine keeps them for all)
        self.have = np.zeros(P, dtype=bool)
        self._pool, self._have_any = None, False
        self.column = {int(h): j for j, h in enumerate(self.sent)}  # head -> its column in the cache
        self.used = np.array([self.column[h] for src in self.sources.values() for h in src], dtype=np.int64)
        self.used_all = np.array_equal(self.used, np.arange(S))
        single = bool(self.sources) and all(len(src) == 1 for src in self.sources.values())
        self.single = torch.tensor([self.column[src[0]] for src in self.sources.values()], device=device) \
            if single else None  # per student head, the one cache column its teacher reads
        self.single_all = single and np.array_equal(self.single.cpu().numpy(), np.arange(S))  # all, in order
        # Max-confidence teachers chosen in numpy: each cached prediction's confidence (its
        # largest probability, exactly as the tensor path computes it) is kept beside its time,
        # so a step gathers only the chosen predictions. Same choice, far fewer tensor ops.
        self.by_confidence = single and algo.aggregation == "max_confidence" and not algo.include_self \
            and device.type == "cpu"
        self.cache_c = np.zeros((0, P, S), dtype=np.float32)
        self.single_cols = self.single.tolist() if single else []
        self.order = self.rng.permutation(P)  # the order messages walk through the public set
        self.cursor = 0
        self.age_sum = np.zeros(0)  # per peer slot: ages of its predictions used as a teacher
        self.age_count = np.zeros(0, dtype=np.int64)

    def _fresh(self, born: np.ndarray, now: float) -> np.ndarray:
        """Production times, with entries too old to use (``max_staleness``) blanked to NaN."""
        if self.algo.max_staleness is None:
            return born
        return np.where(now - born > self.algo.max_staleness, np.nan, born)

    def begin_step(self, now: float) -> Step:
        step = self.plan(now)
        if step.public is not None:
            self.teach(step)
        return step

    def plan(self, now: float) -> Step:
        """The part of a step's start that depends on the schedule alone: the batches drawn,
        which cached predictions are fresh enough, their ages, the FLOPs. ``teach`` then reads
        the predictions themselves (the batched engine defers that part)."""
        step = super().begin_step(now)
        pool = self.pool
        if not self.learns or (pool is None and not self.algo.include_self):
            return step
        if pool is None:
            pool = self.order
        u = pool[self.rng.integers(len(pool), size=self.training.public_batch_size)]
        born = self.cache_t.take(u, axis=1)  # [K, B, S]
        if self.algo.max_staleness is not None:
            born = self._fresh(born, now)
        valid = born == born  # not NaN
        age = np.where(valid, now - born, 0.0)
        per_slot, counts = age.sum((1, 2)), valid.sum((1, 2))
        self.age_sum += per_slot
        self.age_count += counts
        if len(self.used):  # mean and max age over every prediction a teacher read (ages ≥ 0)
            if self.used_all:  # teachers read every column once: reuse the sums above
                count, used = int(counts.sum()), age
                total = float(per_slot.sum())
            else:
                count, used = int(valid[:, :, self.used].sum()), age[:, :, self.used]
                total = float(used.sum())
            if count:
                step.age_summary = (total / count, float(used.max()))
        device = self.shared.public_x.device
        if self.embeds:
            et = self._fresh(self.cache_et[:, u], now)
            step.embed_ok = torch.from_numpy(et == et).to(device)  # [K, B]
        step.public, step.valid = torch.from_numpy(u), torch.from_numpy(valid)
        if not self.on_cpu:
            step.public, step.valid = step.public.to(device), step.valid.to(device)
        step.flops = self.flops("train", self.training.batch_size + len(u))
        if self.algo.include_self:
            step.flops += self.flops("forward", len(u))
        return step

    def teach(self, step: Step) -> None:
        """Fill in the step's teachers from the cached predictions it may read."""
        if self.by_confidence:
            self._teach_by_confidence(step)
        else:
            self._teach_by_aggregation(step)
        if self.embeds:
            u, ok = step.public, step.embed_ok
            total = (self.cache_e[:, u] * ok[..., None]).sum(0)
            step.embedding = (total / ok.sum(0).clamp_min(1)[:, None], ok.any(0))

    def _teach_by_aggregation(self, step: Step) -> None:
        """``teach`` through ``aggregate``: any aggregation, several sources, ``include_self``."""
        u, valid = step.public, step.valid
        probs = self.cache_p.index_select(1, u).float()  # [K, B, S, C]
        own = None
        if self.algo.include_self:
            with torch.no_grad():
                self.mode(train=False)
                own = torch.softmax(self.model(self.shared.public_x[u])[0], -1)  # [H, B, C]
        if self.single is not None and own is None:  # one source per head: all heads in one aggregation
            if not self.single_all:
                probs, valid = probs[:, :, self.single], valid[:, :, self.single]
            teacher, ok = aggregate(probs.permute(2, 0, 1, 3), valid.permute(2, 0, 1), self.algo.aggregation)
            teacher, complete = sharpen(teacher, self.algo.temperature), ok.all(1).tolist()
            step.teachers += [(m, teacher[j], None if complete[j] else ok[j]) for j, m in enumerate(self.sources)]
        for m, src in self.sources.items() if self.single is None or own is not None else ():
            cands = [probs[:, :, self.column[h]] for h in src]
            masks = [valid[:, :, self.column[h]] for h in src]
            if own is not None and m > 0:
                cands.append(own[m - 1][None])
                masks.append(torch.ones(1, len(u), dtype=torch.bool, device=u.device))
            if len(cands) == 1:
                teacher, ok = aggregate(cands[0], masks[0], self.algo.aggregation)
            else:
                teacher, ok = aggregate(torch.cat(cands), torch.cat(masks), self.algo.aggregation)
            step.teachers.append((m, sharpen(teacher, self.algo.temperature), None if bool(ok.all()) else ok))

    def _teach_by_confidence(self, step: Step) -> None:
        """``teach`` for max-confidence teachers, one cache column per student head: the choice
        of peer per (sample, column) in numpy, as ``aggregate`` makes it (first of the most
        confident, -1 for none), then one gather of the chosen predictions."""
        u, valid = step.public.numpy(), step.valid.numpy()  # [B], [K, B, S]
        K, P, S, C = self.cache_p.shape
        best = np.where(valid, self.cache_c.take(u, axis=1), -1.0).argmax(0).T  # [S, B]
        at = (best * P + u) * S + np.arange(S)[:, None]
        chosen = self.cache_p.view(K * P * S, C).index_select(0, torch.from_numpy(at.reshape(-1)))
        chosen = sharpen(chosen.view(S, len(u), C).float(), self.algo.temperature)  # [S, B, C]
        ok = valid.any(0).T  # [S, B]: samples with any teacher
        complete = ok.all(1).tolist()
        for m, col in zip(self.sources, self.single_cols):
            step.teachers.append((m, chosen[col], None if complete[col] else torch.from_numpy(ok[col].copy())))

    def next_chunk(self) -> np.ndarray:
        n, P = self.algo.share_size, len(self.order)
        ids = self.order[(self.cursor + np.arange(min(n, P))) % P]
        self.cursor = (self.cursor + len(ids)) % P
        return ids

    def message_flops(self) -> float:
        return self.flops("forward", min(self.algo.share_size, len(self.order)))

    @torch.no_grad()
    def make_message(self, now: float) -> bytes | None:
        """Predictions on the next chunk of public samples: only the heads (and the embedding)
        that peers learn from."""
        if len(self.sent) == 0 and not self.embeds:
            return None
        ids = self.next_chunk()
        self.mode(train=False)
        x = self.shared.public_x
        logits, emb = self.model(x.index_select(0, torch.from_numpy(ids).to(x.device)))
        probs = torch.softmax(logits[torch.from_numpy(self.sent).long()], -1).permute(1, 0, 2)
        return messages.encode(self.agent, now, self.sent, ids, probs.cpu().numpy(),
                               self.algo.encoding, self.algo.topk,
                               emb.cpu().numpy() if self.embeds else None)

    def _slot(self, sender: int) -> int:
        if sender not in self.slots:
            self.slots[sender] = len(self.slots)
            if self.values:
                self.cache_p = torch.cat([self.cache_p, self.cache_p.new_zeros(1, *self.cache_p.shape[1:])])
                self.cache_e = torch.cat([self.cache_e, self.cache_e.new_zeros(1, *self.cache_e.shape[1:])])
                if self.by_confidence:
                    self.cache_c = np.concatenate([self.cache_c, np.zeros((1, *self.cache_c.shape[1:]), np.float32)])
            self.cache_t = np.concatenate([self.cache_t, np.full((1, *self.cache_t.shape[1:]), np.nan)])
            self.cache_et = np.concatenate([self.cache_et, np.full((1, *self.cache_et.shape[1:]), np.nan)])
            self.age_sum = np.append(self.age_sum, 0.0)
            self.age_count = np.append(self.age_count, 0)
        return self.slots[sender]

    def teacher_ages(self) -> dict[int, tuple[float, int]]:
        sums, counts = self.age_sum.tolist(), self.age_count.tolist()
        return {p: (sums[k], counts[k]) for p, k in self.slots.items()}

    def absorb(self, payload: bytes, now: float) -> None:
        """Store a peer's predictions, keeping whichever of old and new was produced later."""
        msg = messages.decode(payload, self.cache_p.dtype)
        k, ids, newer = self.note(msg.sender, msg.ids, msg.produced, msg.heads)
        probs = torch.from_numpy(msg.probs).to(self.cache_p.device, self.cache_p.dtype)
        if newer is None:
            self.cache_p[k].index_copy_(0, ids, probs)  # the usual case: all of it is newer; one write
            if self.by_confidence:
                self.cache_c[k][msg.ids] = probs.float().amax(-1).numpy()  # numpy's float16 max is slow
        else:
            for j, h in enumerate(self.sent):
                col = np.flatnonzero(msg.heads == h)
                if len(col):
                    fresh, values = newer[:, j], probs[newer[:, j], int(col[0])]
                    self.cache_p[k, ids[fresh], j] = values
                    if self.by_confidence:
                        self.cache_c[k, msg.ids[fresh.numpy()], j] = values.float().amax(-1).numpy()
        if self.embeds and msg.embeddings is not None:
            at = msg.ids.astype(np.int64)
            fresh = ~(self.cache_et[k, at] > msg.produced)
            self.cache_et[k, at[fresh]] = msg.produced
            fresh_t = torch.from_numpy(fresh).to(self.cache_e.device)
            self.cache_e[k, ids[fresh_t]] = torch.from_numpy(msg.embeddings).to(self.cache_e.device)[fresh_t]

    def note(self, sender: int, ids: np.ndarray, produced: float, heads: np.ndarray
             ) -> tuple[int, torch.Tensor, torch.Tensor | None]:
        """The schedule half of ``absorb``: production times and which samples have any
        prediction. Returns the sender's slot, the sample ids, and which (sample, head) entries
        the message overwrites (None: all of them). NaN (empty) counts as older than anything."""
        k = self._slot(sender)
        ids = ids.astype(np.int64, copy=False)
        times = self.cache_t[k]  # [P, S]
        old = times.take(ids, axis=0)  # [n, S]
        if (heads is self.sent or heads.tobytes() == self.sent.tobytes()) and not (old > produced).any():
            newer = None
            times[ids] = produced
        else:
            newer = ~(old > produced) & np.isin(self.sent, heads)
            times[ids] = np.where(newer, produced, old)
        self.have[ids] = True
        self._pool, self._have_any = None, True  # the pool is recomputed when next needed
        device = self.cache_p.device
        return k, torch.from_numpy(ids).to(device), None if newer is None else torch.from_numpy(newer).to(device)

    @property
    def pool(self) -> np.ndarray | None:
        """Public samples with at least one peer prediction (None while there are none)."""
        if self._pool is None and self._have_any:
            self._pool = np.flatnonzero(self.have)
        return self._pool


@ALGORITHMS.register("distill")
class Distill(MHD):
    """Single-head distillation: the main head also distils from the peers' main heads (ν₀ > 0)."""

    @classmethod
    def heads_for(cls, algo: pydantic.BaseModel) -> int:
        return 1

    def head_weights(self) -> list[float]:
        w = self.algo.distill_weight
        return [max(w) if isinstance(w, list) else float(w)]


@ALGORITHMS.register("gossip")
class Gossip(Learner):
    """Decentralized weight averaging: the parameter vector is the message. On arrival the
    receiver i moves toward sender j's weights by the Metropolis weight 1 / (1 + max(d_i, d_j)),
    which makes the averaging doubly stochastic on any undirected graph."""

    sends = True

    def make_message(self, now: float) -> bytes | None:
        values = torch.nn.utils.parameters_to_vector(self.model.parameters()).detach().cpu().numpy()
        return messages.encode_weights(self.agent, self.degree(), now, values, self.algo.encoding)

    @torch.no_grad()
    def absorb(self, payload: bytes, now: float) -> None:
        msg = messages.decode_weights(payload)
        w = 1.0 / (1 + max(self.degree(), msg.degree))
        params = list(self.model.parameters())
        mine = torch.nn.utils.parameters_to_vector(params)
        theirs = torch.from_numpy(msg.values).to(mine.device)
        torch.nn.utils.vector_to_parameters(mine + w * (theirs - mine), params)


@ALGORITHMS.register("centralized")
class Centralized(Learner):
    """One model trained on the union of all private data, with every agent's compute and no
    network: the upper reference line. All agents share the model and its optimizer; each
    agent's private accuracy still weights per-class accuracy by its own label mix."""

    shares_model = True

    def end_step(self, step: Step) -> None:
        self.model.version = getattr(self.model, "version", 0) + 1
        super().end_step(step)

    def _correct(self, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
        """Test accuracy, computed once per model version for all the agents sharing it."""
        version = getattr(self.model, "version", 0)
        cached = getattr(self.model, "evaluated", None)
        if cached is None or cached[0] != version:
            cached = self.model.evaluated = (version, *super()._correct(chunk))
        return cached[1], cached[2]


@dataclass(frozen=True)
class Stub:
    """A message in a timing-only run: who made it and when, and the size the real one has."""

    sender: int
    produced: float
    size: int

    def __len__(self) -> int:
        return self.size


class Schedule:
    """Stands in for a learner when only the schedule matters (``--timing-only``): the same
    FLOPs per step and per message and the same message sizes, taken from a real learner of
    the same architecture, and no training at all.

    Cache ages are estimated, not sampled: a peer's entries are its last ``public /
    share_size`` messages (one pass over the public set), so a step's mean age is the mean
    age of those and its max the oldest of them.
    """

    def __init__(self, agent: int, template: Learner, public: int) -> None:
        algo, training = template.algo, template.training
        self.agent, self.sends, self.heads = agent, template.sends, template.heads
        self.plain = template.flops("train", training.batch_size)
        self.public_step = bool(getattr(template, "sources", None) or getattr(template, "embeds", False))
        self.include_self = bool(getattr(algo, "include_self", False)) and self.public_step
        self.distill = template.flops("train", training.batch_size + training.public_batch_size)
        if self.include_self:
            self.distill += template.flops("forward", training.public_batch_size)
        payload = template.make_message(0.0) if template.sends else None
        self.size = len(payload) if payload is not None else 0
        self._message_flops = template.message_flops()
        self.cycle = max(1, -(-public // max(1, getattr(algo, "share_size", 1))))
        self.max_staleness = getattr(algo, "max_staleness", None)
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
            fresh = [t for times in self.cache.values() for t in times if now - t <= self.max_staleness]
            total, count, oldest = sum(fresh), len(fresh), min(fresh, default=now)
        summary = ((now * count - total) / count, now - oldest) if count else None
        return Step(None, self.distill, age_summary=summary)  # type: ignore[arg-type]

    def end_step(self, step: Step) -> None:
        pass

    def message_flops(self) -> float:
        return self._message_flops

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

    def evaluate(self) -> tuple[np.ndarray, np.ndarray]:
        return np.empty(0), np.empty(0)


def build_schedules(data: pydantic.BaseModel, models: list[pydantic.BaseModel], algo: pydantic.BaseModel,
                    training: pydantic.BaseModel, seed: int) -> list[Schedule]:
    """Timing-only stand-ins: one real learner per distinct architecture measures the costs."""
    dataset = DATASETS.get(data.dataset.kind)(stream(seed, "dataset"), **settings(data.dataset))
    public = int(round(len(dataset.y_train) * data.public_fraction))
    cls = ALGORITHMS.get(algo.name)
    shared = Shared(torch.from_numpy(dataset.x_train[:public]), torch.from_numpy(dataset.x_test[:1]),
                    torch.from_numpy(dataset.y_test[:1]), dataset.classes)
    x, y = torch.from_numpy(dataset.x_train[:1]), torch.from_numpy(dataset.y_train[:1])
    dist = torch.full((dataset.classes,), 1.0 / dataset.classes)
    templates: dict[str, Learner] = {}
    out = []
    for i, spec in enumerate(models):
        key = repr(spec)
        if key not in templates:
            model = build(spec, dataset.input_shape, cls.heads_for(algo), dataset.classes, torch_generator(seed, "model", i))
            templates[key] = cls(i, model, x, y, dist, shared, algo, training, stream(seed, "template", i))
        out.append(Schedule(i, templates[key], public))
    _check_population(cls, algo, models, [t.model for t in templates.values()])
    return out


def _check_population(cls: type[Learner], algo: pydantic.BaseModel, models: list[pydantic.BaseModel],
                      built: list[HeadedModel]) -> None:
    """Errors a population can only show once its models are built."""
    if cls is Gossip and len({repr(m) for m in models}) > 1:
        kinds = sorted({f"{m.kind} (agents {', '.join(str(i) for i, x in enumerate(models) if x == m)})"
                        for m in models})
        raise ValueError(f"algorithm gossip averages weights, so every agent needs the same model; "
                         f"this population mixes {'; '.join(kinds)}")
    if getattr(algo, "embedding_weight", 0) > 0:
        dims = sorted({m.head.in_features for m in built})
        if len(dims) > 1:
            raise ValueError(f"algorithm.embedding_weight > 0 needs one embedding size, but the agents' "
                             f"models have embedding sizes {', '.join(map(str, dims))}")


def build_learners(data: pydantic.BaseModel, models: list[pydantic.BaseModel], algo: pydantic.BaseModel,
                   training: pydantic.BaseModel, seed: int, device: str = "cpu"
                   ) -> tuple[list[Learner], Dataset, Split]:
    """The population: load the dataset, split it, and give every agent its model and shard."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda was asked for, but this torch build sees no CUDA device")
    dataset, parts = load(data, len(models), seed)

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).to(device)

    shared = Shared(tensor(dataset.x_train[parts.public]), tensor(dataset.x_test), tensor(dataset.y_test),
                    dataset.classes)
    dist = tensor(parts.label_distribution(dataset.y_train, dataset.classes).astype(np.float32))
    cls = ALGORITHMS.get(algo.name)
    if getattr(cls, "shares_model", False):
        one = build(models[0], dataset.input_shape, cls.heads_for(algo), dataset.classes,
                    torch_generator(seed, "model", 0)).to(device)
        built = [one] * len(models)
        shards = [np.sort(np.concatenate(parts.private))] * len(models)  # everyone trains on the union
    else:
        built = [build(spec, dataset.input_shape, cls.heads_for(algo), dataset.classes,
                       torch_generator(seed, "model", i)).to(device) for i, spec in enumerate(models)]
        shards = parts.private
    _check_population(cls, algo, models, built)
    learners = [cls(i, model, tensor(dataset.x_train[own]), tensor(dataset.y_train[own]), dist[i], shared, algo,
                    training, stream(seed, "agent", i)) for i, (model, own) in enumerate(zip(built, shards))]
    if getattr(cls, "shares_model", False):
        for learner in learners[1:]:
            learner.opt = learners[0].opt
    return learners, dataset, parts
