"""The population: a dataset split among agents, each with its model and learner (or its
timing-only stand-in), handed to the world as a :class:`~.seam.Population`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pydantic
import torch

from ...seeds import stream, torch_generator
from .. import kernels
from ..algorithms import ALGORITHMS
from ..algorithms.learner import Learner, Shared
from ..contract import refusal
from ..data.datasets import Dataset
from ..data.partitions import Split, load
from ..distillation import plan_kernel
from ..distillation.diagnostics import TeacherLog, main_classes
from ..models.headed import build
from ..seam import Population
from . import threaded
from .timing_only import TimingOnly


def embedding_peers(algo: pydantic.BaseModel, learners: list[Learner]) -> None:
    """Where the agents' embeddings differ in size (architectures with other embedding
    widths), each learns the embedding term only from the peers whose embeddings have its
    own size: their messages' embeddings are the ones its plan stores."""
    if not algo.embeds():
        return
    width = {lr.agent: lr.emb_width for lr in learners}
    if len(set(width.values())) > 1:
        for lr in learners:
            lr.plan.embedding_peers = {j for j, w in width.items() if w == width[lr.agent]}


def engine_refusal(algo: pydantic.BaseModel, engine: str) -> str | None:
    """Why ``engine`` (auto, batched, timing_only) cannot honour what the algorithm's learner
    overrides of the engine-learner contract (``contract.py``), in one line; None: it can.
    Algorithms whose messages are weights are outside that contract: their stand-ins measure
    the real messages."""
    caps = algo.capabilities
    if caps.messages == "weights":
        return None
    from ..algorithms.learner import Learner
    from ..algorithms.mhd import MHD

    cls = ALGORITHMS.get(algo.name)
    return refusal(cls, MHD if caps.distills else Learner, engine, algo.name)


Progress = Callable[[str, int, int], None]  # (what is being built, how many done, of how many)


