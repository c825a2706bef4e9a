"""The registered backbones: ``fn(input_shape, *, settings) -> (module, embedding_size)``.

A backbone's keyword-only parameters are its scenario settings. torch is imported when a
backbone is built, not before: checking a scenario never loads it. The model around a
backbone (its heads, initialisation, FLOP counts) is in ``networks.py``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated

import pydantic

from ...registry import Registry

if TYPE_CHECKING:
    from torch import nn

BACKBONES = Registry("model")

Width = Annotated[int, pydantic.Field(ge=1)]


@BACKBONES.register("mlp")
def mlp(input_shape: tuple[int, ...], *, hidden: list[Width] = [128, 128]) -> tuple[nn.Module, int]:
    """Fully connected ReLU layers; the last hidden layer is the embedding."""
    from torch import nn

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
    from torch import nn

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
    from torch import nn

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
    from torch import nn

    from .blocks import BasicBlock

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


def footprint(spec: pydantic.BaseModel, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """A backbone's parameters, activations per sample (outputs of its layers) and embedding
    size, counted from its settings without building it: what a run's memory estimate needs
    before torch is loaded (a test checks them against built models).

    >>> spec = BACKBONES.params_model("mlp")(kind="mlp", hidden=[128, 64])
    >>> footprint(spec, (40,))  # 40·128 + 128 + 128·64 + 64 weights; 40 + 2·(128 + 64) values
    (13504, 424, 64)
    """
    s = {k: getattr(spec, k) for k in type(spec).model_fields if k != "kind"}
    n_in = math.prod(input_shape)
    params, acts = 0, n_in
    if spec.kind == "mlp":
        width = n_in
        for h in s["hidden"]:
            params, acts, width = params + width * h + h, acts + 2 * h, h
        return params, acts, width
    elif spec.kind == "cnn1d":
        in_ch, length = input_shape if len(input_shape) == 2 else (1, n_in)
        k = s["kernel"]
        for ch in s["channels"]:
            length = (length + 2 * (k // 2) - k) // 2 + 1
            params, acts, in_ch = params + in_ch * ch * k + ch, acts + 2 * ch * length, ch
        params += in_ch * length * s["embedding"] + s["embedding"]
        acts += 2 * s["embedding"]
    elif spec.kind == "cnn2d":
        in_ch, h, w = _image_shape(input_shape)
        for ch in s["channels"]:
            params, acts = params + in_ch * ch * 9 + ch, acts + 2 * ch * h * w
            if min(h, w) >= 2:
                h, w = h // 2, w // 2
            in_ch = ch
        params += in_ch * h * w * s["embedding"] + s["embedding"]
        acts += 2 * s["embedding"]
    elif spec.kind == "resnet":
        in_ch, h, w = _image_shape(input_shape)
        width = s["width"]
        params, acts = in_ch * width * 9 + 2 * width, 3 * width * h * w
        cin = width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for b in range(s["blocks"]):
                stride = 2 if stage > 0 and b == 0 else 1
                h, w = -(-h // stride), -(-w // stride)
                params += cin * cout * 9 + cout * cout * 9 + 4 * cout
                if stride != 1 or cin != cout:
                    params += cin * cout + 2 * cout
                acts += 7 * cout * h * w
                cin = cout
        params += cin * s["embedding"] + s["embedding"]
        acts += 2 * s["embedding"]
    return params, acts, s["embedding"]
