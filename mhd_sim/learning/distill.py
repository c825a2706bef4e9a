"""Single-head distillation: the main head also distils from the peers' main heads (ν₀ > 0)."""

from __future__ import annotations

import pydantic

from .mhd import MHD


class Distill(MHD):
    """Single-head distillation: the main head also distils from the peers' main heads (ν₀ > 0)."""

    @classmethod
    def heads_for(cls, algo: pydantic.BaseModel) -> int:
        return 1

    def head_weights(self) -> list[float]:
        w = self.algo.distill_weight
        return [max(w) if isinstance(w, list) else float(w)]
