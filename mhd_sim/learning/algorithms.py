"""The algorithm registry: each algorithm is one file, registered here by its scenario name.

A new algorithm is a ``Learner`` subclass in a file of its own plus one line below; the
world needs no change (see docs/architecture.md).
"""

from __future__ import annotations

from .centralized import Centralized
from .distill import Distill
from .fedavg import FedAvg
from .gossip import Gossip
from .isolated import Isolated
from .learner import ALGORITHMS
from .mhd import MHD

ALGORITHMS.register("isolated")(Isolated)
ALGORITHMS.register("mhd")(MHD)
ALGORITHMS.register("distill")(Distill)
ALGORITHMS.register("gossip")(Gossip)
ALGORITHMS.register("centralized")(Centralized)
ALGORITHMS.register("fedavg")(FedAvg)

__all__ = ["ALGORITHMS"]
