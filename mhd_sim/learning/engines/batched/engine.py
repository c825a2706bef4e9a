"""The batched engine: queues of deferred ops per agent, run in waves (see the package doc)."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch.func import functional_call, stack_module_state, vmap

from ...algorithms.learner import Learner, accuracy
from ..deferred import Op, Queues
from . import waves
from .ops import Group

# Agents per vmapped computation: bounds the activations a wave holds at once (a wave can
# be ~700 agents). At 1,000 agents, chunks of 128 to all of a wave ran equally fast
# (32-34 s), 64 slower (37 s: more calls); 256 peaked lowest in memory.
CHUNK = 256


def _forward(group: Group, params: dict, buffers: dict, x: torch.Tensor) -> tuple:
    """Every stacked row of ``group`` on the same inputs ``x``."""
    return vmap(lambda p, b: functional_call(group.base, (p, b), (x,)))(params, buffers)


class Engine(Queues):
    """The deferred, batched execution of a population's learning (see the module docstring)."""

    def __init__(self, learners: list[Learner], flush_every: int = 64, chunk: int = CHUNK) -> None:
        super().__init__(learners, flush_every)
        self.chunk = chunk
        first = learners[0]
        self.shared, self.algo, self.training = first.shared, first.algo, first.training
        self.device = first.shared.public_x.device
        sizes = [len(lr.y) for lr in learners]
        self.offset = torch.tensor(np.concatenate([[0], np.cumsum(sizes)[:-1]]), device=self.device)
        self.x = torch.cat([lr.x for lr in learners])
        self.y = torch.cat([lr.y for lr in learners])
        self.dist = torch.stack([lr.label_dist for lr in learners])
        self.mhd = first.algo.capabilities.distills  # learns from predictions (mhd, distill)
        if self.mhd:
            for lr in learners:
                lr.cache = None  # the engine keeps every agent's predictions in one tensor
            wiring = first.wiring
            P, S, C = len(self.shared.public_x), len(wiring.heads_sent), self.shared.classes
            store = torch.float16 if self.algo.encoding == "float16" else torch.float32
            self.cache = torch.zeros(len(learners), 0, P, S, C, dtype=store, device=self.device)
            # each cached prediction's confidence (max_confidence), as the message carried it
            self.conf = torch.zeros(len(learners), 0, P, S, device=self.device)
            # the peers' embeddings (embedding distillation; width 0: none), as wide as the
            # widest: an agent keeps only its own size's (Plan.embedding_peers) in its first
            # columns
            width = max(lr.emb_width for lr in learners)
            self.emb = torch.zeros(len(learners), 0, P, width, device=self.device)
        self.groups: dict[int, Group] = {}
        arch: dict[str, list[int]] = {}
        for lr in learners:
            arch.setdefault(repr(lr.model), []).append(lr.agent)
        for members in arch.values():
            params, buffers = stack_module_state([learners[i].model for i in members])
            group = Group(
                torch.tensor(members, device=self.device),
                copy.deepcopy(learners[members[0]].model).to("meta"),
                {k: v.detach() for k, v in params.items()},
                buffers,
                row={a: r for r, a in enumerate(members)},
            )
            if self.training.momentum:
                group.momentum = {k: torch.zeros_like(v) for k, v in group.params.items()}
            for a in members:
                self.groups[a] = group
        self._grad = {}  # per (group, has public batch): the vmapped gradient function

    def queue(self, op: Op) -> Op:
        """Queue ``op``; an absorb's place in the shared cache, on the engine's device."""
        if op.kind == "absorb":
            k, ids, newer, fresh = op.place
            self.ensure_slots(k + 1)

            def device(a: np.ndarray | None) -> torch.Tensor | None:
                return None if a is None else torch.from_numpy(a).to(self.device)

            op.place = (k, device(ids), device(newer), device(fresh))
        return super().queue(op)

    def ensure_slots(self, k: int) -> None:
        if self.mhd and k > self.cache.shape[1]:
            grow = max(k, 2 * self.cache.shape[1]) - self.cache.shape[1]

            def grown(t: torch.Tensor) -> torch.Tensor:
                return torch.cat([t, t.new_zeros(t.shape[0], grow, *t.shape[2:])], 1)

            self.cache, self.conf, self.emb = grown(self.cache), grown(self.conf), grown(self.emb)

    # --- running the queues ---------------------------------------------------------------

    def flush(self) -> None:
        """Run every queued op that can run: all but those behind a step still in progress."""
        active = [i for i, q in enumerate(self.queues) if q]
        while active:
            absorbs, trains, sends, dropped = [], {}, {}, 0
            for i in active:
                q = self.queues[i]
                while q and (q[0].cancelled or (q[0].kind == "absorb" and not q[0].waits)):
                    op = q.popleft()
                    if op.cancelled:
                        dropped += 1
                    else:
                        absorbs.append(op)
                if q and q[0].kind == "train" and q[0].ended:
                    op = q.popleft()
                    public = getattr(op.step, "public", None) is not None
                    trains.setdefault((id(self.groups[i]), public), []).append(op)
            waves.absorb(self, absorbs)
            for ops in trains.values():
                for start in range(0, len(ops), self.chunk):
                    waves.train(self, ops[start : start + self.chunk])
            for i in active:
                q = self.queues[i]
                if q and q[0].kind == "message":
                    sends.setdefault(id(self.groups[i]), []).append(q.popleft())
            for ops in sends.values():
                for start in range(0, len(ops), self.chunk):
                    waves.predict(self, ops[start : start + self.chunk])
            done = (
                dropped
                + len(absorbs)
                + sum(map(len, trains.values()))
                + sum(map(len, sends.values()))
            )
            self.queued -= done
            if not done:
                break
            active = [i for i in active if self.queues[i]]

    # --- evaluation -----------------------------------------------------------------------

    @torch.no_grad()
    def evaluation(
        self, i: int, chunk: int = 64, samples: int = 1024
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Agent i's shared, private and per-class accuracy per head (as ``Learner.evaluate``);
        all agents are evaluated at once, in
        chunks of ``chunk`` agents × ``samples`` test samples: larger ones leave the cache and
        run at half the speed."""
        if self.results is None:
            self.flush()
            self.results = [None] * len(self.learners)  # type: ignore[list-item]
            x, y, C = self.shared.test_x, self.shared.test_y, self.shared.classes
            for group in {id(g): g for g in self.groups.values()}.values():
                for start in range(0, len(group.agents), chunk):
                    members = group.agents[start : start + chunk]
                    rows = torch.tensor([group.row[int(a)] for a in members], device=self.device)
                    params = {k: v[rows] for k, v in group.params.items()}
                    buffers = {k: v[rows] for k, v in group.buffers.items()}
                    predicted = torch.cat(
                        [
                            _forward(group, params, buffers, x[s : s + samples])[0].argmax(-1)
                            for s in range(0, len(y), samples)
                        ],
                        -1,
                    )
                    shared, per_class = accuracy(predicted, y, C)  # [g, H], [g, H, C]
                    private = (per_class @ self.dist[members][:, :, None])[..., 0]
                    for a, s, p, c in zip(
                        members.tolist(),
                        shared.cpu().numpy(),
                        private.cpu().numpy(),
                        per_class.cpu().numpy(),
                    ):
                        self.results[a] = (s, p, c)
        return self.results[i]

    def parameters(self, i: int) -> dict[str, torch.Tensor]:
        """Agent i's current parameters (for tests and inspection)."""
        group = self.groups[i]
        return {k: v[group.row[i]] for k, v in group.params.items()}
