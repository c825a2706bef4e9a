"""FedMD without a server (Li & Wang, "FedMD: Heterogenous Federated Learning via Model
Distillation", NeurIPS 2019 workshop, arXiv:1910.03581).

FedMD's clients alternate a "digest" phase (distil to the consensus of all clients' scores on
the public data, which a server averages) and a "revisit" phase (train on private data). Here
there is no server and no rounds: every local step of an agent's one head is its private
loss plus the distillation loss to the mean of its neighbours' cached predictions on the
step's public samples (the same loss, interleaved step by step instead of phase by phase).
What sets it apart from ``distill`` is the teacher: the neighbours' consensus, never the
most confident of them.
"""

from __future__ import annotations

from .distill import Distill
from .settings import FedMDSettings


class FedMD(Distill):
    """One head, distilled to its neighbours' mean (see the module docstring)."""

    Settings = FedMDSettings
