"""Single-head distillation: the main head also distils from the peers' main heads (ν₀ > 0)."""

from __future__ import annotations

import pydantic

from .mhd import MHD
from .settings import DistillSettings


class Distill(MHD):
    """Single-head distillation: the main head also distils from the peers' main heads (ν₀ > 0)."""

    Settings = DistillSettings

    @classmethod
    def head_weights(cls, algo: pydantic.BaseModel, heads: int) -> list[float]:
        w = algo.distill_weight
        return [max(w) if isinstance(w, list) else float(w)]
