"""How one scenario seed becomes independent random streams, one per agent, link and purpose.

Streams are addressed by a key (``stream(seed, "link", 3, 5)``), not spawned in order, so
adding a link or an agent never shifts the numbers any other stream draws.
"""
from __future__ import annotations

import zlib

import numpy as np
import torch


def _key(part: str | int) -> int:
    return zlib.crc32(part.encode()) if isinstance(part, str) else int(part)


def stream(seed: int, *key: str | int) -> np.random.Generator:
    """An independent numpy generator for ``key`` under ``seed``.

    >>> float(stream(0, "agent", 1).random()) == float(stream(0, "agent", 1).random())
    True
    """
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=tuple(map(_key, key)))))


def torch_generator(seed: int, *key: str | int) -> torch.Generator:
    """A torch generator for ``key`` (weight initialisation), seeded from the same tree."""
    return torch.Generator().manual_seed(int(stream(seed, *key).integers(2**63 - 1)))
