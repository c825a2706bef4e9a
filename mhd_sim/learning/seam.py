"""The seam between the world and learning: the only types the world sees.

The world drives each agent through :class:`AgentLearner`, a protocol of ten members that
every algorithm's learner, the batched engine's proxies and the timing-only stand-ins
implement: ``begin_step`` (read a private batch and the teacher cache, return a
:class:`Step` with its FLOPs), ``end_step`` (the gradient update), ``message_flops`` and
``make_message`` (what goes to peers; its ``len`` is its size on the wire), ``absorb`` (a
peer's message, with its sender and time from the network's envelope), ``evaluate``,
``teacher_rows`` and ``teacher_ages`` (diagnostics), and the attributes ``sends``,
``share_every`` and ``neighbour_count`` (set by the world). A round-based algorithm also
has its :class:`Rounds` in the :class:`Population`. The world
turns FLOPs into time and bytes into transmissions; nothing here knows about time except
the timestamps messages carry.

What an algorithm can do (the engines it runs on, what its messages carry) is declared once,
in its settings model, as :class:`Capabilities`: validation, the memory estimate and the
engines read it there, never guess it from attributes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, runtime_checkable

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


ENGINES = ("per_agent", "batched", "timing_only")


@dataclass(frozen=True)
class Capabilities:
    """What an algorithm declares of itself, in one place (its settings model).

    ``engines``: where it runs (``per_agent`` always; ``batched``: the batched engine maps
    its step over stacked parameters; ``timing_only``: a stand-in reproduces its schedule).
    ``messages``: what travels between agents: nothing, ``predictions`` on public samples
    (a distillation :class:`~.distillation.plan.Plan` keeps their schedule, and every link
    fills a cache of them, which the memory estimate counts) or ``weights``.
    ``shares_model``: every agent trains one shared model (the centralized reference).
    ``why_not``: per engine the algorithm declares but its settings rule out, why.
    """

    engines: tuple[str, ...] = ("per_agent", "timing_only")
    messages: Literal["nothing", "predictions", "weights"] = "nothing"
    shares_model: bool = False
    why_not: dict[str, str] = field(default_factory=dict)

    def without(self, engine: str, why: str) -> Capabilities:
        """These capabilities, less ``engine``, for the reason ``why``."""
        reasons = [r for r in (self.why_not.get(engine), why) if r]
        return replace(self, engines=tuple(e for e in self.engines if e != engine),
                       why_not={**self.why_not, engine: "; ".join(reasons)})  # fmt: skip

    def __post_init__(self) -> None:
        unknown = set(self.engines) - set(ENGINES)
        if unknown or "per_agent" not in self.engines:
            raise ValueError(f"engines {self.engines}: per_agent and any of {ENGINES}")

    @property
    def distills(self) -> bool:
        """Its agents learn from peers' predictions (and keep a Plan of them)."""
        return self.messages == "predictions"


@dataclass(slots=True)
class Step:
    """One local step, as the world sees it: what it costs, when it started, and how old the
    predictions its teachers read were. What a learner adds (its batches, its teachers) lives
    in the learner's own subclass (``contract.py``)."""

    flops: float
    start: float = 0.0  # when it started (simulated seconds)
    # mean and max age of the predictions its teachers read (None: it reads none)
    staleness: tuple[float, float] | None = None


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


@runtime_checkable
class AgentLearner(Protocol):
    """Everything the world calls on an agent's learner (the module docstring says when)."""

    sends: bool  # it makes messages for peers (or a round's server)
    share_every: int | None  # local steps between messages (None: it sends none to peers)
    neighbour_count: Callable[[], int]  # set by the world: its current number of neighbours

    def begin_step(self, now: float) -> Step: ...

    def end_step(self, step: Step) -> None: ...

    def message_flops(self) -> float: ...

    def make_message(self, now: float) -> Any: ...

    def absorb(self, payload: Any, sender: int, produced: float) -> None: ...

    def evaluate(self) -> Evaluation: ...

    def teacher_rows(self, now: float) -> list[tuple]: ...

    def teacher_ages(self) -> dict[int, tuple[float, int]]: ...


@dataclass
class Population:
    """Every agent's learner, and what the world needs to know of the population as a whole."""

    learners: list[AgentLearner]
    # [agents, classes]: each agent's private label mix, for accuracy on others' data (reach);
    # None in a timing-only run
    label_dist: np.ndarray | None = None
    private_samples: list[int] | None = None
    rounds: Rounds | None = None  # a round-based algorithm's protocol (None: peer to peer)
    # make room in the learners' caches for predictions from this many peers per agent
    # (None: they grow as peers appear)
    reserve_peers: Callable[[int], None] | None = None
    engine: str = "per_agent"  # what runs the tensor work, as the run reports it
    # the CPU kernels torch runs (learning/kernels.py): what makes the numbers the same on
    # every machine (empty: not recorded)
    kernels: dict[str, Any] = field(default_factory=dict)
    hot_path: str = ""  # the plans' hot path: compiled or python (distillation/plan_kernel.py)
    warnings: list[str] = field(default_factory=list)  # lines for the user, before the run
