"""Churn: agents going offline and coming back, as SimPy processes.

Each process only decides *when*; ``Simulation.go_offline`` and ``go_online`` do the rest
(interrupt the agent's step, drop its queued messages, log the event).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ..seeds import stream


def markov(sim: Any, agent: int, churn: Any) -> Generator:
    """Two-state Markov churn: exponential up and down times, drawn from the agent's stream."""
    rng = stream(sim.sc.seed, "churn", agent)
    while True:
        yield sim.env.timeout(rng.exponential(churn.up_mean))
        sim.go_offline(agent)
        yield sim.env.timeout(rng.exponential(churn.down_mean))
        sim.go_online(agent)


def scheduled(sim: Any, agent: int, spans: list[tuple[float, float]]) -> Generator:
    """Offline during each ``[start, end)`` span of an explicit schedule."""
    for start, end in spans:
        yield sim.env.timeout(start - sim.env.now)
        sim.go_offline(agent)
        yield sim.env.timeout(end - sim.env.now)
        sim.go_online(agent)
