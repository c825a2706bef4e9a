"""mhd-sim: a discrete-event simulator of decentralized learning with multi-headed distillation.

The layers, top to bottom: ``cli`` and ``sweep``; ``scenario`` (the YAML schema); ``world``
(SimPy: time, agents, network); ``learning`` (datasets, models, algorithms); ``record``
(the run directory); ``analysis`` (reading run directories). See docs/architecture.md.
"""

__version__ = "0.1.0"
