"""Federated averaging (FedAvg), the baseline the paper compares with: a server averages the
clients' weights, weighted by their private data size, and sends the average back.

A client uploads its weights after every ``algorithm.period`` local steps and waits for the
global model. The rounds are the algorithm's :class:`~.seam.Rounds`, which the world runs
with a server node (``world/rounds.py``). A client's message is a weight message whose
``weight`` is its private sample count, the weight of its model in the average.
"""

from __future__ import annotations

import copy
import functools

import numpy as np
import torch

from ..distillation import messages
from ..seam import Rounds
from .learner import Learner
from .settings import FedAvgSettings


class FedAvg(Learner):
    """A FedAvg client: local SGD, then its weights to the server; the global model back."""

    sends = True
    Settings = FedAvgSettings

    @property
    def rounds(self) -> Rounds:
        algo = self.algo
        combine = functools.partial(average, encoding=algo.encoding)
        return Rounds(algo.period, algo.deadline, algo.server_bandwidth, combine)

    def make_message(self, now: float) -> bytes | None:
        values = torch.nn.utils.parameters_to_vector(self.model.parameters())
        return messages.encode_weights(self.agent, self.private, now, values, self.algo.encoding)

    global_model: torch.nn.Module | None = None  # the last round's model, as received

    @torch.no_grad()
    def absorb(self, payload: bytes, sender: int, produced: float) -> None:
        """The round's global model replaces the client's weights."""
        params = list(self.model.parameters())
        values = messages.decode_weights(payload).values
        torch.nn.utils.vector_to_parameters(values.to(params[0].device), params)
        if self.global_model is None:
            self.global_model = copy.deepcopy(self.model)
        else:
            self.global_model.load_state_dict(self.model.state_dict())

    def _correct(self, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
        """Accuracy of the last global model the client received (federated learning's
        model; the local one drifts towards the client's own data between rounds), or of
        its own before the first round."""
        if self.global_model is None:
            return super()._correct(chunk)
        local, self.model = self.model, self.global_model
        try:
            return super()._correct(chunk)
        finally:
            self.model = local


def average(uploads: list[bytes], server: int, now: float, encoding: str) -> bytes:
    """The global model: the uploaded weights averaged, each weighted by its client's private
    sample count, encoded as the clients encode theirs.

    >>> up = [messages.encode_weights(0, 1, 0.0, np.array([0.0, 4.0]), "float32"),
    ...       messages.encode_weights(1, 3, 0.0, np.array([4.0, 0.0]), "float32")]
    >>> messages.decode_weights(average(up, 2, 1.0, "float32")).values.tolist()
    [3.0, 1.0]
    """
    decoded = [messages.decode_weights(p) for p in uploads]
    weights = np.array([m.weight for m in decoded], dtype=np.float64)
    stacked = np.stack([m.values.numpy().astype(np.float64) for m in decoded])
    mean = (weights[:, None] * stacked).sum(0) / max(weights.sum(), 1.0)
    return messages.encode_weights(server, len(decoded), now, mean.astype(np.float32), encoding)
