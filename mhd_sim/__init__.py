"""mhd-sim: a discrete-event simulator of decentralized learning with multi-headed distillation.

    import mhd_sim as ms
    run = ms.simulate(ms.load("straggler", set={"duration": 60}))
    run.summary["final"], run.metrics, run.plot("curves")

The layers, top to bottom: ``cli``, ``api`` and ``sweep``; ``scenario`` (the YAML schema);
``world`` (SimPy: time, agents, network); ``learning`` (datasets, models, algorithms);
``record`` (the run directory); ``analysis`` (reading run directories). See
docs/architecture.md and docs/api.md.
"""

from .api import MhdSimError, Run, load, open_run, simulate, sweep
from .scenario import Scenario

__version__ = "0.1.0"
__all__ = ["MhdSimError", "Run", "Scenario", "load", "open_run", "simulate", "sweep"]
