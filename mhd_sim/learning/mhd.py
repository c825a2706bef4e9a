"""Multi-headed distillation (MHD): head m ≥ 1 distils from the heads m−1 on public data.

Peers' predictions live in a tensor cache ``[peers, public, heads_sent, classes]`` with the
time each was produced (kept in numpy: the schedule's side, touched at every step and
message), so a step's teacher is a gather plus an aggregation (``teachers.py``).
"""

from __future__ import annotations

import numpy as np
import pydantic
import torch

from . import messages
from .learner import Learner, Step
from .teachers import StepTeacher, confidence, confident_teachers, reference_teachers


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
        # its own head m−1 is a candidate for head m (the main head never learns from itself)
        self.own_candidates = algo.include_self and any(m > 0 for m in self.sources)
        E = self.model.head.in_features if self.embeds else 0
        self.cache_e = torch.zeros(0, P, E, device=device)
        # The schedule's side of the cache lives in numpy (small arrays, touched at every step
        # and message): when each prediction was produced, which samples have any.
        self.cache_t = np.full((0, P, S), np.nan)
        self.cache_et = np.full((0, P), np.nan)
        self.slots: dict[int, int] = {}
        # holds the predictions themselves (the batched engine keeps them for all)
        self.values = True
        self.have = np.zeros(P, dtype=bool)
        self._pool, self._have_any = None, False
        self.column = {
            int(h): j for j, h in enumerate(self.sent)
        }  # head -> its column in the cache
        self.used = np.array(
            [self.column[h] for src in self.sources.values() for h in src], dtype=np.int64
        )
        self.used_all = np.array_equal(self.used, np.arange(S))
        # max_confidence ranks candidates by the confidence the sender computed (messages carry
        # it; the cache keeps it beside each prediction), ties drawn from a stream of their own
        self.ranked = algo.aggregation == "max_confidence"
        self.cache_c = np.zeros((0, P, S), dtype=np.float32)
        self.tie_rng = np.random.default_rng(self.rng.bit_generator.seed_seq.spawn(1)[0])
        # the fast path of teacher choice (teachers.confident_teachers): one cache column per
        # student head, max-confidence, on CPU
        single = bool(self.sources) and all(len(src) == 1 for src in self.sources.values())
        self.by_confidence = single and self.ranked and device.type == "cpu"
        self.columns = {m: self.column[src[0]] for m, src in self.sources.items()} if single else {}
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
        if not self.learns or (pool is None and not self.own_candidates):
            return step
        if pool is None:
            pool = self.order
        u = pool[self.rng.integers(len(pool), size=self.training.public_batch_size)]
        born = self.cache_t.take(u, axis=1)  # [K, B, S]
        if self.algo.max_staleness is not None:
            born = self._fresh(born, now)
        if self.algo.teachers is not None and len(self.slots) > self.algo.teachers:
            born = self._sample_peers(born)
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
        if self.own_candidates:
            step.flops += self.flops("forward", len(u))
        if self.ranked:  # a draw per candidate row: the peers of each source head, then its own
            rows = max(map(len, self.sources.values())) * len(born) + 1
            step.ties = self.tie_rng.random((len(self.sources), rows, len(u)))
        return step

    def _sample_peers(self, born: np.ndarray) -> np.ndarray:
        """``teachers`` peers drawn at random among those with cached predictions; the others'
        entries blanked for this step (the paper's random neighbours)."""
        cached = np.flatnonzero(~np.isnan(self.cache_t).all(axis=(1, 2)))
        if len(cached) <= self.algo.teachers:
            return born
        keep = np.zeros(len(born), dtype=bool)
        keep[self.rng.choice(cached, self.algo.teachers, replace=False)] = True
        return np.where(keep[:, None, None], born, np.nan)

    def teach(self, step: Step) -> None:
        """Fill in the step's teachers from the cached predictions it may read."""
        step.teachers = self.teachers(step)
        if self.embeds:
            u, ok = step.public, step.embed_ok
            total = (self.cache_e[:, u] * ok[..., None]).sum(0)
            step.embedding = (total / ok.sum(0).clamp_min(1)[:, None], ok.any(0))

    def teachers(self, step: Step) -> list[StepTeacher]:
        """Per student head: its teacher on the step's public samples, and which have one (None:
        all do). The fast path where it applies (the same teachers exactly, a test checks), else
        the reference."""
        u, algo = step.public, self.algo
        own = own_conf = None
        if self.own_candidates:  # the agent's own heads are candidates too, as they are now
            with torch.no_grad():
                self.mode(train=False)
                logits = self.model(self.shared.public_x[u])[0]  # [H, B, C]
            own = torch.softmax(logits, -1)
            if self.ranked:  # rounded as a message would carry it: all compared alike
                conf = confidence(logits, algo.confidence).cpu().numpy()
                own_conf = messages.quantize(conf, algo.encoding)
        if self.by_confidence:
            return confident_teachers(
                self.cache_p,
                self.cache_c,
                u.numpy(),
                step.valid.numpy(),
                self.columns,
                algo.temperature,
                step.ties,
                own,
                own_conf,
            )
        probs = self.cache_p.index_select(1, u).float()  # [K, B, S, C]
        ranks = {}
        if self.ranked:
            ranks = {
                "conf": torch.from_numpy(self.cache_c.take(u.cpu().numpy(), axis=1)),
                "own_conf": None if own_conf is None else torch.from_numpy(own_conf),
                "ties": torch.from_numpy(step.ties),
            }
            ranks = {k: v if v is None else v.to(probs.device) for k, v in ranks.items()}
        chosen = reference_teachers(
            probs,
            step.valid,
            self.sources,
            self.column,
            algo.aggregation,
            algo.temperature,
            own,
            **ranks,
        )
        return [(m, teacher, None if bool(ok.all()) else ok) for m, teacher, ok in chosen]

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
        logits = logits[torch.from_numpy(self.sent).long()]  # [S, n, C]
        probs = torch.softmax(logits, -1).permute(1, 0, 2)
        conf = confidence(logits, self.algo.confidence).T if self.ranked else None
        return messages.encode(
            self.agent,
            now,
            self.sent,
            ids,
            probs.cpu().numpy(),
            self.algo.encoding,
            self.algo.topk,
            emb.cpu().numpy() if self.embeds else None,
            None if conf is None else conf.cpu().numpy(),
        )

    def _slot(self, sender: int) -> int:
        if sender not in self.slots:
            self.slots[sender] = len(self.slots)
            if self.values:
                self.cache_p = torch.cat(
                    [self.cache_p, self.cache_p.new_zeros(1, *self.cache_p.shape[1:])]
                )
                self.cache_e = torch.cat(
                    [self.cache_e, self.cache_e.new_zeros(1, *self.cache_e.shape[1:])]
                )
                if self.ranked:
                    self.cache_c = np.concatenate(
                        [self.cache_c, np.zeros((1, *self.cache_c.shape[1:]), np.float32)]
                    )
            self.cache_t = np.concatenate(
                [self.cache_t, np.full((1, *self.cache_t.shape[1:]), np.nan)]
            )
            self.cache_et = np.concatenate(
                [self.cache_et, np.full((1, *self.cache_et.shape[1:]), np.nan)]
            )
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
        conf = msg.confidence
        if self.ranked and conf is None:  # a message without them: rank by probability
            conf = msg.probs.astype(np.float32).max(-1)
        if newer is None:
            # the usual case: all of it is newer; one write
            self.cache_p[k].index_copy_(0, ids, probs)
            if self.ranked:
                self.cache_c[k][msg.ids] = conf
        else:
            for j, h in enumerate(self.sent):
                col = np.flatnonzero(msg.heads == h)
                if len(col):
                    fresh, values = newer[:, j], probs[newer[:, j], int(col[0])]
                    self.cache_p[k, ids[fresh], j] = values
                    if self.ranked:
                        fresh_ids = msg.ids[fresh.cpu().numpy()]
                        self.cache_c[k, fresh_ids, j] = conf[fresh.cpu().numpy(), col[0]]
        if self.embeds and msg.embeddings is not None:
            at = msg.ids.astype(np.int64)
            fresh = ~(self.cache_et[k, at] > msg.produced)
            self.cache_et[k, at[fresh]] = msg.produced
            fresh_t = torch.from_numpy(fresh).to(self.cache_e.device)
            self.cache_e[k, ids[fresh_t]] = torch.from_numpy(msg.embeddings).to(
                self.cache_e.device
            )[fresh_t]

    def note(
        self, sender: int, ids: np.ndarray, produced: float, heads: np.ndarray
    ) -> tuple[int, torch.Tensor, torch.Tensor | None]:
        """The schedule half of ``absorb``: production times and which samples have any
        prediction. Returns the sender's slot, the sample ids, and which (sample, head) entries
        the message overwrites (None: all of them). NaN (empty) counts as older than anything."""
        k = self._slot(sender)
        ids = ids.astype(np.int64, copy=False)
        times = self.cache_t[k]  # [P, S]
        old = times.take(ids, axis=0)  # [n, S]
        if (heads is self.sent or heads.tobytes() == self.sent.tobytes()) and not (
            old > produced
        ).any():
            newer = None
            times[ids] = produced
        else:
            newer = ~(old > produced) & np.isin(self.sent, heads)
            times[ids] = np.where(newer, produced, old)
        self.have[ids] = True
        self._pool, self._have_any = None, True  # the pool is recomputed when next needed
        device = self.cache_p.device
        return (
            k,
            torch.from_numpy(ids).to(device),
            None if newer is None else torch.from_numpy(newer).to(device),
        )

    @property
    def pool(self) -> np.ndarray | None:
        """Public samples with at least one peer prediction (None while there are none)."""
        if self._pool is None and self._have_any:
            self._pool = np.flatnonzero(self.have)
        return self._pool
