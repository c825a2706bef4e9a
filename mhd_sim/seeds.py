"""How one scenario seed becomes independent random streams, and the distributions drawn from them.

Streams are addressed by a key (``stream(seed, "link", 3, 5)``), not spawned in order, so
adding a link or an agent never shifts the numbers any other stream draws. Distributions
(``{dist: lognormal, median: 0.05}``) are registered functions ``fn(rng, *, settings)``;
scenarios use them for latencies, compute speeds and private-set sizes.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import numpy as np
import pydantic

from .registry import Registry, settings

DISTRIBUTIONS = Registry("distribution", tag="dist")
if TYPE_CHECKING:
    import torch

NonNegative = Annotated[float, pydantic.Field(ge=0)]
Positive = Annotated[float, pydantic.Field(gt=0)]


@DISTRIBUTIONS.register("constant")
def constant(rng: np.random.Generator, *, value: NonNegative) -> float:
    return value


@DISTRIBUTIONS.register("uniform")
def uniform(rng: np.random.Generator, *, low: NonNegative, high: NonNegative) -> float:
    if high < low:
        raise ValueError(f"uniform: high ({high:g}) is below low ({low:g})")
    return float(rng.uniform(low, high))


@DISTRIBUTIONS.register("lognormal")
def lognormal(rng: np.random.Generator, *, median: Positive, sigma: NonNegative = 0.5) -> float:
    """median · exp(σ·N(0,1)): a heavy right tail, as wide-area latencies and device speeds have."""
    return median * math.exp(sigma * rng.standard_normal())


@DISTRIBUTIONS.register("exponential")
def exponential(rng: np.random.Generator, *, mean: Positive) -> float:
    return float(rng.exponential(mean))


def sampler(spec: pydantic.BaseModel) -> Callable[[np.random.Generator], float]:
    """A function drawing one value of a ``{dist: ...}`` spec from a given generator.

    >>> spec = DISTRIBUTIONS.params_model("constant")(dist="constant", value=2.5)
    >>> sampler(spec)(None)
    2.5
    """
    return functools.partial(DISTRIBUTIONS.get(spec.dist), **settings(spec, "dist"))


def _key(part: str | int) -> int:
    return zlib.crc32(part.encode()) if isinstance(part, str) else int(part)


def stream(seed: int, *key: str | int) -> np.random.Generator:
    """An independent numpy generator for ``key`` under ``seed``.

    >>> float(stream(0, "agent", 1).random()) == float(stream(0, "agent", 1).random())
    True
    """
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=tuple(map(_key, key))))
    )


def torch_generator(seed: int, *key: str | int) -> torch.Generator:
    """A torch generator for ``key`` (weight initialisation), seeded from the same tree."""
    import torch  # here, not at the top: checking a scenario never loads torch

    return torch.Generator().manual_seed(int(stream(seed, *key).integers(2**63 - 1)))
