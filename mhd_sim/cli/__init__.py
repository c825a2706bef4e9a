"""The ``mhd-sim`` command line. Exit codes: 0 done, 2 bad input, 1 anything else."""

from __future__ import annotations

import os
import sys

from . import run, study, watch  # noqa: F401 (registers their commands, in this order)
from .common import app, err


def main() -> None:
    """The command line, with every usage error as one line (``error: ...``) and exit code 2."""
    import typer

    try:  # typer ≥ 0.25 carries its own copy of click
        from typer._click import exceptions as cx
        from typer._click import utils as cu
    except ImportError:
        from click import exceptions as cx
        from click import utils as cu

    # the command line only writes figures to files: no display (read when matplotlib loads,
    # which only the commands that draw do)
    os.environ.setdefault("MPLBACKEND", "Agg")
    command = typer.main.get_command(app)
    try:
        code = command.main(prog_name="mhd-sim", standalone_mode=False)
    except cx.NoArgsIsHelpError as e:  # `mhd-sim` alone: the help
        cu.echo(e.ctx.get_help())
        code = 0
    except cx.UsageError as e:  # a command, an option or an argument mistyped
        err.print(f"[bold red]error:[/] {e.format_message()}", highlight=False, soft_wrap=True)
        code = 2
    except typer.Abort:
        err.print("[bold red]error:[/] aborted", highlight=False)
        code = 1
    except Exception as e:  # a bug: still one line (the traceback with MHD_SIM_DEBUG=1)
        if os.environ.get("MHD_SIM_DEBUG"):
            raise
        message = (str(e).strip().splitlines() or [""])[0]
        err.print(
            f"[bold red]error:[/] internal error: {type(e).__name__}: {message} "
            "(MHD_SIM_DEBUG=1 shows where)",
            highlight=False,
            soft_wrap=True,
        )
        code = 1
    sys.exit(code or 0)


__all__ = ["app", "main"]
