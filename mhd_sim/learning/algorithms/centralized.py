"""One model trained on the union of all private data: the upper reference line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..contract import LocalStep
from .learner import Learner
from .settings import CentralizedSettings


@dataclass
class Board:
    """What the agents sharing one model share beside it: its version (steps taken) and the
    test accuracy of the version last evaluated."""

    version: int = 0
    evaluated: tuple[int, Any, Any] | None = None


class Centralized(Learner):
    """One model trained on the union of all private data, with every agent's compute and no
    network: the upper reference line. All agents share the model and its optimizer; each
    agent's private accuracy still weights per-class accuracy by its own label mix."""

    Settings = CentralizedSettings

    def configure(self) -> None:
        self.board = Board()

    def join(self, first: Learner) -> None:
        super().join(first)
        self.board = first.board

    def train(self, step: LocalStep) -> None:
        self.board.version += 1
        super().train(step)

    def _correct(self, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
        """Test accuracy, computed once per model version for all the agents sharing it."""
        board = self.board
        if board.evaluated is None or board.evaluated[0] != board.version:
            board.evaluated = (board.version, *super()._correct(chunk))
        return board.evaluated[1], board.evaluated[2]
