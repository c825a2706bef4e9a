"""Scenarios the benchmarks share, built from the bundled straggler scenario."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def straggler() -> dict:
    return yaml.safe_load((ROOT / "scenarios" / "straggler.yaml").read_text())


def population(agents: int, duration: float = 60.0) -> dict:
    """``agents`` MLP agents on mnist1d, 10 random neighbours each (8 stragglers per 100)."""
    sc = straggler()
    sc["name"] = f"population-{agents}"
    sc["duration"] = duration
    sc["agents"]["count"] = agents
    sc["agents"]["model"] = {"kind": "mlp", "hidden": [128, 128]}
    sc["agents"]["speed"] = 1.0e8
    sc["agents"]["groups"] = [
        {"name": "stragglers", "agents": list(range(0, agents, 12)), "speed": 1.25e7}
    ]
    sc["network"]["topology"] = {
        "kind": "random_regular",
        "degree": min(10, agents - 1 - (agents % 2)),
    }
    sc["eval"] = {"every": duration}
    return sc
