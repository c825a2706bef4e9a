"""Multi-headed models: a registered backbone → embedding → H linear heads, initialised from
an explicit ``torch.Generator`` (every agent's model is seeded from its own stream, never
from torch's global generator), and their FLOPs, counted once per architecture.
"""

from __future__ import annotations

import copy
import math

import pydantic
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ...registry import settings
from .backbones import BACKBONES
from .blocks import BasicBlock


class HeadedModel(nn.Module):
    """Backbone plus H heads stored as one layer, so all heads cost one matmul.

    With ``head_hidden`` > 0 every head has a hidden ReLU layer of that width of its own, and
    its output is the head's own embedding (embedding distillation, docs/method.md); the
    heads' hidden layers are one linear layer and their outputs one grouped 1×1 convolution,
    again one call each for all heads. Without, every head reads the backbone's embedding.
    """

    def __init__(
        self, backbone: nn.Module, embedding: int, heads: int, classes: int, head_hidden: int = 0
    ) -> None:
        super().__init__()
        self.backbone, self.heads, self.classes = backbone, heads, classes
        self.head_hidden = head_hidden
        if head_hidden:
            self.hidden = nn.Linear(embedding, heads * head_hidden)
            self.head = nn.Conv1d(heads * head_hidden, heads * classes, 1, groups=heads)
        else:
            self.head = nn.Linear(embedding, heads * classes)
        self.embedding = head_hidden or embedding  # the size of one embedding

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [heads, batch, classes] and the embeddings [E, batch, embedding]: the
        backbone's (E = 1), or each head's own (E = heads, with ``head_hidden``)."""
        emb = self.backbone(x)
        if not self.head_hidden:
            logits = self.head(emb).view(len(x), self.heads, self.classes).transpose(0, 1)
            return logits, emb[None]
        hid = torch.relu(self.hidden(emb))
        logits = self.head(hid[..., None]).view(len(x), self.heads, self.classes).transpose(0, 1)
        return logits, hid.view(len(x), self.heads, self.head_hidden).transpose(0, 1)


# Layers whose output is the same in train and eval mode (no dropout, no batch statistics).
MODE_FREE = (
    nn.Sequential, nn.Linear, nn.Conv1d, nn.Conv2d, nn.ReLU, nn.Flatten, nn.Unflatten,
    nn.MaxPool1d, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.GroupNorm, nn.Identity,
    HeadedModel, BasicBlock,
)  # fmt: skip


def mode_free(model: nn.Module) -> bool:
    """Whether ``model`` computes the same in train and eval mode, so that switching can be
    skipped: ``Module.train`` walks every submodule, a twentieth of a small model's step.

    >>> mode_free(nn.Sequential(nn.Linear(2, 2), nn.ReLU())), mode_free(nn.Dropout())
    (True, False)
    """
    return all(type(m) in MODE_FREE for m in model.modules())


def build(
    spec: pydantic.BaseModel,
    input_shape: tuple[int, ...],
    heads: int,
    classes: int,
    generator: torch.Generator,
    head_hidden: int = 0,
) -> HeadedModel:
    """A model from its scenario spec, initialised from ``generator`` like torch's defaults;
    ``head_hidden``: each head's own hidden layer (0: none)."""
    backbone, embedding = BACKBONES.get(spec.kind)(input_shape, **settings(spec))
    model = HeadedModel(backbone, embedding, heads, classes, head_hidden)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                if m.bias is not None:
                    bound = 1 / math.sqrt(m.weight[0].numel())
                    nn.init.uniform_(m.bias, -bound, bound, generator=generator)
    return model


_FLOPS: dict[tuple, float] = {}  # per architecture (its repr), input shape and batch


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def step_flops(model: HeadedModel, input_shape: tuple[int, ...], batch: int) -> float:
    """FLOPs of one forward + backward pass on ``batch`` samples, counted once per shape.

    The count comes from torch's FLOP counter run on a throw-away copy of the model, so a
    step's simulated duration depends on the architecture and batch only, never on weights.
    """
    key = ("train", repr(model), input_shape, batch)
    if key not in _FLOPS:
        clone = copy.deepcopy(model)
        with FlopCounterMode(display=False) as counter:
            logits, _ = clone(torch.zeros(batch, *input_shape, device=_device(model)))
            F.log_softmax(logits, -1).sum().backward()
        _FLOPS[key] = float(counter.get_total_flops())
    return _FLOPS[key]


def forward_flops(model: HeadedModel, input_shape: tuple[int, ...], batch: int) -> float:
    """FLOPs of one forward pass on ``batch`` samples (producing predictions for peers)."""
    key = ("forward", repr(model), input_shape, batch)
    if key not in _FLOPS:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(batch, *input_shape, device=_device(model)))
        _FLOPS[key] = float(counter.get_total_flops())
    return _FLOPS[key]
