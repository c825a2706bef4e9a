"""The schedule half of a distilling agent (MHD, distill): which heads learn from which,
what each step draws and may read, when every cached prediction was made.

None of it depends on weights or predictions, only on the scenario, the seed and the
messages that arrived. So per-agent execution (``mhd.py``), the batched engine
(``batched/``) and timing-only runs (``timing_only.py``) share one :class:`Plan` per
agent: the same draws, the same ages, the same FLOPs, whatever computes the tensors.

The predictions themselves live beside it, in caches indexed by the plan's peer slots and
the public samples (``[slots, public, heads sent, ...]``); :meth:`Plan.store` says where a
message's values go.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pydantic

from ..seam import Step


@dataclass(frozen=True)
class Wiring:
    """Which heads learn from which, and what messages carry (fixed for a run).

    >>> w = Wiring.of([0.0, 1.0, 1.0], include_self=True, last_head_loop=False)
    >>> w.sources, w.heads_sent.tolist(), w.column
    ({1: [0], 2: [1]}, [0, 1], {0: 0, 1: 1})
    """

    weights: tuple[float, ...]  # ν per head
    sources: dict[int, list[int]]  # student head -> the peer heads it learns from
    heads_sent: np.ndarray  # uint8: heads whose predictions go into messages, ascending
    column: dict[int, int]  # a sent head -> its column in messages and caches
    own_candidates: bool  # the agent's own head m−1 is a candidate for its head m
    used: np.ndarray  # the cache columns teachers read, one per (student head, source)

    @classmethod
    def of(cls, weights: list[float], include_self: bool, last_head_loop: bool) -> Wiring:
        H = len(weights)
        sources = {}
        for m in range(H):
            if weights[m] > 0:
                src = [0] if m == 0 else [m - 1]
                if last_head_loop and m == H - 1 and m > 0:
                    src.append(m)
                sources[m] = src
        sent = np.array(sorted({h for s in sources.values() for h in s}), dtype=np.uint8)
        column = {int(h): j for j, h in enumerate(sent)}
        used = np.array([column[h] for src in sources.values() for h in src], dtype=np.int64)
        own = include_self and any(m > 0 for m in sources)
        return cls(tuple(weights), sources, sent, column, own, used)

    @property
    def source_column(self) -> dict[int, int]:
        """Student head -> the one cache column it reads (empty unless every head reads one)."""
        if not self.sources or any(len(src) > 1 for src in self.sources.values()):
            return {}
        return {m: self.column[src[0]] for m, src in self.sources.items()}


class Plan:
    """One agent's schedule: its private and public batches, the production times of the
    predictions it cached (``times`` [public, slots], NaN where it has none: every message of
    a run carries the same heads, so one time stands for all of a sample's heads;
    ``embedded`` [slots, public] for embeddings), the ages of those its steps read, and its
    walk through the public set when it makes messages."""

    def __init__(
        self,
        wiring: Wiring,
        algo: pydantic.BaseModel,
        training: pydantic.BaseModel,
        public: int,
        private: int,
        rng: np.random.Generator,
        flops: Callable[[str, int], float],
        embeds: bool = False,
    ) -> None:
        """``rng`` is the agent's own stream; ``flops(kind, batch)`` counts a ``train`` step
        or a ``forward`` pass of the agent's model."""
        self.wiring, self.algo, self.rng = wiring, algo, rng
        self.private, self.batch_size = private, training.batch_size
        self.public_batch_size = training.public_batch_size
        self.embeds = embeds
        self.learns = bool(wiring.sources) or embeds  # its steps read peers' predictions
        self.ranked = algo.aggregation == "max_confidence"
        self.heads = len(wiring.heads_sent)
        self.times = np.full((public, 0), np.nan)  # sample-major: a step reads whole rows
        self.embedded = np.full((0, public), np.nan)
        self.latest = np.zeros(0)  # per slot, the latest production time stored so far
        self.slots: dict[int, int] = {}  # peer -> its slot in the caches
        self.have = np.zeros(public, dtype=bool)  # samples with at least one prediction
        self._pool: np.ndarray | None = None
        # max_confidence ties are decided by a stream of their own (drawn at every step)
        self.tie_rng = np.random.default_rng(rng.bit_generator.seed_seq.spawn(1)[0])
        self.order = rng.permutation(public)  # the order messages walk through the public set
        self.cursor = 0
        self.age_sum = np.zeros(0)  # per slot: ages of its predictions used as a teacher
        self.age_count = np.zeros(0, dtype=np.int64)
        self.used_all = np.array_equal(wiring.used, np.arange(self.heads))
        # FLOPs, counted once here for every way of running the plan
        batch, pub = training.batch_size, training.public_batch_size
        self.plain_flops = flops("train", batch)
        self.distill_flops = flops("train", batch + pub)
        if wiring.own_candidates:  # the forward pass that gives its own heads' predictions
            self.distill_flops += flops("forward", pub)
        self.message_flops = flops("forward", min(algo.share_size, public))

    # --- steps --------------------------------------------------------------------------

    @property
    def pool(self) -> np.ndarray | None:
        """Public samples with at least one peer prediction (None while there are none)."""
        if self._pool is None and self.slots:
            self._pool = np.flatnonzero(self.have)
        return self._pool

    def step(self, now: float, ties: bool = True) -> Step:
        """A step starting ``now``: the batches drawn, which cached predictions are fresh
        enough and how old they are, its FLOPs, and (``ties``) the draws that decide between
        equally confident teachers."""
        batch = self.rng.integers(self.private, size=self.batch_size)
        step = Step(batch, self.plain_flops, now)
        pool = self.pool
        if not self.learns or (pool is None and not self.wiring.own_candidates):
            return step
        if pool is None:
            pool = self.order
        u = pool[self.rng.integers(len(pool), size=self.public_batch_size)]
        # [K, B, S], each sample's time once per head sent: the layout the sums always had
        born = np.repeat(self.times.take(u, axis=0).T[:, :, None], self.heads, axis=2)
        algo = self.algo
        if algo.max_staleness is not None:
            born = self._fresh(born, now)
        if algo.teachers is not None and len(self.slots) > algo.teachers:
            born = self._sample_peers(born)
        valid = born == born  # not NaN
        age = np.where(valid, now - born, 0.0)
        per_slot, counts = age.sum((1, 2)), valid.sum((1, 2))
        self.age_sum += per_slot
        self.age_count += counts
        used = self.wiring.used
        if len(used):  # mean and max age over every prediction a teacher read (ages ≥ 0)
            if self.used_all:  # teachers read every column once: reuse the sums above
                count, read = int(counts.sum()), age
                total = float(per_slot.sum())
            else:
                count, read = int(valid[:, :, used].sum()), age[:, :, used]
                total = float(read.sum())
            if count:
                step.staleness = (total / count, float(read.max()))
        if self.embeds:
            et = self._fresh(self.embedded[:, u], now)
            step.embed_ok = et == et  # [K, B]
        step.public, step.valid = u, valid
        step.flops = self.distill_flops
        if self.ranked and ties:  # a draw per candidate row: each source's peers, then its own
            sources = self.wiring.sources
            rows = max(map(len, sources.values())) * len(born) + 1
            step.ties = self.tie_rng.random((len(sources), rows, len(u)))
        return step

    def _fresh(self, born: np.ndarray, now: float) -> np.ndarray:
        """Production times, with entries too old to use (``max_staleness``) blanked to NaN."""
        if self.algo.max_staleness is None:
            return born
        return np.where(now - born > self.algo.max_staleness, np.nan, born)

    def _sample_peers(self, born: np.ndarray) -> np.ndarray:
        """``teachers`` peers drawn at random among those with cached predictions (every slot
        has some: a slot is made by a peer's first message); the others' entries blanked for
        this step (the paper's random neighbours)."""
        keep = np.zeros(len(born), dtype=bool)
        keep[self.rng.choice(np.arange(len(self.slots)), self.algo.teachers, replace=False)] = True
        return np.where(keep[:, None, None], born, np.nan)

    # --- messages -----------------------------------------------------------------------

    def next_chunk(self) -> np.ndarray:
        """The public samples of the agent's next message: the next ``share_size`` of its walk."""
        n, P = self.algo.share_size, len(self.order)
        ids = self.order[(self.cursor + np.arange(min(n, P))) % P]
        self.cursor = (self.cursor + len(ids)) % P
        return ids

    def store(
        self, sender: int, ids: np.ndarray, produced: float, heads: np.ndarray
    ) -> tuple[int, np.ndarray, np.ndarray | None]:
        """A peer's message arrived: keep, per sample, whichever prediction was made later
        (NaN, empty, is older than anything). Returns the sender's slot, the sample ids and
        which (sample, head) entries of the message to write (None: all of them)."""
        sent = self.wiring.heads_sent
        if heads is not sent and heads.tobytes() != sent.tobytes():
            raise ValueError(
                f"a message with heads {heads.tolist()}; this run sends {sent.tolist()}"
            )
        k = self._slot(sender)
        ids = ids.astype(np.int64, copy=False)
        times = self.times[:, k]  # [P]
        if produced >= self.latest[k]:  # newer than all it holds: no check
            newer = None
            times[ids] = produced
        else:
            old = times.take(ids)
            if not (old > produced).any():
                newer = None
                times[ids] = produced
            else:
                fresh = ~(old > produced)
                times[ids] = np.where(fresh, produced, old)
                newer = np.repeat(fresh[:, None], self.heads, axis=1)  # [n, heads sent]
        if produced > self.latest[k]:
            self.latest[k] = produced
        if self._pool is None or len(self._pool) < len(self.have):  # not every sample yet
            self.have[ids] = True
            self._pool = None  # recomputed when next needed
        return k, ids, newer

    def store_embeddings(self, slot: int, ids: np.ndarray, produced: float) -> np.ndarray:
        """A message's embeddings: which of its samples are newer than what the slot holds
        (those are written, and their time kept)."""
        at = ids.astype(np.int64)
        fresh = ~(self.embedded[slot, at] > produced)
        self.embedded[slot, at[fresh]] = produced
        return fresh

    def _slot(self, sender: int) -> int:
        if sender not in self.slots:
            self.slots[sender] = len(self.slots)
            self.times = np.concatenate([self.times, np.full((len(self.times), 1), np.nan)], 1)
            self.embedded = np.concatenate(
                [self.embedded, np.full((1, *self.embedded.shape[1:]), np.nan)]
            )
            self.latest = np.append(self.latest, -np.inf)
            self.age_sum = np.append(self.age_sum, 0.0)
            self.age_count = np.append(self.age_count, 0)
        return self.slots[sender]

    def teacher_ages(self) -> dict[int, tuple[float, int]]:
        """Per peer: (sum, count) of the ages of its predictions this agent's steps read."""
        sums, counts = self.age_sum.tolist(), self.age_count.tolist()
        return {p: (sums[k], counts[k]) for p, k in self.slots.items()}
