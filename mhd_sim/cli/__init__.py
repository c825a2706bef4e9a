"""The ``mhd-sim`` command line. Exit codes: 0 done, 2 bad input, 1 anything else."""

from __future__ import annotations

from . import run, study  # noqa: F401 (registers their commands, in this order)
from .common import app


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")  # the command line only writes figures to files; no display needed
    app()


__all__ = ["app", "main"]
