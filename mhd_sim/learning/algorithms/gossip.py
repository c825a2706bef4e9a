"""Decentralized weight averaging (gossip): the parameter vector is the message."""

from __future__ import annotations

import torch

from ..distillation import messages
from .learner import Learner
from .settings import GossipSettings


class Gossip(Learner):
    """Decentralized weight averaging: the parameter vector is the message. On arrival the
    receiver i moves toward sender j's weights by the Metropolis weight 1 / (1 + max(d_i, d_j)),
    which makes the averaging doubly stochastic on any undirected graph."""

    sends = True
    Settings = GossipSettings

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.share_every = self.algo.share_every

    def make_message(self, now: float) -> bytes | None:
        values = torch.nn.utils.parameters_to_vector(self.model.parameters())
        return messages.encode_weights(
            self.agent, self.neighbour_count(), now, values, self.algo.encoding
        )

    @torch.no_grad()
    def absorb(self, payload: bytes, sender: int, produced: float) -> None:
        msg = messages.decode_weights(payload)
        w = 1.0 / (1 + max(self.neighbour_count(), msg.weight))
        params = list(self.model.parameters())
        mine = torch.nn.utils.parameters_to_vector(params)
        theirs = msg.values.to(mine.device)
        torch.nn.utils.vector_to_parameters(mine + w * (theirs - mine), params)
