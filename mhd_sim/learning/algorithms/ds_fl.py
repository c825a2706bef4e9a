"""DS-FL without a server (Itahara, Nishio, Koda, Morikura, Yamamoto, "Distillation-Based
Semi-Supervised Federated Learning for Communication-Efficient Collaborative Training with
Non-IID Private Data", IEEE Transactions on Mobile Computing 2021, arXiv:2008.06180).

DS-FL's server averages the clients' predictions on the unlabeled open data and sharpens the
average by entropy-reduction aggregation (ERA), softmax(mean / T) with T = 0.1, because the
plain mean of non-iid clients' predictions is too flat to teach from. Here each agent does
that with its neighbours' cached predictions at every local step (``era_temperature`` is T)
and distils its one head to the result beside its private loss.
"""

from __future__ import annotations

from .distill import Distill
from .settings import DSFLSettings


class DSFL(Distill):
    """One head, distilled to its neighbours' mean sharpened by ERA (see the module docstring)."""

    Settings = DSFLSettings
