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

from ..contract import DistillStep
from . import plan_kernel
from .plan_kernel import integers

add, biggest = np.add.reduce, np.maximum.reduce


def add_to(total: np.ndarray, more: np.ndarray) -> None:
    np.add(total, more, out=total)


def room(slots: int) -> int:
    """Columns a plan's table of production times holds for ``slots`` peers: it grows by half
    (at least 4) whenever it is full, so that a peer's first message rarely copies it.

    >>> [room(n) for n in (1, 4, 5, 10, 20)]
    [4, 4, 8, 12, 27]
    """
    cap = 0
    while cap < slots:
        cap += max(4, cap // 2)
    return cap


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
    predictions it cached, the ages of those its steps read, and its walk through the public
    set when it makes messages.

    A cached prediction's time is its message's: ``stamps[which[sample, slot]]``, where
    ``stamps`` holds each stored message's production time (``stamps[0]`` NaN: none) and
    ``which`` [public, slots] an int32 per entry, half the memory of a time per entry; every
    message of a run carries the same heads, so one time stands for all of a sample's heads.
    A message's embeddings travel with its predictions, so they share those times."""

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
        own_pass: bool = False,
    ) -> None:
        """``rng`` is the agent's own stream; ``flops(kind, batch)`` counts a ``train`` step
        or a ``forward`` pass of the agent's model; ``own_pass``: its own heads, when they are
        candidates, need a forward pass of their own (a model whose train mode changes what it
        computes); otherwise they are read from the step's training pass, which costs nothing
        more."""
        self.wiring, self.algo, self.rng = wiring, algo, rng
        self.private, self.batch_size = private, training.batch_size
        self.public_batch_size = training.public_batch_size
        # upper bounds of a step's draws: private samples, then the public pool (set per step)
        self._bounds = np.full(self.batch_size + self.public_batch_size, self.private)
        self.embeds = embeds
        self.learns = bool(wiring.sources) or embeds  # its steps read peers' predictions
        self.ranked = algo.aggregation == "max_confidence"
        self.heads = len(wiring.heads_sent)
        # sample-major (a step reads whole rows), columns grown by half as peers first write
        self.which = np.zeros((public, 0), dtype=np.int32)
        self.stamps, self.stamped = np.full(16, np.nan), 1  # the times, and how many are set
        # the peers whose embeddings it learns from (None: all; set where embedding sizes
        # differ, to those of its own size), and per slot whether its peer is one
        self.embedding_peers: set[int] | None = None
        self.embedding_slots = np.zeros(0, dtype=bool)
        self.latest: list[float] = []  # per slot, the latest production time stored so far
        self.slots: dict[int, int] = {}  # peer -> its slot in the caches
        self.have = np.zeros(public, dtype=bool)  # samples with at least one prediction
        self._pool: np.ndarray | None = None
        # max_confidence ties are decided by a stream of their own (drawn at every step)
        self.tie_rng = np.random.default_rng(rng.bit_generator.seed_seq.spawn(1)[0])
        self.order = rng.permutation(public)  # the order messages walk through the public set
        self.cursor = 0
        self.age_sum = np.zeros(0)  # per slot: ages of its predictions used as a teacher
        self.age_count = np.zeros(0, dtype=np.int64)
        self._fast = plan_kernel.compiled()  # None: the Python path (plan_kernel.py)
        # the compiled step's scratch: each slot's sum, and one slot's ages (summed pairwise)
        self._per_slot, self._column = np.empty(0), np.empty(training.public_batch_size)
        # FLOPs, counted once here for every way of running the plan
        batch, pub = training.batch_size, training.public_batch_size
        self.plain_flops = flops("train", batch)
        self.distill_flops = flops("train", batch + pub)
        if wiring.own_candidates and own_pass:  # a pass in eval mode for its own heads
            self.distill_flops += flops("forward", pub)
        self.message_flops = flops("forward", min(algo.share_size, public))

    # --- steps --------------------------------------------------------------------------

    @property
    def pool(self) -> np.ndarray | None:
        """Public samples with at least one peer prediction (None while there are none)."""
        if self._pool is None and self.slots:
            self._pool = np.flatnonzero(self.have)
        return self._pool

    def step(self, now: float, ties: bool = True) -> DistillStep:
        """A step starting ``now``: the batches drawn, which cached predictions are fresh
        enough and how old they are, its FLOPs, and (``ties``) the draws that decide between
        equally confident teachers."""
        pool = self.pool
        bounds, b = self._bounds, self.batch_size
        if not self.learns or (pool is None and not self.wiring.own_candidates):
            batch = integers(self.rng, bounds[:b])  # = rng.integers(private, size=b)
            return DistillStep(self.plain_flops, now, batch=batch)
        if pool is None:
            pool = self.order
        # both batches in one call: the same numbers as two calls, one call's overhead
        bounds[b:] = len(pool)
        K, algo = len(self.slots), self.algo
        step = DistillStep(self.distill_flops, now)
        reads_all = algo.teachers is None or K <= algo.teachers  # no random neighbours drawn
        if self._fast is not None and K and reads_all and not self.embeds:
            drawn, u, valid = self._compiled_step(now, pool, K, step)
        else:
            drawn = integers(self.rng, bounds)
            u = pool[drawn[b:]]
            valid = self._ages(now, u, K, step)
        step.batch, step.public, step.valid = drawn[:b], u, valid
        if self.ranked and ties:  # a draw per candidate row: each source's peers, then its own
            sources = self.wiring.sources
            rows = max(map(len, sources.values())) * K + 1
            step.ties = self.tie_rng.random((len(sources), rows, len(u)))
        return step

    def _compiled_step(
        self, now: float, pool: np.ndarray, K: int, step: DistillStep
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The draws, the public samples and :meth:`_ages` in C (plan_kernel.py): the same
        numbers."""
        if len(self._per_slot) < K:
            self._per_slot = np.empty(self.which.shape[1])
        drawn = np.empty(len(self._bounds), dtype=np.int64)
        u = np.empty(self.public_batch_size, dtype=np.int64)
        valid = np.empty((len(u), K), dtype=np.uint8)
        limit = self.algo.max_staleness
        total, count, top = self._fast.step(
            self.rng, self._bounds, pool, drawn, u, now, self.which, self.stamps, K,
            np.inf if limit is None else limit, self.age_sum, self.age_count, valid,
            self._per_slot, self._column)  # fmt: skip
        if self.wiring.used.size and count:  # mean and max age over every prediction read
            step.staleness = (total / count, top)
        return drawn, u, valid.view(bool).T

    def _ages(self, now: float, u: np.ndarray, K: int, step: DistillStep) -> np.ndarray:
        """Which cached predictions of samples ``u`` the step reads [K, B], their ages kept
        per slot and (``step.staleness``) their mean and max; ``step.embed_ok`` too."""
        algo = self.algo
        # [K, B]: every message carries the same heads, so one age stands for all of them
        # [K, B] in the layout of a [B, K] table read by rows: sums add up in the same order
        age = now - self.stamps.take(self.which[u, :K]).T  # NaN where the slot has none
        if algo.max_staleness is not None:
            age[age > algo.max_staleness] = np.nan
        if self.embeds:  # every fresh embedding of its public samples, whatever the teachers
            ok = age == age
            step.embed_ok = ok if self.embedding_peers is None else (
                ok & self.embedding_slots[:K, None])  # fmt: skip
        if algo.teachers is not None and K > algo.teachers:
            age[self._left_out(age)] = np.nan
        valid = age == age
        age = np.where(valid, age, 0.0)
        # ufunc reductions: ndarray.sum's Python wrapper costs more than these small sums
        per_slot, counts = add(age, 1), add(valid, 1)
        add_to(self.age_sum[:K], per_slot), add_to(self.age_count[:K], counts)
        if self.wiring.used.size:  # mean and max age over every prediction a teacher read
            count = int(add(counts))
            if count:
                step.staleness = (float(add(per_slot)) / count, float(biggest(age, None)))
        return valid

    def _left_out(self, age: np.ndarray) -> np.ndarray:
        """What this step does not read, the paper's random neighbours: ``teachers`` peers
        drawn at random among those with cached predictions (every slot has some: a slot is
        made by a peer's first message), for the whole step (a [K] mask of slots), or
        ``per_sample`` among those with a usable prediction of each sample (a [K, B] mask;
        ``age`` [K, B], NaN: none)."""
        K, T = len(self.slots), self.algo.teachers
        if self.algo.teachers_drawn == "per_step":
            out = np.ones(K, dtype=bool)
            out[self.rng.choice(np.arange(K), T, replace=False)] = False
            return out
        keys = self.rng.random(age.shape)  # a uniform order of the usable peers per sample
        keys[age != age] = np.inf
        out = np.ones(age.shape, dtype=bool)
        np.put_along_axis(out, np.argpartition(keys, T - 1, axis=0)[:T], False, axis=0)
        return out

    # --- messages -----------------------------------------------------------------------

    def next_chunk(self) -> np.ndarray | None:
        """The public samples of the agent's next message: the next ``share_size`` of its walk
        (None: its messages would carry nothing, no head nor embedding that peers use)."""
        if not self.heads and not self.embeds:
            return None
        n, P = self.algo.share_size, len(self.order)
        ids = self.order[(self.cursor + np.arange(min(n, P))) % P]
        self.cursor = (self.cursor + len(ids)) % P
        return ids

    def store(
        self, sender: int, ids: np.ndarray, produced: float, heads: np.ndarray
    ) -> tuple[int, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """A peer's message arrived: keep, per sample, whichever prediction was made later
        (NaN, empty, is older than anything). Returns the sender's slot, the sample ids,
        which (sample, head) entries of the message to write (None: all of them) and, when
        messages carry embeddings, which of its samples' embeddings to write (None: none, as
        from a peer whose embedding has another size: ``embedding_peers``)."""
        sent = self.wiring.heads_sent
        if heads is not sent and heads.tobytes() != sent.tobytes():
            raise ValueError(
                f"a message with heads {heads.tolist()}; this run sends {sent.tolist()}"
            )
        k, m = self._slot(sender), self._stamp(produced)
        ids = ids.astype(np.int64, copy=False)
        newest = produced >= self.latest[k]  # newer than all it holds: no check
        if newest:
            self.latest[k] = produced
        write = self._write if self._fast is None else self._compiled_write
        kept = write(k, ids, m, produced, newest)
        newer = None if kept is None else np.repeat(kept[:, None], self.heads, axis=1)  # [n, heads]
        fresh = None  # its embeddings travel with its predictions: the same samples are newer
        if self.embeds and self.embedding_slots[k]:
            fresh = np.ones(len(ids), dtype=bool) if kept is None else kept
        return k, ids, newer, fresh

    def _write(
        self, k: int, ids: np.ndarray, m: int, produced: float, newest: bool
    ) -> np.ndarray | None:
        """Slot ``k`` of samples ``ids`` takes message ``m``, except where it holds a later
        prediction; which samples took it (None: all). Marks them as having predictions."""
        which, kept = self.which[:, k], None  # [P]
        if newest:
            which[ids] = m
        else:
            old = self.stamps.take(which.take(ids))
            if not (old > produced).any():
                which[ids] = m
            else:
                kept = ~(old > produced)
                which[ids[kept]] = m
        if self._pool is None or len(self._pool) < len(self.have):  # not every sample yet
            self.have[ids] = True
            self._pool = None  # recomputed when next needed
        return kept

    def _compiled_write(
        self, k: int, ids: np.ndarray, m: int, produced: float, newest: bool
    ) -> np.ndarray | None:
        """:meth:`_write` in C (plan_kernel.py): the same writes."""
        kept = np.empty(len(ids), dtype=np.uint8)
        taken, gained = self._fast.store(self.which, k, ids, m, produced, self.stamps,
                                         self.have, not newest, kept)  # fmt: skip
        if gained:
            self._pool = None  # recomputed when next needed
        return None if taken == len(ids) else kept.view(bool)

    def _stamp(self, produced: float) -> int:
        """Keep a message's production time; its index in ``stamps``."""
        m = self.stamped
        if m == len(self.stamps):
            self.stamps = np.concatenate([self.stamps, np.full(m, np.nan)])
        self.stamps[m], self.stamped = produced, m + 1
        return m

    def times(self) -> np.ndarray:
        """The production time of every cached prediction [public, slots] (NaN: none)."""
        return self.stamps.take(self.which)

    def _slot(self, sender: int) -> int:
        k = self.slots.get(sender)
        if k is not None:
            return k
        k = self.slots[sender] = len(self.slots)
        if k == self.which.shape[1]:  # full: see room()
            more = room(k + 1) - k
            self.which = np.concatenate(
                [self.which, np.zeros((len(self.which), more), dtype=np.int32)], 1
            )
            self.embedding_slots = np.append(self.embedding_slots, np.zeros(more, dtype=bool))
            self.age_sum = np.append(self.age_sum, np.zeros(more))
            self.age_count = np.append(self.age_count, np.zeros(more, dtype=np.int64))
        self.latest.append(-np.inf)
        peers = self.embedding_peers
        self.embedding_slots[k] = peers is None or sender in peers
        return k

    def teacher_ages(self) -> dict[int, tuple[float, int]]:
        """Per peer: (sum, count) of the ages of its predictions this agent's steps read, one
        per head sent."""
        sums, counts = (self.age_sum * self.heads).tolist(), (self.age_count * self.heads).tolist()
        return {p: (sums[k], counts[k]) for p, k in self.slots.items()}
