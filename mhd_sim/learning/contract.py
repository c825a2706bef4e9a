"""The contract between an engine and a learner: the few points a method may override, and
which engine honours which.

The world calls a learner through the seam (``seam.py``): ``begin_step``, ``end_step``,
``make_message``, ``absorb``, ``evaluate``. In the base :class:`~.algorithms.learner.Learner`
those calls are *composed* from the points below and are not themselves override points: an
engine that defers the tensor work (``auto``'s threads, ``batched``) splits each call into its
schedule half, run when the world calls, and its tensor half, run later from a queue.

- **Schedule points** live on the learner's plan (``Learner.Plan``, a :class:`LocalPlan` or
  a distilling :class:`~.distillation.plan.Plan`): what a step draws and may read
  (``step``), which public samples a message covers (``next_chunk``), where an arriving
  message goes (``store``; None: it is ignored). They read only the scenario, the seed and
  the messages that arrived, never a tensor, so every engine runs them as the world calls,
  timing-only included.
- **Tensor points** are the learner's own methods, run where the engine runs the tensors.

A variant that overrides a point runs the same under every engine that honours it
(:data:`POINTS`); an engine that does not refuses the run in one line before anything runs
(:func:`refusal`); ``auto`` then runs it per agent and says why. Overriding one of the seam's
composed calls (:data:`COMPOSED`) is honoured per agent only.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .seam import Step

# engine -> shown in refusals and docs
ENGINE_NAMES = {"auto": "auto", "batched": "batched", "timing_only": "timing-only"}

# Every override point: who owns it, what it decides, and the engines that honour it beside
# per_agent (which runs every override). ``tests/test_conformance.py`` runs a toy variant for
# each under every engine; a point added here without one fails that test.
POINTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "step": ("plan", "the step's plan: batches, readable predictions, ages, FLOPs",
             ("auto", "batched", "timing_only")),
    "next_chunk": ("plan", "the public samples a message covers (None: no message)",
                   ("auto", "batched", "timing_only")),
    "store": ("plan", "where an arriving message's predictions and embeddings go (None: "
              "it is ignored)",
              ("auto", "batched", "timing_only")),
    "head_weights": ("learner", "ν per head, which makes the wiring",
                     ("auto", "batched", "timing_only")),
    "inputs": ("learner", "the step's input batch", ("auto", "timing_only")),
    "loss": ("learner", "the step's whole loss from its logits", ("auto", "timing_only")),
    "distill_loss": ("learner", "the distillation terms from logits and targets",
                     ("auto", "batched", "timing_only")),
    "embedding_loss": ("learner", "the embedding term from embeddings and the peers' mean",
                       ("auto", "batched", "timing_only")),
    "choose_teachers": ("learner", "each student head's teacher per public sample",
                        ("auto", "timing_only")),
    "message_values": ("learner", "what a message carries: values and confidences from logits",
                       ("auto", "batched", "timing_only")),
    "write": ("learner", "how an arrived message's values are kept", ("auto", "timing_only")),
    "evaluate": ("learner", "shared and private accuracy per head", ("auto", "timing_only")),
}  # fmt: skip

# The seam's calls, composed in the base learner from the points: a deferring engine replaces
# them by its queue, so an override of one runs per agent only.
COMPOSED = ("begin_step", "end_step", "make_message", "absorb")


@dataclass(slots=True)
class LocalStep(Step):
    """A step of a learner: the private sample indices it trains on (None: a timing-only
    step)."""

    batch: np.ndarray | None = None


@dataclass(slots=True)
class DistillStep(LocalStep):
    """A distillation step: what its plan drew, and what its learner keeps until it runs."""

    public: np.ndarray | None = None  # public sample ids
    # [peer slots, B]: which cached predictions it may read (all of a sample's heads alike)
    valid: np.ndarray | None = None
    # [student heads, candidate rows, B]: draws that decide between equally confident teachers
    ties: np.ndarray | None = None
    embed_ok: np.ndarray | None = None  # [peer slots, B]: which cached embeddings it may read
    # filled in by the learner: the cached predictions its teachers are chosen from, as they
    # were when it began, then (student head, target distribution [B, C], which samples
    # have one: None when all do), and the peers' mean embedding with its mask
    candidates: tuple[Any, Any] | None = None
    targets: list[tuple[int, Any, Any]] = field(default_factory=list)
    embedding: tuple[Any, Any] | None = None


class LocalPlan:
    """The schedule of a learner that trains on its private data alone: a batch per step,
    drawn from the agent's own stream; it sends and stores nothing."""

    def __init__(self, private: int, batch_size: int, rng: np.random.Generator,
                 flops: float) -> None:  # fmt: skip
        self.private, self.batch_size, self.rng, self.plain_flops = private, batch_size, rng, flops

    def step(self, now: float, ties: bool = True) -> LocalStep:
        """A step starting ``now`` (``ties``: draw what decides between equal teachers; a
        timing-only run does not)."""
        batch = self.rng.integers(self.private, size=self.batch_size)
        return LocalStep(self.plain_flops, now, batch=batch)

    def next_chunk(self) -> np.ndarray | None:
        return None

    def store(self, sender: int, ids: np.ndarray, produced: float, heads: np.ndarray) -> Any:
        return None


def _defining(cls: type, name: str) -> Any:
    """The function ``cls`` has for ``name``, unwrapped from static and class methods."""
    for klass in cls.__mro__:
        if name in vars(klass):
            member = vars(klass)[name]
            return getattr(member, "__func__", member)
    return None


def overridden(learner_cls: type, reference: type) -> list[str]:
    """The methods of ``learner_cls`` and its plan that differ from ``reference``'s: the points
    and calls a variant overrides (the plan's as ``Plan.<name>``)."""
    out = []
    for cls, ref, prefix in (
        (learner_cls, reference, ""),
        (learner_cls.Plan, reference.Plan, "Plan."),
    ):
        names = {n for k in cls.__mro__[:-1] for n, v in vars(k).items() if inspect.isroutine(
            getattr(v, "__func__", v)) and not n.startswith("__")}  # fmt: skip
        out += [prefix + n for n in sorted(names) if _defining(cls, n) is not _defining(ref, n)]
    return out


def refusal(learner_cls: type, reference: type, engine: str, name: str) -> str | None:
    """Why ``engine`` cannot run the method ``name`` (its learner class ``learner_cls``, a
    variant of ``reference``, whose points the engine implements), in one line; None: it can.

    A deferring or timing-only engine cannot honour an override of a composed call. The
    threads run each learner's own tensor half, so every other override runs there; the
    batched engine runs its own tensor work and honours only the points it calls."""
    honoured = {n for n, (_, _, engines) in POINTS.items() if engine in engines}
    for member in overridden(learner_cls, reference):
        point = member.removeprefix("Plan.")
        if point in COMPOSED:
            why = "one of the seam's calls, which every engine but per_agent composes itself"
        elif point in honoured or member.startswith("Plan.") or engine != "batched":
            continue
        elif point in POINTS:
            why = "a contract point this engine does not honour"
        else:
            why = "a method this engine never calls (it runs only the points it honours)"
        return (
            f"engine {ENGINE_NAMES[engine]} cannot run algorithm {name}: it overrides "
            f"{member}, {why}; use engine: per_agent"
        )
    return None
