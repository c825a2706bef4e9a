"""The seam between the world and learning: the only types the world sees.

The world drives each agent's learner through six calls (see ``Learner``): ``begin_step``
(read a private batch and the teacher cache, return a :class:`Step` with its FLOPs),
``end_step`` (the gradient update), ``message_flops`` and ``make_message`` (what goes to
peers; its ``len`` is its size on the wire), ``absorb`` (a peer's message) and
``evaluate``. A learner also says whether it ``sends``, every how many steps
(``share_every``), and, for a round-based algorithm, its :class:`Rounds`. The world turns
FLOPs into time and bytes into transmissions; nothing here knows about time except the
timestamps messages carry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# shared [H], private [H] and per-class [H, C] accuracy of every head
Evaluation = tuple[np.ndarray, np.ndarray, np.ndarray]


class NonFiniteLoss(ArithmeticError):
    """A step's loss or update was NaN or infinite: the run cannot go on meaningfully.

    Its arguments are its fields: SimPy raises a process's exception again as
    ``type(e)(*e.args)``.
    """

    def __init__(self, agent: int, start: float) -> None:
        super().__init__(agent, start)
        self.agent, self.start = agent, start

    def __str__(self) -> str:
        return (
            f"agent {self.agent}'s loss became non-finite in its step started at "
            f"t={self.start:.2f} s (diverged: try a lower training.lr or "
            "training.clip_grad_norm)"
        )


@dataclass(slots=True)
class Step:
    """One local step: its inputs, drawn when it starts (numpy, from the schedule alone), and
    what the learner adds before it runs; applied by ``end_step``."""

    batch: np.ndarray | None  # private sample indices (None: a timing-only step)
    flops: float
    start: float = 0.0  # when it started (simulated seconds)
    public: np.ndarray | None = None  # public sample ids of a distillation step
    # [peer slots, B, heads sent]: which cached predictions it may read
    valid: np.ndarray | None = None
    # [student heads, candidate rows, B]: draws that decide between equally confident teachers
    ties: np.ndarray | None = None
    embed_ok: np.ndarray | None = None  # [peer slots, B]: which cached embeddings it may read
    # mean and max age of the predictions its teachers read (None: it reads none)
    staleness: tuple[float, float] | None = None
    # filled in by the learner: (student head, target distribution [B, C], which samples
    # have one: None when all do), and the peers' mean embedding with its mask
    targets: list[tuple[int, Any, Any]] = field(default_factory=list)
    embedding: tuple[Any, Any] | None = None


@dataclass(frozen=True)
class Rounds:
    """A round-based algorithm's protocol, which the world runs with a server node
    (``world/rounds.py``): a client uploads after every ``period`` local steps and waits for
    the round's result; a round closes when every online client's upload is in, or
    ``deadline`` seconds after it began; ``combine(uploads, server, now)`` makes the result
    the server sends back to the waiting clients."""

    period: int
    deadline: float
    server_bandwidth: float | None
    combine: Callable[[list[Any], int, float], Any]


@dataclass
class Population:
    """Every agent's learner, and what the world needs to know of the population as a whole."""

    learners: list[Any]
    # [agents, classes]: each agent's private label mix, for accuracy on others' data (reach);
    # None in a timing-only run
    label_dist: np.ndarray | None = None
    private_samples: list[int] | None = None
    rounds: Rounds | None = None  # a round-based algorithm's protocol (None: peer to peer)
    # make room in the learners' caches for predictions from this many peers per agent
    # (None: they grow as peers appear)
    reserve_peers: Callable[[int], None] | None = None
