"""The hybrid (beyond the paper): MHD whose main head also distils from the peers' main heads.

MHD's main head learns only its private labels, so head 1's candidates are specialists that
are confidently wrong on the classes they never saw (docs/method.md). One-head distill's
head learns from its peers too and becomes a generalist, but has one head only. The hybrid
gives MHD's main head distill's term (ν₀ > 0): the auxiliary heads chain as in MHD, from
main heads that are now generalists. It differs from MHD in one contract point, the wiring.
"""

from __future__ import annotations

import pydantic

from .mhd import MHD
from .settings import HybridSettings


class Hybrid(MHD):
    """MHD with the main head distilling from the peers' main heads (ν₀ = ``main_weight``)."""

    Settings = HybridSettings

    @classmethod
    def head_weights(cls, algo: pydantic.BaseModel, heads: int) -> list[float]:
        w = algo.distill_weight
        return list(w) if isinstance(w, list) else [algo.main_weight] + [float(w)] * (heads - 1)
