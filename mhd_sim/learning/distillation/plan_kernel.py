"""A plan's hot path, compiled where the package was built with its extension
(``_plan_kernel.pyx``: numpy's own C function for the draws, numpy's summation order for the
ages, a message's writes into the cache), numpy otherwise. The same numbers and the same
stream either way (tests/test_plan_kernel.py checks that both paths give the same files);
``MHD_SIM_PURE_PYTHON=1`` forces the Python path.

    >>> rng = np.random.default_rng(0)
    >>> integers(rng, np.array([10, 10, 3])).tolist() == np.random.default_rng(0).integers(
    ...     0, [10, 10, 3]).tolist()
    True
"""

from __future__ import annotations

import os
from types import ModuleType

import numpy as np

try:
    if os.environ.get("MHD_SIM_PURE_PYTHON", "") not in ("", "0"):
        raise ImportError("MHD_SIM_PURE_PYTHON is set")
    from . import _plan_kernel as _compiled
except ImportError:
    _compiled = None


def path() -> str:
    """Which one runs: ``compiled`` or ``python`` (summary.json's ``hot_path``)."""
    return "python" if _compiled is None else "compiled"


def integers(rng: np.random.Generator, high: np.ndarray) -> np.ndarray:
    """``rng.integers(0, high)`` for an int64 array ``high`` (each at least 1)."""
    if _compiled is None:
        return rng.integers(0, high)
    out = np.empty(len(high), dtype=np.int64)
    _compiled.integers(rng, high, out)
    return out


def compiled() -> ModuleType | None:
    """The compiled kernels, ``step`` and ``store`` (None: the Python path runs, Plan's own
    numpy lines)."""
    return _compiled