def _ticks(progress: Progress | None, what: str, total: int) -> Callable[[int], None]:
    """A callable telling ``progress`` how far ``what`` has got, about a hundred times."""
    if progress is None:
        return lambda done: None
    every = max(1, total // 100)
    return lambda done: progress(what, done, total) if done % every == 0 or done == total else None


def build_learners(
    data: pydantic.BaseModel,
    models: list[pydantic.BaseModel],
    algo: pydantic.BaseModel,
    training: pydantic.BaseModel,
    seed: int,
    device: str = "cpu",
    progress: Progress | None = None,
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
    if algo.capabilities.shares_model:
        one = build(
            models[0],
            dataset.input_shape,
            algo.model_heads(),
            dataset.classes,
            torch_generator(seed, "model", 0),
            algo.model_head_hidden(),
        ).to(device)
        built = [one] * len(models)
        # everyone trains on the union
        shards = [np.sort(np.concatenate(parts.private))] * len(models)
    else:
        tick, built = _ticks(progress, "models", len(models)), []
        for i, spec in enumerate(models):
            built.append(
                build(spec, dataset.input_shape, algo.model_heads(), dataset.classes,
                      torch_generator(seed, "model", i), algo.model_head_hidden()).to(device)
            )  # fmt: skip
            tick(i + 1)
        shards = parts.private
    tick, learners = _ticks(progress, "learners", len(built)), []
    for i, (model, own) in enumerate(zip(built, shards)):
        x, y = tensor(dataset.x_train[own]), tensor(dataset.y_train[own])
        learners.append(
            cls(i, model, x, y, dist[i], shared, algo, training, stream(seed, "agent", i))
        )
        tick(i + 1)
    embedding_peers(algo, learners)
    if algo.capabilities.shares_model:
        for learner in learners[1:]:
            learner.join(learners[0])
    public_y = dataset.y_train[parts.public]  # for the teacher diagnostics, never for learning
    label_dist = parts.label_distribution(dataset.y_train, dataset.classes)
    for i, learner in enumerate(learners if algo.capabilities.distills else []):
        students = list(learner.wiring.sources)
        if students:
            learner.teacher_log = TeacherLog(public_y, main_classes(label_dist[i]), students)
    return learners, dataset, parts


def build_timing_only(
    data: pydantic.BaseModel,
    models: list[pydantic.BaseModel],
    algo: pydantic.BaseModel,
    training: pydantic.BaseModel,
    seed: int,
    progress: Progress | None = None,
) -> tuple[list[TimingOnly], Split]:
    """Timing-only stand-ins: one real learner per distinct architecture (a template) measures
    the costs; a distilling agent gets its own plan, drawn from its own stream. Agents without
    private samples are allowed (a preview of more agents than the data can serve): their
    steps draw as from one sample, and the simulation says so."""
    dataset, parts = load(data, len(models), seed, allow_empty=True)
    cls = ALGORITHMS.get(algo.name)
    shared = Shared(
        torch.from_numpy(dataset.x_train[parts.public]),
        torch.from_numpy(dataset.x_test[:1]),
        torch.from_numpy(dataset.y_test[:1]),
        dataset.classes,
    )
    x, y = torch.from_numpy(dataset.x_train[:1]), torch.from_numpy(dataset.y_train[:1])
    dist = torch.full((dataset.classes,), 1.0 / dataset.classes)
    templates: dict[str, Learner] = {}
    out, tick = [], _ticks(progress, "agents", len(models))
    for i, spec in enumerate(models):
        key = repr(spec)
        if key not in templates:
            model = build(spec, dataset.input_shape, algo.model_heads(), dataset.classes,
                          torch_generator(seed, "model", i), algo.model_head_hidden())  # fmt: skip
            rng = stream(seed, "template", i)
            templates[key] = cls(i, model, x, y, dist, shared, algo, training, rng)
        template = templates[key]
        plan = template.new_plan(max(1, len(parts.private[i])), stream(seed, "agent", i))
        out.append(TimingOnly(i, template, plan))
        tick(i + 1)
    return out, parts


def population(
    scenario: Any,
    timing_only: bool = False,
    progress: Progress | None = None,
    workers: int | None = None,
) -> Population:
    """A scenario's population as the world drives it: learners (behind proxies with
    ``engine: batched``, and with ``auto`` where its threads can run them: ``workers`` of
    them, default one per core), or timing-only stand-ins; ``progress`` hears how building
    goes."""
    pop = _population(scenario, timing_only, progress, workers)
    pop.kernels = kernels.in_use()
    pop.hot_path = plan_kernel.path()
    pop.warnings += [w for w in [kernels.warning()] if w]
    return pop


def _population(
    scenario: Any, timing_only: bool, progress: Progress | None, workers: int | None
) -> Population:
    sc = scenario
    models = [a.model for a in sc.agents.per_agent(sc.seed)]
    engine_name = "timing_only" if timing_only else sc.engine
    refused = engine_refusal(sc.algorithm, engine_name) if engine_name != "per_agent" else None
    if refused and engine_name != "auto":
        raise ValueError(refused)
    if timing_only:
        learners, parts = build_timing_only(
            sc.data, models, sc.algorithm, sc.training, sc.seed, progress
        )
        sizes = [len(p) for p in parts.private]
        return Population(learners, None, sizes, learners[0].rounds, engine="timing-only")
    learners, _, parts = build_learners(
        sc.data, models, sc.algorithm, sc.training, sc.seed, sc.device, progress
    )
    label_dist = np.stack([lr.label_dist.cpu().numpy() for lr in learners])
    pop = Population(learners, label_dist, [len(p) for p in parts.private], learners[0].rounds)
    if sc.engine == "batched":  # the scenario's check made sure it can
        from .batched import Engine

        engine = Engine(learners)
        pop.learners, pop.reserve_peers, pop.engine = (
            engine.proxies(),
            engine.ensure_slots,
            "batched",
        )
    elif sc.engine == "auto" and refused:  # the threads cannot honour it: one core, and why
        member = refused.split("it overrides ", 1)[1].split(",", 1)[0]
        pop.engine = f"per_agent; its threads cannot defer {sc.algorithm.name}'s own {member}"
    elif sc.engine == "auto" and sc.device == "cpu" and threaded.supported(sc.algorithm):
        engine = threaded.Engine(learners, workers)
        if engine.workers > 1:
            pop.learners, pop.engine = engine.proxies(), f"per-agent on {engine.workers} threads"
    return pop
