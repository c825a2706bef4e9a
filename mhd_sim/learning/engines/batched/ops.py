"""The batched engine's records: a queued op, a group of stacked agents,
and what a wave reads of the engine (:class:`EngineState`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ...distillation.messages import Parcel
from ...seam import Step


@dataclass(eq=False)
class Op:
    kind: str  # train | message | absorb
    agent: int
    step: Step | None = None
    message: Parcel | None = None
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


class EngineState(Protocol):
    """What a wave (``waves.py``) reads and writes of the engine (``engine.py``)."""

    learners: list[Any]
    algo: Any
    training: Any
    shared: Any
    device: torch.device
    cache: torch.Tensor  # [agents, slots, public, heads sent, classes]
    conf: torch.Tensor  # [agents, slots, public, heads sent]
    groups: dict[int, Group]
    x: torch.Tensor
    y: torch.Tensor
    offset: torch.Tensor
    mhd: bool
    _grad: dict
