"""Multi-headed models: a registered backbone → embedding → H linear heads.

A backbone is ``fn(input_shape, *, settings) -> (module, embedding_size)``. Weights are
initialised from an explicit ``torch.Generator`` so every agent's model is seeded from its
own stream, never from torch's global generator.
"""

from __future__ import annotations

import copy
import math
from typing import Annotated

import pydantic
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..registry import Registry, settings

BACKBONES = Registry("model")

Width = Annotated[int, pydantic.Field(ge=1)]


@BACKBONES.register("mlp")
def mlp(input_shape: tuple[int, ...], *, hidden: list[Width] = [128, 128]) -> tuple[nn.Module, int]:
    """Fully connected ReLU layers; the last hidden layer is the embedding."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return nn.Sequential(*layers), width


@BACKBONES.register("cnn1d")
def cnn1d(
    input_shape: tuple[int, ...],
    *,
    channels: list[Width] = [32, 32],
    kernel: Annotated[int, pydantic.Field(ge=1)] = 5,
    embedding: Width = 64,
) -> tuple[nn.Module, int]:
    """1-D convolutions (stride 2), then a linear embedding; for signals such as mnist1d.

    Input ``[length]`` or ``[channels, length]``; anything else is flattened to one channel.
    """
    if len(input_shape) == 2:
        in_ch, length = input_shape
        layers: list[nn.Module] = []
    else:
        in_ch, length = 1, math.prod(input_shape)
        layers = [nn.Flatten(), nn.Unflatten(1, (1, length))]
    for ch in channels:
        layers += [nn.Conv1d(in_ch, ch, kernel, stride=2, padding=kernel // 2), nn.ReLU()]
        in_ch, length = ch, (length + 2 * (kernel // 2) - kernel) // 2 + 1
    layers += [nn.Flatten(), nn.Linear(in_ch * length, embedding), nn.ReLU()]
    return nn.Sequential(*layers), embedding


def _image_shape(input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(input_shape) == 3:
        return input_shape  # type: ignore[return-value]
    if len(input_shape) == 2:
        return (1, *input_shape)
    raise ValueError(
        f"2-D models need image inputs [channels, height, width]; this dataset's inputs are "
        f"{list(input_shape)} (use mlp or cnn1d)"
    )


@BACKBONES.register("cnn2d")
def cnn2d(
    input_shape: tuple[int, ...],
    *,
    channels: list[Width] = [32, 64],
    embedding: Width = 128,
) -> tuple[nn.Module, int]:
    """3×3 convolutions, each followed by ReLU and 2×2 max-pooling, then a linear embedding;
    for small images (digits 8×8, CIFAR 32×32)."""
    in_ch, h, w = _image_shape(input_shape)
    layers: list[nn.Module] = [nn.Unflatten(1, (in_ch, h, w))] if len(input_shape) != 3 else []
    for ch in channels:
        layers += [nn.Conv2d(in_ch, ch, 3, padding=1), nn.ReLU()]
        if min(h, w) >= 2:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        in_ch = ch
    layers += [nn.Flatten(), nn.Linear(in_ch * h * w, embedding), nn.ReLU()]
    return nn.Sequential(*layers), embedding


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a skip connection (He et al. 2016); GroupNorm instead of
    BatchNorm, since batch statistics of non-iid agents disagree (Hsieh et al. 2020)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm1 = nn.GroupNorm(min(8, cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm2 = nn.GroupNorm(min(8, cout), cout)
        self.skip = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.GroupNorm(min(8, cout), cout)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(out)) + self.skip(x))


@BACKBONES.register("resnet")
def resnet(
    input_shape: tuple[int, ...],
    *,
    width: Width = 16,
    blocks: Annotated[int, pydantic.Field(ge=1)] = 1,
    embedding: Width = 64,
) -> tuple[nn.Module, int]:
    """A small ResNet for 32×32 images: a stem, then three stages of ``blocks`` residual blocks
    with width, 2·width, 4·width channels (stride 2 between stages), global average pooling
    and a linear embedding. ``blocks: 1`` is a ResNet-8, 3 a ResNet-20."""
    in_ch, _, _ = _image_shape(input_shape)
    layers: list[nn.Module] = (
        [nn.Unflatten(1, _image_shape(input_shape))] if len(input_shape) != 3 else []
    )
    layers += [
        nn.Conv2d(in_ch, width, 3, 1, 1, bias=False),
        nn.GroupNorm(min(8, width), width),
        nn.ReLU(),
    ]
    cin = width
    for stage, cout in enumerate((width, 2 * width, 4 * width)):
        for b in range(blocks):
            layers.append(BasicBlock(cin, cout, 2 if stage > 0 and b == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, embedding), nn.ReLU()]
    return nn.Sequential(*layers), embedding


class HeadedModel(nn.Module):
    """Backbone plus H heads stored as one linear layer, so all heads cost one matmul."""

    def __init__(self, backbone: nn.Module, embedding: int, heads: int, classes: int) -> None:
        super().__init__()
        self.backbone, self.heads, self.classes = backbone, heads, classes
        self.head = nn.Linear(embedding, heads * classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of shape [heads, batch, classes] and the embedding [batch, embedding]."""
        emb = self.backbone(x)
        logits = self.head(emb).view(len(x), self.heads, self.classes).transpose(0, 1)
        return logits, emb


def build(
    spec: pydantic.BaseModel,
    input_shape: tuple[int, ...],
    heads: int,
    classes: int,
    generator: torch.Generator,
) -> HeadedModel:
    """A model from its scenario spec, initialised from ``generator`` like torch's defaults."""
    backbone, embedding = BACKBONES.get(spec.kind)(input_shape, **settings(spec))
    model = HeadedModel(backbone, embedding, heads, classes)
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
