"""Multi-headed distillation (MHD): head m ≥ 1 distils from the heads m−1 on public data.

The schedule half of the agent (its draws, the production times of what it cached, the
ages its steps read) is its :class:`~.plan.Plan`; this file holds the tensor half: the
cached predictions themselves (:class:`PeerCache`), the teachers chosen from them
(``teachers.py``), the loss, and the messages.
"""

from __future__ import annotations

import numpy as np
import pydantic
import torch

from ..contract import DistillStep
from ..distillation import messages
from ..distillation.abstain import Rules, held_back
from ..distillation.diagnostics import TeacherLog, chosen_arrays
from ..distillation.loss import add_distillation, add_embedding
from ..distillation.plan import Plan, Wiring
from ..distillation.teachers import (
    Choice,
    confidence,
    confident_teachers,
    message_values,
    reference_teachers,
)
from .learner import Learner
from .settings import MHDSettings


class PeerCache:
    """The peers' predictions a learner keeps, laid out as its plan's production times:
    probabilities [slots, public, heads sent, classes] (float16 when they travel as float16:
    exact, and half the memory), the confidences the messages carried [slots, public, heads
    sent] (numpy: the fast path chooses teachers there) and embeddings [slots, public, dim]."""

    def __init__(
        self, public: int, heads: int, classes: int, embedding: int, encoding: str, device: str
    ) -> None:
        store = torch.float16 if encoding == "float16" else torch.float32
        self.probs = torch.zeros(0, public, heads, classes, dtype=store, device=device)
        self.conf = np.zeros((0, public, heads), dtype=np.float32)
        self.emb = torch.zeros(0, public, embedding, device=device)

    def grow(self, slots: int) -> None:
        """Room for ``slots`` peers (a peer's slot is made by its first message)."""
        while len(self.probs) < slots:
            self.probs = torch.cat([self.probs, self.probs.new_zeros(1, *self.probs.shape[1:])])
            self.emb = torch.cat([self.emb, self.emb.new_zeros(1, *self.emb.shape[1:])])
            self.conf = np.concatenate([self.conf, np.zeros((1, *self.conf.shape[1:]), np.float32)])


