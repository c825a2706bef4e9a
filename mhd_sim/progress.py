"""Progress bars on standard error: one for a run (simulated time, events, messages) and one
for setting up a large population (what is built, how many of all)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

Ticker = Callable[[float, int, int], None]  # (simulated time, events, messages)
SETUP_BAR_AGENTS = 200  # populations from this size show their set-up


@contextlib.contextmanager
def run_bar(enabled: bool, name: str, duration: float) -> Iterator[Ticker | None]:
    """A run's progress bar (simulated time, events, messages); None when not ``enabled``."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("t={task.completed:.0f}/{task.total:.0f} s"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as bar:
        task = bar.add_task(name, total=duration, info="")
        yield lambda now, events, msgs: bar.update(
            task, completed=now, info=f"{events:,} events, {msgs:,} messages"
        )


@contextlib.contextmanager
def setup_bar(enabled: bool, agents: int) -> Iterator[Callable[[str, int, int], None] | None]:
    """A progress bar for setting up a large population (what is built, how many of all)."""
    if not enabled or agents < SETUP_BAR_AGENTS:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]set-up: {task.description}"), BarColumn(),
                  TextColumn("{task.completed:,}/{task.total:,}"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:  # fmt: skip
        tasks: dict[str, Any] = {}

        def step(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done)

        yield step
