"""One model trained on the union of all private data: the upper reference line."""

from __future__ import annotations

import torch

from ..seam import Step
from .learner import Learner
from .settings import CentralizedSettings


class Centralized(Learner):
    """One model trained on the union of all private data, with every agent's compute and no
    network: the upper reference line. All agents share the model and its optimizer; each
    agent's private accuracy still weights per-class accuracy by its own label mix."""

    Settings = CentralizedSettings

    def end_step(self, step: Step) -> None:
        self.model.version = getattr(self.model, "version", 0) + 1
        super().end_step(step)

    def _correct(self, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
        """Test accuracy, computed once per model version for all the agents sharing it."""
        version = getattr(self.model, "version", 0)
        cached = getattr(self.model, "evaluated", None)
        if cached is None or cached[0] != version:
            cached = self.model.evaluated = (version, *super()._correct(chunk))
        return cached[1], cached[2]
