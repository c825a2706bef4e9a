"""The ``mhd-sim`` command line. Exit codes: 0 done, 2 bad input, 1 anything else."""

from __future__ import annotations

import os

from . import run, study  # noqa: F401 (registers their commands, in this order)
from .common import app


def main() -> None:
    # the command line only writes figures to files: no display (read when matplotlib loads,
    # which only the commands that draw do)
    os.environ.setdefault("MPLBACKEND", "Agg")
    app()


__all__ = ["app", "main"]
