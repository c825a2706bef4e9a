"""The algorithm registry: each algorithm is one file with its learner, registered here by
its scenario name with its settings model (``settings.py``).

Entries are imported when a run needs them: a scenario is checked against the settings
models alone, without loading torch. A new algorithm is a ``Learner`` subclass in a file of
its own, its settings, and one line below; the world needs no change (see
docs/architecture.md).
"""

from __future__ import annotations

from ...registry import Registry
from . import settings as S

ALGORITHMS = Registry("algorithm", tag="name")
ALGORITHMS.lazy("mhd", "mhd_sim.learning.algorithms.mhd:MHD", S.MHDSettings)
ALGORITHMS.lazy("hybrid", "mhd_sim.learning.algorithms.hybrid:Hybrid", S.HybridSettings)
ALGORITHMS.lazy("distill", "mhd_sim.learning.algorithms.distill:Distill", S.DistillSettings)
ALGORITHMS.lazy("fedmd", "mhd_sim.learning.algorithms.fedmd:FedMD", S.FedMDSettings)
ALGORITHMS.lazy("ds_fl", "mhd_sim.learning.algorithms.ds_fl:DSFL", S.DSFLSettings)
ALGORITHMS.lazy("isolated", "mhd_sim.learning.algorithms.isolated:Isolated", S.IsolatedSettings)
ALGORITHMS.lazy("gossip", "mhd_sim.learning.algorithms.gossip:Gossip", S.GossipSettings)
ALGORITHMS.lazy("fedavg", "mhd_sim.learning.algorithms.fedavg:FedAvg", S.FedAvgSettings)
ALGORITHMS.lazy(
    "centralized", "mhd_sim.learning.algorithms.centralized:Centralized", S.CentralizedSettings
)

__all__ = ["ALGORITHMS"]