class MHD(Learner):
    """Multi-headed distillation: head m ≥ 1 distils from the peers' (and its own) head m−1."""

    sends = True
    Settings = MHDSettings
    Plan = Plan
    # the distillation terms of a step's loss, and its embedding term: the batched engine maps
    # these same functions over its stacked agents
    distill_loss = staticmethod(add_distillation)
    embedding_loss = staticmethod(add_embedding)

    @classmethod
    def head_weights(cls, algo: pydantic.BaseModel, heads: int) -> list[float]:
        """ν per head: none for the main head, ``distill_weight`` for the others."""
        w = algo.distill_weight
        return list(w) if isinstance(w, list) else [0.0] + [float(w)] * (heads - 1)

    def configure(self) -> None:
        self.share_every = self.algo.share_every
        self.wiring = Wiring.of(self.head_weights(self.algo, self.heads),
                                *self.algo.own_candidates())  # fmt: skip

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        algo, public = self.algo, len(self.shared.public_x)
        embeds = algo.embeds()
        # teachers that know their limits (abstain.py): the held-back samples come last
        self.private = self.plan.private
        self.x_cal, self.y_cal = self.x[self.private :], self.y[self.private :]
        self.rules = (
            Rules.start(self.heads, self.y[: self.private], self.shared.classes, algo)
            if algo.rules()
            else None
        )
        device = self.shared.public_x.device
        # the embeddings messages carry and steps distil: each distilling auxiliary head's own
        # (a model with head_hidden), else the backbone's (row 0 of the model's embeddings)
        hidden = self.model.head_hidden
        self.emb_rows = [m for m in self.wiring.sources if m >= 1] if hidden else [0]
        # the width of the embeddings its messages carry (0: none)
        self.emb_width = embedding = len(self.emb_rows) * self.model.embedding if embeds else 0
        # None when the batched engine keeps every agent's predictions in one tensor
        self.cache: PeerCache | None = PeerCache(
            public, len(self.wiring.heads_sent), self.shared.classes, embedding, algo.encoding,
            device,
        )  # fmt: skip
        # the fast path of teacher choice (teachers.confident_teachers): one cache column per
        # student head, max-confidence, on CPU
        self.by_confidence = bool(self.wiring.source_column) and self.plan.ranked and self.on_cpu
        self.teacher_log: TeacherLog | None = None  # set by the population: it knows the labels
        self.message_bytes = messages.encoded_size(
            min(algo.share_size, public), len(self.wiring.heads_sent), self.shared.classes,
            algo.encoding, algo.topk, embedding, confidence=self.plan.ranked,
        )  # fmt: skip

    def new_plan(self, private: int, rng: np.random.Generator) -> Plan:
        """The schedule half of an agent with ``private`` samples drawing from ``rng``: its
        own, or a timing-only stand-in's (this learner then a template of the architecture)."""
        public, cal = len(self.shared.public_x), held_back(self.algo, private)
        plan = self.Plan(self.wiring, self.algo, self.training, public, private - cal, rng,
                         self.flops, self.algo.embeds(), own_pass=self.modal)  # fmt: skip
        if cal:  # each message first calibrates on the held-back samples
            plan.message_flops += self.flops("forward", cal)
        return plan

    # --- steps --------------------------------------------------------------------------

    def prepare(self, step: DistillStep) -> None:
        """Keep what the step's teachers are chosen from, as the cache holds it now (the
        cached predictions and confidences of its public samples): they are chosen when the
        step runs, from its own forward pass (``choose_teachers``)."""
        if step.public is None:
            return
        step.candidates = self.candidates(step.public)
        if self.plan.embeds:
            u, ok = self._device(step.public), self._device(step.embed_ok)
            total = (self.cache.emb[:, u] * ok[..., None]).sum(0)
            step.embedding = (total / ok.sum(0).clamp_min(1)[:, None], ok.any(0))

    def _device(self, a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(a)
        return t if self.on_cpu else t.to(self.shared.public_x.device)

    def candidates(self, u: np.ndarray) -> tuple[torch.Tensor, np.ndarray | None]:
        """The cached predictions [K, B, S, C] and confidences [K, B, S] of public samples
        ``u``, copied: what teachers are chosen from."""
        conf = self.cache.conf.take(u, axis=1) if self.plan.ranked else None
        return self.cache.probs.index_select(1, self._device(u)), conf

    def choose_teachers(
        self, step: DistillStep, logits: torch.Tensor | None = None
    ) -> list[Choice]:
        """Per student head: its teacher on the step's public samples, and which have one (None:
        all do), from the step's candidates (else the cache as it is) and its own heads'
        ``logits`` [H, B, C] on them: the step's forward pass, the same numbers as a pass of
        their own where the layers compute each sample alone and train mode changes nothing
        (None: a pass of their own). The fast path where it applies (the same teachers
        exactly, a test checks), else the reference."""
        algo, wiring = self.algo, self.wiring
        probs, conf = step.candidates or self.candidates(step.public)  # [K,B,S,C], [K,B,S]
        own = own_conf = None
        if wiring.own_candidates:  # the agent's own heads are candidates too, as they are now
            if logits is None or self.modal:  # a pass of their own, in eval mode
                training = self.model.training
                with torch.no_grad():
                    self.mode(train=False)
                    u = self._device(step.public)
                    logits = self.model(self.shared.public_x.index_select(0, u))[0]
                    self.mode(train=training)
            own = torch.softmax(logits, -1)
            if self.plan.ranked:  # rounded as a message would carry it: all compared alike
                mine = (
                    confidence(logits, algo.confidence)
                    if self.rules is None
                    else self.rules.judge(logits, slice(None), algo.confidence)[0]
                )
                own_conf = messages.quantize(mine, algo.encoding)
        if self.by_confidence:
            return confident_teachers(
                probs, conf, np.arange(len(step.public)), step.valid, wiring.source_column,
                algo.temperature, step.ties, own, own_conf,
            )  # fmt: skip
        ranks = {}
        if self.plan.ranked:
            ranks = {
                "conf": torch.from_numpy(conf),
                "own_conf": None if own_conf is None else torch.from_numpy(own_conf),
                "ties": torch.from_numpy(step.ties),
            }
            ranks = {k: v if v is None else v.to(probs.device) for k, v in ranks.items()}
        chosen = reference_teachers(
            probs.float(), self._device(step.valid), wiring.sources, wiring.column,
            algo.aggregation, algo.temperature, own, **ranks, era=algo.era_temperature,
        )  # fmt: skip
        for c in chosen:
            c.ok = None if bool(c.ok.all()) else c.ok
        return chosen

    def train(self, step: DistillStep) -> None:
        super().train(step)
        if self.teacher_log is not None and step.targets:  # counted when the step is done
            self.teacher_log.record_step(step.public, chosen_arrays(step.targets))

    def teacher_rows(self, now: float) -> list[tuple]:
        """``teachers.csv`` rows since the last evaluation (see ``diagnostics.py``)."""
        return [] if self.teacher_log is None else self.teacher_log.rows(now, self.agent)

    def inputs(self, step: DistillStep, batch: torch.Tensor) -> torch.Tensor:
        xb = super().inputs(step, batch)
        if step.public is None:
            return xb
        return torch.cat([xb, self.shared.public_x.index_select(0, self._device(step.public))])

    def loss(
        self, step: DistillStep, batch: torch.Tensor, logits: torch.Tensor, emb: torch.Tensor
    ) -> torch.Tensor:
        """Cross-entropy on head 0, plus ν·τ²·KL(teacher ‖ student) per distilling head on the
        public batch, plus the embedding term."""
        loss = super().loss(step, batch, logits, emb)
        n = len(step.batch)
        if step.candidates is not None:  # a distillation step: its teachers, chosen now
            step.targets = self.choose_teachers(step, logits[:, n:].detach())
        targets = [(c.head, c.target, c.ok) for c in step.targets]
        loss = self.distill_loss(
            loss, logits, n, targets, self.wiring.weights, self.algo.temperature
        )
        if step.embedding is not None:
            target, valid = step.embedding
            mine = self.embedded(emb)[n:]
            loss = self.embedding_loss(loss, mine, target, valid, self.algo.embedding_weight)
        return loss

    def embedded(self, emb: torch.Tensor) -> torch.Tensor:
        """The embeddings peers learn from, side by side [..., B, rows · size], of the model's
        embeddings ``emb`` [..., E, B, size] (leading dimensions: agents, for the batched
        engine): the backbone's, or each distilling auxiliary head's own (so that a mean
        squared error over them is the mean of the heads' errors)."""
        if len(self.emb_rows) == 1:
            return emb[..., self.emb_rows[0], :, :]
        rows = emb[..., self.emb_rows, :, :].movedim(-3, -2)  # [..., B, rows, size]
        return rows.reshape(*rows.shape[:-2], -1)

    # --- messages -----------------------------------------------------------------------

    def message_flops(self) -> float:
        return self.plan.message_flops

    @torch.no_grad()
    def payload(self, ids: np.ndarray, now: float) -> bytes:
        """A message's bytes: the predictions on public samples ``ids``, as the model is now,
        of the heads (and the embedding) that peers learn from."""
        sent = self.wiring.heads_sent
        self.mode(train=False)
        logits, emb = self.model(self.shared.public_x.index_select(0, self._device(ids)))
        probs, conf = self.message_values(logits[torch.from_numpy(sent).long()])
        return messages.encode(
            self.agent, now, sent, ids, probs, self.algo.encoding, self.algo.topk,
            self.embedded(emb) if self.plan.embeds else None, conf,
        )  # fmt: skip

    def message_values(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What a message carries from the sender's logits [..., heads sent, n, C] (leading
        dimensions: agents, for the batched engine): probabilities [..., n, heads sent, C]
        and, for max_confidence, confidences [..., n, heads sent]."""
        if self.rules is None:
            return message_values(logits, self.algo.confidence, self.plan.ranked)
        return self.judged(logits, torch.from_numpy(self.wiring.heads_sent).long())

    def judged(
        self, logits: torch.Tensor, heads: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A message's values under the teacher rules (abstain.py): calibrated first on the
        held-back samples as the model is now; a rejected sample's probabilities are zeros
        and its confidence −inf."""
        if len(self.y_cal):
            held = self.model(self.x_cal)[0]  # [H, n, C]
            self.rules.calibrate(held, self.y_cal, self.algo)
        conf, rejected = self.rules.judge(logits, heads, self.algo.confidence)
        probs = torch.softmax(logits, -1).masked_fill(rejected[..., None], 0.0)
        return probs.transpose(-3, -2), conf.transpose(-2, -1)

    def decode(self, payload: bytes) -> messages.Predictions:
        return messages.decode(payload, half=self.cache.probs.dtype == torch.float16)

    def write(self, msg: messages.Predictions, place: tuple, produced: float) -> None:
        """Store a peer's predictions where its plan put them (``Plan.store``: the slot, its
        samples and which of their entries are newer than what the slot holds; None: all)."""
        k, ids, newer, fresh_emb = place
        cache = self.cache
        cache.grow(k + 1)
        ids_t = self._device(ids)
        probs = msg.probs.to(cache.probs.device, cache.probs.dtype)
        conf = msg.confidence
        ranked = self.plan.ranked
        if ranked and conf is None:  # a message without them: rank by probability
            conf = msg.probs.float().amax(-1).numpy()
        if newer is None:  # the usual case: all of it is newer; one write
            cache.probs[k].index_copy_(0, ids_t, probs)
            if ranked:
                cache.conf[k][msg.ids] = conf
        else:
            for j, h in enumerate(self.wiring.heads_sent):
                col = np.flatnonzero(msg.heads == h)
                if len(col):
                    fresh = newer[:, j]
                    fresh_t = self._device(fresh)
                    cache.probs[k, ids_t[fresh_t], j] = probs[fresh_t, int(col[0])]
                    if ranked:
                        cache.conf[k, msg.ids[fresh], j] = conf[fresh, col[0]]
        if fresh_emb is not None and msg.embeddings is not None:
            fresh = self._device(fresh_emb)
            values = msg.embeddings.to(cache.emb.device)
            cache.emb[k, ids_t[fresh]] = values[fresh]

    def teacher_ages(self) -> dict[int, tuple[float, int]]:
        return self.plan.teacher_ages()
