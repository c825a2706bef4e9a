"""The population: a dataset split among agents, each with its model and learner."""

from __future__ import annotations

import numpy as np
import pydantic
import torch

from ..seeds import stream, torch_generator
from .algorithms import ALGORITHMS
from .datasets import Dataset
from .fedavg import FedAvg
from .gossip import Gossip
from .learner import Learner, Shared
from .models import HeadedModel, build
from .partitions import Split, load


def check_population(
    cls: type[Learner],
    algo: pydantic.BaseModel,
    models: list[pydantic.BaseModel],
    built: list[HeadedModel],
) -> None:
    """Errors a population can only show once its models are built."""
    if cls in (Gossip, FedAvg) and len({repr(m) for m in models}) > 1:
        kinds = sorted(
            {
                f"{m.kind} (agents {', '.join(str(i) for i, x in enumerate(models) if x == m)})"
                for m in models
            }
        )
        raise ValueError(
            f"algorithm {algo.name} averages weights, so every agent needs the same model; "
            f"this population mixes {'; '.join(kinds)}"
        )
    if getattr(algo, "embedding_weight", 0) > 0:
        dims = sorted({m.head.in_features for m in built})
        if len(dims) > 1:
            raise ValueError(
                f"algorithm.embedding_weight > 0 needs one embedding size, but the agents' "
                f"models have embedding sizes {', '.join(map(str, dims))}"
            )


def build_learners(
    data: pydantic.BaseModel,
    models: list[pydantic.BaseModel],
    algo: pydantic.BaseModel,
    training: pydantic.BaseModel,
    seed: int,
    device: str = "cpu",
) -> tuple[list[Learner], Dataset, Split]:
    """The population: load the dataset, split it, and give every agent its model and shard."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda was asked for, but this torch build sees no CUDA device")
    dataset, parts = load(data, len(models), seed)

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).to(device)

    shared = Shared(
        tensor(dataset.x_train[parts.public]),
        tensor(dataset.x_test),
        tensor(dataset.y_test),
        dataset.classes,
    )
    dist = tensor(parts.label_distribution(dataset.y_train, dataset.classes).astype(np.float32))
    cls = ALGORITHMS.get(algo.name)
    if getattr(cls, "shares_model", False):
        one = build(
            models[0],
            dataset.input_shape,
            cls.heads_for(algo),
            dataset.classes,
            torch_generator(seed, "model", 0),
        ).to(device)
        built = [one] * len(models)
        # everyone trains on the union
        shards = [np.sort(np.concatenate(parts.private))] * len(models)
    else:
        built = [
            build(
                spec,
                dataset.input_shape,
                cls.heads_for(algo),
                dataset.classes,
                torch_generator(seed, "model", i),
            ).to(device)
            for i, spec in enumerate(models)
        ]
        shards = parts.private
    check_population(cls, algo, models, built)
    learners = [
        cls(
            i,
            model,
            tensor(dataset.x_train[own]),
            tensor(dataset.y_train[own]),
            dist[i],
            shared,
            algo,
            training,
            stream(seed, "agent", i),
        )
        for i, (model, own) in enumerate(zip(built, shards))
    ]
    if getattr(cls, "shares_model", False):
        for learner in learners[1:]:
            learner.opt = learners[0].opt
    return learners, dataset, parts
