"""Events per second of the simulation with learning switched off (``--timing-only``).

    python -m benchmarks.event_rate [--agents 1000] [--duration 60]

Runs the whole schedule (compute durations from FLOPs, messages on uplinks with latency
and loss, every event written to events.csv) and prints events, wall time and the rate.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from mhd_sim.api import build_simulation
from mhd_sim.record.run_directory import RunDirectory
from mhd_sim.scenario import validate

from .scenarios import population


def measure(agents: int, duration: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        record = RunDirectory(tmp)
        start = time.perf_counter()
        sim = build_simulation(validate(population(agents, duration)), record, timing_only=True)
        setup = time.perf_counter() - start
        start = time.perf_counter()
        summary = sim.run()
        wall = time.perf_counter() - start
        record.close()
    return {
        "agents": agents,
        "events": summary["events"],
        "messages": summary["messages"]["sent"],
        "setup_s": setup,
        "wall_s": wall,
        "events_per_s": summary["events"] / wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--duration", type=float, default=60.0)
    args = ap.parse_args()
    print(
        f"{'agents':>7} {'events':>10} {'messages':>10} {'setup s':>8} {'run s':>7} "
        f"{'events/s':>10}"
    )
    for n in args.agents:
        r = measure(n, args.duration)
        print(
            f"{r['agents']:>7} {r['events']:>10,} {r['messages']:>10,} {r['setup_s']:>8.2f} "
            f"{r['wall_s']:>7.2f} "
            f"{r['events_per_s']:>10,.0f}"
        )


if __name__ == "__main__":
    main()
