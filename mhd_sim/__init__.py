"""mhd-sim: a discrete-event simulator of decentralized learning with multi-headed distillation.

    import mhd_sim as ms
    run = ms.simulate(ms.load("straggler", set={"duration": 60}))
    run.summary["final"], run.metrics, run.plot("curves")

The layers, top to bottom: ``cli``, ``api`` and ``sweeps``; ``compare`` (many runs side by
side); ``scenario`` (the YAML schema); ``world`` (SimPy: time, agents, network);
``learning`` (datasets, models, algorithms); ``record`` (the run directory, written and
read back). See docs/architecture.md and docs/api.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .learning import kernels as _kernels

if TYPE_CHECKING:
    from .api import MhdSimError, Run, load, open_run, simulate, sweep
    from .scenario import Scenario

# every machine runs the same CPU kernels (learning/kernels.py): set before torch runs one
_kernels.pin()

__version__ = "0.1.0"
__all__ = ["MhdSimError", "Run", "Scenario", "load", "open_run", "simulate", "sweep"]
_HOME = {"Scenario": ".scenario"}  # where each name lives; the rest are in .api


def __getattr__(name: str) -> Any:
    """The API's names, imported when first used: ``import mhd_sim`` (and the command line,
    which lives under it) stays fast, and ``ms.simulate`` works as ever."""
    if name not in __all__:
        raise AttributeError(f"module 'mhd_sim' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME.get(name, ".api"), __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
