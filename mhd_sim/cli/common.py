"""What every command shares: the typer app, consoles, one-line errors and scenario loading."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:  # the commands import what they need when they run: --help stays instant
    from ..scenario import ScenarioError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Discrete-event simulator of decentralized learning with multi-headed distillation.",
)
out = Console()
err = Console(stderr=True)

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a setting: KEY=VALUE, e.g. network.loss=0.1."),
]
SeedOption = Annotated[int | None, typer.Option("--seed", help="Override the scenario's seed.")]
PortOption = Annotated[
    int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0: a free one).")
]


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _scenario_path(name: str) -> Path:
    """A path as given, or the name of a bundled scenario (``straggler``)."""
    from ..scenario import bundled

    return bundled.resolve(name)


def _problems(e: ScenarioError) -> typer.Exit:
    """One line per problem with the input, then exit code 2."""
    for line in e.problems:
        err.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


ForceOption = Annotated[
    bool,
    typer.Option(
        "--force", help="Run it even if it looks too large for this machine's memory or time."
    ),
]


def _load(scenario: str, overrides: list[str] | None, seed: int | None, force: bool = False):
    from ..scenario import ScenarioError, load

    try:
        return load(scenario, overrides or [], seed, force)
    except ScenarioError as e:
        raise _problems(e) from None
