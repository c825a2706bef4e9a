"""The batched engine's records: a group of stacked agents, and what a wave reads of the
engine (:class:`EngineState`); its queued ops are the deferring engines' (``deferred.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch


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
    emb: torch.Tensor  # [agents, slots, public, embedding width]
    groups: dict[int, Group]
    x: torch.Tensor
    y: torch.Tensor
    offset: torch.Tensor
    mhd: bool
    _grad: dict
